//! An SVG chart of a run, written by hand (no plotting dependency): included transactions per
//! second block by block and, when the node's metrics were scraped, the mean time per block of
//! each pipeline stage, both over the time of the run.

use std::fmt::Write;

use crate::{BlockSample, Report, metrics::STAGES};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 70.0;
const PANEL: f64 = 240.0;
const GAP: f64 = 70.0;
const BOTTOM: f64 = 50.0;
const BAR_COLOR: &str = "#4c78a8";
const STAGE_COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// Escapes text for SVG content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A step of 1, 2 or 5 times a power of ten near `raw`, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let exp = 10f64.powf(raw.log10().floor());
    let f = raw / exp;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * exp
}

/// Axis from 0 to a round number at least `max`, in about five ticks: `(top, step)`.
fn axis(max: f64) -> (f64, f64) {
    let step = nice_step(max / 5.0);
    let top = ((max / step).ceil() * step).max(step);
    (top, step)
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// Median of the blocks' production intervals, in ms (0 without blocks).
fn median_interval_ms(blocks: &[BlockSample]) -> f64 {
    let mut gaps: Vec<f64> = blocks.iter().map(|b| b.interval_ms).collect();
    if gaps.is_empty() {
        return 0.0;
    }
    gaps.sort_unstable_by(f64::total_cmp);
    gaps[gaps.len() / 2]
}

struct Panel {
    top: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
}

impl Panel {
    fn plot_width() -> f64 {
        WIDTH - LEFT - RIGHT
    }
    fn x(&self, seconds: f64) -> f64 {
        LEFT + (seconds / self.x_max).clamp(0.0, 1.0) * Self::plot_width()
    }
    fn y(&self, v: f64) -> f64 {
        self.top + self.height - (v / self.y_max).clamp(0.0, 1.0) * self.height
    }

    /// Frame, grid, ticks and axis titles.
    fn axes(&self, out: &mut String, x_step: f64, y_step: f64, y_title: &str, x_title: &str) {
        let bottom = self.top + self.height;
        let right = LEFT + Self::plot_width();
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
            self.top,
            Self::plot_width(),
            self.height
        );
        let mut v = 0.0;
        while v <= self.y_max + y_step / 2.0 {
            let y = self.y(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
                LEFT - 6.0,
                y + 4.0,
                tick_label(v, y_step)
            );
            v += y_step;
        }
        let mut t = 0.0;
        while t <= self.x_max + x_step / 2.0 {
            let x = self.x(t);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
                bottom + 5.0,
                bottom + 18.0,
                tick_label(t, x_step)
            );
            t += x_step;
        }
        let mid_y = self.top + self.height / 2.0;
        let _ = writeln!(
            out,
            r#"<text x="20" y="{mid_y:.1}" text-anchor="middle" font-size="12" transform="rotate(-90 20 {mid_y:.1})">{}</text>"#,
            esc(y_title)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"#,
            LEFT + Self::plot_width() / 2.0,
            bottom + 36.0,
            esc(x_title)
        );
    }
}

fn legend_entry(out: &mut String, y: f64, color: &str, dashed: bool, bar: bool, label: &str) {
    let x = WIDTH - RIGHT + 15.0;
    if bar {
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="18" height="10" fill="{color}"/>"#,
            y - 9.0
        );
    } else {
        let dash = if dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"{dash}/>"#,
            y - 4.0,
            x + 18.0,
            y - 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{y:.1}" font-size="11">{}</text>"#,
        x + 24.0,
        esc(label)
    );
}

/// The title line of the chart of `report`.
pub fn title(report: &Report) -> String {
    format!(
        "pharos bench e2e: {} — {:.0} tx/s, latency p50 {} ms, p99 {} ms",
        report.workload, report.tps, report.latency_p50_ms, report.latency_p99_ms
    )
}

