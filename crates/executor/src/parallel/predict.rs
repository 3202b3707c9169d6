//! Access-list inference: predicting, before execution, which state each transaction touches.
//!
//! Predictions only schedule (group transactions, order Block-STM, choose what to preload); they
//! never decide results. Sources, combined per transaction:
//! * the transaction itself: sender, recipient, created address, EIP-2930 access list;
//! * static analysis of the callee's bytecode ([`super::sali`]): storage slots per function
//!   selector, including `keccak256(key . slot)` mapping slots keyed by the caller or calldata,
//!   and calls into other contracts, resolved with the transaction's own values;
//! * dynamic hints: locations observed in earlier executions of the same (code hash, selector),
//!   kept when they recur, refined after every block.

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, B256, KECCAK256_EMPTY, U256, map::HashMap};
use parking_lot::RwLock;
use pharos_evm::{BlockContext, pharos_compliance as compliance};
use pharos_primitives::RecoveredTx;

use super::{
    base::BaseState,
    sali::{Analyzer, Resolved, TemplateCache},
    types::{Location, TxRun},
};

/// A slot of a mapping keyed by the transaction's sender, learned from executions: in
/// `address`'s storage, `keccak256(sender . base)` (a token balance), or one level deeper
/// `keccak256(outer . keccak256(sender . base))` (an allowance the sender gave `outer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallerSlot {
    /// `keccak256(sender . base)`.
    Mapping {
        /// The contract whose storage it is.
        address: Address,
        /// The mapping's slot.
        base: B256,
    },
    /// `keccak256(outer . keccak256(sender . base))`.
    Nested {
        /// The contract whose storage it is.
        address: Address,
        /// The outer mapping's slot.
        base: B256,
        /// The inner key.
        outer: B256,
    },
}

/// Hashes `a . b`, remembering the preimage for execution.
fn hash_pair(a: &B256, b: &B256, preimages: &mut Vec<super::sali::Preimage>) -> B256 {
    let mut input = [0u8; 64];
    input[..32].copy_from_slice(a.as_slice());
    input[32..].copy_from_slice(b.as_slice());
    let hash = alloy_primitives::keccak256(input);
    preimages.push((input, hash));
    hash
}

impl CallerSlot {
    /// The slot for `sender`, with the preimages hashed on the way.
    fn location(&self, sender: Address, preimages: &mut Vec<super::sali::Preimage>) -> Location {
        let key = B256::left_padding_from(sender.as_slice());
        match self {
            CallerSlot::Mapping { address, base } => Location::Storage(
                *address,
                U256::from_be_bytes(hash_pair(&key, base, preimages).0),
            ),
            CallerSlot::Nested {
                address,
                base,
                outer,
            } => {
                let inner = hash_pair(&key, base, preimages);
                Location::Storage(
                    *address,
                    U256::from_be_bytes(hash_pair(outer, &inner, preimages).0),
                )
            }
        }
    }

    /// Which sender-keyed slot `location` is, given the 64-byte hash inputs the transaction
    /// hashed.
    fn recognize(
        location: &Location,
        sender: Address,
        preimages: &[super::sali::Preimage],
    ) -> Option<Self> {
        let Location::Storage(address, slot) = location else {
            return None;
        };
        let find = |h: B256| {
            preimages
                .iter()
                .find(|(_, hash)| *hash == h)
                .map(|(p, _)| p)
        };
        let key = B256::left_padding_from(sender.as_slice());
        let pre = find(B256::from(*slot))?;
        let (first, second) = (B256::from_slice(&pre[..32]), B256::from_slice(&pre[32..]));
        if first == key {
            return Some(CallerSlot::Mapping {
                address: *address,
                base: second,
            });
        }
        let inner = find(second)?;
        (B256::from_slice(&inner[..32]) == key).then(|| CallerSlot::Nested {
            address: *address,
            base: B256::from_slice(&inner[32..]),
            outer: first,
        })
    }
}

