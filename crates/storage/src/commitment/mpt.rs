//! Ethereum's Merkle-Patricia trie commitment, updated incrementally.
//!
//! * **In memory across blocks.** The account trie and the storage tries touched recently are
//!   [`Trie`]s: sparse, revealed from the node store on demand, rehashed only along dirty paths.
//!   Storage tries of different accounts are updated and hashed in parallel, then the account
//!   trie (itself parallel at the top).
//! * **Node store.** A separate redb file (`<db>.trie`) holds one node per (owner, nibble path):
//!   owner `0x00…00` for the account trie, keccak256(address) for a storage trie.
//! * **Checkpoints.** Writing every dirty node every block would rewrite the top of the trie 2×
//!   a second. Instead the nodes changed since the last checkpoint are written every
//!   [`CommitmentConfig::checkpoint_interval`] blocks by a background thread (so block commits
//!   never wait for it), together with the checkpoint's block number and root.
//! * **Crash safety.** Each block's commit also writes, in the chain database and the same
//!   transaction as the block, a *journal* entry: its state changes keyed by hash. After a crash
//!   the tries are reopened at the last checkpoint and the journaled blocks since are applied
//!   again; the result must hash to the head block's state root, or the node store is rebuilt
//!   from the flat state. Journal entries below both durable checkpoints (trie and flat state)
//!   are pruned.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rlp::Decodable;
use alloy_trie::{EMPTY_ROOT_HASH, Nibbles, TrieAccount};
use pharos_trie::{NodeSource, Trie, TrieChanges, TrieError};
use rayon::prelude::*;
use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use tracing::{info, warn};

use super::{HashedDiff, account_leaf};
use crate::{
    StoreError,
    codec::decode_journal,
    flat::storage_bounds,
    tables::{ACCOUNTS, JOURNAL, STORAGE},
};

/// (owner | packed path | path length) → node RLP.
const NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trie_nodes");
/// `checkpoint` → block number (8, BE) | state root (32).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("trie_meta");
const META_CHECKPOINT: &str = "checkpoint";

/// Owner of the account trie's nodes.
const ACCOUNT_OWNER: B256 = B256::ZERO;

/// How the commitment keeps memory and disk in balance.
#[derive(Debug, Clone)]
pub struct CommitmentConfig {
    /// Write the nodes changed since the last checkpoint every this many blocks.
    pub checkpoint_interval: u64,
    /// After a checkpoint is durable, forget stored nodes this many nibbles deep or deeper
    /// (they are read back when a block touches them). 64 keeps everything.
    pub keep_depth: usize,
    /// NOMT: hash-table buckets (4 KiB pages of nodes; the file grows sparsely up to this).
    /// Size it above the expected number of pages: ~(accounts + slots) / 20.
    pub nomt_buckets: u32,
    /// NOMT: page and leaf cache, MiB each.
    pub nomt_cache_mib: usize,
    /// NOMT: commit blocks to disk this many at a time.
    pub nomt_commit_interval: u64,
}

impl Default for CommitmentConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: 16,
            keep_depth: 6,
            nomt_buckets: 1 << 21,
            nomt_cache_mib: 256,
            nomt_commit_interval: 1,
        }
    }
}

fn node_key(owner: &B256, path: &Nibbles) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + 33);
    key.extend_from_slice(owner.as_slice());
    key.extend_from_slice(&path.pack());
    key.push(path.len() as u8);
    key
}

struct DbSource<'a> {
    table: &'a ReadOnlyTable<&'static [u8], &'static [u8]>,
    owner: B256,
}

impl NodeSource for DbSource<'_> {
    fn node(&self, path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError> {
        self.table
            .get(node_key(&self.owner, path).as_slice())
            .map(|v| v.map(|v| v.value().to_vec()))
            .map_err(|e| TrieError::Source(e.to_string()))
    }
}

fn trie_err(e: TrieError) -> StoreError {
    StoreError::Corrupt(format!("state trie: {e}"))
}

