//! Validators agreeing in commonware's deterministic simulation: virtual time, a simulated
//! network with delay, jitter and loss, reproducible from a seed (`PHAROS_SIM_SEED` replays one
//! seed). Safety is checked always (no two different blocks finalized in one view, heights
//! strictly increase along every validator's finalized chain, identical chains), liveness while
//! a quorum is connected.

use std::{
    collections::BTreeMap,
    num::{NonZeroU16, NonZeroUsize},
    sync::{Arc, Mutex},
    time::Duration,
};

use commonware_consensus::{
    simplex::{
        self, Engine, ForwardPolicy, SkipBudget, SkipPolicy,
        elector::RoundRobin,
        mocks::conflicter::{Config as ConflicterConfig, Conflicter},
    },
    types::{Epoch, ViewDelta},
};
use commonware_cryptography::{Sha256, sha256::Digest};
use commonware_p2p::{
    Recipients, Sender as _, max_message_size,
    simulated::{self, Link, Network, Oracle},
};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Clock, Handle, IoBuf, Quota, Runner, Spawner, Supervisor as _, buffer::paged::CacheRef,
    deterministic,
};
use commonware_utils::{NZDuration, NZU16, NZU32, NZUsize, Probability};
use pharos_consensus::{
    Identity, Scheme, ValidatorKey, ValidatorSet,
    app::{Application, BatchCheck, BatchSource, FinalizedBlock, Limits, genesis_digest},
};

const CHAIN_ID: u64 = 1337;
const PAGE_SIZE: NonZeroU16 = NZU16!(1024);
const PAGE_CACHE: NonZeroUsize = NZUsize!(10);
const QUOTA: Quota = Quota::per_second(NZU32!(1_024));
/// Channels: votes, certificates, certificate resolver (simplex), blocks (Pharos).
const CHANNELS: [u64; 4] = [0, 1, 2, 3];

type Sender = simulated::Sender<Identity, deterministic::Context>;

/// Lane batches a validator cuts: `honest` ones pass the check, a Byzantine validator's do
/// not.
struct Batches {
    me: usize,
    honest: bool,
    cut: Mutex<u64>,
}

impl BatchSource for Batches {
    fn lane_batch(&self, _stalled: &[bool]) -> Option<(Vec<u8>, u64)> {
        let tag: &[u8] = if self.honest { b"tx" } else { b"BAD" };
        let mut cut = self.cut.lock().expect("lock");
        *cut += 1;
        let payload = [tag, &cut.to_be_bytes(), &(self.me as u64).to_be_bytes()].concat();
        Some((payload, 21_000))
    }
}

fn check() -> BatchCheck {
    Arc::new(|_lane, batch: &[u8], gas, _stalled: &[bool]| {
        batch.starts_with(b"tx") && gas == 21_000
    })
}

struct Validator {
    identity: Identity,
    key: ValidatorKey,
    app: Application<Sender>,
    handles: Vec<Handle<()>>,
    /// Signs two conflicting votes for everything it sees instead of running consensus.
    equivocates: bool,
    /// The equivocator's block channel, for sending garbage.
    raw_blocks: Option<Sender>,
}

/// A link losing `loss_percent` of its messages.
fn link(loss_percent: u64) -> Link {
    Link {
        latency: Duration::from_millis(40),
        jitter: Duration::from_millis(20),
        success_rate: Probability::new(100 - loss_percent.min(100), 100).expect("a probability"),
    }
}

async fn link_all(
    oracle: &mut Oracle<Identity, deterministic::Context>,
    ids: &[Identity],
    loss_percent: u64,
) {
    for a in ids {
        for b in ids {
            if a != b {
                // Replaces the link if there is one.
                let _ = oracle.remove_link(a.clone(), b.clone()).await;
                oracle
                    .add_link(a.clone(), b.clone(), link(loss_percent))
                    .await
                    .expect("link");
            }
        }
    }
}

async fn unlink(
    oracle: &mut Oracle<Identity, deterministic::Context>,
    left: &[Identity],
    right: &[Identity],
) {
    for a in left {
        for b in right {
            let _ = oracle.remove_link(a.clone(), b.clone()).await;
            let _ = oracle.remove_link(b.clone(), a.clone()).await;
        }
    }
}

