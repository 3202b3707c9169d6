//! `pharos`: the command line. Parses flags and wires crates together; holds no logic of its own.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use alloy_primitives::Address;
use clap::{Args, Parser, Subcommand};

mod identity;
mod testnet;
use pharos_node::NodeConfig;
use pharos_primitives::{ChainSpec, chain::DEV_CHAIN_ID};

/// mimalloc: the node allocates per transaction on every core; glibc's allocator contends.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "pharos",
    version,
    about = "Pharos: a parallel, EVM-compatible Layer-1 for tokenized real-world assets",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node.
    Node(NodeArgs),
    /// Measure a node.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inspect a data directory.
    #[command(subcommand)]
    Db(DbCommand),
    /// Validator keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Local networks of validators.
    #[command(subcommand)]
    Testnet(TestnetCommand),
    /// zkDID credentials: issuer keys, holder secrets, issuing, proving, submitting proofs to
    /// the chain's verifier.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Generate a validator's keys (an ed25519 identity and a BLS12-381 vote key) into a new
    /// file (mode 0600, never overwritten) and print the entry the genesis lists for it.
    Generate(KeyArgs),
    /// Print the genesis entry of an existing key file.
    Show(KeyArgs),
}

#[derive(Args, Debug)]
struct KeyArgs {
    /// The key file.
    #[arg(long)]
    key: PathBuf,
    /// Stake bonded by the validator, in whole tokens.
    #[arg(long, default_value_t = 1_000_000)]
    stake: u64,
    /// The validator's p2p endpoint.
    #[arg(long, default_value = "127.0.0.1:30300")]
    address: String,
}

#[derive(Subcommand, Debug)]
enum TestnetCommand {
    /// Everything a local cluster needs in one directory: keys for N validators, the list they
    /// share (`validators.json`), the genesis, and one config file per node (`node-<i>.toml`,
    /// for `pharos node --config`), with p2p and JSON-RPC ports on 127.0.0.1.
    Init(testnet::InitArgs),
    /// Starts a local cluster of N validators on 127.0.0.1 (writing its directory as `init`
    /// does, or reusing one with --reuse), prints every node's JSON-RPC address, and runs
    /// until Ctrl-C.
    Run(testnet::RunArgs),
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Check a stopped node's data directory: the head's state root against a full
    /// recomputation of the flat state, and every block re-executed from genesis with the
    /// sequential executor (same state root, receipts root and gas).
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    chain: ChainArgs,
}

/// Which chain and where its data lives: shared by `node` and `db`.
#[derive(Args, Debug)]
struct ChainArgs {
    /// The single-node development chain: the ten standard test accounts ("test test ... junk")
    /// are funded; a `node` unlocks them for eth_sendTransaction and produces blocks locally.
    #[arg(long)]
    dev: bool,

    /// Directory for the chain database [default: <user data dir>/pharos/<chain>]
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,

    /// Genesis file in geth's JSON format (required without --dev).
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,

    /// Chain id of the dev chain (a genesis file carries its own).
    #[arg(long, value_name = "N")]
    chain_id: Option<u64>,

    /// State commitment of the dev chain: mpt (Ethereum's Merkle-Patricia trie, default) or
    /// nomt (binary SHA-256 tree). A genesis file names its own (config.pharos.stateCommitment).
    #[arg(long, value_name = "KIND")]
    state_commitment: Option<pharos_primitives::StateCommitment>,
}

impl ChainArgs {
    /// The chain spec and the data directory these arguments name.
    fn resolve(&self) -> Result<(ChainSpec, PathBuf), String> {
        let spec = chain_spec(
            self.genesis.as_deref(),
            self.dev,
            self.chain_id,
            self.state_commitment,
        )?;
        let datadir = self
            .datadir
            .clone()
            .unwrap_or_else(|| default_datadir(&spec, self.dev));
        Ok((spec, datadir))
    }
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// End to end over JSON-RPC: pre-sign a load, submit it, report sustained TPS and latency.
    /// Works against any Ethereum node (for example anvil) with --rpc.
    E2e(E2eArgs),
    /// Block execution: the sequential and the parallel executor on the same block.
    Exec(ExecArgs),
    /// State at scale: commit time per block, disk bytes per account and peak memory with
    /// millions of accounts in the store.
    State(StateArgs),
}

#[derive(Args, Debug)]
struct StateArgs {
    /// Funded accounts to load (each also holds the benchmark's ERC-20 token).
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u64,

