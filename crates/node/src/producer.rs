//! Block production as a pipeline of four stages, each on its own thread, connected by
//! bounded channels (capacity 1, so a slow stage holds the others back instead of piling up
//! blocks):
//!
//! ```text
//!  preload N+2 ─▶ tick ─▶ execute N+1 ──▶ merkleize N ──▶ flush N-1 ──▶ announce, pool
//!  (pool look-ahead,      (pool order,     (state trie,    (one chain-database commit:
//!   access prediction,     parallel exec    state root,     the block is durable and
//!   batched read of        reusing the      seal header)    becomes the head)
//!   predicted keys)        predictions)
//! ```
//!
//! The preload stage works on block N+2 from the moment N+1 has executed until N+2 starts
//! (`Producer::prepare`); its predictions are hints, so a transaction it did not see or a
//! state it saw too early only costs time.
//!
//! Block N+1 executes on the head's state plus the state changes of the blocks still in flight
//! ([`SpeculativeView`]), so it does not wait for N's root or N's disk write. Two things of a block
//! depend on its parent's *hash*, which only exists once the parent is merkleized:
//! `PREVRANDAO` is therefore derived from the grandparent's hash (known by then, see
//! [`prevrandao_for`]), and a transaction reading `BLOCKHASH` of a parent still being merkleized
//! makes the block execute again once that hash is known (counted in
//! `pharos_reexecutions_total`). A block is announced to subscribers and filters, and its
//! transactions leave the pool's in-flight set, only after its flush: a client never sees a
//! block a crash could take back.
//!
//! [`Producer::produce`] runs execute, merkleize and flush inline, for tests.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_primitives::{Address, B64, B256, Bytes, U256, keccak256};
use parking_lot::{Condvar, Mutex, RwLock};
use pharos_evm::BlockContext;
use pharos_executor::{BlockExecutor, ExecStats, Prepared, StateError, StateView, TxResult};
use pharos_primitives::{
    AccountState, ChainSpec, RecoveredTx, StateDiff, StoredReceipt,
    block::{receipts_root, transactions_root},
    receipt::{build_receipt, logs_bloom},
};
use pharos_rpc::CommittedBlock;
use pharos_storage::{SealedBlock, Snapshot, Store};
use pharos_txpool::TxPool;
use tokio::sync::{broadcast, watch};

use crate::{NodeError, metrics::Metrics};

/// Empty trie root, for the post-Shanghai header fields this chain keeps empty.
const EMPTY_ROOT: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// How long a stage waits for a hash the merkleize stage is computing before giving up.
const HASH_WAIT: Duration = Duration::from_secs(30);

