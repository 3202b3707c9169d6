//! Blocks: an Ethereum header, its hash, and the transactions with their senders.

use std::sync::Arc;

use alloy_consensus::Header;
use alloy_eips::Encodable2718;
use alloy_primitives::B256;
use alloy_trie::root::ordered_trie_root_with_encoder;

use crate::{RecoveredTx, receipt::StoredReceipt};

/// The transactions of a block, shared cheaply between the pool, execution, storage and RPC.
pub type BlockBody = Vec<Arc<RecoveredTx>>;

/// A sealed block: header, its hash, and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// keccak256 of the header's RLP.
    pub hash: B256,
    /// Transactions, in execution order.
    pub body: BlockBody,
}

impl Block {
    /// Seals `header` (computes its hash) and pairs it with `body`.
    pub fn seal(header: Header, body: BlockBody) -> Self {
        let hash = header.hash_slow();
        Self { header, hash, body }
    }

    /// Block number.
    pub fn number(&self) -> u64 {
        self.header.number
    }
}

/// Root of the transactions trie (keys: RLP of the index, values: EIP-2718 encodings).
pub fn transactions_root(body: &[Arc<RecoveredTx>]) -> B256 {
    ordered_trie_root_with_encoder(body, |tx, buf| tx.envelope().encode_2718(buf))
}

/// Root of the receipts trie (keys: RLP of the index, values: EIP-2718 encoded receipts).
pub fn receipts_root(receipts: &[StoredReceipt]) -> B256 {
    ordered_trie_root_with_encoder(receipts, |r, buf| r.encode_2718(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::EMPTY_ROOT_HASH;

    #[test]
    fn empty_roots_are_the_empty_trie() {
        assert_eq!(transactions_root(&[]), EMPTY_ROOT_HASH);
        assert_eq!(receipts_root(&[]), EMPTY_ROOT_HASH);
    }
}
