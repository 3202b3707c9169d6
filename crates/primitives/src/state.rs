//! Account state and the state diff: the single shape in which execution hands writes to storage.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, KECCAK256_EMPTY, U256};
use serde::{Deserialize, Serialize};

/// What the state holds for one account, apart from its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Number of transactions sent (or contracts created, for a contract).
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak256 of the code; [`KECCAK256_EMPTY`] for an account without code.
    pub code_hash: B256,
}

impl Default for AccountState {
    fn default() -> Self {
        Self {
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK256_EMPTY,
        }
    }
}

impl AccountState {
    /// An account with only a balance.
    pub fn with_balance(balance: U256) -> Self {
        Self {
            balance,
            ..Self::default()
        }
    }

    /// Empty in the sense of EIP-161: no nonce, no balance, no code.
    pub fn is_empty(&self) -> bool {
        self.nonce == 0 && self.balance.is_zero() && self.code_hash == KECCAK256_EMPTY
    }

    /// Whether the account has code.
    pub fn has_code(&self) -> bool {
        self.code_hash != KECCAK256_EMPTY && self.code_hash != B256::ZERO
    }
}

/// How one account changed in a block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChange {
    /// The account after the block; `None` when it no longer exists (self-destructed, or touched
    /// while empty and removed under EIP-161).
    pub info: Option<AccountState>,
    /// The account's storage was wiped before `storage` is applied (account deleted or created
    /// afresh in this block).
    pub storage_wiped: bool,
    /// Storage slots written, with their values after the block (zero means deleted).
    pub storage: BTreeMap<U256, U256>,
}

/// Everything a block changed in the state, ordered so that applying it is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDiff {
    /// Changed accounts.
    pub accounts: BTreeMap<Address, AccountChange>,
    /// Code introduced by this block, by hash.
    pub codes: BTreeMap<B256, Bytes>,
}

impl StateDiff {
    /// Whether the block changed nothing.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.codes.is_empty()
    }

    /// Number of storage slots written.
    pub fn storage_writes(&self) -> usize {
        self.accounts.values().map(|a| a.storage.len()).sum()
    }
}
