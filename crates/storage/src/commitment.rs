//! The state commitment: Ethereum's Merkle-Patricia trie root over the flat state.
//!
//! Flat state is keyed by hashed address and hashed slot, so iterating a table visits leaves in
//! trie order and the root streams through alloy-trie's `HashBuilder`. Each account record keeps
//! its storage root, recomputed only for accounts whose storage changed.
//!
//! The account trie itself is rehashed in full on each block: linear in the number of accounts.

use alloy_primitives::{B256, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, HashBuilder, Nibbles, TrieAccount};
use pharos_primitives::StateDiff;
use redb::{ReadableTable, WriteTransaction};

use crate::{
    AccountRecord, StoreError,
    tables::{ACCOUNTS, CODES, STORAGE},
};

/// Key of a storage slot in the flat state.
pub fn storage_key(hashed_address: &B256, slot: &U256) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(hashed_address.as_slice());
    key[32..].copy_from_slice(keccak256(slot.to_be_bytes::<32>()).as_slice());
    key
}

fn storage_bounds(hashed_address: &B256) -> ([u8; 64], [u8; 64]) {
    let mut lo = [0u8; 64];
    lo[..32].copy_from_slice(hashed_address.as_slice());
    let mut hi = [0xffu8; 64];
    hi[..32].copy_from_slice(hashed_address.as_slice());
    (lo, hi)
}

/// Writes `diff` into the flat state inside `txn` and returns the new state root.
pub fn apply_diff(txn: &WriteTransaction, diff: &StateDiff) -> Result<B256, StoreError> {
    {
        let mut codes = txn.open_table(CODES)?;
        for (hash, code) in &diff.codes {
            codes.insert(&hash.0, code.as_ref())?;
        }
    }
    let mut accounts = txn.open_table(ACCOUNTS)?;
    let mut storage = txn.open_table(STORAGE)?;
    for (address, change) in &diff.accounts {
        let hashed = keccak256(address);
        let (lo, hi) = storage_bounds(&hashed);
        let wiped = change.storage_wiped || change.info.is_none();
        if wiped {
            storage.retain_in::<&[u8; 64], _>(&lo..=&hi, |_, _| false)?;
        }
        for (slot, value) in &change.storage {
            let key = storage_key(&hashed, slot);
            if value.is_zero() {
                storage.remove(&key)?;
            } else {
                storage.insert(&key, &value.to_be_bytes::<32>())?;
            }
        }
        match change.info {
            None => {
                accounts.remove(&hashed.0)?;
            }
            Some(state) => {
                let storage_root = if wiped || !change.storage.is_empty() {
                    let mut hb = HashBuilder::default();
                    for entry in storage.range::<&[u8; 64]>(&lo..=&hi)? {
                        let (k, v) = entry?;
                        let value = U256::from_be_bytes(*v.value());
                        hb.add_leaf(Nibbles::unpack(&k.value()[32..]), &alloy_rlp::encode(value));
                    }
                    hb.root()
                } else {
                    match accounts.get(&hashed.0)? {
                        Some(old) => AccountRecord::decode(old.value())?.storage_root,
                        None => EMPTY_ROOT_HASH,
                    }
                };
                let record = AccountRecord {
                    state,
                    storage_root,
                };
                accounts.insert(&hashed.0, record.encode().as_slice())?;
            }
        }
    }
    account_trie_root(&accounts)
}

/// Root of the account trie, streaming every account record in key order.
pub fn account_trie_root(
    accounts: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
) -> Result<B256, StoreError> {
    let mut hb = HashBuilder::default();
    let mut buf = Vec::with_capacity(128);
    for entry in accounts.iter()? {
        let (k, v) = entry?;
        let record = AccountRecord::decode(v.value())?;
        let leaf = TrieAccount {
            nonce: record.state.nonce,
            balance: record.state.balance,
            storage_root: record.storage_root,
            code_hash: record.state.code_hash,
        };
        buf.clear();
        alloy_rlp::Encodable::encode(&leaf, &mut buf);
        hb.add_leaf(Nibbles::unpack(k.value()), &buf);
    }
    Ok(hb.root())
}