    /// Measured blocks.
    #[arg(long, default_value_t = 10)]
    blocks: u64,

    /// ERC-20 transfers per measured block.
    #[arg(long, default_value_t = 15_000)]
    txs: usize,

    /// Accounts per bulk-load block.
    #[arg(long, default_value_t = 100_000)]
    load_batch: u64,

    /// Directory for the benchmark's store (emptied first).
    #[arg(long, default_value = "target/bench-state")]
    datadir: PathBuf,

    /// Trie checkpoint interval, in blocks.
    #[arg(long, default_value_t = 16)]
    checkpoint_interval: u64,

    /// Trie nodes at least this deep are dropped from memory after a checkpoint.
    #[arg(long, default_value_t = 6)]
    keep_depth: usize,

    /// Flat-state checkpoint interval, in blocks (pending blocks are merged into one write).
    #[arg(long, default_value_t = 8)]
    flat_interval: u64,

    /// State commitment: mpt or nomt.
    #[arg(long, default_value = "mpt")]
    commitment: pharos_primitives::StateCommitment,

    /// NOMT hash-table buckets (4 KiB pages; about (accounts + slots) / 20 are used).
    #[arg(long, default_value_t = 1 << 21)]
    nomt_buckets: u32,

    /// NOMT page and leaf cache, MiB each.
    #[arg(long, default_value_t = 256)]
    nomt_cache_mib: usize,

