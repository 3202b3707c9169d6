//! The Pharos side of agreement: what a block is, how blocks and lane batches travel, when a
//! validator accepts a block, and what a validator learns when blocks finalize.
//!
//! Consensus orders 32-byte digests; the block behind a digest is a [`Proposal`]: height,
//! view, parent digest, and a cut of the validators' lanes ([`crate::lanes`]): the certified
//! lane batches that extend each lane's tip in the parent, and the tips after them. Every
//! validator cuts its own lane batches at once ([`Application::run_lanes`]); the leader only
//! orders their digests. On `Plan::Propose` the leader sends the encoded block to every
//! validator on the block channel; a validator votes for a digest only once it holds the block
//! and its parent, the block extends the parent at the next height, and every lane reference
//! carries a valid availability certificate and continues its lane without gap or repeat.
//! Anything that does not decode, or was not asked for, is dropped and counted against the
//! peer that sent it.
//!
//! [`Application`] implements commonware's `Automaton`, `CertifiableAutomaton`, `Relay` and
//! `Reporter` over one shared state; [`Application::run_receiver`] is the task that takes
//! blocks and lane messages off the network.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use commonware_actor::Feedback;
use commonware_consensus::{
    Automaton, CertifiableAutomaton, Relay, Reporter,
    simplex::{Plan, types::Activity, types::Context},
};
use commonware_cryptography::{Hasher, Sha256, Verifier as _, ed25519, sha256::Digest};
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, IoBuf};
use commonware_utils::channel::oneshot;

use crate::{
    Identity, Scheme, ValidatorKey, ValidatorSet,
    lanes::{
        ACK_NAMESPACE, Ack, LANE_ACK, LANE_BATCH, LANE_CERT, LANE_REQUEST, LaneBatch, LaneError,
        LaneRef, Reader, Tip, ack_message, sign_ack,
    },
    roots::{STATE_VOTE, StateCert, StateVote},
};

/// Block encoding version.
const VERSION: u8 = 2;
/// First byte of a request for a block by digest (followed by the 32-byte digest). A block's
/// encoding starts with [`VERSION`], so the two never collide.
const REQUEST: u8 = 0xf0;
/// First byte of forwarded transactions (followed by one batch, opaque to consensus).
const GOSSIP: u8 = 0xf1;
/// Most validators (lanes) a block may name.
const MAX_LANES: usize = 1_024;
/// Lane batches of this validator waiting for acknowledgements before it cuts more.
const MAX_PENDING: usize = 16;
/// Lane batches cut per tick at most.
const MAX_CUT_PER_TICK: usize = 8;
/// Ticks before an unacknowledged batch or an unincluded certificate is sent again.
const RETRY_TICKS: u64 = 10;
/// Finalized heights between two prunings of what is held in memory.
const PRUNE_EVERY: u64 = 64;
/// Most pieces of evidence in one block.
const MAX_EVIDENCE: usize = 16;
/// Largest piece of evidence, in bytes.
const MAX_EVIDENCE_BYTES: usize = 4_096;
/// Calls of [`Application::sync_from`] between two requests for the same missing data.
const REQUEST_EVERY: u64 = 8;

/// Where transactions forwarded by other validators go (the node: its pool).
pub type GossipSink = Arc<dyn Fn(Identity, &[u8]) + Send + Sync>;

/// Limits received blocks and lane batches must respect.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most lane references in a block.
    pub max_refs: usize,
    /// Largest encoded block, in bytes.
    pub max_block_bytes: usize,
    /// Largest lane batch payload, in bytes.
    pub max_batch_bytes: usize,
    /// Most declared gas of the lane batches of one block (the chain's block gas limit).
    pub max_block_gas: u64,
    /// Finalized heights of blocks and lane batches kept in memory (to build on, verify
    /// against and serve to validators catching up); older ones are dropped.
    pub retain_heights: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_refs: 256,
            max_block_bytes: 4 * 1024 * 1024,
            max_batch_bytes: 2 * 1024 * 1024,
            max_block_gas: u64::MAX,
            retain_heights: 8_192,
        }
    }
}

/// A proposed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Height: the parent's plus one (genesis is 0).
    pub height: u64,
    /// The consensus view it was proposed in.
    pub view: u64,
    /// Milliseconds since the Unix epoch, as the proposer saw them; never below the parent's.
    pub timestamp: u64,
    /// Digest of the parent block.
    pub parent: Digest,
    /// Every lane's tip after this block (one per validator, in set order).
    pub tips: Vec<Tip>,
    /// The certified lane batches this block adds, by lane, each lane's in order.
    pub refs: Vec<LaneRef>,
    /// The newest certified execution result the leader knew (for a block below this one).
    pub state: Option<StateCert>,
    /// Equivocation evidence: two conflicting messages signed by one validator, as consensus
    /// reported them ([`Evidence::encode`]); anyone holding the validator set can verify it.
    pub evidence: Vec<Vec<u8>>,
}

/// Why received bytes are not a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Bigger than the limit.
    #[error("block of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Ends early, has bytes left over, or an unknown version.
    #[error("malformed block: {0}")]
    Malformed(&'static str),
    /// More lane references than allowed.
    #[error("block with {0} lane batches is over the limit")]
    TooManyRefs(usize),
}

impl From<LaneError> for BlockError {
    fn from(e: LaneError) -> Self {
        match e {
            LaneError::Malformed(m) => BlockError::Malformed(m),
            LaneError::TooLarge(n) => BlockError::TooLarge(n),
        }
    }
}

impl Proposal {
    /// The canonical encoding (what the digest commits to).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 8 * 3 + 32 + 4 + 16 * self.tips.len() + 4 + 100 * self.refs.len(),
        );
        out.push(VERSION);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.view.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.parent.0);
        out.extend_from_slice(&(self.tips.len() as u32).to_be_bytes());
        for tip in &self.tips {
            out.extend_from_slice(&tip.epoch.to_be_bytes());
            out.extend_from_slice(&tip.seq.to_be_bytes());
        }
        out.extend_from_slice(&(self.refs.len() as u32).to_be_bytes());
        for r in &self.refs {
            r.write(&mut out);
        }
        match &self.state {
            None => out.push(0),
            Some(cert) => {
                out.push(1);
                cert.write(&mut out);
            }
        }
        out.extend_from_slice(&(self.evidence.len() as u32).to_be_bytes());
        for e in &self.evidence {
            out.extend_from_slice(&(e.len() as u32).to_be_bytes());
            out.extend_from_slice(e);
        }
        out
    }

    /// Decodes `bytes`, refusing anything that is not exactly one canonical block within
    /// `limits`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, BlockError> {
        if bytes.len() > limits.max_block_bytes {
            return Err(BlockError::TooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return Err(BlockError::Malformed("unknown version"));
        }
        let height = r.u64()?;
        let view = r.u64()?;
        let timestamp = r.u64()?;
        let parent = r.digest()?;
        let lanes = r.u32()? as usize;
        if lanes > MAX_LANES {
            return Err(BlockError::Malformed("too many lanes"));
        }
        let mut tips = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            tips.push(Tip {
                epoch: r.u64()?,
                seq: r.u64()?,
            });
        }
        let count = r.u32()? as usize;
        if count > limits.max_refs {
            return Err(BlockError::TooManyRefs(count));
        }
        let mut refs = Vec::with_capacity(count);
        for _ in 0..count {
            refs.push(LaneRef::read(&mut r, lanes)?);
        }
        let state = match r.take(1)? {
            [0] => None,
            [1] => Some(StateCert::read(&mut r, lanes)?),
            _ => return Err(BlockError::Malformed("state certificate flag")),
        };
        let count = r.u32()? as usize;
        if count > MAX_EVIDENCE {
            return Err(BlockError::Malformed("too much evidence"));
        }
        let mut evidence = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32()? as usize;
            if len > MAX_EVIDENCE_BYTES {
                return Err(BlockError::Malformed("evidence too large"));
            }
            evidence.push(r.take(len)?.to_vec());
        }
        r.finish()?;
        Ok(Self {
            height,
            view,
            timestamp,
            parent,
            tips,
            refs,
            state,
            evidence,
        })
    }

    /// Its digest.
    pub fn digest(&self) -> Digest {
        Sha256::hash(&[&self.encode()])
    }
}

