//! Keeps the chain on disk: blocks, receipts, the transaction and log indexes, flat state and the
//! state commitment, in one embedded crash-safe database (redb).
//!
//! # Design
//! * **One write transaction per block.** [`Store::commit_block`] applies a block's
//!   [`StateDiff`](pharos_primitives::StateDiff) to the state commitment (see [`commitment`]),
//!   then writes the flat state, the trie journal, the header, body, receipts, indexes and the
//!   new head in a single redb transaction. redb commits are atomic and durable (copy-on-write
//!   B-trees, fsync on commit), so after a crash at any moment the database holds exactly the
//!   last committed block and its matching state; the state trie catches up from its journal.
//! * **Flat state** keyed by `keccak256(address)` and `keccak256(address) | keccak256(slot)`:
//!   one lookup per account or slot, no trie walk on reads.
//! * **The state trie** lives beside the chain database, in `<path>.trie`, checkpointed in the
//!   background (see [`commitment::mpt`]).
//! * **Snapshots.** [`Store::snapshot`] opens a read transaction: a consistent view of the head
//!   block and its state that later commits do not disturb. It implements
//!   [`StateView`](pharos_executor::StateView) for execution and serves RPC reads.
//!
//! This crate never executes transactions.
#![warn(missing_docs)]

pub mod codec;
pub mod commitment;
pub mod flat;
mod snapshot;
mod tables;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_rlp::Encodable;
use parking_lot::{Mutex, RwLock};
use pharos_primitives::{
    AccountChange, AccountState, Block, BlockBody, ChainSpec, StateDiff, StoredReceipt,
};
use redb::{Database, ReadableDatabase};

pub use codec::AccountRecord;
pub use commitment::{
    CommitmentConfig, HashedDiff, MptCommitment,
    mpt::{AccountProof, CommitOutput, Recovery},
};
pub use snapshot::Snapshot;
use tables::*;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed (I/O, lock held by another process, ...).
    #[error("database: {0}")]
    Db(String),
    /// Stored bytes do not decode: the database is damaged or from an incompatible version.
    #[error("database corrupt: {0}")]
    Corrupt(String),
    /// The database belongs to another chain.
    #[error(
        "the data directory holds chain {found_chain} (genesis {found_genesis}), not chain {expected_chain} (genesis {expected_genesis}); use another --datadir"
    )]
    WrongChain {
        /// Chain id stored.
        found_chain: u64,
        /// Genesis hash stored.
        found_genesis: B256,
        /// Chain id asked for.
        expected_chain: u64,
        /// Genesis hash asked for.
        expected_genesis: B256,
    },
    /// A block was committed on top of something other than the head.
    #[error("block {number} has parent {parent}, but the head is {head}")]
    NotOnHead {
        /// Number of the rejected block.
        number: u64,
        /// Its parent hash.
        parent: B256,
        /// The current head hash.
        head: B256,
    },
    /// The genesis state written does not hash to the chain spec's genesis root.
    #[error("genesis state root {computed} differs from the chain spec's {expected}")]
    GenesisMismatch {
        /// Root computed from the stored state.
        computed: B256,
        /// Root in the genesis header.
        expected: B256,
    },
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The head block: header and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Header of the newest committed block.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
}

/// How the store trades memory for speed.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// The state trie's checkpointing and memory.
    pub commitment: CommitmentConfig,
}

/// The chain database.
pub struct Store {
    db: Arc<Database>,
    head: RwLock<Arc<Head>>,
    /// Held for a whole block commit; holds the state commitment (`None` after a failed commit:
    /// reopened from disk on next use).
    commitment: Mutex<Option<MptCommitment>>,
    trie_path: PathBuf,
    config: StoreConfig,
    chain_id: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("chain_id", &self.chain_id)
            .field("head", &self.head.read().header.number)
            .finish()
    }
}

