//! Drives a node over JSON-RPC with pre-signed load and measures what it sustains: throughput,
//! gas per second, and latency from submission to the block that includes each transaction.
//!
//! # Design
//! A run has three phases. **Setup** funds the senders from a funder key and, for token
//! workloads, deploys the contract and gives every sender tokens; it waits for each step to be
//! mined. **Signing** builds and signs every transaction up front (libsecp256k1, all cores), so
//! the generator's own cost is off the measured path. **Load** submits the signed transactions in
//! JSON-RPC batches over several connections while a watcher polls new blocks and timestamps each
//! inclusion as the client sees it. The same code measures any Ethereum node (Pharos, anvil),
//! which is how comparisons in `docs/BENCHMARKS.md` are made.
//!
//! Nothing here knows the node's internals; it speaks only the public JSON-RPC API.
#![warn(missing_docs)]

mod rpc;
mod spawn;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use pharos_workload::{TxBuilder, Wallet, erc20, raw};
use rayon::prelude::*;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};

pub use rpc::{RpcClient, RpcClientError};
pub use spawn::SpawnedNode;

/// What went wrong in a load run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Talking to the node failed.
    #[error(transparent)]
    Rpc(#[from] RpcClientError),
    /// A setup transaction was refused or failed.
    #[error("setup failed: {0}")]
    Setup(String),
    /// The artifact could not be read.
    #[error("artifact: {0}")]
    Artifact(String),
}

/// Which transactions the load consists of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Native value transfers to fresh addresses.
    Transfer,
    /// OpenZeppelin ERC-20 `transfer` calls to fresh addresses.
    Erc20,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transfer" => Ok(Self::Transfer),
            "erc20" => Ok(Self::Erc20),
            other => Err(format!("unknown workload '{other}': use transfer or erc20")),
        }
    }
}

/// How to run the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// JSON-RPC URL of the node.
    pub rpc: String,
    /// Transaction kind.
    pub workload: Workload,
    /// Transactions to submit in the measured phase.
    pub txs: usize,
    /// Distinct senders (the load is spread round-robin).
    pub senders: usize,
    /// Key of a funded account that pays for setup.
    pub funder_key: B256,
    /// Transactions per JSON-RPC batch.
    pub batch_size: usize,
    /// Concurrent HTTP requests while submitting.
    pub connections: usize,
    /// Most submitted-but-not-included transactions before submission pauses.
    pub max_pending: usize,
    /// Give up waiting for inclusion after this long.
    pub timeout: Duration,
    /// Show a progress bar.
    pub progress: bool,
}

impl LoadConfig {
    /// Defaults for `rpc` with the first dev account as funder.
    pub fn new(rpc: impl Into<String>, workload: Workload, txs: usize, senders: usize) -> Self {
        Self {
            rpc: rpc.into(),
            workload,
            txs,
            senders: senders.max(1),
            funder_key: alloy_primitives::b256!(
                "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
            ),
            batch_size: 500,
            connections: 4,
            max_pending: 100_000,
            timeout: Duration::from_secs(300),
            progress: true,
        }
    }
}

/// One block seen during the measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct BlockSample {
    /// Block number.
    pub number: u64,
    /// Milliseconds since the first submission when the block was seen.
    pub seen_ms: u64,
    /// Transactions of this run in it.
    pub txs: usize,
    /// Gas used by the whole block.
    pub gas_used: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The node's `web3_clientVersion`.
    pub client: String,
    /// Workload.
    pub workload: Workload,
    /// Transactions submitted.
    pub submitted: usize,
    /// Submissions the node refused.
    pub refused: usize,
    /// First refusal message, if any.
    pub first_refusal: Option<String>,
    /// Transactions seen in blocks.
    pub included: usize,
    /// Included transactions whose receipt status is 0.
    pub reverted: usize,
    /// From first submission to last inclusion, in seconds.
    pub seconds: f64,
    /// Included transactions per second over that span.
    pub tps: f64,
    /// Gas of blocks holding the run's transactions, per second.
    pub gas_per_second: f64,
    /// Submission-to-inclusion latency, median, ms.
    pub latency_p50_ms: u64,
    /// Submission-to-inclusion latency, 99th percentile, ms.
    pub latency_p99_ms: u64,
    /// Blocks seen, in order.
    pub blocks: Vec<BlockSample>,
}

fn fresh_recipient(i: usize) -> Address {
    let h = keccak256((i as u64 ^ 0x5eed_0000_0000).to_be_bytes());
    Address::from_slice(&h[12..])
}