/// What a hint predicts: locations, and slots keyed by the sender, with whether each is
/// written.
#[derive(Debug, Clone, Default)]
pub struct HintSet {
    locations: Vec<(Location, bool)>,
    callers: Vec<(CallerSlot, bool)>,
}

/// The locations a hint predicts, with whether each is written.
type ActiveHint = std::sync::Arc<HintSet>;

/// A worker's private caches for prediction (templates and hints), so predicting touches no
/// shared lock or reference count per transaction.
#[derive(Default)]
pub struct PredictCache {
    /// Templates, remembered calls and pre-state reads.
    pub templates: TemplateCache,
    hints: HashMap<HintKey, Option<ActiveHint>>,
    /// Whether a function has any usable hint (most calls to a function without one — a token's
    /// `transfer` to ever new recipients — then skip the per-argument lookup).
    functions: HashMap<FunctionKey, bool>,
}

/// A function of a contract: (code hash, selector).
type FunctionKey = (B256, [u8; 4]);
use crate::StateError;

/// Predicted to be read.
pub const READ: u8 = 1;
/// Predicted to be written.
pub const WRITE: u8 = 2;
/// Predicted to receive a balance addition (without being read).
pub const ADD: u8 = 4;

/// One predicted location with how it is used, and a 64-bit fingerprint used as its key when
/// partitioning (a fingerprint collision only merges two groups: slower, never wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredEntry {
    /// Where.
    pub location: Location,
    /// [`READ`] | [`WRITE`] | [`ADD`].
    pub flags: u8,
    /// Fingerprint of `location`.
    pub key: u64,
}

/// What a transaction is predicted to touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPrediction {
    /// Predicted locations, sorted by location, one entry each (after [`Self::finish`]).
    pub entries: Vec<PredEntry>,
    /// The transaction reads the block's beneficiary (sender or recipient is it).
    pub touches_coinbase: bool,
    /// Static analysis resolved every storage access of the call.
    pub complete: bool,
    /// Mapping slots static analysis hashed (preimage, hash), handed to execution.
    pub preimages: Vec<super::sali::Preimage>,
}

fn fingerprint(location: &Location) -> u64 {
    use alloy_primitives::map::foldhash;
    use std::hash::BuildHasher;
    static STATE: std::sync::OnceLock<foldhash::fast::FixedState> = std::sync::OnceLock::new();
    STATE
        .get_or_init(|| foldhash::fast::FixedState::with_seed(0x5041_524f_5321))
        .hash_one(location)
}

impl AccessPrediction {
    fn push(&mut self, location: Location, flags: u8) {
        self.entries.push(PredEntry {
            location,
            flags,
            key: 0,
        });
    }

    /// Predicts a read of `location`.
    pub fn read(&mut self, location: Location) {
        self.push(location, READ);
    }

    /// Predicts a write of `location`.
    pub fn write(&mut self, location: Location) {
        self.push(location, WRITE);
    }

    /// Predicts a balance addition to `address`.
    pub fn add(&mut self, address: Address) {
        self.push(Location::Account(address), ADD);
    }

    /// Sorts, merges duplicate locations and computes fingerprints.
    pub fn finish(mut self) -> Self {
        self.entries.sort_unstable_by_key(|e| e.location);
        self.entries.dedup_by(|a, b| {
            if a.location == b.location {
                b.flags |= a.flags;
                true
            } else {
                false
            }
        });
        for e in &mut self.entries {
            e.key = fingerprint(&e.location);
        }
        self
    }

    /// [`Self::finish`] for a block paying `coinbase`: a predicted read or write of the
    /// beneficiary (an access list naming it, a call to it) reads every earlier transaction's
    /// fee, which are credited by addition and never predicted — such a transaction depends on
    /// every one before it.
    pub fn finish_for(self, coinbase: Address) -> Self {
        let mut p = self.finish();
        if p.flags(&Location::Account(coinbase)) & (READ | WRITE) != 0 {
            p.touches_coinbase = true;
        }
        p
    }

