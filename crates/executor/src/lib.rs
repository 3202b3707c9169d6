//! Executes a block's ordered transactions against a read-only state view and returns each
//! transaction's outcome and the block's state diff.
//!
//! # Design
//! One trait, [`BlockExecutor`], with a reference implementation, [`SequentialExecutor`], that
//! runs transactions one after another on revm. Every other executor (the parallel one) must
//! produce exactly what the sequential one produces: the same outcomes, gas, logs and diff.
//!
//! State comes in through [`StateView`] (reads only; the executor never touches disk directly)
//! and goes out as a [`StateDiff`](pharos_primitives::StateDiff). Analysed contract code is cached
//! across blocks by code hash in a [`CodeCache`].
//!
//! A transaction that cannot be included (bad nonce, insufficient funds, gas above what is left
//! in the block) is reported as [`TxResult::Rejected`] and changes nothing; the block producer
//! leaves it out of the block.
#![warn(missing_docs)]

mod code_cache;
mod memory;
mod overlay;
pub mod parallel;
mod sequential;

use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, Log, U256};
use pharos_evm::BlockContext;
use pharos_primitives::{AccountState, RecoveredTx, StateDiff};

pub use code_cache::CodeCache;
pub use memory::MemoryState;
pub use overlay::Overlay;
pub use parallel::{ParallelConfig, ParallelExecutor, Strategy};
pub use sequential::SequentialExecutor;

/// A failure to read state: the backing store is broken or unreachable. Fatal for the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state read failed: {0}")]
pub struct StateError(pub String);

impl pharos_evm::revm::database_interface::DBErrorMarker for StateError {}

/// Read-only access to the state a block executes on top of.
pub trait StateView: Send + Sync {
    /// The account at `address`, or `None` when it does not exist.
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError>;
    /// The value of storage slot `slot` of `address` (zero when unset).
    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError>;
    /// The code whose keccak256 is `code_hash`.
    fn code(&self, code_hash: B256) -> Result<Option<Bytes>, StateError>;
    /// The hash of block `number` (only the 256 most recent are asked for).
    fn block_hash(&self, number: u64) -> Result<B256, StateError>;
}

/// Views behind references and shared pointers are views.
macro_rules! forward_state_view {
    ($($t:ty),*) => {$(
        impl<T: StateView + ?Sized> StateView for $t {
            fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
                (**self).account(address)
            }
            fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
                (**self).storage(address, slot)
            }
            fn code(&self, code_hash: B256) -> Result<Option<Bytes>, StateError> {
                (**self).code(code_hash)
            }
            fn block_hash(&self, number: u64) -> Result<B256, StateError> {
                (**self).block_hash(number)
            }
        }
    )*};
}
forward_state_view!(&T, Arc<T>);

/// What happened to one transaction of an executed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxResult {
    /// It ran (successfully or not) and belongs in the block.
    Included(TxOutcome),
    /// It could not be included; it changed nothing. The reason is revm's validation error.
    Rejected(String),
}

impl TxResult {
    /// The outcome, when the transaction was included.
    pub fn outcome(&self) -> Option<&TxOutcome> {
        match self {
            TxResult::Included(o) => Some(o),
            TxResult::Rejected(_) => None,
        }
    }
}

/// How an included transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Ran to completion.
    Success,
    /// Executed `REVERT`; `output` holds the revert data.
    Revert,
    /// Halted exceptionally (out of gas, invalid opcode, ...), with revm's reason.
    Halt(String),
}

/// The outcome of an included transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// How it ended.
    pub status: TxStatus,
    /// Gas charged to the sender (after refunds and the EIP-7623 floor).
    pub gas_used: u64,
    /// Logs emitted (empty unless it succeeded).
    pub logs: Vec<Log>,
    /// Return data, or revert data.
    pub output: Bytes,
    /// Contract created by a successful create.
    pub created: Option<Address>,
}

impl TxOutcome {
    /// Whether the receipt status is 1.
    pub fn success(&self) -> bool {
        self.status == TxStatus::Success
    }
}

/// What executing a block produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockOutput {
    /// One result per input transaction, in input order.
    pub results: Vec<TxResult>,
    /// The combined writes of all included transactions.
    pub diff: StateDiff,
    /// Total gas used by included transactions.
    pub gas_used: u64,
    /// How the block was executed and where the time went.
    pub stats: ExecStats,
}