fn token_bytecode(supply: U256) -> Result<Bytes, LoadError> {
    let code =
        pharos_workload::scenario::bytecode("TestToken", pharos_workload::scenario::TEST_TOKEN)
            .map_err(|e| LoadError::Artifact(e.to_string()))?;
    let mut code = code.to_vec();
    code.extend_from_slice(&supply.to_be_bytes::<32>());
    Ok(code.into())
}

/// Prepared state for the measured phase.
struct Prepared {
    txs: Vec<(B256, Bytes)>,
}

async fn setup(client: &RpcClient, config: &LoadConfig) -> Result<Prepared, LoadError> {
    let chain_id = client.chain_id().await?;
    let funder =
        Wallet::from_key(config.funder_key).map_err(|e| LoadError::Setup(e.to_string()))?;
    let gas_price = client.gas_price().await?;
    let builder = TxBuilder {
        chain_id,
        max_fee_per_gas: gas_price.saturating_mul(4).max(10_000_000_000),
        max_priority_fee_per_gas: 1_000_000_000.min(gas_price),
    };
    let senders: Vec<Wallet> = (0..config.senders as u64)
        .into_par_iter()
        .map(Wallet::from_index)
        .collect();
    let mut funder_nonce = client.nonce(funder.address()).await?;

    // Fund the senders.
    let per_tx_cost = U256::from(builder.max_fee_per_gas) * U256::from(100_000u64);
    let txs_per_sender = config.txs.div_ceil(senders.len()) as u64 + 1;
    let allowance =
        per_tx_cost * U256::from(txs_per_sender) + U256::from(10u64).pow(U256::from(18));
    let mut funding = Vec::new();
    for s in &senders {
        let tx = funder.sign(builder.transfer(funder_nonce, s.address(), allowance));
        funder_nonce += 1;
        funding.push(raw(&tx));
    }
    client.submit_and_wait(&funding, config.batch_size).await?;

    let token = if config.workload == Workload::Erc20 {
        let supply = U256::from(10u64).pow(U256::from(30));
        let deploy = funder.sign(builder.eip1559(
            funder_nonce,
            TxKind::Create,
            U256::ZERO,
            token_bytecode(supply)?,
            3_000_000,
        ));
        let token = funder.address().create(funder_nonce);
        funder_nonce += 1;
        client.submit_and_wait(&[raw(&deploy)], 1).await?;
        let mut grants = Vec::new();
        let share = supply / U256::from(senders.len() as u64 + 1);
        for s in &senders {
            let tx = funder.sign(builder.eip1559(
                funder_nonce,
                TxKind::Call(token),
                U256::ZERO,
                erc20::transfer(s.address(), share),
                100_000,
            ));
            funder_nonce += 1;
            grants.push(raw(&tx));
        }
        client.submit_and_wait(&grants, config.batch_size).await?;
        Some(token)
    } else {
        None
    };

    // Sign the measured load.
    let mut nonces = Vec::with_capacity(senders.len());
    for s in &senders {
        nonces.push(client.nonce(s.address()).await?);
    }
    let workload = config.workload;
    let txs: Vec<(B256, Bytes)> = (0..config.txs)
        .into_par_iter()
        .map(|i| {
            let k = i % senders.len();
            let nonce = nonces[k] + (i / senders.len()) as u64;
            let to = fresh_recipient(i);
            let tx = match (workload, token) {
                (Workload::Erc20, Some(token)) => builder.eip1559(
                    nonce,
                    TxKind::Call(token),
                    U256::ZERO,
                    erc20::transfer(to, U256::from(1u64)),
                    80_000,
                ),
                _ => builder.transfer(nonce, to, U256::from(1u64)),
            };
            let signed = senders[k].sign(tx);
            (*signed.tx_hash(), raw(&signed))
        })
        .collect();
    Ok(Prepared { txs })
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) * p) / 100]
}

