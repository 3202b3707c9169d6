//! The state commitment: the root hash a block header carries over the whole state.
//!
//! A block's [`StateDiff`] is first hashed once into a [`HashedDiff`] (keccak of every address
//! and slot, in parallel for large blocks): the flat state and the commitment are both keyed by
//! these hashes. [`mpt::MptCommitment`] then updates Ethereum's Merkle-Patricia tries
//! incrementally. [`full_state_root`] recomputes the root from the flat state alone, streaming
//! it through alloy-trie's `HashBuilder`: an independent check, linear in the state size.

pub mod mpt;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, HashBuilder, Nibbles, TrieAccount};
use pharos_primitives::{AccountState, StateDiff};
use rayon::prelude::*;
use redb::ReadableTable;

use crate::{AccountRecord, StoreError};

pub use mpt::{CommitmentConfig, MptCommitment};

/// One changed account, keyed by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedAccount {
    /// The address.
    pub address: Address,
    /// keccak256(address).
    pub hashed: B256,
    /// New state; `None` when the account was deleted.
    pub info: Option<AccountState>,
    /// Storage was cleared before `storage` applies (always so for a deleted account).
    pub wiped: bool,
    /// Written slots: keccak256(slot), slot, value (zero deletes).
    pub storage: Vec<(B256, U256, U256)>,
}

/// A block's state changes with every key hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashedDiff {
    /// Changed accounts, in address order.
    pub accounts: Vec<HashedAccount>,
}

/// Blocks writing at least this many keys hash them on all cores.
const PARALLEL_HASHING: usize = 512;

impl HashedDiff {
    /// Hashes the keys of `diff`.
    pub fn new(diff: &StateDiff) -> Self {
        let hash_one =
            |(address, change): (&Address, &pharos_primitives::AccountChange)| HashedAccount {
                address: *address,
                hashed: keccak256(address),
                info: change.info,
                wiped: change.storage_wiped || change.info.is_none(),
                storage: change
                    .storage
                    .iter()
                    .map(|(slot, value)| (keccak256(slot.to_be_bytes::<32>()), *slot, *value))
                    .collect(),
            };
        let keys = diff.accounts.len() + diff.storage_writes();
        let accounts = if keys >= PARALLEL_HASHING {
            diff.accounts.par_iter().map(hash_one).collect()
        } else {
            diff.accounts.iter().map(hash_one).collect()
        };
        Self { accounts }
    }

    /// Number of account and slot changes.
    pub fn len(&self) -> usize {
        self.accounts.iter().map(|a| 1 + a.storage.len()).sum()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

/// The RLP of an account leaf.
pub fn account_leaf(state: &AccountState, storage_root: B256) -> Vec<u8> {
    alloy_rlp::encode(TrieAccount {
        nonce: state.nonce,
        balance: state.balance,
        storage_root,
        code_hash: state.code_hash,
    })
}

/// Recomputes the state root from the flat state alone (every storage root too). Linear in the
/// state size: for checks and tests, never on the block path.
pub fn full_state_root(
    accounts: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    storage: &impl ReadableTable<&'static [u8; 64], &'static [u8; 32]>,
) -> Result<B256, StoreError> {
    let mut hb = HashBuilder::default();
    for entry in accounts.iter()? {
        let (k, v) = entry?;
        let hashed = B256::from(*k.value());
        let record = AccountRecord::decode(v.value())?;
        let (lo, hi) = crate::flat::storage_bounds(&hashed);
        let mut storage_hb = HashBuilder::default();
        let mut any = false;
        for slot in storage.range::<&[u8; 64]>(&lo..=&hi)? {
            let (k, v) = slot?;
            let value = U256::from_be_bytes(*v.value());
            storage_hb.add_leaf(Nibbles::unpack(&k.value()[32..]), &alloy_rlp::encode(value));
            any = true;
        }
        let storage_root = if any {
            storage_hb.root()
        } else {
            EMPTY_ROOT_HASH
        };
        hb.add_leaf(
            Nibbles::unpack(hashed),
            &account_leaf(&record.state, storage_root),
        );
    }
    Ok(hb.root())
}
