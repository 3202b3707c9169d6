//! A node that is one validator of a network: instead of a block timer, consensus decides
//! what the next block holds, and every validator executes the finalized blocks in height
//! order through the same stages (execute, merkleize, flush).
//!
//! - Lanes: every validator owns a lane, and every sender is routed to one lane
//!   ([`lane_of`]: the low bytes of the address modulo the number of validators). A
//!   validator's pool admits transactions from its clients and forwards those of other lanes
//!   to their owners (again after a while if they are still waiting: the network may drop a
//!   message). Every 50 ms a validator cuts the transactions of its own lane into batches
//!   ([`PoolSource`]), the other validators acknowledge them, and a block orders the certified
//!   batches of all lanes. A sender's transactions therefore travel in one lane, in nonce
//!   order, and are never included twice.
//! - A validator acknowledges a batch only if every transaction in it decodes, is signed for
//!   this chain, belongs to that lane and the declared gas adds up ([`batch_check`]).
//! - Blocks are paced: a leader waits until its parent is one block time old
//!   (`--block-time`); the timestamp is its clock, never below the parent's.
//! - The follower ([`follow`]) takes the finalized chain from the application, decodes each
//!   block's batches (or takes the senders recovered when the batch was checked) and executes
//!   it with the block's timestamp; a transaction that is invalid on the state (nonce, balance,
//!   gas) is left out on every validator alike.
//!
//! A validator that lacks a finalized block or lane batch (restarted, joined late, lost a
//! message) asks the others for it by digest and goes on when it arrives.
//!
//! After executing a block, a validator signs its block hash (which commits to the state
//! root) for the others; a quorum's signatures certify it and leaders carry the newest
//! certificate in their blocks. A validator whose own hash at a certified height differs halts
//! with an error naming both hashes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use std::{
    collections::{HashMap, VecDeque},
    time::Instant,
};

use alloy_primitives::{Address, B256};
use pharos_consensus::{
    Digest, Identity, ValidatorKey, ValidatorSet,
    app::{BatchCheck, BatchSource, FinalizedBlock, GossipSink, Limits, Proposal, route},
    lanes::LaneBatch,
    validator::{self, NetApplication, ValidatorConfig},
};
use pharos_primitives::{ChainSpec, RecoveredTx};
use pharos_storage::Store;
use pharos_txpool::TxPool;
use tokio::sync::watch;

use crate::{NodeError, Producer};

/// Transactions per lane batch.
const BATCH_TXS: usize = 512;
/// How often a validator cuts a batch of its lane.
const LANE_INTERVAL: Duration = Duration::from_millis(50);

/// What a validator node needs beyond a dev node.
#[derive(Debug, Clone)]
pub struct ConsensusConfig {
    /// This validator's keys.
    pub key: ValidatorKey,
    /// The validators (from the shared `validators.json`).
    pub validators: ValidatorSet,
    /// How long a leader has to propose.
    pub leader_timeout: Duration,
}

/// Frames transactions into a batch: each as a 4-byte big-endian length and its bytes.
pub fn encode_batch<'a>(txs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for tx in txs {
        out.extend_from_slice(&(tx.len() as u32).to_be_bytes());
        out.extend_from_slice(tx);
    }
    out
}

/// The transactions of a batch, senders recovered; `None` if any does not decode, carries
/// another chain id, or the framing is wrong.
pub fn decode_batch(batch: &[u8], chain_id: u64) -> Option<Vec<RecoveredTx>> {
    let mut raws = Vec::new();
    let mut rest = batch;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        raws.push(rest.get(4..4 + len)?);
        rest = &rest[4 + len..];
    }
    let recovered = pharos_txpool::recover_batch(&raws);
    let mut out = Vec::with_capacity(recovered.len());
    for tx in recovered {
        let tx = tx.ok()?;
        if tx.chain_id().is_some_and(|id| id != chain_id) {
            return None;
        }
        out.push(tx);
    }
    Some(out)
}

