//! Revocation-tree properties: roots match a naive recomputation, every unrevoked nonce has a
//! valid non-membership path, revoked ones have none, and order does not matter.

use std::collections::BTreeSet;

use pharos_zkdid::poseidon;
use pharos_zkdid::revocation::{REVOKED_LEAF, empty_subtree_roots};
use pharos_zkdid::*;
use proptest::prelude::*;

/// The root recomputed from scratch from the set of revoked leaves.
fn naive_root(revoked: &BTreeSet<u32>) -> Fr {
    fn node(level: u32, index: u64, revoked: &BTreeSet<u32>) -> Fr {
        let first = index << level;
        let last = ((index + 1) << level) - 1;
        let mut range = revoked.range(first as u32..=last as u32);
        if range.next().is_none() {
            return empty_subtree_roots()[level as usize];
        }
        if level == 0 {
            return Fr::from(REVOKED_LEAF);
        }
        poseidon::hash(&[
            node(level - 1, index * 2, revoked),
            node(level - 1, index * 2 + 1, revoked),
        ])
    }
    node(REVOCATION_TREE_DEPTH as u32, 0, revoked)
}

fn nonce_strategy() -> impl Strategy<Value = u32> {
    // Mix clustered small nonces (shared paths, siblings of each other) with arbitrary ones.
    prop_oneof![0u32..64, any::<u32>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn paths_and_roots(
        revoked in proptest::collection::vec(nonce_strategy(), 0..12),
        probes in proptest::collection::vec(nonce_strategy(), 1..8),
    ) {
        let mut tree = RevocationTree::new();
        for n in &revoked {
            tree.revoke(*n);
        }
        let set: BTreeSet<u32> = revoked.iter().copied().collect();
        prop_assert_eq!(tree.revoked_count(), set.len());
        let root = tree.root();
        prop_assert_eq!(root, naive_root(&set));

        // Insertion order does not matter.
        let mut reversed = RevocationTree::new();
        for n in revoked.iter().rev() {
            reversed.revoke(*n);
        }
        prop_assert_eq!(reversed.root(), root);

        for n in &set {
            prop_assert!(tree.is_revoked(*n));
            prop_assert!(matches!(tree.non_revocation_path(*n), Err(ZkError::Revoked(m)) if m == *n));
        }
        // Probes plus the neighbours of every revoked nonce.
        let candidates = probes
            .iter()
            .copied()
            .chain(set.iter().flat_map(|n| [n.wrapping_sub(1), n.wrapping_add(1)]));
        for n in candidates.filter(|n| !set.contains(n)) {
            let path = tree.non_revocation_path(n).unwrap();
            prop_assert!(path.verify(&root), "nonce {} has no valid path", n);
            // The path is bound to its position: it does not prove a revoked nonce.
            for r in set.iter().take(2) {
                let mut moved = path.clone();
                moved.nonce = *r;
                prop_assert!(!moved.verify(&root));
            }
        }
    }
}

#[test]
fn revoked_leaf_cannot_be_proven_empty_with_any_sibling_set_from_the_tree() {
    let mut tree = RevocationTree::new();
    for n in 0..16 {
        tree.revoke(n * 2);
    }
    let root = tree.root();
    // Every sibling set the tree hands out: the paths of all unrevoked nonces around the revoked
    // ones (each revoked even nonce's odd neighbours included) and of some far-away nonces.
    let mut paths = Vec::new();
    for n in (0..34u32).chain([1000, 1 << 20, u32::MAX]) {
        let expected_revoked = n % 2 == 0 && n < 32;
        assert_eq!(tree.is_revoked(n), expected_revoked);
        if !expected_revoked {
            let path = tree.non_revocation_path(n).unwrap();
            assert!(path.verify(&root), "nonce {n}");
            paths.push(path);
        }
    }
    assert_eq!(paths.len(), 16 + 2 + 3);
    // Relabelling any of them to a revoked nonce proves nothing: the leaf position is the nonce.
    for revoked in (0..16u32).map(|n| n * 2) {
        for path in &paths {
            let mut moved = path.clone();
            moved.nonce = revoked;
            assert!(
                !moved.verify(&root),
                "siblings of {} prove revoked {revoked}",
                path.nonce
            );
        }
    }
}
