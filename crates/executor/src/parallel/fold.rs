//! The happy path's merge: each worker folds the writes of the groups it ran into per-account
//! summaries while it runs them, and the summaries of all workers combine into the block's diff
//! without replaying every transaction again.
//!
//! Sound only when every transaction stayed inside its prediction ([`contained`]): then no two
//! groups write one account's info or one slot, and a group's balance additions to an account
//! another group replaces all come after that replacement in block order. The combination is then
//! order-independent: the replacing group's value, plus every addition it had not already read.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, U256, map::HashMap};
use pharos_primitives::{AccountChange, AccountState, StateDiff};

use super::{
    base::BaseState,
    predict::{ADD, AccessPrediction, READ, WRITE},
    types::{Location, ReadKind, TxRun, TxWrites, Value, WriteOp, add_balance},
};
use crate::StateError;

/// Whether every access of `run` was predicted with its kind (the beneficiary's fee additions
/// need no prediction: they commute and nobody reads them without predicting it).
pub fn contained(p: &AccessPrediction, run: &TxRun, coinbase: Address) -> bool {
    run.reads.iter().all(|r| {
        let f = p.flags(&r.location);
        match r.kind {
            ReadKind::Full => f & (READ | WRITE) != 0,
            ReadKind::CodeOnly => f != 0,
        }
    }) && run.writes.ops.iter().all(|(l, op)| {
        let f = p.flags(l);
        match op {
            WriteOp::Set(_) => f & WRITE != 0,
            WriteOp::AddBalance(_) => f & (WRITE | ADD) != 0 || *l == Location::Account(coinbase),
        }
    })
}

/// One account's writes from one worker.
#[derive(Debug, Default)]
pub struct AccountFold {
    /// The last replacement of the account's info, if any.
    set: Option<Option<AccountState>>,
    /// Additions the last replacement already includes (its group's earlier additions).
    included: U256,
    /// All additions.
    delta: U256,
    /// Group whose additions `group_delta` sums.
    group: usize,
    group_delta: U256,
    wiped: bool,
    /// Slot writes, the latest per slot (a hash map: an ordered map's insertions cost several
    /// times more); sorted by [`WorkerFold::into_sorted`].
    storage: HashMap<U256, U256>,
}

/// One account's writes from one worker, final: what the merge needs, stored inline so merging
/// streams through memory instead of chasing pointers.
#[derive(Debug)]
pub struct AccountSummary {
    /// The account.
    pub address: Address,
    /// The worker's replacement of the account (when `replaced`), else the pre-block account.
    value: Option<AccountState>,
    replaced: bool,
    wiped: bool,
    /// Additions `value` does not include yet.
    add: U256,
    /// Slot writes, sorted by slot, one per slot.
    storage: Vec<(U256, U256)>,
}

/// A worker's fold, sorted by address, with the code it deployed.
pub type SortedFold = (FoldList, Vec<(B256, Bytes)>);

/// Accounts' summaries sorted by address.
pub type FoldList = Vec<AccountSummary>;

/// A worker's fold of the groups it ran.
#[derive(Debug, Default)]
pub struct WorkerFold {
    /// Where each account's fold sits in `slab` (folds are large and boxed: sorting and merging
    /// move pointers, not folds).
    index: HashMap<Address, usize>,
    slab: Vec<(Address, Box<AccountFold>)>,
    codes: Vec<(B256, Bytes)>,
}

impl WorkerFold {
    fn fold(&mut self, address: Address) -> &mut AccountFold {
        let slab = &mut self.slab;
        let i = *self.index.entry(address).or_insert_with(|| {
            slab.push((
                address,
                Box::new(AccountFold {
                    group: usize::MAX,
                    ..Default::default()
                }),
            ));
            slab.len() - 1
        });
        &mut self.slab[i].1
    }
}