/// Runs the load described by `config` and reports what the node sustained.
pub async fn run(config: LoadConfig) -> Result<Report, LoadError> {
    let client = Arc::new(RpcClient::new(&config.rpc)?);
    let client_version = client.client_version().await.unwrap_or_default();
    tracing::info!(rpc = %config.rpc, client = %client_version, "setting up");
    let prepared = setup(&client, &config).await?;
    let total = prepared.txs.len();

    let submitted_at: Arc<Mutex<HashMap<B256, Instant>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(total)));
    let included = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    // How many inclusions to wait for: unknown until submission ends.
    let target = Arc::new(AtomicUsize::new(usize::MAX));
    let refusals = Arc::new(Mutex::new((0usize, None::<String>)));
    let progress = config.progress.then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} included ({per_sec}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });

    let start = Instant::now();
    let first_block = client.block_number().await?;

    // Watcher: timestamps inclusions as blocks appear.
    let watcher = {
        let client = client.clone();
        let submitted_at = submitted_at.clone();
        let included = included.clone();
        let target = target.clone();
        let progress = progress.clone();
        let timeout = config.timeout;
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            let mut blocks = Vec::new();
            let mut our_blocks = Vec::new();
            let mut next = first_block + 1;
            let mut last_inclusion = start;
            loop {
                let head = client.block_number().await?;
                while next <= head {
                    let (hashes, gas_used) = client.block_tx_hashes(next).await?;
                    let seen = Instant::now();
                    let mut ours = 0;
                    {
                        let mut map = submitted_at.lock().await;
                        for h in &hashes {
                            if let Some(t) = map.remove(h) {
                                latencies.push(seen.duration_since(t).as_millis() as u64);
                                ours += 1;
                            }
                        }
                    }
                    if ours > 0 {
                        last_inclusion = seen;
                        our_blocks.push(next);
                        included.fetch_add(ours, Ordering::Relaxed);
                        if let Some(bar) = &progress {
                            bar.inc(ours as u64);
                        }
                    }
                    blocks.push(BlockSample {
                        number: next,
                        seen_ms: seen.duration_since(start).as_millis() as u64,
                        txs: ours,
                        gas_used,
                    });
                    next += 1;
                }
                let done = included.load(Ordering::Relaxed);
                if done >= target.load(Ordering::Relaxed) {
                    break;
                }
                if start.elapsed() > timeout {
                    tracing::warn!(included = done, total, "timed out waiting for inclusion");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, RpcClientError>((latencies, blocks, our_blocks, last_inclusion))
        })
    };

    // Submitter: batches over several connections, bounded by max_pending.
    let permits = Arc::new(Semaphore::new(config.connections.max(1)));
    let mut tasks = Vec::new();
    for chunk in prepared.txs.chunks(config.batch_size.max(1)) {
        while accepted
            .load(Ordering::Relaxed)
            .saturating_sub(included.load(Ordering::Relaxed))
            > config.max_pending
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| LoadError::Setup(e.to_string()))?;
        let chunk: Vec<(B256, Bytes)> = chunk.to_vec();
        let client = client.clone();
        let submitted_at = submitted_at.clone();
        let accepted = accepted.clone();
        let refusals = refusals.clone();
        tasks.push(tokio::spawn(async move {
            {
                let now = Instant::now();
                let mut map = submitted_at.lock().await;
                for (h, _) in &chunk {
                    map.insert(*h, now);
                }
            }
            let raws: Vec<Bytes> = chunk.iter().map(|(_, r)| r.clone()).collect();
            let results = client.send_raw_batch(&raws).await;
            drop(permit);
            match results {
                Ok(results) => {
                    let mut ok = 0;
                    for ((h, _), r) in chunk.iter().zip(results) {
                        match r {
                            Ok(_) => ok += 1,
                            Err(e) => {
                                submitted_at.lock().await.remove(h);
                                let mut g = refusals.lock().await;
                                g.0 += 1;
                                g.1.get_or_insert(e);
                            }
                        }
                    }
                    accepted.fetch_add(ok, Ordering::Relaxed);
                }
                Err(e) => {
                    let mut map = submitted_at.lock().await;
                    for (h, _) in &chunk {
                        map.remove(h);
                    }
                    let mut g = refusals.lock().await;
                    g.0 += chunk.len();
                    g.1.get_or_insert(e.to_string());
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let accepted_total = accepted.load(Ordering::Relaxed);
    target.store(accepted_total, Ordering::Relaxed);
    let (refused, first_refusal) = refusals.lock().await.clone();
    if let Some(bar) = &progress {
        bar.set_length(accepted_total as u64);
    }
    let (mut latencies, blocks, our_blocks, last_inclusion) = watcher
        .await
        .map_err(|e| LoadError::Setup(e.to_string()))??;
    if let Some(bar) = &progress {
        bar.finish();
    }
    let mut reverted = 0;
    for n in &our_blocks {
        reverted += client.failed_receipts(*n).await?;
    }
    latencies.sort_unstable();
    let seconds = last_inclusion.duration_since(start).as_secs_f64().max(1e-9);
    let included_total = latencies.len();
    let gas: u64 = blocks
        .iter()
        .filter(|b| b.txs > 0)
        .map(|b| b.gas_used)
        .sum();
    Ok(Report {
        client: client_version,
        workload: config.workload,
        submitted: total,
        refused,
        first_refusal,
        included: included_total,
        reverted,
        seconds,
        tps: included_total as f64 / seconds,
        gas_per_second: gas as f64 / seconds,
        latency_p50_ms: percentile(&latencies, 50),
        latency_p99_ms: percentile(&latencies, 99),
        blocks,
    })
}
