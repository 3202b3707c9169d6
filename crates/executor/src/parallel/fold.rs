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
pub type SortedFold = (Vec<(Address, AccountFold)>, Vec<(B256, Bytes)>);

/// A worker's fold of the groups it ran.
#[derive(Debug, Default)]
pub struct WorkerFold {
    /// Where each account's fold sits in `slab` (folds are large: they move once, not on every
    /// rehash or sort swap).
    index: HashMap<Address, usize>,
    slab: Vec<(Address, AccountFold)>,
    codes: Vec<(B256, Bytes)>,
}

impl WorkerFold {
    fn fold(&mut self, address: Address) -> &mut AccountFold {
        let slab = &mut self.slab;
        let i = *self.index.entry(address).or_insert_with(|| {
            slab.push((
                address,
                AccountFold {
                    group: usize::MAX,
                    ..Default::default()
                },
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
        let mut order: Vec<(Address, usize)> = self.index.into_iter().collect();
        order.sort_unstable_by_key(|(a, _)| *a);
        let mut slab: Vec<Option<(Address, AccountFold)>> =
            self.slab.into_iter().map(Some).collect();
        let mut accounts = Vec::with_capacity(order.len());
        for (_, i) in order {
            if let Some((a, mut f)) = slab[i].take() {
                if f.set.is_none() {
                    f.base = Some(base.account(a)?);
                }
                accounts.push((a, f));
            }
        }
        Ok((accounts, self.codes))
    }
}

fn combine(mut a: AccountFold, b: AccountFold) -> AccountFold {
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

/// Combines the workers' folds into the block's diff.
pub fn into_diff(folds: Vec<SortedFold>, base: &BaseState<'_>) -> Result<StateDiff, StateError> {
    let mut codes = BTreeMap::new();
    let mut lists = Vec::with_capacity(folds.len());
    for (accounts, c) in folds {
        codes.extend(c);
        lists.push(accounts.into_iter().peekable());
    }
    let mut changes = Vec::new();
    // Repeatedly take the smallest address at the head of any list.
    while let Some(next) = lists
        .iter_mut()
        .filter_map(|l| l.peek().map(|(a, _)| *a))
        .min()
    {
        let mut fold: Option<AccountFold> = None;
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
    Ok(StateDiff {
        accounts: changes.into_iter().collect(),
        codes,
    })
}
