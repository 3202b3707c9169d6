//! Wires a node together — storage, transaction pool, block production and the RPC server — and
//! runs the block pipeline: take the best pooled transactions, execute, commit, announce.
//!
//! # Design
//! The [`producer`] is a three-stage pipeline (execute → merkleize → flush) on a timer
//! (`--block-time`): each tick executes the best pooled transactions on the head's state plus
//! the blocks still in flight, while earlier blocks are merkleized and written. Only after its
//! durable commit is a block announced (RPC subscriptions, filters) and the pool told, so a
//! client never sees a block that a crash could take back. [`metrics`] serves per-stage timings
//! to Prometheus (`--metrics`).
//!
//! This crate holds no protocol logic of its own: rules live in `evm`, `executor`, `txpool` and
//! `storage`.
#![warn(missing_docs)]

pub mod consensus;
pub mod metrics;
pub mod producer;
pub mod verify;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use alloy_primitives::Address;
use pharos_executor::{BlockExecutor, CodeCache, ParallelConfig, ParallelExecutor};
use pharos_primitives::ChainSpec;
use pharos_rpc::{RpcConfig, RpcContext};
use pharos_storage::Store;
use pharos_txpool::{PoolConfig, TxPool};
use pharos_workload::Wallet;
use tokio::{sync::watch, task::JoinHandle};

pub use metrics::Metrics;
pub use producer::Producer;

