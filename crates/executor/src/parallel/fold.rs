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
    storage: BTreeMap<U256, U256>,
    /// The pre-block account, read on the worker for accounts it did not replace.
    base: Option<Option<AccountState>>,
}

/// A worker's fold, sorted by address, with the code it deployed.
pub type SortedFold = (FoldList, Vec<(B256, Bytes)>);

/// Accounts' folds sorted by address.
pub type FoldList = Vec<(Address, Box<AccountFold>)>;

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

    /// The fold's accounts sorted by address, with the pre-block state of those it did not
    /// replace (done on the worker's thread).
    pub fn into_sorted(self, base: &BaseState<'_>) -> Result<SortedFold, StateError> {
        let mut accounts = self.slab;
        accounts.sort_unstable_by_key(|(a, _)| *a);
        for (a, f) in &mut accounts {
            if f.set.is_none() {
                f.base = Some(base.account(*a)?);
            }
        }
        Ok((accounts, self.codes))
    }
}

fn combine(mut a: Box<AccountFold>, b: Box<AccountFold>) -> Box<AccountFold> {
    let b = *b;
    if b.set.is_some() {
        a.set = b.set;
        a.included = b.included;
    }
    if a.base.is_none() {
        a.base = b.base;
    }
    a.delta = a.delta.saturating_add(b.delta);
    a.wiped |= b.wiped;
    let mut storage = b.storage;
    a.storage.append(&mut storage);
    a
}

/// Combines the workers' folds into the block's diff, merging disjoint address ranges on
/// `threads` threads.
pub fn into_diff(
    folds: Vec<SortedFold>,
    base: &BaseState<'_>,
    threads: usize,
) -> Result<StateDiff, StateError> {
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
            if let Some((a, _)) = longest.get(longest.len() * k / ranges)
                && bounds.last() != Some(a)
            {
                bounds.push(*a);
            }
        }
    }
    // Each range's part of every list (elements are an address and a pointer: cheap to move).
    let mut parts: Vec<Vec<FoldList>> = (0..=bounds.len()).map(|_| Vec::new()).collect();
    for mut list in lists {
        for (k, bound) in bounds.iter().enumerate().rev() {
            let at = list.partition_point(|(a, _)| a < bound);
            parts[k + 1].push(list.split_off(at));
        }
        parts[0].push(list);
    }
    let merged: Vec<Result<Vec<(Address, AccountChange)>, StateError>> = if parts.len() == 1 {
        parts.into_iter().map(|p| merge_range(p, base)).collect()
    } else {
        std::thread::scope(|scope| {
            let mut parts = parts.into_iter();
            let first = parts.next();
            let handles: Vec<_> = parts
                .map(|p| scope.spawn(move || merge_range(p, base)))
                .collect();
            let mut out = vec![first.map_or_else(|| Ok(Vec::new()), |p| merge_range(p, base))];
            for h in handles {
                out.push(
                    h.join()
                        .unwrap_or_else(|_| Err(StateError("merging thread panicked".into()))),
                );
            }
            out
        })
    };
    let mut changes = Vec::with_capacity(total);
    for part in merged {
        changes.extend(part?);
    }
    Ok(StateDiff {
        // Ranges in order, each sorted: the map is built from sorted input.
        accounts: changes.into_iter().collect(),
        codes,
    })
}

/// Merges one address range of every worker's fold into account changes, in address order.
fn merge_range(
    lists: Vec<FoldList>,
    base: &BaseState<'_>,
) -> Result<Vec<(Address, AccountChange)>, StateError> {
    let mut changes = Vec::with_capacity(lists.iter().map(Vec::len).sum());
    let mut lists: Vec<_> = lists
        .into_iter()
        .map(|l| l.into_iter().peekable())
        .collect();
    // Repeatedly take the smallest address at the head of any list.
    while let Some(next) = lists
        .iter_mut()
        .filter_map(|l| l.peek().map(|(a, _)| *a))
        .min()
    {
        let mut fold: Option<Box<AccountFold>> = None;
        for l in &mut lists {
            if l.peek().is_some_and(|(a, _)| *a == next)
                && let Some((_, f)) = l.next()
            {
                fold = Some(match fold {
                    None => f,
                    Some(acc) => combine(acc, f),
                });
            }
        }
        let Some(f) = fold else { break };
        let f = *f;
        let info = match f.set {
            Some(v) => add_balance(v, f.delta.saturating_sub(f.included)),
            None => {
                let pre = match f.base {
                    Some(pre) => pre,
                    None => base.account(next)?,
                };
                add_balance(pre, f.delta)
            }
        };
        changes.push((
            next,
            AccountChange {
                info,
                storage_wiped: f.wiped,
                storage: f.storage,
            },
        ));
    }
    Ok(changes)
}
