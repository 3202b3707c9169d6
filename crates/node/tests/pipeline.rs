//! The pipelined producer (execute N+1 while N is merkleized and N-1 flushed) under load, checked
//! against a one-block-at-a-time replay with the sequential executor: every block hash (state
//! root, receipts root, gas) must be the same. The load includes a contract that stores
//! `BLOCKHASH(NUMBER - 1)`, so blocks read the hash of a parent still being merkleized and must
//! be executed again, and same-sender nonce chains spanning blocks in flight. Also scrapes the
//! Prometheus endpoint.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, Bytes, TxKind, U256};
use pharos_executor::{CodeCache, StateView};
use pharos_node::NodeConfig;
use pharos_primitives::ChainSpec;
use pharos_storage::Store;
use pharos_workload::{TxBuilder, Wallet};

/// Runtime: `SSTORE(0, BLOCKHASH(NUMBER - 1))`.
const RUNTIME: [u8; 10] = [0x43, 0x60, 0x01, 0x90, 0x03, 0x40, 0x60, 0x00, 0x55, 0x00];

fn initcode() -> Bytes {
    let mut code = vec![
        0x60, 0x0a, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, 0x0a, 0x60, 0x00, 0xf3,
    ];
    code.extend_from_slice(&RUNTIME);
    Bytes::from(code)
}

