//! Execution benchmarks: the workloads of the parallel-execution issue, a state view that adds
//! latency to every storage miss, and the harness that times the sequential and the parallel
//! executor on the same block in the same run (`pharos bench exec`, `cargo bench`).
//!
//! # Method
//! A workload is a [`Universe`] (wallets, tokens, Uniswap V2 pairs) built and set up with the
//! sequential executor, then one *warm-up* block (so analysis caches and learned hints are in the
//! steady state a running node has), then the *measured* block, executed `repeats` times per
//! executor on the same pre-state; the median is reported. Executors share nothing but the
//! analysed-code cache warmed by the same warm-up.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Bytes, U256};
use pharos_evm::BlockContext;
use pharos_executor::{
    BlockExecutor, BlockOutput, CodeCache, ExecStats, MemoryState, ParallelConfig,
    ParallelExecutor, SequentialExecutor, StateError, StateView, Strategy,
};
use pharos_primitives::{AccountState, RecoveredTx};
use pharos_workload::scenario::{UniswapArtifacts, Universe, UniverseConfig};
use serde::Serialize;

pub mod state;

const CHAIN: u64 = 1337;

/// Keeps memory mimalloc has freed instead of returning it to the OS after a delay: a node
/// executes one block after another, and re-faulting fresh pages for every block costs more (and
/// serializes threads in the kernel) than holding on to them. Call once at start; only has an
/// effect when mimalloc is the global allocator.
pub fn retain_freed_memory() {
    // `mi_option_purge_delay` of mimalloc v3's `mi_option_e`; -1 disables purging.
    const MI_OPTION_PURGE_DELAY: i32 = 15;
    unsafe extern "C" {
        fn mi_option_set(option: i32, value: std::ffi::c_long);
    }
    // SAFETY: sets a process-wide integer option; valid at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// The first transaction of `out` that did not succeed, with its index.
fn first_failure(out: &BlockOutput) -> Option<(usize, &pharos_executor::TxResult)> {
    out.results
        .iter()
        .enumerate()
        .find(|(_, r)| !r.outcome().is_some_and(|o| o.success()))
}

/// The workloads of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Workload {
    /// (a) independent native transfers.
    Transfers,
    /// (b) OpenZeppelin ERC-20 transfers.
    Erc20,
    /// (c) swaps on many Uniswap V2 pairs.
    Uniswap,
    /// (d) ERC-20 transfers where this percentage goes to one hot account.
    Erc20Hotspot(usize),
    /// (d) swaps where this percentage goes to one hot pair.
    UniswapHotspot(usize),
    /// (e) a fully dependent chain: every transaction increments one counter.
    Chain,
    /// (b) with the token registered as a regulated asset: every sender and recipient has an
    /// identity and a KYC claim; rules: KYC required, one blocked country, a maximum balance.
    Erc20Regulated,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workload::Transfers => write!(f, "transfers"),
            Workload::Erc20 => write!(f, "erc20"),
            Workload::Uniswap => write!(f, "uniswap"),
            Workload::Erc20Hotspot(p) => write!(f, "erc20-hot{p}"),
            Workload::UniswapHotspot(p) => write!(f, "uniswap-hot{p}"),
            Workload::Chain => write!(f, "chain"),
            Workload::Erc20Regulated => write!(f, "erc20-regulated"),
        }
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "transfers" | "transfer" | "a" => Workload::Transfers,
            "erc20" | "b" => Workload::Erc20,
            "uniswap" | "c" => Workload::Uniswap,
            "chain" | "e" => Workload::Chain,
            "erc20-regulated" => Workload::Erc20Regulated,
            other => {
                if let Some(p) = other.strip_prefix("erc20-hot") {
                    Workload::Erc20Hotspot(
                        p.parse()
                            .map_err(|_| format!("bad percentage in {other}"))?,
                    )
                } else if let Some(p) = other.strip_prefix("uniswap-hot") {
                    Workload::UniswapHotspot(
                        p.parse()
                            .map_err(|_| format!("bad percentage in {other}"))?,
                    )
                } else {
                    return Err(format!(
                        "unknown workload '{other}': transfers, erc20, erc20-regulated, uniswap, erc20-hot<P>, uniswap-hot<P>, chain"
                    ));
                }
            }
        })
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Building the workload failed.
    #[error("workload: {0}")]
    Scenario(String),
    /// Executing failed.
    #[error("execution: {0}")]
    Exec(#[from] pharos_executor::ExecError),
}

/// A state view that waits `latency` on every account and slot it is asked for, as a cold
/// database read would (each location is asked for at most once per block by both executors).
pub struct SlowState<'a> {
    inner: &'a MemoryState,
    latency: Duration,
}