/// Transactions already recovered, by the hash of the batch that carries them: the leader's
/// own batches and those a validator checked before voting. Executing a finalized block takes
/// them from here instead of recovering every sender again (a block whose batches were never
/// seen, e.g. one fetched after a restart, is decoded then).
#[derive(Default)]
pub struct DecodedBatches(std::sync::Mutex<std::collections::HashMap<B256, Vec<Arc<RecoveredTx>>>>);

impl DecodedBatches {
    /// Batches kept; beyond this (proposals that never finalized) the cache starts over.
    const MAX: usize = 4_096;

    fn insert(&self, batch: &[u8], txs: Vec<Arc<RecoveredTx>>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(alloy_primitives::keccak256(batch), txs);
        }
    }

    /// The batch's transactions, from the cache or decoded now.
    fn take_or_decode(&self, batch: &[u8], chain_id: u64) -> Option<Vec<Arc<RecoveredTx>>> {
        let cached = self
            .0
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&alloy_primitives::keccak256(batch)));
        cached.or_else(|| {
            decode_batch(batch, chain_id).map(|txs| txs.into_iter().map(Arc::new).collect())
        })
    }
}

/// The lane of `sender` among `lanes` validators.
pub fn lane_of(sender: &Address, lanes: u32) -> u32 {
    let mut low = [0u8; 8];
    low.copy_from_slice(&sender.0[12..20]);
    (u64::from_be_bytes(low) % u64::from(lanes.max(1))) as u32
}

/// How long a sender's transactions handed to a lane batch are not handed out again (by then
/// the batch executed, or was lost with its owner's restart).
const PACKED_FOR: Duration = Duration::from_secs(5);

/// This validator's lane: the pool's best transactions of the senders routed to it.
pub struct PoolSource {
    /// The pool.
    pub pool: Arc<TxPool>,
    /// Most gas of one batch.
    pub gas_limit: u64,
    /// The chain's block time.
    pub block_time: Duration,
    /// Where batches are remembered decoded.
    pub decoded: Arc<DecodedBatches>,
    /// This validator's lane.
    pub lane: u32,
    /// How many lanes (validators).
    pub lanes: u32,
    /// Per sender, the nonce after its last transaction in a batch, and when.
    packed: std::sync::Mutex<HashMap<Address, (u64, Instant)>>,
}

impl PoolSource {
    /// Lane `lane` of `lanes`, fed by `pool`.
    pub fn new(
        pool: Arc<TxPool>,
        gas_limit: u64,
        block_time: Duration,
        decoded: Arc<DecodedBatches>,
        lane: u32,
        lanes: u32,
    ) -> Self {
        Self {
            pool,
            gas_limit,
            block_time,
            decoded,
            lane,
            lanes,
            packed: Default::default(),
        }
    }
}

impl BatchSource for PoolSource {
    fn lane_batch(&self, stalled: &[bool]) -> Option<(Vec<u8>, u64)> {
        let Ok(mut packed) = self.packed.lock() else {
            return None;
        };
        let now = Instant::now();
        packed.retain(|_, (_, at)| now.duration_since(*at) < PACKED_FOR);
        if packed.len() > 10_000 {
            self.pool.retain_ahead(&mut packed, |(nonce, _)| *nonce);
        }
        let next: HashMap<Address, u64> = packed.iter().map(|(a, (n, _))| (*a, *n)).collect();
        let (lane, lanes) = (self.lane, self.lanes);
        // Any fee: the base fee of the block is only known once its parent executed; an
        // underpriced transaction is left out at execution.
        let txs = self
            .pool
            .best_transactions_for(&next, 0, self.gas_limit, BATCH_TXS, &|sender| {
                route(lane_of(sender, lanes), stalled) == lane
            });
        if txs.is_empty() {
            return None;
        }
        let mut gas = 0u64;
        for tx in &txs {
            gas = gas.saturating_add(tx.gas_limit());
            packed.insert(tx.sender(), (tx.nonce() + 1, now));
        }
        let batch = encode_batch(txs.iter().map(|t| t.encoded().as_ref()));
        self.decoded.insert(&batch, txs);
        Some((batch, gas))
    }

