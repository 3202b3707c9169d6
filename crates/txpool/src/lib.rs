//! Holds transactions that are waiting for a block: checks them on the way in, keeps each
//! sender's transactions in nonce order, replaces them on a higher fee, and hands the best ones
//! to the block producer.
//!
//! # Design
//! Admission is split so the expensive part runs without the pool lock and on every core:
//! 1. [`recover_batch`] decodes and recovers senders in parallel (rayon, libsecp256k1) —
//!    recovery happens exactly once and the sender travels with the transaction;
//! 2. [`TxPool::add`] runs the stateless checks, then the state checks (nonce, balance) against a
//!    [`StateView`] of the head, then takes the lock only for the map updates.
//!
//! Per sender, transactions form a nonce-ordered queue; those contiguous from the account's
//! nonce are *pending* (executable), the rest *queued*. Error messages follow geth's wording, so
//! tools that match on them (ethers, viem, cast) behave as they do against geth.
//!
//! The pool never orders blocks or executes transactions; it offers candidates in fee order.
#![warn(missing_docs)]

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BinaryHeap, HashMap},
    sync::Arc,
};

use alloy_primitives::{Address, B256, U256};
use parking_lot::Mutex;
use pharos_executor::{StateError, StateView};
use pharos_primitives::{RecoveredTx, TxDecodeError};
use rayon::prelude::*;

/// Why a transaction was not admitted. Messages follow geth's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Bytes did not decode or the signature did not recover.
    #[error(transparent)]
    Decode(#[from] TxDecodeError),
    /// Signed for another chain.
    #[error("invalid chain id for signer: have {have} want {want}")]
    ChainId {
        /// Chain id in the transaction.
        have: u64,
        /// This chain's id.
        want: u64,
    },
    /// Nonce below the account's nonce.
    #[error("nonce too low: address {address}, tx: {tx} state: {state}")]
    NonceTooLow {
        /// Sender.
        address: Address,
        /// Nonce of the transaction.
        tx: u64,
        /// Nonce of the account.
        state: u64,
    },
    /// Nonce at the maximum value.
    #[error("nonce has max value: address {0}")]
    NonceMax(Address),
    /// Balance below `gas * price + value`.
    #[error(
        "insufficient funds for gas * price + value: address {address} have {have} want {want}"
    )]
    InsufficientFunds {
        /// Sender.
        address: Address,
        /// Its balance.
        have: U256,
        /// What the transaction may cost.
        want: U256,
    },
    /// Gas limit below the intrinsic cost.
    #[error("intrinsic gas too low: have {have}, want {want}")]
    IntrinsicGas {
        /// Gas limit of the transaction.
        have: u64,
        /// Intrinsic gas.
        want: u64,
    },
    /// Gas limit above the block gas limit.
    #[error("exceeds block gas limit")]
    ExceedsBlockGasLimit,
    /// Gas limit above the per-transaction cap (EIP-7825).
    #[error("transaction gas limit too high (cap: {cap}, tx: {tx})")]
    GasLimitTooHigh {
        /// The cap.
        cap: u64,
        /// Gas limit of the transaction.
        tx: u64,
    },
    /// Tip above fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// Fee cap below the current base fee.
    #[error(
        "max fee per gas less than block base fee: address {address}, maxFeePerGas: {max_fee}, baseFee: {base_fee}"
    )]
    FeeCapBelowBaseFee {
        /// Sender.
        address: Address,
        /// The transaction's fee cap.
        max_fee: u128,
        /// The base fee of the next block.
        base_fee: u64,
    },
    /// Contract creation with init code above the EIP-3860 limit.
    #[error("max initcode size exceeded: code size {size}, limit {limit}")]
    InitCodeTooLarge {
        /// Size of the init code.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The same transaction is already in the pool.
    #[error("already known")]
    AlreadyKnown,
    /// A transaction with the same sender and nonce pays too little more.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The sender has too many transactions in the pool.
    #[error("account limit exceeded: address {address} has {count} transactions in the pool")]
    AccountLimit {
        /// Sender.
        address: Address,
        /// How many it has.
        count: usize,
    },
    /// The pool is full.
    #[error("txpool is full")]
    PoolFull,
    /// Reading the sender's account failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Limits and rules of the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Chain id transactions must be signed for.
    pub chain_id: u64,
    /// Block gas limit (no transaction may need more).
    pub block_gas_limit: u64,
    /// Most transactions in the pool.
    pub max_txs: usize,
    /// Most transactions per sender.
    pub max_per_sender: usize,
    /// Minimum fee increase, in percent, for a replacement.
    pub price_bump_percent: u128,
}

