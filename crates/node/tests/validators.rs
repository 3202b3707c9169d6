//! Four nodes, each a validator, on 127.0.0.1 in one process: consensus decides the blocks,
//! every node executes the finalized ones, and all end with the same blocks and state —
//! including transactions that were only ever sent to one node's pool (forwarded to the owner
//! of the sender's lane, then cut into that lane's batches).

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use pharos_consensus::{ValidatorKey, ValidatorSet};
use pharos_executor::StateView as _;
use pharos_node::{
    NodeConfig, RunningNode,
    consensus::{ConsensusConfig, lane_of},
};
use pharos_primitives::ChainSpec;
use pharos_workload::{TxBuilder, Wallet};

async fn wait(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validator_nodes_agree_on_blocks_and_state() {
    // `PHAROS_TEST_LOG=info` (any tracing filter) shows what the nodes do.
    if let Ok(filter) = std::env::var("PHAROS_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ChainSpec::dev(1337).expect("spec");
    let mut rng = pharos_consensus::secure_rng();
    let keys: Vec<ValidatorKey> = (0..4).map(|_| ValidatorKey::generate(&mut rng)).collect();
    let infos: Vec<_> = keys
        .iter()
        .map(|k| {
            k.info(
                1_000,
                format!("127.0.0.1:{}", pharos_consensus::testing::free_port()),
            )
        })
        .collect();
    let set = ValidatorSet::new(&infos).expect("set");
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut configs = Vec::new();
    let started = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        let mut config = NodeConfig::dev(
            spec.clone(),
            dir.path().join(format!("node-{i}")),
            "127.0.0.1:0".parse().expect("addr"),
        );
        config.exec_threads = 1;
        config.block_time = Duration::from_millis(200);
        config.consensus = Some(ConsensusConfig {
            key: key.clone(),
            validators: set.clone(),
            leader_timeout: Duration::from_secs(1),
        });
        configs.push(config.clone());
        nodes.push(pharos_node::launch(config).await.expect("launch"));
    }

    // Transfers from three dev accounts, each sent to one node only.
    let wallets: Vec<Wallet> = pharos_primitives::dev_accounts()
        .expect("dev accounts")
        .iter()
        .take(3)
        .map(|(_, k)| Wallet::from_key(*k).expect("key"))
        .collect();
    let builder = TxBuilder::new(1337);
    let per_sender = 40u64;
    for (w, wallet) in wallets.iter().enumerate() {
        let node = &nodes[w];
        let snap = node.store.snapshot().expect("snapshot");
        for nonce in 0..per_sender {
            let tx = wallet.sign_recovered(builder.transfer(
                nonce,
                Address::repeat_byte(0x40 + w as u8),
                U256::from(1 + nonce),
            ));
            node.pool.add(tx, &snap, 1_000_000_000).expect("admitted");
        }
    }
    // A transaction sent to a node that does not own the sender's lane is forwarded to the
    // owner: one with a nonce gap, so it stays queued there and is never executed.
    let gapped = wallets[0].sign_recovered(builder.transfer(
        per_sender + 5,
        Address::repeat_byte(0x77),
        U256::from(1),
    ));
    let gapped_hash = gapped.hash();
    let lane_of_node = |i: usize| set.index_of(&keys[i].identity()).expect("member") as u32;
    let owner_lane = lane_of(&wallets[0].address(), 4);
    let owner = (0..4)
        .find(|i| lane_of_node(*i) == owner_lane)
        .expect("an owner");
    let entry = (0..4).find(|i| *i != owner).expect("another node");
    {
        let snap = nodes[entry].store.snapshot().expect("snapshot");
        nodes[entry]
            .pool
            .add(gapped, &snap, 1_000_000_000)
            .expect("queued");
    }
    wait(
        "the transaction is forwarded to its lane's owner",
        Duration::from_secs(60),
        || nodes[owner].pool.get(&gapped_hash).is_some(),
    )
    .await;
    // Every node executes every transfer.
    let nonce_everywhere = |nodes: &[RunningNode]| {
        nodes.iter().all(|n| {
            let snap = n.store.snapshot().expect("snapshot");
            wallets.iter().all(|w| {
                snap.account(w.address())
                    .ok()
                    .flatten()
                    .is_some_and(|a| a.nonce == per_sender)
            })
        })
    };
    wait(
        "all transfers executed on all nodes",
        Duration::from_secs(120),
        || nonce_everywhere(&nodes),
    )
    .await;
    // Same blocks (hash covers the state root) at every height all of them reached.
    let common = nodes
        .iter()
        .map(|n| n.store.head().header.number)
        .min()
        .expect("nodes");
    assert!(common > 0);
    for height in 1..=common {
        let hashes: Vec<_> = nodes
            .iter()
            .map(|n| {
                n.store
                    .snapshot()
                    .expect("snapshot")
                    .block_hash_of(height)
                    .expect("read")
            })
            .collect();
        assert!(
            hashes.iter().all(|h| h.is_some() && *h == hashes[0]),
            "block {height} differs: {hashes:?}"
        );
    }
    // Blocks are paced by the block time: each timestamp (milliseconds in the proposal, seconds
    // in the header) is at least the parent's; the chain did not outrun the clock.
    let elapsed_blocks = nodes[0].store.head().header.number;
    assert!(
        elapsed_blocks <= 5 + started.elapsed().as_millis() as u64 / 200,
        "{elapsed_blocks} blocks in {:?}: not paced",
        started.elapsed()
    );

    // Node 3 stops; the other three go on; restarted on its data directory it fetches the
    // blocks it missed from the others and executes them to the same hashes.
    let stopped = nodes.pop().expect("four nodes");
    let stopped_at = stopped.store.head().header.number;
    stopped.stop().await.expect("clean stop");
    let target = stopped_at + 10;
    wait("three validators go on", Duration::from_secs(60), || {
        nodes.iter().all(|n| n.store.head().header.number >= target)
    })
    .await;
    // A sender whose lane is the stopped validator's: once the lane stalls, its transactions
    // go to a fallback lane and are included all the same.
    let stopped_lane = lane_of_node(3);
    let orphan = pharos_primitives::dev_accounts()
        .expect("dev accounts")
        .iter()
        .skip(3)
        .map(|(_, k)| Wallet::from_key(*k).expect("key"))
        .find(|w| lane_of(&w.address(), 4) == stopped_lane)
        .expect("a dev account in the stopped lane");
    {
        let tx =
            orphan.sign_recovered(builder.transfer(0, Address::repeat_byte(0x66), U256::from(3)));
        let snap = nodes[0].store.snapshot().expect("snapshot");
        nodes[0]
            .pool
            .add(tx, &snap, 1_000_000_000)
            .expect("admitted");
    }
    wait(
        "a transaction of the stopped validator's lane is included",
        Duration::from_secs(60),
        || {
            nodes.iter().all(|n| {
                n.store
                    .snapshot()
                    .ok()
                    .and_then(|s| s.account(orphan.address()).ok().flatten())
                    .is_some_and(|a| a.nonce == 1)
            })
        },
    )
    .await;
    let target = nodes[0].store.head().header.number;
    let restarted = pharos_node::launch(configs[3].clone())
        .await
        .expect("relaunch");
    wait(
        "the restarted validator catches up",
        Duration::from_secs(120),
        || restarted.store.head().header.number >= target,
    )
    .await;
    for height in 1..=target {
        let theirs = nodes[0]
            .store
            .snapshot()
            .expect("snapshot")
            .block_hash_of(height)
            .expect("read");
        let mine = restarted
            .store
            .snapshot()
            .expect("snapshot")
            .block_hash_of(height)
            .expect("read");
        assert!(
            theirs.is_some() && theirs == mine,
            "block {height} after catch-up"
        );
    }
    nodes.push(restarted);

    // The whole network stops and starts again: blocks finalized before the stop come from
    // each validator's archive, and the chain goes on with a new transaction.
    for node in nodes {
        node.stop().await.expect("clean stop");
    }
    let mut nodes = Vec::new();
    for config in &configs {
        nodes.push(pharos_node::launch(config.clone()).await.expect("relaunch"));
    }
    let before = nodes[0].store.head().header.number;
    let next = wallets[1].sign_recovered(builder.transfer(
        per_sender,
        Address::repeat_byte(0x55),
        U256::from(7),
    ));
    {
        let snap = nodes[2].store.snapshot().expect("snapshot");
        nodes[2]
            .pool
            .add(next, &snap, 1_000_000_000)
            .expect("admitted");
    }
    // Liveness, not speed: as long as the catch-up waits above (a starved machine — CI beside
    // a build — once took over a minute here).
    wait(
        "the restarted network includes a new transaction",
        Duration::from_secs(120),
        || {
            nodes.iter().all(|n| {
                n.store.head().header.number > before
                    && n.store
                        .snapshot()
                        .ok()
                        .and_then(|s| s.account(wallets[1].address()).ok().flatten())
                        .is_some_and(|a| a.nonce == per_sender + 1)
            })
        },
    )
    .await;
    for node in nodes {
        node.stop().await.expect("clean stop");
    }
}
