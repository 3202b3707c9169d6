//! Prometheus metrics of the block pipeline and the pool, served as text on
//! `GET /metrics` at `--metrics ADDR`.
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `pharos_stage_seconds{stage}` | histogram | time per block in each pipeline stage: `prepare` (the preload stage: look ahead in the pool, access-list inference and the batched read of predicted keys for the block after the executing one), `execute` (with its parts `predict` and `preload`: what the execute stage still had to predict and read itself), `merkleize`, `flush` (chain database commit), `checkpoint` (handing state to the background writers), `commit` (end to end from execution start to durable head) |
//! | `pharos_blocks_total` | counter | blocks committed |
//! | `pharos_transactions_total` | counter | transactions committed |
//! | `pharos_gas_total` | counter | gas used by committed blocks |
//! | `pharos_reexecutions_total` | counter | blocks executed again because they read the hash of a parent still being merkleized |
//! | `pharos_dropped_total` | counter | transactions dropped at execution |
//! | `pharos_prepared_hits_total` | counter | transactions executed with the access prediction the preload stage made while the previous block executed (compare with `pharos_transactions_total`) |
//! | `pharos_head` | gauge | number of the durable head |
//! | `pharos_pool_transactions` | gauge | transactions in the pool (pending and queued) |
//! | `pharos_in_flight_blocks` | gauge | blocks executed but not yet durable |
//! | `pharos_block_transactions` | histogram | transactions per block |

use std::{net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

type Labels = Vec<(String, String)>;

fn stage_histogram() -> Histogram {
    // 100 µs … ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The node's metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    stages: Family<Labels, Histogram, fn() -> Histogram>,
    /// Blocks committed.
    pub blocks: Counter,
    /// Transactions committed.
    pub transactions: Counter,
    /// Gas used by committed blocks.
    pub gas: Counter,
    /// Blocks executed again for a parent hash.
    pub reexecutions: Counter,
    /// Transactions dropped at execution.
    pub dropped: Counter,
    /// Transactions whose access prediction came from the preload stage.
    pub prepared_hits: Counter,
    /// Durable head.
    pub head: Gauge,
    /// Pooled transactions.
    pub pool: Gauge,
    /// Blocks executed but not durable.
    pub in_flight: Gauge,
    block_txs: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pharos");
        let stages = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            stage_histogram as fn() -> Histogram,
        );
        registry.register(
            "stage_seconds",
            "Time per block in each pipeline stage",
            stages.clone(),
        );
        let m = Self {
            stages,
            blocks: Counter::default(),
            transactions: Counter::default(),
            gas: Counter::default(),
            reexecutions: Counter::default(),
            dropped: Counter::default(),
            prepared_hits: Counter::default(),
            head: Gauge::default(),
            pool: Gauge::default(),
            in_flight: Gauge::default(),
            block_txs: Histogram::new(exponential_buckets(1.0, 2.0, 18)),
            registry: Registry::default(),
        };
        registry.register("blocks", "Blocks committed", m.blocks.clone());
        registry.register(
            "transactions",
            "Transactions committed",
            m.transactions.clone(),
        );
        registry.register("gas", "Gas used by committed blocks", m.gas.clone());
        registry.register(
            "reexecutions",
            "Blocks executed again because they read the hash of a parent being merkleized",
            m.reexecutions.clone(),
        );
        registry.register(
            "dropped",
            "Transactions dropped at execution",
            m.dropped.clone(),
        );
        registry.register(
            "prepared_hits",
            "Transactions whose access prediction the preload stage made ahead",
            m.prepared_hits.clone(),
        );
        registry.register("head", "Number of the durable head", m.head.clone());
        registry.register(
            "pool_transactions",
            "Transactions in the pool",
            m.pool.clone(),
        );
        registry.register(
            "in_flight_blocks",
            "Blocks executed but not yet durable",
            m.in_flight.clone(),
        );
        registry.register(
            "block_transactions",
            "Transactions per block",
            m.block_txs.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Records `elapsed` for pipeline stage `stage`.
    pub fn stage(&self, stage: &str, elapsed: Duration) {
        self.stages
            .get_or_create(&vec![("stage".to_string(), stage.to_string())])
            .observe(elapsed.as_secs_f64());
    }

    /// Records a committed block.
    pub fn block(&self, number: u64, txs: usize, gas: u64) {
        self.blocks.inc();
        self.transactions.inc_by(txs as u64);
        self.gas.inc_by(gas);
        self.head.set(number as i64);
        self.block_txs.observe(txs as f64);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown` turns true. Returns the bound address.
pub async fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (mut socket, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics: accept failed");
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                // Read the request head (bounded in size and time); the body, if any, is ignored.
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while len < buf.len() {
                        let n = socket.read(&mut buf[len..]).await?;
                        if n == 0 {
                            break;
                        }
                        len += n;
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
                let head = String::from_utf8_lossy(&buf[..len]);
                let line = head.lines().next().unwrap_or_default();
                let mut parts = line.split_whitespace();
                let response = match (parts.next(), parts.next()) {
                    (Some("GET"), Some("/metrics")) => {
                        let body = metrics.render();
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    (Some(_), Some(_)) => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 22\r\nConnection: close\r\n\r\ntry GET /metrics here\n".to_string()
                    }
                    _ => {
                        "HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n".to_string()
                    }
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok((bound, task))
}
