//! Flat state: one record per account and per slot, keyed by hash, in its own database file
//! (`<path>.state`), read with one lookup per key and written many blocks at a time.
//!
//! A copy-on-write B-tree rewrites a whole page for every key it changes; an ERC-20 block
//! touches ~45,000 random keys, which with a million accounts is most pages of the tables. So a
//! committed block's changes are first kept in memory as a [`PendingBlock`] (and durably in the
//! chain database's journal, written with the block), and every
//! [`FlatConfig::checkpoint_interval`] blocks a background thread writes all pending blocks into
//! the tables in one transaction: each page is rewritten once per checkpoint instead of once per
//! block. Reads go through a [`FlatView`]: the pending blocks newest first, then the tables.
//!
//! After a crash the journal entries after the last checkpoint are written into the tables on
//! open, before anything reads them.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use alloy_primitives::{B256, U256};
use parking_lot::{Mutex, RwLock};
use pharos_primitives::AccountState;
use redb::{Database, ReadOnlyTable, ReadableDatabase, TableDefinition, WriteTransaction};
use tracing::{debug, info};

use crate::{
    AccountRecord, StoreError,
    codec::decode_journal,
    commitment::HashedDiff,
    tables::{ACCOUNTS, JOURNAL, STORAGE},
};

/// `checkpoint` → block number (8, BE) whose state the tables hold.
const FLAT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("flat_meta");
const META_CHECKPOINT: &str = "checkpoint";

/// Key of a storage slot in the flat state from the hashed address and hashed slot.
pub fn storage_key_hashed(hashed_address: &B256, hashed_slot: &B256) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(hashed_address.as_slice());
    key[32..].copy_from_slice(hashed_slot.as_slice());
    key
}

/// First and last possible storage keys of an account.
pub(crate) fn storage_bounds(hashed_address: &B256) -> ([u8; 64], [u8; 64]) {
    let mut lo = [0u8; 64];
    lo[..32].copy_from_slice(hashed_address.as_slice());
    let mut hi = [0xffu8; 64];
    hi[..32].copy_from_slice(hashed_address.as_slice());
    (lo, hi)
}

/// Several blocks' changes merged in order (the last write of a key wins; a wipe drops the
/// account's earlier pending writes) and sorted by key, so one checkpoint walks each table once
/// from left to right and writes every key once.
#[derive(Default)]
struct MergedDiff {
    wiped: Vec<B256>,
    accounts: BTreeMap<B256, Option<AccountState>>,
    storage: BTreeMap<[u8; 64], U256>,
}

