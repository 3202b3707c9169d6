//! A node that is one validator of a network: instead of a block timer, consensus decides
//! what the next block holds, and every validator executes the finalized blocks in height
//! order through the same stages (execute, merkleize, flush).
//!
//! - The leader of a view proposes the best transactions of its own pool
//!   ([`PoolSource`]), framed into batches; its timestamp is its clock, never below the parent's,
//!   and it waits until the parent is one block time old (`--block-time`) before proposing.
//! - A validator votes for a proposal only if every transaction in it decodes, is signed for
//!   this chain and recovers a sender ([`batch_check`]).
//! - The follower ([`follow`]) takes the finalized chain from the application, decodes each
//!   block's transactions and executes it with the block's timestamp; a transaction that is
//!   invalid on the state (nonce, balance, gas) is left out on every validator alike.
//!
//! A validator that lacks a finalized block's bytes (restarted, joined late, lost a message)
//! asks the others for it by digest and goes on when it arrives.
//!
//! Not yet: lanes (all validators proposing at once), forwarding transactions between pools,
//! and certifying state roots.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use std::collections::HashSet;

use alloy_primitives::B256;
use pharos_consensus::{
    Identity, ValidatorKey, ValidatorSet,
    app::{BatchCheck, BatchSource, GossipSink},
    validator::{self, NetApplication, ValidatorConfig},
};
use pharos_primitives::{ChainSpec, RecoveredTx};
use pharos_storage::Store;
use pharos_txpool::TxPool;
use tokio::sync::watch;

use crate::{NodeError, Producer};

/// Transactions per batch of a proposal.
const BATCH_TXS: usize = 512;

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

/// The leader's transactions: the pool's best, as it would fill a local block.
pub struct PoolSource {
    /// The pool.
    pub pool: Arc<TxPool>,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Most transactions per block.
    pub max_txs: usize,
    /// The chain's block time.
    pub block_time: Duration,
    /// Where the leader's own batches are remembered decoded.
    pub decoded: Arc<DecodedBatches>,
}

impl BatchSource for PoolSource {
    fn batches(&self, _height: u64) -> Vec<Vec<u8>> {
        // Any fee: the base fee of the block is only known once its parent executed; an
        // underpriced transaction is left out at execution.
        let txs = self.pool.best_transactions(0, self.gas_limit, self.max_txs);
        txs.chunks(BATCH_TXS)
            .map(|chunk| {
                let batch = encode_batch(chunk.iter().map(|t| t.encoded().as_ref()));
                self.decoded.insert(&batch, chunk.to_vec());
                batch
            })
            .collect()
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

/// A proposal's batch is acceptable when all its transactions decode for this chain; the
/// decoded transactions are kept in `decoded` for the block's execution.
pub fn batch_check(chain_id: u64, decoded: Arc<DecodedBatches>) -> BatchCheck {
    Arc::new(move |batch: &[u8]| match decode_batch(batch, chain_id) {
        Some(txs) => {
            decoded.insert(batch, txs.into_iter().map(Arc::new).collect());
            true
        }
        None => false,
    })
}

/// Runs the validator (consensus on its own runtime and threads) until `stop`; returns the
/// thread and, once it runs, its application. Transactions this node's pool admits from its
/// own clients are forwarded to the other validators, and theirs enter this pool, so whoever
/// leads next can include a transaction wherever it was sent.
pub fn start_validator(
    cfg: &ConsensusConfig,
    spec: Arc<ChainSpec>,
    store: Arc<Store>,
    storage: std::path::PathBuf,
    source: PoolSource,
    stop: Arc<AtomicBool>,
) -> Result<(std::thread::JoinHandle<()>, NetApplication), NodeError> {
    let chain_id = spec.chain_id();
    let pool = source.pool.clone();
    let (gossip_in, gossip_rx) = std::sync::mpsc::channel::<(Identity, Vec<u8>)>();
    let gossip_in = std::sync::Mutex::new(gossip_in);
    let sink: GossipSink = Arc::new(move |peer, batch: &[u8]| {
        if let Ok(tx) = gossip_in.lock() {
            let _ = tx.send((peer, batch.to_vec()));
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let decoded = source.decoded.clone();
    let config = ValidatorConfig {
        chain_id,
        key: cfg.key.clone(),
        validators: cfg.validators.clone(),
        storage,
        leader_timeout: cfg.leader_timeout,
        source: Arc::new(source),
        check: batch_check(chain_id, decoded),
        gossip_sink: Some(sink),
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
    let from_peers: Arc<std::sync::Mutex<HashSet<B256>>> = Arc::default();
    {
        let (pool, store, spec, from_peers) = (
            pool.clone(),
            store.clone(),
            spec.clone(),
            from_peers.clone(),
        );
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
                    if let Ok(mut seen) = from_peers.lock() {
                        seen.extend(txs.iter().map(|t| t.hash()));
                    }
                    for tx in txs {
                        let _ = pool.add(tx, &snap, base_fee);
                    }
                }
            })
            .map_err(|e| NodeError::Task(format!("starting gossip: {e}")))?;
    }
    // Transactions this pool admitted from its own clients: forwarded in batches.
    {
        let (app, mut new_txs) = (app.clone(), pool.subscribe());
        std::thread::Builder::new()
            .name("gossip-out".into())
            .spawn(move || {
                use tokio::sync::broadcast::error::TryRecvError;
                let mut pending: Vec<Arc<RecoveredTx>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match new_txs.try_recv() {
                        Ok(tx) => {
                            let relayed = from_peers
                                .lock()
                                .map(|mut seen| seen.remove(&tx.hash()))
                                .unwrap_or(false);
                            if !relayed {
                                pending.push(tx);
                            }
                            if pending.len() < BATCH_TXS {
                                continue;
                            }
                        }
                        Err(TryRecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "transaction forwarding fell behind");
                            continue;
                        }
                        Err(TryRecvError::Closed) => break,
                        Err(TryRecvError::Empty) => {
                            if pending.is_empty() {
                                std::thread::sleep(Duration::from_millis(5));
                                continue;
                            }
                        }
                    }
                    app.gossip(&encode_batch(pending.iter().map(|t| t.encoded().as_ref())));
                    pending.clear();
                }
            })
            .map_err(|e| NodeError::Task(format!("starting gossip: {e}")))?;
    }
    Ok((thread, app))
}

/// Executes finalized blocks in height order until `shutdown`: the follower of a validator.
pub fn follow(
    producer: Arc<Producer>,
    app: NetApplication,
    decoded: Arc<DecodedBatches>,
    chain_id: u64,
    shutdown: watch::Receiver<bool>,
    stop_consensus: Arc<AtomicBool>,
) -> Result<(), NodeError> {
    let mut executed = producer.head_number();
    let mut last_digest = None;
    let mut reported_missing = None;
    let result = loop {
        if *shutdown.borrow() {
            break Ok(());
        }
        let chain = match app.sync_from(executed + 1) {
            Ok(chain) => chain,
            Err(missing) => {
                if reported_missing != Some(missing) {
                    tracing::info!(block = %missing, "fetching a finalized block from the other validators");
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
        for (digest, block) in chain {
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
            for batch in &block.batches {
                match decoded.take_or_decode(batch, chain_id) {
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