/// Starts (or restarts: same journal partition) validator `v`'s application and engine.
async fn start(
    context: &deterministic::Context,
    oracle: &mut Oracle<Identity, deterministic::Context>,
    set: &ValidatorSet,
    v: &mut Validator,
) {
    let control = oracle.control(v.identity.clone());
    let mut channels = Vec::new();
    for c in CHANNELS {
        channels.push(control.register(c, QUOTA).await.expect("register"));
    }
    let blocks = channels.pop().expect("block channel");
    let resolver = channels.pop().expect("resolver channel");
    let certificates = channels.pop().expect("certificate channel");
    let votes = channels.pop().expect("vote channel");
    // The application's blocks stand for the node's block store: they survive a restart.
    let app = v.app.with_sender(blocks.0.clone());
    v.app = app.clone();
    let scheme: Scheme = set.signer(&v.key).expect("a member");
    if v.equivocates {
        let conflicter = Conflicter::<_, _, Sha256>::new(
            context
                .child("conflicter")
                .with_attribute("validator", &v.identity),
            ConflicterConfig { scheme },
        );
        v.handles.push(conflicter.start(votes));
        v.raw_blocks = Some(blocks.0);
        return;
    }
    let cfg = simplex::Config {
        scheme,
        elector: RoundRobin::<Sha256>::default(),
        blocker: control.clone(),
        automaton: app.clone(),
        relay: app.clone(),
        reporter: app.clone(),
        strategy: Sequential,
        partition: format!("validator-{}", v.identity),
        mailbox_size: NZUsize!(1024),
        epoch: Epoch::new(0),
        floor: simplex::Floor::Genesis(genesis_digest(CHAIN_ID)),
        replay_buffer: NZUsize!(1024 * 1024),
        write_buffer: NZUsize!(1024 * 1024),
        page_cache: CacheRef::new(PAGE_SIZE, PAGE_CACHE),
        leader_timeout: Duration::from_millis(500),
        certification_timeout: Duration::from_millis(1_000),
        timeout_retry: Duration::from_secs(2),
        view_retention: ViewDelta::new(256),
        skip: SkipPolicy::Enabled {
            timeout: Duration::from_secs(3),
            budget: SkipBudget::Participants,
        },
        fetch_timeout: NZDuration!(Duration::from_secs(1)),
        fetch_retry_delay: Duration::from_millis(100),
        forward: ForwardPolicy::Disabled,
        track_historical_votes: true,
    };
    let engine = Engine::new(
        context
            .child("engine")
            .with_attribute("validator", &v.identity),
        cfg,
    );
    v.handles.push(engine.start(votes, certificates, resolver));
    let receiver = app.clone();
    v.handles.push(
        context
            .child("blocks")
            .with_attribute("validator", &v.identity)
            .spawn(move |_| receiver.run_receiver(blocks.1)),
    );
    let lanes = app.clone();
    v.handles.push(
        context
            .child("lanes")
            .with_attribute("validator", &v.identity)
            .spawn(move |context| lanes.run_lanes(context, Duration::from_millis(100))),
    );
}

fn crash(v: &mut Validator) {
    for h in v.handles.drain(..) {
        h.abort();
    }
}

/// The finalized chain a validator knows: (view, digest, height if it holds the block).
fn chain(app: &Application<Sender>) -> Vec<(u64, Digest, Option<u64>)> {
    app.finalized()
        .into_iter()
        .map(|f| (f.view, f.digest, app.block(&f.digest).map(|b| b.height)))
        .collect()
}

/// Safety across `apps`: one digest per view, heights strictly increase with views.
fn assert_safe(apps: &[&Application<Sender>]) {
    let mut by_view: BTreeMap<u64, Digest> = BTreeMap::new();
    for app in apps {
        let mut last_height = 0;
        for (view, digest, height) in chain(app) {
            if let Some(other) = by_view.insert(view, digest) {
                assert_eq!(other, digest, "two blocks finalized in view {view}");
            }
            if let Some(h) = height {
                assert!(
                    h > last_height,
                    "height {h} after {last_height} in view {view}"
                );
                last_height = h;
            }
        }
    }
}