impl MergedDiff {
    fn new<'a>(diffs: impl IntoIterator<Item = &'a HashedDiff>) -> Self {
        let mut merged = Self::default();
        for diff in diffs {
            for account in &diff.accounts {
                if account.wiped {
                    let (lo, hi) = storage_bounds(&account.hashed);
                    let stale: Vec<[u8; 64]> =
                        merged.storage.range(lo..=hi).map(|(k, _)| *k).collect();
                    for key in stale {
                        merged.storage.remove(&key);
                    }
                    merged.wiped.push(account.hashed);
                }
                for (hashed_slot, _, value) in &account.storage {
                    merged
                        .storage
                        .insert(storage_key_hashed(&account.hashed, hashed_slot), *value);
                }
                merged.accounts.insert(account.hashed, account.info);
            }
        }
        merged.wiped.sort_unstable();
        merged.wiped.dedup();
        merged
    }

    fn write(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut storage = txn.open_table(STORAGE)?;
        for hashed in &self.wiped {
            let (lo, hi) = storage_bounds(hashed);
            storage.retain_in::<&[u8; 64], _>(&lo..=&hi, |_, _| false)?;
        }
        for (key, value) in &self.storage {
            if value.is_zero() {
                storage.remove(key)?;
            } else {
                storage.insert(key, &value.to_be_bytes::<32>())?;
            }
        }
        let mut accounts = txn.open_table(ACCOUNTS)?;
        for (hashed, info) in &self.accounts {
            match info {
                None => {
                    accounts.remove(&hashed.0)?;
                }
                Some(state) => {
                    accounts.insert(
                        &hashed.0,
                        AccountRecord { state: *state }.encode().as_slice(),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Updates the set of (hashed) slots an account holds with one block's change to it: a wipe
/// clears the set first when `wipes`, then zero writes remove and other writes add.
pub(crate) fn apply_slot_writes(
    slots: &mut std::collections::BTreeSet<B256>,
    account: &crate::commitment::HashedAccount,
    wipes: bool,
) {
    if wipes && account.wiped {
        slots.clear();
    }
    for (hashed_slot, _, value) in &account.storage {
        if value.is_zero() {
            slots.remove(hashed_slot);
        } else {
            slots.insert(*hashed_slot);
        }
    }
}

/// A committed block's state changes not yet in the tables.
#[derive(Debug, Default)]
pub struct PendingBlock {
    /// Block number.
    pub number: u64,
    accounts: HashMap<B256, Option<AccountState>>,
    /// Accounts whose storage the block cleared (before its own writes).
    wiped: HashSet<B256>,
    storage: HashMap<[u8; 64], U256>,
    diff: Arc<HashedDiff>,
}

impl PendingBlock {
    /// Indexes `diff` for reads.
    pub fn new(number: u64, diff: Arc<HashedDiff>) -> Self {
        let mut block = Self {
            number,
            accounts: HashMap::with_capacity(diff.accounts.len()),
            wiped: HashSet::new(),
            storage: HashMap::with_capacity(diff.len() - diff.accounts.len()),
            diff: diff.clone(),
        };
        for account in &diff.accounts {
            block.accounts.insert(account.hashed, account.info);
            if account.wiped {
                block.wiped.insert(account.hashed);
            }
            for (hashed_slot, _, value) in &account.storage {
                block
                    .storage
                    .insert(storage_key_hashed(&account.hashed, hashed_slot), *value);
            }
        }
        block
    }
}

/// How often pending blocks go to disk.
#[derive(Debug, Clone)]
pub struct FlatConfig {
    /// Write the pending blocks into the tables every this many blocks.
    pub checkpoint_interval: u64,
}

impl Default for FlatConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: 8,
        }
    }
}

type Layers = Arc<Vec<Arc<PendingBlock>>>;

/// The flat state database and the blocks pending for it.
pub struct FlatStore {
    db: Arc<Database>,
    /// Blocks after the tables' checkpoint, oldest first.
    pending: Arc<RwLock<Layers>>,
    writer: Mutex<Option<JoinHandle<Result<u64, StoreError>>>>,
    durable: Arc<AtomicU64>,
    last_handed: Mutex<u64>,
    config: FlatConfig,
}

impl std::fmt::Debug for FlatStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatStore")
            .field("pending", &self.pending.read().len())
            .finish()
    }
}

fn read_checkpoint(db: &Database) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(FLAT_META)?;
    meta.get(META_CHECKPOINT)?
        .map(|v| {
            <[u8; 8]>::try_from(v.value())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("flat state checkpoint record".into()))
        })
        .transpose()
}

fn set_checkpoint(txn: &WriteTransaction, block: u64) -> Result<(), StoreError> {
    txn.open_table(FLAT_META)?
        .insert(META_CHECKPOINT, block.to_be_bytes().as_slice())?;
    Ok(())
}

