//! Starts a throwaway `pharos node --dev` to measure (`pharos bench e2e --spawn`).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A dev node in a child process with its own temporary data directory.
#[derive(Debug)]
pub struct SpawnedNode {
    child: Child,
    datadir: PathBuf,
    /// Its JSON-RPC URL.
    pub url: String,
    /// Its Prometheus metrics URL, if it serves metrics.
    pub metrics_url: Option<String>,
}

impl SpawnedNode {
    /// Starts `exe node --dev` on a free port with `extra` arguments and waits for its RPC address.
    /// Unless `extra` sets `--metrics` itself, the node also serves metrics on a free port of
    /// 127.0.0.1 (`--metrics 127.0.0.1:0`; the bound address is read from its output).
    pub fn start(exe: &Path, extra: &[String]) -> std::io::Result<Self> {
        let wants_metrics = !extra
            .iter()
            .any(|a| a == "--metrics" || a.starts_with("--metrics="));
        let metrics_args: &[&str] = if wants_metrics {
            &["--metrics", "127.0.0.1:0"]
        } else {
            &[]
        };
        let datadir = std::env::temp_dir().join(format!(
            "pharos-bench-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let mut child = Command::new(exe)
            .args(["node", "--dev", "--http.port", "0", "--datadir"])
            .arg(&datadir)
            .args(metrics_args)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout from the node"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The node prints its metrics address (if any) before its RPC address.
            let mut metrics = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("metrics: ") {
                    metrics = rest.split_whitespace().next().map(str::to_string);
                } else if let Some(rest) = line.strip_prefix("JSON-RPC: http://") {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send((addr, metrics.take()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((addr, metrics_url)) => Ok(Self {
                child,
                datadir,
                url: format!("http://{addr}"),
                metrics_url,
            }),
            Err(_) => {
                let _ = child.kill();
                Err(std::io::Error::other(
                    "the node did not report its RPC address in 60 s",
                ))
            }
        }
    }
}

impl Drop for SpawnedNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.datadir);
    }
}