fn highest_height(app: &Application<Sender>) -> u64 {
    chain(app).iter().filter_map(|c| c.2).max().unwrap_or(0)
}

/// Runs until every validator in `watch` has finalized a block at `height` or `deadline`
/// (virtual time) passes; returns whether they all got there.
async fn wait_for(
    context: &deterministic::Context,
    validators: &[Validator],
    watch: &[usize],
    height: u64,
    deadline: Duration,
) -> bool {
    let step = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    while waited < deadline {
        if watch
            .iter()
            .all(|i| highest_height(&validators[*i].app) >= height)
        {
            return true;
        }
        context.sleep(step).await;
        waited += step;
    }
    false
}

/// Runs until every validator in `watch` has finalized `blocks` more blocks than the first of
/// them has now, or `deadline` passes; returns whether they got there.
async fn advance(
    context: &deterministic::Context,
    validators: &[Validator],
    watch: &[usize],
    blocks: u64,
    deadline: Duration,
) -> bool {
    let from = highest_height(&validators[watch[0]].app);
    wait_for(context, validators, watch, from + blocks, deadline).await
}

/// The finalized chain of `app` from height 1 with every lane batch, fetching what it lacks
/// from the others.
async fn synced_chain(
    context: &deterministic::Context,
    app: &Application<Sender>,
) -> Vec<FinalizedBlock> {
    for _ in 0..300 {
        let newest = app.finalized().last().map(|f| f.digest);
        if let Ok(chain) = app.sync_from(1)
            && chain.last().map(|b| b.digest) == newest
        {
            return chain;
        }
        context.sleep(Duration::from_millis(100)).await;
    }
    panic!("missing blocks or lane batches were not fetched");
}

fn seed(default: u64) -> u64 {
    std::env::var("PHAROS_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Builds `n` validators (validator `byzantine`, if any, proposes invalid batches) on a
/// simulated network and hands them to `scenario`.
fn simulate<F, Fut>(
    seed: u64,
    n: usize,
    byzantine: Option<usize>,
    equivocator: Option<usize>,
    scenario: F,
) where
    F: FnOnce(
            deterministic::Context,
            Oracle<Identity, deterministic::Context>,
            ValidatorSet,
            Vec<Validator>,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    simulate_with(seed, n, byzantine, equivocator, Limits::default(), scenario)
}

/// [`simulate`] with other limits.
fn simulate_with<F, Fut>(
    seed: u64,
    n: usize,
    byzantine: Option<usize>,
    equivocator: Option<usize>,
    limits: Limits,
    scenario: F,
) where
    F: FnOnce(
            deterministic::Context,
            Oracle<Identity, deterministic::Context>,
            ValidatorSet,
            Vec<Validator>,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(3_600)));
    deterministic::Runner::new(config).start(|mut context| async move {
        let keys: Vec<ValidatorKey> = (0..n)
            .map(|_| ValidatorKey::generate(&mut context))
            .collect();
        let infos: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.info(1_000_000, format!("127.0.0.1:{}", 30_000 + i)))
            .collect();
        let set = ValidatorSet::new(&infos).expect("validator set");
        let ids: Vec<Identity> = keys.iter().map(ValidatorKey::identity).collect();
        let (network, mut oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: max_message_size(&[
                    simplex::max_payload_size::<Scheme, Digest>(n as u32),
                    Limits::default().max_block_bytes,
                ]),
                max_peers_per_set: NZUsize!(n + 1),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            ids.clone(),
        )
        .await;
        network.start();
        link_all(&mut oracle, &ids, 0).await;
        let mut validators = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let source = Arc::new(Batches {
                me: i,
                honest: byzantine != Some(i),
                cut: Mutex::new(0),
            });
            let app =
                Application::new(CHAIN_ID, &key, &set, source, check(), limits).expect("a member");
            // The Byzantine validator also puts its own batches into its blocks uncertified.
            let app = if byzantine == Some(i) {
                app.proposing_uncertified()
            } else {
                app
            };
            validators.push(Validator {
                identity: key.identity(),
                app,
                key,
                handles: Vec::new(),
                equivocates: equivocator == Some(i),
                raw_blocks: None,
            });
        }
        for v in &mut validators {
            start(&context, &mut oracle, &set, v).await;
        }
        scenario(context, oracle, set, validators).await;
    });
}