    /// The flags predicted for `location` (0 when not predicted).
    pub fn flags(&self, location: &Location) -> u8 {
        match self.entries.binary_search_by(|e| e.location.cmp(location)) {
            Ok(i) => self.entries[i].flags,
            Err(_) => 0,
        }
    }

    /// Every predicted location (for preloading and accuracy metrics).
    pub fn locations(&self) -> impl Iterator<Item = Location> + '_ {
        self.entries.iter().map(|e| e.location)
    }
}

/// A hint is kept per (contract, code hash, selector, first argument): what a router touches
/// depends on the pool it is given, what a token touches on the recipient — and two contracts
/// with the same code touch their own storage (keyed by code alone, increments spread over
/// three counters left each counter below the hint's threshold, and a chain of increments on one
/// of them looked independent).
type HintKey = (Address, B256, [u8; 4], B256);

fn hint_key(contract: Address, code_hash: B256, selector: [u8; 4], input: &[u8]) -> HintKey {
    let mut arg = [0u8; 32];
    if input.len() > 4 {
        let end = input.len().min(36);
        arg[..end - 4].copy_from_slice(&input[4..end]);
    }
    (contract, code_hash, selector, B256::from(arg))
}

/// Up to `k` distinct indices below `n`, spread over the whole range without a fixed stride: a
/// stride can alias with a periodic block (every 20th transaction on the same few pools) and
/// never learn the rest.
fn sample_indices(n: usize, k: usize) -> impl Iterator<Item = usize> {
    // Multiplying by a prime that does not divide `n` permutes 0..n.
    let step = [7_919usize, 7_907, 7_901]
        .into_iter()
        .find(|p| !n.is_multiple_of(*p))
        .unwrap_or(1);
    (0..n.min(k)).map(move |j| (j * step) % n.max(1))
}

/// Transactions of a block that learning looks at.
const LEARN_SAMPLE: usize = 512;

/// The indices of a block of `n` transactions that [`Predictor::learn`] looks at (their reads
/// and writes must be kept until then).
pub fn learning_sample(n: usize) -> impl Iterator<Item = usize> {
    sample_indices(n, LEARN_SAMPLE)
}

/// Most functions-with-argument remembered; when full, learning starts over.
const MAX_HINTS: usize = 1 << 16;

/// Locations seen in earlier executions of one function of one contract.
#[derive(Debug, Clone, Default)]
struct Hint {
    /// Location → (times seen, whether it was written).
    seen: Counts<Location>,
    /// Sender-keyed slots → (times seen, whether written).
    callers: Counts<CallerSlot>,
    executions: u32,
    /// What predictions use: touched by at least half the executions seen.
    active: Option<ActiveHint>,
}

/// What a hint counts per location or rule: (times seen, whether it was written).
type Counts<K> = HashMap<K, (u32, bool)>;

/// Adds `from`'s counts to `into`; when more than [`HINT_CAPACITY`] are held, keeps the most
/// frequent half.
fn add_counts<K: std::hash::Hash + Eq>(into: &mut Counts<K>, from: Counts<K>) {
    for (k, (c, w)) in from {
        let e = into.entry(k).or_default();
        e.0 = e.0.saturating_add(c);
        e.1 |= w;
    }
    if into.len() > HINT_CAPACITY {
        let mut all: Vec<(K, (u32, bool))> = into.drain().collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.1.0));
        all.truncate(HINT_CAPACITY / 2);
        *into = all.into_iter().collect();
    }
}

/// The entries of `counts` seen in at least half of `executions`, with whether written.
fn common<K: Copy>(counts: &Counts<K>, executions: u32) -> Vec<(K, bool)> {
    counts
        .iter()
        .filter(|(_, (count, _))| 2 * *count >= executions)
        .map(|(k, (_, written))| (*k, *written))
        .collect()
}

