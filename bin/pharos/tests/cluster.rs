//! A four-validator cluster of real processes on 127.0.0.1 (`pharos testnet init`, `pharos node
//! --config`) under a steady load from `pharos bench e2e`: one validator is killed with SIGKILL
//! mid-load, every submitted transaction is still included (those of the dead validator's
//! lane through a fallback lane) and the chain keeps finalizing; restarted on its data
//! directory, the validator catches up and has the same block hashes and state roots.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pharos_loadgen::RpcClient;

const BIN: &str = env!("CARGO_BIN_EXE_pharos");

/// `count` consecutive free ports on 127.0.0.1.
fn free_ports(count: u16) -> u16 {
    loop {
        let base = pharos_consensus::testing::free_port();
        if base.checked_add(count).is_some()
            && (1..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

fn start(dir: &Path, i: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("node-{i}.log"))).expect("log file");
    Command::new(BIN)
        .arg("node")
        .arg("--config")
        .arg(dir.join(format!("node-{i}.toml")))
        .args(["--exec.threads", "1"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start a validator")
}

async fn height(url: &str) -> Option<u64> {
    RpcClient::new(url).ok()?.block_number().await.ok()
}

/// Whether `ok` held before `deadline`.
async fn wait_for(deadline: Duration, mut ok: impl AsyncFnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    while !ok().await {
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    true
}

/// The end of every node's log, for a failure message.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for i in 0..4 {
        let text = std::fs::read_to_string(dir.join(format!("node-{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!(
            "--- node {i}\n{}\n",
            lines[lines.len().saturating_sub(15)..].join("\n")
        );
    }
    out
}

struct Cluster(Vec<Option<Child>>);

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.0.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_validator_does_not_stop_the_chain_and_catches_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    // One block of eight free ports: p2p on the first four, JSON-RPC on the next.
    let p2p = free_ports(8);
    let rpc = p2p + 4;
    let init = Command::new(BIN)
        .args(["testnet", "init", "--validators", "4", "--dir"])
        .arg(&dir)
        .args(["--base-port", &p2p.to_string()])
        .args(["--rpc-base-port", &rpc.to_string()])
        .output()
        .expect("testnet init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let urls: Vec<String> = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", rpc + i))
        .collect();
    let mut cluster = Cluster((0..4).map(|i| Some(start(&dir, i))).collect());
    assert!(
        wait_for(Duration::from_secs(120), async || {
            let mut all = true;
            for url in &urls {
                all &= height(url).await.is_some_and(|h| h >= 3);
            }
            all
        },)
        .await,
        "timed out waiting: the cluster finalizes blocks\n{}",
        logs(&dir)
    );

    // Steady load over three nodes; validator 3 is killed five seconds in.
    let load = Command::new(BIN)
        .args(["bench", "e2e", "--workload", "transfer", "--quiet"])
        .args([
            "--rpc",
            &urls[0],
            "--submit-rpc",
            &urls[1],
            "--submit-rpc",
            &urls[2],
        ])
        .args([
            "--rate",
            "300",
            "--batch",
            "20",
            "--txs",
            "4500",
            "--senders",
            "120",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the load");
    tokio::time::sleep(Duration::from_secs(5)).await;
    if let Some(mut victim) = cluster.0[3].take() {
        victim.kill().expect("SIGKILL validator 3");
        let _ = victim.wait();
    }
    let out = tokio::task::spawn_blocking(move || load.wait_with_output())
        .await
        .expect("join")
        .expect("load output");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "load failed: {report}");
    assert!(
        report.contains("4500 txs included of 4500 submitted"),
        "every transaction is included with a validator dead: {report}"
    );
    let before = height(&urls[0]).await.expect("node 0 answers");
    assert!(
        wait_for(Duration::from_secs(60), async || height(&urls[0])
            .await
            .is_some_and(|h| h >= before + 5),)
        .await,
        "timed out waiting: three validators keep finalizing\n{}",
        logs(&dir)
    );

    // Restarted, it catches up and agrees on every block.
    cluster.0[3] = Some(start(&dir, 3));
    let target = height(&urls[0]).await.expect("node 0 answers");
    assert!(
        wait_for(Duration::from_secs(120), async || height(&urls[3])
            .await
            .is_some_and(|h| h >= target),)
        .await,
        "timed out waiting: the restarted validator catches up\n{}",
        logs(&dir)
    );
    let (a, b) = (
        RpcClient::new(&urls[0]).expect("client"),
        RpcClient::new(&urls[3]).expect("client"),
    );
    for n in [1, target / 2, target] {
        let theirs = a.block_roots(n).await.expect("node 0 block");
        let mine = b.block_roots(n).await.expect("node 3 block");
        assert!(
            theirs.is_some() && theirs == mine,
            "block {n}: {theirs:?} vs {mine:?}"
        );
    }
}