/// Nodes and deletions of one checkpoint.
struct CheckpointJob {
    block: u64,
    root: B256,
    /// Owners whose every stored node goes first.
    wiped: Vec<B256>,
    tries: Vec<(B256, TrieChanges)>,
}

impl CheckpointJob {
    fn node_count(&self) -> usize {
        self.tries.iter().map(|(_, c)| c.nodes.len()).sum()
    }
}

fn write_checkpoint(db: &Database, job: &CheckpointJob) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut nodes = txn.open_table(NODES)?;
        for owner in &job.wiped {
            let lo = owner.to_vec();
            let mut hi = owner.to_vec();
            hi.extend_from_slice(&[0xff; 40]);
            nodes.retain_in::<&[u8], _>(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
        }
        for (owner, changes) in &job.tries {
            for path in &changes.removed {
                nodes.remove(node_key(owner, path).as_slice())?;
            }
            for (path, node) in &changes.nodes {
                nodes.insert(node_key(owner, path).as_slice(), node.as_slice())?;
            }
        }
        let mut value = job.block.to_be_bytes().to_vec();
        value.extend_from_slice(job.root.as_slice());
        txn.open_table(META)?
            .insert(META_CHECKPOINT, value.as_slice())?;
    }
    crate::crash_point("trie-checkpoint", job.block);
    txn.commit()?;
    Ok(())
}

/// How [`MptCommitment::open`] brought the tries to the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The checkpoint was at the head.
    Clean,
    /// This many journaled blocks were re-applied on top of the checkpoint.
    Replayed(u64),
    /// The node store was built again from the flat state.
    Rebuilt,
}

/// What applying a block produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutput {
    /// The new state root.
    pub root: B256,
    /// New storage root of each account of the diff, in order (empty root for deleted ones).
    pub storage_roots: Vec<B256>,
}

/// An EIP-1186 account proof with its storage proofs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// Block whose state the proof is against.
    pub block: u64,
    /// That block's state root.
    pub state_root: B256,
    /// The account's fields (defaults for an absent account).
    pub account: TrieAccount,
    /// Nodes from the state root to the account's leaf (or to where it would be).
    pub account_proof: Vec<Bytes>,
    /// Per requested slot: its value and the nodes from the storage root.
    pub storage: Vec<(U256, U256, Vec<Bytes>)>,
}

/// The Merkle-Patricia commitment. See the module documentation.
pub struct MptCommitment {
    db: Arc<Database>,
    config: CommitmentConfig,
    accounts: Trie,
    storages: HashMap<B256, Trie>,
    /// Owners whose storage was cleared since the last checkpoint was taken.
    wiped: HashSet<B256>,
    block: u64,
    root: B256,
    last_checkpoint: u64,
    writer: Option<JoinHandle<Result<u64, StoreError>>>,
    durable: Arc<AtomicU64>,
    recovery: Recovery,
}

impl std::fmt::Debug for MptCommitment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MptCommitment")
            .field("block", &self.block)
            .field("root", &self.root)
            .field("storage_tries", &self.storages.len())
            .finish()
    }
}