/// The digest standing for the genesis block of chain `chain_id`.
pub fn genesis_digest(chain_id: u64) -> Digest {
    Sha256::hash(&[b"PHAROS_GENESIS", &chain_id.to_be_bytes()])
}

/// Where a validator's lane batches come from (the node: the transactions of its pool routed
/// to its lane).
pub trait BatchSource: Send + Sync + 'static {
    /// The next batch of this validator's lane and the sum of its transactions' gas limits:
    /// transactions no earlier batch carried. `None` when nothing waits.
    ///
    /// `stalled[l]` tells whether lane `l` has not moved in the finalized chain for a while
    /// (its owner is down): the transactions of its senders go to a fallback lane
    /// ([`route`]).
    fn lane_batch(&self, stalled: &[bool]) -> Option<(Vec<u8>, u64)>;

    /// The timestamp to propose (milliseconds); raised to the parent's if below.
    fn timestamp(&self) -> u64 {
        0
    }

    /// The least time between a block's timestamp and its child's: a leader whose clock is
    /// earlier waits before proposing (the chain's block time). Zero: no pacing.
    fn block_interval(&self) -> Duration {
        Duration::ZERO
    }
}

/// Whether another validator's lane batch deserves an acknowledgement: `(lane, payload,
/// declared gas)` (the node: every transaction decodes, is signed for this chain, belongs to
/// that lane, and the gas limits add up to the declared gas).
/// The last argument says which lanes this validator considers stalled (with a shorter
/// threshold than the one lanes are cut with, so a batch cut for a fallback lane is not
/// refused by a validator a block behind).
pub type BatchCheck = Arc<dyn Fn(u32, &[u8], u64, &[bool]) -> bool + Send + Sync>;

/// Finalized blocks without progress after which a lane counts as stalled for routing.
pub const STALL_BLOCKS: u64 = 4;
/// Ticks without a batch after which a lane owner cuts an empty one, so a live but idle lane
/// keeps moving and is never taken for stalled.
const HEARTBEAT_TICKS: u64 = 10;

/// The lane that carries a sender whose home lane is `home`: `home` itself, or while it is
/// stalled the next lane that is not.
pub fn route(home: u32, stalled: &[bool]) -> u32 {
    let n = stalled.len() as u32;
    if n == 0 || !stalled.get(home as usize).copied().unwrap_or(false) {
        return home;
    }
    (1..n)
        .map(|k| (home + k) % n)
        .find(|l| !stalled[*l as usize])
        .unwrap_or(home)
}

/// A finalized block as a validator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// The view it was finalized in.
    pub view: u64,
    /// Its digest.
    pub digest: Digest,
}

/// A finalized block ready to execute: the block and the payloads of its lane batches, in
/// the block's order.
#[derive(Debug, Clone)]
pub struct FinalizedBlock {
    /// The block's digest.
    pub digest: Digest,
    /// The block.
    pub block: Proposal,
    /// Its lane batches.
    pub batches: Vec<Arc<LaneBatch>>,
}

/// Data a validator lacks to execute the finalized chain (asked of the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A block, by digest.
    Block(Digest),
    /// A lane batch, by digest.
    Batch(Digest),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Block(d) => write!(f, "block {d}"),
            Missing::Batch(d) => write!(f, "lane batch {d}"),
        }
    }
}

/// Evidence consensus reported: a validator signed two conflicting messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What kind: `conflicting-notarize`, `conflicting-finalize` or `nullify-finalize`.
    pub kind: &'static str,
    /// The view.
    pub view: u64,
    /// The offender's index in the validator set.
    pub signer: u32,
}

/// Equivocation evidence as blocks carry it: a kind byte and the two conflicting signed
/// messages in commonware's encoding.
pub struct Evidence;

impl Evidence {
    const NOTARIZE: u8 = 1;
    const FINALIZE: u8 = 2;
    const NULLIFY_FINALIZE: u8 = 3;

    /// The evidence in a reported activity, if it is one.
    pub fn encode(activity: &Activity<Scheme, Digest>) -> Option<Vec<u8>> {
        use commonware_codec::Encode as _;
        let (kind, body) = match activity {
            Activity::ConflictingNotarize(c) => (Self::NOTARIZE, c.encode().to_vec()),
            Activity::ConflictingFinalize(c) => (Self::FINALIZE, c.encode().to_vec()),
            Activity::NullifyFinalize(c) => (Self::NULLIFY_FINALIZE, c.encode().to_vec()),
            _ => return None,
        };
        Some([vec![kind], body].concat())
    }

    /// Decodes `bytes` and checks both signatures against the validator set's `verifier`:
    /// the fault it proves, or `None` if it proves nothing.
    pub fn verify(bytes: &[u8], verifier: &Scheme) -> Option<Fault> {
        use commonware_codec::DecodeExt as _;
        use commonware_consensus::{
            Viewable as _,
            simplex::types::{
                Attributable as _, ConflictingFinalize, ConflictingNotarize, NullifyFinalize,
            },
        };
        let (kind, body) = bytes.split_first()?;
        let mut rng = rand::rng();
        let strategy = commonware_parallel::Sequential;
        let (kind, view, signer) = match *kind {
            Self::NOTARIZE => {
                let c = ConflictingNotarize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                c.verify(&mut rng, verifier, &strategy)
                    .then(|| ("conflicting-notarize", c.view().get(), c.signer().get()))?
            }
            Self::FINALIZE => {
                let c = ConflictingFinalize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                c.verify(&mut rng, verifier, &strategy)
                    .then(|| ("conflicting-finalize", c.view().get(), c.signer().get()))?
            }
            Self::NULLIFY_FINALIZE => {
                let c = NullifyFinalize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                c.verify(&mut rng, verifier, &strategy)
                    .then(|| ("nullify-finalize", c.view().get(), c.signer().get()))?
            }
            _ => return None,
        };
        Some(Fault { kind, view, signer })
    }
}

