//! The parallel executor: access-list inference schedules the block, predicted-independent groups
//! run in parallel without multi-version bookkeeping, and Block-STM repairs whatever the
//! prediction got wrong. Results are identical to the [`SequentialExecutor`](crate::SequentialExecutor).
//!
//! # How a block runs
//! 1. **Predict** ([`predict`], [`sali`]): for every transaction, the locations it will read,
//!    write, or only add to (fees, plain-transfer recipients).
//! 2. **Partition** ([`groups`]): union-find joins transactions whose predictions conflict.
//!    If one group holds nearly all the work, parallelism cannot pay and the block runs
//!    sequentially.
//! 3. **Preload** ([`base`]): every predicted location is read from storage in one batch by
//!    many readers at once, so storage latency overlaps.
//! 4. **Group phase**: workers take whole groups (largest first) and run each group's
//!    transactions in order over the group's own writes — no versioned memory, no validation
//!    traffic. Every read and write is recorded. `KECCAK256` over a mapping slot the prediction
//!    already hashed takes the prediction's hash (same result and gas, one hash fewer).
//! 5. **Check**: a read of a location that another group wrote earlier in block order is a
//!    misprediction. With none, the write sets are simply folded in order ([`diff`]); when every
//!    access was predicted, the workers' own folds merge by address range on all threads
//!    ([`fold`]).
//! 6. **Repair** ([`mvmemory`], [`scheduler`]): otherwise all write sets seed Block-STM's
//!    multi-version memory as executed first incarnations, and Block-STM's collaborative
//!    scheduler validates from the first misprediction on, aborting and re-executing (with
//!    ESTIMATE markers and dependency suspension) until every read is consistent.
//!
//! The block's beneficiary is paid lazily (fees are commutative additions) and plain transfers
//! credit their recipient by addition, so neither serializes the block.

pub mod base;
pub mod diff;
pub mod fold;
pub mod groups;
pub mod mvmemory;
pub mod predict;
pub mod sali;
pub mod scheduler;
pub mod txexec;
pub mod types;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Instant,
};

use alloy_primitives::{Address, B256, map::HashMap};
use parking_lot::Mutex;
use pharos_evm::{BlockContext, revm::primitives::hardfork::SpecId};
use pharos_primitives::RecoveredTx;

use crate::{
    BlockExecutor, BlockOutput, CodeCache, ExecError, ExecStats, Prepared, SequentialExecutor,
    StateError, StateView, TxResult,
};
use base::BaseState;
use groups::Partition;
use mvmemory::MvMemory;
use predict::{AccessPrediction, Predictor};
use scheduler::{Scheduler, Task};
use txexec::{ReadError, ReadSource, Shared, execute, worker_evm};
use types::{Location, ReadKind, TxIdx, TxRun, TxWrites, Value, WriteOp, add_balance};

/// How the parallel executor runs a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Choose per block: sequential when prediction says parallelism cannot pay, otherwise the
    /// group phase with Block-STM repair.
    Auto,
    /// Always the group phase with Block-STM repair, even on one thread.
    Groups,
    /// Always Block-STM from scratch, with predicted dependencies as hints.
    BlockStm,
}

/// Settings of the parallel executor.
#[derive(Debug, Clone, Copy)]
pub struct ParallelConfig {
    /// Worker threads for execution.
    pub threads: usize,
    /// Concurrent readers for preloading (storage latency overlaps across them).
    pub preload_threads: usize,
    /// Strategy.
    pub strategy: Strategy,
    /// Below this many transactions, `Auto` runs sequentially.
    pub min_parallel_txs: usize,
    /// Measure prediction precision and recall (costs time; for benchmarks).
    pub measure_accuracy: bool,
}

impl ParallelConfig {
    /// Defaults with `threads` workers.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            preload_threads: 16,
            strategy: Strategy::Auto,
            min_parallel_txs: 8,
            measure_accuracy: false,
        }
    }
}

/// Executes a block in parallel; the results equal the sequential executor's.
pub struct ParallelExecutor {
    chain_id: u64,
    spec: SpecId,
    codes: Arc<CodeCache>,
    config: ParallelConfig,
    predictor: Predictor,
    sequential: SequentialExecutor,
}

impl ParallelExecutor {
    /// A parallel executor for chain `chain_id` under Pharos's hardfork.
    pub fn new(chain_id: u64, codes: Arc<CodeCache>, config: ParallelConfig) -> Self {
        Self::with_spec(chain_id, pharos_evm::SPEC, codes, config)
    }

