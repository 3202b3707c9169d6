//! Flat state: one record per account and per slot, keyed by hash, written a whole block at a
//! time inside the block's write transaction.

use alloy_primitives::{B256, U256};
use pharos_primitives::StateDiff;
use redb::WriteTransaction;

use crate::{
    AccountRecord, StoreError,
    commitment::HashedDiff,
    tables::{ACCOUNTS, CODES, STORAGE},
};

/// Key of a storage slot in the flat state from the hashed address and hashed slot.
pub fn storage_key_hashed(hashed_address: &B256, hashed_slot: &B256) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(hashed_address.as_slice());
    key[32..].copy_from_slice(hashed_slot.as_slice());
    key
}

/// Key of a storage slot in the flat state.
pub fn storage_key(hashed_address: &B256, slot: &U256) -> [u8; 64] {
    storage_key_hashed(
        hashed_address,
        &alloy_primitives::keccak256(slot.to_be_bytes::<32>()),
    )
}

/// First and last possible storage keys of an account.
pub(crate) fn storage_bounds(hashed_address: &B256) -> ([u8; 64], [u8; 64]) {
    let mut lo = [0u8; 64];
    lo[..32].copy_from_slice(hashed_address.as_slice());
    let mut hi = [0xffu8; 64];
    hi[..32].copy_from_slice(hashed_address.as_slice());
    (lo, hi)
}

/// Writes a block's changes into the flat state. `storage_roots[i]` is the new storage root of
/// `hashed.accounts[i]` (ignored for deleted accounts).
pub fn write(
    txn: &WriteTransaction,
    diff: &StateDiff,
    hashed: &HashedDiff,
    storage_roots: &[B256],
) -> Result<(), StoreError> {
    {
        let mut codes = txn.open_table(CODES)?;
        for (hash, code) in &diff.codes {
            codes.insert(&hash.0, code.as_ref())?;
        }
    }
    let mut accounts = txn.open_table(ACCOUNTS)?;
    let mut storage = txn.open_table(STORAGE)?;
    for (account, storage_root) in hashed.accounts.iter().zip(storage_roots) {
        if account.wiped {
            let (lo, hi) = storage_bounds(&account.hashed);
            storage.retain_in::<&[u8; 64], _>(&lo..=&hi, |_, _| false)?;
        }
        for (hashed_slot, _, value) in &account.storage {
            let key = storage_key_hashed(&account.hashed, hashed_slot);
            if value.is_zero() {
                storage.remove(&key)?;
            } else {
                storage.insert(&key, &value.to_be_bytes::<32>())?;
            }
        }
        match account.info {
            None => {
                accounts.remove(&account.hashed.0)?;
            }
            Some(state) => {
                let record = AccountRecord {
                    state,
                    storage_root: *storage_root,
                };
                accounts.insert(&account.hashed.0, record.encode().as_slice())?;
            }
        }
    }
    Ok(())
}
