//! The reference executor: transactions one after another, in order, on one thread.

use std::sync::Arc;

use pharos_evm::{
    BlockContext, build_evm_with_cfg, cfg_env_with_spec,
    revm::{
        ExecuteCommitEvm,
        context::result::{EVMError, ExecutionResult},
        primitives::hardfork::SpecId,
    },
    tx_env,
};
use pharos_primitives::RecoveredTx;

use crate::{
    BlockExecutor, BlockOutput, CodeCache, ExecError, Overlay, StateView, TxOutcome, TxResult,
    TxStatus,
};

/// Executes transactions strictly in order. The definition of correct for every other executor.
#[derive(Debug, Clone)]
pub struct SequentialExecutor {
    chain_id: u64,
    spec: SpecId,
    codes: Arc<CodeCache>,
}

impl SequentialExecutor {
    /// An executor for chain `chain_id` under Pharos's hardfork, sharing analysed code through
    /// `codes`.
    pub fn new(chain_id: u64, codes: Arc<CodeCache>) -> Self {
        Self::with_spec(chain_id, pharos_evm::SPEC, codes)
    }

    /// An executor under another hardfork (reference tests).
    pub fn with_spec(chain_id: u64, spec: SpecId, codes: Arc<CodeCache>) -> Self {
        Self {
            chain_id,
            spec,
            codes,
        }
    }
}

/// Turns revm's result into ours.
pub(crate) fn outcome_of(result: ExecutionResult) -> TxOutcome {
    let gas_used = result.tx_gas_used();
    match result {
        ExecutionResult::Success { logs, output, .. } => TxOutcome {
            status: TxStatus::Success,
            gas_used,
            logs,
            created: output.address().copied(),
            output: output.into_data(),
        },
        ExecutionResult::Revert { output, .. } => TxOutcome {
            status: TxStatus::Revert,
            gas_used,
            logs: Vec::new(),
            output,
            created: None,
        },
        ExecutionResult::Halt { reason, .. } => TxOutcome {
            status: TxStatus::Halt(format!("{reason:?}")),
            gas_used,
            logs: Vec::new(),
            output: Default::default(),
            created: None,
        },
    }
}

impl BlockExecutor for SequentialExecutor {
    fn execute(
        &self,
        block: &BlockContext,
        txs: &[Arc<RecoveredTx>],
        state: &dyn StateView,
    ) -> Result<BlockOutput, ExecError> {
        let started = std::time::Instant::now();
        let overlay = Overlay::new(state, &self.codes);
        let mut evm =
            build_evm_with_cfg(overlay, cfg_env_with_spec(self.chain_id, self.spec), block);
        let mut results = Vec::with_capacity(txs.len());
        let mut gas_used = 0u64;
        for tx in txs {
            if tx.gas_limit() > block.gas_limit - gas_used {
                results.push(TxResult::Rejected(format!(
                    "gas limit reached: tx gas {} above the {} left in the block",
                    tx.gas_limit(),
                    block.gas_limit - gas_used
                )));
                continue;
            }
            match evm.transact_commit(tx_env(tx)) {
                Ok(result) => {
                    let outcome = outcome_of(result);
                    gas_used += outcome.gas_used;
                    results.push(TxResult::Included(outcome));
                }
                Err(EVMError::Transaction(e)) => results.push(TxResult::Rejected(e.to_string())),
                Err(EVMError::Database(e)) => return Err(ExecError::State(e)),
                Err(other) => return Err(ExecError::Evm(other.to_string())),
            }
        }
        let diff = evm.ctx.journaled_state.database.into_diff();
        Ok(BlockOutput {
            stats: crate::ExecStats {
                strategy: "sequential",
                threads: 1,
                executions: txs.len(),
                total_us: started.elapsed().as_micros() as u64,
                ..Default::default()
            },
            results,
            diff,
            gas_used,
        })
    }
}