fn scrape(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_blocks_equal_a_sequential_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ChainSpec::dev(1337).expect("spec");
    let mut config = NodeConfig::dev(
        spec.clone(),
        dir.path().join("node"),
        "127.0.0.1:0".parse().expect("addr"),
    );
    // Back-to-back blocks, so execution overlaps merkleization.
    config.block_time = Duration::from_millis(1);
    config.max_block_txs = 12;
    config.exec_threads = 2;
    config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
    let node = pharos_node::launch(config).await.expect("launch");

    let wallets: Vec<Wallet> = pharos_primitives::dev_accounts()
        .expect("dev accounts")
        .iter()
        .take(6)
        .map(|(_, k)| Wallet::from_key(*k).expect("key"))
        .collect();
    let builder = TxBuilder::new(1337);
    let deployer = &wallets[0];
    let contract = deployer.address().create(0);
    let mut txs = vec![deployer.sign_recovered(builder.eip1559(
        0,
        TxKind::Create,
        U256::ZERO,
        initcode(),
        200_000,
    ))];
    let hot = [Address::repeat_byte(0xaa), wallets[1].address()];
    for round in 0..40u64 {
        for (i, w) in wallets.iter().enumerate() {
            let nonce = if i == 0 { round + 1 } else { round };
            let tx = if i % 3 == 0 {
                builder.eip1559(
                    nonce,
                    TxKind::Call(contract),
                    U256::ZERO,
                    Bytes::new(),
                    100_000,
                )
            } else {
                builder.transfer(nonce, hot[(round as usize + i) % 2], U256::from(1 + i))
            };
            txs.push(w.sign_recovered(tx));
        }
    }
    let total = txs.len();
    // Submit in slices while blocks are being produced.
    for chunk in txs.chunks(25) {
        let snap = node.store.snapshot().expect("snapshot");
        let base_fee = spec.next_base_fee(&snap.head().header);
        for tx in chunk {
            node.pool
                .add(tx.clone(), &snap, base_fee)
                .expect("admitted");
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(node.pool.is_empty() && node.pool.in_flight() == 0) {
        assert!(Instant::now() < deadline, "pool did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let metrics_addr = node.metrics_addr.expect("metrics served");
    let text = scrape(metrics_addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for needle in [
        "pharos_blocks_total",
        "pharos_transactions_total",
        "pharos_stage_seconds_bucket{le=\"0.0001\",stage=\"merkleize\"}",
        "pharos_stage_seconds_count{stage=\"execute\"}",
        "pharos_stage_seconds_count{stage=\"flush\"}",
        "pharos_stage_seconds_count{stage=\"preload\"}",
        "pharos_stage_seconds_count{stage=\"prepare\"}",
        "pharos_prepared_hits_total",
        "pharos_head",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert!(scrape(metrics_addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(scrape(metrics_addr, "garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    let reexecutions = node.metrics.reexecutions.get();
    let node_hits = node.metrics.prepared_hits.get();

    let store = node.store.clone();
    node.stop().await.expect("clean stop");

    let (head, included) = replay_matches(&store, &spec, contract);
    assert_eq!(included, total, "every transaction was included once");
    eprintln!(
        "{head} blocks, {included} transactions, {reexecutions} re-executed blocks, {} predictions made ahead",
        node_hits
    );
}

/// Re-executes every block of `store` sequentially (`pharos db verify`) and checks the contract
/// stored a real parent hash (a placeholder would have changed the state root, failing the
/// replay). Returns (blocks, transactions).
fn replay_matches(store: &Store, spec: &ChainSpec, contract: Address) -> (u64, usize) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let report = pharos_node::verify::verify_chain(store, spec, scratch.path(), |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let slot = store
        .snapshot()
        .expect("snapshot")
        .storage(contract, U256::ZERO)
        .expect("slot");
    assert!(!slot.is_zero());
    (report.head, report.transactions)
}

/// Deterministic: block N+1 is executed while block N is not merkleized yet and reads
/// `BLOCKHASH(N)`; it must wait for N's hash and execute again, and the chain must equal the
/// sequential replay.
#[test]
fn block_reading_an_unmerkleized_parent_hash_executes_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = Arc::new(ChainSpec::dev(1337).expect("spec"));
    let store = Arc::new(Store::open(&dir.path().join("db"), &spec).expect("store"));
    let pool = Arc::new(pharos_txpool::TxPool::new(pharos_txpool::PoolConfig::new(
        1337,
        1_000_000_000,
    )));
    let metrics = Arc::new(pharos_node::Metrics::default());
    let (blocks, _) = tokio::sync::broadcast::channel(16);
    let producer = Arc::new(pharos_node::Producer::new(
        store.clone(),
        pool.clone(),
        Arc::new(pharos_executor::ParallelExecutor::new(
            1337,
            Arc::new(CodeCache::default()),
            pharos_executor::ParallelConfig::with_threads(2),
        )),
        spec.clone(),
        Address::repeat_byte(0xc0),
        100,
        blocks,
        metrics.clone(),
    ));
    let wallet =
        Wallet::from_key(pharos_primitives::dev_accounts().expect("dev")[0].1).expect("key");
    let builder = TxBuilder::new(1337);
    let contract = wallet.address().create(0);
    let add = |tx| {
        let snap = store.snapshot().expect("snapshot");
        let base_fee = spec.next_base_fee(&snap.head().header);
        pool.add(wallet.sign_recovered(tx), &snap, base_fee)
            .expect("admitted");
    };
    add(builder.eip1559(0, TxKind::Create, U256::ZERO, initcode(), 200_000));
    producer.produce().expect("block 1");

    add(builder.eip1559(1, TxKind::Call(contract), U256::ZERO, Bytes::new(), 100_000));
    let first = producer.execute_next().expect("block 2 executes");
    add(builder.eip1559(2, TxKind::Call(contract), U256::ZERO, Bytes::new(), 100_000));
    // Block 3 reads BLOCKHASH(2) while block 2 waits for merkleization on another thread.
    let merkleizer = {
        let producer = producer.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            producer.merkleize(first).expect("block 2 merkleizes")
        })
    };
    let second = producer.execute_next().expect("block 3 executes");
    assert_eq!(
        metrics.reexecutions.get(),
        1,
        "block 3 ran again once the hash was known"
    );
    let merkleized = merkleizer.join().expect("thread");
    producer.flush(merkleized).expect("block 2 flushes");
    let third = producer.merkleize(second).expect("block 3 merkleizes");
    producer.flush(third).expect("block 3 flushes");
    assert!(pool.is_empty() && pool.in_flight() == 0);

    let (head, included) = replay_matches(&store, &spec, contract);
    assert_eq!((head, included), (3, 3));
    let block2 = store
        .snapshot()
        .expect("snap")
        .block_hash_of(2)
        .expect("read")
        .expect("hash");
    let stored = store
        .snapshot()
        .expect("snapshot")
        .storage(contract, U256::ZERO)
        .expect("slot");
    assert_eq!(
        stored,
        U256::from_be_bytes(block2.0),
        "block 3 stored BLOCKHASH(2)"
    );
}
