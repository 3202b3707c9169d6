//! State at scale: commit cost per block with millions of accounts in the store.
//!
//! Loads `accounts` funded accounts, each also holding a balance in one ERC-20 token (so the
//! token's storage trie is as large as the account trie), in bulk blocks through
//! [`Store::commit_block`]. Then commits `blocks` blocks shaped like `txs` ERC-20 transfers:
//! `txs` random senders (nonce and balance change), `2 × txs` token balance slots (sender and
//! recipient), the fee recipient, and a body of `txs` signed transactions with one-log receipts.
//! The diffs are synthetic (nothing is executed): the benchmark measures what happens after
//! execution — hashing keys, merkleization, and the flush of flat state, journal, body, receipts
//! and indexes — with the chain's own store and trie.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use alloy_consensus::{Header, TxType};
use alloy_primitives::{Address, B256, Bytes, Log, LogData, U256, keccak256};
use pharos_primitives::{
    AccountChange, AccountState, ChainSpec, StateDiff, StoredReceipt, receipt::build_receipt,
};
use pharos_storage::{CommitTimings, Store, StoreConfig};
use pharos_workload::{TxBuilder, Wallet, erc20};
use rayon::prelude::*;
use serde::Serialize;

/// What to run.
#[derive(Debug, Clone)]
pub struct StateBench {
    /// Funded accounts (each also an ERC-20 holder).
    pub accounts: u64,
    /// Measured blocks.
    pub blocks: u64,
    /// ERC-20 transfers per measured block.
    pub txs: usize,
    /// Accounts per bulk-load block.
    pub load_batch: u64,
    /// Where the store goes (emptied first).
    pub datadir: PathBuf,
    /// Store settings.
    pub config: StoreConfig,
    /// The state commitment measured.
    pub commitment: pharos_primitives::StateCommitment,
}

/// One measured block.
#[derive(Debug, Clone, Serialize)]
pub struct BlockTiming {
    /// Block number.
    pub number: u64,
    /// Account and slot changes.
    pub keys: usize,
    /// Hashing keys, ms.
    pub hashing_ms: f64,
    /// Trie update and rehash, ms.
    pub merkleize_ms: f64,
    /// Flat state, journal, block data, durable commit, ms.
    pub flush_ms: f64,
    /// Checkpoint hand-over (waits for the previous one), ms.
    pub checkpoint_ms: f64,
    /// Everything, ms.
    pub total_ms: f64,
}

impl From<(u64, CommitTimings)> for BlockTiming {
    fn from((number, t): (u64, CommitTimings)) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Self {
            number,
            keys: t.keys,
            hashing_ms: ms(t.hashing),
            merkleize_ms: ms(t.merkleize),
            flush_ms: ms(t.flush),
            checkpoint_ms: ms(t.checkpoint),
            total_ms: ms(t.total),
        }
    }
}

/// Results.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    /// Accounts in state (besides the token contract and the fee recipient).
    pub accounts: u64,
    /// Storage slots in state.
    pub slots: u64,
    /// Seconds to load them.
    pub load_secs: f64,
    /// Measured blocks.
    pub blocks: Vec<BlockTiming>,
    /// Median of merkleize + flush over the measured blocks, ms.
    pub median_merkleize_flush_ms: f64,
    /// Median total commit time, ms.
    pub median_total_ms: f64,
    /// Bytes allocated on disk (chain database, flat state and trie node store) after the run.
    pub disk_bytes: u64,
    /// Of which the flat state (`<db>.state`).
    pub flat_disk_bytes: u64,
    /// Of which the trie node store (`<db>.trie`).
    pub trie_disk_bytes: u64,
    /// `disk_bytes / accounts`.
    pub disk_bytes_per_account: f64,
    /// Resident memory after loading, MiB.
    pub rss_after_load_mib: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Trie nodes in memory at the end: (branches, leaves, blinded) of the account trie.
    pub account_trie_in_memory: (usize, usize, usize),
}

const TOKEN: Address = Address::repeat_byte(0x70);
const COINBASE: Address = Address::repeat_byte(0xc0);

