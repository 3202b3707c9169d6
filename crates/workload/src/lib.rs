//! Builds signed transactions for tests, benchmarks and load generation: deterministic keys,
//! fast signing with libsecp256k1, and builders for transfers, calls and deployments.
//!
//! # Design
//! Signing goes through libsecp256k1 (not k256), so pre-signing tens of thousands of
//! transactions for a benchmark takes a fraction of a second per core. Keys are derived from a
//! seed index, so a workload is reproducible: the same index is the same account everywhere.
//!
//! Nothing here touches a node: it produces bytes and [`RecoveredTx`] values only.
#![warn(missing_docs)]

pub mod scenario;

use alloy_consensus::{
    SignableTransaction, TxEip1559, TxEip2930, TxEnvelope, TxLegacy, TypedTransaction,
};
use alloy_eips::{Encodable2718, eip2930::AccessList};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256};
use pharos_primitives::RecoveredTx;
use secp256k1::{Message, PublicKey, SecretKey, ecdsa::RecoverableSignature};

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid secp256k1 secret key")]
pub struct InvalidKey;

/// A secp256k1 key pair with its Ethereum address.
#[derive(Clone)]
pub struct Wallet {
    secret: SecretKey,
    address: Address,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.address)
            .finish()
    }
}

impl Wallet {
    /// The wallet of a 32-byte private key.
    pub fn from_key(key: B256) -> Result<Self, InvalidKey> {
        let secret = SecretKey::from_secret_bytes(key.0).map_err(|_| InvalidKey)?;
        let public = PublicKey::from_secret_key(&secret);
        let uncompressed = public.serialize_uncompressed();
        let address = Address::from_slice(&keccak256(&uncompressed[1..])[12..]);
        Ok(Self { secret, address })
    }

    /// A deterministic wallet: the key is `keccak256("pharos-workload" | index)`.
    pub fn from_index(index: u64) -> Self {
        let mut seed = b"pharos-workload".to_vec();
        seed.extend_from_slice(&index.to_be_bytes());
        let mut key = keccak256(&seed);
        loop {
            if let Ok(w) = Self::from_key(key) {
                return w;
            }
            key = keccak256(key);
        }
    }

    /// The wallet's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The private key.
    pub fn secret_bytes(&self) -> B256 {
        B256::from(self.secret.to_secret_bytes())
    }

    fn sign_hash(&self, hash: B256) -> Signature {
        let sig = RecoverableSignature::sign_ecdsa_recoverable(
            Message::from_digest(hash.0),
            &self.secret,
        );
        let (rec_id, bytes) = sig.serialize_compact();
        let parity = matches!(
            rec_id,
            secp256k1::ecdsa::RecoveryId::One | secp256k1::ecdsa::RecoveryId::Three
        );
        Signature::from_scalars_and_parity(
            B256::from_slice(&bytes[..32]),
            B256::from_slice(&bytes[32..]),
            parity,
        )
    }

    /// Signs an EIP-7702 authorization: this wallet delegates its code to `address`.
    pub fn sign_authorization(
        &self,
        chain_id: u64,
        address: Address,
        nonce: u64,
    ) -> alloy_eips::eip7702::SignedAuthorization {
        let auth = alloy_eips::eip7702::Authorization {
            chain_id: U256::from(chain_id),
            address,
            nonce,
        };
        let signature = self.sign_hash(auth.signature_hash());
        auth.into_signed(signature)
    }

    /// Signs `tx`.
    pub fn sign(&self, tx: TypedTransaction) -> TxEnvelope {
        let signature = self.sign_hash(tx.signature_hash());
        match tx {
            TypedTransaction::Legacy(t) => t.into_signed(signature).into(),
            TypedTransaction::Eip2930(t) => t.into_signed(signature).into(),
            TypedTransaction::Eip1559(t) => t.into_signed(signature).into(),
            TypedTransaction::Eip4844(t) => t.into_signed(signature).into(),
            TypedTransaction::Eip7702(t) => t.into_signed(signature).into(),
        }
    }

    /// Signs `tx` and pairs it with this wallet as sender (no recovery needed).
    pub fn sign_recovered(&self, tx: TypedTransaction) -> RecoveredTx {
        RecoveredTx::new_unchecked(self.sign(tx), self.address)
    }
}

