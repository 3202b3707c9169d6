//! The trie against alloy-trie's `HashBuilder` (an independent root computation) and its proof
//! verifier, across random batches of inserts and deletes, persistence and eviction.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::{B256, keccak256};
use alloy_trie::{HashBuilder, Nibbles, proof::verify_proof};
use proptest::prelude::*;

use super::*;

/// An in-memory node store.
#[derive(Default)]
struct MapSource(HashMap<Nibbles, Vec<u8>>);

impl NodeSource for MapSource {
    fn node(&self, path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError> {
        Ok(self.0.get(path).cloned())
    }
}

impl MapSource {
    fn apply(&mut self, changes: TrieChanges) {
        for path in changes.removed {
            self.0.remove(&path);
        }
        for (path, node) in changes.nodes {
            self.0.insert(path, node);
        }
    }
}

fn reference_root(map: &BTreeMap<B256, Vec<u8>>) -> B256 {
    let mut hb = HashBuilder::default();
    for (k, v) in map {
        hb.add_leaf(Nibbles::unpack(k), v);
    }
    hb.root()
}

/// Keys crowded into a few prefixes so extensions, splits and collapses happen often; some
/// differ only in their last byte so their leaves are short enough to be inlined.
fn key(i: u8) -> B256 {
    let mut k = keccak256([i]).0;
    k[0] = [0x00, 0x01, 0x10, 0x11][(i & 3) as usize];
    k[1] = [0x00, 0xab][((i >> 2) & 1) as usize];
    if i & 0x20 != 0 {
        // Shares all but the last byte with the other keys of its group.
        let base = keccak256([i & 0x07]).0;
        k[2..31].copy_from_slice(&base[2..31]);
    }
    B256::from(k)
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..40)
}

fn op_strategy() -> impl Strategy<Value = (u8, Option<Vec<u8>>)> {
    (0u8..64, prop::option::weighted(0.7, value_strategy()))
}

fn fresh_store(map: &BTreeMap<B256, Vec<u8>>) -> HashMap<Nibbles, Vec<u8>> {
    let mut trie = Trie::new();
    trie.update(
        map.iter()
            .map(|(k, v)| (Nibbles::unpack(k), Some(v.clone())))
            .collect(),
        &NoNodes,
    )
    .unwrap();
    let mut source = MapSource::default();
    source.apply(trie.take_changes());
    source.0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_hash_builder_through_persistence_and_eviction(
        blocks in prop::collection::vec(prop::collection::vec(op_strategy(), 1..24), 1..12),
        persist in prop::collection::vec(any::<bool>(), 12),
        evict_depth in prop::collection::vec(0usize..6, 12),
        probes in prop::collection::vec(0u8..64, 4),
    ) {
        let mut reference = BTreeMap::new();
        let mut trie = Trie::new();
        let mut source = MapSource::default();
        for (b, ops) in blocks.iter().enumerate() {
            let updates = ops
                .iter()
                .map(|(i, v)| (Nibbles::unpack(key(*i)), v.clone()))
                .collect();
            for (i, v) in ops {
                match v {
                    Some(v) => reference.insert(key(*i), v.clone()),
                    None => reference.remove(&key(*i)),
                };
            }
            trie.update(updates, &source).unwrap();
            let root = trie.root();
            prop_assert_eq!(root, reference_root(&reference), "block {}", b);
            if persist[b] {
                source.apply(trie.take_changes());
                // Exactly the nodes a fresh build stores: nothing stale left behind.
                prop_assert_eq!(&source.0, &fresh_store(&reference));
                trie.evict(evict_depth[b]);
                prop_assert_eq!(trie.root(), root);
            }
        }

        // Proofs of present and absent keys verify against the root.
        let root = trie.root();
        for i in probes {
            let k = key(i);
            let (proof, value) = trie.proof(&Nibbles::unpack(k), &source).unwrap();
            prop_assert_eq!(value.as_ref(), reference.get(&k));
            prop_assert!(verify_proof(root, Nibbles::unpack(k), value, &proof).is_ok());
        }

        // Reopened from the store by root alone, the trie reads and updates the same.
        source.apply(trie.take_changes());
        let mut reopened = Trie::from_root(root);
        for (k, v) in &reference {
            let got = reopened.get(&Nibbles::unpack(k), &source).unwrap();
            prop_assert_eq!(got.as_ref(), Some(v));
        }
        let all: Vec<Nibbles> = (0u8..64).map(|i| Nibbles::unpack(key(i))).collect();
        let got = Trie::from_root(root).get_many(&all, &source).unwrap();
        for (i, value) in got.iter().enumerate() {
            prop_assert_eq!(value.as_ref(), reference.get(&key(i as u8)));
        }
        let mut reopened = Trie::from_root(root);
        let last: Vec<_> = blocks[0]
            .iter()
            .map(|(i, _)| (Nibbles::unpack(key(*i)), None))
            .collect();
        for (n, _) in &last {
            reference.remove(&B256::from_slice(&n.pack()));
        }
        reopened.update(last, &source).unwrap();
        prop_assert_eq!(reopened.root(), reference_root(&reference));
    }
}

