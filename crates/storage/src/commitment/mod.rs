//! The state commitment: the root hash a block header carries over the whole state.
//!
//! A block's [`StateDiff`] is first hashed once into a [`HashedDiff`] (keccak of every address
//! and slot, in parallel for large blocks): the flat state and the commitment are both keyed by
//! these hashes. [`mpt::MptCommitment`] then updates Ethereum's Merkle-Patricia tries
//! incrementally. [`full_state_root`] recomputes the root from the flat state alone, streaming
//! it through alloy-trie's `HashBuilder`: an independent check, linear in the state size.

pub mod mpt;
pub mod nomt;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, HashBuilder, Nibbles, TrieAccount};
use pharos_primitives::{AccountState, StateDiff};
use rayon::prelude::*;
use redb::ReadableTable;

use crate::{AccountRecord, StoreError};

pub use mpt::{CommitmentConfig, MptCommitment};
pub use nomt::NomtCommitment;

use std::sync::{Arc, atomic::AtomicU64};

use mpt::{AccountProof, CommitOutput, Recovery};

/// What the store needs from a state commitment backend. Two implement it:
/// [`MptCommitment`] (Ethereum's Merkle-Patricia trie) and [`NomtCommitment`] (a binary SHA-256
/// tree kept by NOMT); the chain spec names which one a chain uses.
pub trait Commitment: Send + std::fmt::Debug {
    /// Applies block `block`'s changes; returns the new state root. `wiped_slots` lists the
    /// hashed slots an account holds before this block, for accounts the block clears (a
    /// backend that can clear a subtree need not call it).
    fn apply(
        &mut self,
        block: u64,
        diff: &HashedDiff,
        wiped_slots: &dyn Fn(&B256) -> Result<Vec<B256>, StoreError>,
    ) -> Result<CommitOutput, StoreError>;
    /// Whether [`Commitment::checkpoint`] would write something.
    fn checkpoint_due(&self) -> bool;
    /// Whether a checkpoint can only be taken once the chain database holds every applied
    /// block (the backend persists its whole in-memory state at once).
    fn checkpoint_needs_head_at_tip(&self) -> bool;
    /// Persists what is due, for blocks up to `durable_head` (the chain database's head).
    fn checkpoint(&mut self, durable_head: u64, force: bool) -> Result<(), StoreError>;
    /// Waits for a checkpoint running in the background, if any.
    fn wait(&mut self) -> Result<(), StoreError>;
    /// The block whose state the backend holds on disk.
    fn durable_block(&self) -> u64;
    /// A shared counter that follows [`Commitment::durable_block`].
    fn durable_handle(&self) -> Arc<AtomicU64>;
    /// How opening brought the backend to the head.
    fn recovery(&self) -> Recovery;
    /// The proof of `address` and `slots` at the newest applied block.
    fn proof(&mut self, address: Address, slots: &[U256]) -> Result<AccountProof, StoreError>;
    /// Node counts in memory (Merkle-Patricia only): account trie, storage tries, open storage
    /// tries.
    fn memory_stats(&self) -> Option<(pharos_trie::TrieStats, pharos_trie::TrieStats, usize)>;
}