impl Hint {
    fn refresh(&mut self) {
        self.active = (self.executions >= MIN_HINT_EXECUTIONS).then(|| {
            std::sync::Arc::new(HintSet {
                locations: common(&self.seen, self.executions),
                callers: common(&self.callers, self.executions),
            })
        });
    }
}

/// Executions of a function observed before its hint is used.
const MIN_HINT_EXECUTIONS: u32 = 4;

/// Most locations a hint remembers per function.
const HINT_CAPACITY: usize = 64;

/// Predicts accesses; keeps its analysis cache and dynamic hints across blocks.
#[derive(Default)]
pub struct Predictor {
    analyzer: Analyzer,
    hints: RwLock<HashMap<HintKey, Hint>>,
    /// Functions with at least one usable hint.
    hinted: RwLock<alloy_primitives::map::HashSet<FunctionKey>>,
}

fn selector(input: &[u8]) -> Option<[u8; 4]> {
    input.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok())
}

impl PredictCache {
    /// A cache that follows calls `depth` levels deep.
    pub fn with_call_depth(depth: usize) -> Self {
        let mut c = Self::default();
        c.templates.max_depth = depth;
        c
    }
}

impl Predictor {
    /// The static analyzer (exposed for benchmarks and tests).
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// Hints held: (code hash, selector, first argument) keys learned from executions.
    pub fn hints_held(&self) -> usize {
        self.hints.read().len()
    }

    /// Predicts what `tx` touches in `block` on top of `base`.
    pub fn predict(
        &self,
        tx: &RecoveredTx,
        block: &BlockContext,
        base: &BaseState<'_>,
        cache: &mut PredictCache,
    ) -> Result<AccessPrediction, StateError> {
        let sender = tx.sender();
        let coinbase = block.beneficiary;
        let mut p = AccessPrediction {
            touches_coinbase: sender == coinbase || tx.to() == Some(coinbase),
            complete: true,
            ..Default::default()
        };
        p.write(Location::Account(sender));
        // Protocol reads: native coin moving asks the sanctions list (its size first).
        if !tx.value().is_zero() {
            p.read(Location::Storage(
                compliance::SANCTIONS_LIST,
                compliance::sanctions::COUNT_SLOT,
            ));
        }
        if let Some(list) = tx.envelope().access_list() {
            for item in &list.0 {
                p.read(Location::Account(item.address));
                for key in &item.storage_keys {
                    p.write(Location::Storage(item.address, (*key).into()));
                }
            }
        }
        if tx.envelope().authorization_list().is_some() {
            // Authorities are recovered by revm; the prediction does not pay for that.
            p.complete = false;
        }
        let Some(to) = tx.to() else {
            p.write(Location::Account(sender.create(tx.nonce())));
            p.complete = false;
            return Ok(p.finish_for(coinbase));
        };
        let callee = cache.templates.base.account(base, to)?;
        let code_hash = callee.map(|a| a.code_hash).unwrap_or(KECCAK256_EMPTY);
        if code_hash == KECCAK256_EMPTY {
            if !tx.value().is_zero() && to != sender {
                p.add(to);
            } else {
                p.read(Location::Account(to));
            }
            return Ok(p.finish_for(coinbase));
        }
        p.read(Location::Account(to));
        if !tx.value().is_zero() {
            p.write(Location::Account(to));
        }
        // A token's Transfer event asks whether the token is a regulated asset.
        p.read(Location::Storage(
            compliance::ASSET_COMPLIANCE,
            compliance::assets::registration_slot(to),
        ));
        let Some(sel) = selector(tx.input()) else {
            p.complete = false;
            return Ok(p.finish_for(coinbase));
        };
        // A learned hint, when this function with this first argument recurred often enough,
        // stands in for static analysis.
        let function = (code_hash, sel);
        let hinted = *cache
            .functions
            .entry(function)
            .or_insert_with(|| self.hinted.read().contains(&function));
        let hint = if hinted {
            let key = hint_key(to, code_hash, sel, tx.input());
            cache
                .hints
                .entry(key)
                .or_insert_with(|| {
                    self.hints
                        .read()
                        .get(&key)
                        .and_then(|h| h.active.as_ref())
                        .map(|a| std::sync::Arc::new((**a).clone()))
                })
                .clone()
        } else {
            None
        };
        if let Some(active) = hint {
            for (l, written) in &active.locations {
                if *written {
                    p.write(*l);
                } else {
                    p.read(*l);
                }
            }
            // In memory a few unpredicted reads cost less than hashing the sender's slots up
            // front (measured on the Uniswap block: prediction 5 → 14 ms for recall 81 → 98%).
            if cache.templates.max_depth <= super::sali::SHALLOW_CALL_DEPTH {
                p.complete = false;
                return Ok(p.finish_for(coinbase));
            }
            // Against slow storage every miss stalls a worker: the sender's own slots too, and
            // static analysis as well, deeply.
            for (c, written) in &active.callers {
                let l = c.location(sender, &mut p.preimages);
                if *written {
                    p.write(l);
                } else {
                    p.read(l);
                }
            }
        }
        // Static analysis, resolved with this transaction's caller and calldata.
        let accesses = match self.analyzer.resolve(
            base,
            code_hash,
            to,
            sender,
            tx.input(),
            &mut cache.templates,
        )? {
            Resolved::Complete(a) => a,
            Resolved::Partial(a) => {
                p.complete = false;
                a
            }
        };
        for l in accesses.reads {
            p.read(l);
        }
        for l in accesses.writes {
            p.write(l);
        }
        p.preimages.extend(accesses.preimages);
        Ok(p.finish_for(coinbase))
    }