#[test]
fn four_validators_finalize_with_delay_and_loss() {
    let seed = seed(4);
    simulate(
        seed,
        4,
        None,
        None,
        move |context, mut oracle, _set, validators| async move {
            let ids: Vec<Identity> = validators.iter().map(|v| v.identity.clone()).collect();
            link_all(&mut oracle, &ids, 5).await;
            let all: Vec<usize> = (0..4).collect();
            assert!(
                wait_for(&context, &validators, &all, 30, Duration::from_secs(120)).await,
                "seed {seed}: every validator finalizes 30 blocks"
            );
            let apps: Vec<&Application<Sender>> = validators.iter().map(|v| &v.app).collect();
            assert_safe(&apps);
            for v in &validators {
                assert!(
                    v.app.faults().is_empty(),
                    "no equivocation among honest validators"
                );
                // The finalized chain, in height order, links parent to child from genesis;
                // blocks and lane batches whose broadcast was lost are fetched by digest.
                let chain = synced_chain(&context, &v.app).await;
                let mut parent = v.app.genesis();
                let mut lanes = std::collections::BTreeSet::new();
                for (i, b) in chain.iter().enumerate() {
                    assert_eq!(
                        b.block.height,
                        i as u64 + 1,
                        "seed {seed}: contiguous heights"
                    );
                    assert_eq!(
                        b.block.parent, parent,
                        "seed {seed}: each block extends the last"
                    );
                    assert_eq!(b.batches.len(), b.block.refs.len());
                    for (r, batch) in b.block.refs.iter().zip(&b.batches) {
                        assert_eq!(batch.digest(), r.digest, "seed {seed}: the named batch");
                        lanes.insert(r.lane);
                    }
                    parent = b.digest;
                }
                assert!(
                    chain.len() >= 30,
                    "seed {seed}: the chain reaches height 30"
                );
                assert_eq!(
                    lanes.len(),
                    4,
                    "seed {seed}: every validator's lane reaches the chain"
                );
                // Each lane's batches appear once each, in order.
                let mut seen = std::collections::HashSet::new();
                for b in &chain {
                    for r in &b.block.refs {
                        assert!(seen.insert(r.digest), "seed {seed}: a batch included twice");
                    }
                }
            }
        },
    );
}