/// Fees and chain of the transactions a [`TxBuilder`] makes.
#[derive(Debug, Clone, Copy)]
pub struct TxBuilder {
    /// Chain id signed over.
    pub chain_id: u64,
    /// EIP-1559 fee cap.
    pub max_fee_per_gas: u128,
    /// EIP-1559 tip.
    pub max_priority_fee_per_gas: u128,
}

impl TxBuilder {
    /// Builder for `chain_id` with a 100 gwei fee cap and a 1 gwei tip.
    pub fn new(chain_id: u64) -> Self {
        Self {
            chain_id,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        }
    }

    /// An EIP-1559 transaction.
    pub fn eip1559(
        &self,
        nonce: u64,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
    ) -> TypedTransaction {
        TypedTransaction::Eip1559(TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to,
            value,
            access_list: AccessList::default(),
            input,
        })
    }

    /// An EIP-155 legacy transaction at `gas_price`.
    pub fn legacy(
        &self,
        nonce: u64,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
        gas_price: u128,
    ) -> TypedTransaction {
        TypedTransaction::Legacy(TxLegacy {
            chain_id: Some(self.chain_id),
            nonce,
            gas_price,
            gas_limit,
            to,
            value,
            input,
        })
    }

    /// An EIP-2930 transaction with an access list.
    #[allow(clippy::too_many_arguments)]
    pub fn eip2930(
        &self,
        nonce: u64,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
        gas_price: u128,
        access_list: AccessList,
    ) -> TypedTransaction {
        TypedTransaction::Eip2930(TxEip2930 {
            chain_id: self.chain_id,
            nonce,
            gas_price,
            gas_limit,
            to,
            value,
            access_list,
            input,
        })
    }

    /// A plain value transfer (21,000 gas).
    pub fn transfer(&self, nonce: u64, to: Address, value: U256) -> TypedTransaction {
        self.eip1559(nonce, TxKind::Call(to), value, Bytes::new(), 21_000)
    }
}

/// EIP-2718 bytes of a signed transaction, as `eth_sendRawTransaction` takes them.
pub fn raw(tx: &TxEnvelope) -> Bytes {
    tx.encoded_2718().into()
}

/// ABI encoders for the ERC-20 calls workloads use.
pub mod erc20 {
    use alloy_primitives::{Address, Bytes, U256};
    use alloy_sol_types::{SolCall, sol};

    sol! {
        function transfer(address to, uint256 amount) returns (bool);
        function approve(address spender, uint256 amount) returns (bool);
        function transferFrom(address from, address to, uint256 amount) returns (bool);
        function balanceOf(address owner) returns (uint256);
    }

    /// Calldata of `transfer(to, amount)`.
    pub fn transfer(to: Address, amount: U256) -> Bytes {
        transferCall { to, amount }.abi_encode().into()
    }

    /// Calldata of `balanceOf(owner)`.
    pub fn balance_of(owner: Address) -> Bytes {
        balanceOfCall { owner }.abi_encode().into()
    }

    /// Calldata of `approve(spender, amount)`.
    pub fn approve(spender: Address, amount: U256) -> Bytes {
        approveCall { spender, amount }.abi_encode().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_transactions_recover_to_the_wallet() {
        let w = Wallet::from_index(7);
        let b = TxBuilder::new(1337);
        let tx = w.sign(b.transfer(0, Address::repeat_byte(1), U256::from(5)));
        let recovered = RecoveredTx::decode_and_recover(&raw(&tx)).expect("recover");
        assert_eq!(recovered.sender(), w.address());
        let legacy = w.sign(b.legacy(1, TxKind::Create, U256::ZERO, Bytes::new(), 60_000, 1));
        let recovered = RecoveredTx::decode_and_recover(&raw(&legacy)).expect("recover");
        assert_eq!(recovered.sender(), w.address());
    }

    #[test]
    fn known_key_gives_known_address() {
        // First account of the standard test mnemonic.
        let key = alloy_primitives::b256!(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        let w = Wallet::from_key(key).unwrap();
        assert_eq!(
            w.address(),
            alloy_primitives::address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
    }
}