/// `PREVRANDAO` of a block whose parent's parent has hash `grandparent` (zero for block 1):
/// Pharos has no beacon chain, so it is derived from a block hash — deterministic, not a source
/// of secure randomness. The grandparent rather than the parent, so a block can execute while
/// its parent is still being merkleized.
pub fn prevrandao_for(grandparent: B256) -> B256 {
    keccak256(grandparent)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// State changes of one executed block not yet durable.
#[derive(Debug)]
struct Layer {
    number: u64,
    diff: Arc<StateDiff>,
}

/// What the stages share: the executed-but-not-durable layers and the hashes of merkleized blocks.
#[derive(Debug, Default)]
struct InFlight {
    /// Oldest first.
    layers: RwLock<Vec<Arc<Layer>>>,
    /// Hashes of merkleized blocks above the head.
    hashes: Mutex<BTreeMap<u64, B256>>,
    sealed: Condvar,
}

/// The head's state with the in-flight blocks' changes on top: what the next block executes on.
pub struct SpeculativeView {
    base: Arc<Snapshot>,
    /// Newest first; only blocks above the base's head.
    layers: Vec<Arc<Layer>>,
    in_flight: Arc<InFlight>,
    /// Set when a transaction asked for the hash of a block not merkleized yet.
    missing_hash: AtomicBool,
}

impl SpeculativeView {
    fn new(store: &Store, in_flight: &Arc<InFlight>) -> Result<Self, NodeError> {
        // Layers first, then the snapshot: a layer dropped in between is in the snapshot.
        let layers = in_flight.layers.read().clone();
        let base = Arc::new(store.snapshot()?);
        let head = base.head().header.number;
        Ok(Self {
            layers: layers
                .into_iter()
                .rev()
                .filter(|l| l.number > head)
                .collect(),
            base,
            in_flight: in_flight.clone(),
            missing_hash: AtomicBool::new(false),
        })
    }

    fn with_layer(&self, layer: Arc<Layer>) -> Self {
        let mut layers = Vec::with_capacity(self.layers.len() + 1);
        layers.push(layer);
        layers.extend(self.layers.iter().cloned());
        Self {
            base: self.base.clone(),
            layers,
            in_flight: self.in_flight.clone(),
            missing_hash: AtomicBool::new(false),
        }
    }
}

impl StateView for SpeculativeView {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        for layer in &self.layers {
            if let Some(change) = layer.diff.accounts.get(&address) {
                return Ok(change.info);
            }
        }
        self.base.account(address)
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        for layer in &self.layers {
            if let Some(change) = layer.diff.accounts.get(&address) {
                if let Some(value) = change.storage.get(&slot) {
                    return Ok(*value);
                }
                if change.storage_wiped || change.info.is_none() {
                    return Ok(U256::ZERO);
                }
            }
        }
        self.base.storage(address, slot)
    }

    fn code(&self, code_hash: B256) -> Result<Option<Bytes>, StateError> {
        for layer in &self.layers {
            if let Some(code) = layer.diff.codes.get(&code_hash) {
                return Ok(Some(code.clone()));
            }
        }
        self.base.code(code_hash)
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        if number <= self.base.head().header.number {
            return self.base.block_hash(number);
        }
        if let Some(hash) = self.in_flight.hashes.lock().get(&number) {
            return Ok(*hash);
        }
        // Not merkleized yet: the block is executed again once it is.
        self.missing_hash.store(true, Ordering::Relaxed);
        Ok(B256::ZERO)
    }
}

/// A block out of the execute stage: everything but its parent hash and state root.
pub struct Executed {
    header: Header,
    body: Vec<Arc<RecoveredTx>>,
    receipts: Vec<StoredReceipt>,
    dropped: usize,
    diff: Arc<StateDiff>,
    stats: ExecStats,
    started: Instant,
}

/// A block out of the merkleize stage.
pub struct Merkleized {
    sealed: SealedBlock,
    receipts: Vec<StoredReceipt>,
    dropped: usize,
    stats: ExecStats,
    started: Instant,
}

/// Builds blocks from the pool on top of the stored head.
pub struct Producer {
    store: Arc<Store>,
    pool: Arc<TxPool>,
    executor: Arc<dyn BlockExecutor>,
    spec: Arc<ChainSpec>,
    coinbase: Address,
    max_block_txs: usize,
    blocks: broadcast::Sender<Arc<CommittedBlock>>,
    metrics: Arc<Metrics>,
    in_flight: Arc<InFlight>,
    /// The newest executed block's header (parent hash and state root not yet set).
    last_executed: Mutex<Option<Header>>,
    /// The preload stage's input, when it runs (see [`run`]).
    to_prepare: Mutex<Option<mpsc::SyncSender<BlockContext>>>,
    /// The preload stage's work so far.
    prepared: Mutex<PrepareSlot>,
    prepared_changed: Condvar,
}

/// Hand-over between the preload stage and the execute stage.
#[derive(Default)]
struct PrepareSlot {
    /// The block being prepared.
    number: Option<u64>,
    /// What was prepared for it so far.
    prepared: Prepared,
    /// Time spent on it.
    spent: Duration,
    /// A round is running.
    busy: bool,
    /// The execute stage took the block: stop.
    taken: bool,
}

/// How often the preload stage looks at the pool again for transactions that arrived since.
const PREPARE_ROUND: Duration = Duration::from_millis(100);

/// How long the execute stage waits for a running round of the preload stage.
const PREPARE_WAIT: Duration = Duration::from_millis(250);