    /// A parallel executor under another hardfork (reference tests).
    pub fn with_spec(
        chain_id: u64,
        spec: SpecId,
        codes: Arc<CodeCache>,
        config: ParallelConfig,
    ) -> Self {
        Self {
            chain_id,
            spec,
            sequential: SequentialExecutor::with_spec(chain_id, spec, codes.clone()),
            codes,
            config,
            predictor: Predictor::default(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &ParallelConfig {
        &self.config
    }

    /// Its access predictor (learned hints, analysis cache).
    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    fn sequential(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
        reason: &'static str,
    ) -> Result<BlockOutput, ExecError> {
        let mut out = self.sequential.execute(block, txs, state)?;
        out.stats.strategy = reason;
        out.stats.threads = 1;
        Ok(out)
    }
}

/// Reads for the group phase: the group's own writes over the pre-state.
struct GroupSource<'a> {
    base: &'a BaseState<'a>,
    local: HashMap<Location, Value>,
    /// Accounts whose storage an earlier transaction of the group wiped (created afresh or
    /// self-destructed): their slots not written since read as zero, not as the pre-state.
    wiped: alloy_primitives::map::HashSet<Address>,
}

impl ReadSource for GroupSource<'_> {
    fn read(&mut self, location: Location, _kind: ReadKind) -> Result<Value, ReadError> {
        match self.local.get(&location) {
            Some(v) => Ok(*v),
            None => match location {
                Location::Storage(a, _) if self.wiped.contains(&a) => {
                    Ok(Value::Storage(alloy_primitives::U256::ZERO))
                }
                _ => Ok(self.base.get(&location)?),
            },
        }
    }
}

impl<'a> GroupSource<'a> {
    fn new(base: &'a BaseState<'a>) -> Self {
        Self {
            base,
            local: HashMap::default(),
            wiped: Default::default(),
        }
    }

    /// Forgets the previous group's writes.
    fn reset(&mut self) {
        self.local.clear();
        self.wiped.clear();
    }

    fn apply(&mut self, writes: &TxWrites) -> Result<(), StateError> {
        // A wipe comes first: the transaction's slot writes are values after it.
        for a in &writes.wipes {
            self.wiped.insert(*a);
            self.local
                .retain(|l, _| !matches!(l, Location::Storage(x, _) if x == a));
        }
        for (location, op) in &writes.ops {
            let value = match op {
                WriteOp::Set(v) => *v,
                WriteOp::AddBalance(d) => {
                    let now = match self.local.get(location) {
                        Some(v) => *v,
                        None => self.base.get(location)?,
                    };
                    match now {
                        Value::Account(a) => Value::Account(add_balance(a, *d)),
                        Value::Storage(_) => {
                            return Err(StateError("balance addition to a slot".into()));
                        }
                    }
                }
            };
            self.local.insert(*location, value);
        }
        Ok(())
    }
}

/// Reads for Block-STM: the multi-version memory at the current transaction.
struct MvSource<'a> {
    mv: &'a MvMemory,
    base: &'a BaseState<'a>,
    tx: TxIdx,
}

impl ReadSource for MvSource<'_> {
    fn read(&mut self, location: Location, kind: ReadKind) -> Result<Value, ReadError> {
        self.mv.resolve(location, self.tx, kind, self.base)
    }
}

/// Workers that must all finish running before any goes on: a worker counts as arrived when its
/// [`Arrival`] drops (also while unwinding), waiters sleep instead of spinning, and a worker
/// whose thread could not be started is no longer expected.
struct Rendezvous {
    /// (arrived, expected).
    state: Mutex<(usize, usize)>,
    changed: parking_lot::Condvar,
}

impl Rendezvous {
    fn new(expected: usize) -> Self {
        Self {
            state: Mutex::new((0, expected)),
            changed: parking_lot::Condvar::new(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut (usize, usize))) {
        f(&mut self.state.lock());
        self.changed.notify_all();
    }

    /// Waits until every expected worker has arrived.
    fn wait(&self) {
        let mut state = self.state.lock();
        while state.0 < state.1 {
            self.changed.wait(&mut state);
        }
    }
}

/// One worker's arrival at a [`Rendezvous`], counted when dropped.
struct Arrival<'a>(&'a Rendezvous);

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.0 += 1);
    }
}

/// Runs `f` on `threads` threads (the caller's included) and collects their results.
fn on_threads<T: Send>(threads: usize, f: impl Fn() -> T + Sync) -> Vec<T> {
    on_threads_or(threads, f, || {})
}

/// [`on_threads`]; `missing` runs for each thread that could not be started (the work then runs
/// on fewer threads).
fn on_threads_or<T: Send>(threads: usize, f: impl Fn() -> T + Sync, missing: impl Fn()) -> Vec<T> {
    if threads <= 1 {
        return vec![f()];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .filter_map(|_| match std::thread::Builder::new().spawn_scoped(s, &f) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start an executor thread");
                    missing();
                    None
                }
            })
            .collect();
        let mut out = vec![f()];
        for h in handles {
            match h.join() {
                Ok(v) => out.push(v),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        out
    })
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

