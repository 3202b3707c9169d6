//! Block production: every tick, the best pooled transactions become a committed block.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_primitives::{Address, B64, B256, Bytes};
use pharos_evm::BlockContext;
use pharos_executor::{BlockExecutor, TxResult};
use pharos_primitives::{
    ChainSpec,
    block::{receipts_root, transactions_root},
    receipt::{build_receipt, logs_bloom},
};
use pharos_rpc::CommittedBlock;
use pharos_storage::Store;
use pharos_txpool::TxPool;
use tokio::sync::{broadcast, watch};

use crate::NodeError;

/// Empty trie root, for the post-Shanghai header fields this chain keeps empty.
const EMPTY_ROOT: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// Builds blocks from the pool on top of the stored head.
pub struct Producer {
    /// Where blocks are committed.
    pub store: Arc<Store>,
    /// Where transactions come from.
    pub pool: Arc<TxPool>,
    /// Executes each block.
    pub executor: Arc<dyn BlockExecutor>,
    /// Fee rules.
    pub spec: Arc<ChainSpec>,
    /// Receiver of priority fees.
    pub coinbase: Address,
    /// Most transactions per block.
    pub max_block_txs: usize,
    /// Where committed blocks are announced.
    pub blocks: broadcast::Sender<Arc<CommittedBlock>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Producer {
    /// Builds, executes and commits one block; announces it; updates the pool. Blocking.
    pub fn produce(&self) -> Result<Arc<CommittedBlock>, NodeError> {
        let started = Instant::now();
        let snapshot = self.store.snapshot()?;
        let parent = snapshot.head().clone();
        let base_fee = self.spec.next_base_fee(&parent.header);
        let gas_limit = parent.header.gas_limit;
        let candidates = self
            .pool
            .best_transactions(base_fee, gas_limit, self.max_block_txs);
        let ctx = BlockContext {
            number: parent.header.number + 1,
            timestamp: now_secs().max(parent.header.timestamp),
            beneficiary: self.coinbase,
            gas_limit,
            base_fee,
            prevrandao: BlockContext::prevrandao_for(parent.hash),
            excess_blob_gas: 0,
        };
        let output = self.executor.execute(&ctx, &candidates, &snapshot)?;
        let executed = started.elapsed();
        let exec_stats = output.stats.clone();

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
            parent_hash: parent.hash,
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
        let block = self
            .store
            .commit_block(header, body, receipts.clone(), &output.diff)?;
        let committed = started.elapsed();
        let after = self.store.snapshot()?;
        self.pool
            .on_block(&block.body, &rejected, &after)
            .map_err(|e| NodeError::Store(pharos_storage::StoreError::Db(e.to_string())))?;
        let txs = block.body.len();
        if txs > 0 || !rejected.is_empty() {
            tracing::info!(
                number = block.number(),
                hash = %block.hash,
                txs,
                dropped = rejected.len(),
                gas = block.header.gas_used,
                exec_ms = executed.as_millis() as u64,
                total_ms = committed.as_millis() as u64,
                strategy = exec_stats.strategy,
                groups = exec_stats.groups,
                reexecuted = exec_stats.reexecutions(txs + rejected.len()),
                mispredicted = exec_stats.mispredicted,
                "committed block"
            );
        } else {
            tracing::debug!(number = block.number(), hash = %block.hash, "committed empty block");
        }
        let committed = Arc::new(CommittedBlock { block, receipts });
        // Nobody subscribed is fine.
        let _ = self.blocks.send(committed.clone());
        Ok(committed)
    }
}

/// Produces a block every `block_time` until `shutdown` turns true.
pub async fn run(
    producer: Arc<Producer>,
    block_time: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let mut ticker = tokio::time::interval(block_time);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.produce())
            .await
            .map_err(|e| NodeError::Task(e.to_string()))??;
    }
}
