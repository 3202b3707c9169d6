//! Folding the write sets of a block's transactions, in order, into one state diff.

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256, map::HashMap};
use pharos_primitives::{AccountChange, AccountState, StateDiff};

use super::{
    base::BaseState,
    types::{Location, TxWrites, Value, WriteOp, add_balance},
};
use crate::StateError;

#[derive(Default)]
struct Pending {
    /// The account after the last write so far (`None`: not written yet).
    info: Option<Option<AccountState>>,
    wiped: bool,
    storage: BTreeMap<U256, U256>,
}

/// Applies `writes` in order to the pre-state `base` and returns the block's diff, with the same
/// storage-wipe rule as the sequential executor (an account created or deleted starts with empty
/// storage).
pub fn build<'w>(
    writes: impl IntoIterator<Item = &'w TxWrites>,
    base: &BaseState<'_>,
) -> Result<StateDiff, StateError> {
    let mut accounts: HashMap<Address, Pending> = HashMap::default();
    let mut codes = BTreeMap::new();
    for w in writes {
        for a in &w.wipes {
            let p = accounts.entry(*a).or_default();
            p.wiped = true;
            p.storage.clear();
        }
        for (hash, code) in &w.codes {
            codes.insert(*hash, code.clone());
        }
        for (location, op) in &w.ops {
            match (location, op) {
                (Location::Account(a), WriteOp::Set(Value::Account(v))) => {
                    accounts.entry(*a).or_default().info = Some(*v);
                }
                (Location::Account(a), WriteOp::AddBalance(d)) => {
                    let p = accounts.entry(*a).or_default();
                    let now = match p.info {
                        Some(v) => v,
                        None => base.account(*a)?,
                    };
                    p.info = Some(add_balance(now, *d));
                }
                (Location::Storage(a, slot), WriteOp::Set(Value::Storage(v))) => {
                    accounts.entry(*a).or_default().storage.insert(*slot, *v);
                }
                (l, op) => {
                    return Err(StateError(format!(
                        "write {op:?} does not fit location {l:?}"
                    )));
                }
            }
        }
    }
    let mut changes = Vec::with_capacity(accounts.len());
    for (address, p) in accounts {
        // Accounts whose storage changed but whose info did not keep their info.
        let info = match p.info {
            Some(v) => v,
            None => base.account(address)?,
        };
        changes.push((
            address,
            AccountChange {
                info,
                storage_wiped: p.wiped,
                storage: p.storage,
            },
        ));
    }
    changes.sort_unstable_by_key(|(a, _)| *a);
    Ok(StateDiff {
        accounts: changes.into_iter().collect(),
        codes,
    })
}