impl Commitment for MptCommitment {
    fn apply(
        &mut self,
        block: u64,
        diff: &HashedDiff,
        _wiped_slots: &dyn Fn(&B256) -> Result<Vec<B256>, StoreError>,
    ) -> Result<CommitOutput, StoreError> {
        MptCommitment::apply(self, block, diff)
    }
    fn checkpoint_due(&self) -> bool {
        MptCommitment::checkpoint_due(self)
    }
    fn checkpoint_needs_head_at_tip(&self) -> bool {
        true
    }
    fn checkpoint(&mut self, durable_head: u64, force: bool) -> Result<(), StoreError> {
        if self.block() > durable_head {
            // The trie holds blocks the chain database does not: not now.
            return Ok(());
        }
        MptCommitment::checkpoint(self, force)
    }
    fn wait(&mut self) -> Result<(), StoreError> {
        MptCommitment::wait(self)
    }
    fn durable_block(&self) -> u64 {
        MptCommitment::durable_block(self)
    }
    fn durable_handle(&self) -> Arc<AtomicU64> {
        MptCommitment::durable_handle(self)
    }
    fn recovery(&self) -> Recovery {
        MptCommitment::recovery(self)
    }
    fn proof(&mut self, address: Address, slots: &[U256]) -> Result<AccountProof, StoreError> {
        MptCommitment::proof(self, address, slots)
    }
    fn memory_stats(&self) -> Option<(pharos_trie::TrieStats, pharos_trie::TrieStats, usize)> {
        Some(MptCommitment::memory_stats(self))
    }
}

impl Commitment for NomtCommitment {
    fn apply(
        &mut self,
        block: u64,
        diff: &HashedDiff,
        wiped_slots: &dyn Fn(&B256) -> Result<Vec<B256>, StoreError>,
    ) -> Result<CommitOutput, StoreError> {
        NomtCommitment::apply(self, block, diff, wiped_slots)
    }
    fn checkpoint_due(&self) -> bool {
        NomtCommitment::checkpoint_due(self)
    }
    fn checkpoint_needs_head_at_tip(&self) -> bool {
        false
    }
    fn checkpoint(&mut self, durable_head: u64, force: bool) -> Result<(), StoreError> {
        NomtCommitment::checkpoint(self, durable_head, force)
    }
    fn wait(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn durable_block(&self) -> u64 {
        NomtCommitment::durable_block(self)
    }
    fn durable_handle(&self) -> Arc<AtomicU64> {
        NomtCommitment::durable_handle(self)
    }
    fn recovery(&self) -> Recovery {
        NomtCommitment::recovery(self)
    }
    fn proof(&mut self, address: Address, slots: &[U256]) -> Result<AccountProof, StoreError> {
        NomtCommitment::proof(self, address, slots)
    }
    fn memory_stats(&self) -> Option<(pharos_trie::TrieStats, pharos_trie::TrieStats, usize)> {
        None
    }
}

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

/// [`full_state_root`] under the chain's state commitment.
pub fn full_state_root_of(
    kind: pharos_primitives::StateCommitment,
    accounts: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    storage: &impl ReadableTable<&'static [u8; 64], &'static [u8; 32]>,
) -> Result<B256, StoreError> {
    match kind {
        pharos_primitives::StateCommitment::Mpt => full_state_root(accounts, storage),
        pharos_primitives::StateCommitment::Nomt => full_binary_state_root(accounts, storage),
    }
}

/// The `nomt` commitment's root recomputed from the flat state alone (in memory: sorts every
/// key), with nomt-core's tree builder.
pub fn full_binary_state_root(
    accounts: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    storage: &impl ReadableTable<&'static [u8; 64], &'static [u8; 32]>,
) -> Result<B256, StoreError> {
    use pharos_primitives::binary_state as bs;
    let mut leaves = Vec::new();
    for entry in accounts.iter()? {
        let (k, v) = entry?;
        let state = AccountRecord::decode(v.value())?.state;
        leaves.push((
            bs::account_key(&B256::from(*k.value())),
            bs::account_value(state.nonce, state.balance, state.code_hash),
        ));
    }
    for entry in storage.iter()? {
        let (k, v) = entry?;
        let key = k.value();
        leaves.push((
            bs::slot_key(&B256::from_slice(&key[..32]), &B256::from_slice(&key[32..])),
            bs::slot_value(U256::from_be_bytes(*v.value())),
        ));
    }
    Ok(bs::root(leaves))
}

/// Recomputes the Merkle-Patricia state root from the flat state alone (every storage root too).
/// Linear in the state size: for checks and tests, never on the block path.
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
