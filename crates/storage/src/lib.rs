//! Keeps the chain on disk: blocks, receipts, the transaction and log indexes, flat state and the
//! state commitment, in embedded crash-safe databases (redb, and NOMT for the `nomt` commitment).
//!
//! # Design
//! * **One durable write per block.** A block is [`Store::merkleize`]d (the state commitment
//!   applies its [`StateDiff`] and the header gets its state root)
//!   and then [`Store::persist`]ed: header, body, receipts, indexes, new code and the block's state
//!   journal in one redb transaction in `<path>`; that commit is the block's commit. A pipeline
//!   merkleizes block N+1 while N is persisted; [`Store::commit_block`] does both in a row.
//! * **Flat state** ([`flat`]) in `<path>.state`, keyed by `keccak256(address)` and
//!   `keccak256(address) | keccak256(slot)`: one lookup per account or slot, no trie walk;
//!   written by a background checkpointer from merged pending blocks.
//! * **The state commitment** ([`commitment`]): the [`Commitment`] trait with the Merkle-Patricia
//!   trie (node store `<path>.trie`) and NOMT (`<path>.trie.nomt`) backends, checkpointed in the
//!   background. After a crash the flat state and the commitment catch up from the journal.
//! * **The tx-hash index** is written every 16 blocks, merged and sorted; the locations of the
//!   blocks since are kept in memory and rebuilt from the bodies on open.
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
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_rlp::Encodable;
use parking_lot::{Mutex, RwLock};
use pharos_primitives::{
    AccountChange, AccountState, Block, BlockBody, ChainSpec, StateDiff, StoredReceipt,
};
use redb::{Database, ReadableDatabase};
use tables::{ACCOUNTS, STORAGE};

pub use codec::AccountRecord;
pub use commitment::{
    Commitment, CommitmentConfig, HashedDiff, MptCommitment, NomtCommitment,
    mpt::{AccountProof, CommitOutput, Recovery},
};
pub use flat::{FlatConfig, FlatStore, FlatView, PendingBlock};
use pharos_primitives::StateCommitment;
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
    /// How often the flat state tables are written.
    pub flat: FlatConfig,
}

/// Where the time of one block commit went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitTimings {
    /// Account and slot changes in the block.
    pub keys: usize,
    /// Hashing addresses and slots.
    pub hashing: Duration,
    /// Updating and rehashing the state tries.
    pub merkleize: Duration,
    /// Writing the journal, block, receipts and indexes, and the durable commit.
    pub flush: Duration,
    /// Handing pending state to the background writers (waiting for the previous ones).
    pub checkpoint: Duration,
    /// All of it.
    pub total: Duration,
}

/// Crash-safety test hook: when the environment variable `PHAROS_CRASH_AT` is
/// `<point>:<block>`, the process aborts — no destructors, no flushes, as under SIGKILL — the
/// first time it reaches `point` for a block at or above `block`. Points: `executed` (node),
/// `merkleized`, `chain-committed` (the block's transaction is durable, the head not moved yet),
/// `persisted`, `flat-checkpoint` and `trie-checkpoint` (background writers, before their commit).
#[doc(hidden)]
pub fn crash_point(point: &str, block: u64) {
    static AT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        let value = std::env::var("PHAROS_CRASH_AT").ok()?;
        let (name, number) = value.split_once(':')?;
        Some((name.to_string(), number.parse().ok()?))
    });
    if let Some((name, number)) = at
        && name == point
        && block >= *number
    {
        eprintln!("PHAROS_CRASH_AT: aborting at {point} for block {block}");
        std::process::abort();
    }
}

/// Transaction locations (hash → index) of recent blocks whose entries are not in the
/// `tx_lookup` table yet, oldest first. The table is written every [`TX_INDEX_INTERVAL`] blocks
/// with all of them merged and sorted: random hash keys would otherwise dirty a B-tree page per
/// transaction in every block's commit.
pub(crate) type TxPending = Arc<Vec<(u64, Arc<HashMap<B256, u32>>)>>;

/// Blocks between writes of the transaction-hash index.
const TX_INDEX_INTERVAL: u64 = 16;

/// A block sealed by [`Store::merkleize`], waiting for [`Store::persist`].
#[derive(Debug)]
pub struct SealedBlock {
    /// The block, its header carrying the state root.
    pub block: Block,
    receipts: Vec<StoredReceipt>,
    hashed: Arc<HashedDiff>,
    codes: std::collections::BTreeMap<B256, alloy_primitives::Bytes>,
    timings: CommitTimings,
    started: Instant,
}