    /// Write the measurements as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Workloads: transfers, erc20, erc20-regulated, uniswap, erc20-hot<P>, uniswap-hot<P>, chain
    /// (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "transfers,erc20,uniswap,erc20-hot10,erc20-hot50,uniswap-hot10,uniswap-hot50,chain"
    )]
    workload: Vec<pharos_benches::Workload>,

    /// Transactions per block.
    #[arg(long, default_value_t = 10_000)]
    txs: usize,

    /// Thread counts for the parallel executor (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,

    /// Runs per executor; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,

    /// Latency added to every storage miss, e.g. 50us (a cold database read).
    #[arg(long, value_parser = humantime::parse_duration)]
    latency: Option<Duration>,

    /// Parallel strategy: auto, groups or block-stm.
    #[arg(long, default_value = "auto")]
    strategy: String,

    /// Write the measurements as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct E2eArgs {
    /// JSON-RPC URL of the node to measure.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "spawn",
        required_unless_present = "spawn"
    )]
    rpc: Option<String>,

    /// Start a fresh `pharos node --dev` (this binary) in a temporary directory and measure it.
    #[arg(long)]
    spawn: bool,

    /// Extra arguments for the spawned node, e.g. --node-arg=--block-time=1s.
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    node_args: Vec<String>,

    /// Load: transfer (native value), erc20 (OpenZeppelin ERC-20 transfer) or uniswap (swaps on
    /// Uniswap V2 pairs; needs `npm ci` in tests/e2e or PHAROS_UNISWAP_BUILD).
    #[arg(long, default_value = "erc20")]
    workload: pharos_loadgen::Workload,

    /// Uniswap V2 pairs for the uniswap workload (senders are spread over them).
    #[arg(long, default_value_t = 64)]
    pairs: usize,

    /// Transactions in the measured phase.
    #[arg(long, default_value_t = 20_000)]
    txs: usize,

    /// Distinct senders.
    #[arg(long, default_value_t = 1_000)]
    senders: usize,

    /// Transactions per JSON-RPC batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,

    /// Concurrent HTTP requests while submitting.
    #[arg(long, default_value_t = 4)]
    connections: usize,

    /// Private key of the funded account that pays for setup [default: first dev account].
    #[arg(long, value_name = "HEX")]
    funder_key: Option<alloy_primitives::B256>,

    /// Write the full report (with per-block samples) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Write an SVG chart of the run (tx/s per block; stage times with metrics) to this file.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,

    /// Steady load: submit this many transactions per second (use a small --batch for an
    /// even flow) [default: as fast as the node takes them].
    #[arg(long, value_name = "TX/S")]
    rate: Option<f64>,

    /// Another node of the same network to submit to (repeatable): batches go to --rpc and
    /// these in turn; blocks are watched on --rpc.
    #[arg(long = "submit-rpc", value_name = "URL")]
    submit_rpc: Vec<String>,

    /// Prometheus metrics of the node (e.g. http://127.0.0.1:9464/metrics), scraped once per
    /// block for per-stage times [with --spawn: the spawned node's, automatically].
    #[arg(long, value_name = "URL")]
    metrics: Option<String>,

    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// Read settings from a node config file (`pharos testnet init` writes one per node);
    /// flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    chain: ChainArgs,

    /// Address the JSON-RPC server (HTTP and WebSocket on one port) listens on.
    #[arg(long = "http.addr", value_name = "IP", default_value = "127.0.0.1")]
    http_addr: IpAddr,

    /// Port of the JSON-RPC server; 0 picks a free port (printed at start).
    #[arg(long = "http.port", value_name = "PORT", default_value_t = 8545)]
    http_port: u16,

    /// Interval between blocks, e.g. 500ms, 1s, 2s.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration)]
    block_time: Duration,

    /// Threads for block execution [default: available cores].
    #[arg(long = "exec.threads", value_name = "N")]
    exec_threads: Option<usize>,

    /// Serve Prometheus metrics (per-stage block timings, throughput, pool) at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// Receiver of priority fees [default in dev: the treasury account].
    #[arg(long, value_name = "ADDRESS")]
    coinbase: Option<Address>,

    /// Most calls in one JSON-RPC batch.
    #[arg(long = "rpc.max-batch", value_name = "N", default_value_t = 10_000)]
    rpc_max_batch: u32,

    /// Largest JSON-RPC request body, in bytes.
    #[arg(long = "rpc.max-body", value_name = "BYTES", default_value_t = 10 * 1024 * 1024)]
    rpc_max_body: u32,

    /// Most blocks one eth_getLogs (or log filter poll) may scan.
    #[arg(
        long = "rpc.max-logs-range",
        value_name = "BLOCKS",
        default_value_t = 10_000
    )]
    rpc_max_logs_range: u64,

    /// Gas cap of eth_call and eth_estimateGas.
    #[arg(long = "rpc.gas-cap", value_name = "GAS", default_value_t = 50_000_000)]
    rpc_gas_cap: u64,

    /// Most transactions in the pool.
    #[arg(long = "txpool.max", value_name = "N", default_value_t = 1_000_000)]
    txpool_max: usize,

    /// Most pooled transactions per sender.
    #[arg(
        long = "txpool.max-per-sender",
        value_name = "N",
        default_value_t = 16_384
    )]
    txpool_max_per_sender: usize,
    /// Run as a validator of a network with this key file (`pharos keys generate`, `pharos
    /// testnet init`): blocks come from consensus instead of --block-time. Needs --validators.
    #[arg(long = "validator-key", value_name = "FILE", requires = "validators")]
    validator_key: Option<PathBuf>,
    /// The network's validators (`validators.json` from `pharos testnet init`).
    #[arg(long, value_name = "FILE", requires = "validator_key")]
    validators: Option<PathBuf>,
    /// How long a consensus leader has to propose before its view is given up (more than
    /// --block-time: a leader waits for its parent to be a block time old).
    #[arg(long = "consensus.leader-timeout", value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    leader_timeout: Duration,
}