fn account(i: u64) -> Address {
    Address::from_word(keccak256(i.to_be_bytes()))
}

/// Storage slot of `holder` in a Solidity `mapping(address => uint256)` at slot 0.
fn balance_slot(holder: Address) -> U256 {
    let mut buf = [0u8; 64];
    buf[12..32].copy_from_slice(holder.as_slice());
    U256::from_be_bytes(keccak256(buf).0)
}

/// Reads a `Vm*` line of /proc/self/status in MiB.
pub fn proc_status_mib(field: &str) -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Bytes the files under `dir` occupy on disk.
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| file_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes the file occupies on disk (allocated blocks, not its apparent length: redb
/// pre-allocates its file and leaves holes).
fn file_size(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl StateBench {
    /// Runs the benchmark; `progress` hears about each phase.
    pub fn run(&self, mut progress: impl FnMut(&str)) -> Result<StateReport, String> {
        let spec = ChainSpec::dev_with(1337, self.commitment).map_err(|e| e.to_string())?;
        if self.datadir.exists() {
            std::fs::remove_dir_all(&self.datadir)
                .map_err(|e| format!("clearing {}: {e}", self.datadir.display()))?;
        }
        std::fs::create_dir_all(&self.datadir).map_err(|e| e.to_string())?;
        let db = self.datadir.join("chain.redb");
        let store = Store::open_with(&db, &spec, self.config.clone()).map_err(|e| e.to_string())?;

        let started = Instant::now();
        let token_state = AccountState {
            nonce: 1,
            balance: U256::ZERO,
            code_hash: keccak256([0x60, 0x00]),
        };
        let mut loaded = 0u64;
        while loaded < self.accounts {
            let end = (loaded + self.load_batch).min(self.accounts);
            let mut diff = StateDiff::default();
            if loaded == 0 {
                diff.codes
                    .insert(token_state.code_hash, Bytes::from_static(&[0x60, 0x00]));
            }
            let holders: Vec<(Address, U256)> = (loaded..end)
                .into_par_iter()
                .map(|i| {
                    let a = account(i);
                    (a, balance_slot(a))
                })
                .collect();
            let mut token = AccountChange {
                info: Some(token_state),
                ..Default::default()
            };
            for (a, slot) in &holders {
                diff.accounts.insert(
                    *a,
                    AccountChange {
                        info: Some(AccountState::with_balance(U256::from(10u128.pow(21)))),
                        ..Default::default()
                    },
                );
                token.storage.insert(*slot, U256::from(10u128.pow(18)));
            }
            diff.accounts.insert(TOKEN, token);
            commit(&store, &diff, Vec::new(), Vec::new())?;
            loaded = end;
            progress(&format!(
                "loaded {loaded}/{} accounts ({:.0}s)",
                self.accounts,
                started.elapsed().as_secs_f64()
            ));
        }
        store.flush().map_err(|e| e.to_string())?;
        let load_secs = started.elapsed().as_secs_f64();
        let rss_after_load_mib = proc_status_mib("VmRSS:");

        let wallets: Vec<Wallet> = (0..64).map(Wallet::from_index).collect();
        let builder = TxBuilder::new(spec.chain_id());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut blocks = Vec::new();
        for b in 0..self.blocks {
            let mut diff = StateDiff::default();
            let mut token = AccountChange {
                info: Some(token_state),
                ..Default::default()
            };
            let pairs: Vec<(u64, u64)> = (0..self.txs)
                .map(|_| (rng.next() % self.accounts, rng.next() % self.accounts))
                .collect();
            for (j, (from, to)) in pairs.iter().enumerate() {
                let from = account(*from);
                diff.accounts.insert(
                    from,
                    AccountChange {
                        info: Some(AccountState {
                            nonce: b + 1,
                            balance: U256::from(
                                10u128.pow(21) - u128::from(b + 1) * 10u128.pow(15),
                            ),
                            code_hash: alloy_primitives::KECCAK256_EMPTY,
                        }),
                        ..Default::default()
                    },
                );
                token
                    .storage
                    .insert(balance_slot(from), U256::from(10u128.pow(18) - j as u128));
                token.storage.insert(
                    balance_slot(account(*to)),
                    U256::from(10u128.pow(18) + j as u128),
                );
            }
            diff.accounts.insert(TOKEN, token);
            diff.accounts.insert(
                COINBASE,
                AccountChange {
                    info: Some(AccountState::with_balance(U256::from(b + 1))),
                    ..Default::default()
                },
            );
            let per_wallet = self.txs.div_ceil(wallets.len()) as u64;
            let signed: Vec<_> = (0..self.txs)
                .into_par_iter()
                .map(|j| {
                    let w = &wallets[j % wallets.len()];
                    let nonce = b * per_wallet + (j / wallets.len()) as u64;
                    let to = account(pairs[j].1);
                    let tx = builder.eip1559(
                        nonce,
                        alloy_primitives::TxKind::Call(TOKEN),
                        U256::ZERO,
                        erc20::transfer(to, U256::from(1)),
                        60_000,
                    );
                    std::sync::Arc::new(w.sign_recovered(tx))
                })
                .collect();
            let receipts: Vec<StoredReceipt> = (0..self.txs)
                .map(|j| {
                    let log = Log {
                        address: TOKEN,
                        data: LogData::new_unchecked(
                            vec![B256::repeat_byte(0xdd), B256::ZERO, B256::ZERO],
                            Bytes::from(U256::from(1).to_be_bytes::<32>().to_vec()),
                        ),
                    };
                    build_receipt(TxType::Eip1559, true, 35_000 * (j as u64 + 1), vec![log])
                })
                .collect();
            let number = commit(&store, &diff, signed, receipts)?;
            let timing = BlockTiming::from((number, store.last_commit_timings()));
            progress(&format!(
                "block {number}: {} keys, merkleize {:.1} ms, flush {:.1} ms, total {:.1} ms",
                timing.keys, timing.merkleize_ms, timing.flush_ms, timing.total_ms
            ));
            blocks.push(timing);
        }
        store.flush().map_err(|e| e.to_string())?;
        let (accounts_mem, _, _) = store.trie_memory().unwrap_or_default();
        let trie_disk_bytes = file_size(&self.datadir.join("chain.redb.trie"));
        let flat_disk_bytes = file_size(&self.datadir.join("chain.redb.state"));
        let nomt_disk_bytes = dir_size(&self.datadir.join("chain.redb.trie.nomt"));
        let trie_disk_bytes = trie_disk_bytes + nomt_disk_bytes;
        let disk_bytes = file_size(&db) + flat_disk_bytes + trie_disk_bytes;
        Ok(StateReport {
            accounts: self.accounts,
            slots: self.accounts,
            load_secs,
            median_merkleize_flush_ms: median(
                blocks.iter().map(|b| b.merkleize_ms + b.flush_ms).collect(),
            ),
            median_total_ms: median(blocks.iter().map(|b| b.total_ms).collect()),
            blocks,
            disk_bytes,
            flat_disk_bytes,
            trie_disk_bytes,
            disk_bytes_per_account: disk_bytes as f64 / self.accounts.max(1) as f64,
            rss_after_load_mib,
            peak_rss_mib: proc_status_mib("VmHWM:"),
            account_trie_in_memory: (
                accounts_mem.branches,
                accounts_mem.leaves,
                accounts_mem.blinded,
            ),
        })
    }
}

fn commit(
    store: &Store,
    diff: &StateDiff,
    body: Vec<std::sync::Arc<pharos_primitives::RecoveredTx>>,
    receipts: Vec<StoredReceipt>,
) -> Result<u64, String> {
    let head = store.head();
    let header = Header {
        parent_hash: head.hash,
        number: head.header.number + 1,
        gas_limit: head.header.gas_limit,
        base_fee_per_gas: head.header.base_fee_per_gas,
        timestamp: head.header.timestamp + 1,
        ..Default::default()
    };
    let block = store
        .commit_block(header, body, receipts, diff)
        .map_err(|e| e.to_string())?;
    Ok(block.number())
}