/// How a block was executed: strategy, work done and time per phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// `sequential` (with the reason), `groups` (every access was predicted), `groups (checked)`
    /// (some were not, but no group saw another's writes), `groups+block-stm` (mispredictions
    /// repaired) or `block-stm`.
    pub strategy: &'static str,
    /// Worker threads.
    pub threads: usize,
    /// Groups the prediction formed.
    pub groups: usize,
    /// Transactions in the largest group.
    pub largest_group: usize,
    /// Transaction executions in total (the transaction count when nothing re-ran).
    pub executions: usize,
    /// Transactions whose group-phase reads crossed a group (mispredictions).
    pub mispredicted: usize,
    /// Block-STM validations that failed and aborted an incarnation.
    pub validation_aborts: usize,
    /// Times a transaction waited for another (read an ESTIMATE, or a predicted dependency).
    pub dependency_waits: usize,
    /// Locations predicted (when accuracy is measured).
    pub predicted_locations: usize,
    /// Locations actually accessed (when accuracy is measured).
    pub actual_locations: usize,
    /// Predicted locations that were accessed (when accuracy is measured).
    pub predicted_hits: usize,
    /// Microseconds predicting and partitioning.
    pub predict_us: u64,
    /// Microseconds preloading predicted state.
    pub preload_us: u64,
    /// Microseconds executing (group phase or Block-STM).
    pub execute_us: u64,
    /// Microseconds checking the group phase.
    pub validate_us: u64,
    /// Microseconds repairing mispredictions with Block-STM.
    pub repair_us: u64,
    /// Microseconds folding results into the diff.
    pub merge_us: u64,
    /// Microseconds in all.
    pub total_us: u64,
    /// Transactions whose prediction came from the preload stage (see [`Prepared`]).
    pub prepared_hits: usize,
}

impl ExecStats {
    /// Re-executions beyond one per transaction.
    pub fn reexecutions(&self, txs: usize) -> usize {
        self.executions.saturating_sub(txs)
    }

    /// Share of predicted locations that were accessed.
    pub fn precision(&self) -> Option<f64> {
        (self.predicted_locations > 0)
            .then(|| self.predicted_hits as f64 / self.predicted_locations as f64)
    }

    /// Share of accessed locations that were predicted.
    pub fn recall(&self) -> Option<f64> {
        (self.actual_locations > 0)
            .then(|| self.predicted_hits as f64 / self.actual_locations as f64)
    }
}

/// Why a block could not be executed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Reading state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// revm failed for a reason other than an invalid transaction (a bug or a bad header).
    #[error("evm error: {0}")]
    Evm(String),
}

/// What a block's preload stage learned before the block executes: access predictions by
/// transaction hash, made on an earlier state (they only schedule, so an outdated one costs time,
/// never correctness), with the predicted locations already read once from storage.
#[derive(Debug, Default)]
pub struct Prepared {
    pub(crate) predictions:
        alloy_primitives::map::HashMap<B256, parallel::predict::AccessPrediction>,
    /// Distinct locations read from storage ahead of execution (0 when the state answers from
    /// memory and reading ahead would only cost time).
    pub preloaded: usize,
    /// Microseconds spent predicting.
    pub predict_us: u64,
    /// Microseconds spent preloading.
    pub preload_us: u64,
}

impl Prepared {
    /// Transactions with a prediction.
    pub fn len(&self) -> usize {
        self.predictions.len()
    }

    /// No predictions at all.
    pub fn is_empty(&self) -> bool {
        self.predictions.is_empty()
    }

    /// Whether the transaction with `hash` has a prediction.
    pub fn contains(&self, hash: &B256) -> bool {
        self.predictions.contains_key(hash)
    }

    /// Adds what a later round of the preload stage found.
    pub fn merge(&mut self, other: Prepared) {
        self.predictions.extend(other.predictions);
        self.preloaded += other.preloaded;
        self.predict_us += other.predict_us;
        self.preload_us += other.preload_us;
    }
}

/// Executes the ordered transactions of one block.
pub trait BlockExecutor: Send + Sync {
    /// Runs `txs` in order on top of `state` in the block described by `block`.
    fn execute(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
    ) -> Result<BlockOutput, ExecError>;

    /// The preload stage: predicts what `txs` (the likely next block) will touch and reads it
    /// from `state` ahead of time. Executors that do not predict return nothing.
    fn prepare(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
    ) -> Result<Prepared, ExecError> {
        let _ = (block, txs, state);
        Ok(Prepared::default())
    }

    /// [`Self::execute`], reusing the predictions of `prepared` for the transactions it covers.
    /// The result is the same as without them.
    fn execute_prepared(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
        prepared: Prepared,
    ) -> Result<BlockOutput, ExecError> {
        let _ = prepared;
        self.execute(block, txs, state)
    }
}