impl FlatStore {
    /// Opens the flat state at `path`. `genesis` writes the genesis state when the tables have
    /// none; then journaled blocks up to `head` found in `chain` are written in.
    pub fn open(
        path: &Path,
        chain: &Database,
        head: u64,
        genesis: impl FnOnce() -> HashedDiff,
        config: FlatConfig,
    ) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(512 << 20)
            .create(path)
            .map_err(|e| StoreError::Db(format!("opening {}: {e}", path.display())))?;
        {
            let txn = db.begin_write()?;
            txn.open_table(ACCOUNTS)?;
            txn.open_table(STORAGE)?;
            txn.open_table(FLAT_META)?;
            txn.commit()?;
        }
        let mut checkpoint = read_checkpoint(&db)?;
        if checkpoint.is_none() {
            if head != 0 {
                return Err(StoreError::Corrupt(format!(
                    "{} holds no state but the chain is at block {head}; restore it or start a new data directory",
                    path.display()
                )));
            }
            let txn = db.begin_write()?;
            MergedDiff::new([&genesis()]).write(&txn)?;
            set_checkpoint(&txn, 0)?;
            txn.commit()?;
            checkpoint = Some(0);
        }
        let checkpoint = checkpoint.unwrap_or_default();
        if checkpoint > head {
            return Err(StoreError::Corrupt(format!(
                "flat state is at block {checkpoint}, ahead of the chain head {head}"
            )));
        }
        if checkpoint < head {
            let read = chain.begin_read()?;
            let journal = read.open_table(JOURNAL)?;
            let mut diffs = Vec::new();
            for block in checkpoint + 1..=head {
                let entry = journal.get(block)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("no state journal for block {block}"))
                })?;
                diffs.push(decode_journal(entry.value())?);
            }
            let txn = db.begin_write()?;
            MergedDiff::new(&diffs).write(&txn)?;
            set_checkpoint(&txn, head)?;
            txn.commit()?;
            info!(
                from = checkpoint,
                to = head,
                "flat state caught up from the journal"
            );
        }
        Ok(Self {
            db: Arc::new(db),
            pending: Arc::new(RwLock::new(Arc::new(Vec::new()))),
            writer: Mutex::new(None),
            durable: Arc::new(AtomicU64::new(head)),
            last_handed: Mutex::new(head),
            config,
        })
    }

    /// A read view of the state after block `head`: pending blocks up to it over the tables.
    pub fn view(&self, head: u64) -> Result<FlatView, StoreError> {
        // Hold the lock while opening the transaction: a checkpoint drops its blocks from
        // `pending` only after its commit, so the view never misses a block.
        let pending = self.pending.read();
        let txn = self.db.begin_read()?;
        let base = txn
            .open_table(FLAT_META)?
            .get(META_CHECKPOINT)?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or_default();
        let view = FlatView {
            base,
            pending: pending
                .iter()
                .rev()
                .filter(|b| b.number <= head)
                .cloned()
                .collect(),
            accounts: txn.open_table(ACCOUNTS)?,
            storage: txn.open_table(STORAGE)?,
        };
        Ok(view)
    }

    /// Adds a committed block's changes (visible to views of that block and later).
    pub fn push(&self, block: PendingBlock) {
        let mut pending = self.pending.write();
        let mut next = Vec::with_capacity(pending.len() + 1);
        next.extend(pending.iter().cloned());
        next.push(Arc::new(block));
        *pending = Arc::new(next);
    }

    /// Hands the pending blocks up to `head` to the background writer when the interval has
    /// passed (or `force`), after waiting for the previous checkpoint. Only call once `head` is
    /// the chain's head: views of older heads must not see the tables move past them.
    pub fn maybe_checkpoint(&self, head: u64, force: bool) -> Result<(), StoreError> {
        let mut last = self.last_handed.lock();
        if head == *last || (!force && head < *last + self.config.checkpoint_interval) {
            return Ok(());
        }
        self.wait()?;
        let blocks: Vec<Arc<PendingBlock>> = self
            .pending
            .read()
            .iter()
            .filter(|b| b.number > *last && b.number <= head)
            .cloned()
            .collect();
        *last = head;
        let db = self.db.clone();
        let pending = self.pending.clone();
        let durable = self.durable.clone();
        let handle = std::thread::Builder::new()
            .name("flat-checkpoint".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let merged = MergedDiff::new(blocks.iter().map(|b| &*b.diff));
                let txn = db.begin_write()?;
                merged.write(&txn)?;
                set_checkpoint(&txn, head)?;
                crate::crash_point("flat-checkpoint", head);
                txn.commit()?;
                durable.store(head, Ordering::Release);
                let mut pending = pending.write();
                *pending = Arc::new(
                    pending
                        .iter()
                        .filter(|b| b.number > head)
                        .cloned()
                        .collect(),
                );
                debug!(block = head, blocks = blocks.len(), elapsed = ?started.elapsed(), "flat state checkpoint written");
                Ok(head)
            })
            .map_err(|e| StoreError::Db(format!("starting the flat state writer: {e}")))?;
        *self.writer.lock() = Some(handle);
        Ok(())
    }

    /// Writes every pending block and waits until they are on disk.
    pub fn flush(&self, head: u64) -> Result<(), StoreError> {
        self.maybe_checkpoint(head, true)?;
        self.wait()
    }

    /// Waits for the checkpoint being written, if any.
    pub fn wait(&self) -> Result<(), StoreError> {
        let handle = self.writer.lock().take();
        if let Some(handle) = handle {
            handle
                .join()
                .map_err(|_| StoreError::Db("the flat state writer panicked".into()))??;
        }
        Ok(())
    }

    /// The block whose state the tables hold on disk.
    pub fn durable_block(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The database (for full-state scans).
    pub fn database(&self) -> &Database {
        &self.db
    }
}