impl SealedBlock {
    /// Where the merkleize stage's time went.
    pub fn timings(&self) -> CommitTimings {
        self.timings
    }
}

/// The chain database.
pub struct Store {
    db: Arc<Database>,
    flat: FlatStore,
    head: RwLock<Arc<Head>>,
    /// Held for a whole block commit; holds the state commitment (`None` after a failed commit:
    /// reopened from disk on next use).
    commitment: Mutex<Option<Box<dyn Commitment>>>,
    /// Which backend the chain uses.
    kind: StateCommitment,
    /// Merkleized blocks not yet persisted (their diffs), oldest first: what a backend that
    /// must enumerate a cleared account's slots sees beyond the flat state.
    unpersisted: Mutex<std::collections::VecDeque<(u64, Arc<HashedDiff>)>>,
    /// The newest merkleized block (number, hash): the head, or ahead of it by the blocks
    /// between [`Store::merkleize`] and [`Store::persist`].
    tip: Mutex<(u64, B256)>,
    /// Recent blocks' transaction locations not in the `tx_lookup` table yet.
    tx_pending: RwLock<TxPending>,
    /// The newest block whose transactions the `tx_lookup` table holds.
    tx_indexed: Mutex<u64>,
    /// Notified whenever the head moves.
    head_moved: parking_lot::Condvar,
    head_wait: Mutex<()>,
    /// The trie's durable checkpoint block (shared with the commitment, also after a reopen).
    trie_durable: RwLock<Arc<std::sync::atomic::AtomicU64>>,
    last_commit: Mutex<CommitTimings>,
    final_checkpoint: std::sync::atomic::AtomicBool,
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
/// `tx_index` → the newest block whose transactions the `tx_lookup` table holds (8, BE).
const META_TX_INDEX: &str = "tx_index";
const SCHEMA_VERSION: u64 = 3;

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The genesis allocation as a hashed diff.
fn genesis_diff(spec: &ChainSpec) -> (StateDiff, HashedDiff) {
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
                    .filter(|(_, v)| !v.is_zero())
                    .collect(),
            },
        );
    }
    let hashed = HashedDiff::new(&diff);
    (diff, hashed)
}

impl Store {
    /// Opens (or creates, writing genesis) the database at `path` for the chain `spec`. The
    /// flat state and the state trie live beside it, in `<path>.state` and `<path>.trie`.
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
            .set_cache_size(256 << 20)
            .create(path)
            .map_err(|e| StoreError::Db(format!("opening {}: {e}", path.display())))?;
        let db = Arc::new(db);
        create_tables(&db)?;

        let read = db.begin_read()?;
        let meta = read.open_table(META)?;
        let stored_genesis = meta.get(META_GENESIS)?.map(|v| v.value().to_vec());
        let stored_chain = meta.get(META_CHAIN_ID)?.map(|v| v.value().to_vec());
        let stored_schema = meta.get(META_SCHEMA)?.map(|v| v.value().to_vec());
        drop(meta);
        drop(read);