impl MptCommitment {
    /// Opens the node store at `path` and brings the tries to the chain's head (`head`, whose
    /// header carries `head_root`), replaying the journal in `chain` or rebuilding from the flat
    /// state in `flat` (which must be at `head`) as needed.
    pub fn open(
        path: &Path,
        chain: &Database,
        flat: &Database,
        head: u64,
        head_root: B256,
        config: CommitmentConfig,
    ) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(256 << 20)
            .create(path)
            .map_err(|e| StoreError::Db(format!("opening {}: {e}", path.display())))?;
        let db = Arc::new(db);
        {
            let txn = db.begin_write()?;
            txn.open_table(NODES)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        let checkpoint = {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            meta.get(META_CHECKPOINT)?
                .map(|v| {
                    let v = v.value();
                    if v.len() != 40 {
                        return Err(StoreError::Corrupt("trie checkpoint record".into()));
                    }
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&v[..8]);
                    Ok((u64::from_be_bytes(n), B256::from_slice(&v[8..])))
                })
                .transpose()?
        };
        let mut this = Self {
            db,
            config,
            accounts: Trie::new(),
            storages: HashMap::new(),
            wiped: HashSet::new(),
            block: 0,
            root: EMPTY_ROOT_HASH,
            last_checkpoint: 0,
            writer: None,
            durable: Arc::new(AtomicU64::new(0)),
            recovery: Recovery::Rebuilt,
        };
        if let Some((block, root)) = checkpoint.filter(|(block, _)| *block <= head) {
            this.accounts = Trie::from_root(root);
            this.block = block;
            this.root = root;
            this.last_checkpoint = block;
            this.durable.store(block, Ordering::Release);
            match this.replay(chain, head) {
                Ok(()) if this.root == head_root => {
                    this.recovery = if block < head {
                        Recovery::Replayed(head - block)
                    } else {
                        Recovery::Clean
                    };
                    if block < head {
                        info!(
                            from = block,
                            to = head,
                            "state trie caught up from the journal"
                        );
                        this.checkpoint(true)?;
                        this.wait()?;
                    }
                    return Ok(this);
                }
                Ok(()) => warn!(
                    computed = %this.root,
                    expected = %head_root,
                    "state trie replay ends at the wrong root; rebuilding from flat state"
                ),
                Err(e) => warn!(error = %e, "state trie replay failed; rebuilding from flat state"),
            }
        } else if checkpoint.is_some() {
            warn!("state trie checkpoint is ahead of the chain head; rebuilding from flat state");
        }
        this.rebuild(flat, head)?;
        if this.root != head_root {
            return Err(StoreError::Corrupt(format!(
                "the flat state hashes to {}, but head block {head} records state root {head_root}",
                this.root
            )));
        }
        Ok(this)
    }

    /// Re-applies the blocks journaled after the checkpoint.
    fn replay(&mut self, chain: &Database, head: u64) -> Result<(), StoreError> {
        if self.block == head {
            return Ok(());
        }
        let txn = chain.begin_read()?;
        let journal = txn.open_table(JOURNAL)?;
        for block in self.block + 1..=head {
            let entry = journal.get(block)?.ok_or_else(|| {
                StoreError::Corrupt(format!("no state journal for block {block}"))
            })?;
            self.apply(block, &decode_journal(entry.value())?)?;
        }
        Ok(())
    }

    /// Builds the node store from the flat state at `head`, from scratch.
    fn rebuild(&mut self, flat: &Database, head: u64) -> Result<(), StoreError> {
        const BATCH: usize = 200_000;
        let started = std::time::Instant::now();
        self.wait().ok();
        {
            let txn = self.db.begin_write()?;
            txn.delete_table(NODES)?;
            txn.delete_table(META)?;
            txn.open_table(NODES)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        self.accounts = Trie::new();
        self.storages.clear();
        self.wiped.clear();
        let txn = flat.begin_read()?;
        let accounts = txn.open_table(ACCOUNTS)?;
        let storage = txn.open_table(STORAGE)?;
        let total = accounts.len()?;
        let mut batch = Vec::with_capacity(BATCH.min(total as usize));
        let mut jobs = Vec::new();
        let mut done = 0u64;
        for entry in accounts.iter()? {
            let (k, v) = entry?;
            let hashed = B256::from(*k.value());
            let record = crate::AccountRecord::decode(v.value())?;
            let (lo, hi) = storage_bounds(&hashed);
            let mut slots = Vec::new();
            for slot in storage.range::<&[u8; 64]>(&lo..=&hi)? {
                let (k, v) = slot?;
                slots.push((
                    Nibbles::unpack(&k.value()[32..]),
                    Some(alloy_rlp::encode(U256::from_be_bytes(*v.value()))),
                ));
            }
            let mut storage_root = EMPTY_ROOT_HASH;
            if !slots.is_empty() {
                let mut trie = Trie::new();
                trie.update(slots, &pharos_trie::NoNodes)
                    .map_err(trie_err)?;
                storage_root = trie.root();
                jobs.push((hashed, trie.take_changes()));
            }
            batch.push((
                Nibbles::unpack(hashed),
                Some(account_leaf(&record.state, storage_root)),
            ));
            if batch.len() >= BATCH || jobs.len() >= 1_000 {
                done += batch.len() as u64;
                self.rebuild_flush(&mut batch, &mut jobs)?;
                info!(accounts = done, of = total, "rebuilding the state trie");
            }
        }
        self.rebuild_flush(&mut batch, &mut jobs)?;
        self.block = head;
        self.root = self.accounts.root();
        self.last_checkpoint = head;
        let job = CheckpointJob {
            block: head,
            root: self.root,
            wiped: Vec::new(),
            tries: vec![(ACCOUNT_OWNER, self.accounts.take_changes())],
        };
        write_checkpoint(&self.db, &job)?;
        self.durable.store(head, Ordering::Release);
        self.accounts.evict(self.config.keep_depth);
        info!(
            accounts = total,
            elapsed = ?started.elapsed(),
            root = %self.root,
            "state trie built from flat state"
        );
        Ok(())
    }

    fn rebuild_flush(
        &mut self,
        batch: &mut Vec<(Nibbles, Option<Vec<u8>>)>,
        jobs: &mut Vec<(B256, TrieChanges)>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NODES)?;
        let source = DbSource {
            table: &table,
            owner: ACCOUNT_OWNER,
        };
        self.accounts
            .update(std::mem::take(batch), &source)
            .map_err(trie_err)?;
        self.accounts.root();
        jobs.push((ACCOUNT_OWNER, self.accounts.take_changes()));
        // Not a checkpoint: no META record until the whole trie is in.
        let job = CheckpointJob {
            block: 0,
            root: B256::ZERO,
            wiped: Vec::new(),
            tries: std::mem::take(jobs),
        };
        let write = self.db.begin_write()?;
        {
            let mut nodes = write.open_table(NODES)?;
            for (owner, changes) in &job.tries {
                for path in &changes.removed {
                    nodes.remove(node_key(owner, path).as_slice())?;
                }
                for (path, node) in &changes.nodes {
                    nodes.insert(node_key(owner, path).as_slice(), node.as_slice())?;
                }
            }
        }
        write.commit()?;
        self.accounts.evict(self.config.keep_depth);
        Ok(())
    }

    /// How opening brought the tries to the head.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// The block the tries are at.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// The state root at [`MptCommitment::block`].
    pub fn root(&self) -> B256 {
        self.root
    }

    /// The newest checkpoint known to be on disk.
    pub fn durable_block(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The shared counter behind [`MptCommitment::durable_block`].
    pub fn durable_handle(&self) -> Arc<AtomicU64> {
        self.durable.clone()
    }

    /// Whether [`MptCommitment::checkpoint`] without `force` would start a checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        self.block != self.last_checkpoint
            && self.block >= self.last_checkpoint + self.config.checkpoint_interval
    }

    /// Applies block `block`'s changes and returns the new root and storage roots.
    pub fn apply(&mut self, block: u64, diff: &HashedDiff) -> Result<CommitOutput, StoreError> {
        let started = std::time::Instant::now();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NODES)?;
        let account_source = DbSource {
            table: &table,
            owner: ACCOUNT_OWNER,
        };

        // Storage roots the block does not recompute: read from the account leaves.
        let needs_old: Vec<usize> = diff
            .accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.wiped && !self.storages.contains_key(&a.hashed))
            .map(|(i, _)| i)
            .collect();
        let keys: Vec<Nibbles> = needs_old
            .iter()
            .map(|&i| Nibbles::unpack(diff.accounts[i].hashed))
            .collect();
        let old_leaves = self
            .accounts
            .get_many(&keys, &account_source)
            .map_err(trie_err)?;
        let mut storage_roots = vec![EMPTY_ROOT_HASH; diff.accounts.len()];
        for (&i, leaf) in needs_old.iter().zip(old_leaves) {
            if let Some(leaf) = leaf {
                let account = TrieAccount::decode(&mut leaf.as_slice()).map_err(|e| {
                    StoreError::Corrupt(format!("account leaf {}: {e}", diff.accounts[i].hashed))
                })?;
                storage_roots[i] = account.storage_root;
            }
        }

        let leaves_read = started.elapsed();
        // Storage tries, in parallel across accounts.
        let mut jobs = Vec::new();
        for (i, account) in diff.accounts.iter().enumerate() {
            if account.wiped {
                self.storages.remove(&account.hashed);
                self.wiped.insert(account.hashed);
            }
            if account.info.is_none() {
                continue;
            }
            if account.wiped || !account.storage.is_empty() {
                let trie = if account.wiped {
                    Trie::new()
                } else {
                    self.storages
                        .remove(&account.hashed)
                        .unwrap_or_else(|| Trie::from_root(storage_roots[i]))
                };
                jobs.push((i, trie));
            } else if let Some(trie) = self.storages.get_mut(&account.hashed) {
                storage_roots[i] = trie.root();
            }
        }
        // The account trie's leaves that do not wait for a storage root are updated while the
        // storage tries are: the two overlap on the cores instead of one waiting for the other.
        let leaf_of = |i: usize, storage_root: B256| {
            let account = &diff.accounts[i];
            (
                Nibbles::unpack(account.hashed),
                account
                    .info
                    .as_ref()
                    .map(|state| account_leaf(state, storage_root)),
            )
        };
        let mut waits = vec![false; diff.accounts.len()];
        for (i, _) in &jobs {
            waits[*i] = true;
        }
        let ready: Vec<(Nibbles, Option<Vec<u8>>)> = (0..diff.accounts.len())
            .filter(|i| !waits[*i])
            .map(|i| leaf_of(i, storage_roots[i]))
            .collect();
        let accounts = &mut self.accounts;
        let (results, ready_updated): (Vec<Result<(usize, Trie), StoreError>>, _) = rayon::join(
            || {
                jobs.into_par_iter()
                    .map(|(i, mut trie)| {
                        let account = &diff.accounts[i];
                        let updates = account
                            .storage
                            .iter()
                            .map(|(hashed_slot, _, value)| {
                                let value = (!value.is_zero()).then(|| alloy_rlp::encode(value));
                                (Nibbles::unpack(hashed_slot), value)
                            })
                            .collect();
                        let source = DbSource {
                            table: &table,
                            owner: account.hashed,
                        };
                        trie.update(updates, &source).map_err(trie_err)?;
                        trie.root();
                        Ok((i, trie))
                    })
                    .collect()
            },
            || accounts.update(ready, &account_source),
        );
        ready_updated.map_err(trie_err)?;
        let mut waited = Vec::new();
        for result in results {
            let (i, mut trie) = result?;
            storage_roots[i] = trie.root();
            waited.push(leaf_of(i, storage_roots[i]));
            self.storages.insert(diff.accounts[i].hashed, trie);
        }
        let storage_done = started.elapsed();
        self.accounts
            .update(waited, &account_source)
            .map_err(trie_err)?;
        let accounts_updated = started.elapsed();
        self.root = self.accounts.root();
        self.block = block;
        tracing::debug!(
            block,
            leaves_read = ?leaves_read,
            storage_and_ready_accounts = ?(storage_done - leaves_read),
            waiting_accounts = ?(accounts_updated - storage_done),
            account_root = ?(started.elapsed() - accounts_updated),
            "merkleized"
        );
        Ok(CommitOutput {
            root: self.root,
            storage_roots,
        })
    }

    /// Hands the nodes changed since the last checkpoint to the background writer when the
    /// interval has passed (or `force`). Waits for the previous checkpoint first, then lets go
    /// of stored nodes below the configured depth.
    pub fn checkpoint(&mut self, force: bool) -> Result<(), StoreError> {
        if self.block == self.last_checkpoint
            || (!force && self.block < self.last_checkpoint + self.config.checkpoint_interval)
        {
            return Ok(());
        }
        self.wait()?;
        // Everything marked stored is durable now.
        let keep = self.config.keep_depth;
        self.accounts.evict(keep);
        self.storages.retain(|_, trie| {
            trie.evict(keep);
            !trie.is_blinded()
        });
        let mut tries = Vec::with_capacity(1 + self.storages.len());
        tries.push((ACCOUNT_OWNER, self.accounts.take_changes()));
        for (owner, trie) in self.storages.iter_mut() {
            let changes = trie.take_changes();
            if !changes.is_empty() {
                tries.push((*owner, changes));
            }
        }
        let job = CheckpointJob {
            block: self.block,
            root: self.root,
            wiped: self.wiped.drain().collect(),
            tries,
        };
        self.last_checkpoint = self.block;
        let db = self.db.clone();
        let durable = self.durable.clone();
        let handle = std::thread::Builder::new()
            .name("trie-checkpoint".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                write_checkpoint(&db, &job)?;
                durable.store(job.block, Ordering::Release);
                tracing::debug!(
                    block = job.block,
                    nodes = job.node_count(),
                    elapsed = ?started.elapsed(),
                    "trie checkpoint written"
                );
                Ok(job.block)
            })
            .map_err(|e| StoreError::Db(format!("starting the checkpoint writer: {e}")))?;
        self.writer = Some(handle);
        Ok(())
    }

    /// Waits for the checkpoint being written, if any.
    pub fn wait(&mut self) -> Result<(), StoreError> {
        if let Some(handle) = self.writer.take() {
            handle
                .join()
                .map_err(|_| StoreError::Db("the checkpoint writer panicked".into()))??;
        }
        Ok(())
    }

    /// The EIP-1186 proof of `address` and `slots` against the current root.
    pub fn proof(&mut self, address: Address, slots: &[U256]) -> Result<AccountProof, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NODES)?;
        let hashed = alloy_primitives::keccak256(address);
        let (account_proof, leaf) = self
            .accounts
            .proof(
                &Nibbles::unpack(hashed),
                &DbSource {
                    table: &table,
                    owner: ACCOUNT_OWNER,
                },
            )
            .map_err(trie_err)?;
        let account = match leaf {
            Some(leaf) => TrieAccount::decode(&mut leaf.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("account leaf {hashed}: {e}")))?,
            None => TrieAccount {
                nonce: 0,
                balance: U256::ZERO,
                storage_root: EMPTY_ROOT_HASH,
                code_hash: alloy_primitives::KECCAK256_EMPTY,
            },
        };
        let mut fresh;
        let trie = match self.storages.get_mut(&hashed) {
            Some(trie) => trie,
            None => {
                fresh = Trie::from_root(account.storage_root);
                &mut fresh
            }
        };
        let source = DbSource {
            table: &table,
            owner: hashed,
        };
        let mut storage = Vec::with_capacity(slots.len());
        for slot in slots {
            let key = Nibbles::unpack(alloy_primitives::keccak256(slot.to_be_bytes::<32>()));
            let (proof, value) = trie.proof(&key, &source).map_err(trie_err)?;
            let value = value
                .map(|v| U256::decode(&mut v.as_slice()))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("storage leaf: {e}")))?
                .unwrap_or_default();
            storage.push((*slot, value, proof));
        }
        Ok(AccountProof {
            block: self.block,
            state_root: self.root,
            account,
            account_proof,
            storage,
        })
    }

    /// Node counts in memory: (account trie, storage tries, storage trie count).
    pub fn memory_stats(&self) -> (pharos_trie::TrieStats, pharos_trie::TrieStats, usize) {
        let mut storage = pharos_trie::TrieStats::default();
        for trie in self.storages.values() {
            let s = trie.stats();
            storage.branches += s.branches;
            storage.extensions += s.extensions;
            storage.leaves += s.leaves;
            storage.blinded += s.blinded;
        }
        (self.accounts.stats(), storage, self.storages.len())
    }
}

impl Drop for MptCommitment {
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            warn!(error = %e, "trie checkpoint failed at shutdown; it is rebuilt from the journal on restart");
        }
    }
}