fn state_err(e: ReadError) -> ExecError {
    match e {
        ReadError::State(s) => ExecError::State(s),
        ReadError::Blocked(j) => {
            ExecError::Evm(format!("unexpected dependency on transaction {j}"))
        }
    }
}

/// A worker's fold, sorted by address.
type SortedFold = fold::SortedFold;

/// Transactions predicted first in auto mode, to decide whether the block can run in parallel:
/// a small sample that settles a chain at once, then a larger one when the small one is unclear.
const PREDICTION_SAMPLES: [usize; 2] = [128, 512];

/// A sample whose largest group holds at least this share (in percent) of its gas is one chain.
const CHAIN_SHARE: u64 = 90;

impl ParallelExecutor {
    /// Predictions for `txs[range]`, on up to `threads` threads.
    fn predict(
        &self,
        txs: &[Arc<RecoveredTx>],
        range: std::ops::Range<usize>,
        block: &BlockContext,
        base: &BaseState<'_>,
        threads: usize,
        depth: usize,
    ) -> Result<Vec<AccessPrediction>, ExecError> {
        let txs = &txs[range];
        // Enough chunks to keep every thread busy, not so small that claiming them costs.
        let chunk = (txs.len() / (threads * 4)).clamp(16, 256);
        if threads <= 1 || txs.len() <= chunk {
            let mut cache = predict::PredictCache::with_call_depth(depth);
            return txs
                .iter()
                .map(|tx| {
                    self.predictor
                        .predict(tx, block, base, &mut cache)
                        .map_err(ExecError::from)
                })
                .collect();
        }
        let next = AtomicUsize::new(0);
        let chunks = on_threads(threads, || {
            let mut out = Vec::new();
            let mut cache = predict::PredictCache::with_call_depth(depth);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(part) = txs.chunks(chunk).nth(k) else {
                    break;
                };
                let predicted: Result<Vec<_>, StateError> = part
                    .iter()
                    .map(|tx| self.predictor.predict(tx, block, base, &mut cache))
                    .collect();
                out.push((k, predicted));
            }
            out
        });
        let mut all: Vec<(usize, Result<Vec<AccessPrediction>, StateError>)> =
            chunks.into_iter().flatten().collect();
        all.sort_by_key(|(k, _)| *k);
        let mut predictions = Vec::with_capacity(txs.len());
        for (_, p) in all {
            predictions.extend(p?);
        }
        Ok(predictions)
    }

    /// Runs each group in order on one worker, groups in parallel. Returns every run and, when
    /// every transaction stayed inside its prediction, the workers' folds of their writes.
    fn group_phase(
        &self,
        shared: &Shared<'_>,
        txs: &[Arc<RecoveredTx>],
        predictions: &[AccessPrediction],
        partition: &Partition,
        weights: &[u64],
    ) -> Result<(Vec<TxRun>, Option<Vec<SortedFold>>), ExecError> {
        let mut order: Vec<usize> = (0..partition.groups.len()).collect();
        order.sort_by_key(|g| {
            std::cmp::Reverse(
                partition.groups[*g]
                    .iter()
                    .map(|i| weights[*i])
                    .sum::<u64>(),
            )
        });
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let escaped = AtomicBool::new(false);
        let coinbase = shared.block.beneficiary;
        // What must outlive the group phase of a run that stayed inside its prediction: its
        // result, and the reads and writes of learning's sample (or of all, to measure accuracy).
        let mut sampled = vec![false; txs.len()];
        for i in predict::learning_sample(txs.len()) {
            sampled[i] = true;
        }
        let keep_all = self.config.measure_accuracy;
        let workers = self.config.threads.max(1);
        let all_ran = Rendezvous::new(workers);
        let per_worker = on_threads_or(
            workers,
            || {
                // Counts this worker as done running even if it unwinds (no one waits forever).
                let done = Arrival(&all_ran);
                let mut evm = worker_evm(GroupSource::new(shared.base), shared);
                let mut out: Vec<(TxIdx, TxRun)> = Vec::new();
                let mut fold = fold::WorkerFold::default();
                let mut error = None;
                'groups: while !failed.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&g) = order.get(k) else { break };
                    let group = &partition.groups[g];
                    evm.ctx.journaled_state.database.source.reset();
                    for (pos, &i) in group.iter().enumerate() {
                        let db = &mut evm.ctx.journaled_state.database;
                        db.preimages.clear();
                        db.preimages.extend_from_slice(&predictions[i].preimages);
                        db.observe = sampled[i];
                        let run = match execute(&mut evm, shared, &txs[i]) {
                            Ok(run) => run,
                            Err(e) => {
                                error = Some(state_err(e));
                                break 'groups;
                            }
                        };
                        // Later transactions of the group read these writes.
                        if pos + 1 < group.len()
                            && let Err(e) =
                                evm.ctx.journaled_state.database.source.apply(&run.writes)
                        {
                            error = Some(ExecError::State(e));
                            break 'groups;
                        }
                        if !escaped.load(Ordering::Relaxed) {
                            if fold::contained(&predictions[i], &run, coinbase) {
                                if let Err(e) = fold.add(g, &run.writes) {
                                    error = Some(ExecError::State(e));
                                    break 'groups;
                                }
                            } else {
                                escaped.store(true, Ordering::Relaxed);
                            }
                        }
                        out.push((i, run));
                    }
                }
                if error.is_some() {
                    failed.store(true, Ordering::Relaxed);
                }
                // Whether any transaction escaped is only final once every worker has run.
                drop(done);
                all_ran.wait();
                if let Some(e) = error {
                    return Err(e);
                }
                // Another worker failed (the block fails) or a transaction escaped its
                // prediction (every run's reads and writes are checked): no folds.
                if failed.load(Ordering::Relaxed) || escaped.load(Ordering::Relaxed) {
                    return Ok((out, None));
                }
                let sorted = fold.into_sorted(shared.base).map_err(ExecError::State)?;
                // The folds carry the writes now: free what nobody reads again here, on the
                // thread that allocated it.
                for (i, run) in &mut out {
                    if !keep_all && !sampled[*i] {
                        run.reads = Vec::new();
                        run.writes = TxWrites::default();
                    }
                }
                Ok((out, Some(sorted)))
            },
            || all_ran.update(|s| s.1 -= 1),
        );
        let mut runs: Vec<Option<TxRun>> = (0..txs.len()).map(|_| None).collect();
        let mut folds = Vec::with_capacity(per_worker.len());
        for worker in per_worker {
            let (out, sorted) = worker?;
            for (i, run) in out {
                runs[i] = Some(run);
            }
            folds.push(sorted);
        }
        let runs = runs
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or_else(|| ExecError::Evm(format!("transaction {i} did not run"))))
            .collect::<Result<Vec<_>, _>>()?;
        let folds = if escaped.into_inner() {
            None
        } else {
            folds.into_iter().collect::<Option<Vec<_>>>()
        };
        Ok((runs, folds))
    }

    /// Runs Block-STM workers until the scheduler is done. `runs` holds each transaction's
    /// latest execution (seeded or empty).
    #[allow(clippy::too_many_arguments)]
    fn block_stm(
        &self,
        shared: &Shared<'_>,
        txs: &[Arc<RecoveredTx>],
        mv: &MvMemory,
        scheduler: &Scheduler,
        runs: &[Mutex<Option<TxRun>>],
        hints: Option<&[Option<TxIdx>]>,
        stats: &mut ExecStats,
    ) -> Result<(), ExecError> {
        let executions = AtomicUsize::new(0);
        let aborts = AtomicUsize::new(0);
        let waits = AtomicUsize::new(0);
        let failed: Mutex<Option<ExecError>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        on_threads(self.config.threads, || {
            let mut evm = worker_evm(
                MvSource {
                    mv,
                    base: shared.base,
                    tx: 0,
                },
                shared,
            );
            let mut task: Option<Task> = None;
            let mut idle = 0u32;
            while !scheduler.done() && !stop.load(Ordering::Relaxed) {
                task = match task {
                    Some(Task::Execute(i, incarnation)) => {
                        let hinted = (incarnation == 0)
                            .then(|| hints.and_then(|h| h[i]))
                            .flatten()
                            .filter(|j| !scheduler.is_executed(*j));
                        if let Some(j) = hinted
                            && scheduler.add_dependency(i, j)
                        {
                            waits.fetch_add(1, Ordering::Relaxed);
                            None
                        } else {
                            evm.ctx.journaled_state.database.source.tx = i;
                            executions.fetch_add(1, Ordering::Relaxed);
                            match execute(&mut evm, shared, &txs[i]) {
                                Ok(mut run) => {
                                    let reads = std::mem::take(&mut run.reads);
                                    let wrote_new = mv.record(i, &run.writes, reads);
                                    *runs[i].lock() = Some(run);
                                    scheduler.finish_execution(i, incarnation, wrote_new)
                                }
                                Err(ReadError::Blocked(j)) => {
                                    waits.fetch_add(1, Ordering::Relaxed);
                                    if scheduler.add_dependency(i, j) {
                                        None
                                    } else {
                                        Some(Task::Execute(i, incarnation))
                                    }
                                }
                                Err(ReadError::State(e)) => {
                                    *failed.lock() = Some(ExecError::State(e));
                                    stop.store(true, Ordering::Relaxed);
                                    None
                                }
                            }
                        }
                    }
                    Some(Task::Validate(i, incarnation)) => {
                        let valid = mv.validate(i, shared.base);
                        let aborted = !valid && scheduler.try_validation_abort(i, incarnation);
                        if aborted {
                            aborts.fetch_add(1, Ordering::Relaxed);
                            mv.convert_writes_to_estimates(i);
                        }
                        scheduler.finish_validation(i, aborted)
                    }
                    None => {
                        let t = scheduler.next_task();
                        if t.is_none() {
                            idle += 1;
                            if idle > 64 {
                                std::thread::yield_now();
                            } else {
                                std::hint::spin_loop();
                            }
                        } else {
                            idle = 0;
                        }
                        t
                    }
                };
            }
        });
        stats.executions += executions.into_inner();
        stats.validation_aborts += aborts.into_inner();
        stats.dependency_waits += waits.into_inner();
        match failed.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The weight (gas limits) of the partition's largest group.
fn largest_group(partition: &Partition, weights: &[u64]) -> u64 {
    partition
        .groups
        .iter()
        .map(|g| g.iter().map(|i| weights[*i]).sum::<u64>())
        .max()
        .unwrap_or(0)
}

/// The share (percent) of `weights`' total that the partition's largest group holds.
fn largest_share(partition: &Partition, weights: &[u64]) -> u64 {
    let total: u64 = weights.iter().sum();
    (largest_group(partition, weights).saturating_mul(100))
        .checked_div(total)
        .unwrap_or(0)
}

/// Who wrote a location, in block order, reduced to what the misprediction check needs: the
/// first writer and its group, and the first writer from any other group.
#[derive(Clone, Copy)]
struct Writers {
    first: TxIdx,
    first_group: usize,
    first_other: TxIdx,
}

impl Writers {
    const NONE: Writers = Writers {
        first: usize::MAX,
        first_group: usize::MAX,
        first_other: usize::MAX,
    };

    /// Adds writer `i` of group `g`; writers arrive in ascending order.
    fn add(&mut self, i: TxIdx, g: usize) {
        if self.first == usize::MAX {
            self.first = i;
            self.first_group = g;
        } else if g != self.first_group && self.first_other == usize::MAX {
            self.first_other = i;
        }
    }

    /// Whether a transaction `i` of group `g` must have seen another group's write.
    fn conflicts(&self, i: TxIdx, g: usize) -> bool {
        self.first < i && (self.first_group != g || self.first_other < i)
    }
}

/// Index of the first transaction that read a location another group wrote before it, and how
/// many did. Constant work per read and per write.
fn first_misprediction(runs: &[TxRun], group_of: &[usize]) -> (Option<TxIdx>, usize) {
    // Per location: all writers (for full reads) and writers that replace the value (for
    // code-only reads, which balance additions do not affect).
    let mut writers: HashMap<Location, (Writers, Writers)> = HashMap::default();
    for (i, run) in runs.iter().enumerate() {
        let g = group_of[i];
        for (l, op) in &run.writes.ops {
            let entry = writers.entry(*l).or_insert((Writers::NONE, Writers::NONE));
            entry.0.add(i, g);
            if matches!(op, WriteOp::Set(_)) {
                entry.1.add(i, g);
            }
        }
    }
    let mut first = None;
    let mut count = 0;
    for (i, run) in runs.iter().enumerate() {
        let g = group_of[i];
        let bad = run.reads.iter().any(|r| {
            writers
                .get(&r.location)
                .is_some_and(|(all, sets)| match r.kind {
                    ReadKind::Full => all.conflicts(i, g),
                    ReadKind::CodeOnly => sets.conflicts(i, g),
                })
        });
        if bad {
            count += 1;
            first.get_or_insert(i);
        }
    }
    (first, count)
}

/// Precision and recall counts: (predicted, actual, predicted and actual).
fn accuracy(
    predictions: &[AccessPrediction],
    runs: &[TxRun],
    coinbase: Address,
) -> (usize, usize, usize) {
    let (mut predicted, mut actual, mut hits) = (0, 0, 0);
    for (p, run) in predictions.iter().zip(runs) {
        let real: alloy_primitives::map::HashSet<Location> = run
            .reads
            .iter()
            .map(|r| r.location)
            .chain(run.writes.ops.iter().map(|(l, _)| *l))
            .filter(|l| *l != Location::Account(coinbase))
            .collect();
        let guess: alloy_primitives::map::HashSet<Location> = p
            .locations()
            .filter(|l| *l != Location::Account(coinbase))
            .collect();
        predicted += guess.len();
        actual += real.len();
        hits += guess.intersection(&real).count();
    }
    (predicted, actual, hits)
}

impl BlockExecutor for ParallelExecutor {
    fn execute(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
    ) -> Result<BlockOutput, ExecError> {
        self.run_block(block, txs, state, None)
    }

    fn execute_prepared(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
        prepared: Prepared,
    ) -> Result<BlockOutput, ExecError> {
        self.run_block(block, txs, state, Some(prepared.predictions))
    }

    fn prepare(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
    ) -> Result<Prepared, ExecError> {
        let mut prepared = Prepared::default();
        if txs.is_empty() {
            return Ok(prepared);
        }
        let base = BaseState::new(state);
        // The same rules as execution: against slow storage fetch the obvious locations with
        // many readers, predict deep and in parallel, then read every predicted location; when
        // the state answers from memory, reading ahead would only burn a core.
        let slow_view = self.probe_and_fetch_obvious(&base, txs, &mut prepared.preload_us)?;
        let (threads, depth) = if slow_view {
            (
                self.config.preload_threads.max(self.config.threads),
                sali::DEEP_CALL_DEPTH,
            )
        } else {
            // One thread: this runs beside the executing block.
            (1, sali::SHALLOW_CALL_DEPTH)
        };
        let t = Instant::now();
        let predictions = self.predict(txs, 0..txs.len(), block, &base, threads, depth)?;
        prepared.predict_us = micros(t);
        if slow_view {
            let t = Instant::now();
            let locations = base::dedup(predictions.iter().flat_map(|p| p.locations()));
            base.preload(&locations, self.config.preload_threads)?;
            prepared.preloaded = locations.len();
            prepared.preload_us += micros(t);
        }
        prepared.predictions = txs.iter().map(|t| t.hash()).zip(predictions).collect();
        Ok(prepared)
    }
}

impl ParallelExecutor {
    /// Does the view answer from memory (read it directly) or like a disk? For a slow one,
    /// fetches what every transaction obviously touches (sender and recipient) with many
    /// readers, adding the time to `preload_us`. Returns whether the view is slow.
    fn probe_and_fetch_obvious(
        &self,
        base: &BaseState<'_>,
        txs: &[Arc<RecoveredTx>],
        preload_us: &mut u64,
    ) -> Result<bool, ExecError> {
        let senders: Vec<Location> = txs
            .iter()
            .take(16)
            .map(|t| Location::Account(t.sender()))
            .collect();
        if !base.probe(&senders)? {
            return Ok(false);
        }
        let t = Instant::now();
        let obvious = base::dedup(txs.iter().flat_map(|tx| {
            std::iter::once(Location::Account(tx.sender())).chain(tx.to().map(Location::Account))
        }));
        base.preload(&obvious, self.config.preload_threads)?;
        *preload_us += micros(t);
        Ok(true)
    }

    /// Predictions for `txs[range]`: taken from the preload stage's where it made one, the rest
    /// predicted now.
    #[allow(clippy::too_many_arguments)]
    fn predict_or_reuse(
        &self,
        txs: &[Arc<RecoveredTx>],
        range: std::ops::Range<usize>,
        block: &BlockContext,
        base: &BaseState<'_>,
        threads: usize,
        depth: usize,
        prepared: &mut Option<HashMap<B256, AccessPrediction>>,
        stats: &mut ExecStats,
    ) -> Result<Vec<AccessPrediction>, ExecError> {
        let Some(known) = prepared.as_mut() else {
            return self.predict(txs, range, block, base, threads, depth);
        };
        let reused: Vec<Option<AccessPrediction>> = txs[range.clone()]
            .iter()
            .map(|t| known.remove(&t.hash()))
            .collect();
        let missing: Vec<Arc<RecoveredTx>> = txs[range]
            .iter()
            .zip(&reused)
            .filter(|(_, p)| p.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        stats.prepared_hits += reused.len() - missing.len();
        let mut fresh = self
            .predict(&missing, 0..missing.len(), block, base, threads, depth)?
            .into_iter();
        reused
            .into_iter()
            .map(|p| match p {
                Some(p) => Ok(p),
                None => fresh
                    .next()
                    .ok_or_else(|| ExecError::Evm("a transaction lost its prediction".into())),
            })
            .collect()
    }

    /// Executes a block, reusing `prepared` predictions where there are some.
    fn run_block(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
        mut prepared: Option<HashMap<B256, AccessPrediction>>,
    ) -> Result<BlockOutput, ExecError> {
        let started = Instant::now();
        let n = txs.len();
        if n == 0 {
            return Ok(BlockOutput::default());
        }
        // Whether a transaction fits the gas left depends on all before it: keep that rule
        // sequential (block producers never build such blocks).
        let gas_limits: u64 = txs
            .iter()
            .map(|t| t.gas_limit())
            .fold(0, u64::saturating_add);
        if gas_limits > block.gas_limit {
            return self.sequential(block, txs, state, "sequential (gas limits exceed block)");
        }
        let auto = self.config.strategy == Strategy::Auto;
        if auto && (self.config.threads <= 1 || n < self.config.min_parallel_txs) {
            return self.sequential(block, txs, state, "sequential (small block or one thread)");
        }

        let base = BaseState::new(state);
        let mut stats = ExecStats {
            threads: self.config.threads,
            ..Default::default()
        };
        let weights: Vec<u64> = txs.iter().map(|t| t.gas_limit()).collect();
        let worth_it = |partition: &Partition, range: std::ops::Range<usize>| {
            let total: u64 = weights[range].iter().sum();
            let makespan =
                largest_group(partition, &weights).max(total / self.config.threads as u64);
            makespan.saturating_mul(115) < total.saturating_mul(100)
        };
        // Against slow storage, prediction itself waits on reads: fetch what every transaction
        // obviously touches first, and predict with as many threads as preloading uses.
        let slow_view = self.probe_and_fetch_obvious(&base, txs, &mut stats.preload_us)?;
        // The sequential fallback reads what preloading cached from a slow view, and a fast view
        // directly (without the cache's indirection).
        let fallback_view: &dyn StateView = if slow_view { &base } else { state };
        let predict_threads = if slow_view {
            self.config.preload_threads.max(self.config.threads)
        } else {
            self.config.threads
        };
        let depth = if slow_view {
            sali::DEEP_CALL_DEPTH
        } else {
            sali::SHALLOW_CALL_DEPTH
        };
        let t = Instant::now();
        // In auto mode samples decide first: a block that is one dependent chain goes
        // sequential before paying for the rest of the prediction.
        let mut predictions = Vec::new();
        let mut sample = 0;
        let stages = if auto { &PREDICTION_SAMPLES[..] } else { &[] };
        for (stage, &size) in stages.iter().enumerate() {
            let end = n.min(size);
            if end >= n {
                break;
            }
            predictions.extend(self.predict_or_reuse(
                txs,
                sample..end,
                block,
                &base,
                if slow_view { predict_threads } else { 1 },
                depth,
                &mut prepared,
                &mut stats,
            )?);
            sample = end;
            let partition = groups::partition(&predictions);
            let last = stage + 1 == stages.len();
            let dependent = if last {
                !worth_it(&partition, 0..end)
            } else {
                largest_share(&partition, &weights[..end]) >= CHAIN_SHARE
            };
            if dependent {
                let predict_us = micros(t);
                let preload_us = stats.preload_us;
                let mut out =
                    self.sequential(block, txs, fallback_view, "sequential (sampled dependent)")?;
                out.stats.predict_us = predict_us;
                out.stats.preload_us = preload_us;
                out.stats.prepared_hits = stats.prepared_hits;
                return Ok(out);
            }
            if worth_it(&partition, 0..end) {
                break;
            }
        }
        predictions.extend(self.predict_or_reuse(
            txs,
            sample..n,
            block,
            &base,
            predict_threads,
            depth,
            &mut prepared,
            &mut stats,
        )?);
        let partition = if self.config.strategy == Strategy::BlockStm {
            groups::partition_with_dependencies(&predictions)
        } else {
            groups::partition(&predictions)
        };

        stats.predict_us = micros(t);
        stats.groups = partition.groups.len();
        stats.largest_group = partition.groups.iter().map(Vec::len).max().unwrap_or(0);
        if auto && !worth_it(&partition, 0..n) {
            let mut out = self.sequential(
                block,
                txs,
                fallback_view,
                "sequential (predicted dependent)",
            )?;
            out.stats.predict_us = stats.predict_us;
            out.stats.preload_us = stats.preload_us;
            out.stats.groups = stats.groups;
            out.stats.largest_group = stats.largest_group;
            out.stats.prepared_hits = stats.prepared_hits;
            return Ok(out);
        }

        if slow_view {
            let t = Instant::now();
            let locations = base::dedup(predictions.iter().flat_map(|p| p.locations()));
            base.preload(&locations, self.config.preload_threads)?;
            stats.preload_us += micros(t);
        }

        let shared = Shared::new(&base, &self.codes, *block, self.spec, self.chain_id);
        // The group phase may produce the diff itself (from its workers' folds).
        let mut folded = None;
        let mut merge_started = None;
        let t = Instant::now();
        let runs: Vec<TxRun> = if self.config.strategy == Strategy::BlockStm {
            stats.strategy = "block-stm";
            let mv = MvMemory::new(n);
            let scheduler = Scheduler::new(n);
            let slots: Vec<Mutex<Option<TxRun>>> = (0..n).map(|_| Mutex::new(None)).collect();
            self.block_stm(
                &shared,
                txs,
                &mv,
                &scheduler,
                &slots,
                Some(&partition.depends_on),
                &mut stats,
            )?;
            stats.execute_us = micros(t);
            collect(slots, &mv)?
        } else {
            stats.strategy = "groups";
            let (runs, folds) =
                self.group_phase(&shared, txs, &predictions, &partition, &weights)?;
            stats.executions = n;
            stats.execute_us = micros(t);
            if let Some(folds) = folds {
                // Every transaction stayed inside its prediction: no group could see another.
                merge_started = Some(Instant::now());
                folded = Some(fold::into_diff(folds, self.config.threads)?);
                runs
            } else {
                // Some access escaped its prediction: check for real conflicts between groups.
                stats.strategy = "groups (checked)";
                let t = Instant::now();
                let (first, count) = first_misprediction(&runs, &partition.group_of);
                stats.validate_us = micros(t);
                stats.mispredicted = count;
                match first {
                    None => runs,
                    Some(first) => {
                        stats.strategy = "groups+block-stm";
                        let t = Instant::now();
                        let mv = MvMemory::new(n);
                        let slots: Vec<Mutex<Option<TxRun>>> = runs
                            .into_iter()
                            .enumerate()
                            .map(|(i, mut run)| {
                                let reads = std::mem::take(&mut run.reads);
                                mv.record(i, &run.writes, reads);
                                Mutex::new(Some(run))
                            })
                            .collect();
                        let scheduler = Scheduler::new_executed(n, first);
                        self.block_stm(&shared, txs, &mv, &scheduler, &slots, None, &mut stats)?;
                        stats.repair_us = micros(t);
                        collect(slots, &mv)?
                    }
                }
            }
        };

        let t = merge_started.unwrap_or_else(Instant::now);
        let diff = match folded {
            Some(d) => d,
            None => diff::build(runs.iter().map(|r| &r.writes), &base)?,
        };
        Ok(self.finish(
            txs,
            runs,
            diff,
            &predictions,
            block,
            &base,
            stats,
            t,
            started,
        ))
    }
}

impl ParallelExecutor {
    /// Metrics, learning, and the block's output.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        txs: &[Arc<RecoveredTx>],
        runs: Vec<TxRun>,
        diff: pharos_primitives::StateDiff,
        predictions: &[AccessPrediction],
        block: &BlockContext,
        base: &BaseState<'_>,
        mut stats: ExecStats,
        merge_started: Instant,
        started: Instant,
    ) -> BlockOutput {
        if self.config.measure_accuracy {
            let (p, a, h) = accuracy(predictions, &runs, block.beneficiary);
            stats.predicted_locations = p;
            stats.actual_locations = a;
            stats.predicted_hits = h;
        }
        self.predictor
            .learn(txs, &runs, predictions, base, block.beneficiary);
        let mut gas_used = 0;
        let results: Vec<TxResult> = runs
            .into_iter()
            .map(|r| {
                if let TxResult::Included(o) = &r.result {
                    gas_used += o.gas_used;
                }
                r.result
            })
            .collect();
        stats.merge_us = micros(merge_started);
        stats.total_us = micros(started);
        BlockOutput {
            results,
            diff,
            gas_used,
            stats,
        }
    }
}

/// The final execution of every transaction, with its reads restored from the memory.
fn collect(slots: Vec<Mutex<Option<TxRun>>>, mv: &MvMemory) -> Result<Vec<TxRun>, ExecError> {
    slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut run = s
                .into_inner()
                .ok_or_else(|| ExecError::Evm(format!("transaction {i} never executed")))?;
            run.reads = mv.take_reads(i);
            Ok(run)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryState;
    use alloy_primitives::U256;

    #[test]
    fn a_group_reads_a_wiped_accounts_slots_as_zero() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut state = MemoryState::default();
        state.insert_account(a, 0, U256::ZERO, None, [(U256::from(1), U256::from(7))]);
        state.insert_account(b, 0, U256::ZERO, None, [(U256::from(1), U256::from(9))]);
        let base = BaseState::new(&state);
        let mut source = GroupSource::new(&base);
        let slot = |x| Location::Storage(x, U256::from(1));
        let read = |s: &mut GroupSource<'_>, l| s.read(l, ReadKind::Full).ok();
        assert_eq!(
            read(&mut source, slot(a)),
            Some(Value::Storage(U256::from(7)))
        );
        // A transaction writes a's slot; a later one re-creates a (a wipe) and writes slot 2.
        let set = |l, v: u64| (l, WriteOp::Set(Value::Storage(U256::from(v))));
        source
            .apply(&TxWrites {
                ops: vec![set(slot(a), 8)],
                ..Default::default()
            })
            .expect("apply");
        source
            .apply(&TxWrites {
                ops: vec![set(Location::Storage(a, U256::from(2)), 5)],
                wipes: vec![a],
                codes: Vec::new(),
            })
            .expect("apply");
        assert_eq!(read(&mut source, slot(a)), Some(Value::Storage(U256::ZERO)));
        assert_eq!(
            read(&mut source, Location::Storage(a, U256::from(2))),
            Some(Value::Storage(U256::from(5)))
        );
        assert_eq!(
            read(&mut source, slot(b)),
            Some(Value::Storage(U256::from(9)))
        );
        // The next group starts from the pre-state again.
        source.reset();
        assert_eq!(
            read(&mut source, slot(a)),
            Some(Value::Storage(U256::from(7)))
        );
    }
}