/// The SVG document for `report`: a panel of included tx/s per block (one bar per block sample,
/// as wide as the block's production interval and as high as its transactions over that
/// interval) with the run's average,
/// and, if any sample carries stage times, a second panel with one line per pipeline stage (ms).
pub fn svg(report: &Report) -> String {
    let blocks = &report.blocks;
    let has_stages = blocks
        .iter()
        .any(|b| b.stage_ms.is_some_and(|s| !s.is_empty()));
    let height = TOP + PANEL + BOTTOM + if has_stages { GAP + PANEL } else { 0.0 };
    let interval_ms = median_interval_ms(blocks);
    let end_s = blocks.last().map_or(1.0, |b| b.seen_ms as f64 / 1e3);
    let (x_max, x_step) = axis(end_s.max(1e-3));

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        esc(&title(report))
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="46" text-anchor="middle" font-size="12" fill="#555">{}</text>"##,
        WIDTH / 2.0,
        esc(&format!(
            "{} · {} of {} included, {} refused, {} reverted · {:.2} s · {:.1} Mgas/s · block interval ~{:.0} ms",
            report.client,
            report.included,
            report.submitted,
            report.refused,
            report.reverted,
            report.seconds,
            report.gas_per_second / 1e6,
            interval_ms
        ))
    );

    // Panel 1: included tx/s per block.
    let tps: Vec<f64> = blocks
        .iter()
        .map(|b| b.txs as f64 * 1e3 / b.interval_ms.max(1.0))
        .collect();
    let max_tps = tps.iter().copied().fold(report.tps, f64::max);
    // 5% headroom so the tallest bar does not touch the frame.
    let (y_max, y_step) = axis((max_tps * 1.05).max(1.0));
    let p1 = Panel {
        top: TOP,
        height: PANEL,
        x_max,
        y_max,
    };
    p1.axes(
        &mut out,
        x_step,
        y_step,
        "included tx/s",
        "time since first submission (s)",
    );
    let _ = writeln!(out, r#"<g fill="{BAR_COLOR}">"#);
    // Bars tile the time axis: each covers its block's interval, so its area is its txs.
    let mut cursor_ms = 0.0;
    for (b, v) in blocks.iter().zip(&tps) {
        let t0 = cursor_ms / 1e3;
        cursor_ms += b.interval_ms;
        let (x0, x1) = (p1.x(t0), p1.x(cursor_ms / 1e3));
        let y = p1.y(*v);
        let _ = writeln!(
            out,
            r#"<rect class="bar" x="{x0:.1}" y="{y:.1}" width="{:.2}" height="{:.1}"><title>block {}: {} txs, {:.0} tx/s, {} gas</title></rect>"#,
            (x1 - x0 - 1.0).max(0.5),
            p1.y(0.0) - y,
            b.number,
            b.txs,
            v,
            b.gas_used
        );
    }
    let _ = writeln!(out, "</g>");
    let avg_y = p1.y(report.tps);
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{avg_y:.1}" x2="{:.1}" y2="{avg_y:.1}" stroke="#e45756" stroke-width="2" stroke-dasharray="5 3"/>"##,
        LEFT + Panel::plot_width()
    );
    legend_entry(
        &mut out,
        TOP + 12.0,
        BAR_COLOR,
        false,
        true,
        "tx/s per block",
    );
    legend_entry(
        &mut out,
        TOP + 30.0,
        "#e45756",
        true,
        false,
        &format!("run average {:.0}", report.tps),
    );

    // Panel 2: stage times.
    if has_stages {
        let max_ms = blocks
            .iter()
            .filter_map(|b| b.stage_ms)
            .flat_map(|s| STAGES.map(|n| s.get(n).unwrap_or(0.0)))
            .fold(0.0, f64::max);
        let (y_max, y_step) = axis((max_ms * 1.05).max(0.1));
        let p2 = Panel {
            top: TOP + PANEL + GAP,
            height: PANEL,
            x_max,
            y_max,
        };
        p2.axes(
            &mut out,
            x_step,
            y_step,
            "mean time per block (ms)",
            "time since first submission (s)",
        );
        for (stage, color) in STAGES.iter().zip(STAGE_COLORS) {
            let points: Vec<(f64, f64)> = blocks
                .iter()
                .filter_map(|b| {
                    let v = b.stage_ms?.get(stage)?;
                    Some((p2.x(b.seen_ms as f64 / 1e3), p2.y(v)))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let mut line = String::new();
            for (x, y) in &points {
                let _ = write!(line, "{x:.1},{y:.1} ");
            }
            let _ = writeln!(
                out,
                r#"<polyline class="stage" fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                line.trim_end()
            );
            let _ = writeln!(out, r#"<g fill="{color}">"#);
            for (x, y) in &points {
                let _ = writeln!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="2"/>"#);
            }
            let _ = writeln!(out, "</g>");
        }
        for (i, (stage, color)) in STAGES.iter().zip(STAGE_COLORS).enumerate() {
            legend_entry(
                &mut out,
                p2.top + 12.0 + 18.0 * i as f64,
                color,
                false,
                false,
                stage,
            );
        }
    } else {
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{:.1}" font-size="11" fill="#777">stage times: not recorded (no --metrics)</text>"##,
            TOP + PANEL + 44.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StageTimes, Workload};

    fn report(blocks: Vec<BlockSample>) -> Report {
        Report {
            client: "test<&>client".into(),
            workload: Workload::Uniswap,
            submitted: 30,
            refused: 0,
            first_refusal: None,
            included: 30,
            reverted: 0,
            seconds: 1.5,
            tps: 20.0,
            gas_per_second: 1e6,
            latency_p50_ms: 400,
            latency_p99_ms: 900,
            blocks,
        }
    }

    fn sample(
        number: u64,
        seen_ms: u64,
        interval_ms: f64,
        txs: usize,
        stage_ms: Option<StageTimes>,
    ) -> BlockSample {
        BlockSample {
            number,
            seen_ms,
            txs,
            gas_used: 21_000 * txs as u64,
            interval_ms,
            stage_ms,
        }
    }

    /// Checks that every tag is closed in order (enough to catch broken hand-written markup).
    fn assert_balanced(svg: &str) {
        let mut stack = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').expect("unterminated tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                stack.push(name);
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    }

    #[test]
    fn svg_has_title_axes_and_one_bar_per_sample() {
        let stages = StageTimes {
            execute: Some(12.5),
            merkleize: Some(3.0),
            flush: None,
            commit: Some(20.0),
        };
        let blocks = vec![
            sample(5, 480, 480.0, 0, None),
            sample(6, 1000, 520.0, 10, Some(stages)),
            sample(7, 1500, 250.0, 20, Some(stages)),
            sample(8, 1510, 250.0, 0, Some(StageTimes::default())),
        ];
        let r = report(blocks);
        let svg = svg(&r);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_balanced(&svg);
        assert!(svg.contains(&esc(&title(&r))));
        assert!(svg.contains("uniswap"));
        assert!(svg.contains("20 tx/s"));
        assert!(svg.contains("p50 400 ms"));
        assert!(svg.contains("test&lt;&amp;&gt;client"));
        assert_eq!(svg.matches(r#"class="bar""#).count(), r.blocks.len());
        // Stage lines: execute, merkleize and commit have values, flush has none.
        assert_eq!(svg.matches(r#"class="stage""#).count(), 3);
        assert_eq!(svg.matches("<circle").count(), 3 * 2);
        for s in [
            "included tx/s",
            "mean time per block (ms)",
            "time since first submission (s)",
        ] {
            assert!(svg.contains(s), "missing axis label {s}");
        }
        for s in STAGES.iter().filter(|s| **s != "flush") {
            assert!(svg.contains(&format!(">{s}</text>")), "missing legend {s}");
        }
        // 20 txs in 250 ms is 80 tx/s.
        assert!(svg.contains("block 7: 20 txs, 80 tx/s"));
    }

    #[test]
    fn svg_without_stage_times_has_one_panel() {
        let r = report(vec![sample(1, 500, 500.0, 30, None)]);
        let svg = svg(&r);
        assert!(svg.starts_with("<svg"));
        assert_balanced(&svg);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 1);
        assert!(!svg.contains("<polyline"));
        assert!(svg.contains("not recorded"));
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(axis(9_500.0), (10_000.0, 2_000.0));
        assert_eq!(axis(0.37), (0.4, 0.1));
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
    }
}
