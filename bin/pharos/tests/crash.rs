//! Crash safety with real processes: a `pharos node --dev` under load aborts (as under SIGKILL:
//! no destructors, no flushes) at each stage of the block pipeline — after execution, after
//! merkleization, right after the block's durable commit, after the head moved, and inside each
//! background checkpoint writer. After a restart it must keep producing blocks, and the data
//! directory must verify: the head's state root equals a full recomputation of the flat state
//! and every block re-executes to the same hash.

mod common;

use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy_primitives::{Address, Bytes, U256};
use pharos_loadgen::RpcClient;
use pharos_primitives::ChainSpec;
use pharos_workload::{TxBuilder, Wallet, raw};

const BIN: &str = env!("CARGO_BIN_EXE_pharos");

fn start(datadir: &Path, crash_at: Option<&str>) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "node",
        "--dev",
        "--http.port",
        "0",
        "--block-time",
        "20ms",
        "--datadir",
    ])
    .arg(datadir)
    .env("RUST_LOG", "warn")
    .stderr(Stdio::null());
    match crash_at {
        Some(at) => cmd.env("PHAROS_CRASH_AT", at),
        None => cmd.env_remove("PHAROS_CRASH_AT"),
    };
    common::spawn_node(&mut cmd)
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Transfers from the dev accounts, `per_sender` each, nonces from `first`.
fn load(wallets: &[Wallet], first: &[u64], per_sender: u64) -> Vec<Bytes> {
    let builder = TxBuilder::new(1337);
    let mut out = Vec::new();
    for k in 0..per_sender {
        for (w, nonce) in wallets.iter().zip(first) {
            let to = Address::with_last_byte((k % 7) as u8 + 1);
            out.push(raw(&w.sign(builder.transfer(
                nonce + k,
                to,
                U256::from(1 + k),
            ))));
        }
    }
    out
}

fn crash_and_recover(point: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let datadir = dir.path().join("node");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let wallets: Vec<Wallet> = pharos_primitives::dev_accounts()
        .expect("dev accounts")
        .iter()
        .take(8)
        .map(|(_, k)| Wallet::from_key(*k).expect("key"))
        .collect();

    // Run 1: load until the node aborts at `point` (block 20 or later).
    let (mut child, url) = start(&datadir, Some(&format!("{point}:20")));
    let client = RpcClient::new(&url).expect("client");
    let mut nonces = vec![0u64; wallets.len()];
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{point}: the node never reached the crash point"
        );
        let batch = load(&wallets, &nonces, 5);
        // Refusals and a dead node are expected around the crash.
        if rt.block_on(client.send_raw_batch(&batch)).is_ok() {
            for n in &mut nonces {
                *n += 5;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        status.signal(),
        Some(6),
        "{point}: the node aborted at the crash point ({status})"
    );

    // Run 2: restart without the hook; it recovers and keeps producing blocks.
    let (mut child, url) = start(&datadir, None);
    let client = RpcClient::new(&url).expect("client");
    let recovered = rt.block_on(client.block_number()).expect("block number");
    assert!(recovered >= 19, "{point}: head {recovered} after restart");
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(client.block_number()).expect("block number") < recovered + 5 {
        assert!(
            Instant::now() < deadline,
            "{point}: no blocks after restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Clean stop (SIGTERM).
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = wait_exit(&mut child, Duration::from_secs(60)).expect("node stops on SIGTERM");
    assert!(status.success(), "{point}: clean stop ({status})");

    // Offline: state root and every block re-executed.
    // The chain `pharos node --dev` runs: the dev genesis with the compliance system contracts.
    let spec = pharos_compliance::genesis::dev_chain_spec(&ChainSpec::dev(1337).expect("spec"))
        .expect("spec");
    let store =
        pharos_storage::Store::open(&datadir.join("chain.redb"), &spec).expect("reopen store");
    let scratch = tempfile::tempdir().expect("scratch");
    let report = pharos_node::verify::verify_chain(&store, &spec, scratch.path(), |_, _| {})
        .unwrap_or_else(|e| panic!("{point}: {e}"));
    assert!(report.head >= recovered + 5);
    assert!(report.transactions > 0);
}

#[test]
fn abort_after_execution() {
    crash_and_recover("executed");
}

#[test]
fn abort_after_merkleization() {
    crash_and_recover("merkleized");
}

#[test]
fn abort_right_after_the_durable_commit() {
    crash_and_recover("chain-committed");
}

#[test]
fn abort_after_the_head_moved() {
    crash_and_recover("persisted");
}

#[test]
fn abort_inside_the_flat_state_checkpoint() {
    crash_and_recover("flat-checkpoint");
}

#[test]
fn abort_inside_the_trie_checkpoint() {
    crash_and_recover("trie-checkpoint");
}