impl Drop for FlatStore {
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            tracing::warn!(error = %e, "flat state checkpoint failed at shutdown; the journal replays it on restart");
        }
    }
}

/// The state after one block: its pending blocks (newest first) over the tables.
pub struct FlatView {
    /// Block whose state the tables of this view hold.
    pub base: u64,
    pending: Vec<Arc<PendingBlock>>,
    pub(crate) accounts: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    pub(crate) storage: ReadOnlyTable<&'static [u8; 64], &'static [u8; 32]>,
}

impl FlatView {
    /// The account with hashed address `hashed`.
    pub fn account(&self, hashed: &B256) -> Result<Option<AccountState>, StoreError> {
        for block in &self.pending {
            if let Some(info) = block.accounts.get(hashed) {
                return Ok(*info);
            }
        }
        self.accounts
            .get(&hashed.0)?
            .map(|v| AccountRecord::decode(v.value()).map(|r| r.state))
            .transpose()
    }

    /// A storage slot by hashed address and hashed slot.
    pub fn storage(&self, hashed: &B256, hashed_slot: &B256) -> Result<U256, StoreError> {
        let key = storage_key_hashed(hashed, hashed_slot);
        for block in &self.pending {
            if let Some(value) = block.storage.get(&key) {
                return Ok(*value);
            }
            if block.wiped.contains(hashed) {
                return Ok(U256::ZERO);
            }
        }
        Ok(self
            .storage
            .get(&key)?
            .map(|v| U256::from_be_bytes(*v.value()))
            .unwrap_or_default())
    }

    /// The hashed slots account `hashed` holds (non-zero values), in no particular order.
    pub fn storage_slots(&self, hashed: &B256) -> Result<Vec<B256>, StoreError> {
        let mut slots = std::collections::BTreeSet::new();
        // Newest pending block first: stop at the newest one that wiped the account.
        let wiped_at = self.pending.iter().position(|b| b.wiped.contains(hashed));
        if wiped_at.is_none() {
            let (lo, hi) = storage_bounds(hashed);
            for entry in self.storage.range::<&[u8; 64]>(&lo..=&hi)? {
                let (k, _) = entry?;
                slots.insert(B256::from_slice(&k.value()[32..]));
            }
        }
        let newest_first = match wiped_at {
            Some(i) => &self.pending[..=i],
            None => &self.pending[..],
        };
        // Oldest first, so later writes win (the wipe, if any, is already accounted for).
        for block in newest_first.iter().rev() {
            for account in block.diff.accounts.iter().filter(|a| &a.hashed == hashed) {
                apply_slot_writes(&mut slots, account, false);
            }
        }
        Ok(slots.into_iter().collect())
    }

    /// Whether blocks not yet in the tables are part of this view.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}
