//! The Pharos side of agreement: what a proposal is, how it travels, when a validator accepts
//! one, and what a validator learns when blocks finalize.
//!
//! Consensus orders 32-byte digests; the block behind a digest is a [`Proposal`]: height,
//! view, parent digest and the batches of transactions it carries. The leader builds it from
//! its [`BatchSource`], and on `Plan::Propose` sends the encoded block to every validator on
//! the block channel; a validator votes for a digest only once it holds the block, the block
//! extends the parent consensus names at the next height, and every batch passes the
//! [`BatchCheck`]. A block that does not decode, or whose bytes do not hash to anything asked
//! for, is dropped and counted against the peer that sent it.
//!
//! [`Application`] implements commonware's `Automaton`, `CertifiableAutomaton`, `Relay` and
//! `Reporter` over one shared state; [`Application::run_receiver`] is the task that takes
//! blocks off the network.

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
use commonware_cryptography::{Hasher, Sha256, sha256::Digest};
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::IoBuf;
use commonware_utils::channel::oneshot;

use crate::{Identity, Scheme};

/// Block encoding version.
const VERSION: u8 = 1;
/// First byte of a request for a block by digest (followed by the 32-byte digest). A block's
/// encoding starts with [`VERSION`], so the two never collide.
const REQUEST: u8 = 0xf0;
/// First byte of forwarded transactions (followed by one batch, opaque to consensus).
const GOSSIP: u8 = 0xf1;

/// Where transactions forwarded by other validators go (the node: its pool).
pub type GossipSink = Arc<dyn Fn(Identity, &[u8]) + Send + Sync>;

/// Limits a received block must respect.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most batches in a block.
    pub max_batches: usize,
    /// Largest encoded block, in bytes.
    pub max_block_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batches: 1_024,
            max_block_bytes: 4 * 1024 * 1024,
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
    /// Transaction batches, opaque to consensus.
    pub batches: Vec<Vec<u8>>,
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
    /// More batches than allowed.
    #[error("block with {0} batches is over the limit")]
    TooManyBatches(usize),
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], BlockError> {
        if self.0.len() < n {
            return Err(BlockError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, BlockError> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(
            b.try_into().map_err(|_| BlockError::Malformed("u64"))?,
        ))
    }

    fn u32(&mut self) -> Result<u32, BlockError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(
            b.try_into().map_err(|_| BlockError::Malformed("u32"))?,
        ))
    }
}