/// Why the node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] pharos_storage::StoreError),
    /// The RPC server failed.
    #[error(transparent)]
    Rpc(#[from] pharos_rpc::RpcError),
    /// Executing a block failed for a reason other than an invalid transaction.
    #[error("block execution: {0}")]
    Exec(#[from] pharos_executor::ExecError),
    /// The dev accounts could not be derived.
    #[error(transparent)]
    Spec(#[from] pharos_primitives::ChainSpecError),
    /// A background task panicked or was cancelled.
    #[error("task failed: {0}")]
    Task(String),
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory holding the database.
    pub datadir: PathBuf,
    /// The chain.
    pub spec: ChainSpec,
    /// RPC server settings.
    pub rpc: RpcConfig,
    /// Interval between blocks.
    pub block_time: Duration,
    /// Threads for block execution.
    pub exec_threads: usize,
    /// Dev mode: unlocked test accounts for `eth_sendTransaction` and `eth_accounts`.
    pub dev: bool,
    /// Receiver of priority fees.
    pub coinbase: Address,
    /// Most transactions per block.
    pub max_block_txs: usize,
    /// Transaction pool limits.
    pub pool: PoolConfig,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Run as one validator of a network (blocks come from consensus, not a timer).
    pub consensus: Option<consensus::ConsensusConfig>,
}

impl NodeConfig {
    /// A dev node on `spec` storing in `datadir`, serving RPC on `rpc_addr`.
    pub fn dev(spec: ChainSpec, datadir: PathBuf, rpc_addr: SocketAddr) -> Self {
        let pool = PoolConfig::new(spec.chain_id(), spec.genesis_header().gas_limit);
        let coinbase = pharos_primitives::chain::dev_treasury().unwrap_or_default();
        Self {
            datadir,
            spec,
            rpc: RpcConfig {
                addr: rpc_addr,
                ..RpcConfig::default()
            },
            block_time: Duration::from_millis(500),
            exec_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            dev: true,
            coinbase,
            max_block_txs: 50_000,
            pool,
            metrics: None,
            consensus: None,
        }
    }

    /// Path of the database file.
    pub fn db_path(&self) -> PathBuf {
        self.datadir.join("chain.redb")
    }
}

/// A started node. Dropping it asks block production to stop (without waiting); call
/// [`RunningNode::stop`] to wait for a clean stop.
pub struct RunningNode {
    /// Address the RPC server listens on.
    pub rpc_addr: SocketAddr,
    /// The chain database.
    pub store: Arc<Store>,
    /// The pool.
    pub pool: Arc<TxPool>,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// Where the metrics are served, when they are.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    producer: JoinHandle<Result<(), NodeError>>,
    rpc: jsonrpsee::server::ServerHandle,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.rpc.stop();
    }
}

impl RunningNode {
    /// Stops block production after the block in progress and shuts the RPC server down.
    pub async fn stop(mut self) -> Result<(), NodeError> {
        let _ = self.shutdown.send(true);
        let _ = self.rpc.stop();
        self.rpc.clone().stopped().await;
        (&mut self.producer)
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// Waits until block production ends (it only ends on error or [`RunningNode::stop`]).
    pub async fn wait(&mut self) -> Result<(), NodeError> {
        (&mut self.producer)
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?
    }
}

/// Opens the database (writing genesis on first start), starts the RPC server and block
/// production.
pub async fn launch(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let spec = Arc::new(config.spec.clone());
    let store = {
        let path = config.db_path();
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || Store::open(&path, &spec))
            .await
            .map_err(|e| NodeError::Task(e.to_string()))??
    };
    let store = Arc::new(store);
    let head = store.head();
    tracing::info!(
        chain_id = spec.chain_id(),
        genesis = %spec.genesis_hash(),
        head = head.header.number,
        hash = %head.hash,
        datadir = %config.datadir.display(),
        "opened chain database"
    );
    let pool = Arc::new(TxPool::new(config.pool.clone()));
    let code_cache = Arc::new(CodeCache::default());
    let executor: Arc<dyn BlockExecutor> = Arc::new(ParallelExecutor::new(
        spec.chain_id(),
        code_cache.clone(),
        ParallelConfig::with_threads(config.exec_threads),
    ));
    let (blocks, _) = tokio::sync::broadcast::channel(1024);
    let dev_wallets = if config.dev {
        pharos_primitives::dev_accounts()?
            .iter()
            .take(10)
            .filter_map(|(_, key)| Wallet::from_key(*key).ok())
            .collect()
    } else {
        Vec::new()
    };
    let ctx = Arc::new(RpcContext::new(
        store.clone(),
        pool.clone(),
        spec.clone(),
        code_cache,
        blocks.clone(),
        dev_wallets,
        config.rpc.clone(),
    ));
    let (rpc_addr, rpc) = pharos_rpc::start(ctx).await?;
    tracing::info!(%rpc_addr, "JSON-RPC listening (HTTP and WebSocket)");

    let metrics = Arc::new(Metrics::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let metrics_addr = match config.metrics {
        Some(addr) => {
            let (bound, _task) = metrics::serve(metrics.clone(), addr, shutdown_rx.clone())
                .await
                .map_err(|e| NodeError::Task(format!("serving metrics on {addr}: {e}")))?;
            tracing::info!(addr = %bound, "Prometheus metrics at /metrics");
            Some(bound)
        }
        None => None,
    };
    let producer = Arc::new(Producer::new(
        store.clone(),
        pool.clone(),
        executor,
        spec,
        config.coinbase,
        config.max_block_txs,
        blocks,
        metrics.clone(),
    ));
    let producer = match &config.consensus {
        None => tokio::spawn(producer::run(producer, config.block_time, shutdown_rx)),
        Some(cc) => {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let decoded: Arc<consensus::DecodedBatches> = Arc::default();
            let chain_id = config.spec.chain_id();
            let archive =
                consensus::Archive::open(config.datadir.join("consensus").join("finalized"))?;
            let restore = archive.load(store.head().header.number);
            // The executed head's consensus digest, when archived: the next finalized block
            // must extend it.
            let last_digest = restore
                .last()
                .filter(|(b, _)| b.height == store.head().header.number)
                .map(|(b, _)| b.digest());
            let (thread, app) = {
                let (cc, storage, stop, spec, store, pool, block_time, decoded) = (
                    cc.clone(),
                    config.datadir.join("consensus"),
                    stop.clone(),
                    Arc::new(config.spec.clone()),
                    store.clone(),
                    pool.clone(),
                    config.block_time,
                    decoded.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    consensus::start_validator(
                        &cc, spec, store, storage, pool, block_time, decoded, restore, stop,
                    )
                })
                .await
                .map_err(|e| NodeError::Task(e.to_string()))??
            };
            tokio::task::spawn_blocking(move || {
                let result = consensus::follow(
                    producer,
                    app,
                    decoded,
                    chain_id,
                    archive,
                    last_digest,
                    shutdown_rx,
                    stop,
                );
                let _ = thread.join();
                result
            })
        }
    };
    Ok(RunningNode {
        rpc_addr,
        store,
        pool,
        metrics,
        metrics_addr,
        shutdown,
        producer,
        rpc,
    })
}
