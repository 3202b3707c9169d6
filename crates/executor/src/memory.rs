//! State held in memory: for tests, state-test fixtures and benchmarks.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, KECCAK256_EMPTY, U256, keccak256, map::HashMap};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount, root::storage_root_unhashed};
use pharos_primitives::{AccountState, StateDiff};

use crate::{StateError, StateView};

/// A complete state in memory, with the Ethereum state root computed from scratch on demand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryState {
    /// Accounts.
    pub accounts: HashMap<Address, AccountState>,
    /// Storage per account (zero values are not kept).
    pub storage: HashMap<Address, BTreeMap<U256, U256>>,
    /// Code by hash.
    pub codes: HashMap<B256, Bytes>,
    /// Known block hashes by number.
    pub block_hashes: HashMap<u64, B256>,
}

impl MemoryState {
    /// Adds or replaces an account, with optional code and storage.
    pub fn insert_account(
        &mut self,
        address: Address,
        nonce: u64,
        balance: U256,
        code: Option<Bytes>,
        storage: impl IntoIterator<Item = (U256, U256)>,
    ) {
        let code_hash = match code {
            Some(code) if !code.is_empty() => {
                let hash = keccak256(&code);
                self.codes.insert(hash, code);
                hash
            }
            _ => KECCAK256_EMPTY,
        };
        self.accounts.insert(
            address,
            AccountState {
                nonce,
                balance,
                code_hash,
            },
        );
        let slots: BTreeMap<U256, U256> =
            storage.into_iter().filter(|(_, v)| !v.is_zero()).collect();
        if slots.is_empty() {
            self.storage.remove(&address);
        } else {
            self.storage.insert(address, slots);
        }
    }

    /// Applies a block's diff.
    pub fn apply(&mut self, diff: &StateDiff) {
        for (hash, code) in &diff.codes {
            self.codes.insert(*hash, code.clone());
        }
        for (address, change) in &diff.accounts {
            if change.storage_wiped {
                self.storage.remove(address);
            }
            match change.info {
                Some(info) => {
                    self.accounts.insert(*address, info);
                }
                None => {
                    self.accounts.remove(address);
                    self.storage.remove(address);
                }
            }
            if !change.storage.is_empty() {
                let slots = self.storage.entry(*address).or_default();
                for (slot, value) in &change.storage {
                    if value.is_zero() {
                        slots.remove(slot);
                    } else {
                        slots.insert(*slot, *value);
                    }
                }
                if slots.is_empty() {
                    self.storage.remove(address);
                }
            }
        }
    }

    /// The Ethereum Merkle-Patricia state root, computed from scratch.
    pub fn state_root(&self) -> B256 {
        let mut leaves: Vec<(B256, TrieAccount)> = self
            .accounts
            .iter()
            .map(|(address, info)| {
                let storage_root = self
                    .storage
                    .get(address)
                    .map(|s| storage_root_unhashed(s.iter().map(|(k, v)| (B256::from(*k), *v))))
                    .unwrap_or(EMPTY_ROOT_HASH);
                (
                    keccak256(address),
                    TrieAccount {
                        nonce: info.nonce,
                        balance: info.balance,
                        storage_root,
                        code_hash: info.code_hash,
                    },
                )
            })
            .collect();
        leaves.sort_unstable_by_key(|(k, _)| *k);
        alloy_trie::root::state_root(leaves)
    }
}

impl StateView for MemoryState {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        Ok(self.accounts.get(&address).copied())
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        Ok(self
            .storage
            .get(&address)
            .and_then(|s| s.get(&slot))
            .copied()
            .unwrap_or_default())
    }

    fn code(&self, code_hash: B256) -> Result<Option<Bytes>, StateError> {
        Ok(self.codes.get(&code_hash).cloned())
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        Ok(self
            .block_hashes
            .get(&number)
            .copied()
            .unwrap_or_else(|| keccak256(number.to_string())))
    }
}
