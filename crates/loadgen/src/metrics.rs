//! Reads the node's Prometheus metrics (`pharos node --metrics ADDR`) during a run: a plain
//! HTTP/1.0 GET, and a parser for the `pharos_stage_seconds` histogram's `_sum` and `_count`
//! lines, from which the mean time per block of each pipeline stage between two scrapes follows.

use std::{collections::HashMap, time::Duration};

use serde::Serialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Pipeline stages whose per-block times are recorded, in drawing order.
pub const STAGES: [&str; 4] = ["execute", "merkleize", "flush", "commit"];

/// Histogram family holding the per-stage block timings.
const STAGE_FAMILY: &str = "pharos_stage_seconds";

/// Largest exposition accepted, in bytes.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Why the metrics endpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The URL is not `http://HOST:PORT[/PATH]` (or `HOST:PORT`).
    #[error("metrics URL '{0}': {1}")]
    Url(String, &'static str),
    /// Connecting, sending or receiving failed.
    #[error("metrics {0}: {1}")]
    Io(String, String),
    /// The server answered with something other than 200 OK.
    #[error("metrics {0}: {1}")]
    Status(String, String),
}

/// Mean time per block of each pipeline stage over an interval, in milliseconds; `None` where
/// the node committed no block of that stage in the interval (or did not report the stage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Executing the block's transactions.
    pub execute: Option<f64>,
    /// Computing the state root.
    pub merkleize: Option<f64>,
    /// Writing the block to the chain database.
    pub flush: Option<f64>,
    /// From execution start to durable head.
    pub commit: Option<f64>,
}

impl StageTimes {
    /// The value of stage `name` (one of [`STAGES`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "execute" => self.execute,
            "merkleize" => self.merkleize,
            "flush" => self.flush,
            "commit" => self.commit,
            _ => None,
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<f64>> {
        match name {
            "execute" => Some(&mut self.execute),
            "merkleize" => Some(&mut self.merkleize),
            "flush" => Some(&mut self.flush),
            "commit" => Some(&mut self.commit),
            _ => None,
        }
    }

    /// Whether no stage has a value.
    pub fn is_empty(&self) -> bool {
        STAGES.iter().all(|s| self.get(s).is_none())
    }
}

/// Cumulative `(sum in seconds, count)` of each stage's histogram, as of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTotals(pub HashMap<String, (f64, f64)>);

impl StageTotals {
    /// Reads the `pharos_stage_seconds_sum` and `_count` lines of a Prometheus / OpenMetrics
    /// text exposition; everything else (comments, buckets, other families, malformed lines) is
    /// skipped.
    pub fn parse(text: &str) -> Self {
        let mut totals: HashMap<String, (f64, f64)> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, stage, value)) = split_sample(line) else {
                continue;
            };
            let Some(suffix) = name.strip_prefix(STAGE_FAMILY) else {
                continue;
            };
            let entry = totals
                .entry(stage.to_string())
                .or_insert((f64::NAN, f64::NAN));
            match suffix {
                "_sum" => entry.0 = value,
                "_count" => entry.1 = value,
                _ => {}
            }
        }
        totals.retain(|_, (sum, count)| sum.is_finite() && count.is_finite());
        Self(totals)
    }

    /// Mean time per block of each stage between `earlier` and `self`: Δsum / Δcount, in ms.
    pub fn means_since(&self, earlier: &Self) -> StageTimes {
        let mut out = StageTimes::default();
        for stage in STAGES {
            let Some(&(sum, count)) = self.0.get(stage) else {
                continue;
            };
            let (sum0, count0) = earlier.0.get(stage).copied().unwrap_or((0.0, 0.0));
            let (ds, dc) = (sum - sum0, count - count0);
            // No new block, or a counter reset (the node restarted).
            if dc <= 0.0 || ds < 0.0 {
                continue;
            }
            if let Some(slot) = out.slot(stage) {
                *slot = Some(ds / dc * 1e3);
            }
        }
        out
    }
}

/// Splits `name{labels} value [timestamp]` into the name, the `stage` label and the value.
fn split_sample(line: &str) -> Option<(&str, &str, f64)> {
    let open = line.find('{')?;
    let name = &line[..open];
    let rest = &line[open + 1..];
    let close = closing_brace(rest)?;
    let labels = &rest[..close];
    let value = rest[close + 1..].split_whitespace().next()?.parse().ok()?;
    let stage = label(labels, "stage")?;
    Some((name, stage, value))
}