impl<'a> SlowState<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a MemoryState, latency: Duration) -> Self {
        Self { inner, latency }
    }
}

impl StateView for SlowState<'_> {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        std::thread::sleep(self.latency);
        self.inner.account(address)
    }
    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        std::thread::sleep(self.latency);
        self.inner.storage(address, slot)
    }
    fn code(&self, code_hash: B256) -> Result<Option<Bytes>, StateError> {
        self.inner.code(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.inner.block_hash(number)
    }
}

/// A workload ready to execute.
pub struct Prepared {
    /// The workload.
    pub workload: Workload,
    /// State before the measured block.
    pub pre: MemoryState,
    /// The measured block.
    pub block: BlockContext,
    /// Its transactions.
    pub txs: Vec<Arc<RecoveredTx>>,
    /// A block of the same workload executed before measuring (warms caches and hints).
    pub warmup: Vec<Arc<RecoveredTx>>,
    /// State before the warm-up block.
    pub pre_warmup: MemoryState,
}

fn block(number: u64) -> BlockContext {
    BlockContext {
        number,
        timestamp: 1_700_000_000 + number,
        beneficiary: Address::repeat_byte(0xcb),
        gas_limit: u64::MAX / 4,
        base_fee: 1_000_000_000,
        prevrandao: B256::repeat_byte(0x42),
        excess_blob_gas: 0,
    }
}

fn arc(txs: Vec<RecoveredTx>) -> Vec<Arc<RecoveredTx>> {
    txs.into_iter().map(Arc::new).collect()
}

/// Builds the universe of `workload`, runs its setup, and signs a warm-up and a measured block of
/// `txs` transactions each.
pub fn prepare(workload: Workload, txs: usize) -> Result<Prepared, BenchError> {
    let uniswap_needed = matches!(workload, Workload::Uniswap | Workload::UniswapHotspot(_));
    let uniswap = if uniswap_needed {
        match UniswapArtifacts::load(&UniswapArtifacts::default_dir()) {
            Some(Ok(u)) => Some(u),
            Some(Err(e)) => return Err(BenchError::Scenario(e.to_string())),
            None => {
                return Err(BenchError::Scenario(format!(
                    "Uniswap V2 artifacts not found in {}: run `npm ci` in tests/e2e or set PHAROS_UNISWAP_BUILD",
                    UniswapArtifacts::default_dir().display()
                )));
            }
        }
    } else {
        None
    };
    let wallets = match workload {
        // Independent: every transaction from its own sender.
        Workload::Transfers
        | Workload::Erc20
        | Workload::Erc20Regulated
        | Workload::Erc20Hotspot(_) => txs.clamp(1, 10_000),
        _ => 1_000.min(txs.max(1)),
    };
    let mut config = UniverseConfig::new(CHAIN, wallets);
    config.tokens = if uniswap_needed { 20 } else { 1 };
    config.chaos = 1;
    config.pairs = if uniswap_needed { 100 } else { 0 };
    let mut u = Universe::build(&config, uniswap.as_ref())
        .map_err(|e| BenchError::Scenario(e.to_string()))?;
    let mut state = MemoryState::default();
    for (a, b) in &u.genesis {
        state.insert_account(*a, 0, *b, None, []);
    }
    let seq = SequentialExecutor::new(CHAIN, Arc::new(CodeCache::default()));
    for (n, setup) in u.setup.iter().enumerate() {
        let out = seq.execute(&block(n as u64 + 1), &arc(setup.clone()), &state)?;
        if let Some((i, r)) = first_failure(&out) {
            return Err(BenchError::Scenario(format!(
                "setup block {n} tx {i} failed: {r:?}"
            )));
        }
        state.apply(&out.diff);
    }
    let make = |u: &mut Universe| match workload {
        Workload::Transfers => u.transfers(txs),
        Workload::Erc20 => u.erc20_transfers(txs),
        Workload::Erc20Regulated => u.erc20_transfers_with_gas(txs, 200_000),
        Workload::Uniswap => u.swaps(txs, 0),
        Workload::Erc20Hotspot(p) => u.erc20_hotspot(txs, p),
        Workload::UniswapHotspot(p) => u.swaps(txs, p),
        Workload::Chain => u.dependent_chain(txs),
    };
    if workload == Workload::Erc20Regulated {
        let investors = u
            .wallets
            .iter()
            .map(|w| w.address())
            .chain((0..txs as u64).map(pharos_workload::scenario::fresh));
        regulate(&mut state, u.tokens[0], investors, block(10).timestamp)?;
    }
    let warmup = arc(make(&mut u));
    let measured = arc(make(&mut u));
    let pre_warmup = state.clone();
    let out = seq.execute(&block(10), &warmup, &state)?;
    // A workload measures the transactions it means: every one of them must succeed (an
    // out-of-gas block would time the wrong thing).
    if let Some((i, r)) = first_failure(&out) {
        return Err(BenchError::Scenario(format!(
            "{workload}: warm-up transaction {i} did not succeed: {r:?}"
        )));
    }
    state.apply(&out.diff);
    Ok(Prepared {
        workload,
        pre: state,
        block: block(11),
        txs: measured,
        warmup,
        pre_warmup,
    })
}

