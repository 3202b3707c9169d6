//! Drives a node over JSON-RPC with pre-signed load and measures what it sustains: throughput,
//! gas per second, and latency from submission to the block that includes each transaction.
//!
//! # Design
//! A run has three phases. **Setup** funds the senders from a funder key and, for token
//! workloads, deploys the contracts and gives every sender tokens (for `uniswap`: the real
//! Uniswap V2 factory, pairs with liquidity, and a swap helper every sender approves); it waits
//! for each step to be mined. **Signing** builds and signs every transaction up front (libsecp256k1, all cores), so
//! the generator's own cost is off the measured path. **Load** submits the signed transactions in
//! JSON-RPC batches over several connections while a watcher polls new blocks and timestamps each
//! inclusion as the client sees it. The same code measures any Ethereum node (Pharos, anvil),
//! which is how comparisons in `docs/BENCHMARKS.md` are made. If the node serves Prometheus
//! metrics, the watcher also scrapes them once per observed block and records the mean time of
//! each pipeline stage; [`chart::svg`] draws a run as an SVG chart.
//!
//! Nothing here knows the node's internals; it speaks only the public JSON-RPC API.
#![warn(missing_docs)]

pub mod chart;
mod metrics;
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
use pharos_workload::{
    TxBuilder, Wallet, erc20, raw,
    scenario::{self, Pair, UniswapArtifacts},
};
use rayon::prelude::*;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};

pub use metrics::{MetricsError, MetricsScraper, STAGES, StageTimes, StageTotals};
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
    /// The metrics endpoint could not be read.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The configuration cannot be run.
    #[error("config: {0}")]
    Config(String),
}

/// Which transactions the load consists of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Native value transfers to fresh addresses.
    Transfer,
    /// OpenZeppelin ERC-20 `transfer` calls to fresh addresses.
    Erc20,
    /// Swaps on Uniswap V2 pairs (the real factory and pair bytecode), each sender on its own
    /// pair, through a helper that pays the pair and calls `swap` in one transaction.
    Uniswap,
}

impl Workload {
    /// Gas limit of one measured transaction: what it needs at most, with a margin.
    fn gas_limit(self) -> u64 {
        match self {
            Self::Transfer => 21_000,
            Self::Erc20 => 80_000,
            // A swap through the helper uses ~83k gas, ~128k at most (the pair's first swap,
            // which sets its price accumulators). Nodes that reserve each transaction's limit in
            // the block (Pharos does) fit block_gas_limit / 160k swaps per block.
            Self::Uniswap => 160_000,
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Transfer => "transfer",
            Self::Erc20 => "erc20",
            Self::Uniswap => "uniswap",
        })
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transfer" => Ok(Self::Transfer),
            "erc20" => Ok(Self::Erc20),
            "uniswap" => Ok(Self::Uniswap),
            other => Err(format!(
                "unknown workload '{other}': use transfer, erc20 or uniswap"
            )),
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
    /// Uniswap V2 pairs to create and spread the senders over (`uniswap` workload).
    pub pairs: usize,
    /// Folder of the `@uniswap/v2-core` build artifacts [default:
    /// [`UniswapArtifacts::default_dir`]].
    pub uniswap_build: Option<std::path::PathBuf>,
    /// Prometheus metrics URL of the node (`http://HOST:PORT/metrics`), scraped once per
    /// observed block for the pipeline stage times.
    pub metrics: Option<String>,
    /// Steady load: submit at most this many transactions per second (batch after batch, on
    /// schedule) instead of as fast as the node takes them.
    pub rate: Option<f64>,
    /// More JSON-RPC URLs (other nodes of the same network) to submit to, batch by batch in
    /// turn with `rpc`; blocks are watched on `rpc`.
    pub submit_to: Vec<String>,
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
            pairs: 64,
            uniswap_build: None,
            metrics: None,
            rate: None,
            submit_to: Vec::new(),
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
    /// Estimated time the node took to produce this block, ms: the time since the previous poll
    /// that saw new blocks, shared evenly by the blocks seen in this poll (so polls that find
    /// several blocks at once do not make one look instantaneous). The intervals add up to
    /// `seen_ms` of the last block.
    pub interval_ms: f64,
    /// With metrics: mean time per block of each pipeline stage over the blocks the node
    /// finished since the watcher's previous scrape (taken right after this block was seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_ms: Option<StageTimes>,
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

/// What the measured transactions call.
enum Target {
    /// Native transfers.
    Transfer,
    /// The ERC-20 token.
    Erc20(Address),
    /// The swap helper and the pairs; sender `k` swaps on `pairs[k % pairs.len()]`.
    Uniswap { helper: Address, pairs: Vec<Pair> },
}

/// Signs the funder's setup transactions with consecutive nonces.
struct Funder<'a> {
    wallet: Wallet,
    builder: &'a TxBuilder,
    nonce: u64,
}