        let (genesis_state, genesis_hashed) = genesis_diff(spec);
        let head = match stored_genesis {
            None => None,
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
                let schema = stored_schema
                    .as_deref()
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or_default();
                if schema != SCHEMA_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "{} has database layout {schema}, this build reads {SCHEMA_VERSION}; \
                         remove it or use another --datadir",
                        path.display()
                    )));
                }
                let snapshot = Snapshot::open(&db, None, None, None)?;
                let head_number = snapshot.head_number_from_meta()?;
                let header = snapshot.header(head_number)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("head block {head_number} has no header"))
                })?;
                let hash = header.hash_slow();
                Some(Head { header, hash })
            }
        };
        let head_number = head.as_ref().map_or(0, |h| h.header.number);
        let flat = FlatStore::open(
            &sibling(path, ".state"),
            &db,
            head_number,
            || genesis_hashed.clone(),
            config.flat.clone(),
        )?;
        let head = match head {
            Some(head) => head,
            None => {
                // A new chain: the flat state holds the genesis allocation; check it, then
                // write the genesis block.
                let computed = {
                    let txn = flat.database().begin_read()?;
                    commitment::full_state_root_of(
                        spec.pharos().state_commitment,
                        &txn.open_table(ACCOUNTS)?,
                        &txn.open_table(STORAGE)?,
                    )?
                };
                let expected = spec.genesis_header().state_root;
                if computed != expected {
                    return Err(StoreError::GenesisMismatch { computed, expected });
                }
                write_genesis(&db, spec, &genesis_state)?;
                Head {
                    header: spec.genesis_header().clone(),
                    hash: spec.genesis_hash(),
                }
            }
        };
        let tip = (head.header.number, head.hash);
        let (tx_indexed, tx_pending) = load_tx_pending(&db, head.header.number)?;
        let store = Self {
            tx_pending: RwLock::new(tx_pending),
            tx_indexed: Mutex::new(tx_indexed),
            tip: Mutex::new(tip),
            head_moved: parking_lot::Condvar::new(),
            head_wait: Mutex::new(()),
            trie_durable: RwLock::new(Arc::default()),
            head: RwLock::new(Arc::new(head)),
            db,
            flat,
            commitment: Mutex::new(None),
            kind: spec.pharos().state_commitment,
            unpersisted: Mutex::default(),
            last_commit: Mutex::default(),
            final_checkpoint: std::sync::atomic::AtomicBool::new(true),
            trie_path: sibling(path, ".trie"),
            config,
            chain_id: spec.chain_id(),
        };
        let commitment = store.open_commitment()?;
        *store.commitment.lock() = Some(commitment);
        Ok(store)
    }

    fn open_commitment(&self) -> Result<Box<dyn Commitment>, StoreError> {
        let head = self.head();
        let (path, chain, flat) = (&self.trie_path, &self.db, self.flat.database());
        let (number, root) = (head.header.number, head.header.state_root);
        let config = self.config.commitment.clone();
        let commitment: Box<dyn Commitment> = match self.kind {
            StateCommitment::Mpt => Box::new(MptCommitment::open(
                path, chain, flat, number, root, config,
            )?),
            StateCommitment::Nomt => Box::new(NomtCommitment::open(
                path, chain, flat, number, root, config,
            )?),
        };
        self.unpersisted.lock().clear();
        *self.trie_durable.write() = commitment.durable_handle();
        // Blocks merkleized but not persisted are gone with the old trie.
        *self.tip.lock() = (head.header.number, head.hash);
        Ok(commitment)
    }

    /// Blocks until the head is at least `number` (or `timeout` passes); returns the head.
    pub fn wait_for_head(&self, number: u64, timeout: Duration) -> Arc<Head> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.head_wait.lock();
        loop {
            let head = self.head();
            if head.header.number >= number {
                return head;
            }
            if self.head_moved.wait_until(&mut guard, deadline).timed_out() {
                return self.head();
            }
        }
    }

    /// The newest merkleized block: (number, hash).
    pub fn tip(&self) -> (u64, B256) {
        *self.tip.lock()
    }

    /// Runs `f` on the state commitment, reopening it from disk if a failed commit dropped it.
    fn with_commitment<T>(
        &self,
        guard: &mut Option<Box<dyn Commitment>>,
        f: impl FnOnce(&mut dyn Commitment) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if guard.is_none() {
            *guard = Some(self.open_commitment()?);
        }
        let Some(commitment) = guard.as_mut() else {
            return Err(StoreError::Db("the state commitment is not open".into()));
        };
        let result = f(commitment.as_mut());
        if result.is_err() {
            // Its in-memory state may be ahead of the disk: start over from the checkpoint.
            *guard = None;
        }
        result
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
        loop {
            let head = self.head();
            let state = self.flat.view(head.header.number)?;
            if state.base > head.header.number {
                // The state tables moved past this head while we looked: take the newer head.
                continue;
            }
            return Snapshot::open(&self.db, Some(head), Some(state), Some(&self.tx_pending));
        }
    }

    /// Applies `diff`, sets `header.state_root` to the resulting root, and commits the block with
    /// its receipts and indexes atomically. `header.parent_hash` must be the head's hash.
    /// [`Store::merkleize`] then [`Store::persist`]; a pipeline calls them from different stages.
    pub fn commit_block(
        &self,
        header: Header,
        body: BlockBody,
        receipts: Vec<StoredReceipt>,
        diff: &StateDiff,
    ) -> Result<Block, StoreError> {
        let sealed = self.merkleize(header, body, receipts, diff)?;
        self.persist(sealed)
    }

    /// The *merkleize* stage: applies `diff` to the state trie, sets `header.state_root` and
    /// seals the block. `header` must extend the tip (the newest merkleized block, which may be
    /// ahead of the head by blocks not yet persisted). Nothing is durable until
    /// [`Store::persist`]; blocks must be persisted in the order they were merkleized.
    pub fn merkleize(
        &self,
        mut header: Header,
        body: BlockBody,
        receipts: Vec<StoredReceipt>,
        diff: &StateDiff,
    ) -> Result<SealedBlock, StoreError> {
        let mut guard = self.commitment.lock();
        if guard.is_none() {
            *guard = Some(self.open_commitment()?);
        }
        let tip = self.tip();
        if header.parent_hash != tip.1 || header.number != tip.0 + 1 {
            return Err(StoreError::NotOnHead {
                number: header.number,
                parent: header.parent_hash,
                head: tip.1,
            });
        }
        let started = Instant::now();
        // A trie checkpoint may only hold blocks the chain database already has: when one is
        // due, let the persist stage catch up with the tip first (a short bubble every
        // checkpoint interval).
        if let Some(c) = guard.as_ref()
            && c.checkpoint_due()
        {
            let head = if c.checkpoint_needs_head_at_tip() {
                self.wait_for_head(tip.0, Duration::from_secs(1))
            } else {
                self.head()
            };
            let durable = head.header.number;
            if let Err(e) = self.with_commitment(&mut guard, |c| c.checkpoint(durable, false)) {
                tracing::warn!(error = %e, "state trie checkpoint failed; reopening from disk");
            }
        }
        let checkpoint = started.elapsed();
        let hashed = Arc::new(HashedDiff::new(diff));
        let number = header.number;
        let mut timings = CommitTimings {
            keys: hashed.len(),
            hashing: started.elapsed() - checkpoint,
            checkpoint,
            ..Default::default()
        };
        let merkleize = Instant::now();
        let out = {
            let _span = tracing::debug_span!("merkleize", block = number).entered();
            let unpersisted = self.unpersisted.lock().clone();
            // Only a block that clears an account's storage needs the flat state here.
            let view = match hashed.accounts.iter().any(|a| a.wiped) {
                true => {
                    let head = self.head().header.number;
                    Some((head, self.flat.view(head)?))
                }
                false => None,
            };
            // Slots a cleared account holds before this block: the flat state at the head, then
            // the blocks merkleized since.
            let wiped_slots = |hashed: &B256| -> Result<Vec<B256>, StoreError> {
                let (view_head, view) = view.as_ref().ok_or_else(|| {
                    StoreError::Db(format!(
                        "slots of {hashed} asked for, but the block clears none"
                    ))
                })?;
                let mut slots: std::collections::BTreeSet<B256> =
                    view.storage_slots(hashed)?.into_iter().collect();
                for (n, diff) in &unpersisted {
                    if n <= view_head {
                        continue;
                    }
                    for account in diff.accounts.iter().filter(|a| &a.hashed == hashed) {
                        flat::apply_slot_writes(&mut slots, account, true);
                    }
                }
                Ok(slots.into_iter().collect())
            };
            self.with_commitment(&mut guard, |c| c.apply(number, &hashed, &wiped_slots))?
        };
        self.unpersisted.lock().push_back((number, hashed.clone()));
        timings.merkleize = merkleize.elapsed();
        header.state_root = out.root;
        let block = Block::seal(header, body);
        *self.tip.lock() = (number, block.hash);
        crash_point("merkleized", number);
        Ok(SealedBlock {
            block,
            receipts,
            hashed,
            codes: diff.codes.clone(),
            timings,
            started,
        })
    }

    /// The *flush* stage: commits a merkleized block durably (header, body, receipts, indexes,
    /// new code, the state journal) in one transaction, then makes it the head: its state is
    /// readable from then on. Starts the background checkpoints when due.
    pub fn persist(&self, sealed: SealedBlock) -> Result<Block, StoreError> {
        let SealedBlock {
            block,
            receipts,
            hashed,
            codes,
            mut timings,
            started,
        } = sealed;
        let head = self.head();
        let number = block.number();
        if block.header.parent_hash != head.hash || number != head.header.number + 1 {
            return Err(StoreError::NotOnHead {
                number,
                parent: block.header.parent_hash,
                head: head.hash,
            });
        }
        let flush = Instant::now();
        let (write_index, block_txs) = {
            let _span = tracing::debug_span!("flush", block = number).entered();
            let prune = self
                .trie_durable
                .read()
                .load(std::sync::atomic::Ordering::Acquire)
                .min(self.flat.durable_block());
            // Encoding is pure CPU: spread it over the cores before the write transaction.
            let (journal_bytes, (body_bytes, receipt_bytes)) = rayon::join(
                || codec::encode_journal(&hashed),
                || {
                    rayon::join(
                        || codec::encode_body(&block.body),
                        || codec::encode_receipts(&receipts),
                    )
                },
            );
            let block_txs: Arc<HashMap<B256, u32>> = Arc::new(
                block
                    .body
                    .iter()
                    .enumerate()
                    .map(|(i, tx)| (tx.hash(), i as u32))
                    .collect(),
            );
            let indexed = *self.tx_indexed.lock();
            let write_index = number >= indexed + TX_INDEX_INTERVAL;
            let txn = self.db.begin_write()?;
            if write_index {
                let pending = self.tx_pending.read().clone();
                let mut entries: Vec<([u8; 32], (u64, u32))> = pending
                    .iter()
                    .filter(|(n, _)| *n > indexed)
                    .chain(std::iter::once(&(number, block_txs.clone())))
                    .flat_map(|(n, txs)| txs.iter().map(move |(h, i)| (h.0, (*n, *i))))
                    .collect();
                entries.sort_unstable_by_key(|e| e.0);
                let mut lookup = txn.open_table(TX_LOOKUP)?;
                for (hash, location) in &entries {
                    lookup.insert(hash, *location)?;
                }
                txn.open_table(META)?
                    .insert(META_TX_INDEX, number.to_be_bytes().as_slice())?;
            }
            {
                let mut table = txn.open_table(CODES)?;
                for (hash, code) in &codes {
                    table.insert(&hash.0, code.as_ref())?;
                }
                let mut journal = txn.open_table(JOURNAL)?;
                journal.insert(number, journal_bytes.as_slice())?;
                journal.retain_in(..=prune, |_, _| false)?;
            }
            let journaled = flush.elapsed();
            write_block(&txn, &block, &receipts, &body_bytes, &receipt_bytes)?;
            let written = flush.elapsed();
            txn.commit()?;
            crash_point("chain-committed", number);
            timings.flush = flush.elapsed();
            tracing::debug!(
                block = number,
                journal = ?journaled,
                block_tables = ?(written - journaled),
                commit = ?(timings.flush - written),
                "chain database write"
            );
            (write_index, block_txs)
        };
        {
            // Entries already in the table stay listed one more interval (see `TxPending`).
            let mut pending = self.tx_pending.write();
            let mut next: Vec<_> = if write_index {
                let mut indexed = self.tx_indexed.lock();
                let previous = *indexed;
                *indexed = number;
                pending
                    .iter()
                    .filter(|(n, _)| *n > previous)
                    .cloned()
                    .collect()
            } else {
                pending.iter().cloned().collect()
            };
            next.push((number, block_txs));
            *pending = Arc::new(next);
        }
        // State first, then the head: a snapshot never has a head without its state.
        self.flat.push(PendingBlock::new(number, hashed));
        self.unpersisted.lock().retain(|(n, _)| *n > number);
        {
            let _guard = self.head_wait.lock();
            *self.head.write() = Arc::new(Head {
                header: block.header.clone(),
                hash: block.hash,
            });
            self.head_moved.notify_all();
        }
        let checkpoint = Instant::now();
        if let Err(e) = self.flat.maybe_checkpoint(number, false) {
            tracing::warn!(error = %e, "flat state checkpoint failed; the journal keeps the blocks");
        }
        timings.checkpoint += checkpoint.elapsed();
        timings.total = started.elapsed();
        *self.last_commit.lock() = timings;
        crash_point("persisted", number);
        Ok(block)
    }

    /// Where the time of the newest [`Store::commit_block`] went.
    pub fn last_commit_timings(&self) -> CommitTimings {
        *self.last_commit.lock()
    }

    /// The EIP-1186 proof of `address` and `slots` at the head.
    pub fn proof(&self, address: Address, slots: &[U256]) -> Result<AccountProof, StoreError> {
        let mut guard = self.commitment.lock();
        self.with_commitment(&mut guard, |c| c.proof(address, slots))
    }

    /// Writes all pending state (flat tables and trie nodes) and waits until it is on disk, so
    /// the next start replays nothing.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut guard = self.commitment.lock();
        let head = self.head();
        self.flat.flush(head.header.number)?;
        if self.tip().0 != head.header.number {
            // The trie holds merkleized blocks the chain database does not: a checkpoint now
            // would be ahead of the chain. The journal brings the trie up on the next open.
            tracing::warn!(
                head = head.header.number,
                tip = self.tip().0,
                "blocks merkleized but not persisted; skipping the final trie checkpoint"
            );
            return Ok(());
        }
        let durable = head.header.number;
        self.with_commitment(&mut guard, |c| {
            c.checkpoint(durable, true)?;
            c.wait()
        })
    }

    /// Closes the store without the final checkpoints, as a crash would leave it (checkpoints
    /// being written, if any, still complete). For tests of recovery.
    #[doc(hidden)]
    pub fn close_without_checkpoint(self) {
        self.final_checkpoint
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// How the state trie was brought to the head when the store opened.
    pub fn trie_recovery(&self) -> Option<Recovery> {
        self.commitment.lock().as_ref().map(|c| c.recovery())
    }

    /// Node counts of the state trie in memory: account trie, storage tries, open storage tries.
    pub fn trie_memory(&self) -> Option<(pharos_trie::TrieStats, pharos_trie::TrieStats, usize)> {
        self.commitment
            .lock()
            .as_ref()
            .and_then(|c| c.memory_stats())
    }
}