const META_CHAIN_ID: &str = "chain_id";
const META_GENESIS: &str = "genesis_hash";
const META_HEAD: &str = "head";
const META_SCHEMA: &str = "schema";
const SCHEMA_VERSION: u64 = 1;

impl Store {
    /// Opens (or creates, writing genesis) the database at `path` for the chain `spec`.
    pub fn open(path: &Path, spec: &ChainSpec) -> Result<Self, StoreError> {
        Self::open_with(path, spec, StoreConfig::default())
    }

    /// [`Store::open`] with explicit settings.
    pub fn open_with(
        path: &Path,
        spec: &ChainSpec,
        config: StoreConfig,
    ) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Db(format!("creating {}: {e}", parent.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(512 << 20)
            .create(path)
            .map_err(|e| StoreError::Db(format!("opening {}: {e}", path.display())))?;
        let db = Arc::new(db);
        create_tables(&db)?;

        let read = db.begin_read()?;
        let meta = read.open_table(META)?;
        let stored_genesis = meta.get(META_GENESIS)?.map(|v| v.value().to_vec());
        let stored_chain = meta.get(META_CHAIN_ID)?.map(|v| v.value().to_vec());
        drop(meta);
        drop(read);

        let mut trie_path = path.as_os_str().to_owned();
        trie_path.push(".trie");
        let trie_path = PathBuf::from(trie_path);
        let store = match stored_genesis {
            None => {
                let store = Self {
                    head: RwLock::new(Arc::new(Head {
                        header: spec.genesis_header().clone(),
                        hash: spec.genesis_hash(),
                    })),
                    db,
                    commitment: Mutex::new(None),
                    trie_path,
                    config,
                    chain_id: spec.chain_id(),
                };
                store.write_genesis(spec)?;
                store
            }
            Some(genesis) => {
                let found_genesis = B256::try_from(genesis.as_slice())
                    .map_err(|_| StoreError::Corrupt("stored genesis hash".into()))?;
                let found_chain = stored_chain
                    .as_deref()
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Corrupt("stored chain id".into()))?;
                if found_genesis != spec.genesis_hash() || found_chain != spec.chain_id() {
                    return Err(StoreError::WrongChain {
                        found_chain,
                        found_genesis,
                        expected_chain: spec.chain_id(),
                        expected_genesis: spec.genesis_hash(),
                    });
                }
                let snapshot = Snapshot::open(&db, None)?;
                let head_number = snapshot.head_number_from_meta()?;
                let header = snapshot.header(head_number)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("head block {head_number} has no header"))
                })?;
                let hash = header.hash_slow();
                Self {
                    head: RwLock::new(Arc::new(Head { header, hash })),
                    db,
                    commitment: Mutex::new(None),
                    trie_path,
                    config,
                    chain_id: spec.chain_id(),
                }
            }
        };
        let commitment = store.open_commitment()?;
        *store.commitment.lock() = Some(commitment);
        Ok(store)
    }

    fn open_commitment(&self) -> Result<MptCommitment, StoreError> {
        let head = self.head();
        MptCommitment::open(
            &self.trie_path,
            &self.db,
            head.header.number,
            head.header.state_root,
            self.config.commitment.clone(),
        )
    }

    /// Runs `f` on the state commitment, reopening it from disk if a failed commit dropped it.
    fn with_commitment<T>(
        &self,
        guard: &mut Option<MptCommitment>,
        f: impl FnOnce(&mut MptCommitment) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if guard.is_none() {
            *guard = Some(self.open_commitment()?);
        }
        let commitment = guard.as_mut().expect("opened above");
        let result = f(commitment);
        if result.is_err() {
            // Its in-memory state may be ahead of the disk: start over from the checkpoint.
            *guard = None;
        }
        result
    }

    fn write_genesis(&self, spec: &ChainSpec) -> Result<(), StoreError> {
        let mut diff = StateDiff::default();
        for (address, account) in &spec.genesis().alloc {
            let code = account.code.clone().filter(|c| !c.is_empty());
            let code_hash = code
                .as_ref()
                .map(keccak256)
                .unwrap_or(alloy_primitives::KECCAK256_EMPTY);
            if let Some(code) = code {
                diff.codes.insert(code_hash, code);
            }
            diff.accounts.insert(
                *address,
                AccountChange {
                    info: Some(AccountState {
                        nonce: account.nonce.unwrap_or_default(),
                        balance: account.balance,
                        code_hash,
                    }),
                    storage_wiped: false,
                    storage: account
                        .storage
                        .iter()
                        .flatten()
                        .map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0)))
                        .collect(),
                },
            );
        }
        let header = spec.genesis_header().clone();
        let expected = header.state_root;
        let block = Block::seal(header, Vec::new());
        let hashed = HashedDiff::new(&diff);
        let storage_roots: Vec<B256> = hashed
            .accounts
            .iter()
            .map(|a| {
                let mut hb = alloy_trie::HashBuilder::default();
                let mut slots: Vec<_> = a.storage.iter().filter(|s| !s.2.is_zero()).collect();
                slots.sort_by_key(|s| s.0);
                for (hashed_slot, _, value) in slots {
                    hb.add_leaf(
                        alloy_trie::Nibbles::unpack(hashed_slot),
                        &alloy_rlp::encode(value),
                    );
                }
                hb.root()
            })
            .collect();
        let txn = self.db.begin_write()?;
        flat::write(&txn, &diff, &hashed, &storage_roots)?;
        let computed =
            commitment::full_state_root(&txn.open_table(ACCOUNTS)?, &txn.open_table(STORAGE)?)?;
        if computed != expected {
            return Err(StoreError::GenesisMismatch { computed, expected });
        }
        write_block(&txn, &block, &[])?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_CHAIN_ID, spec.chain_id().to_be_bytes().as_slice())?;
            meta.insert(META_GENESIS, spec.genesis_hash().as_slice())?;
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The chain id this store serves.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The newest committed block's header and hash.
    pub fn head(&self) -> Arc<Head> {
        self.head.read().clone()
    }

    /// A consistent read view of the head block and its state.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        // Take the head first: the snapshot may only be newer, never older, than what we report.
        let head = self.head();
        Snapshot::open(&self.db, Some(head))
    }

    /// Applies `diff`, sets `header.state_root` to the resulting root, and commits the block with
    /// its receipts and indexes atomically. `header.parent_hash` must be the head's hash.
    pub fn commit_block(
        &self,
        mut header: Header,
        body: BlockBody,
        receipts: Vec<StoredReceipt>,
        diff: &StateDiff,
    ) -> Result<Block, StoreError> {
        let mut guard = self.commitment.lock();
        let head = self.head();
        if header.parent_hash != head.hash || header.number != head.header.number + 1 {
            return Err(StoreError::NotOnHead {
                number: header.number,
                parent: header.parent_hash,
                head: head.hash,
            });
        }
        let hashed = HashedDiff::new(diff);
        let number = header.number;
        let block = self.with_commitment(&mut guard, |commitment| {
            let out = commitment.apply(number, &hashed)?;
            header.state_root = out.root;
            let block = Block::seal(header, body);
            let txn = self.db.begin_write()?;
            flat::write(&txn, diff, &hashed, &out.storage_roots)?;
            {
                let mut journal = txn.open_table(JOURNAL)?;
                journal.insert(number, commitment::mpt::journal_entry(&hashed).as_slice())?;
                let durable = commitment.durable_block();
                journal.retain_in(..=durable, |_, _| false)?;
            }
            write_block(&txn, &block, &receipts)?;
            txn.commit()?;
            Ok(block)
        })?;
        *self.head.write() = Arc::new(Head {
            header: block.header.clone(),
            hash: block.hash,
        });
        if let Err(e) = self.with_commitment(&mut guard, |c| c.checkpoint(false)) {
            tracing::warn!(error = %e, "state trie checkpoint failed; reopening from disk");
        }
        Ok(block)
    }

    /// The EIP-1186 proof of `address` and `slots` at the head.
    pub fn proof(&self, address: Address, slots: &[U256]) -> Result<AccountProof, StoreError> {
        let mut guard = self.commitment.lock();
        self.with_commitment(&mut guard, |c| c.proof(address, slots))
    }

    /// Writes the state trie's pending nodes and waits for them to be on disk, so the next
    /// start needs no journal replay.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut guard = self.commitment.lock();
        self.with_commitment(&mut guard, |c| {
            c.checkpoint(true)?;
            c.wait()
        })
    }

    /// Closes the store without the final trie checkpoint, as a crash would leave it (the
    /// checkpoint being written, if any, still completes). For tests of recovery.
    #[doc(hidden)]
    pub fn close_without_checkpoint(self) {
        drop(self.commitment.lock().take());
    }

    /// How the state trie was brought to the head when the store opened.
    pub fn trie_recovery(&self) -> Option<Recovery> {
        self.commitment.lock().as_ref().map(|c| c.recovery())
    }

    /// Node counts of the state trie in memory: account trie, storage tries, open storage tries.
    pub fn trie_memory(&self) -> Option<(pharos_trie::TrieStats, pharos_trie::TrieStats, usize)> {
        self.commitment.lock().as_ref().map(|c| c.memory_stats())
    }
}

fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(META)?;
    txn.open_table(HEADERS)?;
    txn.open_table(CANONICAL)?;
    txn.open_table(HASH_NUMBERS)?;
    txn.open_table(BODIES)?;
    txn.open_table(RECEIPTS)?;
    txn.open_table(TX_LOOKUP)?;
    txn.open_table(LOG_ADDRESSES)?;
    txn.open_table(ACCOUNTS)?;
    txn.open_table(STORAGE)?;
    txn.open_table(CODES)?;
    txn.open_table(JOURNAL)?;
    txn.commit()?;
    Ok(())
}

/// Key of the log-address index: emitting address, then block number (big-endian).
pub(crate) fn log_address_key(address: &Address, block: u64) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&block.to_be_bytes());
    key
}

fn write_block(
    txn: &redb::WriteTransaction,
    block: &Block,
    receipts: &[StoredReceipt],
) -> Result<(), StoreError> {
    let number = block.number();
    let mut rlp = Vec::with_capacity(600);
    block.header.encode(&mut rlp);
    txn.open_table(HEADERS)?.insert(number, rlp.as_slice())?;
    txn.open_table(CANONICAL)?.insert(number, &block.hash.0)?;
    txn.open_table(HASH_NUMBERS)?
        .insert(&block.hash.0, number)?;
    txn.open_table(BODIES)?
        .insert(number, codec::encode_body(&block.body).as_slice())?;
    txn.open_table(RECEIPTS)?
        .insert(number, codec::encode_receipts(receipts).as_slice())?;
    {
        let mut lookup = txn.open_table(TX_LOOKUP)?;
        for (i, tx) in block.body.iter().enumerate() {
            lookup.insert(&tx.hash().0, (number, i as u32))?;
        }
    }
    {
        let mut emitters: Vec<Address> = receipts
            .iter()
            .flat_map(|r| r.logs().iter().map(|l| l.address))
            .collect();
        emitters.sort_unstable();
        emitters.dedup();
        let mut index = txn.open_table(LOG_ADDRESSES)?;
        for address in emitters {
            index.insert(&log_address_key(&address, number), ())?;
        }
    }
    txn.open_table(META)?
        .insert(META_HEAD, number.to_be_bytes().as_slice())?;
    Ok(())
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(commitment) = self.commitment.get_mut().as_mut()
            && let Err(e) = commitment.checkpoint(true).and_then(|_| commitment.wait())
        {
            tracing::warn!(error = %e, "final state trie checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests;