/// Index of the `}` ending a label set, skipping quoted values.
fn closing_brace(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The value of label `key` in `a="x",key="y"`.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let end = closing_quote(after)?;
        if name == key {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// A metrics endpoint to scrape over plain HTTP.
#[derive(Debug, Clone)]
pub struct MetricsScraper {
    url: String,
    authority: String,
    path: String,
}

impl MetricsScraper {
    /// An endpoint at `http://HOST:PORT/PATH`; `HOST:PORT` alone means `/metrics` on it.
    pub fn new(url: &str) -> Result<Self, MetricsError> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(_) => return Err(MetricsError::Url(url.into(), "only http:// is supported")),
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        if authority.is_empty() {
            return Err(MetricsError::Url(url.into(), "no host"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            url: format!("http://{authority}{path}"),
            authority,
            path: path.to_string(),
        })
    }

    /// The normalized URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the exposition text (within `timeout`).
    pub async fn fetch(&self, timeout: Duration) -> Result<String, MetricsError> {
        let io = |e: std::io::Error| MetricsError::Io(self.url.clone(), e.to_string());
        let response = tokio::time::timeout(timeout, async {
            let mut stream = TcpStream::connect(self.authority.as_str()).await?;
            // HTTP/1.0: the answer is the raw body up to the close, never chunked.
            let request = format!(
                "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: text/plain\r\n\r\n",
                self.path, self.authority
            );
            stream.write_all(request.as_bytes()).await?;
            let mut buf = Vec::new();
            (&mut stream)
                .take(MAX_RESPONSE as u64)
                .read_to_end(&mut buf)
                .await?;
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(|_| MetricsError::Io(self.url.clone(), format!("no answer in {timeout:?}")))?
        .map_err(io)?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| MetricsError::Status(self.url.clone(), "not an HTTP answer".into()))?;
        let status = head.lines().next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(MetricsError::Status(self.url.clone(), status.to_string()));
        }
        Ok(body.to_string())
    }

    /// Fetches and parses the stage totals.
    pub async fn stage_totals(&self) -> Result<StageTotals, MetricsError> {
        Ok(StageTotals::parse(
            &self.fetch(Duration::from_secs(2)).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# HELP pharos_stage_seconds Time per block in each pipeline stage.
# TYPE pharos_stage_seconds histogram
pharos_stage_seconds_sum{stage="commit"} 0.5
pharos_stage_seconds_count{stage="commit"} 10
pharos_stage_seconds_bucket{le="0.0001",stage="commit"} 0
pharos_stage_seconds_bucket{le="+Inf",stage="commit"} 10
pharos_stage_seconds_sum{stage="execute"} 1.25
pharos_stage_seconds_count{stage="execute"} 10
pharos_stage_seconds_sum{node="a, \"b}\"",stage="merkleize"} 0.2 1700000000
pharos_stage_seconds_count{stage="merkleize",node="a"} 10
pharos_stage_seconds_sum{stage="checkpoint"} 0.001
pharos_stage_seconds_count{stage="checkpoint"} 10
pharos_stage_seconds_sum{stage="flush"} garbage
pharos_other_seconds_sum{stage="flush"} 9
pharos_blocks_total 10
# EOF
"#;

    #[test]
    fn parses_stage_sums_and_counts() {
        let t = StageTotals::parse(EXPOSITION);
        assert_eq!(t.0.get("execute"), Some(&(1.25, 10.0)));
        assert_eq!(t.0.get("commit"), Some(&(0.5, 10.0)));
        assert_eq!(t.0.get("merkleize"), Some(&(0.2, 10.0)));
        assert_eq!(t.0.get("checkpoint"), Some(&(0.001, 10.0)));
        // A malformed value and another family's line leave no half entry behind.
        assert_eq!(t.0.get("flush"), None);
        assert_eq!(t.0.len(), 4);
    }

    #[test]
    fn means_are_delta_sum_over_delta_count_in_ms() {
        let before = StageTotals::parse(EXPOSITION);
        let after = StageTotals::parse(
            "pharos_stage_seconds_sum{stage=\"execute\"} 1.75\n\
             pharos_stage_seconds_count{stage=\"execute\"} 12\n\
             pharos_stage_seconds_sum{stage=\"commit\"} 0.5\n\
             pharos_stage_seconds_count{stage=\"commit\"} 10\n\
             pharos_stage_seconds_sum{stage=\"flush\"} 0.03\n\
             pharos_stage_seconds_count{stage=\"flush\"} 3\n\
             pharos_stage_seconds_sum{stage=\"merkleize\"} 0.1\n\
             pharos_stage_seconds_count{stage=\"merkleize\"} 1\n",
        );
        let m = after.means_since(&before);
        // (1.75 - 1.25) / 2 blocks = 250 ms.
        assert!((m.execute.expect("execute") - 250.0).abs() < 1e-9);
        // No new block: no value.
        assert_eq!(m.commit, None);
        // Not in the earlier scrape: counted from zero.
        assert!((m.flush.expect("flush") - 10.0).abs() < 1e-9);
        // Counter went backwards (restart): no value.
        assert_eq!(m.merkleize, None);
    }

    #[test]
    fn urls_are_normalized() {
        let s = MetricsScraper::new("127.0.0.1:9464").expect("url");
        assert_eq!(s.url(), "http://127.0.0.1:9464/metrics");
        let s = MetricsScraper::new("http://localhost:1/m").expect("url");
        assert_eq!(s.url(), "http://localhost:1/m");
        let s = MetricsScraper::new("http://[::1]/metrics").expect("url");
        assert_eq!(s.url(), "http://[::1]:80/metrics");
        assert!(MetricsScraper::new("https://x:1/metrics").is_err());
        assert!(MetricsScraper::new("http:///metrics").is_err());
    }
}