/// Counters of the lanes, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Batches this validator cut.
    pub cut: u64,
    /// Of those, certified.
    pub certified: u64,
    /// Other validators' batches this validator acknowledged.
    pub acked: u64,
    /// Batches this validator refused to acknowledge (invalid, or a second batch at a
    /// position already acknowledged).
    pub refused: u64,
}

/// A verification waiting for a block: the consensus context it came with and where the
/// verdict goes.
type Waiter = (Context<Digest, Identity>, oneshot::Sender<bool>);

/// A batch of this validator's lane waiting for acknowledgements.
struct Pending {
    batch: Arc<LaneBatch>,
    digest: Digest,
    acks: BTreeMap<u32, ed25519::Signature>,
    sent: u64,
}

#[derive(Default)]
struct State {
    /// Blocks this validator holds, by digest.
    blocks: HashMap<Digest, Proposal>,
    /// Verification requests waiting for a block's bytes.
    waiting: HashMap<Digest, Vec<Waiter>>,
    /// Finalizations in the order reported, by view.
    finalized: BTreeMap<u64, Digest>,
    faults: Vec<Fault>,
    /// Messages refused per peer (malformed, oversized, invalid, unrequested).
    refused: HashMap<Identity, u64>,

    /// This validator's lane: the epoch, the last number cut, batches awaiting a quorum.
    epoch: u64,
    seq: u64,
    pending: BTreeMap<u64, Pending>,
    tick: u64,
    /// Lane batch payloads held, by digest (own, acknowledged, fetched).
    batches: HashMap<Digest, Arc<LaneBatch>>,
    /// The batch acknowledged at each lane position: never a second one.
    acked: HashMap<(u32, Tip), Digest>,
    /// Certified batches not yet known to be in a finalized block.
    certified: BTreeMap<(u32, Tip), LaneRef>,
    /// Each lane's tip in the newest finalized block held.
    final_tips: Vec<Tip>,
    /// Height of the newest finalized block held, and per lane the height at which its tip
    /// last moved.
    final_height: u64,
    advanced_at: Vec<u64>,
    /// Tick of this validator's last batch.
    last_cut: u64,
    /// Hashes of the blocks this validator executed, by height (the newest ones).
    own_roots: BTreeMap<u64, [u8; 32]>,
    /// State votes received, by height and hash.
    state_votes: BTreeMap<(u64, [u8; 32]), BTreeMap<u32, ed25519::Signature>>,
    /// The newest state certificate known.
    state_cert: Option<StateCert>,
    /// Certified hashes by height (the newest ones), for blocks this validator executes later.
    certified_roots: BTreeMap<u64, [u8; 32]>,
    /// Why this validator's execution disagrees with a quorum, once it does.
    diverged: Option<String>,
    /// Evidence reported by consensus, not yet seen in a finalized block.
    evidence_pending: Vec<Vec<u8>>,
    /// Digests of the evidence in finalized blocks.
    evidence_included: std::collections::HashSet<Digest>,
    /// Faults proven by evidence in finalized blocks, with the block height.
    evidence_on_chain: Vec<(u64, Fault)>,
    /// Batches asked for by digest, with the number of `sync_from` calls since.
    wanted: HashMap<Digest, u64>,
    /// Blocks asked for, likewise.
    wanted_blocks: HashMap<Digest, u64>,
    stats: LaneStats,
    /// Finalized height at the last pruning.
    pruned_at: u64,
}

/// One validator's application: cuts and acknowledges lane batches, proposes, relays and
/// checks blocks, and records what consensus reports.
#[derive(Clone)]
pub struct Application<S: Sender<PublicKey = Identity>> {
    state: Arc<Mutex<State>>,
    genesis: Digest,
    source: Arc<dyn BatchSource>,
    check: BatchCheck,
    limits: Limits,
    /// This validator's index (its lane).
    me: u32,
    /// Signs acknowledgements.
    key: ed25519::PrivateKey,
    /// Every validator's identity, in set order (lane `i` is validator `i`'s).
    members: Arc<Vec<Identity>>,
    /// Acknowledgements that certify a batch: n - f.
    quorum: usize,
    /// Checks consensus signatures (equivocation evidence).
    verifier: Scheme,
    /// Where blocks go out; attached with [`Self::with_sender`].
    blocks_out: Option<S>,
    /// Where forwarded transactions go.
    gossip_sink: Option<GossipSink>,
    /// Test only: proposes its own batches without certificates.
    uncertified: bool,
}

impl<S: Sender<PublicKey = Identity>> Application<S> {
    /// The application of validator `key` of `set` for chain `chain_id`; it sends once
    /// [`Self::with_sender`] gave it a channel. `None` if `key` is not in `set`.
    pub fn new(
        chain_id: u64,
        key: &ValidatorKey,
        set: &ValidatorSet,
        source: Arc<dyn BatchSource>,
        check: BatchCheck,
        limits: Limits,
    ) -> Option<Self> {
        let me = set.index_of(&key.identity())? as u32;
        let members: Vec<Identity> = set
            .validators()
            .iter()
            .map(|v| v.identity.clone())
            .collect();
        let state = State {
            // A restarted validator starts a higher epoch (its clock moved on).
            epoch: source.timestamp().max(1),
            final_tips: vec![Tip::default(); members.len()],
            advanced_at: vec![0; members.len()],
            ..State::default()
        };
        Some(Self {
            state: Arc::new(Mutex::new(state)),
            genesis: genesis_digest(chain_id),
            source,
            check,
            limits,
            me,
            key: key.identity_key().clone(),
            quorum: members.len() - set.max_faults(),
            verifier: set.verifier(),
            members: Arc::new(members),
            blocks_out: None,
            gossip_sink: None,
            uncertified: false,
        })
    }

    /// The same application handing transactions forwarded by other validators to `sink`.
    pub fn with_gossip_sink(&self, sink: GossipSink) -> Self {
        Self {
            gossip_sink: Some(sink),
            ..self.clone()
        }
    }

    /// Test only: a Byzantine leader that puts its own batches into its blocks without
    /// waiting for certificates (honest validators must refuse such blocks).
    #[doc(hidden)]
    pub fn proposing_uncertified(&self) -> Self {
        Self {
            uncertified: true,
            ..self.clone()
        }
    }

    /// This validator's index in the set (the lane it owns).
    pub fn index(&self) -> u32 {
        self.me
    }

    /// Sends a batch of transactions to the owner of lane `to` (the node forwards what its
    /// clients sent to the lane the sender is routed to).
    pub fn forward(&self, to: u32, batch: &[u8]) {
        let Some(peer) = self.members.get(to as usize) else {
            return;
        };
        if batch.is_empty() || to == self.me || batch.len() + 1 > self.limits.max_block_bytes {
            return;
        }
        let mut message = Vec::with_capacity(batch.len() + 1);
        message.push(GOSSIP);
        message.extend_from_slice(batch);
        self.send(Recipients::One(peer.clone()), message);
    }

    fn send(&self, to: Recipients<Identity>, message: Vec<u8>) {
        if let Some(mut out) = self.blocks_out.clone() {
            out.send(to, IoBuf::from(message), false);
        }
    }