/// Seven validators, f = 2: one proposes batches that fail validation, one signs conflicting
/// votes for everything; links lose 10% of messages. Honest validators keep finalizing, never
/// a block with an invalid batch, and record the equivocation as evidence naming the signer.
#[test]
fn seven_validators_with_an_invalid_proposer_and_an_equivocator() {
    let seed = seed(7);
    let (bad_batches, equivocator) = (5, 6);
    simulate(
        seed,
        7,
        Some(bad_batches),
        Some(equivocator),
        move |context, mut oracle, set, mut validators| async move {
            let ids: Vec<Identity> = validators.iter().map(|v| v.identity.clone()).collect();
            // The equivocator also sends garbage where blocks go: truncated, oversized count,
            // trailing bytes, unknown version.
            let mut garbage = validators[equivocator]
                .raw_blocks
                .take()
                .expect("block channel");
            let garbage_messages = [
                // Blocks: truncated, absurd lane count, trailing bytes, unknown version.
                vec![2u8, 0, 0],
                [vec![2u8], vec![0; 56], u32::MAX.to_be_bytes().to_vec()].concat(),
                [vec![2u8], vec![0; 56], vec![0; 4], vec![9]].concat(),
                vec![7u8; 64],
                // Lane messages: a truncated batch, an acknowledgement and a certificate that
                // do not decode, a request of the wrong length, a state vote with a bad
                // signature.
                vec![0xf2, 0, 0],
                [vec![0xf3], vec![0xab; 150]].concat(),
                [vec![0xf4], vec![0xcd; 90]].concat(),
                vec![0xf5, 1, 2, 3],
                [vec![0xf6], vec![0u8; 8], vec![0x11; 32], vec![0x22; 64]].concat(),
            ];
            for bytes in garbage_messages.iter().cloned() {
                garbage.send(Recipients::All, IoBuf::from(bytes), false);
            }
            context.sleep(Duration::from_millis(200)).await;
            link_all(&mut oracle, &ids, 10).await;
            let honest: Vec<usize> = (0..7).filter(|i| *i != equivocator).collect();
            assert!(
                wait_for(&context, &validators, &honest, 20, Duration::from_secs(300)).await,
                "seed {seed}: honest validators finalize 20 blocks"
            );
            let apps: Vec<&Application<Sender>> =
                honest.iter().map(|i| &validators[*i].app).collect();
            assert_safe(&apps);
            let culprit = set
                .index_of(&validators[equivocator].identity)
                .expect("member") as u32;
            let bad_lane = set
                .index_of(&validators[bad_batches].identity)
                .expect("member") as u32;
            let mut evidence = 0;
            for app in &apps {
                let mut lanes = std::collections::BTreeSet::new();
                for b in synced_chain(&context, app).await {
                    for batch in &b.batches {
                        assert!(
                            batch.payload.starts_with(b"tx"),
                            "seed {seed}: a block with an invalid batch was finalized"
                        );
                        lanes.insert(batch.lane);
                    }
                }
                assert!(
                    !lanes.contains(&bad_lane),
                    "seed {seed}: the invalid lane never certifies"
                );
                assert!(
                    lanes.len() >= 5,
                    "seed {seed}: the honest lanes reach the chain: {lanes:?}"
                );
                for fault in app.faults() {
                    assert_eq!(
                        fault.signer, culprit,
                        "seed {seed}: only the equivocator is accused"
                    );
                    evidence += 1;
                }
            }
            assert!(evidence > 0, "seed {seed}: the equivocation was recorded");
            // ... and carried into finalized blocks, where every honest validator verifies it.
            let mut on_chain = false;
            for _ in 0..60 {
                on_chain = apps.iter().all(|a| !a.evidence_on_chain().is_empty());
                if on_chain {
                    break;
                }
                context.sleep(Duration::from_millis(500)).await;
            }
            assert!(on_chain, "seed {seed}: the evidence is in finalized blocks");
            for app in &apps {
                for (height, fault) in app.evidence_on_chain() {
                    assert!(height > 0);
                    assert_eq!(
                        fault.signer, culprit,
                        "seed {seed}: evidence on chain names only the equivocator"
                    );
                }
            }
            let refused: u64 = apps
                .iter()
                .map(|a| {
                    a.refused()
                        .get(&validators[equivocator].identity)
                        .copied()
                        .unwrap_or(0)
                })
                .sum();
            assert!(
                refused >= (garbage_messages.len() * apps.len()) as u64,
                "seed {seed}: every garbage message was refused and counted per peer: {refused}"
            );
        },
    );
}

/// Four validators, f = 1: one crashes and later restarts from its journal; then the network
/// splits 2 | 2 (no quorum: nothing may finalize) and heals (finalization resumes).
#[test]
fn four_validators_survive_a_crash_and_a_partition() {
    let seed = seed(44);
    simulate(
        seed,
        4,
        None,
        None,
        move |context, mut oracle, set, mut validators| async move {
            let ids: Vec<Identity> = validators.iter().map(|v| v.identity.clone()).collect();
            let all: Vec<usize> = (0..4).collect();
            assert!(wait_for(&context, &validators, &all, 5, Duration::from_secs(60)).await);

            // Crash validator 3: the other three are a quorum and go on.
            crash(&mut validators[3]);
            assert!(
                advance(
                    &context,
                    &validators,
                    &[0, 1, 2],
                    10,
                    Duration::from_secs(120)
                )
                .await,
                "seed {seed}: three of four keep finalizing"
            );
            // Restart it: it rejoins from its journal and follows the finalizations.
            let seen = validators[3].app.finalized().len();
            start(&context, &mut oracle, &set, &mut validators[3]).await;
            assert!(
                advance(
                    &context,
                    &validators,
                    &[0, 1, 2],
                    5,
                    Duration::from_secs(120)
                )
                .await
            );
            context.sleep(Duration::from_secs(10)).await;
            assert!(
                validators[3].app.finalized().len() > seen,
                "seed {seed}: the restarted validator follows finalizations again"
            );

            // Partition 2 | 2: no side has a quorum.
            unlink(&mut oracle, &ids[..2], &ids[2..]).await;
            context.sleep(Duration::from_secs(5)).await;
            let frozen: Vec<usize> = validators.iter().map(|v| v.app.finalized().len()).collect();
            context.sleep(Duration::from_secs(20)).await;
            let after: Vec<usize> = validators.iter().map(|v| v.app.finalized().len()).collect();
            assert_eq!(
                frozen, after,
                "seed {seed}: nothing finalizes without a quorum"
            );

            // Heal: finalization resumes.
            link_all(&mut oracle, &ids, 0).await;
            assert!(
                advance(
                    &context,
                    &validators,
                    &[0, 1, 2],
                    10,
                    Duration::from_secs(300)
                )
                .await,
                "seed {seed}: finalization resumes after the partition heals"
            );
            let apps: Vec<&Application<Sender>> = validators.iter().map(|v| &v.app).collect();
            assert_safe(&apps);
        },
    );
}

