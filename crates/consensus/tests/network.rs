//! Validators over real TCP on 127.0.0.1 (authenticated, encrypted p2p; one commonware tokio
//! runtime per validator, each on its own thread): they finalize blocks; with one stopped the
//! other three go on; restarted from its journal, it follows the finalizations again. Every
//! wait is bounded.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use pharos_consensus::{
    ValidatorKey, ValidatorSet,
    app::{BatchCheck, BatchSource},
    lanes::Tip,
    validator::{self, NetApplication, ValidatorConfig},
};

struct Batches(usize, Mutex<u64>);

impl BatchSource for Batches {
    fn lane_batch(&self, _stalled: &[bool]) -> Option<(Vec<u8>, u64)> {
        let mut cut = self.1.lock().expect("lock");
        *cut += 1;
        let payload = [
            b"tx".as_slice(),
            &cut.to_be_bytes(),
            &(self.0 as u64).to_be_bytes(),
        ]
        .concat();
        Some((payload, 21_000))
    }

    fn timestamp(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }
}

fn check() -> BatchCheck {
    Arc::new(|_lane, b: &[u8], _gas, _stalled: &[bool]| b.starts_with(b"tx"))
}

struct Running {
    stop: Arc<AtomicBool>,
    app: Arc<Mutex<Option<NetApplication>>>,
    thread: JoinHandle<()>,
}

fn launch(i: usize, key: &ValidatorKey, set: &ValidatorSet, dir: &Path) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let app = Arc::new(Mutex::new(None));
    let cfg = ValidatorConfig {
        chain_id: 1337,
        key: key.clone(),
        validators: set.clone(),
        storage: dir.join(format!("validator-{i}")),
        leader_timeout: Duration::from_millis(500),
        source: Arc::new(Batches(i, Mutex::new(0))),
        check: check(),
        gossip_sink: None,
        lane_interval: Duration::from_millis(100),
        limits: Default::default(),
        restore: Vec::new(),
    };
    let (s, a) = (stop.clone(), app.clone());
    let thread = std::thread::spawn(move || {
        validator::run(cfg, s, move |app| {
            *a.lock().expect("lock") = Some(app);
        })
        .expect("validator runs");
    });
    Running { stop, app, thread }
}

fn height(r: &Running) -> u64 {
    let guard = r.app.lock().expect("lock");
    let Some(app) = guard.as_ref() else { return 0 };
    app.finalized()
        .iter()
        .filter_map(|f| app.block(&f.digest).map(|b| b.height))
        .max()
        .unwrap_or(0)
}

/// Lane tips in the highest finalized block `r` holds.
fn tips(r: &Running) -> Vec<Tip> {
    let guard = r.app.lock().expect("lock");
    let Some(app) = guard.as_ref() else {
        return Vec::new();
    };
    app.finalized()
        .iter()
        .filter_map(|f| app.block(&f.digest))
        .max_by_key(|b| b.height)
        .map(|b| b.tips)
        .unwrap_or_default()
}

fn finalizations(r: &Running) -> usize {
    r.app
        .lock()
        .expect("lock")
        .as_ref()
        .map_or(0, |a| a.finalized().len())
}

fn wait(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn shut(r: Running) {
    r.stop.store(true, Ordering::Relaxed);
    r.thread.join().expect("validator thread");
}

#[test]
fn four_validators_over_tcp_finalize_survive_a_stop_and_rejoin() {
    let dir = tempfile::tempdir().expect("tempdir");
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
    let mut running: Vec<Option<Running>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Some(launch(i, k, &set, dir.path())))
        .collect();
    let live = |running: &Vec<Option<Running>>, who: &[usize]| -> u64 {
        who.iter()
            .map(|i| running[*i].as_ref().map_or(0, height))
            .min()
            .unwrap_or(0)
    };
    wait(
        "four validators finalize 5 blocks",
        Duration::from_secs(60),
        || live(&running, &[0, 1, 2, 3]) >= 5,
    );

    // Every lane reaches the chain.
    let lane3 = set.index_of(&keys[3].identity()).expect("member");
    wait(
        "every lane is in a finalized block",
        Duration::from_secs(30),
        || {
            running[0]
                .as_ref()
                .is_some_and(|r| tips(r).iter().all(|t| t.seq > 0))
        },
    );

    // Stop validator 3: three of four are a quorum.
    let before = running[0].as_ref().map(tips).unwrap_or_default()[lane3];
    if let Some(r) = running[3].take() {
        shut(r);
    }
    let from = live(&running, &[0, 1, 2]);
    wait(
        "three validators keep finalizing",
        Duration::from_secs(60),
        || live(&running, &[0, 1, 2]) >= from + 5,
    );

    // Restart it on its journal: it follows finalizations again.
    running[3] = Some(launch(3, &keys[3], &set, dir.path()));
    wait(
        "the restarted validator follows",
        Duration::from_secs(60),
        || running[3].as_ref().map_or(0, finalizations) >= 3,
    );
    // Its lane goes on in a new epoch.
    wait(
        "the restarted validator's lane moves to a new epoch",
        Duration::from_secs(60),
        || {
            running[0]
                .as_ref()
                .is_some_and(|r| tips(r)[lane3].epoch > before.epoch)
        },
    );
    // The same digest for every view two validators both finalized.
    let mut by_view = std::collections::BTreeMap::new();
    for r in running.iter().flatten() {
        if let Some(app) = r.app.lock().expect("lock").as_ref() {
            for f in app.finalized() {
                if let Some(d) = by_view.insert(f.view, f.digest) {
                    assert_eq!(d, f.digest, "two blocks finalized in view {}", f.view);
                }
            }
        }
    }
    for r in running.into_iter().flatten() {
        shut(r);
    }
}
