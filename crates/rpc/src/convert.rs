//! Builds the JSON shapes of blocks, transactions, receipts and logs from stored data.

use std::sync::Arc;

use alloy_consensus::{Header, Transaction as _, transaction::Recovered};
use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::{
    Block as RpcBlock, BlockTransactions, Header as RpcHeader, Log as RpcLog,
    Transaction as RpcTransaction, TransactionReceipt,
};
use pharos_primitives::{RecoveredTx, StoredReceipt};

/// Where a transaction sits in a block.
#[derive(Debug, Clone, Copy)]
pub struct TxPosition {
    /// Block hash.
    pub block_hash: B256,
    /// Block number.
    pub block_number: u64,
    /// Index in the block.
    pub index: u64,
    /// Base fee of the block.
    pub base_fee: u64,
    /// Timestamp of the block.
    pub timestamp: u64,
}

/// A transaction object; `position` is `None` while it is pending.
pub fn transaction(tx: &RecoveredTx, position: Option<TxPosition>) -> RpcTransaction {
    let inner = Recovered::new_unchecked(tx.envelope().clone(), tx.sender());
    match position {
        Some(p) => RpcTransaction {
            inner,
            block_hash: Some(p.block_hash),
            block_number: Some(p.block_number),
            transaction_index: Some(p.index),
            effective_gas_price: Some(tx.effective_gas_price(p.base_fee)),
            block_timestamp: Some(p.timestamp),
        },
        None => RpcTransaction {
            inner,
            block_hash: None,
            block_number: None,
            transaction_index: None,
            effective_gas_price: None,
            block_timestamp: None,
        },
    }
}

/// A header object.
pub fn header(header: &Header, hash: B256, size: Option<u64>) -> RpcHeader {
    RpcHeader {
        hash,
        inner: header.clone(),
        total_difficulty: Some(U256::ZERO),
        size: size.map(U256::from),
    }
}

/// A block object with transaction hashes or full transactions.
pub fn block(header_: &Header, hash: B256, body: &[Arc<RecoveredTx>], full: bool) -> RpcBlock {
    let size = alloy_rlp::Encodable::length(header_) as u64
        + body.iter().map(|t| t.encoded_len() as u64 + 3).sum::<u64>()
        + 8;
    let transactions = if full {
        BlockTransactions::Full(
            body.iter()
                .enumerate()
                .map(|(i, tx)| {
                    transaction(
                        tx,
                        Some(TxPosition {
                            block_hash: hash,
                            block_number: header_.number,
                            index: i as u64,
                            base_fee: header_.base_fee_per_gas.unwrap_or_default(),
                            timestamp: header_.timestamp,
                        }),
                    )
                })
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(body.iter().map(|t| t.hash()).collect())
    };
    RpcBlock {
        header: header(header_, hash, Some(size)),
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Default::default()),
    }
}

/// The receipts of a block as RPC objects, with gas and log positions derived from the list.
pub fn receipts(
    header: &Header,
    hash: B256,
    body: &[Arc<RecoveredTx>],
    receipts: &[StoredReceipt],
) -> Vec<TransactionReceipt> {
    let base_fee = header.base_fee_per_gas.unwrap_or_default();
    let mut out = Vec::with_capacity(receipts.len());
    let mut previous_cumulative = 0u64;
    let mut log_index = 0u64;
    for (i, (tx, receipt)) in body.iter().zip(receipts).enumerate() {
        let gas_used = receipt.cumulative_gas_used() - previous_cumulative;
        previous_cumulative = receipt.cumulative_gas_used();
        let contract_address = if tx.to().is_none() {
            Some(tx.sender().create(tx.nonce()))
        } else {
            None
        };
        let inner = receipt.clone().map_logs(|log| {
            let rpc = RpcLog {
                inner: log,
                block_hash: Some(hash),
                block_number: Some(header.number),
                block_timestamp: Some(header.timestamp),
                transaction_hash: Some(tx.hash()),
                transaction_index: Some(i as u64),
                log_index: Some(log_index),
                removed: false,
            };
            log_index += 1;
            rpc
        });
        out.push(TransactionReceipt {
            inner,
            transaction_hash: tx.hash(),
            transaction_index: Some(i as u64),
            block_hash: Some(hash),
            block_number: Some(header.number),
            gas_used,
            effective_gas_price: tx.envelope().effective_gas_price(Some(base_fee)),
            blob_gas_used: None,
            blob_gas_price: None,
            from: tx.sender(),
            to: tx.to(),
            contract_address,
        });
    }
    out
}

/// All logs of a block as RPC objects, in order.
pub fn block_logs(
    header: &Header,
    hash: B256,
    body: &[Arc<RecoveredTx>],
    receipts: &[StoredReceipt],
) -> Vec<RpcLog> {
    let mut out = Vec::new();
    let mut log_index = 0u64;
    for (i, (tx, receipt)) in body.iter().zip(receipts).enumerate() {
        for log in receipt.logs() {
            out.push(RpcLog {
                inner: log.clone(),
                block_hash: Some(hash),
                block_number: Some(header.number),
                block_timestamp: Some(header.timestamp),
                transaction_hash: Some(tx.hash()),
                transaction_index: Some(i as u64),
                log_index: Some(log_index),
                removed: false,
            });
            log_index += 1;
        }
    }
    out
}
