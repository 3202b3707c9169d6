//! Receipts as committed in a block: the typed Ethereum receipt with its bloom.
//!
//! Everything else an RPC receipt shows (gas used by this transaction, effective gas price,
//! created contract address, log positions) is derived from the block body and the receipt list
//! when read, so it is stored once.

use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxReceipt, TxType};
use alloy_primitives::{Address, Bloom, Log};

/// The receipt stored for each transaction: type, status, cumulative gas, logs and bloom.
pub type StoredReceipt = ReceiptEnvelope<Log>;

/// Builds the stored receipt of one transaction.
pub fn build_receipt(
    tx_type: TxType,
    success: bool,
    cumulative_gas_used: u64,
    logs: Vec<Log>,
) -> StoredReceipt {
    let receipt = Receipt {
        status: Eip658Value::Eip658(success),
        cumulative_gas_used,
        logs,
    };
    let bloom = receipt.bloom();
    ReceiptEnvelope::from_typed(tx_type, ReceiptWithBloom::new(receipt, bloom))
}

/// Facts about one transaction's receipt derived from the block it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxReceiptInfo {
    /// Gas used by this transaction alone.
    pub gas_used: u64,
    /// Index of its first log among all logs of the block.
    pub first_log_index: u64,
    /// Contract created by the transaction, if it was a create.
    pub contract_address: Option<Address>,
}

/// Union of the blooms of `receipts`: a block's `logsBloom`.
pub fn logs_bloom<'a>(receipts: impl IntoIterator<Item = &'a StoredReceipt>) -> Bloom {
    let mut bloom = Bloom::ZERO;
    for r in receipts {
        bloom.accrue_bloom(r.logs_bloom());
    }
    bloom
}
