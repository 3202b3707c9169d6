//! Per-issuer revocation: a sparse Poseidon Merkle tree keyed by revocation nonce.
//!
//! The tree has [`REVOCATION_TREE_DEPTH`] levels; leaf `n` is [`REVOKED_LEAF`] (1) when nonce
//! `n` is revoked and 0 otherwise, and an inner node is `Poseidon(left, right)`. Empty subtrees
//! hash to precomputed constants, so the tree stores only nodes on paths to revoked leaves:
//! revoking costs [`REVOCATION_TREE_DEPTH`] hashes and memory grows with the number of
//! revocations, not with 2^32. A holder proves non-revocation by showing that the leaf at its
//! nonce is 0 under the issuer's published root; the leaf position is the nonce's bits, so a path
//! cannot be replayed for another nonce. Revocation is permanent.

use std::collections::HashMap;
use std::sync::OnceLock;

use ark_r1cs_std::{boolean::Boolean, fields::fp::FpVar};
use ark_relations::gr1cs::SynthesisError;

use crate::error::ZkError;
use crate::field::{FR_LEN, Fr, fr_from_bytes, fr_to_bytes};
use crate::poseidon;

/// Depth of every revocation tree: nonces are `u32`.
pub const REVOCATION_TREE_DEPTH: usize = 32;

/// Leaf value of a revoked nonce.
pub const REVOKED_LEAF: u64 = 1;

/// `empty[i]` is the root of an empty subtree of height `i` (`empty[0]` is the empty leaf, 0).
pub fn empty_subtree_roots() -> &'static [Fr; REVOCATION_TREE_DEPTH + 1] {
    static EMPTY: OnceLock<[Fr; REVOCATION_TREE_DEPTH + 1]> = OnceLock::new();
    EMPTY.get_or_init(|| {
        let mut empty = [Fr::from(0u64); REVOCATION_TREE_DEPTH + 1];
        for i in 0..REVOCATION_TREE_DEPTH {
            empty[i + 1] = poseidon::hash(&[empty[i], empty[i]]);
        }
        empty
    })
}

/// The root of a tree with nothing revoked.
pub fn empty_root() -> Fr {
    empty_subtree_roots()[REVOCATION_TREE_DEPTH]
}

/// An issuer's revocation tree. Stores only non-empty nodes.
#[derive(Clone, Debug, Default)]
pub struct RevocationTree {
    /// `(level, index)` → node value, level 0 being the leaves.
    nodes: HashMap<(u8, u32), Fr>,
    revoked: usize,
}

impl RevocationTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    fn node(&self, level: usize, index: u32) -> Fr {
        self.nodes
            .get(&(level as u8, index))
            .copied()
            .unwrap_or(empty_subtree_roots()[level])
    }

    /// The current root.
    pub fn root(&self) -> Fr {
        self.node(REVOCATION_TREE_DEPTH, 0)
    }

    /// Number of revoked nonces.
    pub fn revoked_count(&self) -> usize {
        self.revoked
    }

    /// Whether `nonce` is revoked.
    pub fn is_revoked(&self, nonce: u32) -> bool {
        self.nodes.contains_key(&(0, nonce))
    }

    /// Revokes `nonce`; returns `false` if it already was. Costs one hash per level.
    pub fn revoke(&mut self, nonce: u32) -> bool {
        if self.is_revoked(nonce) {
            return false;
        }
        self.revoked += 1;
        let mut current = Fr::from(REVOKED_LEAF);
        self.nodes.insert((0, nonce), current);
        // Indices are u64 while walking up so `nonce >> 32` at the root level is well defined.
        let mut index = u64::from(nonce);
        for level in 0..REVOCATION_TREE_DEPTH {
            let sibling = self.node(level, (index ^ 1) as u32);
            current = if index & 1 == 0 {
                poseidon::hash(&[current, sibling])
            } else {
                poseidon::hash(&[sibling, current])
            };
            index >>= 1;
            self.nodes.insert((level as u8 + 1, index as u32), current);
        }
        true
    }

    /// The path proving `nonce` is not revoked under [`RevocationTree::root`], or
    /// [`ZkError::Revoked`] if it is.
    pub fn non_revocation_path(&self, nonce: u32) -> Result<NonRevocationPath, ZkError> {
        if self.is_revoked(nonce) {
            return Err(ZkError::Revoked(nonce));
        }
        let mut siblings = [Fr::from(0u64); REVOCATION_TREE_DEPTH];
        let mut index = u64::from(nonce);
        for (level, sibling) in siblings.iter_mut().enumerate() {
            *sibling = self.node(level, (index ^ 1) as u32);
            index >>= 1;
        }
        Ok(NonRevocationPath { nonce, siblings })
    }
}