/// Installs the compliance system contracts in `state` and registers `token` (an OpenZeppelin
/// ERC-20: balances at slot 0) as a regulated asset whose `investors` all have an identity
/// (country 276) and a KYC claim: the state a regulated-token block meets. Done by calling the
/// system contracts directly, as their transactions would.
fn regulate(
    state: &mut MemoryState,
    token: Address,
    investors: impl Iterator<Item = Address>,
    now: u64,
) -> Result<(), BenchError> {
    use alloy_sol_types::SolCall;
    use pharos_evm::pharos_compliance::{
        self as c, Cx, IAssetCompliance as A, IIdentityRegistry as I, ITrustedIssuersRegistry as T,
        MemoryEnv, genesis::ComplianceGenesis,
    };
    let admin = Address::repeat_byte(0xad);
    let kyc = Address::repeat_byte(0xc1);
    let accounts = ComplianceGenesis::dev(admin).accounts();
    let mut env = MemoryEnv {
        now,
        ..MemoryEnv::default()
    };
    for (address, account) in &accounts {
        for (k, v) in account.storage.iter().flatten() {
            env.storage.insert(
                (*address, U256::from_be_bytes(k.0)),
                U256::from_be_bytes(v.0),
            );
        }
    }
    let call = |env: &mut MemoryEnv, to: Address, from: Address, data: Vec<u8>| {
        let mut cx = Cx::new(env, u64::MAX, false);
        c::call_system_contract(&mut cx, to, from, &data)
            .map(|_| ())
            .map_err(|e| BenchError::Scenario(format!("compliance setup: {e:?}")))
    };
    let one = U256::from(1);
    call(
        &mut env,
        c::IDENTITY_REGISTRY,
        admin,
        I::setAgentCall {
            agent: admin,
            enabled: true,
        }
        .abi_encode(),
    )?;
    call(
        &mut env,
        c::TRUSTED_ISSUERS,
        admin,
        T::addTrustedIssuerCall {
            issuer: kyc,
            topics: vec![one],
        }
        .abi_encode(),
    )?;
    call(
        &mut env,
        c::ASSET_COMPLIANCE,
        admin,
        A::registerAssetCall {
            token,
            balancesSlot: U256::ZERO,
            deployNonce: 0,
        }
        .abi_encode(),
    )?;
    call(
        &mut env,
        c::ASSET_COMPLIANCE,
        admin,
        A::setRequiredClaimsCall {
            token,
            topics: vec![one],
        }
        .abi_encode(),
    )?;
    call(
        &mut env,
        c::ASSET_COMPLIANCE,
        admin,
        A::setCountryRuleCall {
            token,
            country: 408,
            allowed: false,
            blocked: true,
        }
        .abi_encode(),
    )?;
    call(
        &mut env,
        c::ASSET_COMPLIANCE,
        admin,
        A::setLimitsCall {
            token,
            maxHolders: 0,
            maxBalance: U256::MAX >> 1,
            dailyLimit: U256::ZERO,
        }
        .abi_encode(),
    )?;
    for (i, investor) in investors.enumerate() {
        call(
            &mut env,
            c::IDENTITY_REGISTRY,
            admin,
            I::registerIdentityCall {
                wallet: investor,
                country: 276,
            }
            .abi_encode(),
        )?;
        call(
            &mut env,
            c::IDENTITY_REGISTRY,
            kyc,
            I::addClaimCall {
                identity: i as u64 + 1,
                topic: one,
                expiry: 0,
                data: B256::ZERO,
            }
            .abi_encode(),
        )?;
    }
    let mut storage: std::collections::HashMap<Address, Vec<(U256, U256)>> = Default::default();
    for ((address, slot), value) in env.storage {
        storage.entry(address).or_default().push((slot, value));
    }
    for (address, account) in accounts {
        state.insert_account(
            address,
            account.nonce.unwrap_or_default(),
            account.balance,
            account.code,
            storage.remove(&address).unwrap_or_default(),
        );
    }
    Ok(())
}

