//! Byte layouts of stored values. Every decoder checks bounds and reports corruption as an error.

use std::sync::Arc;

use alloy_eips::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256, U256};
use pharos_primitives::{AccountState, BlockBody, RecoveredTx, StoredReceipt, TxEnvelope};

use crate::{
    StoreError,
    commitment::{HashedAccount, HashedDiff},
};

/// Length of an encoded [`AccountRecord`].
pub const ACCOUNT_RECORD_LEN: usize = 8 + 32 + 32;

/// An account as stored in flat state. Its storage root lives in the state trie only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRecord {
    /// Nonce, balance, code hash.
    pub state: AccountState,
}

impl AccountRecord {
    /// Fixed-width encoding: nonce (8, BE) | balance (32) | code hash (32).
    pub fn encode(&self) -> [u8; ACCOUNT_RECORD_LEN] {
        let mut out = [0u8; ACCOUNT_RECORD_LEN];
        out[..8].copy_from_slice(&self.state.nonce.to_be_bytes());
        out[8..40].copy_from_slice(&self.state.balance.to_be_bytes::<32>());
        out[40..72].copy_from_slice(self.state.code_hash.as_slice());
        out
    }

    /// Inverse of [`AccountRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != ACCOUNT_RECORD_LEN {
            return Err(StoreError::Corrupt(format!(
                "account record of {} bytes, expected {ACCOUNT_RECORD_LEN}",
                bytes.len()
            )));
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&bytes[..8]);
        Ok(Self {
            state: AccountState {
                nonce: u64::from_be_bytes(nonce),
                balance: U256::from_be_slice(&bytes[8..40]),
                code_hash: B256::from_slice(&bytes[40..72]),
            },
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(StoreError::Corrupt(format!(
                "{} truncated: wanted {n} more bytes, {} left",
                self.what,
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Body layout: count (u32) then, per transaction, sender (20) | length (u32) | EIP-2718 bytes.
pub fn encode_body(body: &[Arc<RecoveredTx>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.iter().map(|t| 24 + t.encoded_len()).sum::<usize>());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    for tx in body {
        out.extend_from_slice(tx.sender().as_slice());
        let encoded = tx.encoded();
        out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        out.extend_from_slice(encoded);
    }
    out
}

/// Inverse of [`encode_body`]; senders are taken from the record, not recovered again.
pub fn decode_body(bytes: &[u8]) -> Result<BlockBody, StoreError> {
    decode_body_prefix(bytes, usize::MAX)
}

/// The first `max` transactions of an encoded body.
pub fn decode_body_prefix(bytes: &[u8], max: usize) -> Result<BlockBody, StoreError> {
    let mut r = Reader {
        bytes,
        what: "block body",
    };
    let count = (r.u32()? as usize).min(max);
    let mut body = Vec::with_capacity(count.min(bytes.len() / 24));
    for _ in 0..count {
        let sender = Address::from_slice(r.take(20)?);
        let len = r.u32()? as usize;
        let raw = r.take(len)?;
        let tx = TxEnvelope::decode_2718_exact(raw)
            .map_err(|e| StoreError::Corrupt(format!("stored transaction: {e}")))?;
        body.push(Arc::new(RecoveredTx::new_unchecked(tx, sender)));
    }
    Ok(body)
}

/// Receipts layout: count (u32) then, per receipt, length (u32) | EIP-2718 bytes.
pub fn encode_receipts(receipts: &[StoredReceipt]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(receipts.len() as u32).to_be_bytes());
    for r in receipts {
        let encoded = r.encoded_2718();
        out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        out.extend_from_slice(&encoded);
    }
    out
}

/// Inverse of [`encode_receipts`].
pub fn decode_receipts(bytes: &[u8]) -> Result<Vec<StoredReceipt>, StoreError> {
    let mut r = Reader {
        bytes,
        what: "receipts",
    };
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(bytes.len() / 4));
    for _ in 0..count {
        let len = r.u32()? as usize;
        let raw = r.take(len)?;
        out.push(
            StoredReceipt::decode_2718_exact(raw)
                .map_err(|e| StoreError::Corrupt(format!("stored receipt: {e}")))?,
        );
    }
    Ok(out)
}

/// Journal layout (a block's state changes, keyed by hash): count (u32) then, per account,
/// hashed address (32) | flags (1: bit 0 wiped, bit 1 has state) | [nonce (8) | balance (32) |
/// code hash (32)] | slot count (u32) | per slot hashed slot (32) | value (32).
pub fn encode_journal(diff: &HashedDiff) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + diff.accounts.len() * 110 + diff.len() * 64);
    out.extend_from_slice(&(diff.accounts.len() as u32).to_be_bytes());
    for account in &diff.accounts {
        out.extend_from_slice(account.hashed.as_slice());
        out.push(account.wiped as u8 | (account.info.is_some() as u8) << 1);
        if let Some(state) = &account.info {
            out.extend_from_slice(&state.nonce.to_be_bytes());
            out.extend_from_slice(&state.balance.to_be_bytes::<32>());
            out.extend_from_slice(state.code_hash.as_slice());
        }
        out.extend_from_slice(&(account.storage.len() as u32).to_be_bytes());
        for (hashed_slot, _, value) in &account.storage {
            out.extend_from_slice(hashed_slot.as_slice());
            out.extend_from_slice(&value.to_be_bytes::<32>());
        }
    }
    out
}

/// Inverse of [`encode_journal`]. Addresses and slots come back as zero: only their hashes are
/// journaled.
pub fn decode_journal(bytes: &[u8]) -> Result<HashedDiff, StoreError> {
    let mut r = Reader {
        bytes,
        what: "state journal",
    };
    let count = r.u32()? as usize;
    let mut accounts = Vec::with_capacity(count.min(bytes.len() / 37));
    for _ in 0..count {
        let hashed = B256::from_slice(r.take(32)?);
        let flags = r.take(1)?[0];
        if flags > 3 {
            return Err(StoreError::Corrupt(format!("state journal flags {flags}")));
        }
        let info = if flags & 2 != 0 {
            let nonce = r.take(8)?;
            let mut n = [0u8; 8];
            n.copy_from_slice(nonce);
            Some(AccountState {
                nonce: u64::from_be_bytes(n),
                balance: U256::from_be_slice(r.take(32)?),
                code_hash: B256::from_slice(r.take(32)?),
            })
        } else {
            None
        };
        let n = r.u32()? as usize;
        let mut storage = Vec::with_capacity(n.min(r.bytes.len() / 64));
        for _ in 0..n {
            let slot = B256::from_slice(r.take(32)?);
            let value = U256::from_be_slice(r.take(32)?);
            storage.push((slot, U256::ZERO, value));
        }
        accounts.push(HashedAccount {
            address: Address::ZERO,
            hashed,
            info,
            wiped: flags & 1 != 0,
            storage,
        });
    }
    Ok(HashedDiff { accounts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn journal_round_trips() {
        let diff = HashedDiff {
            accounts: vec![
                HashedAccount {
                    address: Address::ZERO,
                    hashed: B256::repeat_byte(1),
                    info: Some(AccountState {
                        nonce: 3,
                        balance: U256::from(77),
                        code_hash: B256::repeat_byte(5),
                    }),
                    wiped: false,
                    storage: vec![(B256::repeat_byte(2), U256::ZERO, U256::from(9))],
                },
                HashedAccount {
                    address: Address::ZERO,
                    hashed: B256::repeat_byte(4),
                    info: None,
                    wiped: true,
                    storage: vec![],
                },
            ],
        };
        let bytes = encode_journal(&diff);
        assert_eq!(decode_journal(&bytes).unwrap(), diff);
        assert!(decode_journal(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn account_record_round_trips() {
        let rec = AccountRecord {
            state: AccountState {
                nonce: 7,
                balance: U256::from(123456789u64),
                code_hash: B256::repeat_byte(3),
            },
        };
        assert_eq!(AccountRecord::decode(&rec.encode()).unwrap(), rec);
        assert!(AccountRecord::decode(&[1, 2, 3]).is_err());
    }

    proptest! {
        #[test]
        fn corrupt_bodies_and_receipts_are_errors_not_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            let _ = decode_body(&bytes);
            let _ = decode_receipts(&bytes);
            let _ = decode_journal(&bytes);
        }
    }
}