/// Fills `args` from its `--config` file, except where the command line set a value.
fn apply_config_file(
    args: &mut NodeArgs,
    matches: Option<&clap::ArgMatches>,
) -> Result<(), String> {
    let Some(path) = args.config.clone() else {
        return Ok(());
    };
    let file = testnet::NodeFile::load(&path)?;
    let given = |id: &str| {
        matches.is_some_and(|m| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
    };
    let duration = |text: &str| {
        humantime::parse_duration(text).map_err(|e| format!("{}: {text:?}: {e}", path.display()))
    };
    if !given("datadir") && file.datadir.is_some() {
        args.chain.datadir = file.datadir;
    }
    if !given("genesis") && file.genesis.is_some() {
        args.chain.genesis = file.genesis;
    }
    if !given("validator_key") && file.validator_key.is_some() {
        args.validator_key = file.validator_key;
    }
    if !given("validators") && file.validators.is_some() {
        args.validators = file.validators;
    }
    if !given("http_addr")
        && let Some(a) = file.http_addr
    {
        args.http_addr = a;
    }
    if !given("http_port")
        && let Some(p) = file.http_port
    {
        args.http_port = p;
    }
    if !given("block_time")
        && let Some(t) = &file.block_time
    {
        args.block_time = duration(t)?;
    }
    if !given("leader_timeout")
        && let Some(t) = &file.leader_timeout
    {
        args.leader_timeout = duration(t)?;
    }
    if !given("metrics") && file.metrics.is_some() {
        args.metrics = file.metrics;
    }
    if !given("exec_threads") && file.exec_threads.is_some() {
        args.exec_threads = file.exec_threads;
    }
    if args.validator_key.is_some() != args.validators.is_some() {
        return Err("a validator needs both a validator key and the validator list".into());
    }
    Ok(())
}

fn default_datadir(spec: &ChainSpec, dev: bool) -> PathBuf {
    let base = dirs::data_dir()
        .or_else(dirs::home_dir)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = if dev {
        format!("dev-{}", spec.chain_id())
    } else {
        format!("chain-{}", spec.chain_id())
    };
    base.join("pharos").join(name)
}

fn run_db_verify(args: VerifyArgs) -> Result<(), String> {
    let (spec, datadir) = args.chain.resolve()?;
    let path = datadir.join("chain.redb");
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let store = pharos_storage::Store::open(&path, &spec).map_err(|e| e.to_string())?;
    let scratch = tempfile::tempdir().map_err(|e| format!("scratch directory: {e}"))?;
    let started = std::time::Instant::now();
    let report = pharos_node::verify::verify_chain(&store, &spec, scratch.path(), |n, head| {
        if n % 1000 == 0 || n == head {
            eprintln!("re-executed block {n} of {head}");
        }
    })?;
    println!(
        "ok: head {} ({} transactions re-executed) matches its state root and every block hash, in {:.1} s",
        report.head,
        report.transactions,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn chain_spec(
    genesis: Option<&std::path::Path>,
    dev: bool,
    chain_id: Option<u64>,
    commitment: Option<pharos_primitives::StateCommitment>,
) -> Result<ChainSpec, String> {
    match (genesis, dev) {
        (Some(path), _) => {
            let json = std::fs::read_to_string(path)
                .map_err(|e| format!("reading genesis file {}: {e}", path.display()))?;
            let spec = ChainSpec::from_genesis_json(&json)
                .map_err(|e| format!("genesis file {}: {e}", path.display()))?;
            if let Some(id) = chain_id
                && id != spec.chain_id()
            {
                return Err(format!(
                    "--chain-id {id} contradicts chainId {} in the genesis file",
                    spec.chain_id()
                ));
            }
            if let Some(kind) = commitment
                && kind != spec.pharos().state_commitment
            {
                return Err(format!(
                    "--state-commitment {kind} contradicts the genesis file's {}",
                    spec.pharos().state_commitment
                ));
            }
            Ok(spec)
        }
        (None, true) => dev_spec_with_compliance(
            ChainSpec::dev_with(
                chain_id.unwrap_or(DEV_CHAIN_ID),
                commitment.unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?,
        ),
        (None, false) => Err("either --dev or --genesis FILE is required".into()),
    }
}

/// A development chain's spec with the compliance system contracts: dev account 0 is the
/// compliance administrator, and the insecure development zkDID keys are installed.
pub(crate) fn dev_spec_with_compliance(spec: ChainSpec) -> Result<ChainSpec, String> {
    pharos_compliance::genesis::dev_chain_spec(&spec).map_err(|e| e.to_string())
}

fn node_config(args: NodeArgs) -> Result<NodeConfig, String> {
    let (spec, datadir) = args.chain.resolve()?;
    if args.block_time.is_zero() {
        return Err("--block-time must be above zero".into());
    }
    let mut config = NodeConfig::dev(
        spec,
        datadir,
        SocketAddr::new(args.http_addr, args.http_port),
    );
    config.dev = args.chain.dev;
    config.block_time = args.block_time;
    config.metrics = args.metrics;
    if let Some(n) = args.exec_threads {
        config.exec_threads = n.max(1);
    }
    if let Some(c) = args.coinbase {
        config.coinbase = c;
    } else if !args.chain.dev {
        config.coinbase = Address::ZERO;
    }
    config.rpc.max_batch = args.rpc_max_batch;
    config.rpc.max_request_body = args.rpc_max_body;
    config.rpc.max_block_range = args.rpc_max_logs_range.max(1);
    config.rpc.gas_cap = args.rpc_gas_cap;
    config.pool.max_txs = args.txpool_max;
    config.pool.max_per_sender = args.txpool_max_per_sender;
    if let (Some(key), Some(validators)) = (&args.validator_key, &args.validators) {
        if args.coinbase.is_some() {
            return Err(
                "--coinbase cannot be set for a validator: every validator must execute blocks with the same fee recipient".into(),
            );
        }
        let key = pharos_consensus::ValidatorKey::load(key).map_err(|e| e.to_string())?;
        let infos = pharos_consensus::load_validators(validators).map_err(|e| e.to_string())?;
        let set = pharos_consensus::ValidatorSet::new(&infos).map_err(|e| e.to_string())?;
        if set.index_of(&key.identity()).is_none() {
            return Err(format!(
                "{} is not one of the validators in {}",
                key.identity(),
                validators.display()
            ));
        }
        if args.leader_timeout <= args.block_time {
            return Err(format!(
                "--consensus.leader-timeout ({:?}) must exceed --block-time ({:?}): a leader waits a block time before proposing",
                args.leader_timeout, args.block_time
            ));
        }
        config.consensus = Some(pharos_node::consensus::ConsensusConfig {
            key,
            validators: set,
            leader_timeout: args.leader_timeout,
        });
    }
    Ok(config)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_node(args: NodeArgs) -> Result<(), String> {
    let config = node_config(args)?;
    let mut node = pharos_node::launch(config)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(addr) = node.metrics_addr {
        println!("metrics: http://{addr}/metrics");
    }
    println!("JSON-RPC: http://{0}  ws://{0}", node.rpc_addr);
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            node.stop().await.map_err(|e| e.to_string())
        }
        r = node.wait() => r.map_err(|e| e.to_string()),
    }
}

async fn run_bench_e2e(args: E2eArgs) -> Result<(), String> {
    let spawned = if args.spawn {
        let exe = std::env::current_exe().map_err(|e| format!("locating this binary: {e}"))?;
        Some(
            pharos_loadgen::SpawnedNode::start(&exe, &args.node_args)
                .map_err(|e| format!("starting a node: {e}"))?,
        )
    } else {
        None
    };
    let url = match (&spawned, args.rpc) {
        (Some(node), _) => node.url.clone(),
        (None, Some(url)) => url,
        (None, None) => return Err("--rpc URL or --spawn is required".into()),
    };
    let mut config = pharos_loadgen::LoadConfig::new(url, args.workload, args.txs, args.senders);
    config.batch_size = args.batch.max(1);
    config.connections = args.connections.max(1);
    config.progress = !args.quiet;
    config.pairs = args.pairs;
    config.rate = args.rate;
    config.submit_to = args.submit_rpc;
    config.metrics = args
        .metrics
        .or_else(|| spawned.as_ref().and_then(|n| n.metrics_url.clone()));
    if let Some(k) = args.funder_key {
        config.funder_key = k;
    }
    let report = pharos_loadgen::run(config)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} {:?}: {} txs included of {} submitted ({} refused, {} reverted) in {:.2} s\n  {:.0} tx/s, {:.1} Mgas/s, latency p50 {} ms, p99 {} ms",
        report.client,
        report.workload,
        report.included,
        report.submitted,
        report.refused,
        report.reverted,
        report.seconds,
        report.tps,
        report.gas_per_second / 1e6,
        report.latency_p50_ms,
        report.latency_p99_ms,
    );
    if let Some(r) = &report.first_refusal {
        println!("  first refusal: {r}");
    }
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = args.chart {
        std::fs::write(&path, pharos_loadgen::chart::svg(&report))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("  chart: {}", path.display());
    }
    drop(spawned);
    Ok(())
}

fn run_bench_exec(args: ExecArgs) -> Result<(), String> {
    let strategy = match args.strategy.as_str() {
        "auto" => pharos_executor::Strategy::Auto,
        "groups" => pharos_executor::Strategy::Groups,
        "block-stm" => pharos_executor::Strategy::BlockStm,
        other => {
            return Err(format!(
                "unknown strategy '{other}': auto, groups, block-stm"
            ));
        }
    };
    let bench = pharos_benches::ExecBench {
        threads: args.threads,
        repeats: args.repeats,
        latency: args.latency,
        strategy,
    };
    println!(
        "{:<15} {:>10} {:>3} {:>10} {:>8} {:>10} {:>6} {:>6} {:>6} {:>6}  strategy",
        "workload",
        "executor",
        "thr",
        "time ms",
        "speedup",
        "Mgas/s",
        "reexec",
        "mispr",
        "prec",
        "recall"
    );
    let mut all = Vec::new();
    for workload in args.workload {
        let prepared = pharos_benches::prepare(workload, args.txs).map_err(|e| e.to_string())?;
        let rows = pharos_benches::measure(&prepared, &bench).map_err(|e| e.to_string())?;
        for m in &rows {
            let pct = |v: Option<f64>| {
                v.map(|x| format!("{:.0}%", x * 100.0))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<15} {:>10} {:>3} {:>10.2} {:>7.2}x {:>10.1} {:>6} {:>6} {:>6} {:>6}  {}",
                workload.to_string(),
                m.executor,
                m.threads,
                m.micros as f64 / 1000.0,
                m.speedup,
                m.gas_per_second / 1e6,
                m.reexecutions,
                m.mispredicted,
                pct(m.precision),
                pct(m.recall),
                m.strategy,
            );
        }
        if std::env::var_os("PHAROS_BENCH_VERBOSE").is_some() {
            for m in &rows {
                eprintln!("  {} {} threads: {:?}", m.executor, m.threads, m.stats);
            }
        }
        all.push((workload.to_string(), rows));
    }
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn run_bench_state(args: StateArgs) -> Result<(), String> {
    let bench = pharos_benches::state::StateBench {
        accounts: args.accounts,
        blocks: args.blocks,
        txs: args.txs,
        load_batch: args.load_batch.max(1),
        datadir: args.datadir,
        commitment: args.commitment,
        config: pharos_storage::StoreConfig {
            commitment: pharos_storage::CommitmentConfig {
                checkpoint_interval: args.checkpoint_interval.max(1),
                keep_depth: args.keep_depth,
                nomt_buckets: args.nomt_buckets,
                nomt_cache_mib: args.nomt_cache_mib,
                ..Default::default()
            },
            flat: pharos_storage::FlatConfig {
                checkpoint_interval: args.flat_interval.max(1),
            },
        },
    };
    let report = bench.run(|line| eprintln!("{line}"))?;
    println!(
        "accounts {}  load {:.1}s  merkleize+flush median {:.1} ms  commit median {:.1} ms",
        report.accounts, report.load_secs, report.median_merkleize_flush_ms, report.median_total_ms
    );
    println!(
        "disk {:.1} MiB ({:.0} bytes/account; flat state {:.1} MiB, trie {:.1} MiB)  rss after load {:.0} MiB  peak rss {:.0} MiB",
        report.disk_bytes as f64 / (1 << 20) as f64,
        report.disk_bytes_per_account,
        report.flat_disk_bytes as f64 / (1 << 20) as f64,
        report.trie_disk_bytes as f64 / (1 << 20) as f64,
        report.rss_after_load_mib,
        report.peak_rss_mib
    );
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn run_keys(command: KeysCommand) -> Result<(), String> {
    let (args, key) = match command {
        KeysCommand::Generate(args) => {
            let key = pharos_consensus::ValidatorKey::generate(&mut pharos_consensus::secure_rng());
            key.save(&args.key).map_err(|e| e.to_string())?;
            (args, key)
        }
        KeysCommand::Show(args) => {
            let key = pharos_consensus::ValidatorKey::load(&args.key).map_err(|e| e.to_string())?;
            (args, key)
        }
    };
    let info = key.info(args.stake, args.address);
    let text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn main() -> ExitCode {
    pharos_benches::retain_freed_memory();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // arkworks instruments every constraint gadget with an info-level span whose fields
    // Debug-format the whole constraint system: with a subscriber listening, building a zkDID
    // proof (`pharos identity prove`) takes minutes and gigabytes instead of a second.
    for directive in ["gr1cs=off", "r1cs=off"] {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Node(mut args) => apply_config_file(&mut args, matches.subcommand_matches("node"))
            .and_then(|()| runtime.block_on(run_node(args))),
        Command::Bench(BenchCommand::E2e(args)) => runtime.block_on(run_bench_e2e(args)),
        Command::Bench(BenchCommand::Exec(args)) => run_bench_exec(args),
        Command::Bench(BenchCommand::State(args)) => run_bench_state(args),
        Command::Db(DbCommand::Verify(args)) => run_db_verify(args),
        Command::Keys(command) => run_keys(command),
        Command::Testnet(TestnetCommand::Init(args)) => testnet::init(&args).map(|_| ()),
        Command::Testnet(TestnetCommand::Run(args)) => {
            runtime.block_on(testnet::run(args, shutdown_signal()))
        }
        Command::Identity(command) => runtime.block_on(identity::run(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