impl Producer {
    /// A producer committing into `store` the best transactions of `pool`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        pool: Arc<TxPool>,
        executor: Arc<dyn BlockExecutor>,
        spec: Arc<ChainSpec>,
        coinbase: Address,
        max_block_txs: usize,
        blocks: broadcast::Sender<Arc<CommittedBlock>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            pool,
            executor,
            spec,
            coinbase,
            max_block_txs,
            blocks,
            metrics,
            in_flight: Arc::default(),
            last_executed: Mutex::new(None),
            to_prepare: Mutex::new(None),
            prepared: Mutex::default(),
            prepared_changed: Condvar::new(),
        }
    }

    /// The preload stage for the next block, from the moment the previous block has executed
    /// until the next one starts: every [`PREPARE_ROUND`] it takes the transactions the pool
    /// would put in the block now, predicts what the ones it has not seen yet will touch and
    /// reads that from storage. The pool already reflects the executed block and the view
    /// includes its changes; transactions that arrive later only miss the prediction (the
    /// execute stage predicts those itself). The final choice is made when the block executes.
    fn prepare(&self, ctx: BlockContext) {
        let number = ctx.number;
        let _span = tracing::debug_span!("preload", block = number).entered();
        loop {
            {
                let mut slot = self.prepared.lock();
                if slot.number != Some(number) || slot.taken {
                    return;
                }
                slot.busy = true;
            }
            let started = Instant::now();
            let round = self.prepare_round(&ctx);
            let mut slot = self.prepared.lock();
            slot.busy = false;
            self.prepared_changed.notify_all();
            if slot.number != Some(number) || slot.taken {
                return;
            }
            slot.spent += started.elapsed();
            match round {
                Ok(p) => slot.prepared.merge(p),
                Err(e) => {
                    // Only a look ahead: the block predicts for itself.
                    tracing::warn!(block = number, error = %e, "preload stage failed");
                    return;
                }
            }
            let deadline = Instant::now() + PREPARE_ROUND;
            while slot.number == Some(number) && !slot.taken {
                if self
                    .prepared_changed
                    .wait_until(&mut slot, deadline)
                    .timed_out()
                {
                    break;
                }
            }
        }
    }

    /// One round of [`Self::prepare`].
    fn prepare_round(&self, ctx: &BlockContext) -> Result<Prepared, NodeError> {
        let txs = self
            .pool
            .best_transactions(ctx.base_fee, ctx.gas_limit, self.max_block_txs);
        let fresh: Vec<Arc<RecoveredTx>> = {
            let slot = self.prepared.lock();
            txs.into_iter()
                .filter(|t| !slot.prepared.contains(&t.hash()))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(Prepared::default());
        }
        let view = SpeculativeView::new(&self.store, &self.in_flight)?;
        let prepared = self.executor.prepare(ctx, &fresh, &view)?;
        tracing::debug!(
            block = ctx.number,
            fresh = fresh.len(),
            preloaded = prepared.preloaded,
            "preload round"
        );
        Ok(prepared)
    }

    /// Hands block `ctx.number` to the preload stage, if it runs.
    fn start_prepare(&self, ctx: BlockContext) {
        let guard = self.to_prepare.lock();
        let Some(sender) = guard.as_ref() else {
            return;
        };
        *self.prepared.lock() = PrepareSlot {
            number: Some(ctx.number),
            ..Default::default()
        };
        // An older block's rounds stop.
        self.prepared_changed.notify_all();
        if sender.try_send(ctx).is_err() {
            self.prepared.lock().number = None;
        }
    }

    /// What the preload stage prepared for block `number`; it stops there.
    fn take_prepared(&self, number: u64) -> Option<Prepared> {
        let mut slot = self.prepared.lock();
        if slot.number != Some(number) {
            return None;
        }
        slot.taken = true;
        self.prepared_changed.notify_all();
        let deadline = Instant::now() + PREPARE_WAIT;
        while slot.busy {
            if self
                .prepared_changed
                .wait_until(&mut slot, deadline)
                .timed_out()
            {
                break;
            }
        }
        slot.number = None;
        let prepared = std::mem::take(&mut slot.prepared);
        self.metrics.stage("prepare", slot.spent);
        (!prepared.is_empty()).then_some(prepared)
    }

    /// Builds, executes and commits one block; announces it; updates the pool. Blocking. The
    /// pipeline's three stages run one after the other.
    pub fn produce(&self) -> Result<Arc<CommittedBlock>, NodeError> {
        let executed = self.execute_next()?;
        let merkleized = self.merkleize(executed)?;
        self.flush(merkleized)
    }

    /// Number of the durable head.
    pub fn head_number(&self) -> u64 {
        self.store.head().header.number
    }

    /// The hash of block `number`, waiting for the merkleize stage if it is computing it.
    fn hash_of(&self, number: u64) -> Result<B256, NodeError> {
        let deadline = Instant::now() + HASH_WAIT;
        let mut hashes = self.in_flight.hashes.lock();
        loop {
            if let Some(hash) = hashes.get(&number) {
                return Ok(*hash);
            }
            let head = self.store.head();
            if number <= head.header.number {
                drop(hashes);
                let snap = self.store.snapshot()?;
                return snap.block_hash_of(number)?.ok_or_else(|| {
                    NodeError::Task(format!("block {number} below the head has no hash"))
                });
            }
            if self
                .in_flight
                .sealed
                .wait_until(&mut hashes, deadline)
                .timed_out()
            {
                return Err(NodeError::Task(format!(
                    "block {number} was not merkleized within {HASH_WAIT:?}"
                )));
            }
        }
    }

    /// Stage 1: picks the best pooled transactions and executes them on top of the newest
    /// executed block.
    pub fn execute_next(&self) -> Result<Executed, NodeError> {
        self.execute_block(None)
    }

    /// Stage 1 for a block whose transactions and timestamp consensus decided: executes
    /// `txs` in order on top of the newest executed block (transactions that turn out invalid
    /// are left out, the same way on every validator).
    pub fn execute_given(
        &self,
        txs: Vec<Arc<RecoveredTx>>,
        timestamp: u64,
    ) -> Result<Executed, NodeError> {
        self.execute_block(Some((txs, timestamp)))
    }

    fn execute_block(
        &self,
        given: Option<(Vec<Arc<RecoveredTx>>, u64)>,
    ) -> Result<Executed, NodeError> {
        let started = Instant::now();
        let parent = match self.last_executed.lock().clone() {
            Some(header) => header,
            None => self.store.head().header.clone(),
        };
        let base_fee = self.spec.next_base_fee(&parent);
        let gas_limit = parent.gas_limit;
        let grandparent = if parent.number == 0 {
            B256::ZERO
        } else {
            self.hash_of(parent.number - 1)?
        };
        let (candidates, timestamp) = match given {
            Some((txs, timestamp)) => (txs, timestamp),
            None => (
                self.pool
                    .best_transactions(base_fee, gas_limit, self.max_block_txs),
                now_secs(),
            ),
        };
        let ctx = BlockContext {
            number: parent.number + 1,
            timestamp: timestamp.max(parent.timestamp),
            beneficiary: self.coinbase,
            gas_limit,
            base_fee,
            prevrandao: prevrandao_for(grandparent),
            excess_blob_gas: 0,
        };
        let mut prepared = self.take_prepared(ctx.number);
        let _span = tracing::debug_span!("execute", block = ctx.number).entered();
        let (view, output) = loop {
            let view = SpeculativeView::new(&self.store, &self.in_flight)?;
            let output = match prepared.take() {
                Some(p) => self
                    .executor
                    .execute_prepared(&ctx, &candidates, &view, p)?,
                None => self.executor.execute(&ctx, &candidates, &view)?,
            };
            if !view.missing_hash.load(Ordering::Relaxed) {
                break (view, output);
            }
            // A transaction read the parent's hash: wait for it, run the block again.
            self.metrics.reexecutions.inc();
            self.hash_of(parent.number)?;
        };
        let stats = output.stats.clone();
        // Sub-stages of execution: access prediction and the batched preload of predicted keys.
        self.metrics
            .stage("predict", Duration::from_micros(stats.predict_us));
        self.metrics
            .stage("preload", Duration::from_micros(stats.preload_us));
        self.metrics
            .prepared_hits
            .inc_by(stats.prepared_hits as u64);

        let mut body = Vec::with_capacity(candidates.len());
        let mut receipts = Vec::with_capacity(candidates.len());
        let mut rejected = Vec::new();
        let mut cumulative = 0u64;
        for (tx, result) in candidates.into_iter().zip(output.results) {
            match result {
                TxResult::Included(outcome) => {
                    cumulative += outcome.gas_used;
                    receipts.push(build_receipt(
                        tx.tx_type(),
                        outcome.success(),
                        cumulative,
                        outcome.logs,
                    ));
                    body.push(tx);
                }
                TxResult::Rejected(reason) => {
                    tracing::debug!(hash = %tx.hash(), %reason, "transaction dropped at execution");
                    rejected.push(tx);
                }
            }
        }
        let header = Header {
            parent_hash: B256::ZERO,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: ctx.beneficiary,
            state_root: B256::ZERO,
            transactions_root: transactions_root(&body),
            receipts_root: receipts_root(&receipts),
            logs_bloom: logs_bloom(&receipts),
            difficulty: Default::default(),
            number: ctx.number,
            gas_limit,
            gas_used: cumulative,
            timestamp: ctx.timestamp,
            extra_data: Bytes::new(),
            mix_hash: ctx.prevrandao,
            nonce: B64::ZERO,
            base_fee_per_gas: Some(base_fee),
            withdrawals_root: Some(EMPTY_ROOT),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: Some(EMPTY_REQUESTS_HASH),
            ..Default::default()
        };
        let diff = Arc::new(output.diff);
        let layer = Arc::new(Layer {
            number: ctx.number,
            diff: diff.clone(),
        });
        self.in_flight.layers.write().push(layer.clone());
        // The pool moves on to the state after this block; the transactions stay findable
        // until the block is durable.
        self.pool
            .on_executed(ctx.number, &body, &rejected, &view.with_layer(layer))
            .map_err(|e| NodeError::Store(pharos_storage::StoreError::Db(e.to_string())))?;
        // The preload stage works on the next block until it executes.
        self.start_prepare(BlockContext {
            number: ctx.number + 1,
            base_fee: self.spec.next_base_fee(&header),
            ..ctx
        });
        *self.last_executed.lock() = Some(header.clone());
        pharos_storage::crash_point("executed", ctx.number);
        self.metrics.stage("execute", started.elapsed());
        self.metrics
            .in_flight
            .set(self.in_flight.layers.read().len() as i64);
        Ok(Executed {
            header,
            body,
            receipts,
            dropped: rejected.len(),
            diff,
            stats,
            started,
        })
    }

    /// Stage 2: the state root; the header gets its parent hash and is sealed.
    pub fn merkleize(&self, executed: Executed) -> Result<Merkleized, NodeError> {
        let Executed {
            mut header,
            body,
            receipts,
            dropped,
            diff,
            stats,
            started,
        } = executed;
        let stage = Instant::now();
        let (tip, tip_hash) = self.store.tip();
        if tip + 1 != header.number {
            return Err(NodeError::Task(format!(
                "pipeline out of order: merkleizing block {} on tip {tip}",
                header.number
            )));
        }
        header.parent_hash = tip_hash;
        let sealed = self
            .store
            .merkleize(header, body, receipts.clone(), &diff)?;
        {
            let mut hashes = self.in_flight.hashes.lock();
            hashes.insert(sealed.block.number(), sealed.block.hash);
            self.in_flight.sealed.notify_all();
        }
        self.metrics.stage("merkleize", stage.elapsed());
        Ok(Merkleized {
            sealed,
            receipts,
            dropped,
            stats,
            started,
        })
    }

    /// Stage 3: the durable commit; then the block is announced and the pool told.
    pub fn flush(&self, merkleized: Merkleized) -> Result<Arc<CommittedBlock>, NodeError> {
        let Merkleized {
            sealed,
            receipts,
            dropped,
            stats,
            started,
        } = merkleized;
        let merkle_timings = sealed.timings();
        let stage = Instant::now();
        let block = self.store.persist(sealed)?;
        let number = block.number();
        let timings = self.store.last_commit_timings();
        self.metrics.stage("flush", timings.flush);
        self.metrics
            .stage("checkpoint", timings.checkpoint + merkle_timings.checkpoint);
        // The head now shows this block's state: drop its layer and hash.
        self.in_flight.layers.write().retain(|l| l.number > number);
        self.in_flight.hashes.lock().retain(|n, _| *n > number);
        self.pool.on_committed(number);
        let txs = block.body.len();
        self.metrics.block(number, txs, block.header.gas_used);
        self.metrics.dropped.inc_by(dropped as u64);
        self.metrics.pool.set(self.pool.len() as i64);
        self.metrics
            .in_flight
            .set(self.in_flight.layers.read().len() as i64);
        self.metrics.stage("commit", started.elapsed());
        if txs > 0 || dropped > 0 {
            tracing::info!(
                number,
                hash = %block.hash,
                txs,
                dropped,
                gas = block.header.gas_used,
                exec_ms = stats.total_us / 1000,
                merkleize_ms = merkle_timings.merkleize.as_millis() as u64,
                flush_ms = stage.elapsed().as_millis() as u64,
                total_ms = started.elapsed().as_millis() as u64,
                strategy = stats.strategy,
                groups = stats.groups,
                prepared = stats.prepared_hits,
                reexecuted = stats.reexecutions(txs + dropped),
                mispredicted = stats.mispredicted,
                "committed block"
            );
        } else {
            tracing::debug!(number, hash = %block.hash, "committed empty block");
        }
        let committed = Arc::new(CommittedBlock { block, receipts });
        // Nobody subscribed is fine.
        let _ = self.blocks.send(committed.clone());
        Ok(committed)
    }
}