impl WorkerFold {
    /// Folds the writes of one transaction of group `group` (transactions of a group arrive in
    /// block order).
    pub fn add(&mut self, group: usize, writes: &TxWrites) -> Result<(), StateError> {
        for a in &writes.wipes {
            let f = self.fold(*a);
            f.wiped = true;
            f.storage.clear();
        }
        self.codes.extend(writes.codes.iter().cloned());
        for (location, op) in &writes.ops {
            match (location, op) {
                (Location::Account(a), op) => {
                    let f = self.fold(*a);
                    if f.group != group {
                        f.group = group;
                        f.group_delta = U256::ZERO;
                    }
                    match op {
                        WriteOp::Set(Value::Account(v)) => {
                            f.set = Some(*v);
                            f.included = f.group_delta;
                        }
                        WriteOp::AddBalance(d) => {
                            f.delta = f.delta.saturating_add(*d);
                            f.group_delta = f.group_delta.saturating_add(*d);
                        }
                        WriteOp::Set(Value::Storage(_)) => {
                            return Err(StateError(format!("slot value written to account {a}")));
                        }
                    }
                }
                (Location::Storage(a, slot), WriteOp::Set(Value::Storage(v))) => {
                    self.fold(*a).storage.insert(*slot, *v);
                }
                (l, op) => {
                    return Err(StateError(format!(
                        "write {op:?} does not fit location {l:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The fold's accounts sorted by address, summarized, with the pre-block state of those it
    /// did not replace (done on the worker's thread, where the folds are in cache and were
    /// allocated).
    pub fn into_sorted(self, base: &BaseState<'_>) -> Result<SortedFold, StateError> {
        let mut accounts = self.slab;
        accounts.sort_unstable_by_key(|(a, _)| *a);
        let mut list = Vec::with_capacity(accounts.len());
        for (address, f) in accounts {
            let f = *f;
            let mut storage: Vec<(U256, U256)> = f.storage.into_iter().collect();
            storage.sort_unstable_by_key(|(slot, _)| *slot);
            let (value, replaced, add) = match f.set {
                Some(v) => (v, true, f.delta.saturating_sub(f.included)),
                None => (base.account(address)?, false, f.delta),
            };
            list.push(AccountSummary {
                address,
                value,
                replaced,
                wiped: f.wiped,
                add,
                storage,
            });
        }
        Ok((list, self.codes))
    }
}

/// Two workers' summaries of one account. At most one of them replaced it (no two groups write
/// one account's info); every addition the replacement does not include counts.
fn combine(mut a: AccountSummary, b: AccountSummary) -> AccountSummary {
    if b.replaced {
        a.value = b.value;
        a.replaced = true;
    }
    a.add = a.add.saturating_add(b.add);
    a.wiped |= b.wiped;
    // No two groups write one slot: the workers' slot sets are disjoint.
    let mut storage = b.storage;
    a.storage.append(&mut storage);
    a
}

/// Combines the workers' folds into the block's diff, merging disjoint address ranges on
/// `threads` threads.
pub fn into_diff(folds: Vec<SortedFold>, threads: usize) -> Result<StateDiff, StateError> {
    let mut codes = BTreeMap::new();
    let mut lists: Vec<FoldList> = Vec::with_capacity(folds.len());
    for (accounts, c) in folds {
        codes.extend(c);
        lists.push(accounts);
    }
    // Range boundaries: quantiles of the longest list (every list is sorted by address).
    let total: usize = lists.iter().map(Vec::len).sum();
    let ranges = if total < 2_048 { 1 } else { threads.max(1) };
    let mut bounds: Vec<Address> = Vec::new();
    if let Some(longest) = lists.iter().max_by_key(|l| l.len()) {
        for k in 1..ranges {
            if let Some(a) = longest.get(longest.len() * k / ranges).map(|f| f.address)
                && bounds.last() != Some(&a)
            {
                bounds.push(a);
            }
        }
    }
    // Each range's part of every list.
    let mut parts: Vec<Vec<FoldList>> = (0..=bounds.len()).map(|_| Vec::new()).collect();
    for mut list in lists {
        for (k, bound) in bounds.iter().enumerate().rev() {
            let at = list.partition_point(|f| f.address < *bound);
            parts[k + 1].push(list.split_off(at));
        }
        parts[0].push(list);
    }
    let merged: Vec<Vec<(Address, AccountChange)>> = if parts.len() == 1 {
        parts.into_iter().map(merge_range).collect()
    } else {
        std::thread::scope(|scope| {
            let mut parts = parts.into_iter();
            let first = parts.next();
            let handles: Vec<_> = parts.map(|p| scope.spawn(move || merge_range(p))).collect();
            let mut out = vec![first.map(merge_range).unwrap_or_default()];
            for h in handles {
                out.push(
                    h.join()
                        .map_err(|_| StateError("merging thread panicked".into()))?,
                );
            }
            Ok::<_, StateError>(out)
        })?
    };
    let mut changes = Vec::with_capacity(total);
    for part in merged {
        changes.extend(part);
    }
    Ok(StateDiff {
        // Ranges in order, each sorted: the map is built from sorted input.
        accounts: changes.into_iter().collect(),
        codes,
    })
}

/// Merges one address range of every worker's fold into account changes, in address order.
fn merge_range(lists: Vec<FoldList>) -> Vec<(Address, AccountChange)> {
    let mut changes = Vec::with_capacity(lists.iter().map(Vec::len).sum());
    let mut lists: Vec<_> = lists
        .into_iter()
        .map(|l| l.into_iter().peekable())
        .collect();
    // Repeatedly take the smallest address at the head of any list.
    while let Some(next) = lists
        .iter_mut()
        .filter_map(|l| l.peek().map(|f| f.address))
        .min()
    {
        let mut merged: Option<AccountSummary> = None;
        for l in &mut lists {
            if l.peek().is_some_and(|f| f.address == next)
                && let Some(f) = l.next()
            {
                merged = Some(match merged {
                    None => f,
                    Some(acc) => combine(acc, f),
                });
            }
        }
        let Some(f) = merged else { break };
        changes.push((
            next,
            AccountChange {
                info: add_balance(f.value, f.add),
                storage_wiped: f.wiped,
                storage: f.storage.into_iter().collect(),
            },
        ));
    }
    changes
}