    fn timestamp(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }

    fn block_interval(&self) -> Duration {
        self.block_time
    }
}

/// A lane batch deserves an acknowledgement when all its transactions decode for this chain,
/// every sender belongs to the lane, and the gas limits add up to the declared gas; the
/// decoded transactions are kept in `decoded` for the block's execution.
pub fn batch_check(chain_id: u64, lanes: u32, decoded: Arc<DecodedBatches>) -> BatchCheck {
    Arc::new(move |lane, batch: &[u8], gas, stalled: &[bool]| {
        let Some(txs) = decode_batch(batch, chain_id) else {
            return false;
        };
        let total = txs
            .iter()
            .try_fold(0u64, |sum, tx| sum.checked_add(tx.gas_limit()));
        // A sender belongs to its home lane, or to any lane while its home lane is stalled.
        let belongs = |tx: &RecoveredTx| {
            let home = lane_of(&tx.sender(), lanes);
            home == lane || stalled.get(home as usize).copied().unwrap_or(false)
        };
        if total != Some(gas) || !txs.iter().all(belongs) {
            return false;
        }
        decoded.insert(batch, txs.into_iter().map(Arc::new).collect());
        true
    })
}

/// The finalized blocks a validator executed, with their lane batches, kept on disk (the
/// newest [`Archive::KEEP`]): after a restart, even of the whole network at once, validators
/// still hold the blocks consensus builds on and can serve them to whoever lags.
pub struct Archive {
    dir: std::path::PathBuf,
}

impl Archive {
    /// Blocks kept.
    pub const KEEP: u64 = 256;

    /// The archive in `dir` (created).
    pub fn open(dir: std::path::PathBuf) -> Result<Self, NodeError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| NodeError::Task(format!("creating {}: {e}", dir.display())))?;
        Ok(Self { dir })
    }

    fn path(&self, height: u64) -> std::path::PathBuf {
        self.dir.join(format!("{height:020}.block"))
    }

    /// Writes block `b` (executed at `height`) and forgets the one `KEEP` below.
    pub fn save(&self, height: u64, b: &FinalizedBlock) -> Result<(), NodeError> {
        let mut out = Vec::new();
        let block = b.block.encode();
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
        for batch in &b.batches {
            let bytes = batch.encode();
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        let path = self.path(height);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &out)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| NodeError::Task(format!("archiving block {height}: {e}")))?;
        if let Some(old) = height.checked_sub(Self::KEEP) {
            let _ = std::fs::remove_file(self.path(old));
        }
        Ok(())
    }

    /// The archived blocks up to `height`, oldest first; a file that does not decode is
    /// skipped with a warning.
    pub fn load(&self, height: u64) -> Vec<(Proposal, Vec<LaneBatch>)> {
        let limits = Limits::default();
        let mut out = Vec::new();
        for h in height.saturating_sub(Self::KEEP - 1).max(1)..=height {
            let path = self.path(h);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match Self::decode(&bytes, &limits) {
                Some(entry) => out.push(entry),
                None => {
                    tracing::warn!(file = %path.display(), "an archived block does not decode; skipped")
                }
            }
        }
        out
    }

    fn decode(mut bytes: &[u8], limits: &Limits) -> Option<(Proposal, Vec<LaneBatch>)> {
        let mut next = || -> Option<Option<&[u8]>> {
            if bytes.is_empty() {
                return Some(None);
            }
            let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
            let item = bytes.get(4..4 + len)?;
            bytes = &bytes[4 + len..];
            Some(Some(item))
        };
        let block = Proposal::decode(next()??, limits).ok()?;
        let mut batches = Vec::with_capacity(block.refs.len());
        while let Some(raw) = next()? {
            batches.push(LaneBatch::decode(raw, limits.max_batch_bytes).ok()?);
        }
        Some((block, batches))
    }
}

