//! One validator over real sockets: commonware's tokio runtime, the authenticated `lookup` p2p
//! network (peers and their addresses come from the validator set; connections are encrypted
//! and authenticated with the ed25519 identities), simplex and the Pharos [`Application`].
//!
//! [`run`] blocks its thread until `stop` turns true; the simplex journal lives in the
//! runtime's storage directory, so a restarted validator resumes where it voted.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use commonware_consensus::{
    simplex::{self, Engine, ForwardPolicy, SkipBudget, SkipPolicy, elector::RoundRobin},
    types::{Epoch, ViewDelta},
};
use commonware_cryptography::{ChaCha20Poly1305, Sha256, sha256::Digest};
use commonware_p2p::{
    Address, AddressableManager as _,
    authenticated::lookup::{self, Network},
    max_message_size,
};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Clock, Quota, Runner as _, Spawner as _, Supervisor as _, buffer::paged::CacheRef, tokio,
};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZDuration, NZU16, NZU32, NZUsize, TryFromIterator as _, ordered::Map};

use crate::{
    Identity, P2P_NAMESPACE, Scheme, ValidatorKey, ValidatorSet,
    app::{Application, BatchCheck, BatchSource, Limits, genesis_digest},
};

/// The application type of a networked validator.
pub type NetApplication = Application<lookup::Sender<Identity, tokio::Context>>;

/// Channels: votes, certificates, certificate resolver (simplex), blocks (Pharos).
const CHANNELS: [u64; 4] = [0, 1, 2, 3];

/// Why a validator could not run.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The key is not a member of the set.
    #[error("this key ({0}) is not in the validator set")]
    NotAMember(String),
    /// A validator's address does not parse.
    #[error("validator {identity}: address {address:?}: {message}")]
    Address {
        /// Who.
        identity: String,
        /// What was given.
        address: String,
        /// Why it does not parse.
        message: String,
    },
    /// The peer list is not a map (duplicate identities).
    #[error("the validator set cannot be tracked: {0}")]
    Peers(String),
}

/// What one validator needs.
pub struct ValidatorConfig {
    /// The chain.
    pub chain_id: u64,
    /// This validator's keys.
    pub key: ValidatorKey,
    /// Everyone (addresses included).
    pub validators: ValidatorSet,
    /// Where the consensus journal lives.
    pub storage: PathBuf,
    /// How long a leader has to propose before the view is given up.
    pub leader_timeout: Duration,
    /// Where this validator's batches come from.
    pub source: Arc<dyn BatchSource>,
    /// What a batch in someone else's block must pass.
    pub check: BatchCheck,
    /// Where transactions forwarded by other validators go, if anywhere.
    pub gossip_sink: Option<crate::app::GossipSink>,
    /// How often this validator cuts a batch of its lane.
    pub lane_interval: Duration,
    /// Limits of blocks and lane batches (the block gas limit among them).
    pub limits: Limits,
    /// Finalized blocks (with their lane batches) from before a restart.
    pub restore: Vec<(crate::app::Proposal, Vec<crate::lanes::LaneBatch>)>,
}