/// One executor's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// `sequential` or `parallel`.
    pub executor: String,
    /// Threads.
    pub threads: usize,
    /// Median wall time, microseconds.
    pub micros: u64,
    /// Gas per second.
    pub gas_per_second: f64,
    /// Sequential time divided by this time.
    pub speedup: f64,
    /// Strategy the executor chose.
    pub strategy: String,
    /// Executions beyond one per transaction.
    pub reexecutions: usize,
    /// Transactions whose reads crossed predicted groups.
    pub mispredicted: usize,
    /// Predicted locations that were accessed / predicted.
    pub precision: Option<f64>,
    /// Accessed locations that were predicted / accessed.
    pub recall: Option<f64>,
    /// Phase timings of the median run.
    #[serde(skip)]
    pub stats: ExecStats,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct ExecBench {
    /// Thread counts for the parallel executor.
    pub threads: Vec<usize>,
    /// Runs per executor (median reported).
    pub repeats: usize,
    /// Latency added to each storage miss.
    pub latency: Option<Duration>,
    /// Parallel strategy.
    pub strategy: Strategy,
}

/// Measures the sequential executor and the parallel executor at each thread count. Runs are
/// interleaved (every executor once per round), so the machine's noise hits all of them alike;
/// medians are reported.
pub fn measure(p: &Prepared, bench: &ExecBench) -> Result<Vec<Measurement>, BenchError> {
    let codes = Arc::new(CodeCache::default());
    let mut executors: Vec<(usize, Box<dyn BlockExecutor>)> =
        vec![(0, Box::new(SequentialExecutor::new(CHAIN, codes.clone())))];
    for &threads in &bench.threads {
        let mut config = ParallelConfig::with_threads(threads);
        config.strategy = bench.strategy;
        executors.push((
            threads,
            Box::new(ParallelExecutor::new(CHAIN, codes.clone(), config)),
        ));
    }
    // Warm-up: the block before, as a running node would have executed it.
    for (_, e) in &executors {
        e.execute(&p.block, &p.warmup, &p.pre_warmup)?;
    }
    let slow;
    let view: &dyn StateView = match bench.latency {
        Some(l) => {
            slow = SlowState::new(&p.pre, l);
            &slow
        }
        None => &p.pre,
    };
    let mut times: Vec<Vec<(Duration, ExecStats)>> = vec![Vec::new(); executors.len()];
    let mut outputs: Vec<Option<BlockOutput>> = (0..executors.len()).map(|_| None).collect();
    for round in 0..bench.repeats.max(1) {
        for k in 0..executors.len() {
            let e = (k + round) % executors.len();
            let started = Instant::now();
            let out = executors[e].1.execute(&p.block, &p.txs, view)?;
            times[e].push((started.elapsed(), out.stats.clone()));
            outputs[e] = Some(out);
        }
    }
    let median = |v: &mut Vec<(Duration, ExecStats)>| {
        v.sort_by_key(|(t, _)| *t);
        v[v.len() / 2].clone()
    };
    let (seq_time, seq_stats) = median(&mut times[0]);
    let seq_out = outputs[0]
        .take()
        .ok_or_else(|| BenchError::Scenario("no sequential run".into()))?;
    let gas = seq_out.gas_used as f64;
    let mut out = vec![Measurement {
        executor: "sequential".into(),
        threads: 1,
        micros: seq_time.as_micros() as u64,
        gas_per_second: gas / seq_time.as_secs_f64(),
        speedup: 1.0,
        strategy: "sequential".into(),
        reexecutions: 0,
        mispredicted: 0,
        precision: None,
        recall: None,
        stats: seq_stats,
    }];
    for (k, (threads, _)) in executors.iter().enumerate().skip(1) {
        let result = outputs[k]
            .take()
            .ok_or_else(|| BenchError::Scenario("no parallel run".into()))?;
        if result.results != seq_out.results || result.gas_used != seq_out.gas_used {
            return Err(BenchError::Scenario(format!(
                "parallel results with {threads} threads differ from sequential"
            )));
        }
        let (time, stats) = median(&mut times[k]);
        // Prediction accuracy from one extra run that measures it.
        let mut config = ParallelConfig::with_threads(*threads);
        config.strategy = bench.strategy;
        config.measure_accuracy = true;
        let probe = ParallelExecutor::new(CHAIN, codes.clone(), config);
        probe.execute(&p.block, &p.warmup, &p.pre_warmup)?;
        let accuracy = probe.execute(&p.block, &p.txs, &p.pre)?.stats;
        out.push(Measurement {
            executor: "parallel".into(),
            threads: *threads,
            micros: time.as_micros() as u64,
            gas_per_second: gas / time.as_secs_f64(),
            speedup: seq_time.as_secs_f64() / time.as_secs_f64(),
            strategy: stats.strategy.to_string(),
            reexecutions: stats.reexecutions(p.txs.len()),
            mispredicted: stats.mispredicted,
            precision: accuracy.precision(),
            recall: accuracy.recall(),
            stats,
        });
    }
    Ok(out)
}
