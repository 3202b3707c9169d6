//! Encodings of BN254 scalar-field elements, wallet addresses and scope labels.
//!
//! Every field element that crosses a byte boundary is 32 bytes big-endian and must be canonical
//! (strictly below the modulus); decoders reject anything else instead of reducing it, so one
//! value has exactly one encoding.

use std::fmt;

use ark_ff::{BigInteger, BigInteger256, PrimeField};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ZkError;

/// The BN254 scalar field: every value in the circuit, and the base field of Baby Jubjub.
pub type Fr = ark_bn254::Fr;

/// Length of an encoded field element.
pub const FR_LEN: usize = 32;

/// Encodes a field element as 32 bytes, big-endian.
pub fn fr_to_bytes(value: &Fr) -> [u8; FR_LEN] {
    let mut out = [0u8; FR_LEN];
    out.copy_from_slice(&value.into_bigint().to_bytes_be());
    out
}

/// Decodes 32 big-endian bytes into a field element, rejecting values `>=` the modulus.
pub fn fr_from_bytes(bytes: &[u8]) -> Result<Fr, FieldDecodeError> {
    if bytes.len() != FR_LEN {
        return Err(FieldDecodeError::Length(bytes.len()));
    }
    let mut limbs = [0u64; 4];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        limbs[3 - i] = u64::from_be_bytes(word);
    }
    let bigint = BigInteger256::new(limbs);
    if bigint >= Fr::MODULUS {
        return Err(FieldDecodeError::NotCanonical);
    }
    Fr::from_bigint(bigint).ok_or(FieldDecodeError::NotCanonical)
}

/// Formats a field element as `0x` followed by 64 hex digits.
pub fn fr_to_hex(value: &Fr) -> String {
    format!("0x{}", hex::encode(fr_to_bytes(value)))
}

/// Parses `0x`-prefixed (or bare) 64-digit hex into a canonical field element.
pub fn fr_from_hex(text: &str) -> Result<Fr, FieldDecodeError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let bytes = hex::decode(digits).map_err(|_| FieldDecodeError::Hex)?;
    fr_from_bytes(&bytes)
}

/// Why a field element could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldDecodeError {
    /// The input is not exactly 32 bytes.
    #[error("a field element is 32 bytes, got {0}")]
    Length(usize),
    /// The value is not below the BN254 scalar-field modulus.
    #[error("value is not a canonical BN254 scalar (it is not below the field modulus)")]
    NotCanonical,
    /// The text is not hex.
    #[error("field element is not valid hex")]
    Hex,
}

/// A 20-byte wallet address (an Ethereum account). In the circuit it is the field element whose
/// big-endian bytes are the address, so it is always below 2^160.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address20(pub [u8; 20]);

impl Address20 {
    /// The address as a field element.
    pub fn to_fr(&self) -> Fr {
        Fr::from_be_bytes_mod_order(&self.0)
    }

    /// Parses `0x`-prefixed (or bare) 40-digit hex.
    pub fn from_hex(text: &str) -> Result<Self, ZkError> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        let bytes = hex::decode(digits)
            .map_err(|_| ZkError::InvalidInput(format!("address {text:?} is not hex")))?;
        let array: [u8; 20] = bytes.try_into().map_err(|b: Vec<u8>| {
            ZkError::InvalidInput(format!("an address is 20 bytes, got {}", b.len()))
        })?;
        Ok(Self(array))
    }
}

impl From<[u8; 20]> for Address20 {
    fn from(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Address20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address20({self})")
    }
}

impl Serialize for Address20 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Address20 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Derives a nullifier scope from a human-readable label (for example `b"airdrop-2026"` or a
/// contract address): SHA-256 over a domain tag and the label, truncated to 248 bits so it is
/// always a canonical field element.
pub fn scope_from_label(label: &[u8]) -> Fr {
    let digest = Sha256::new()
        .chain_update(b"pharos-zkdid/scope/v1")
        .chain_update(label)
        .finalize();
    Fr::from_be_bytes_mod_order(&digest[..31])
}

/// Serde helpers encoding a field element as `0x`-prefixed 32-byte big-endian hex.
pub mod serde_fr {
    use super::{Fr, fr_from_hex, fr_to_hex};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(value: &Fr, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&fr_to_hex(value))
    }

    /// Deserializes canonical hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Fr, D::Error> {
        let text = String::deserialize(deserializer)?;
        fr_from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{Field, UniformRand};
    use ark_std::rand::SeedableRng;

    #[test]
    fn fr_bytes_round_trip_and_reject_non_canonical() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for _ in 0..50 {
            let v = Fr::rand(&mut rng);
            assert_eq!(fr_from_bytes(&fr_to_bytes(&v)).unwrap(), v);
            assert_eq!(fr_from_hex(&fr_to_hex(&v)).unwrap(), v);
        }
        let modulus = Fr::MODULUS.to_bytes_be();
        assert_eq!(fr_from_bytes(&modulus), Err(FieldDecodeError::NotCanonical));
        assert_eq!(
            fr_from_bytes(&[0xff; 32]),
            Err(FieldDecodeError::NotCanonical)
        );
        assert_eq!(fr_from_bytes(&[0; 31]), Err(FieldDecodeError::Length(31)));
        let max = -Fr::ONE;
        assert_eq!(fr_from_bytes(&fr_to_bytes(&max)).unwrap(), max);
    }

    #[test]
    fn address_is_big_endian_integer() {
        let mut bytes = [0u8; 20];
        bytes[19] = 7;
        assert_eq!(Address20(bytes).to_fr(), Fr::from(7u64));
        let parsed = Address20::from_hex("0x0000000000000000000000000000000000000007").unwrap();
        assert_eq!(parsed, Address20(bytes));
        assert!(Address20::from_hex("0x1234").is_err());
    }

    #[test]
    fn scopes_differ_per_label() {
        assert_ne!(scope_from_label(b"a"), scope_from_label(b"b"));
        assert_eq!(scope_from_label(b"a"), scope_from_label(b"a"));
    }
}