impl PoolConfig {
    /// Defaults for `chain_id` and `block_gas_limit`.
    pub fn new(chain_id: u64, block_gas_limit: u64) -> Self {
        Self {
            chain_id,
            block_gas_limit,
            max_txs: 1_000_000,
            max_per_sender: 16_384,
            price_bump_percent: 10,
        }
    }
}

/// Counts of pool contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Executable now (contiguous from the account nonce).
    pub pending: usize,
    /// Waiting for a nonce gap to fill.
    pub queued: usize,
}

/// One sender's pooled transactions, as `txpool_content` shows them.
#[derive(Debug, Clone)]
pub struct SenderContent {
    /// The sender.
    pub address: Address,
    /// Executable now, in nonce order.
    pub pending: Vec<Arc<RecoveredTx>>,
    /// Waiting behind a nonce gap.
    pub queued: Vec<Arc<RecoveredTx>>,
}

#[derive(Debug, Default)]
struct SenderQueue {
    /// The account's nonce as last seen in state.
    state_nonce: u64,
    txs: BTreeMap<u64, Arc<RecoveredTx>>,
}

impl SenderQueue {
    fn pending_count(&self) -> usize {
        let mut next = self.state_nonce;
        for nonce in self.txs.range(self.state_nonce..).map(|(n, _)| *n) {
            if nonce != next {
                break;
            }
            next += 1;
        }
        (next - self.state_nonce) as usize
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Pooled transactions with their arrival number (first come, first served among equal tips).
    by_hash: HashMap<B256, (u64, Arc<RecoveredTx>)>,
    arrivals: u64,
    senders: HashMap<Address, SenderQueue>,
    in_flight: InFlight,
}

/// Transactions of blocks that are executed but not yet committed (a pipelined producer): they
/// left the queues but the committed state does not show them yet, so lookups, nonces and
/// admission consult this. Entries outlive their block's commit by [`IN_FLIGHT_GRACE`] blocks:
/// a reader that took its state snapshot just before a commit and asks the pool just after must
/// still find them (a nonce or lookup never goes back).
#[derive(Debug, Default)]
struct InFlight {
    /// Hash → (block, transaction).
    txs: HashMap<B256, (u64, Arc<RecoveredTx>)>,
    /// Sender → (block, nonce after that block).
    nonces: HashMap<Address, (u64, u64)>,
    /// The newest committed block.
    committed: u64,
}

/// Committed blocks whose in-flight entries are kept (see [`InFlight`]).
const IN_FLIGHT_GRACE: u64 = 2;

impl InFlight {
    fn nonce(&self, sender: &Address) -> u64 {
        self.nonces.get(sender).map_or(0, |(_, n)| *n)
    }

