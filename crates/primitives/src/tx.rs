//! Transactions as they travel through the node: decoded once, sender recovered once.

use alloy_consensus::{Transaction, TxEnvelope, TxType, transaction::SignerRecoverable};
use alloy_eips::{Decodable2718, Encodable2718, eip2718::Eip2718Error};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};

/// Largest raw transaction accepted, in bytes (geth's `txMaxSize`, 128 KiB).
pub const MAX_TX_SIZE: usize = 128 * 1024;

/// Why raw transaction bytes could not be turned into a [`RecoveredTx`].
///
/// The messages follow geth's wording where geth has one, because tools match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxDecodeError {
    /// No bytes at all.
    #[error("rlp: empty transaction bytes")]
    Empty,
    /// More bytes than [`MAX_TX_SIZE`].
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized {
        /// Size of the raw transaction.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// The bytes are not a valid RLP / EIP-2718 encoding.
    #[error("rlp: {0}")]
    Rlp(String),
    /// A known or unknown type byte this chain does not accept (blob transactions, future types).
    #[error("transaction type not supported: type {0:#04x}")]
    UnsupportedType(u8),
    /// The signature does not recover to a sender (bad `r`/`s`/`v`, high `s`).
    #[error("invalid sender: invalid transaction v, r, s values")]
    InvalidSignature,
}

/// A signed transaction together with the sender recovered from its signature.
///
/// Recovery costs ~59 µs with libsecp256k1; it happens once, at admission, and the result travels
/// with the transaction through the pool, consensus, execution and storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredTx {
    tx: TxEnvelope,
    sender: Address,
    /// The EIP-2718 bytes, kept so storing and serving the transaction never re-encodes it.
    raw: Bytes,
}

impl RecoveredTx {
    /// Decodes EIP-2718 bytes (legacy RLP or typed), checks size and type, and recovers the sender.
    pub fn decode_and_recover(raw: &[u8]) -> Result<Self, TxDecodeError> {
        let tx = decode_envelope(raw)?;
        let sender = tx
            .recover_signer()
            .map_err(|_| TxDecodeError::InvalidSignature)?;
        Ok(Self {
            tx,
            sender,
            raw: Bytes::copy_from_slice(raw),
        })
    }

    /// Pairs a transaction with a sender that the caller already recovered (or stored).
    pub fn new_unchecked(tx: TxEnvelope, sender: Address) -> Self {
        let raw = Bytes::from(tx.encoded_2718());
        Self { tx, sender, raw }
    }

    /// The signed transaction.
    pub fn envelope(&self) -> &TxEnvelope {
        &self.tx
    }

    /// The account that signed it.
    pub fn sender(&self) -> Address {
        self.sender
    }

    /// The transaction hash (keccak of the EIP-2718 encoding).
    pub fn hash(&self) -> B256 {
        *self.tx.tx_hash()
    }

    /// Length of the EIP-2718 encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// The EIP-2718 encoding.
    pub fn encoded(&self) -> &Bytes {
        &self.raw
    }

    /// Sender nonce.
    pub fn nonce(&self) -> u64 {
        self.tx.nonce()
    }

    /// Gas limit.
    pub fn gas_limit(&self) -> u64 {
        self.tx.gas_limit()
    }

    /// Value transferred.
    pub fn value(&self) -> U256 {
        self.tx.value()
    }

    /// Call data or init code.
    pub fn input(&self) -> &Bytes {
        self.tx.input()
    }

    /// Recipient, or create.
    pub fn kind(&self) -> TxKind {
        self.tx.kind()
    }

    /// Recipient when this is a call.
    pub fn to(&self) -> Option<Address> {
        self.tx.to()
    }

    /// Chain id the signature commits to (`None` for pre-EIP-155 legacy transactions).
    pub fn chain_id(&self) -> Option<u64> {
        self.tx.chain_id()
    }

    /// The EIP-2718 type.
    pub fn tx_type(&self) -> TxType {
        self.tx.tx_type()
    }

    /// Maximum fee per gas (the gas price for legacy and EIP-2930 transactions).
    pub fn max_fee_per_gas(&self) -> u128 {
        self.tx.max_fee_per_gas()
    }