/// Reads which block the `tx_lookup` table is written up to and rebuilds the pending locations
/// of the blocks after it (up to `head`) from their bodies.
fn load_tx_pending(db: &Database, head: u64) -> Result<(u64, TxPending), StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let indexed = match meta.get(META_TX_INDEX)? {
        Some(v) => <[u8; 8]>::try_from(v.value())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("tx index record".into()))?,
        None => 0,
    };
    let bodies = txn.open_table(BODIES)?;
    let mut pending = Vec::new();
    for number in indexed.saturating_add(1)..=head {
        let body = bodies
            .get(number)?
            .ok_or_else(|| StoreError::Corrupt(format!("block {number} has no body")))?;
        let body = codec::decode_body(body.value())?;
        pending.push((
            number,
            Arc::new(
                body.iter()
                    .enumerate()
                    .map(|(i, tx)| (tx.hash(), i as u32))
                    .collect::<HashMap<B256, u32>>(),
            ),
        ));
    }
    Ok((indexed.min(head), Arc::new(pending)))
}

fn write_genesis(db: &Database, spec: &ChainSpec, state: &StateDiff) -> Result<(), StoreError> {
    let block = Block::seal(spec.genesis_header().clone(), Vec::new());
    let txn = db.begin_write()?;
    {
        let mut codes = txn.open_table(CODES)?;
        for (hash, code) in &state.codes {
            codes.insert(&hash.0, code.as_ref())?;
        }
    }
    write_block(
        &txn,
        &block,
        &[],
        &codec::encode_body(&block.body),
        &codec::encode_receipts(&[]),
    )?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_CHAIN_ID, spec.chain_id().to_be_bytes().as_slice())?;
        meta.insert(META_GENESIS, spec.genesis_hash().as_slice())?;
        meta.insert(META_SCHEMA, SCHEMA_VERSION.to_be_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
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
    body_bytes: &[u8],
    receipt_bytes: &[u8],
) -> Result<(), StoreError> {
    let number = block.number();
    let mut rlp = Vec::with_capacity(600);
    block.header.encode(&mut rlp);
    txn.open_table(HEADERS)?.insert(number, rlp.as_slice())?;
    txn.open_table(CANONICAL)?.insert(number, &block.hash.0)?;
    txn.open_table(HASH_NUMBERS)?
        .insert(&block.hash.0, number)?;
    txn.open_table(BODIES)?.insert(number, body_bytes)?;
    txn.open_table(RECEIPTS)?.insert(number, receipt_bytes)?;
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
        if !self
            .final_checkpoint
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "final checkpoint failed; the journal replays it on restart");
        }
    }
}

#[cfg(test)]
mod tests;