    /// Whether `hash` belongs to a block not yet committed.
    fn uncommitted(&self, hash: &B256) -> bool {
        self.txs
            .get(hash)
            .is_some_and(|(block, _)| *block > self.committed)
    }
}

/// The transaction pool.
#[derive(Debug)]
pub struct TxPool {
    config: PoolConfig,
    inner: Mutex<Inner>,
    new_txs: tokio::sync::broadcast::Sender<Arc<RecoveredTx>>,
}

/// Decodes and recovers raw transactions in parallel on all cores; results keep input order.
pub fn recover_batch(raws: &[impl AsRef<[u8]> + Sync]) -> Vec<Result<RecoveredTx, TxDecodeError>> {
    if raws.len() < 4 {
        return raws
            .iter()
            .map(|r| RecoveredTx::decode_and_recover(r.as_ref()))
            .collect();
    }
    raws.par_iter()
        .map(|r| RecoveredTx::decode_and_recover(r.as_ref()))
        .collect()
}

impl TxPool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        let (new_txs, _) = tokio::sync::broadcast::channel(16_384);
        Self {
            config,
            inner: Mutex::new(Inner::default()),
            new_txs,
        }
    }

    /// The pool's rules.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Every admitted transaction, as it is admitted (for `newPendingTransactions`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<RecoveredTx>> {
        self.new_txs.subscribe()
    }

    /// Checks that need no state.
    pub fn check_stateless(&self, tx: &RecoveredTx, base_fee: u64) -> Result<(), PoolError> {
        if let Some(have) = tx.chain_id()
            && have != self.config.chain_id
        {
            return Err(PoolError::ChainId {
                have,
                want: self.config.chain_id,
            });
        }
        if tx.nonce() == u64::MAX {
            return Err(PoolError::NonceMax(tx.sender()));
        }
        if tx.gas_limit() > self.config.block_gas_limit {
            return Err(PoolError::ExceedsBlockGasLimit);
        }
        if tx.gas_limit() > pharos_evm::TX_GAS_LIMIT_CAP {
            return Err(PoolError::GasLimitTooHigh {
                cap: pharos_evm::TX_GAS_LIMIT_CAP,
                tx: tx.gas_limit(),
            });
        }
        if tx.max_priority_fee_per_gas() > tx.max_fee_per_gas() {
            return Err(PoolError::TipAboveFeeCap);
        }
        if tx.max_fee_per_gas() < u128::from(base_fee) {
            return Err(PoolError::FeeCapBelowBaseFee {
                address: tx.sender(),
                max_fee: tx.max_fee_per_gas(),
                base_fee,
            });
        }
        let limit = pharos_evm::revm::primitives::eip3860::MAX_INITCODE_SIZE;
        if tx.to().is_none() && tx.input().len() > limit {
            return Err(PoolError::InitCodeTooLarge {
                size: tx.input().len(),
                limit,
            });
        }
        let intrinsic = pharos_evm::intrinsic_gas(&pharos_evm::tx_env(tx));
        if tx.gas_limit() < intrinsic {
            return Err(PoolError::IntrinsicGas {
                have: tx.gas_limit(),
                want: intrinsic,
            });
        }
        Ok(())
    }

    /// Admits `tx` after all checks against `state` (the head state) and `base_fee` (of the next
    /// block). Returns its hash.
    pub fn add(
        &self,
        tx: RecoveredTx,
        state: &dyn StateView,
        base_fee: u64,
    ) -> Result<B256, PoolError> {
        self.check_stateless(&tx, base_fee)?;
        let sender = tx.sender();
        let mut account = state.account(sender)?.unwrap_or_default();
        {
            let inner = self.inner.lock();
            account.nonce = account.nonce.max(inner.in_flight.nonce(&sender));
            if inner.in_flight.uncommitted(&tx.hash()) {
                return Err(PoolError::AlreadyKnown);
            }
        }
        if tx.nonce() < account.nonce {
            return Err(PoolError::NonceTooLow {
                address: sender,
                tx: tx.nonce(),
                state: account.nonce,
            });
        }
        let cost = tx.max_cost();
        if account.balance < cost {
            return Err(PoolError::InsufficientFunds {
                address: sender,
                have: account.balance,
                want: cost,
            });
        }
        let hash = tx.hash();
        let tx = Arc::new(tx);
        {
            let mut inner = self.inner.lock();
            if inner.by_hash.contains_key(&hash) {
                return Err(PoolError::AlreadyKnown);
            }
            let total = inner.by_hash.len();
            let queue = inner.senders.entry(sender).or_default();
            queue.state_nonce = queue.state_nonce.max(account.nonce);
            let replaced = match queue.txs.get(&tx.nonce()) {
                Some(old) => {
                    let bump = 100 + self.config.price_bump_percent;
                    let enough =
                        |new: u128, old: u128| new.saturating_mul(100) >= old.saturating_mul(bump);
                    if !enough(tx.max_fee_per_gas(), old.max_fee_per_gas())
                        || !enough(
                            tx.max_priority_fee_per_gas(),
                            old.max_priority_fee_per_gas(),
                        )
                    {
                        return Err(PoolError::ReplacementUnderpriced);
                    }
                    Some(old.hash())
                }
                None => {
                    if queue.txs.len() >= self.config.max_per_sender {
                        return Err(PoolError::AccountLimit {
                            address: sender,
                            count: queue.txs.len(),
                        });
                    }
                    if total >= self.config.max_txs {
                        return Err(PoolError::PoolFull);
                    }
                    None
                }
            };
            queue.txs.insert(tx.nonce(), tx.clone());
            if let Some(old) = replaced {
                inner.by_hash.remove(&old);
            }
            let arrival = inner.arrivals;
            inner.arrivals += 1;
            inner.by_hash.insert(hash, (arrival, tx.clone()));
        }
        // Nobody listening is fine.
        let _ = self.new_txs.send(tx);
        Ok(hash)
    }

    /// The pooled transaction with `hash`.
    pub fn get(&self, hash: &B256) -> Option<Arc<RecoveredTx>> {
        let inner = self.inner.lock();
        inner
            .by_hash
            .get(hash)
            .or_else(|| inner.in_flight.txs.get(hash))
            .map(|(_, tx)| tx.clone())
    }

    /// The nonce after the sender's executed transactions not yet committed (0 if none). A
    /// caller that reads this *before* taking its state snapshot never misses a transaction:
    /// either it is still in flight here, or its block was committed before the snapshot.
    pub fn in_flight_nonce(&self, sender: Address) -> u64 {
        self.inner.lock().in_flight.nonce(&sender)
    }

    /// The nonce the sender's next transaction should carry: the account nonce plus its pending
    /// transactions.
    pub fn pending_nonce(&self, sender: Address, state_nonce: u64) -> u64 {
        let inner = self.inner.lock();
        let state_nonce = state_nonce.max(inner.in_flight.nonce(&sender));
        match inner.senders.get(&sender) {
            None => state_nonce,
            Some(q) => {
                let mut next = state_nonce;
                while q.txs.contains_key(&next) {
                    next += 1;
                }
                next
            }
        }
    }

    /// Number of transactions in the pool.
    pub fn len(&self) -> usize {
        self.inner.lock().by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pending and queued counts.
    pub fn status(&self) -> PoolStatus {
        let inner = self.inner.lock();
        let pending: usize = inner.senders.values().map(SenderQueue::pending_count).sum();
        PoolStatus {
            pending,
            queued: inner.by_hash.len() - pending,
        }
    }

    /// All pooled transactions grouped by sender, split into pending and queued.
    pub fn content(&self) -> Vec<SenderContent> {
        let inner = self.inner.lock();
        inner
            .senders
            .iter()
            .map(|(address, q)| {
                let n = q.pending_count();
                let mut pending = Vec::new();
                let mut queued = Vec::new();
                for (nonce, tx) in &q.txs {
                    if *nonce >= q.state_nonce && pending.len() < n {
                        pending.push(tx.clone());
                    } else {
                        queued.push(tx.clone());
                    }
                }
                SenderContent {
                    address: *address,
                    pending,
                    queued,
                }
            })
            .collect()
    }

    /// Executable transactions for the next block, best tip first across senders (first come,
    /// first served among equal tips) and nonce order within a sender, until their gas limits fill `gas_limit` or `max_count` is reached.
    pub fn best_transactions(
        &self,
        base_fee: u64,
        gas_limit: u64,
        max_count: usize,
    ) -> Vec<Arc<RecoveredTx>> {
        self.best_after(base_fee, gas_limit, max_count, &HashMap::default(), &|_| {
            true
        })
    }

    /// The best transactions of the senders `include` accepts, each sender continuing after
    /// its nonce in `next_nonce` (transactions already handed out and not yet executed): a
    /// validator cutting the next batch of its lane.
    pub fn best_transactions_for(
        &self,
        next_nonce: &HashMap<Address, u64>,
        base_fee: u64,
        gas_limit: u64,
        max_count: usize,
        include: &dyn Fn(&Address) -> bool,
    ) -> Vec<Arc<RecoveredTx>> {
        self.best_after(base_fee, gas_limit, max_count, next_nonce, include)
    }

    /// Keeps in `next_nonce` only senders whose nonce in state is still below the entry's
    /// nonce (`nonce_of` reads it from the value).
    pub fn retain_ahead<V>(
        &self,
        next_nonce: &mut HashMap<Address, V>,
        nonce_of: impl Fn(&V) -> u64,
    ) {
        let inner = self.inner.lock();
        next_nonce.retain(|sender, v| {
            inner
                .senders
                .get(sender)
                .is_some_and(|q| q.state_nonce < nonce_of(v))
        });
    }

    /// A look ahead: what [`Self::best_transactions`] would likely return for the block after
    /// one made of `ahead`, which is still executing (each sender continues after its last
    /// nonce in `ahead`). Nothing is reserved; the pipeline's preload stage uses it to predict
    /// and read the next block's state early.
    pub fn best_transactions_after(
        &self,
        ahead: &[Arc<RecoveredTx>],
        base_fee: u64,
        gas_limit: u64,
        max_count: usize,
    ) -> Vec<Arc<RecoveredTx>> {
        let mut next: HashMap<Address, u64> = HashMap::default();
        for tx in ahead {
            let n = next.entry(tx.sender()).or_default();
            *n = (*n).max(tx.nonce() + 1);
        }
        self.best_after(base_fee, gas_limit, max_count, &next, &|_| true)
    }

    fn best_after(
        &self,
        base_fee: u64,
        gas_limit: u64,
        max_count: usize,
        next_nonce: &HashMap<Address, u64>,
        include: &dyn Fn(&Address) -> bool,
    ) -> Vec<Arc<RecoveredTx>> {
        struct Candidate {
            tip: u128,
            arrival: u64,
            tx: Arc<RecoveredTx>,
        }
        impl PartialEq for Candidate {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == Ordering::Equal
            }
        }
        impl Eq for Candidate {}
        impl PartialOrd for Candidate {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Candidate {
            fn cmp(&self, other: &Self) -> Ordering {
                self.tip
                    .cmp(&other.tip)
                    .then_with(|| other.arrival.cmp(&self.arrival))
            }
        }

        let inner = self.inner.lock();
        let arrival = |tx: &RecoveredTx| inner.by_hash.get(&tx.hash()).map_or(u64::MAX, |e| e.0);
        let mut heap = BinaryHeap::new();
        for (sender, q) in &inner.senders {
            if !include(sender) {
                continue;
            }
            let first = match next_nonce.get(sender) {
                Some(n) => q.state_nonce.max(*n),
                None => q.state_nonce,
            };
            if let Some(tx) = q.txs.get(&first)
                && let Some(tip) = tx.effective_tip(base_fee)
            {
                heap.push(Candidate {
                    tip,
                    arrival: arrival(tx),
                    tx: tx.clone(),
                });
            }
        }
        let mut out = Vec::new();
        let mut gas = 0u64;
        while let Some(Candidate { tx, .. }) = heap.pop() {
            if out.len() >= max_count {
                break;
            }
            if gas + tx.gas_limit() > gas_limit {
                // This sender's chain stops here; others may still fit.
                continue;
            }
            gas += tx.gas_limit();
            let next_nonce = tx.nonce() + 1;
            let sender = tx.sender();
            out.push(tx);
            if let Some(next) = inner
                .senders
                .get(&sender)
                .and_then(|q| q.txs.get(&next_nonce))
                && let Some(tip) = next.effective_tip(base_fee)
            {
                heap.push(Candidate {
                    tip,
                    arrival: arrival(next),
                    tx: next.clone(),
                });
            }
        }
        out
    }

    /// Block `number` is committed: the committed state shows its transactions now.
    pub fn on_committed(&self, number: u64) {
        let mut inner = self.inner.lock();
        let in_flight = &mut inner.in_flight;
        in_flight.committed = in_flight.committed.max(number);
        in_flight
            .txs
            .retain(|_, (block, _)| *block + IN_FLIGHT_GRACE > number);
        in_flight
            .nonces
            .retain(|_, (block, _)| *block + IN_FLIGHT_GRACE > number);
    }

    /// Executed transactions not yet committed.
    pub fn in_flight(&self) -> usize {
        let inner = self.inner.lock();
        let committed = inner.in_flight.committed;
        inner
            .in_flight
            .txs
            .values()
            .filter(|(block, _)| *block > committed)
            .count()
    }

    /// Updates the pool after block `number` executed: `included` left it, `rejected` are
    /// dropped, and each sender's nonce is re-read from `state` (the state after the block, which
    /// may not be committed yet). The included transactions stay findable by hash and count
    /// towards their senders' nonces until [`TxPool::on_committed`] for `number`.
    pub fn on_executed(
        &self,
        number: u64,
        included: &[Arc<RecoveredTx>],
        rejected: &[Arc<RecoveredTx>],
        state: &dyn StateView,
    ) -> Result<(), StateError> {
        let mut senders: Vec<Address> = included
            .iter()
            .chain(rejected)
            .map(|t| t.sender())
            .collect();
        senders.sort_unstable();
        senders.dedup();
        let mut nonces = Vec::with_capacity(senders.len());
        for s in &senders {
            nonces.push(state.account(*s)?.map(|a| a.nonce).unwrap_or(0));
        }
        let mut inner = self.inner.lock();
        for tx in included {
            inner.in_flight.txs.insert(tx.hash(), (number, tx.clone()));
        }
        for (sender, nonce) in senders.iter().zip(&nonces) {
            inner.in_flight.nonces.insert(*sender, (number, *nonce));
        }
        for tx in rejected {
            let hash = tx.hash();
            if inner.by_hash.remove(&hash).is_some()
                && let Some(q) = inner.senders.get_mut(&tx.sender())
                && q.txs.get(&tx.nonce()).is_some_and(|t| t.hash() == hash)
            {
                q.txs.remove(&tx.nonce());
            }
        }
        for (sender, nonce) in senders.into_iter().zip(nonces) {
            let Some(q) = inner.senders.get_mut(&sender) else {
                continue;
            };
            q.state_nonce = nonce;
            let stale: Vec<B256> = q.txs.range(..nonce).map(|(_, t)| t.hash()).collect();
            q.txs = q.txs.split_off(&nonce);
            let empty = q.txs.is_empty();
            for h in stale {
                inner.by_hash.remove(&h);
            }
            if empty {
                inner.senders.remove(&sender);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