impl Funder<'_> {
    fn sign(&mut self, to: TxKind, input: Bytes, gas: u64) -> Bytes {
        let tx = self
            .wallet
            .sign(self.builder.eip1559(self.nonce, to, U256::ZERO, input, gas));
        self.nonce += 1;
        raw(&tx)
    }

    /// Signs a deployment of `code`; returns the contract's address and the transaction.
    fn deploy(&mut self, code: Bytes, gas: u64) -> (Address, Bytes) {
        let address = self.wallet.address().create(self.nonce);
        (address, self.sign(TxKind::Create, code, gas))
    }
}

/// Token index pairs for `pairs` pools over the fewest tokens that give that many distinct
/// pairs: `(tokens, pairs)`. Pools are taken by index distance (`(0,1), (1,2), …, (0,2), …`),
/// so consecutive pools share few tokens.
fn pair_plan(pairs: usize) -> (usize, Vec<(usize, usize)>) {
    let mut n = 2;
    while n * (n - 1) / 2 < pairs {
        n += 1;
    }
    let plan = (1..n)
        .flat_map(|d| (0..n - d).map(move |a| (a, a + d)))
        .take(pairs)
        .collect();
    (n, plan)
}

/// Deploys `n` TestTokens, the swap helper, the Uniswap V2 factory and `config.pairs` pairs with
/// liquidity, gives every sender both tokens of its pair and has it approve the helper for them.
async fn setup_uniswap(
    client: &RpcClient,
    config: &LoadConfig,
    funder: &mut Funder<'_>,
    senders: &[Wallet],
) -> Result<Target, LoadError> {
    if config.pairs == 0 {
        return Err(LoadError::Config(
            "the uniswap workload needs --pairs > 0".into(),
        ));
    }
    let dir = config
        .uniswap_build
        .clone()
        .unwrap_or_else(UniswapArtifacts::default_dir);
    let artifacts = UniswapArtifacts::load(&dir)
        .ok_or_else(|| {
            LoadError::Artifact(format!(
                "no UniswapV2Factory.json in {} (run `npm ci` in tests/e2e, or point \
                 PHAROS_UNISWAP_BUILD at the @uniswap/v2-core build folder)",
                dir.display()
            ))
        })?
        .map_err(|e| LoadError::Artifact(e.to_string()))?;
    let helper_code = scenario::bytecode("SwapHelper", scenario::SWAP_HELPER)
        .map_err(|e| LoadError::Artifact(e.to_string()))?;
    let (n_tokens, plan) = pair_plan(config.pairs);
    let supply = U256::from(10u64).pow(U256::from(30));

    // One nonce-ordered run of funder transactions: contracts, pairs, liquidity, grants.
    let mut txs = Vec::new();
    let mut tokens = Vec::with_capacity(n_tokens);
    for _ in 0..n_tokens {
        let (token, tx) = funder.deploy(token_bytecode(supply)?, 3_000_000);
        tokens.push(token);
        txs.push(tx);
    }
    let (helper, tx) = funder.deploy(helper_code, 3_000_000);
    txs.push(tx);
    let (factory, tx) = funder.deploy(artifacts.factory_deploy_code(), 6_000_000);
    txs.push(tx);
    let mut pairs = Vec::with_capacity(plan.len());
    for (a, b) in plan {
        let (a, b) = (tokens[a], tokens[b]);
        txs.push(funder.sign(
            TxKind::Call(factory),
            scenario::create_pair(a, b),
            5_000_000,
        ));
        pairs.push(Pair {
            pair: scenario::pair_address(factory, a, b),
            tokens: [a, b],
        });
    }
    let funder_address = funder.wallet.address();
    for p in &pairs {
        for t in p.tokens {
            let grant = erc20::transfer(p.pair, U256::from(scenario::POOL_TOKENS));
            txs.push(funder.sign(TxKind::Call(t), grant, 100_000));
        }
        txs.push(funder.sign(
            TxKind::Call(p.pair),
            scenario::mint(funder_address),
            500_000,
        ));
    }
    for (k, s) in senders.iter().enumerate() {
        for t in pairs[k % pairs.len()].tokens {
            let grant = erc20::transfer(s.address(), U256::from(scenario::WALLET_TOKENS));
            txs.push(funder.sign(TxKind::Call(t), grant, 100_000));
        }
    }
    tracing::info!(
        tokens = n_tokens,
        pairs = pairs.len(),
        txs = txs.len(),
        "deploying Uniswap V2"
    );
    client.submit_and_wait(&txs, config.batch_size).await?;

    // Every sender lets the helper spend both tokens of its pair.
    let mut approvals = Vec::with_capacity(senders.len() * 2);
    for (k, s) in senders.iter().enumerate() {
        let mut nonce = client.nonce(s.address()).await?;
        for t in pairs[k % pairs.len()].tokens {
            let tx = s.sign(funder.builder.eip1559(
                nonce,
                TxKind::Call(t),
                U256::ZERO,
                erc20::approve(helper, U256::MAX),
                100_000,
            ));
            nonce += 1;
            approvals.push(raw(&tx));
        }
    }
    client
        .submit_and_wait(&approvals, config.batch_size)
        .await?;
    Ok(Target::Uniswap { helper, pairs })
}