    /// The same application (same blocks, same records) sending blocks with `blocks_out`:
    /// after a restart of the network side, the application's state carries over.
    pub fn with_sender(&self, blocks_out: S) -> Self {
        Self {
            blocks_out: Some(blocks_out),
            ..self.clone()
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere already; keep serving what is there.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refuse(&self, state: &mut State, peer: &Identity) {
        *state.refused.entry(peer.clone()).or_default() += 1;
    }

    /// Height, timestamp and lane tips of the block with `digest`, if known (genesis: 0, 0,
    /// every lane empty).
    fn parent_info(&self, state: &State, digest: &Digest) -> Option<(u64, u64, Vec<Tip>)> {
        if *digest == self.genesis {
            return Some((0, 0, vec![Tip::default(); self.members.len()]));
        }
        state
            .blocks
            .get(digest)
            .map(|b| (b.height, b.timestamp, b.tips.clone()))
    }

    /// The genesis digest this application builds on.
    pub fn genesis(&self) -> Digest {
        self.genesis
    }

    /// Builds, stores and returns the digest of this validator's block on `parent`: for every
    /// lane in turn, the next certified batch, until none is left or the block is full.
    fn build(&self, parent: Digest, view: u64) -> Option<Digest> {
        let timestamp = self.source.timestamp();
        let mut state = self.state();
        let (parent_height, parent_time, mut tips) = self.parent_info(&state, &parent)?;
        let mut refs = Vec::new();
        let mut gas = 0u64;
        let mut progress = true;
        while progress && refs.len() < self.limits.max_refs {
            progress = false;
            for (lane, tip) in tips.iter_mut().enumerate() {
                let lane = lane as u32;
                let next = state
                    .certified
                    .get(&(
                        lane,
                        Tip {
                            epoch: tip.epoch,
                            seq: tip.seq + 1,
                        },
                    ))
                    .or_else(|| {
                        let from = Tip {
                            epoch: tip.epoch.saturating_add(1),
                            seq: 1,
                        };
                        state
                            .certified
                            .range(
                                (lane, from)
                                    ..(
                                        lane,
                                        Tip {
                                            epoch: u64::MAX,
                                            seq: u64::MAX,
                                        },
                                    ),
                            )
                            .find(|((_, at), _)| at.seq == 1)
                            .map(|(_, r)| r)
                    });
                let Some(next) = next else { continue };
                if refs.len() >= self.limits.max_refs
                    || gas.saturating_add(next.gas) > self.limits.max_block_gas
                {
                    continue;
                }
                gas += next.gas;
                *tip = next.at;
                refs.push(next.clone());
                progress = true;
            }
        }
        if self.uncertified {
            // Byzantine: its own batches with its own acknowledgement only.
            for p in state.pending.values() {
                let tip = &mut tips[self.me as usize];
                if tip.followed_by(p.batch.at) {
                    *tip = p.batch.at;
                    refs.push(LaneRef {
                        lane: self.me,
                        at: p.batch.at,
                        gas: p.batch.gas,
                        digest: p.digest,
                        acks: p.acks.iter().map(|(i, s)| (*i, s.clone())).collect(),
                    });
                }
            }
        }
        // References go by lane (stable: each lane keeps its order).
        refs.sort_by_key(|r| r.lane);
        let parent_state = state
            .blocks
            .get(&parent)
            .and_then(|b| b.state.as_ref())
            .map_or(0, |c| c.height);
        let certified = state
            .state_cert
            .clone()
            .filter(|c| c.height > parent_state && c.height <= parent_height);
        let block = Proposal {
            height: parent_height + 1,
            view,
            timestamp: timestamp.max(parent_time),
            parent,
            tips,
            refs,
            state: certified,
            evidence: state
                .evidence_pending
                .iter()
                .filter(|e| {
                    !state
                        .evidence_included
                        .contains(&Sha256::hash(&[e.as_slice()]))
                })
                .take(MAX_EVIDENCE)
                .cloned()
                .collect(),
        };
        let digest = block.digest();
        state.blocks.insert(digest, block);
        Some(digest)
    }

    /// Gives back a finalized block (and its lane batches) this validator had before a
    /// restart: the node archives what it executed, so a whole network restarting at once
    /// still knows the blocks it builds on and can serve them to whoever lags.
    pub fn restore(&self, block: Proposal, batches: Vec<LaneBatch>) {
        let mut state = self.state();
        Self::advance(&mut state, &block);
        for batch in batches {
            state.batches.insert(batch.digest(), Arc::new(batch));
        }
        state.blocks.insert(block.digest(), block);
    }

    /// Finalizations seen so far, oldest view first.
    pub fn finalized(&self) -> Vec<Finalized> {
        self.state()
            .finalized
            .iter()
            .map(|(view, digest)| Finalized {
                view: *view,
                digest: *digest,
            })
            .collect()
    }

    /// The finalized blocks from `height` up to the newest finalization, in height order
    /// (a finalization also finalizes its ancestors), with their lane batches. Stops before
    /// the first block whose bytes or batches this validator lacks; `Err` names what is
    /// missing when not even the first block can be returned.
    pub fn finalized_from(&self, height: u64) -> Result<Vec<FinalizedBlock>, Missing> {
        self.collect_from(height, &mut Vec::new())
    }

    /// Walks the finalized chain down to `height`; every block or batch found missing is
    /// pushed to `missing` (the block walk stops at the first missing block).
    fn collect_from(
        &self,
        height: u64,
        missing: &mut Vec<Missing>,
    ) -> Result<Vec<FinalizedBlock>, Missing> {
        let state = self.state();
        let Some((_, newest)) = state.finalized.iter().next_back() else {
            return Ok(Vec::new());
        };
        let mut chain = Vec::new();
        let mut digest = *newest;
        while digest != self.genesis {
            let Some(block) = state.blocks.get(&digest) else {
                // Everything above is unusable until this block arrives.
                chain.clear();
                missing.push(Missing::Block(digest));
                break;
            };
            if block.height < height {
                break;
            }
            chain.push((digest, block));
            digest = block.parent;
        }
        chain.reverse();
        let mut out = Vec::with_capacity(chain.len());
        let mut complete = true;
        for (digest, block) in chain {
            let mut batches = Vec::with_capacity(block.refs.len());
            for r in &block.refs {
                match state.batches.get(&r.digest) {
                    Some(b) => batches.push(b.clone()),
                    None => missing.push(Missing::Batch(r.digest)),
                }
            }
            if batches.len() == block.refs.len() && complete {
                out.push(FinalizedBlock {
                    digest,
                    block: block.clone(),
                    batches,
                });
            } else {
                complete = false;
                if missing.len() >= 64 {
                    break;
                }
            }
        }
        match (out.is_empty(), missing.first()) {
            (true, Some(m)) => Err(*m),
            _ => Ok(out),
        }
    }

    /// Like [`Self::finalized_from`], and asks the other validators for missing blocks and
    /// lane batches (catch-up after a restart or a lost message): call it again until what
    /// it returns reaches the newest finalization.
    pub fn sync_from(&self, height: u64) -> Result<Vec<FinalizedBlock>, Missing> {
        let mut missing = Vec::new();
        let result = self.collect_from(height, &mut missing);
        if missing.is_empty() {
            return result;
        }
        let mut requests = Vec::new();
        {
            let mut state = self.state();
            for m in missing {
                let (prefix, digest, wanted) = match m {
                    Missing::Block(d) => (REQUEST, d, &mut state.wanted_blocks),
                    Missing::Batch(d) => (LANE_REQUEST, d, &mut state.wanted),
                };
                let calls = wanted.entry(digest).or_insert(0);
                if *calls % REQUEST_EVERY == 0 {
                    let mut request = Vec::with_capacity(33);
                    request.push(prefix);
                    request.extend_from_slice(&digest.0);
                    requests.push(request);
                }
                *calls += 1;
            }
        }
        for request in requests {
            self.send(Recipients::All, request);
        }
        result
    }

    /// Serves a peer's request for a block or lane batch this validator holds.
    fn answer(&self, peer: Identity, raw: &[u8]) {
        let Some(digest) = raw.get(1..33).filter(|_| raw.len() == 33) else {
            let mut state = self.state();
            self.refuse(&mut state, &peer);
            return;
        };
        let mut wanted = [0u8; 32];
        wanted.copy_from_slice(digest);
        let wanted = Digest(wanted);
        let answer = if raw[0] == REQUEST {
            self.block(&wanted).map(|b| b.encode())
        } else {
            self.state().batches.get(&wanted).map(|b| b.encode())
        };
        if let Some(answer) = answer {
            self.send(Recipients::One(peer), answer);
        }
    }

    /// The block with `digest`, if this validator holds it.
    pub fn block(&self, digest: &Digest) -> Option<Proposal> {
        self.state().blocks.get(digest).cloned()
    }

    /// The lane batch with `digest`, if this validator holds it.
    pub fn lane_batch(&self, digest: &Digest) -> Option<Arc<LaneBatch>> {
        self.state().batches.get(digest).cloned()
    }

    /// Faults proven by evidence in finalized blocks, with each block's height.
    pub fn evidence_on_chain(&self) -> Vec<(u64, Fault)> {
        self.state().evidence_on_chain.clone()
    }

    /// Equivocation evidence reported by consensus.
    pub fn faults(&self) -> Vec<Fault> {
        self.state().faults.clone()
    }

    /// Messages refused, per sending peer.
    pub fn refused(&self) -> HashMap<Identity, u64> {
        self.state().refused.clone()
    }

    /// The lanes' counters.
    pub fn lane_stats(&self) -> LaneStats {
        self.state().stats
    }

    /// The verdict on `block` proposed under `context`.
    fn judge(&self, state: &State, context: &Context<Digest, Identity>, block: &Proposal) -> bool {
        let (_, parent) = context.parent;
        let Some((parent_height, parent_time, mut tips)) = self.parent_info(state, &parent) else {
            return false;
        };
        if block.parent != parent
            || block.height != parent_height + 1
            || block.timestamp < parent_time
            || block.view != context.round.view().get()
            || block.tips.len() != self.members.len()
            || block.refs.len() > self.limits.max_refs
        {
            return false;
        }
        let mut gas = 0u64;
        let mut lane = 0;
        for r in &block.refs {
            if r.lane < lane || r.lane as usize >= tips.len() {
                return false;
            }
            lane = r.lane;
            let tip = &mut tips[r.lane as usize];
            if !tip.followed_by(r.at) {
                return false;
            }
            *tip = r.at;
            gas = match gas.checked_add(r.gas) {
                Some(g) if g <= self.limits.max_block_gas => g,
                _ => return false,
            };
            // A certificate already checked when it arrived needs no second look.
            let known = state.certified.get(&(r.lane, r.at)) == Some(r);
            if !known && let Err(e) = r.check(&self.genesis, &self.members, self.quorum) {
                tracing::debug!(error = %e, "a block names a batch without a valid certificate");
                return false;
            }
        }
        if block.evidence.iter().any(|e| {
            state
                .evidence_included
                .contains(&Sha256::hash(&[e.as_slice()]))
                || Evidence::verify(e, &self.verifier).is_none()
        }) {
            return false;
        }
        if let Some(cert) = &block.state
            && (cert.height >= block.height
                || !cert.check(&self.genesis, &self.members, self.quorum))
        {
            return false;
        }
        tips == block.tips
    }

    /// Takes blocks and lane messages off the network until the channel closes.
    pub async fn run_receiver<R: Receiver<PublicKey = Identity>>(self, mut blocks_in: R) {
        while let Ok((peer, bytes)) = blocks_in.recv().await {
            self.receive(peer, bytes);
        }
    }

    /// Cuts this validator's lane batches every `interval`, and sends again what still lacks
    /// acknowledgements or inclusion, until the task is dropped.
    pub async fn run_lanes<C: Clock>(self, clock: C, interval: Duration) {
        loop {
            clock.sleep(interval).await;
            self.lane_tick();
        }
    }

    /// One round of the lane: cut new batches (while few wait for acknowledgements), send
    /// again batches and certificates that seem lost.
    pub fn lane_tick(&self) {
        let mut outgoing: Vec<(Recipients<Identity>, Vec<u8>)> = Vec::new();
        let tick = {
            let mut state = self.state();
            state.tick += 1;
            state.tick
        };
        let (stalled, idle) = {
            let state = self.state();
            (
                Self::stalled(&state, STALL_BLOCKS),
                state.last_cut + HEARTBEAT_TICKS <= tick && state.pending.is_empty(),
            )
        };
        for cut in 0..MAX_CUT_PER_TICK {
            if self.state().pending.len() >= MAX_PENDING {
                break;
            }
            // Outside the lock: the source reads the pool. An idle lane sends an empty batch
            // now and then: a heartbeat, so the others do not route around it.
            let (payload, gas) = match self.source.lane_batch(&stalled) {
                Some(batch) => batch,
                None if cut == 0 && idle => (Vec::new(), 0),
                None => break,
            };
            let mut state = self.state();
            state.last_cut = tick;
            state.seq += 1;
            let batch = Arc::new(LaneBatch {
                lane: self.me,
                at: Tip {
                    epoch: state.epoch,
                    seq: state.seq,
                },
                gas,
                payload,
            });
            let digest = batch.digest();
            let own = sign_ack(&self.key, &self.genesis, self.me, batch.at, gas, &digest);
            state.stats.cut += 1;
            state.batches.insert(digest, batch.clone());
            state.acked.insert((self.me, batch.at), digest);
            let pending = Pending {
                batch: batch.clone(),
                digest,
                acks: BTreeMap::from([(self.me, own)]),
                sent: tick,
            };
            if let Some(cert) = self.certify(&mut state, pending) {
                outgoing.push((Recipients::All, cert));
            } else {
                outgoing.push((Recipients::All, batch.encode()));
            }
        }
        {
            let mut state = self.state();
            let members = &self.members;
            for p in state.pending.values_mut() {
                if p.sent + RETRY_TICKS <= tick {
                    p.sent = tick;
                    let missing: Vec<Identity> = members
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !p.acks.contains_key(&(*i as u32)))
                        .map(|(_, id)| id.clone())
                        .collect();
                    outgoing.push((Recipients::Some(missing), p.batch.encode()));
                }
            }
            if tick % RETRY_TICKS == 0 {
                for ((lane, _), cert) in &state.certified {
                    if *lane == self.me {
                        outgoing.push((Recipients::All, cert.encode_cert()));
                    }
                }
            }
        }
        for (to, message) in outgoing {
            self.send(to, message);
        }
    }

    /// Keeps `pending` until it has a quorum; then records its certificate and returns the
    /// certificate message.
    fn certify(&self, state: &mut State, pending: Pending) -> Option<Vec<u8>> {
        if pending.acks.len() < self.quorum {
            state.pending.insert(pending.batch.at.seq, pending);
            return None;
        }
        let cert = LaneRef {
            lane: self.me,
            at: pending.batch.at,
            gas: pending.batch.gas,
            digest: pending.digest,
            acks: pending.acks.into_iter().collect(),
        };
        state.stats.certified += 1;
        let message = cert.encode_cert();
        state.certified.insert((self.me, cert.at), cert);
        Some(message)
    }

    fn receive(&self, peer: Identity, bytes: IoBuf) {
        let raw = bytes.as_ref();
        match raw.first() {
            Some(&REQUEST) | Some(&LANE_REQUEST) => self.answer(peer, raw),
            Some(&GOSSIP) => {
                if let Some(sink) = &self.gossip_sink {
                    sink(peer, &raw[1..]);
                }
            }
            Some(&LANE_BATCH) => self.on_batch(peer, raw),
            Some(&LANE_ACK) => self.on_ack(peer, raw),
            Some(&LANE_CERT) => self.on_cert(peer, raw),
            Some(&STATE_VOTE) => self.on_state_vote(peer, raw),
            _ => self.on_block(peer, raw),
        }
    }

    /// A lane batch: from its owner (acknowledge it if valid and the first at its position)
    /// or an answer to a request.
    fn on_batch(&self, peer: Identity, raw: &[u8]) {
        let sender = self.members.iter().position(|m| *m == peer);
        let batch = match LaneBatch::decode(raw, self.limits.max_batch_bytes) {
            Ok(b) if sender.is_some() => b,
            _ => {
                let mut state = self.state();
                self.refuse(&mut state, &peer);
                return;
            }
        };
        let digest = batch.digest();
        if sender != Some(batch.lane as usize) || batch.lane == self.me {
            // Not from its owner: only data this validator asked for is taken.
            let mut state = self.state();
            if state.wanted.remove(&digest).is_some() {
                state.batches.insert(digest, Arc::new(batch));
            } else if !state.batches.contains_key(&digest) {
                self.refuse(&mut state, &peer);
            }
            return;
        }
        let position = (batch.lane, batch.at);
        {
            let mut state = self.state();
            match state.acked.get(&position) {
                Some(d) if *d == digest => {
                    // Sent again (our acknowledgement was lost): acknowledge again below.
                }
                Some(_) => {
                    // A second batch at one position: never acknowledged.
                    state.stats.refused += 1;
                    self.refuse(&mut state, &peer);
                    return;
                }
                None => {
                    drop(state);
                    // Outside the lock: checking recovers every sender.
                    let stalled = Self::stalled(&self.state(), STALL_BLOCKS / 2);
                    if !(self.check)(batch.lane, &batch.payload, batch.gas, &stalled) {
                        let mut state = self.state();
                        state.stats.refused += 1;
                        self.refuse(&mut state, &peer);
                        return;
                    }
                    let mut state = self.state();
                    if state.acked.get(&position).is_some_and(|d| *d != digest) {
                        return;
                    }
                    state.acked.insert(position, digest);
                    state.stats.acked += 1;
                }
            }
        }
        let ack = Ack {
            lane: batch.lane,
            at: batch.at,
            gas: batch.gas,
            digest,
            signature: sign_ack(
                &self.key,
                &self.genesis,
                batch.lane,
                batch.at,
                batch.gas,
                &digest,
            ),
        };
        self.state().batches.insert(digest, Arc::new(batch));
        self.send(Recipients::One(peer), ack.encode());
    }

    /// An acknowledgement of one of this validator's batches.
    fn on_ack(&self, peer: Identity, raw: &[u8]) {
        let signer = self.members.iter().position(|m| *m == peer);
        let mut state = self.state();
        let (ack, signer) = match (Ack::decode(raw), signer) {
            (Ok(ack), Some(signer)) if ack.lane == self.me => (ack, signer as u32),
            _ => {
                self.refuse(&mut state, &peer);
                return;
            }
        };
        let Some(pending) = state.pending.remove(&ack.at.seq) else {
            // Late: the batch is certified already.
            return;
        };
        let mut pending = pending;
        let message = ack_message(&self.genesis, ack.lane, ack.at, ack.gas, &ack.digest);
        if pending.batch.at != ack.at
            || pending.batch.gas != ack.gas
            || pending.digest != ack.digest
            || !peer.verify(ACK_NAMESPACE, &message, &ack.signature)
        {
            self.refuse(&mut state, &peer);
            state.pending.insert(pending.batch.at.seq, pending);
            return;
        }
        pending.acks.insert(signer, ack.signature);
        if let Some(cert) = self.certify(&mut state, pending) {
            drop(state);
            self.send(Recipients::All, cert);
        }
    }

    /// A certificate of some lane's batch.
    fn on_cert(&self, peer: Identity, raw: &[u8]) {
        let cert = match LaneRef::decode_cert(raw, self.members.len()) {
            Ok(c) => c,
            Err(_) => {
                let mut state = self.state();
                self.refuse(&mut state, &peer);
                return;
            }
        };
        let key = (cert.lane, cert.at);
        {
            let state = self.state();
            if state.certified.get(&key) == Some(&cert)
                || state
                    .final_tips
                    .get(cert.lane as usize)
                    .is_some_and(|t| cert.at <= *t)
            {
                return;
            }
        }
        if let Err(e) = cert.check(&self.genesis, &self.members, self.quorum) {
            tracing::debug!(%peer, error = %e, "refused a lane certificate");
            let mut state = self.state();
            self.refuse(&mut state, &peer);
            return;
        }
        self.state().certified.insert(key, cert);
    }

    /// A block: stored, and the verifications waiting for it (or for it as a parent) answered.
    fn on_block(&self, peer: Identity, raw: &[u8]) {
        let block = match Proposal::decode(raw, &self.limits) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "refused a block");
                let mut state = self.state();
                self.refuse(&mut state, &peer);
                return;
            }
        };
        let digest = block.digest();
        let mut state = self.state();
        state.wanted_blocks.remove(&digest);
        state.blocks.entry(digest).or_insert(block);
        // Verifications waiting for this block or for it as a parent.
        let ready: Vec<Digest> = state
            .waiting
            .keys()
            .copied()
            .filter(|d| {
                state
                    .blocks
                    .get(d)
                    .is_some_and(|b| self.parent_info(&state, &b.parent).is_some())
            })
            .collect();
        for d in ready {
            if let (Some(waiting), Some(block)) =
                (state.waiting.remove(&d), state.blocks.get(&d).cloned())
            {
                for (context, response) in waiting {
                    let verdict = self.judge(&state, &context, &block);
                    let _ = response.send(verdict);
                }
            }
        }
    }

    /// This validator executed the block at `height` to `hash` (its executed block hash, which
    /// commits to the state root): signs it for the others, and checks it against what a
    /// quorum certified.
    pub fn executed(&self, height: u64, hash: [u8; 32]) {
        let vote = StateVote::sign(&self.key, &self.genesis, height, hash);
        let message = vote.encode();
        {
            let mut state = self.state();
            state.own_roots.insert(height, hash);
            while state.own_roots.len() > 1_024 {
                state.own_roots.pop_first();
            }
            self.count_vote(&mut state, self.me, vote);
            if let Some(certified) = state.certified_roots.get(&height).copied() {
                self.compare(&mut state, height, &certified, self.quorum);
            }
        }
        self.send(Recipients::All, message);
    }

    /// Why this validator's execution disagrees with a certified result, if it does: the node
    /// must halt.
    pub fn divergence(&self) -> Option<String> {
        self.state().diverged.clone()
    }

    /// The newest certified execution result known.
    pub fn state_cert(&self) -> Option<StateCert> {
        self.state().state_cert.clone()
    }

    fn on_state_vote(&self, peer: Identity, raw: &[u8]) {
        let signer = self.members.iter().position(|m| *m == peer);
        let mut state = self.state();
        match (StateVote::decode(raw), signer) {
            (Ok(vote), Some(signer)) if vote.verify(&self.genesis, &peer) => {
                self.count_vote(&mut state, signer as u32, vote)
            }
            _ => self.refuse(&mut state, &peer),
        }
    }

    fn count_vote(&self, state: &mut State, signer: u32, vote: StateVote) {
        let known = state.state_cert.as_ref().map_or(0, |c| c.height);
        if vote.height <= known.saturating_sub(64) {
            return;
        }
        let votes = state
            .state_votes
            .entry((vote.height, vote.hash))
            .or_default();
        votes.insert(signer, vote.signature);
        if votes.len() >= self.quorum {
            let cert = StateCert {
                height: vote.height,
                hash: vote.hash,
                signatures: votes.iter().map(|(i, s)| (*i, s.clone())).collect(),
            };
            self.learn(state, cert);
        }
    }

    /// A valid certificate: kept if newest, compared with this validator's own result.
    fn learn(&self, state: &mut State, cert: StateCert) {
        self.compare(state, cert.height, &cert.hash, cert.signatures.len());
        state.certified_roots.insert(cert.height, cert.hash);
        while state.certified_roots.len() > 1_024 {
            state.certified_roots.pop_first();
        }
        if state
            .state_cert
            .as_ref()
            .is_none_or(|c| c.height < cert.height)
        {
            let floor = cert.height.saturating_sub(64);
            state.state_votes.retain(|(h, _), _| *h > floor);
            state.state_cert = Some(cert);
        }
    }

    fn compare(&self, state: &mut State, height: u64, certified: &[u8; 32], signers: usize) {
        if state.diverged.is_some() {
            return;
        }
        if let Some(own) = state.own_roots.get(&height)
            && own != certified
        {
            let why = format!(
                "execution diverged at height {height}: this validator computed block hash 0x{}, a quorum of {signers} validators signed 0x{}",
                hex::encode(own),
                hex::encode(certified)
            );
            tracing::error!("{why}");
            state.diverged = Some(why);
        }
    }

    /// Drops blocks more than `retain_heights` below the finalized height, lane batches no
    /// retained block names and no block will (at or below their lane's finalized tip), and
    /// the oldest finalization records beyond the same count.
    fn prune(&self, state: &mut State) {
        let cutoff = state
            .final_height
            .saturating_sub(self.limits.retain_heights);
        state.blocks.retain(|_, b| b.height >= cutoff);
        let named: std::collections::HashSet<Digest> = state
            .blocks
            .values()
            .flat_map(|b| b.refs.iter().map(|r| r.digest))
            .collect();
        let tips = state.final_tips.clone();
        state.batches.retain(|digest, b| {
            named.contains(digest) || tips.get(b.lane as usize).is_none_or(|tip| b.at > *tip)
        });
        while state.finalized.len() as u64 > self.limits.retain_heights.max(1) {
            state.finalized.pop_first();
        }
    }

    /// Blocks and lane batches held in memory.
    pub fn held(&self) -> (usize, usize) {
        let state = self.state();
        (state.blocks.len(), state.batches.len())
    }

    /// Moves the finalized lane tips to `block`'s.
    fn advance(state: &mut State, block: &Proposal) {
        if block.height <= state.final_height {
            return;
        }
        state.final_height = block.height;
        let State {
            final_tips,
            advanced_at,
            ..
        } = state;
        for ((final_tip, tip), at) in final_tips.iter_mut().zip(&block.tips).zip(advanced_at) {
            if *tip > *final_tip {
                *final_tip = *tip;
                *at = block.height;
            }
        }
    }

    /// Which lanes have not moved for `blocks` finalized blocks.
    fn stalled(state: &State, blocks: u64) -> Vec<bool> {
        state
            .advanced_at
            .iter()
            .map(|at| state.final_height >= blocks && state.final_height - at >= blocks)
            .collect()
    }

    /// Lanes stalled for routing ([`STALL_BLOCKS`]): where senders of a stalled lane go is
    /// [`route`].
    pub fn stalled_lanes(&self) -> Vec<bool> {
        Self::stalled(&self.state(), STALL_BLOCKS)
    }

    /// A block finalized: lanes below its tips need nothing more.
    fn on_finalized(&self, state: &mut State, digest: &Digest) {
        let Some(block) = state.blocks.get(digest).cloned() else {
            return;
        };
        Self::advance(state, &block);
        for e in &block.evidence {
            if state
                .evidence_included
                .insert(Sha256::hash(&[e.as_slice()]))
                && let Some(fault) = Evidence::verify(e, &self.verifier)
            {
                state.evidence_on_chain.push((block.height, fault));
            }
        }
        if !block.evidence.is_empty() {
            let included = &state.evidence_included;
            let pending = std::mem::take(&mut state.evidence_pending);
            state.evidence_pending = pending
                .into_iter()
                .filter(|e| !included.contains(&Sha256::hash(&[e.as_slice()])))
                .collect();
        }
        if let Some(cert) = block.state {
            self.learn(state, cert);
        }
        if state.final_height
            >= state.pruned_at + PRUNE_EVERY.min(self.limits.retain_heights.max(1))
        {
            state.pruned_at = state.final_height;
            self.prune(state);
        }
        let final_tips = state.final_tips.clone();
        let done = |lane: u32, at: &Tip| final_tips.get(lane as usize).is_some_and(|t| at <= t);
        state.certified.retain(|(lane, at), _| !done(*lane, at));
        state.acked.retain(|(lane, at), _| !done(*lane, at));
        let me = self.me;
        state.pending.retain(|_, p| !done(me, &p.batch.at));
    }
}