/// Runs the validator until `stop` is set. `on_start` gets the application (for its
/// finalizations and evidence) once the engine runs.
pub fn run(
    cfg: ValidatorConfig,
    stop: Arc<AtomicBool>,
    on_start: impl FnOnce(NetApplication) + Send + 'static,
) -> Result<(), ValidatorError> {
    let me = cfg.key.identity();
    let scheme: Scheme = cfg
        .validators
        .signer(&cfg.key)
        .ok_or_else(|| ValidatorError::NotAMember(me.to_string()))?;
    let mut peers = Vec::new();
    for v in cfg.validators.validators() {
        let addr: SocketAddr =
            v.address
                .parse()
                .map_err(|e: std::net::AddrParseError| ValidatorError::Address {
                    identity: v.identity.to_string(),
                    address: v.address.clone(),
                    message: e.to_string(),
                })?;
        peers.push((v.identity.clone(), Address::from(addr)));
    }
    let listen = peers
        .iter()
        .find(|(id, _)| *id == me)
        .and_then(|(_, a)| match a {
            Address::Symmetric(s) => Some(*s),
            _ => None,
        })
        .ok_or_else(|| ValidatorError::NotAMember(me.to_string()))?;
    let peers: Map<Identity, Address> =
        Map::try_from_iter(peers).map_err(|e| ValidatorError::Peers(format!("{e:?}")))?;
    let n = cfg.validators.len();
    let limits = cfg.limits;
    let max_size = max_message_size(&[
        simplex::max_payload_size::<Scheme, Digest>(n as u32),
        limits.max_block_bytes,
        limits.max_batch_bytes + 64,
    ]);
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer: cfg.key.identity_key().clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let p2p = lookup::Config::local(
        handshake,
        P2P_NAMESPACE,
        listen,
        NZUsize!(n + 1),
        max_size,
        NZUsize!(1_024),
    );
    let runtime = tokio::Config::new()
        .with_storage_directory(cfg.storage.clone())
        .with_worker_threads(2);
    tokio::Runner::new(runtime).start(|context| async move {
        let (mut network, mut oracle) = Network::new(context.child("network"), p2p);
        let _ = oracle.track(0, peers);
        let quota = Quota::per_second(NZU32!(4_096));
        let mut channels: Vec<_> = CHANNELS
            .iter()
            .map(|c| network.register(*c, quota))
            .collect();
        let blocks = channels.pop().expect("four channels");
        let resolver = channels.pop().expect("four channels");
        let certificates = channels.pop().expect("four channels");
        let votes = channels.pop().expect("four channels");
        network.start();

        // Membership was checked above.
        let Some(app) = Application::new(
            cfg.chain_id,
            &cfg.key,
            &cfg.validators,
            cfg.source,
            cfg.check,
            limits,
        ) else {
            return;
        };
        let mut app = app.with_sender(blocks.0);
        for (block, batches) in cfg.restore {
            app.restore(block, batches);
        }
        if let Some(sink) = cfg.gossip_sink {
            app = app.with_gossip_sink(sink);
        }
        let engine = Engine::new(
            context.child("engine"),
            simplex::Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                blocker: oracle.clone(),
                automaton: app.clone(),
                relay: app.clone(),
                reporter: app.clone(),
                strategy: Sequential,
                partition: "simplex-epoch-0".into(),
                mailbox_size: NZUsize!(1024),
                epoch: Epoch::new(0),
                floor: simplex::Floor::Genesis(genesis_digest(cfg.chain_id)),
                replay_buffer: NZUsize!(1024 * 1024),
                write_buffer: NZUsize!(1024 * 1024),
                page_cache: CacheRef::new(NZU16!(4096), NZUsize!(64)),
                leader_timeout: cfg.leader_timeout,
                certification_timeout: cfg.leader_timeout * 2,
                timeout_retry: cfg.leader_timeout * 4,
                view_retention: ViewDelta::new(1_024),
                skip: SkipPolicy::Enabled {
                    timeout: cfg.leader_timeout * 6,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(Duration::from_secs(1)),
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::SilentVoters,
                track_historical_votes: true,
            },
        );
        engine.start(votes, certificates, resolver);
        let receiver = app.clone();
        context
            .child("blocks")
            .spawn(move |_| receiver.run_receiver(blocks.1));
        let lanes = app.clone();
        let lane_interval = cfg.lane_interval;
        context
            .child("lanes")
            .spawn(move |context| lanes.run_lanes(context, lane_interval));
        on_start(app);
        while !stop.load(Ordering::Relaxed) {
            context.sleep(Duration::from_millis(50)).await;
        }
        let _ = context.stop(0, None).await;
    });
    Ok(())
}