/// Runs the pipeline: executes a block every `block_time` until `shutdown` turns true, then
/// lets the merkleize and flush stages finish the blocks in flight.
pub async fn run(
    producer: Arc<Producer>,
    block_time: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let failure: Arc<Mutex<Option<NodeError>>> = Arc::default();
    let (to_merkleize, merkleize_rx) = mpsc::sync_channel::<Executed>(1);
    let (to_flush, flush_rx) = mpsc::sync_channel::<Merkleized>(1);
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|e| NodeError::Task(format!("starting the {name} stage: {e}")))
    };
    let merkleizer = {
        let (p, failure) = (producer.clone(), failure.clone());
        spawn(
            "merkleize",
            Box::new(move || {
                for executed in merkleize_rx {
                    match p.merkleize(executed) {
                        Ok(m) => {
                            if to_flush.send(m).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "merkleize stage failed; stopping block production");
                            *failure.lock() = Some(e);
                            return;
                        }
                    }
                }
            }),
        )?
    };
    let (to_prepare, prepare_rx) = mpsc::sync_channel::<BlockContext>(1);
    let preloader = {
        let p = producer.clone();
        spawn(
            "preload",
            Box::new(move || {
                for ctx in prepare_rx {
                    p.prepare(ctx);
                }
            }),
        )?
    };
    *producer.to_prepare.lock() = Some(to_prepare);
    let flusher = {
        let (p, failure) = (producer.clone(), failure.clone());
        spawn(
            "flush",
            Box::new(move || {
                for merkleized in flush_rx {
                    if let Err(e) = p.flush(merkleized) {
                        tracing::error!(error = %e, "flush stage failed; stopping block production");
                        *failure.lock() = Some(e);
                        return;
                    }
                }
            }),
        )?
    };

    let mut ticker = tokio::time::interval(block_time);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        if failure.lock().is_some() {
            break;
        }
        let p = producer.clone();
        let sender = to_merkleize.clone();
        let sent = tokio::task::spawn_blocking(move || -> Result<bool, NodeError> {
            let executed = p.execute_next()?;
            // Blocks while the merkleize stage is busy: backpressure.
            Ok(sender.send(executed).is_ok())
        })
        .await
        .map_err(|e| NodeError::Task(e.to_string()));
        match sent {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => break,
            Ok(Err(e)) | Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Drain: the stages finish what is in flight and stop when their inputs close.
    drop(to_merkleize);
    producer.to_prepare.lock().take();
    producer.prepared.lock().number = None;
    producer.prepared_changed.notify_all();
    let joined = tokio::task::spawn_blocking(move || {
        let a = merkleizer.join();
        let b = flusher.join();
        let c = preloader.join();
        a.is_ok() && b.is_ok() && c.is_ok()
    })
    .await
    .unwrap_or(false);
    if let Some(e) = failure.lock().take() {
        return Err(e);
    }
    if !joined {
        return Err(NodeError::Task("a pipeline stage panicked".into()));
    }
    result
}
