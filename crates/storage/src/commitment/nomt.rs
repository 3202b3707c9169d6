//! The NOMT commitment ([`StateCommitment::Nomt`](pharos_primitives::StateCommitment)): one
//! binary SHA-256 Merkle tree over accounts and storage slots together, kept by the `nomt` crate
//! in its own directory (`<path>.nomt`, io_uring I/O). Layout and hashing:
//! [`pharos_primitives::binary_state`].
//!
//! Each block becomes a NOMT session on top of the blocks not yet committed (NOMT overlays, kept
//! in memory), so merkleizing never waits for disk. A checkpoint commits the overlays of the
//! blocks the chain database already holds, oldest first, so NOMT on disk is never ahead of the
//! chain. After a crash the tree's root tells which block it holds (the newest header with that
//! state root); the journal replays the blocks after it — or, when one of them cleared an
//! account's storage (whose slots a flat binary tree cannot enumerate), the tree is rebuilt from
//! the flat state.

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount};
use nomt::{
    KeyReadWrite, Nomt, Options, Overlay, SessionParams,
    hasher::Sha2Hasher,
    proof::{PathProof, PathProofTerminal},
    trie::KeyPath,
};
use pharos_primitives::binary_state as bs;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tracing::{info, warn};

use super::{
    HashedDiff,
    mpt::{AccountProof, CommitOutput, CommitmentConfig, Recovery},
};
use crate::{
    StoreError,
    codec::decode_journal,
    tables::{ACCOUNTS, HEADERS, JOURNAL, STORAGE},
};

fn nomt_err(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(format!("nomt {context}: {e}"))
}

/// The NOMT commitment. See the module documentation.
pub struct NomtCommitment {
    nomt: Nomt<Sha2Hasher>,
    dir: PathBuf,
    config: CommitmentConfig,
    /// Blocks applied but not committed to NOMT, oldest first.
    overlays: VecDeque<(u64, Overlay)>,
    block: u64,
    root: B256,
    durable: Arc<AtomicU64>,
    recovery: Recovery,
}

impl std::fmt::Debug for NomtCommitment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomtCommitment")
            .field("block", &self.block)
            .field("uncommitted", &self.overlays.len())
            .finish()
    }
}

fn open_nomt(dir: &Path, config: &CommitmentConfig) -> Result<Nomt<Sha2Hasher>, StoreError> {
    let mut o = Options::new();
    o.path(dir);
    o.commit_concurrency(2);
    o.io_workers(2);
    o.hashtable_buckets(config.nomt_buckets);
    o.preallocate_ht(false);
    o.page_cache_size(config.nomt_cache_mib);
    o.leaf_cache_size(config.nomt_cache_mib);
    // A fixed seed: the hash-table layout must not change between opens.
    o.bitbox_seed(*b"pharos-nomt-seed");
    Nomt::open(o).map_err(|e| nomt_err(&format!("opening {}", dir.display()), e))
}

fn root_of(nomt: &Nomt<Sha2Hasher>) -> B256 {
    B256::from(nomt.root().into_inner())
}

/// Writes of one block, sorted by key: the last write of a key wins.
fn block_writes(
    diff: &HashedDiff,
    wiped_slots: &dyn Fn(&B256) -> Result<Vec<B256>, StoreError>,
) -> Result<BTreeMap<KeyPath, Option<Vec<u8>>>, StoreError> {
    let mut writes = BTreeMap::new();
    for account in &diff.accounts {
        if account.wiped {
            for slot in wiped_slots(&account.hashed)? {
                writes.insert(bs::slot_key(&account.hashed, &slot), None);
            }
        }
        for (hashed_slot, _, value) in &account.storage {
            writes.insert(
                bs::slot_key(&account.hashed, hashed_slot),
                (!value.is_zero()).then(|| bs::slot_value(*value)),
            );
        }
        writes.insert(
            bs::account_key(&account.hashed),
            account
                .info
                .map(|s| bs::account_value(s.nonce, s.balance, s.code_hash)),
        );
    }
    Ok(writes)
}