impl Proposal {
    /// The canonical encoding (what the digest commits to).
    pub fn encode(&self) -> Vec<u8> {
        let size = 1 + 8 + 8 + 8 + 32 + 4 + self.batches.iter().map(|b| 4 + b.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.view.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.parent.0);
        out.extend_from_slice(&(self.batches.len() as u32).to_be_bytes());
        for b in &self.batches {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
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
        let mut parent = [0u8; 32];
        parent.copy_from_slice(r.take(32)?);
        let count = r.u32()? as usize;
        if count > limits.max_batches {
            return Err(BlockError::TooManyBatches(count));
        }
        let mut batches = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32()? as usize;
            batches.push(r.take(len)?.to_vec());
        }
        if !r.0.is_empty() {
            return Err(BlockError::Malformed("trailing bytes"));
        }
        Ok(Self {
            height,
            view,
            timestamp,
            parent: Digest(parent),
            batches,
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

/// Where a leader's batches come from (the node: its lane of the mempool).
pub trait BatchSource: Send + Sync + 'static {
    /// Batches for a block at `height` built by this validator.
    fn batches(&self, height: u64) -> Vec<Vec<u8>>;

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

/// Whether a batch in someone else's proposal is acceptable (the node: every transaction
/// decodes, is signed and fits the limits).
pub type BatchCheck = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// A finalized block as a validator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// The view it was finalized in.
    pub view: u64,
    /// Its digest.
    pub digest: Digest,
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

/// A verification waiting for a block: the consensus context it came with and where the
/// verdict goes.
type Waiter = (Context<Digest, Identity>, oneshot::Sender<bool>);

#[derive(Default)]
struct State {
    /// Blocks this validator holds, by digest.
    blocks: HashMap<Digest, Proposal>,
    /// Verification requests waiting for a block's bytes.
    waiting: HashMap<Digest, Vec<Waiter>>,
    /// Finalizations in the order reported, by view.
    finalized: BTreeMap<u64, Digest>,
    faults: Vec<Fault>,
    /// Blocks refused per peer (malformed, oversized, unrequested garbage).
    refused: HashMap<Identity, u64>,
}

/// One validator's application: proposes, relays and checks blocks, and records what
/// consensus reports.
#[derive(Clone)]
pub struct Application<S: Sender<PublicKey = Identity>> {
    state: Arc<Mutex<State>>,
    genesis: Digest,
    source: Arc<dyn BatchSource>,
    check: BatchCheck,
    limits: Limits,
    /// Where blocks go out; attached with [`Self::with_sender`].
    blocks_out: Option<S>,
    /// Where forwarded transactions go.
    gossip_sink: Option<GossipSink>,
}

impl<S: Sender<PublicKey = Identity>> Application<S> {
    /// An application for chain `chain_id`; it sends blocks once [`Self::with_sender`] gave
    /// it a channel.
    pub fn new(
        chain_id: u64,
        source: Arc<dyn BatchSource>,
        check: BatchCheck,
        limits: Limits,
    ) -> Self {
        Self {
            state: Arc::default(),
            genesis: genesis_digest(chain_id),
            source,
            check,
            limits,
            blocks_out: None,
            gossip_sink: None,
        }
    }

    /// The same application handing transactions forwarded by other validators to `sink`.
    pub fn with_gossip_sink(&self, sink: GossipSink) -> Self {
        Self {
            gossip_sink: Some(sink),
            ..self.clone()
        }
    }

    /// Forwards a batch of transactions to every other validator, so whichever leads next can
    /// include them.
    pub fn gossip(&self, batch: &[u8]) {
        if batch.is_empty() || batch.len() + 1 > self.limits.max_block_bytes {
            return;
        }
        let mut message = Vec::with_capacity(batch.len() + 1);
        message.push(GOSSIP);
        message.extend_from_slice(batch);
        if let Some(mut out) = self.blocks_out.clone() {
            out.send(Recipients::All, IoBuf::from(message), false);
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

    /// Height of the block with `digest`, if known (genesis is 0).
    fn height_of(&self, state: &State, digest: &Digest) -> Option<u64> {
        if *digest == self.genesis {
            return Some(0);
        }
        state.blocks.get(digest).map(|b| b.height)
    }

    /// Timestamp of the block with `digest`, if known (genesis is 0).
    fn timestamp_of(&self, state: &State, digest: &Digest) -> Option<u64> {
        if *digest == self.genesis {
            return Some(0);
        }
        state.blocks.get(digest).map(|b| b.timestamp)
    }

    /// The genesis digest this application builds on.
    pub fn genesis(&self) -> Digest {
        self.genesis
    }

    /// Builds, stores and returns the digest of this validator's block at `height`.
    fn build(&self, parent: Digest, height: u64, view: u64, parent_time: u64) -> Digest {
        let block = Proposal {
            height,
            view,
            timestamp: self.source.timestamp().max(parent_time),
            parent,
            batches: self.source.batches(height),
        };
        let digest = block.digest();
        self.state().blocks.insert(digest, block);
        digest
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
    /// (a finalization also finalizes its ancestors). `Err(digest)` names the first block
    /// whose bytes this validator lacks (it must be fetched before execution can go on).
    pub fn finalized_from(&self, height: u64) -> Result<Vec<(Digest, Proposal)>, Digest> {
        let state = self.state();
        let Some((_, newest)) = state.finalized.iter().next_back() else {
            return Ok(Vec::new());
        };
        let mut chain = Vec::new();
        let mut digest = *newest;
        while digest != self.genesis {
            let Some(block) = state.blocks.get(&digest) else {
                return Err(digest);
            };
            if block.height < height {
                break;
            }
            chain.push((digest, block.clone()));
            digest = block.parent;
        }
        chain.reverse();
        Ok(chain)
    }

    /// Like [`Self::finalized_from`], and asks the other validators for the first missing
    /// block (catch-up after a restart or a lost message): call it again until it succeeds.
    pub fn sync_from(&self, height: u64) -> Result<Vec<(Digest, Proposal)>, Digest> {
        self.finalized_from(height).inspect_err(|missing| {
            let mut request = Vec::with_capacity(33);
            request.push(REQUEST);
            request.extend_from_slice(&missing.0);
            if let Some(mut out) = self.blocks_out.clone() {
                out.send(Recipients::All, IoBuf::from(request), false);
            }
        })
    }

    /// Serves a peer's request for a block this validator holds.
    fn answer(&self, peer: Identity, raw: &[u8]) {
        let Some(digest) = raw.get(1..33).filter(|_| raw.len() == 33) else {
            *self.state().refused.entry(peer).or_default() += 1;
            return;
        };
        let mut wanted = [0u8; 32];
        wanted.copy_from_slice(digest);
        let Some(block) = self.block(&Digest(wanted)) else {
            return;
        };
        if let Some(mut out) = self.blocks_out.clone() {
            out.send(Recipients::One(peer), IoBuf::from(block.encode()), false);
        }
    }

    /// The block with `digest`, if this validator holds it.
    pub fn block(&self, digest: &Digest) -> Option<Proposal> {
        self.state().blocks.get(digest).cloned()
    }

    /// Equivocation evidence reported by consensus.
    pub fn faults(&self) -> Vec<Fault> {
        self.state().faults.clone()
    }

    /// Blocks refused, per sending peer.
    pub fn refused(&self) -> HashMap<Identity, u64> {
        self.state().refused.clone()
    }

    /// The verdict on `block` proposed under `context`.
    fn judge(&self, state: &State, context: &Context<Digest, Identity>, block: &Proposal) -> bool {
        let (_, parent) = context.parent;
        let (Some(parent_height), Some(parent_time)) = (
            self.height_of(state, &parent),
            self.timestamp_of(state, &parent),
        ) else {
            return false;
        };
        block.parent == parent
            && block.height == parent_height + 1
            && block.timestamp >= parent_time
            && block.view == context.round.view().get()
            && block.batches.iter().all(|b| (self.check)(b))
    }

    /// Takes blocks off the network until the channel closes: decodes, stores, and answers
    /// the verifications waiting for them.
    pub async fn run_receiver<R: Receiver<PublicKey = Identity>>(self, mut blocks_in: R) {
        while let Ok((peer, bytes)) = blocks_in.recv().await {
            self.receive(peer, bytes);
        }
    }

    fn receive(&self, peer: Identity, bytes: IoBuf) {
        let raw = bytes.as_ref();
        if raw.first() == Some(&REQUEST) {
            self.answer(peer, raw);
            return;
        }
        if raw.first() == Some(&GOSSIP) {
            if let Some(sink) = &self.gossip_sink {
                sink(peer, &raw[1..]);
            }
            return;
        }
        let block = match Proposal::decode(raw, &self.limits) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "refused a block");
                *self.state().refused.entry(peer).or_default() += 1;
                return;
            }
        };
        let digest = block.digest();
        let mut state = self.state();
        let waiting = state.waiting.remove(&digest).unwrap_or_default();
        for (context, response) in waiting {
            let verdict = self.judge(&state, &context, &block);
            let _ = response.send(verdict);
        }
        state.blocks.entry(digest).or_insert(block);
        // A block can be the missing parent of one that arrived first.
        let children: Vec<Digest> = state
            .waiting
            .keys()
            .copied()
            .filter(|d| state.blocks.get(d).is_some_and(|b| b.parent == digest))
            .collect();
        for child in children {
            if let (Some(waiting), Some(block)) = (
                state.waiting.remove(&child),
                state.blocks.get(&child).cloned(),
            ) {
                for (context, response) in waiting {
                    let verdict = self.judge(&state, &context, &block);
                    let _ = response.send(verdict);
                }
            }
        }
    }
}

impl<S: Sender<PublicKey = Identity>> Automaton for Application<S> {
    type Context = Context<Digest, Identity>;
    type Digest = Digest;

    async fn propose(&mut self, context: Self::Context) -> oneshot::Receiver<Digest> {
        let (response, receiver) = oneshot::channel();
        let (_, parent) = context.parent;
        let parent_known = {
            let state = self.state();
            self.height_of(&state, &parent)
                .zip(self.timestamp_of(&state, &parent))
        };
        // Without the parent's block there is nothing to build on: decline (the view is
        // nullified and another leader tries).
        let Some((parent_height, parent_time)) = parent_known else {
            return receiver;
        };
        let view = context.round.view().get();
        let interval = self.source.block_interval().as_millis() as u64;
        let due = parent_time.saturating_add(interval);
        let now = self.source.timestamp();
        if interval > 0 && now < due {
            // Pace the chain: build the block when it is due (with what arrived by then).
            let app = self.clone();
            let wait = Duration::from_millis(due - now);
            let spawned = std::thread::Builder::new()
                .name("propose".into())
                .spawn(move || {
                    std::thread::sleep(wait);
                    let digest = app.build(parent, parent_height + 1, view, parent_time);
                    let _ = response.send(digest);
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot wait to propose; declining the view");
            }
            return receiver;
        }
        let digest = self.build(parent, parent_height + 1, view, parent_time);
        let _ = response.send(digest);
        receiver
    }

    async fn verify(&mut self, context: Self::Context, payload: Digest) -> oneshot::Receiver<bool> {
        let (response, receiver) = oneshot::channel();
        let mut state = self.state();
        let known = state.blocks.get(&payload).cloned();
        let parent_known = self.height_of(&state, &context.parent.1).is_some();
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
        let mut state = self.state();
        match activity {
            Activity::Finalization(f) => {
                state
                    .finalized
                    .insert(f.proposal.round.view().get(), f.proposal.payload);
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
            batches: vec![b"tx-one".to_vec(), Vec::new(), vec![0xff; 300]],
        }
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
        version[0] = 2;
        assert!(Proposal::decode(&version, &limits).is_err());
        let small = Limits {
            max_batches: 2,
            max_block_bytes: 1_000,
        };
        assert_eq!(
            Proposal::decode(&bytes, &small),
            Err(BlockError::TooManyBatches(3))
        );
        let tiny = Limits {
            max_batches: 8,
            max_block_bytes: 100,
        };
        assert_eq!(
            Proposal::decode(&bytes, &tiny),
            Err(BlockError::TooLarge(bytes.len()))
        );
        // A batch length pointing past the end.
        let mut lying = bytes;
        let at = 1 + 8 + 8 + 8 + 32 + 4;
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Proposal::decode(&lying, &limits).is_err());
    }
}