/// Forwarded transactions still in the pool after this long are forwarded again.
const FORWARD_AGAIN: Duration = Duration::from_secs(1);
/// Times a transaction is forwarded at most (every [`FORWARD_AGAIN`] while it waits in the
/// pool: long enough for a stalled lane to be routed around).
const FORWARD_TRIES: u8 = 30;
/// Forwarded transactions remembered for a retry at most.
const FORWARD_MEMORY: usize = 200_000;

/// Runs the validator (consensus on its own runtime and threads) until `stop`; returns the
/// thread and, once it runs, its application. Transactions this node's pool admits from its
/// own clients are forwarded to the owners of their lanes; what the others forward enters
/// this pool, for this validator's lane.
#[allow(clippy::too_many_arguments)]
pub fn start_validator(
    cfg: &ConsensusConfig,
    spec: Arc<ChainSpec>,
    store: Arc<Store>,
    storage: std::path::PathBuf,
    pool: Arc<TxPool>,
    block_time: Duration,
    decoded: Arc<DecodedBatches>,
    restore: Vec<(Proposal, Vec<LaneBatch>)>,
    stop: Arc<AtomicBool>,
) -> Result<(std::thread::JoinHandle<()>, NetApplication), NodeError> {
    let chain_id = spec.chain_id();
    let lanes = cfg.validators.len() as u32;
    let me = cfg
        .validators
        .index_of(&cfg.key.identity())
        .ok_or_else(|| NodeError::Task("this validator key is not in the validator set".into()))?
        as u32;
    let gas_limit = store.head().header.gas_limit;
    let source = PoolSource::new(
        pool.clone(),
        gas_limit,
        block_time,
        decoded.clone(),
        me,
        lanes,
    );
    let (gossip_in, gossip_rx) = std::sync::mpsc::channel::<(Identity, Vec<u8>)>();
    let gossip_in = std::sync::Mutex::new(gossip_in);
    let sink: GossipSink = Arc::new(move |peer, batch: &[u8]| {
        if let Ok(tx) = gossip_in.lock() {
            let _ = tx.send((peer, batch.to_vec()));
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let config = ValidatorConfig {
        chain_id,
        key: cfg.key.clone(),
        validators: cfg.validators.clone(),
        storage,
        leader_timeout: cfg.leader_timeout,
        source: Arc::new(source),
        check: batch_check(chain_id, lanes, decoded),
        gossip_sink: Some(sink),
        lane_interval: LANE_INTERVAL,
        limits: Limits {
            max_block_gas: gas_limit,
            ..Limits::default()
        },
        restore,
    };
    let thread = std::thread::Builder::new()
        .name("consensus".into())
        .spawn({
            let stop = stop.clone();
            move || {
                if let Err(e) = validator::run(config, stop, move |app| {
                    let _ = tx.send(app);
                }) {
                    tracing::error!(error = %e, "consensus stopped");
                }
            }
        })
        .map_err(|e| NodeError::Task(format!("starting consensus: {e}")))?;
    let app = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| NodeError::Task("consensus did not start".into()))?;

    // Transactions from other validators: recover, admit like RPC does; a batch that does
    // not decode is dropped (logged at debug with the peer), a refused transaction is skipped.
    {
        let (pool, store, spec) = (pool.clone(), store.clone(), spec.clone());
        std::thread::Builder::new()
            .name("gossip-in".into())
            .spawn(move || {
                for (peer, batch) in gossip_rx {
                    let Some(txs) = decode_batch(&batch, chain_id) else {
                        tracing::debug!(%peer, "forwarded transactions that do not decode");
                        continue;
                    };
                    let Ok(snap) = store.snapshot() else { continue };
                    let base_fee = spec.next_base_fee(&snap.head().header);
                    for tx in txs {
                        let _ = pool.add(tx, &snap, base_fee);
                    }
                }
            })
            .map_err(|e| NodeError::Task(format!("starting gossip: {e}")))?;
    }
    // Transactions this pool admitted for other lanes: forwarded to the lane's owner in
    // batches, and again while they wait in the pool.
    {
        let (app, mut new_txs) = (app.clone(), pool.subscribe());
        std::thread::Builder::new()
            .name("gossip-out".into())
            .spawn(move || {
                use tokio::sync::broadcast::error::TryRecvError;
                let mut pending: Vec<Vec<Arc<RecoveredTx>>> = vec![Vec::new(); lanes as usize];
                let mut sent: VecDeque<(Instant, u8, Arc<RecoveredTx>)> = VecDeque::new();
                let flush =
                    |lane: usize,
                     txs: &mut Vec<Arc<RecoveredTx>>,
                     tries: u8,
                     sent: &mut VecDeque<(Instant, u8, Arc<RecoveredTx>)>| {
                        if txs.is_empty() {
                            return;
                        }
                        app.forward(
                            lane as u32,
                            &encode_batch(txs.iter().map(|t| t.encoded().as_ref())),
                        );
                        let now = Instant::now();
                        for tx in txs.drain(..) {
                            sent.push_back((now, tries, tx));
                        }
                        while sent.len() > FORWARD_MEMORY {
                            sent.pop_front();
                        }
                    };
                while !stop.load(Ordering::Relaxed) {
                    match new_txs.try_recv() {
                        Ok(tx) => {
                            let lane = route(lane_of(&tx.sender(), lanes), &app.stalled_lanes());
                            if lane == me {
                                continue;
                            }
                            let lane = lane as usize;
                            pending[lane].push(tx);
                            if pending[lane].len() >= BATCH_TXS {
                                flush(lane, &mut pending[lane], 1, &mut sent);
                            }
                        }
                        Err(TryRecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "transaction forwarding fell behind");
                        }
                        Err(TryRecvError::Closed) => break,
                        Err(TryRecvError::Empty) => {
                            for (lane, txs) in pending.iter_mut().enumerate() {
                                flush(lane, txs, 1, &mut sent);
                            }
                            // Forward again what is still waiting in the pool (to another
                            // lane if its own stalled meanwhile).
                            let stalled = app.stalled_lanes();
                            let mut again: Vec<Vec<Arc<RecoveredTx>>> =
                                vec![Vec::new(); lanes as usize];
                            let mut tries = 0;
                            while let Some((at, t, _)) = sent.front()
                                && at.elapsed() >= FORWARD_AGAIN
                            {
                                tries = tries.max(*t + 1);
                                if let Some((_, t, tx)) = sent.pop_front()
                                    && t < FORWARD_TRIES
                                    && pool.get(&tx.hash()).is_some()
                                {
                                    let lane = route(lane_of(&tx.sender(), lanes), &stalled);
                                    if lane != me {
                                        again[lane as usize].push(tx);
                                    }
                                }
                            }
                            for (lane, txs) in again.iter_mut().enumerate() {
                                flush(lane, txs, tries, &mut sent);
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
            .map_err(|e| NodeError::Task(format!("starting gossip: {e}")))?;
    }
    Ok((thread, app))
}

/// Executes finalized blocks in height order until `shutdown`: the follower of a validator.
/// Each executed block is archived; `last_digest` is the executed head's consensus digest
/// (from the archive), which the next finalized block must extend.
#[allow(clippy::too_many_arguments)]
pub fn follow(
    producer: Arc<Producer>,
    app: NetApplication,
    decoded: Arc<DecodedBatches>,
    chain_id: u64,
    archive: Archive,
    last_digest: Option<Digest>,
    shutdown: watch::Receiver<bool>,
    stop_consensus: Arc<AtomicBool>,
) -> Result<(), NodeError> {
    let mut executed = producer.head_number();
    let mut last_digest = last_digest;
    let mut reported_missing = None;
    let result = loop {
        if *shutdown.borrow() {
            break Ok(());
        }
        // A quorum certified another result for a block this validator executed: its state
        // is not the network's. Halt rather than fork silently.
        if let Some(why) = app.divergence() {
            tracing::error!("{why}: halting");
            break Err(NodeError::Task(format!("{why}: halting")));
        }
        let chain = match app.sync_from(executed + 1) {
            Ok(chain) => chain,
            Err(missing) => {
                if reported_missing != Some(missing) {
                    tracing::info!(%missing, "fetching finalized data from the other validators");
                    reported_missing = Some(missing);
                }
                std::thread::sleep(Duration::from_millis(25));
                continue;
            }
        };
        if chain.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let mut failed = None;
        for FinalizedBlock {
            digest,
            block,
            batches,
        } in chain
        {
            if block.height != executed + 1 {
                failed = Some(NodeError::Task(format!(
                    "finalized block {digest} has height {}, the chain is at {executed}: halting",
                    block.height
                )));
                break;
            }
            if let Some(parent) = last_digest
                && block.parent != parent
            {
                failed = Some(NodeError::Task(format!(
                    "finalized block {digest} at height {} does not extend the executed chain: halting",
                    block.height
                )));
                break;
            }
            let mut txs = Vec::new();
            for batch in &batches {
                match decoded.take_or_decode(&batch.payload, chain_id) {
                    Some(batch_txs) => txs.extend(batch_txs),
                    // Validators only vote for blocks whose batches decode.
                    None => {
                        failed = Some(NodeError::Task(format!(
                            "finalized block {digest} holds a batch that does not decode: halting"
                        )));
                        break;
                    }
                }
            }
            if failed.is_some() {
                break;
            }
            let step = producer
                .execute_given(txs, block.timestamp / 1_000)
                .and_then(|e| producer.merkleize(e))
                .and_then(|m| producer.flush(m));
            match step {
                Ok(committed) => {
                    executed = committed.block.header.number;
                    last_digest = Some(digest);
                    // Signed for the others; a quorum's signatures certify the result.
                    app.executed(executed, committed.block.hash.0);
                    let done = FinalizedBlock {
                        digest,
                        block,
                        batches,
                    };
                    if let Err(e) = archive.save(executed, &done) {
                        tracing::warn!(error = %e, "archiving a finalized block failed");
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            tracing::error!(error = %e, "the follower stopped");
            break Err(e);
        }
    };
    stop_consensus.store(true, Ordering::Relaxed);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_consensus::lanes::Tip;

    #[test]
    fn the_archive_keeps_recent_blocks_and_skips_broken_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = Archive::open(dir.path().join("finalized")).expect("open");
        let batch = LaneBatch {
            lane: 0,
            at: Tip { epoch: 1, seq: 1 },
            gas: 21_000,
            payload: vec![1, 2, 3],
        };
        let block = |height: u64| Proposal {
            height,
            view: height + 3,
            timestamp: 1_000 * height,
            parent: pharos_consensus::app::genesis_digest(1),
            tips: vec![Tip { epoch: 1, seq: 1 }],
            refs: Vec::new(),
            state: None,
            evidence: Vec::new(),
        };
        for h in 1..=Archive::KEEP + 10 {
            let b = FinalizedBlock {
                digest: block(h).digest(),
                block: block(h),
                batches: vec![Arc::new(batch.clone())],
            };
            archive.save(h, &b).expect("save");
        }
        let loaded = archive.load(Archive::KEEP + 10);
        assert_eq!(
            loaded.len() as u64,
            Archive::KEEP,
            "only the newest are kept"
        );
        assert_eq!(loaded[0].0, block(11));
        assert_eq!(
            loaded
                .last()
                .map(|(b, batches)| (b.height, batches.clone())),
            Some((Archive::KEEP + 10, vec![batch]))
        );
        // Nothing above the executed head; a broken file is skipped.
        assert_eq!(archive.load(20).len(), 10);
        std::fs::write(archive.path(15), b"garbage").expect("write");
        assert_eq!(archive.load(20).len(), 9);
        std::fs::write(archive.path(16), [0, 0, 0, 200, 1]).expect("write");
        assert_eq!(archive.load(20).len(), 8);
    }
}