impl NomtCommitment {
    /// Opens the tree in `<path>.nomt` and brings it to the chain's head `head` (whose header
    /// carries `head_root`): from the journal in `chain`, or rebuilt from the flat state in
    /// `flat` (which must be at `head`).
    pub fn open(
        path: &Path,
        chain: &Database,
        flat: &Database,
        head: u64,
        head_root: B256,
        config: CommitmentConfig,
    ) -> Result<Self, StoreError> {
        let mut dir = path.as_os_str().to_owned();
        dir.push(".nomt");
        let dir = PathBuf::from(dir);
        let nomt = open_nomt(&dir, &config)?;
        let mut this = Self {
            nomt,
            dir,
            config,
            overlays: VecDeque::new(),
            block: 0,
            root: B256::ZERO,
            durable: Arc::new(AtomicU64::new(0)),
            recovery: Recovery::Clean,
        };
        let root = root_of(&this.nomt);
        match this.find_block(chain, head, root)? {
            Some(block) if block == head => {
                this.block = head;
                this.root = root;
                this.durable.store(head, Ordering::Release);
                return Ok(this);
            }
            Some(block) => {
                this.block = block;
                this.root = root;
                this.durable.store(block, Ordering::Release);
                match this.replay(chain, head) {
                    Ok(true) if this.root == head_root => {
                        info!(
                            from = block,
                            to = head,
                            "state tree caught up from the journal"
                        );
                        this.recovery = Recovery::Replayed(head - block);
                        return Ok(this);
                    }
                    Ok(true) => warn!(
                        computed = %this.root,
                        expected = %head_root,
                        "state tree replay ends at the wrong root; rebuilding from flat state"
                    ),
                    Ok(false) => {
                        info!(
                            "the journal clears storage; rebuilding the state tree from flat state"
                        )
                    }
                    Err(e) => {
                        warn!(error = %e, "state tree replay failed; rebuilding from flat state")
                    }
                }
            }
            None => warn!(
                root = %root,
                "the state tree's root is no recent block's state root; rebuilding from flat state"
            ),
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

    /// The newest block at or below `head`, within the journal's reach, whose state root is
    /// `root` (empty blocks repeat a root: the newest is as good as any).
    fn find_block(
        &self,
        chain: &Database,
        head: u64,
        root: B256,
    ) -> Result<Option<u64>, StoreError> {
        let txn = chain.begin_read()?;
        let headers = txn.open_table(HEADERS)?;
        let journal = txn.open_table(JOURNAL)?;
        let oldest_journaled = journal.first()?.map(|(k, _)| k.value()).unwrap_or(head + 1);
        let mut number = head;
        loop {
            let header = headers
                .get(number)?
                .map(|v| {
                    <alloy_consensus::Header as alloy_rlp::Decodable>::decode(&mut v.value())
                        .map_err(|e| StoreError::Corrupt(format!("header {number}: {e}")))
                })
                .transpose()?;
            if header.is_some_and(|h| h.state_root == root) {
                return Ok(Some(number));
            }
            // Blocks below the oldest journal entry cannot be replayed from.
            if number == 0 || number < oldest_journaled {
                return Ok(None);
            }
            number -= 1;
        }
    }

    /// Re-applies and commits the journaled blocks after `self.block`. `Ok(false)` when one of
    /// them cleared an account's storage (nothing applied then).
    fn replay(&mut self, chain: &Database, head: u64) -> Result<bool, StoreError> {
        let txn = chain.begin_read()?;
        let journal = txn.open_table(JOURNAL)?;
        let mut diffs = Vec::new();
        for block in self.block + 1..=head {
            let entry = journal.get(block)?.ok_or_else(|| {
                StoreError::Corrupt(format!("no state journal for block {block}"))
            })?;
            let diff = decode_journal(entry.value())?;
            if diff.accounts.iter().any(|a| a.wiped) {
                return Ok(false);
            }
            diffs.push((block, diff));
        }
        let no_wipes = |_: &B256| Ok(Vec::new());
        for (block, diff) in diffs {
            self.apply(block, &diff, &no_wipes)?;
            self.checkpoint(block, true)?;
        }
        Ok(true)
    }

    /// Builds the tree from the flat state at `head`, from scratch.
    fn rebuild(&mut self, flat: &Database, head: u64) -> Result<(), StoreError> {
        const BATCH: usize = 500_000;
        let started = std::time::Instant::now();
        self.overlays.clear();
        // Start from an empty directory.
        let fresh = {
            std::fs::remove_dir_all(&self.dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| nomt_err(&format!("removing {}", self.dir.display()), e))?;
            open_nomt(&self.dir, &self.config)?
        };
        self.nomt = fresh;
        let txn = flat.begin_read()?;
        let accounts = txn.open_table(ACCOUNTS)?;
        let storage = txn.open_table(STORAGE)?;
        let total = accounts.len()? + storage.len()?;
        let mut batch: Vec<(KeyPath, Vec<u8>)> = Vec::with_capacity(BATCH);
        let mut done = 0u64;
        let commit = |batch: &mut Vec<(KeyPath, Vec<u8>)>, nomt: &Nomt<Sha2Hasher>| {
            batch.sort_unstable_by_key(|a| a.0);
            let session = nomt.begin_session(SessionParams::default());
            let actuals = batch
                .drain(..)
                .map(|(k, v)| (k, KeyReadWrite::Write(Some(v))))
                .collect();
            session
                .finish(actuals)
                .and_then(|f| f.commit(nomt))
                .map_err(|e| nomt_err("bulk load", e))
        };
        for entry in accounts.iter()? {
            let (k, v) = entry?;
            let hashed = B256::from(*k.value());
            let record = crate::AccountRecord::decode(v.value())?;
            batch.push((
                bs::account_key(&hashed),
                bs::account_value(
                    record.state.nonce,
                    record.state.balance,
                    record.state.code_hash,
                ),
            ));
            if batch.len() >= BATCH {
                done += batch.len() as u64;
                commit(&mut batch, &self.nomt)?;
                info!(keys = done, of = total, "rebuilding the state tree");
            }
        }
        for entry in storage.iter()? {
            let (k, v) = entry?;
            let key = k.value();
            let hashed = B256::from_slice(&key[..32]);
            let slot = B256::from_slice(&key[32..]);
            batch.push((
                bs::slot_key(&hashed, &slot),
                bs::slot_value(U256::from_be_bytes(*v.value())),
            ));
            if batch.len() >= BATCH {
                done += batch.len() as u64;
                commit(&mut batch, &self.nomt)?;
                info!(keys = done, of = total, "rebuilding the state tree");
            }
        }
        commit(&mut batch, &self.nomt)?;
        self.block = head;
        self.root = root_of(&self.nomt);
        self.durable.store(head, Ordering::Release);
        self.recovery = Recovery::Rebuilt;
        info!(keys = total, elapsed = ?started.elapsed(), root = %self.root, "state tree built from flat state");
        Ok(())
    }

    /// Applies block `block`'s changes on top of the uncommitted blocks; returns the new root.
    /// `wiped_slots` lists the slots (hashed) an account holds before this block, for accounts
    /// the block clears.
    pub fn apply(
        &mut self,
        block: u64,
        diff: &HashedDiff,
        wiped_slots: &dyn Fn(&B256) -> Result<Vec<B256>, StoreError>,
    ) -> Result<CommitOutput, StoreError> {
        let writes = block_writes(diff, wiped_slots)?;
        let params = SessionParams::default()
            .overlay(self.overlays.iter().rev().map(|(_, o)| o))
            .map_err(|e| nomt_err("overlay chain", format!("{e:?}")))?;
        let session = self.nomt.begin_session(params);
        for key in writes.keys() {
            session.warm_up(*key);
        }
        let actuals = writes
            .into_iter()
            .map(|(k, v)| (k, KeyReadWrite::Write(v)))
            .collect();
        let finished = session
            .finish(actuals)
            .map_err(|e| nomt_err("merkleizing", e))?;
        self.root = B256::from(finished.root().into_inner());
        self.overlays.push_back((block, finished.into_overlay()));
        self.block = block;
        Ok(CommitOutput {
            root: self.root,
            storage_roots: vec![B256::ZERO; diff.accounts.len()],
        })
    }

    /// Whether blocks wait to be committed.
    pub fn checkpoint_due(&self) -> bool {
        !self.overlays.is_empty()
    }

    /// Commits the overlays of blocks up to `durable_head` (the chain database's head), oldest
    /// first. With `force` also when fewer than the configured interval wait.
    pub fn checkpoint(&mut self, durable_head: u64, force: bool) -> Result<(), StoreError> {
        let ready = self
            .overlays
            .iter()
            .take_while(|(b, _)| *b <= durable_head)
            .count();
        if ready == 0 || (!force && (ready as u64) < self.config.nomt_commit_interval) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        for _ in 0..ready {
            let Some((block, overlay)) = self.overlays.pop_front() else {
                break;
            };
            overlay
                .commit(&self.nomt)
                .map_err(|e| nomt_err(&format!("committing block {block}"), e))?;
            crate::crash_point("trie-checkpoint", block);
            self.durable.store(block, Ordering::Release);
        }
        tracing::debug!(blocks = ready, elapsed = ?started.elapsed(), "state tree committed");
        Ok(())
    }

    /// The block whose state NOMT holds on disk.
    pub fn durable_block(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The shared counter behind [`NomtCommitment::durable_block`].
    pub fn durable_handle(&self) -> Arc<AtomicU64> {
        self.durable.clone()
    }

    /// How opening brought the tree to the head.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// The proof of `address` and `slots` against the current root, in the format of
    /// [`encode_proof`].
    pub fn proof(&mut self, address: Address, slots: &[U256]) -> Result<AccountProof, StoreError> {
        let params = SessionParams::default()
            .overlay(self.overlays.iter().rev().map(|(_, o)| o))
            .map_err(|e| nomt_err("overlay chain", format!("{e:?}")))?;
        let session = self.nomt.begin_session(params);
        let hashed = keccak256(address);
        let key = bs::account_key(&hashed);
        let value = session.read(key).map_err(|e| nomt_err("reading", e))?;
        let account = match value.as_deref().and_then(bs::decode_account_value) {
            Some((nonce, balance, code_hash)) => TrieAccount {
                nonce,
                balance,
                storage_root: B256::ZERO,
                code_hash,
            },
            None if value.is_some() => {
                return Err(StoreError::Corrupt(format!("account leaf {hashed}")));
            }
            None => TrieAccount {
                nonce: 0,
                balance: U256::ZERO,
                storage_root: EMPTY_ROOT_HASH,
                code_hash: alloy_primitives::KECCAK256_EMPTY,
            },
        };
        let account_proof = encode_proof(&session.prove(key).map_err(|e| nomt_err("proving", e))?);
        let mut storage = Vec::with_capacity(slots.len());
        for slot in slots {
            let key = bs::slot_key(&hashed, &keccak256(slot.to_be_bytes::<32>()));
            let value = session
                .read(key)
                .map_err(|e| nomt_err("reading", e))?
                .map(|v| U256::from_be_slice(&v))
                .unwrap_or_default();
            let proof = encode_proof(&session.prove(key).map_err(|e| nomt_err("proving", e))?);
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
}

/// The `eth_getProof` node list of a NOMT path proof: first the terminal — `0x01 ‖ key (32) ‖
/// value hash (32)` for a leaf, `0x00` for an empty subtree — then the sibling hashes from the
/// root down, 32 bytes each. See `docs/RPC.md` for how to verify one.
pub fn encode_proof(proof: &PathProof) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(1 + proof.siblings.len());
    out.push(match &proof.terminal {
        PathProofTerminal::Leaf(leaf) => {
            let mut b = Vec::with_capacity(65);
            b.push(1);
            b.extend_from_slice(&leaf.key_path);
            b.extend_from_slice(&leaf.value_hash);
            Bytes::from(b)
        }
        PathProofTerminal::Terminator(_) => Bytes::from_static(&[0]),
    });
    out.extend(proof.siblings.iter().map(|s| Bytes::copy_from_slice(s)));
    out
}
