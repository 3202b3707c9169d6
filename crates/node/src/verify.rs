//! Offline check of a data directory (`pharos db verify`): the head's state root equals a full
//! recomputation over the flat state, every transaction is found by its hash where its block
//! holds it, and every block, re-executed from genesis with the
//! sequential executor on a fresh store, yields the same header (state root, receipts root, gas
//! used, logs bloom) and so the same hash.

use std::{path::Path, sync::Arc};

use pharos_evm::BlockContext;
use pharos_executor::{BlockExecutor, CodeCache, SequentialExecutor, TxResult};
use pharos_primitives::{ChainSpec, receipt::build_receipt};
use pharos_storage::Store;

/// What [`verify_chain`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Head block number.
    pub head: u64,
    /// Transactions re-executed.
    pub transactions: usize,
}

/// Verifies `store` (see the module documentation). `scratch` is an empty directory for the
/// replay's own store; `progress` is called after each block.
pub fn verify_chain(
    store: &Store,
    spec: &ChainSpec,
    scratch: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, String> {
    store.flush().map_err(|e| format!("flushing: {e}"))?;
    let snap = store.snapshot().map_err(|e| e.to_string())?;
    let head = snap.head().header.clone();
    let computed = snap
        .compute_state_root(spec.pharos().state_commitment)
        .map_err(|e| e.to_string())?;
    if computed != head.state_root {
        return Err(format!(
            "flat state root {computed} differs from head block {}'s state root {}",
            head.number, head.state_root
        ));
    }
    let replay = Store::open(&scratch.join("replay.redb"), spec).map_err(|e| e.to_string())?;
    let executor = SequentialExecutor::new(spec.chain_id(), Arc::new(CodeCache::default()));
    let mut transactions = 0;
    for number in 1..=head.number {
        let header = snap
            .header(number)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("block {number} has no header"))?;
        let body = snap
            .body(number)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("block {number} has no body"))?;
        for (i, tx) in body.iter().enumerate() {
            let location = snap.tx_location(tx.hash()).map_err(|e| e.to_string())?;
            if location != Some((number, i as u32)) {
                return Err(format!(
                    "transaction {} of block {number} at index {i} is indexed at {location:?}",
                    tx.hash()
                ));
            }
        }
        let state = replay.snapshot().map_err(|e| e.to_string())?;
        let out = executor
            .execute(&BlockContext::from_header(&header), &body, &state)
            .map_err(|e| format!("re-executing block {number}: {e}"))?;
        let mut receipts = Vec::with_capacity(body.len());
        let mut cumulative = 0;
        for (tx, result) in body.iter().zip(out.results) {
            match result {
                TxResult::Included(o) => {
                    cumulative += o.gas_used;
                    receipts.push(build_receipt(tx.tx_type(), o.success(), cumulative, o.logs));
                }
                TxResult::Rejected(reason) => {
                    return Err(format!(
                        "block {number} holds transaction {} that is invalid: {reason}",
                        tx.hash()
                    ));
                }
            }
        }
        transactions += body.len();
        let mut again = header.clone();
        again.state_root = Default::default();
        let block = replay
            .commit_block(again, body, receipts, &out.diff)
            .map_err(|e| format!("block {number}: {e}"))?;
        if block.header != header {
            return Err(format!(
                "block {number} differs from its re-execution: stored state root {}, \
                 receipts root {}, gas {}; re-executed {}, {}, {}",
                header.state_root,
                header.receipts_root,
                header.gas_used,
                block.header.state_root,
                block.header.receipts_root,
                block.header.gas_used
            ));
        }
        progress(number, head.number);
    }
    Ok(VerifyReport {
        head: head.number,
        transactions,
    })
}