    /// Learns from executed transactions: which locations each called function touched. Looks
    /// at a bounded sample of the block.
    ///
    /// A transaction whose prediction static analysis completed and whose execution stayed
    /// inside it teaches nothing: it is skipped (an ERC-20 `transfer` to ever new recipients
    /// would otherwise file a hint per recipient that never recurs).
    pub fn learn(
        &self,
        txs: &[std::sync::Arc<RecoveredTx>],
        runs: &[TxRun],
        predictions: &[AccessPrediction],
        base: &BaseState<'_>,
        coinbase: Address,
    ) {
        type Update = (u32, Counts<Location>, Counts<CallerSlot>);
        let mut updates: HashMap<HintKey, Update> = HashMap::default();
        for i in learning_sample(txs.len().min(runs.len())) {
            let (tx, run) = (&txs[i], &runs[i]);
            if predictions
                .get(i)
                .is_some_and(|p| p.complete && super::fold::contained(p, run, coinbase))
            {
                continue;
            }
            let (Some(to), Some(sel)) = (tx.to(), selector(tx.input())) else {
                continue;
            };
            let Ok(Some(callee)) = base.account(to) else {
                continue;
            };
            if callee.code_hash == KECCAK256_EMPTY {
                continue;
            }
            let sender = tx.sender();
            let mut touched: Vec<(Location, bool)> = run
                .reads
                .iter()
                .map(|r| (r.location, false))
                .chain(run.writes.ops.iter().map(|(l, _)| (*l, true)))
                // The sender's and callee's accounts are predicted anyway (slots keyed by the
                // sender are recognized below and learned as rules).
                .filter(|(l, _)| {
                    *l != Location::Account(sender)
                        && *l != Location::Account(to)
                        && *l != Location::Account(coinbase)
                })
                .collect();
            touched.sort();
            touched.dedup_by(|a, b| {
                if a.0 == b.0 {
                    b.1 |= a.1;
                    true
                } else {
                    false
                }
            });
            let (executions, seen, callers) = updates
                .entry(hint_key(to, callee.code_hash, sel, tx.input()))
                .or_default();
            *executions += 1;
            for (l, w) in touched {
                // A slot keyed by the sender recurs as a rule over senders, not as a location.
                let e = match CallerSlot::recognize(&l, sender, &run.preimages) {
                    Some(c) => callers.entry(c).or_default(),
                    None => seen.entry(l).or_default(),
                };
                e.0 += 1;
                e.1 |= w;
            }
        }
        if updates.is_empty() {
            return;
        }
        let mut hints = self.hints.write();
        let mut hinted = self.hinted.write();
        if hints.len() + updates.len() > MAX_HINTS {
            hints.clear();
            hinted.clear();
        }
        for (key, touched) in updates {
            let hint = hints.entry(key).or_default();
            let (executions, per_location, per_caller_slot) = touched;
            hint.executions = hint.executions.saturating_add(executions);
            add_counts(&mut hint.seen, per_location);
            add_counts(&mut hint.callers, per_caller_slot);
            hint.refresh();
            if hint.active.is_some() {
                hinted.insert((key.1, key.2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CallerSlot, Location, sample_indices};
    use alloy_primitives::{Address, B256};

    #[test]
    fn sender_keyed_slots_are_recognized_and_rebuilt_for_other_senders() {
        let token = Address::repeat_byte(0x70);
        let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
        let router = B256::left_padding_from(Address::repeat_byte(0x77).as_slice());
        let balance = CallerSlot::Mapping {
            address: token,
            base: B256::with_last_byte(0),
        };
        let allowance = CallerSlot::Nested {
            address: token,
            base: B256::with_last_byte(1),
            outer: router,
        };
        for slot in [balance, allowance] {
            // What execution hashed for alice, and the slot it touched.
            let mut hashed = Vec::new();
            let touched = slot.location(alice, &mut hashed);
            assert_eq!(CallerSlot::recognize(&touched, alice, &hashed), Some(slot));
            // Not keyed by another sender, nor recognizable without the hash inputs.
            assert_eq!(CallerSlot::recognize(&touched, bob, &hashed), None);
            assert_eq!(CallerSlot::recognize(&touched, alice, &[]), None);
            assert_eq!(
                CallerSlot::recognize(&Location::Account(token), alice, &hashed),
                None
            );
            // For bob: another slot, with the inputs execution will hash.
            let mut for_bob = Vec::new();
            let theirs = slot.location(bob, &mut for_bob);
            assert_ne!(theirs, touched);
            assert_eq!(CallerSlot::recognize(&theirs, bob, &for_bob), Some(slot));
        }
        // Solidity's layout: `balanceOf[alice]` at keccak256(pad(alice) . 0).
        let mut hashed = Vec::new();
        let Location::Storage(_, slot) = balance.location(alice, &mut hashed) else {
            panic!("a slot");
        };
        let mut input = [0u8; 64];
        input[12..32].copy_from_slice(alice.as_slice());
        assert_eq!(
            B256::from(slot),
            alloy_primitives::keccak256(input),
            "mapping slot layout"
        );
    }

    #[test]
    fn learning_sample_is_distinct_in_range_and_not_strided() {
        for n in [
            0usize,
            1,
            7,
            512,
            513,
            10_000,
            7_919,
            7_919 * 7_907,
            20 * 7_919,
        ] {
            let picked: Vec<usize> = sample_indices(n, 512).collect();
            assert_eq!(picked.len(), n.min(512), "n = {n}");
            assert!(picked.iter().all(|i| *i < n.max(1)), "n = {n}");
            let distinct: std::collections::HashSet<_> = picked.iter().collect();
            assert_eq!(distinct.len(), picked.len(), "n = {n}: duplicates");
        }
        // Every residue modulo 20 is sampled in a 10,000-transaction block (a stride of 20
        // picked one residue only).
        let residues: std::collections::HashSet<usize> =
            sample_indices(10_000, 512).map(|i| i % 20).collect();
        assert_eq!(residues.len(), 20);
    }
}