/// Four validators execute the finalized blocks (here: a hash derived from each block); one
/// computes different results from height 3 on. The other three certify their results, blocks
/// carry the certificates, and the odd one finds out it diverged — nobody else does.
#[test]
fn a_validator_whose_execution_differs_detects_it() {
    let seed = seed(45);
    simulate(
        seed,
        4,
        None,
        None,
        move |context, _oracle, _set, validators| async move {
            let all: Vec<usize> = (0..4).collect();
            assert!(wait_for(&context, &validators, &all, 8, Duration::from_secs(120)).await);
            let faulty = 2;
            // Each validator "executes" every finalized block it has, a few times as more
            // finalize.
            for _ in 0..6 {
                for (i, v) in validators.iter().enumerate() {
                    for b in synced_chain(&context, &v.app).await {
                        let mut hash = b.digest.0;
                        if i == faulty && b.block.height >= 3 {
                            hash[0] ^= 1;
                        }
                        v.app.executed(b.block.height, hash);
                    }
                }
                context.sleep(Duration::from_secs(2)).await;
            }
            for (i, v) in validators.iter().enumerate() {
                let divergence = v.app.divergence();
                if i == faulty {
                    let why = divergence.expect("the faulty validator notices");
                    assert!(why.contains("execution diverged"), "seed {seed}: {why}");
                } else {
                    assert_eq!(divergence, None, "seed {seed}: validator {i} agrees");
                    let cert = v.app.state_cert().expect("a certified result");
                    assert!(
                        cert.height >= 3,
                        "seed {seed}: recent results are certified"
                    );
                }
            }
            // Blocks carry certificates.
            let carried = synced_chain(&context, &validators[0].app)
                .await
                .iter()
                .filter_map(|b| b.block.state.as_ref().map(|c| c.height))
                .max();
            assert!(
                carried.is_some_and(|h| h >= 3),
                "seed {seed}: finalized blocks carry state certificates: {carried:?}"
            );
        },
    );
}

/// With a short retention, validators drop old blocks and lane batches as finalization moves
/// on, and keep finalizing.
#[test]
fn memory_stays_bounded_as_the_chain_grows() {
    let seed = seed(46);
    let limits = Limits {
        retain_heights: 8,
        ..Limits::default()
    };
    simulate_with(
        seed,
        4,
        None,
        None,
        limits,
        move |context, _oracle, _set, validators| async move {
            let all: Vec<usize> = (0..4).collect();
            assert!(wait_for(&context, &validators, &all, 60, Duration::from_secs(300)).await);
            for v in &validators {
                let (blocks, batches) = v.app.held();
                let cut = v.app.lane_stats().cut;
                assert!(
                    blocks <= 40,
                    "seed {seed}: {blocks} blocks held at height 60+"
                );
                assert!(
                    (batches as u64) < cut * 2,
                    "seed {seed}: {batches} batches held, {cut} cut by this validator alone"
                );
                eprintln!(
                    "held: {blocks} blocks, {batches} batches, {} finalizations, {cut} cut",
                    v.app.finalized().len()
                );
                // Pruning runs every `retain_heights` finalized heights.
                assert!(
                    v.app.finalized().len() <= 20,
                    "seed {seed}: finalization records"
                );
                assert!(v.app.faults().is_empty());
            }
        },
    );
}
