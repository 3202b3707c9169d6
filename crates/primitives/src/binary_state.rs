//! The layout of the state in the binary Merkle tree of the `nomt` state commitment
//! ([`StateCommitment::Nomt`](crate::chain::StateCommitment)): one SHA-256 binary trie over
//! 32-byte keys, holding accounts and storage slots side by side (no per-account storage tries).
//!
//! * account of `address`: key `keccak256(address)`, value `nonce (8, BE) ‖ balance (32, BE) ‖
//!   code hash (32)` (72 bytes);
//! * slot `slot` of `address`: key `keccak256(keccak256(address) ‖ keccak256(slot))`, value the
//!   32-byte big-endian word; a zero value is no leaf.
//!
//! Hashing (NOMT's `BinaryHasher<Sha256>`): value hash `sha256(value)`; leaf
//! `sha256(key ‖ value hash)` with the most significant bit set; internal node
//! `sha256(left ‖ right)` with that bit cleared; an empty subtree (terminator) is 32 zero bytes.
//! The root of the empty tree is 32 zero bytes.

use alloy_primitives::{B256, U256, keccak256};
use nomt_core::{
    hasher::{Sha2Hasher, ValueHasher},
    trie::{KeyPath, ValueHash},
};

/// Key of an account, from `keccak256(address)`.
pub fn account_key(hashed_address: &B256) -> KeyPath {
    hashed_address.0
}

/// Key of a storage slot, from `keccak256(address)` and `keccak256(slot)`.
pub fn slot_key(hashed_address: &B256, hashed_slot: &B256) -> KeyPath {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(hashed_address.as_slice());
    buf[32..].copy_from_slice(hashed_slot.as_slice());
    keccak256(buf).0
}

/// Value of an account leaf.
pub fn account_value(nonce: u64, balance: U256, code_hash: B256) -> Vec<u8> {
    let mut out = Vec::with_capacity(72);
    out.extend_from_slice(&nonce.to_be_bytes());
    out.extend_from_slice(&balance.to_be_bytes::<32>());
    out.extend_from_slice(code_hash.as_slice());
    out
}

/// Decodes an account leaf value: (nonce, balance, code hash).
pub fn decode_account_value(value: &[u8]) -> Option<(u64, U256, B256)> {
    if value.len() != 72 {
        return None;
    }
    let nonce = u64::from_be_bytes(value[..8].try_into().ok()?);
    let balance = U256::from_be_slice(&value[8..40]);
    Some((nonce, balance, B256::from_slice(&value[40..72])))
}

/// Value of a slot leaf.
pub fn slot_value(value: U256) -> Vec<u8> {
    value.to_be_bytes::<32>().to_vec()
}

/// The value hash stored in a leaf.
pub fn value_hash(value: &[u8]) -> ValueHash {
    Sha2Hasher::hash_value(value)
}

/// Root of the tree holding `leaves` (key, value): sorted and deduplicated here.
pub fn root(leaves: impl IntoIterator<Item = (KeyPath, Vec<u8>)>) -> B256 {
    let mut ops: Vec<(KeyPath, ValueHash)> = leaves
        .into_iter()
        .map(|(k, v)| (k, value_hash(&v)))
        .collect();
    ops.sort_unstable_by_key(|a| a.0);
    ops.dedup_by(|a, b| a.0 == b.0);
    B256::from(nomt_core::update::build_trie::<Sha2Hasher>(0, ops, |_| {}))
}