#[test]
fn large_batches_match_hash_builder() {
    // Big enough for the parallel update and hashing paths.
    let mut reference = BTreeMap::new();
    let mut trie = Trie::new();
    let mut source = MapSource::default();
    for round in 0u32..4 {
        let mut updates = Vec::new();
        for i in 0u32..5_000 {
            let k = keccak256((i * 7 + round).to_be_bytes());
            if (i + round) % 5 == 0 && round > 0 {
                let old = keccak256((i * 7 + round - 1).to_be_bytes());
                reference.remove(&old);
                updates.push((Nibbles::unpack(old), None));
            }
            let v = alloy_rlp::encode(u64::from(i) + 1_000 * u64::from(round));
            reference.insert(k, v.clone());
            updates.push((Nibbles::unpack(k), Some(v)));
        }
        trie.update(updates, &source).unwrap();
        assert_eq!(trie.root(), reference_root(&reference), "round {round}");
        source.apply(trie.take_changes());
        trie.evict(2);
        assert!(trie.stats().leaves == 0);
    }
}

#[test]
fn tampered_store_is_an_error_not_a_wrong_root() {
    let mut trie = Trie::new();
    let updates = (0u8..50)
        .map(|i| (Nibbles::unpack(keccak256([i])), Some(vec![i + 1])))
        .collect();
    trie.update(updates, &NoNodes).unwrap();
    let root = trie.root();
    let mut source = MapSource::default();
    source.apply(trie.take_changes());
    let victim = *source.0.keys().find(|p| p.len() == 1).unwrap();
    source.0.get_mut(&victim).unwrap()[5] ^= 1;
    let mut reopened = Trie::from_root(root);
    let key = (0u8..50)
        .map(|i| Nibbles::unpack(keccak256([i])))
        .find(|k| k.starts_with(&victim))
        .unwrap();
    let err = reopened.get(&key, &source).unwrap_err();
    assert!(matches!(err, TrieError::HashMismatch { .. }), "{err}");
    source.0.remove(&victim);
    let err = Trie::from_root(root).get(&key, &source).unwrap_err();
    assert!(matches!(err, TrieError::MissingNode { .. }), "{err}");
}

#[test]
fn empty_trie() {
    let mut trie = Trie::new();
    assert_eq!(trie.root(), alloy_trie::EMPTY_ROOT_HASH);
    let k = Nibbles::unpack(keccak256([1]));
    trie.insert(k, vec![1], &NoNodes).unwrap();
    trie.remove(k, &NoNodes).unwrap();
    assert!(trie.is_empty());
    assert_eq!(trie.root(), alloy_trie::EMPTY_ROOT_HASH);
    let (proof, value) = trie.proof(&k, &NoNodes).unwrap();
    assert!(proof.is_empty() && value.is_none());
}
