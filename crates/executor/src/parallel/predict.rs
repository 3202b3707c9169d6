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
use alloy_primitives::{Address, B256, KECCAK256_EMPTY, map::HashMap};
use parking_lot::RwLock;
use pharos_evm::BlockContext;
use pharos_primitives::RecoveredTx;

use super::{
    base::BaseState,
    sali::{Analyzer, Resolved},
    types::{Location, TxRun},
};
use crate::StateError;

/// What a transaction is predicted to touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPrediction {
    /// Locations read.
    pub reads: Vec<Location>,
    /// Locations written.
    pub writes: Vec<Location>,
    /// Accounts receiving a balance addition without being read (plain-transfer recipients).
    pub adds: Vec<Address>,
    /// The transaction reads the block's beneficiary (sender or recipient is it).
    pub touches_coinbase: bool,
    /// Static analysis resolved every storage access of the call.
    pub complete: bool,
}

impl AccessPrediction {
    /// Every predicted location (for preloading and accuracy metrics).
    pub fn locations(&self) -> impl Iterator<Item = Location> + '_ {
        self.reads
            .iter()
            .chain(&self.writes)
            .copied()
            .chain(self.adds.iter().map(|a| Location::Account(*a)))
    }
}

type HintKey = (B256, [u8; 4]);

/// Locations seen in earlier executions of one function of one contract.
#[derive(Debug, Clone, Default)]
struct Hint {
    /// Location → (times seen, whether it was written).
    seen: HashMap<Location, (u32, bool)>,
    executions: u32,
}

/// Most locations a hint remembers per function.
const HINT_CAPACITY: usize = 64;

/// Predicts accesses; keeps its analysis cache and dynamic hints across blocks.
#[derive(Default)]
pub struct Predictor {
    analyzer: Analyzer,
    hints: RwLock<HashMap<HintKey, Hint>>,
}

fn selector(input: &[u8]) -> Option<[u8; 4]> {
    input.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok())
}

impl Predictor {
    /// The static analyzer (exposed for benchmarks and tests).
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// Predicts what `tx` touches in `block` on top of `base`.
    pub fn predict(
        &self,
        tx: &RecoveredTx,
        block: &BlockContext,
        base: &BaseState<'_>,
    ) -> Result<AccessPrediction, StateError> {
        let sender = tx.sender();
        let coinbase = block.beneficiary;
        let mut p = AccessPrediction {
            writes: vec![Location::Account(sender)],
            touches_coinbase: sender == coinbase || tx.to() == Some(coinbase),
            complete: true,
            ..Default::default()
        };
        if let Some(list) = tx.envelope().access_list() {
            for item in &list.0 {
                p.reads.push(Location::Account(item.address));
                for key in &item.storage_keys {
                    p.writes
                        .push(Location::Storage(item.address, (*key).into()));
                }
            }
        }
        if tx.envelope().authorization_list().is_some() {
            // Authorities are recovered by revm; the prediction does not pay for that.
            p.complete = false;
        }
        let Some(to) = tx.to() else {
            p.writes.push(Location::Account(sender.create(tx.nonce())));
            p.complete = false;
            return Ok(p);
        };
        let callee = base.account(to)?;
        let code_hash = callee.map(|a| a.code_hash).unwrap_or(KECCAK256_EMPTY);
        if code_hash == KECCAK256_EMPTY {
            if !tx.value().is_zero() && to != sender {
                p.adds.push(to);
            } else {
                p.reads.push(Location::Account(to));
            }
            return Ok(p);
        }
        p.reads.push(Location::Account(to));
        if !tx.value().is_zero() {
            p.writes.push(Location::Account(to));
        }
        let Some(sel) = selector(tx.input()) else {
            p.complete = false;
            return Ok(p);
        };
        // Static analysis, resolved with this transaction's caller and calldata.
        match self
            .analyzer
            .resolve(base, code_hash, to, sender, tx.input())?
        {
            Resolved::Complete(accesses) => {
                p.reads.extend(accesses.reads);
                p.writes.extend(accesses.writes);
            }
            Resolved::Partial(accesses) => {
                p.reads.extend(accesses.reads);
                p.writes.extend(accesses.writes);
                p.complete = false;
            }
        }
        // Dynamic hints: what this function touched before, when it recurred.
        if let Some(hint) = self.hints.read().get(&(code_hash, sel)) {
            let threshold = (hint.executions / 2).max(1);
            for (l, (count, written)) in &hint.seen {
                if *count >= threshold {
                    if *written {
                        p.writes.push(*l);
                    } else {
                        p.reads.push(*l);
                    }
                }
            }
        }
        Ok(p)
    }

    /// Learns from executed transactions: which locations each called function touched.
    pub fn learn(&self, txs: &[std::sync::Arc<RecoveredTx>], runs: &[TxRun], base: &BaseState<'_>) {
        let mut updates: HashMap<HintKey, Vec<(Location, bool)>> = HashMap::default();
        for (tx, run) in txs.iter().zip(runs) {
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
                // The sender's and callee's accounts are predicted anyway; per-caller slots recur
                // only for the same caller, which static analysis covers.
                .filter(|(l, _)| *l != Location::Account(sender) && *l != Location::Account(to))
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
            updates
                .entry((callee.code_hash, sel))
                .or_default()
                .extend(touched);
        }
        if updates.is_empty() {
            return;
        }
        let mut hints = self.hints.write();
        for (key, touched) in updates {
            let hint = hints.entry(key).or_default();
            // Count executions by how many times the most frequent location repeats in this batch.
            let mut per_location: HashMap<Location, (u32, bool)> = HashMap::default();
            for (l, w) in touched {
                let e = per_location.entry(l).or_default();
                e.0 += 1;
                e.1 |= w;
            }
            let batch_executions = per_location.values().map(|(c, _)| *c).max().unwrap_or(0);
            hint.executions = hint.executions.saturating_add(batch_executions);
            for (l, (c, w)) in per_location {
                let e = hint.seen.entry(l).or_default();
                e.0 = e.0.saturating_add(c);
                e.1 |= w;
            }
            if hint.seen.len() > HINT_CAPACITY {
                // Keep the most frequent locations.
                let mut all: Vec<(Location, (u32, bool))> = hint.seen.drain().collect();
                all.sort_by_key(|e| std::cmp::Reverse(e.1.0));
                all.truncate(HINT_CAPACITY / 2);
                hint.seen = all.into_iter().collect();
            }
        }
    }
}
