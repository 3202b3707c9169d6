//! Folding the write sets of a block's transactions, in order, into one state diff.

use std::collections::BTreeMap;

use alloy_primitives::{Address, map::HashMap};
use pharos_primitives::{AccountChange, AccountState, StateDiff};

use super::{
    base::BaseState,
    types::{Location, TxWrites, Value, WriteOp, add_balance},
};
use crate::StateError;

/// Applies `writes` in order to the pre-state `base` and returns the block's diff, with the same
/// storage-wipe rule as the sequential executor (an account created or deleted starts with empty
/// storage).
pub fn build<'w>(
    writes: impl IntoIterator<Item = &'w TxWrites>,
    base: &BaseState<'_>,
) -> Result<StateDiff, StateError> {
    let mut accounts: BTreeMap<Address, AccountChange> = BTreeMap::new();
    let mut current: HashMap<Address, Option<AccountState>> = HashMap::default();
    let mut info_written: alloy_primitives::map::HashSet<Address> = Default::default();
    let mut codes = BTreeMap::new();
    for w in writes {
        for a in &w.wipes {
            let change = accounts.entry(*a).or_default();
            change.storage_wiped = true;
            change.storage.clear();
        }
        for (hash, code) in &w.codes {
            codes.insert(*hash, code.clone());
        }
        for (location, op) in &w.ops {
            match (location, op) {
                (Location::Account(a), WriteOp::Set(Value::Account(v))) => {
                    current.insert(*a, *v);
                    info_written.insert(*a);
                    accounts.entry(*a).or_default().info = *v;
                }
                (Location::Account(a), WriteOp::AddBalance(d)) => {
                    let now = match current.get(a) {
                        Some(v) => *v,
                        None => base.account(*a)?,
                    };
                    let v = add_balance(now, *d);
                    current.insert(*a, v);
                    info_written.insert(*a);
                    accounts.entry(*a).or_default().info = v;
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
    // Accounts whose storage changed but whose info did not keep their info.
    for (address, change) in accounts.iter_mut() {
        if !info_written.contains(address) {
            change.info = base.account(*address)?;
        }
    }
    Ok(StateDiff { accounts, codes })
}