impl<S: Sender<PublicKey = Identity>> Automaton for Application<S> {
    type Context = Context<Digest, Identity>;
    type Digest = Digest;

    async fn propose(&mut self, context: Self::Context) -> oneshot::Receiver<Digest> {
        let (response, receiver) = oneshot::channel();
        let (_, parent) = context.parent;
        let parent_time = {
            let state = self.state();
            self.parent_info(&state, &parent).map(|(_, time, _)| time)
        };
        // Without the parent's block there is nothing to build on: decline (the view is
        // nullified and another leader tries).
        let Some(parent_time) = parent_time else {
            return receiver;
        };
        let view = context.round.view().get();
        let interval = self.source.block_interval().as_millis() as u64;
        let due = parent_time.saturating_add(interval);
        let now = self.source.timestamp();
        if interval > 0 && now < due {
            // Pace the chain: build the block when it is due (with what is certified by then).
            let app = self.clone();
            let wait = Duration::from_millis(due - now);
            let spawned = std::thread::Builder::new()
                .name("propose".into())
                .spawn(move || {
                    std::thread::sleep(wait);
                    if let Some(digest) = app.build(parent, view) {
                        let _ = response.send(digest);
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot wait to propose; declining the view");
            }
            return receiver;
        }
        if let Some(digest) = self.build(parent, view) {
            let _ = response.send(digest);
        }
        receiver
    }

    async fn verify(&mut self, context: Self::Context, payload: Digest) -> oneshot::Receiver<bool> {
        let (response, receiver) = oneshot::channel();
        let mut state = self.state();
        let known = state.blocks.get(&payload).cloned();
        let parent_known = self.parent_info(&state, &context.parent.1).is_some();
        match known {
            Some(block) if parent_known => {
                let verdict = self.judge(&state, &context, &block);
                let _ = response.send(verdict);
            }
            // Wait for the bytes (or the parent's): a verdict is final, so none is given
            // while data is missing.
            _ => state
                .waiting
                .entry(payload)
                .or_default()
                .push((context, response)),
        }
        receiver
    }
}

impl<S: Sender<PublicKey = Identity>> CertifiableAutomaton for Application<S> {}

impl<S: Sender<PublicKey = Identity>> Relay for Application<S> {
    type Digest = Digest;
    type PublicKey = Identity;
    type Plan = Plan<Identity>;

    fn broadcast(&mut self, payload: Digest, plan: Plan<Identity>) -> Feedback {
        let recipients = match plan {
            Plan::Propose { .. } | Plan::Prepare { .. } => Recipients::All,
            Plan::Forward { recipients, .. } => recipients,
        };
        let Some(block) = self.block(&payload) else {
            return Feedback::Ok;
        };
        let Some(out) = self.blocks_out.as_mut() else {
            return Feedback::Closed;
        };
        out.send(recipients, IoBuf::from(block.encode()), false);
        Feedback::Ok
    }
}

impl<S: Sender<PublicKey = Identity>> Reporter for Application<S> {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        let evidence = Evidence::encode(&activity);
        let mut state = self.state();
        if let Some(e) = evidence
            && !state
                .evidence_included
                .contains(&Sha256::hash(&[e.as_slice()]))
            && !state.evidence_pending.contains(&e)
            && state.evidence_pending.len() < 1_024
        {
            state.evidence_pending.push(e);
        }
        match activity {
            Activity::Finalization(f) => {
                state
                    .finalized
                    .insert(f.proposal.round.view().get(), f.proposal.payload);
                self.on_finalized(&mut state, &f.proposal.payload);
            }
            Activity::ConflictingNotarize(c) => state.faults.push(Fault {
                kind: "conflicting-notarize",
                view: commonware_consensus::Viewable::view(&c).get(),
                signer: commonware_consensus::simplex::types::Attributable::signer(&c).get(),
            }),
            Activity::ConflictingFinalize(c) => state.faults.push(Fault {
                kind: "conflicting-finalize",
                view: commonware_consensus::Viewable::view(&c).get(),
                signer: commonware_consensus::simplex::types::Attributable::signer(&c).get(),
            }),
            Activity::NullifyFinalize(c) => state.faults.push(Fault {
                kind: "nullify-finalize",
                view: commonware_consensus::Viewable::view(&c).get(),
                signer: commonware_consensus::simplex::types::Attributable::signer(&c).get(),
            }),
            _ => {}
        }
        Feedback::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Proposal {
        Proposal {
            height: 7,
            view: 9,
            timestamp: 1_700_000_000,
            parent: genesis_digest(1),
            tips: vec![Tip { epoch: 3, seq: 2 }, Tip::default()],
            refs: Vec::new(),
            state: None,
            evidence: vec![vec![1, 2, 3]],
        }
    }

    #[test]
    fn evidence_that_does_not_decode_or_verify_proves_nothing() {
        let mut rng = rand::rng();
        let keys: Vec<ValidatorKey> = (0..4).map(|_| ValidatorKey::generate(&mut rng)).collect();
        let infos: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.info(1, format!("127.0.0.1:{}", 30_000 + i)))
            .collect();
        let verifier = ValidatorSet::new(&infos).expect("set").verifier();
        for bytes in [Vec::new(), vec![1], vec![2; 300], vec![3; 40], vec![9; 500]] {
            assert_eq!(Evidence::verify(&bytes, &verifier), None, "{bytes:?}");
        }
    }

    #[test]
    fn senders_of_a_stalled_lane_go_to_the_next_live_one() {
        assert_eq!(route(2, &[false; 4]), 2);
        assert_eq!(route(2, &[false, false, true, false]), 3);
        assert_eq!(route(3, &[false, false, false, true]), 0, "wraps around");
        assert_eq!(
            route(3, &[true, false, false, true]),
            1,
            "skips stalled ones"
        );
        assert_eq!(route(1, &[true; 4]), 1, "all stalled: home");
        assert_eq!(route(0, &[]), 0);
    }

    #[test]
    fn blocks_round_trip_and_bad_bytes_are_refused() {
        let limits = Limits::default();
        let b = block();
        let bytes = b.encode();
        assert_eq!(Proposal::decode(&bytes, &limits), Ok(b.clone()));
        assert_ne!(
            b.digest(),
            Proposal {
                view: 10,
                ..b.clone()
            }
            .digest()
        );
        // Every strict prefix is truncated; a longer buffer has trailing bytes.
        for cut in 0..bytes.len() {
            assert!(
                Proposal::decode(&bytes[..cut], &limits).is_err(),
                "prefix of {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Proposal::decode(&longer, &limits),
            Err(BlockError::Malformed("trailing bytes"))
        );
        let mut version = bytes.clone();
        version[0] = 1;
        assert!(Proposal::decode(&version, &limits).is_err());
        let tiny = Limits {
            max_block_bytes: 50,
            ..limits
        };
        assert_eq!(
            Proposal::decode(&bytes, &tiny),
            Err(BlockError::TooLarge(bytes.len()))
        );
        // A lane count pointing past the end, and a reference count over the limit.
        let at = 1 + 8 + 8 + 8 + 32;
        let mut lying = bytes.clone();
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Proposal::decode(&lying, &limits).is_err());
        let mut many = bytes;
        let refs_at = at + 4 + 2 * 16;
        many[refs_at..refs_at + 4].copy_from_slice(&1_000u32.to_be_bytes());
        assert_eq!(
            Proposal::decode(&many, &limits),
            Err(BlockError::TooManyRefs(1_000))
        );
    }
}