fn sha256_pair(left: &[u8], right: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Hash of a leaf node.
pub fn leaf_hash(key: &KeyPath, value_hash: &ValueHash) -> [u8; 32] {
    let mut h = sha256_pair(key, value_hash);
    h[0] |= 0x80;
    h
}

/// Hash of an internal node.
pub fn internal_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = sha256_pair(left, right);
    h[0] &= 0x7f;
    h
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The node list is empty or a node has the wrong shape.
    #[error("malformed proof: {0}")]
    Malformed(&'static str),
    /// The nodes hash to another root.
    #[error("proof does not hash to the state root")]
    RootMismatch,
    /// The terminal leaf is not on the key's path.
    #[error("the proof's leaf is not on the key's path")]
    WrongPath,
}

/// Verifies a proof in the `eth_getProof` format of the `nomt` commitment: `nodes[0]` is the
/// terminal (`0x01 ‖ key ‖ value hash` for a leaf, `0x00` for an empty subtree), `nodes[1..]` the
/// sibling hashes from the root down. Hashing from the terminal up along the key's bits (bit `i`
/// of the key, most significant first, says whether the path went right at depth `i`) must give
/// `root`. Returns the value hash stored under `key`, or `None` when the proof shows the key
/// absent (an empty subtree, or another key's leaf, on its path).
pub fn verify_proof(
    root: B256,
    key: &KeyPath,
    nodes: &[impl AsRef<[u8]>],
) -> Result<Option<ValueHash>, ProofError> {
    let (terminal, siblings) = nodes
        .split_first()
        .ok_or(ProofError::Malformed("no nodes"))?;
    if siblings.len() > 256 {
        return Err(ProofError::Malformed("more than 256 siblings"));
    }
    let (mut node, leaf) = match terminal.as_ref() {
        [0] => ([0u8; 32], None),
        [1, rest @ ..] if rest.len() == 64 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&rest[..32]);
            let mut v = [0u8; 32];
            v.copy_from_slice(&rest[32..]);
            (leaf_hash(&k, &v), Some((k, v)))
        }
        _ => return Err(ProofError::Malformed("terminal node")),
    };
    let bit = |k: &KeyPath, i: usize| (k[i / 8] >> (7 - i % 8)) & 1 == 1;
    for (depth, sibling) in siblings.iter().enumerate().rev() {
        let sibling: [u8; 32] = sibling
            .as_ref()
            .try_into()
            .map_err(|_| ProofError::Malformed("sibling is not 32 bytes"))?;
        node = if bit(key, depth) {
            internal_hash(&sibling, &node)
        } else {
            internal_hash(&node, &sibling)
        };
    }
    if node != root.0 {
        return Err(ProofError::RootMismatch);
    }
    match leaf {
        Some((k, v)) if &k == key => Ok(Some(v)),
        Some((k, _)) => {
            if (0..siblings.len()).all(|i| bit(&k, i) == bit(key, i)) {
                Ok(None)
            } else {
                Err(ProofError::WrongPath)
            }
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomt_core::hasher::NodeHasher;

    fn sha256(data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }

    /// The documented hashing, written out by hand for one and two leaves.
    #[test]
    fn root_follows_the_documented_hashing() {
        assert_eq!(root([]), B256::ZERO);
        let a = ([0x11u8; 32], vec![1, 2, 3]);
        let mut leaf_a = sha256(&[a.0.as_slice(), &sha256(&a.1)].concat());
        leaf_a[0] |= 0x80;
        assert_eq!(root([a.clone()]), B256::from(leaf_a));

        // 0x11… starts with bit 0, 0x91… with bit 1: they split at the root.
        let b = ([0x91u8; 32], vec![4]);
        let mut leaf_b = sha256(&[b.0.as_slice(), &sha256(&b.1)].concat());
        leaf_b[0] |= 0x80;
        let mut internal = sha256(&[leaf_a, leaf_b].concat());
        internal[0] &= 0x7f;
        assert_eq!(root([b.clone(), a.clone()]), B256::from(internal));
        assert_eq!(
            Sha2Hasher::hash_leaf(&nomt_core::trie::LeafData {
                key_path: a.0,
                value_hash: sha256(&a.1)
            }),
            leaf_a
        );
    }

    #[test]
    fn account_values_round_trip() {
        let v = account_value(7, U256::from(1234), B256::repeat_byte(9));
        assert_eq!(
            decode_account_value(&v),
            Some((7, U256::from(1234), B256::repeat_byte(9)))
        );
        assert_eq!(decode_account_value(&v[1..]), None);
    }
}
