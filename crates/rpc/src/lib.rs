//! Serves the Ethereum JSON-RPC API over HTTP and WebSocket on one port, so cast, ethers, viem,
//! web3.py and wallets work against a Pharos node unchanged.
//!
//! # Design
//! Every call reads from a storage [`Snapshot`](pharos_storage::Snapshot) (a consistent view of
//! the head block and its state) and writes only through the transaction pool. Simulations
//! (`eth_call`, `eth_estimateGas`, `eth_createAccessList`) run revm over the snapshot with the
//! same environments block execution uses. New blocks reach subscriptions and polling filters
//! through a broadcast channel of [`CommittedBlock`]s that the block producer publishes.
//!
//! Errors follow geth: `-32000` with geth's message for transaction and state errors, `3` with
//! the revert data for reverts, `-32601` for unknown methods, `-32602` for bad parameters,
//! `-32005` when a query exceeds a configured limit.
//!
//! This crate never changes state except by handing transactions to the pool.
#![warn(missing_docs)]

mod call;
mod convert;
mod error;
mod eth;
mod fees;
mod filters;
mod logs;
mod middleware;
mod subscriptions;

use std::{net::SocketAddr, sync::Arc};

use jsonrpsee::{
    RpcModule,
    server::{BatchRequestConfig, Server, ServerConfig, ServerHandle},
};
use pharos_executor::CodeCache;
use pharos_primitives::{Block, ChainSpec, StoredReceipt};
use pharos_storage::Store;
use pharos_txpool::TxPool;
use pharos_workload::Wallet;
use tokio::sync::broadcast;

pub use error::RpcError;

/// A block as committed, with its receipts: what subscriptions and filters are fed.
#[derive(Debug, Clone)]
pub struct CommittedBlock {
    /// The block.
    pub block: Block,
    /// Its receipts, one per transaction.
    pub receipts: Vec<StoredReceipt>,
}

/// Limits and addresses of the RPC server.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Where to listen (HTTP and WebSocket share it).
    pub addr: SocketAddr,
    /// Largest request body, in bytes.
    pub max_request_body: u32,
    /// Largest response body, in bytes.
    pub max_response_body: u32,
    /// Most calls in one batch.
    pub max_batch: u32,
    /// Most open connections.
    pub max_connections: u32,
    /// Most blocks one `eth_getLogs` may scan.
    pub max_block_range: u64,
    /// Most logs one `eth_getLogs` may return.
    pub max_logs: usize,
    /// Gas cap of `eth_call` and `eth_estimateGas`.
    pub gas_cap: u64,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            max_request_body: 10 * 1024 * 1024,
            max_response_body: 100 * 1024 * 1024,
            max_batch: 10_000,
            max_connections: 1_000,
            max_block_range: 10_000,
            max_logs: 20_000,
            gas_cap: 50_000_000,
        }
    }
}

/// What the RPC methods read and write.
pub struct RpcContext {
    /// The chain database.
    pub store: Arc<Store>,
    /// The transaction pool.
    pub pool: Arc<TxPool>,
    /// The chain spec.
    pub spec: Arc<ChainSpec>,
    /// Analysed contract code, shared with block execution.
    pub code_cache: Arc<CodeCache>,
    /// Committed blocks, as they are committed.
    pub blocks: broadcast::Sender<Arc<CommittedBlock>>,
    /// Accounts `eth_accounts` lists and `eth_sendTransaction` signs for (dev mode only).
    pub dev_wallets: Vec<Wallet>,
    /// Limits.
    pub config: RpcConfig,
    filters: filters::Filters,
    tip_cache: fees::TipCache,
}

impl RpcContext {
    /// A context over the node's components.
    pub fn new(
        store: Arc<Store>,
        pool: Arc<TxPool>,
        spec: Arc<ChainSpec>,
        code_cache: Arc<CodeCache>,
        blocks: broadcast::Sender<Arc<CommittedBlock>>,
        dev_wallets: Vec<Wallet>,
        config: RpcConfig,
    ) -> Self {
        Self {
            store,
            pool,
            spec,
            code_cache,
            blocks,
            dev_wallets,
            config,
            filters: filters::Filters::default(),
            tip_cache: Default::default(),
        }
    }
}

/// The version string `web3_clientVersion` returns.
pub fn client_version() -> String {
    format!(
        "pharos/v{}/{}-{}/rust",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// All methods, registered on one module.
pub fn build_module(ctx: Arc<RpcContext>) -> Result<RpcModule<Arc<RpcContext>>, RpcError> {
    let mut module = RpcModule::new(ctx);
    eth::register(&mut module)?;
    call::register(&mut module)?;
    fees::register(&mut module)?;
    logs::register(&mut module)?;
    filters::register(&mut module)?;
    subscriptions::register(&mut module)?;
    Ok(module)
}

/// Subscription ids as geth makes them: `0x` and 32 hex digits.
#[derive(Debug, Clone, Copy)]
struct HexIdProvider;

impl jsonrpsee::core::traits::IdProvider for HexIdProvider {
    fn next_id(&self) -> jsonrpsee::types::SubscriptionId<'static> {
        let n: u128 = rand::random();
        jsonrpsee::types::SubscriptionId::Str(format!("0x{n:032x}").into())
    }
}

/// Starts the server; it runs until the handle is stopped or dropped.
pub async fn start(ctx: Arc<RpcContext>) -> Result<(SocketAddr, ServerHandle), RpcError> {
    let config = ctx.config.clone();
    let module = build_module(ctx.clone())?;
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_body)
        .max_response_body_size(config.max_response_body)
        .max_connections(config.max_connections)
        .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch))
        .set_id_provider(HexIdProvider)
        .build();
    let cors = tower_http::cors::CorsLayer::permissive();
    let rpc_middleware =
        jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new().layer_fn(move |inner| {
            middleware::RecoverSenders {
                inner,
                ctx: ctx.clone(),
            }
        });
    let server = Server::builder()
        .set_config(server_config)
        .set_rpc_middleware(rpc_middleware)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors))
        .build(config.addr)
        .await
        .map_err(|e| RpcError::Bind(config.addr, e.to_string()))?;
    let addr = server
        .local_addr()
        .map_err(|e| RpcError::Bind(config.addr, e.to_string()))?;
    Ok((addr, server.start(module)))
}