async fn setup(client: &RpcClient, config: &LoadConfig) -> Result<Prepared, LoadError> {
    let chain_id = client.chain_id().await?;
    let funder_wallet =
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
    let nonce = client.nonce(funder_wallet.address()).await?;
    let mut funder = Funder {
        wallet: funder_wallet,
        builder: &builder,
        nonce,
    };
    let gas_limit = config.workload.gas_limit();

    // Fund the senders.
    let per_tx_cost = U256::from(builder.max_fee_per_gas) * U256::from(gas_limit.max(100_000));
    let txs_per_sender = config.txs.div_ceil(senders.len()) as u64 + 1;
    let allowance =
        per_tx_cost * U256::from(txs_per_sender) + U256::from(10u64).pow(U256::from(18));
    let mut funding = Vec::new();
    for s in &senders {
        let tx = funder
            .wallet
            .sign(builder.transfer(funder.nonce, s.address(), allowance));
        funder.nonce += 1;
        funding.push(raw(&tx));
    }
    client.submit_and_wait(&funding, config.batch_size).await?;

    let target = match config.workload {
        Workload::Transfer => Target::Transfer,
        Workload::Erc20 => {
            let supply = U256::from(10u64).pow(U256::from(30));
            let (token, deploy) = funder.deploy(token_bytecode(supply)?, 3_000_000);
            client.submit_and_wait(&[deploy], 1).await?;
            let share = supply / U256::from(senders.len() as u64 + 1);
            let grants: Vec<Bytes> = senders
                .iter()
                .map(|s| {
                    funder.sign(
                        TxKind::Call(token),
                        erc20::transfer(s.address(), share),
                        100_000,
                    )
                })
                .collect();
            client.submit_and_wait(&grants, config.batch_size).await?;
            Target::Erc20(token)
        }
        Workload::Uniswap => setup_uniswap(client, config, &mut funder, &senders).await?,
    };

    // Sign the measured load.
    let mut nonces = Vec::with_capacity(senders.len());
    for s in &senders {
        nonces.push(client.nonce(s.address()).await?);
    }
    let txs: Vec<(B256, Bytes)> = (0..config.txs)
        .into_par_iter()
        .map(|i| {
            let k = i % senders.len();
            let round = i / senders.len();
            let nonce = nonces[k] + round as u64;
            let tx = match &target {
                Target::Transfer => builder.transfer(nonce, fresh_recipient(i), U256::from(1u64)),
                Target::Erc20(token) => builder.eip1559(
                    nonce,
                    TxKind::Call(*token),
                    U256::ZERO,
                    erc20::transfer(fresh_recipient(i), U256::from(1u64)),
                    gas_limit,
                ),
                Target::Uniswap { helper, pairs } => {
                    let p = pairs[k % pairs.len()];
                    // Alternate directions, per sender and per round, so reserves stay balanced.
                    let token_in = p.tokens[(k + round) % 2];
                    let amount_in = U256::from(1_000_000_000_000_000u64 + i as u64);
                    builder.eip1559(
                        nonce,
                        TxKind::Call(*helper),
                        U256::ZERO,
                        scenario::swap_exact_in(p.pair, token_in, amount_in, U256::ZERO),
                        gas_limit,
                    )
                }
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
    let scraper = config
        .metrics
        .as_deref()
        .map(MetricsScraper::new)
        .transpose()?;
    if let Some(s) = &scraper {
        // Fail before setup if the endpoint cannot be read.
        s.stage_totals().await?;
    }
    let prepared = setup(&client, &config).await?;
    let total = prepared.txs.len();
    // Baseline for the first per-block stage means; an unreachable endpoint fails the run here.
    let metrics = match scraper {
        Some(s) => {
            let baseline = s.stage_totals().await?;
            tracing::info!(url = s.url(), "scraping stage times");
            Some((s, baseline))
        }
        None => None,
    };

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
        let mut metrics = metrics;
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            let mut blocks: Vec<BlockSample> = Vec::new();
            let mut our_blocks = Vec::new();
            let mut next = first_block + 1;
            let mut last_inclusion = start;
            let mut scrape_failed = false;
            let mut last_poll_ms = 0;
            loop {
                let head = client.block_number().await?;
                let seen_before = blocks.len();
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
                        interval_ms: 0.0,
                        stage_ms: None,
                    });
                    next += 1;
                }
                if let Some(last) = blocks.last().map(|b| b.seen_ms)
                    && blocks.len() > seen_before
                {
                    let new = &mut blocks[seen_before..];
                    let interval = last.saturating_sub(last_poll_ms) as f64 / new.len() as f64;
                    for b in new {
                        b.interval_ms = interval;
                    }
                    last_poll_ms = last;
                }
                // One scrape per poll that saw new blocks (after their timestamps are taken).
                if let Some((scraper, previous)) = metrics.as_mut()
                    && blocks.len() > seen_before
                {
                    match scraper.stage_totals().await {
                        Ok(totals) => {
                            let means = totals.means_since(previous);
                            *previous = totals;
                            for b in &mut blocks[seen_before..] {
                                b.stage_ms = Some(means);
                            }
                        }
                        Err(e) if !scrape_failed => {
                            scrape_failed = true;
                            tracing::warn!(error = %e, "metrics scrape failed; stage times have gaps");
                        }
                        Err(_) => {}
                    }
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

    // Submitter: batches over several connections, bounded by max_pending, on schedule with a
    // rate, spread over the nodes given.
    let mut submitters = vec![client.clone()];
    for url in &config.submit_to {
        submitters.push(Arc::new(RpcClient::new(url)?));
    }
    let permits = Arc::new(Semaphore::new(config.connections.max(1) * submitters.len()));
    let mut tasks = Vec::new();
    let batch = config.batch_size.max(1);
    for (k, chunk) in prepared.txs.chunks(batch).enumerate() {
        if let Some(rate) = config.rate.filter(|r| *r > 0.0) {
            let due = start + Duration::from_secs_f64((k * batch) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
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
        let client = submitters[k % submitters.len()].clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_plan_gives_distinct_pairs_over_few_tokens() {
        for pairs in [1, 2, 3, 7, 64, 66, 67, 500] {
            let (n, plan) = pair_plan(pairs);
            assert_eq!(plan.len(), pairs);
            assert!(n * (n - 1) / 2 >= pairs && (n - 1) * (n - 2) / 2 < pairs.max(2));
            let mut seen = std::collections::HashSet::new();
            for &(a, b) in &plan {
                assert!(a < b && b < n, "{a},{b} of {n}");
                assert!(seen.insert((a, b)), "duplicate pair {a},{b}");
            }
        }
        assert_eq!(pair_plan(64).0, 12);
    }

    #[test]
    fn workloads_parse_and_print() {
        for w in ["transfer", "erc20", "uniswap"] {
            let parsed: Workload = w.parse().expect("known workload");
            assert_eq!(parsed.to_string(), w);
        }
        let err = "swap".parse::<Workload>().expect_err("unknown workload");
        assert!(err.contains("transfer, erc20 or uniswap"), "{err}");
    }
}