/// Siblings from the leaf up, showing the leaf at `nonce` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonRevocationPath {
    /// The nonce (leaf index) this path is for.
    pub nonce: u32,
    /// `siblings[i]` is the sibling at level `i` (level 0 = leaves).
    pub siblings: [Fr; REVOCATION_TREE_DEPTH],
}

/// Length of an encoded path: the nonce (4 bytes big-endian) then the siblings.
pub const PATH_LEN: usize = 4 + REVOCATION_TREE_DEPTH * FR_LEN;

impl NonRevocationPath {
    /// The root this path implies for an empty leaf at `nonce`.
    pub fn root(&self) -> Fr {
        let mut current = Fr::from(0u64);
        for (level, sibling) in self.siblings.iter().enumerate() {
            current = if (self.nonce >> level) & 1 == 0 {
                poseidon::hash(&[current, *sibling])
            } else {
                poseidon::hash(&[*sibling, current])
            };
        }
        current
    }

    /// Whether the path shows `nonce` unrevoked under `root`.
    pub fn verify(&self, root: &Fr) -> bool {
        self.root() == *root
    }

    /// Encodes as [`PATH_LEN`] bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PATH_LEN);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        for s in &self.siblings {
            out.extend_from_slice(&fr_to_bytes(s));
        }
        out
    }

    /// Decodes [`NonRevocationPath::to_bytes`], rejecting wrong lengths and non-canonical values.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        if bytes.len() != PATH_LEN {
            return Err(ZkError::InvalidInput(format!(
                "a non-revocation path is {PATH_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let mut nonce = [0u8; 4];
        nonce.copy_from_slice(&bytes[..4]);
        let mut siblings = [Fr::from(0u64); REVOCATION_TREE_DEPTH];
        for (i, (sibling, chunk)) in siblings
            .iter_mut()
            .zip(bytes[4..].chunks_exact(FR_LEN))
            .enumerate()
        {
            *sibling = fr_from_bytes(chunk).map_err(|e| {
                ZkError::InvalidInput(format!("non-revocation path sibling {i}: {e}"))
            })?;
        }
        Ok(Self {
            nonce: u32::from_be_bytes(nonce),
            siblings,
        })
    }
}

/// In-circuit root of an empty leaf at the position given by `nonce_bits` (little-endian, one
/// per level): one constraint per level for the left/right swap plus a Poseidon hash.
pub(crate) fn root_var(
    nonce_bits: &[Boolean<Fr>],
    siblings: &[FpVar<Fr>],
) -> Result<FpVar<Fr>, SynthesisError> {
    let mut current = FpVar::Constant(Fr::from(0u64));
    for (bit, sibling) in nonce_bits.iter().zip(siblings) {
        // bit = 0: (current, sibling); bit = 1: (sibling, current).
        let swap = FpVar::from(bit.clone()) * (sibling - &current);
        let left = &current + &swap;
        let right = sibling - &swap;
        current = poseidon::hash_var(&[left, right])?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree() {
        let tree = RevocationTree::new();
        assert_eq!(tree.root(), empty_root());
        let path = tree.non_revocation_path(12345).unwrap();
        assert!(path.verify(&tree.root()));
        assert_eq!(
            NonRevocationPath::from_bytes(&path.to_bytes()).unwrap(),
            path
        );
    }

    #[test]
    fn revoke_changes_root_and_blocks_path() {
        let mut tree = RevocationTree::new();
        let before = tree.non_revocation_path(7).unwrap();
        assert!(tree.revoke(7));
        assert!(!tree.revoke(7));
        assert_eq!(tree.revoked_count(), 1);
        assert_ne!(tree.root(), empty_root());
        assert!(
            !before.verify(&tree.root()),
            "old path must not match the new root"
        );
        assert!(matches!(
            tree.non_revocation_path(7),
            Err(ZkError::Revoked(7))
        ));
        // Neighbours and extremes still have paths.
        for n in [6, 8, 0, u32::MAX] {
            assert!(tree.non_revocation_path(n).unwrap().verify(&tree.root()));
        }
        tree.revoke(u32::MAX);
        assert!(tree.non_revocation_path(0).unwrap().verify(&tree.root()));
    }

    #[test]
    fn path_bytes_reject_garbage() {
        assert!(NonRevocationPath::from_bytes(&[0u8; 10]).is_err());
        let mut bytes = RevocationTree::new()
            .non_revocation_path(1)
            .unwrap()
            .to_bytes();
        bytes[4..36].fill(0xff);
        assert!(NonRevocationPath::from_bytes(&bytes).is_err());
    }
}