    /// Maximum priority fee per gas (the gas price for legacy and EIP-2930 transactions).
    pub fn max_priority_fee_per_gas(&self) -> u128 {
        self.tx
            .max_priority_fee_per_gas()
            .unwrap_or_else(|| self.tx.max_fee_per_gas())
    }

    /// Tip per gas paid to the block producer at `base_fee`, or `None` when the fee cap is below it.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        self.tx.effective_tip_per_gas(base_fee)
    }

    /// Gas price actually paid per unit of gas at `base_fee`.
    pub fn effective_gas_price(&self, base_fee: u64) -> u128 {
        self.tx.effective_gas_price(Some(base_fee))
    }

    /// Most the sender can be charged: `gas_limit * max_fee + value`.
    pub fn max_cost(&self) -> U256 {
        U256::from(self.gas_limit()) * U256::from(self.max_fee_per_gas()) + self.value()
    }

    /// Consumes the wrapper, returning the signed transaction.
    pub fn into_envelope(self) -> TxEnvelope {
        self.tx
    }
}

/// Decodes EIP-2718 bytes into a transaction of a type this chain accepts, without recovering.
pub fn decode_envelope(raw: &[u8]) -> Result<TxEnvelope, TxDecodeError> {
    if raw.is_empty() {
        return Err(TxDecodeError::Empty);
    }
    if raw.len() > MAX_TX_SIZE {
        return Err(TxDecodeError::Oversized {
            size: raw.len(),
            limit: MAX_TX_SIZE,
        });
    }
    // Typed transactions start with their type byte (< 0x7f); legacy ones with an RLP list header.
    match raw[0] {
        0x01 | 0x02 | 0x04 | 0xc0.. => {}
        ty @ 0x00..=0x7f => return Err(TxDecodeError::UnsupportedType(ty)),
        _ => {
            return Err(TxDecodeError::Rlp(
                "expected a typed transaction or an RLP list".into(),
            ));
        }
    }
    let tx = TxEnvelope::decode_2718_exact(raw).map_err(|e| match e {
        Eip2718Error::UnexpectedType(t) => TxDecodeError::UnsupportedType(t),
        Eip2718Error::RlpError(e) => TxDecodeError::Rlp(e.to_string()),
        other => TxDecodeError::Rlp(other.to_string()),
    })?;
    match tx.tx_type() {
        TxType::Legacy | TxType::Eip2930 | TxType::Eip1559 | TxType::Eip7702 => Ok(tx),
        other => Err(TxDecodeError::UnsupportedType(other as u8)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_empty_oversized_and_garbage() {
        assert_eq!(
            RecoveredTx::decode_and_recover(&[]),
            Err(TxDecodeError::Empty)
        );
        let big = vec![0xc0u8; MAX_TX_SIZE + 1];
        assert!(matches!(
            RecoveredTx::decode_and_recover(&big),
            Err(TxDecodeError::Oversized { .. })
        ));
        assert!(matches!(
            RecoveredTx::decode_and_recover(&[0x02, 0x01]),
            Err(TxDecodeError::Rlp(_))
        ));
        let r = RecoveredTx::decode_and_recover(&[0x7f, 0xc0]);
        assert!(
            matches!(r, Err(TxDecodeError::UnsupportedType(0x7f))),
            "{r:?}"
        );
    }

    #[test]
    fn decodes_a_real_signed_legacy_transaction() {
        // EIP-155 example transaction (chain id 1) from the EIP text.
        let raw = alloy_primitives::hex!(
            "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
        let tx = RecoveredTx::decode_and_recover(&raw).expect("valid transaction");
        assert_eq!(
            tx.sender(),
            alloy_primitives::address!("9d8a62f656a8d1615c1294fd71e9cfb3e4855a4f")
        );
        assert_eq!(tx.chain_id(), Some(1));
        assert_eq!(tx.nonce(), 9);
        assert_eq!(tx.encoded().to_vec(), raw.to_vec());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = RecoveredTx::decode_and_recover(&bytes);
        }

        #[test]
        fn typed_prefixes_with_arbitrary_payload_never_panic(
            ty in 0u8..8, bytes in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            let mut raw = vec![ty];
            raw.extend(bytes);
            let _ = RecoveredTx::decode_and_recover(&raw);
        }
    }
}
