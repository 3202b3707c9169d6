use std::collections::BTreeMap;

use alloy_primitives::{Address, Bytes, U256, keccak256};
use pharos_executor::{MemoryState, StateView};
use pharos_primitives::{
    AccountChange, AccountState, ChainSpec, StateCommitment, StateDiff, binary_state as bs,
};

use super::*;

fn dev_spec() -> ChainSpec {
    ChainSpec::dev(1337).expect("dev spec")
}

fn memory_from_genesis(spec: &ChainSpec) -> MemoryState {
    let mut m = MemoryState::default();
    for (a, acc) in &spec.genesis().alloc {
        m.insert_account(
            *a,
            acc.nonce.unwrap_or(0),
            acc.balance,
            acc.code.clone(),
            [],
        );
    }
    m
}

fn next_header(store: &Store) -> Header {
    let head = store.head();
    Header {
        parent_hash: head.hash,
        number: head.header.number + 1,
        gas_limit: head.header.gas_limit,
        base_fee_per_gas: head.header.base_fee_per_gas,
        ..Default::default()
    }
}

fn sample_diff(n: u8) -> StateDiff {
    let mut diff = StateDiff::default();
    let code = Bytes::from(vec![0x60, n, 0x60, 0x00, 0x55]);
    let code_hash = keccak256(&code);
    diff.codes.insert(code_hash, code);
    let storage: BTreeMap<U256, U256> = (0..5u64)
        .map(|i| (U256::from(i), U256::from(i * n as u64)))
        .collect();
    diff.accounts.insert(
        Address::repeat_byte(n),
        AccountChange {
            info: Some(AccountState {
                nonce: 1,
                balance: U256::from(n),
                code_hash,
            }),
            storage_wiped: false,
            storage,
        },
    );
    diff
}

#[test]
fn genesis_state_root_matches_spec_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dev_spec();
    let store = Store::open(&dir.path().join("db"), &spec).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head().hash, spec.genesis_hash());
    assert_eq!(
        snap.compute_state_root(StateCommitment::Mpt).unwrap(),
        spec.genesis_header().state_root
    );
    assert_eq!(
        memory_from_genesis(&spec).state_root(),
        spec.genesis_header().state_root
    );
}

#[test]
fn committed_blocks_survive_reopen_and_roots_agree_with_memory() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dev_spec();
    let path = dir.path().join("db");
    let mut memory = memory_from_genesis(&spec);
    {
        let store = Store::open(&path, &spec).unwrap();
        for n in 1..=3u8 {
            let diff = sample_diff(n);
            memory.apply(&diff);
            let block = store
                .commit_block(next_header(&store), vec![], vec![], &diff)
                .unwrap();
            assert_eq!(block.header.state_root, memory.state_root());
        }
        // Wipe account 2's storage and delete account 3.
        let mut diff = StateDiff::default();
        diff.accounts.insert(
            Address::repeat_byte(2),
            AccountChange {
                info: Some(AccountState::with_balance(U256::from(5))),
                storage_wiped: true,
                storage: [(U256::from(9), U256::from(9))].into(),
            },
        );
        diff.accounts
            .insert(Address::repeat_byte(3), AccountChange::default());
        memory.apply(&diff);
        let block = store
            .commit_block(next_header(&store), vec![], vec![], &diff)
            .unwrap();
        assert_eq!(block.header.state_root, memory.state_root());
    }
    let store = Store::open(&path, &spec).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head().header.number, 4);
    assert_eq!(
        snap.compute_state_root(StateCommitment::Mpt).unwrap(),
        memory.state_root()
    );
    assert_eq!(
        snap.storage(Address::repeat_byte(2), U256::from(1))
            .unwrap(),
        U256::ZERO
    );
    assert_eq!(
        snap.storage(Address::repeat_byte(2), U256::from(9))
            .unwrap(),
        U256::from(9)
    );
    assert_eq!(snap.account(Address::repeat_byte(3)).unwrap(), None);
    assert_eq!(
        snap.storage(Address::repeat_byte(1), U256::from(4))
            .unwrap(),
        U256::from(4)
    );
    let code_hash = snap
        .account(Address::repeat_byte(1))
        .unwrap()
        .unwrap()
        .code_hash;
    assert!(snap.code(code_hash).unwrap().is_some());
    assert_eq!(snap.block_hash(4).unwrap(), snap.head().hash);
}

#[test]
fn other_chain_in_datadir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path, &dev_spec()).unwrap());
    let err = Store::open(&path, &ChainSpec::dev(99).unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::WrongChain { .. }), "{err}");
}

#[test]
fn block_not_on_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), &dev_spec()).unwrap();
    let mut header = next_header(&store);
    header.parent_hash = B256::repeat_byte(1);
    let err = store
        .commit_block(header, vec![], vec![], &StateDiff::default())
        .unwrap_err();
    assert!(matches!(err, StoreError::NotOnHead { .. }));
}

fn small_config(interval: u64, keep_depth: usize) -> StoreConfig {
    StoreConfig {
        commitment: CommitmentConfig {
            checkpoint_interval: interval,
            keep_depth,
            nomt_buckets: 4096,
            nomt_cache_mib: 8,
            nomt_commit_interval: interval,
        },
        flat: FlatConfig {
            checkpoint_interval: interval + 1,
        },
    }
}

/// The pipeline's use: block N+1 is merkleized before block N is persisted (a persist stage on
/// another thread), with trie checkpoints due on every block. Roots equal committing one block at
/// a time; reads between the stages see the head only; a block merkleized but never persisted is
/// gone after a reopen and the chain continues from the head.
#[test]
fn merkleize_ahead_of_persist_matches_one_at_a_time() {
    let spec = dev_spec();
    let dir = tempfile::tempdir().unwrap();
    let reference = Store::open_with(&dir.path().join("ref"), &spec, small_config(1, 1)).unwrap();
    let mut roots = Vec::new();
    for n in 1..=6u8 {
        let b = reference
            .commit_block(next_header(&reference), vec![], vec![], &sample_diff(n))
            .unwrap();
        roots.push(b.header.state_root);
    }

    let path = dir.path().join("pipe");
    let store = Arc::new(Store::open_with(&path, &spec, small_config(1, 1)).unwrap());
    let (tx, rx) = std::sync::mpsc::sync_channel::<SealedBlock>(1);
    let persister = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut persisted = Vec::new();
            for sealed in rx {
                let number = sealed.block.number();
                // Before persisting, the head is the previous block.
                assert_eq!(store.head().header.number, number - 1);
                persisted.push(store.persist(sealed).unwrap().header.state_root);
            }
            persisted
        })
    };
    let mut parent = store.head().hash;
    for n in 1..=6u8 {
        let header = Header {
            parent_hash: parent,
            number: n as u64,
            gas_limit: spec.genesis_header().gas_limit,
            ..Default::default()
        };
        let sealed = store
            .merkleize(header, vec![], vec![], &sample_diff(n))
            .unwrap();
        assert_eq!(sealed.block.header.state_root, roots[n as usize - 1]);
        assert_eq!(store.tip(), (n as u64, sealed.block.hash));
        parent = sealed.block.hash;
        tx.send(sealed).unwrap();
    }
    drop(tx);
    assert_eq!(persister.join().unwrap(), roots);
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head().header.number, 6);
    assert_eq!(
        snap.account(Address::repeat_byte(6))
            .unwrap()
            .map(|a| a.balance),
        Some(U256::from(6))
    );

    // Merkleized, never persisted: not the head, and gone after a reopen.
    let header = next_header(&store);
    let sealed = store
        .merkleize(header.clone(), vec![], vec![], &sample_diff(7))
        .unwrap();
    assert_eq!(store.head().header.number, 6);
    assert!(
        store
            .snapshot()
            .unwrap()
            .account(Address::repeat_byte(7))
            .unwrap()
            .is_none()
    );
    drop(sealed);
    drop(Arc::into_inner(store).expect("only owner"));
    let store = Store::open_with(&path, &spec, small_config(1, 1)).unwrap();
    assert_eq!(store.head().header.number, 6);
    let again = store
        .commit_block(header, vec![], vec![], &sample_diff(7))
        .unwrap();
    let expected = reference
        .commit_block(next_header(&reference), vec![], vec![], &sample_diff(7))
        .unwrap();
    assert_eq!(again.header.state_root, expected.header.state_root);
}

mod random_blocks {
    use alloy_trie::{Nibbles, proof::verify_proof};
    use proptest::prelude::*;

    use super::*;

    fn address(i: u8) -> Address {
        Address::repeat_byte(i + 1)
    }

    /// Account index, new (nonce, balance) or deletion, storage wiped, (slot, value) writes.
    type Change = (u8, Option<(u64, u64)>, bool, Vec<(u8, u8)>);

    fn change_strategy() -> impl Strategy<Value = Change> {
        (
            0u8..12,
            prop::option::weighted(0.9, (0u64..5, 0u64..1_000)),
            prop::bool::weighted(0.08),
            prop::collection::vec((0u8..24, 0u8..4), 0..6),
        )
    }

    fn diff_of(changes: &[Change]) -> StateDiff {
        let mut diff = StateDiff::default();
        for (who, info, wiped, slots) in changes {
            let change = AccountChange {
                info: info.map(|(nonce, balance)| AccountState {
                    nonce,
                    balance: U256::from(balance),
                    code_hash: alloy_primitives::KECCAK256_EMPTY,
                }),
                storage_wiped: *wiped,
                storage: if info.is_some() {
                    slots
                        .iter()
                        .map(|(s, v)| (U256::from(*s), U256::from(*v)))
                        .collect()
                } else {
                    Default::default()
                },
            };
            diff.accounts.insert(address(*who), change);
        }
        diff
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random blocks (deletions, wipes, slot writes and clears) committed through
        /// checkpoints, eviction, clean restarts and crashes: every root equals an independent
        /// in-memory computation, and proofs verify.
        #[test]
        fn roots_proofs_and_recovery(
            blocks in prop::collection::vec(prop::collection::vec(change_strategy(), 1..8), 1..16),
            interval in 1u64..5,
            keep_depth in 0usize..4,
            restarts in prop::collection::vec((any::<bool>(), any::<bool>()), 16),
            probe in (0u8..12, prop::collection::vec(0u8..24, 0..3)),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let spec = dev_spec();
            let path = dir.path().join("db");
            let mut memory = memory_from_genesis(&spec);
            let mut store = Store::open_with(&path, &spec, small_config(interval, keep_depth)).unwrap();
            for (b, changes) in blocks.iter().enumerate() {
                let diff = diff_of(changes);
                memory.apply(&diff);
                let block = store
                    .commit_block(next_header(&store), vec![], vec![], &diff)
                    .unwrap();
                prop_assert_eq!(block.header.state_root, memory.state_root(), "block {}", b + 1);
                let (restart, crash) = restarts[b];
                if restart {
                    if crash {
                        store.close_without_checkpoint();
                    } else {
                        drop(store);
                    }
                    store = Store::open_with(&path, &spec, small_config(interval, keep_depth)).unwrap();
                    prop_assert_eq!(store.head().header.state_root, memory.state_root());
                    let recovery = store.trie_recovery().unwrap();
                    if crash {
                        prop_assert!(matches!(recovery, Recovery::Replayed(_) | Recovery::Clean), "{:?}", recovery);
                    } else {
                        prop_assert_eq!(recovery, Recovery::Clean);
                    }
                }
            }
            // Reads through the blocks not yet in the tables, then after writing them.
            for flushed in [false, true] {
                if flushed {
                    store.flush().unwrap();
                }
                let snap = store.snapshot().unwrap();
                for i in 0u8..12 {
                    prop_assert_eq!(
                        snap.account(address(i)).unwrap(),
                        memory.account(address(i)).unwrap()
                    );
                    for s in 0u8..24 {
                        prop_assert_eq!(
                            snap.storage(address(i), U256::from(s)).unwrap(),
                            memory.storage(address(i), U256::from(s)).unwrap()
                        );
                    }
                }
            }
            let snap = store.snapshot().unwrap();
            prop_assert_eq!(snap.compute_state_root(StateCommitment::Mpt).unwrap(), memory.state_root());

            let (who, slots) = probe;
            let slots: Vec<U256> = slots.into_iter().map(U256::from).collect();
            let proof = store.proof(address(who), &slots).unwrap();
            let root = store.head().header.state_root;
            prop_assert_eq!(proof.state_root, root);
            let account = snap.account(address(who)).unwrap();
            let expected_leaf = account.map(|_| alloy_rlp::encode(proof.account));
            if let Some(state) = account {
                prop_assert_eq!(proof.account.balance, state.balance);
                prop_assert_eq!(proof.account.nonce, state.nonce);
            }
            prop_assert!(verify_proof(
                root,
                Nibbles::unpack(keccak256(address(who))),
                expected_leaf,
                &proof.account_proof,
            ).is_ok());
            for (slot, value, nodes) in &proof.storage {
                prop_assert_eq!(*value, snap.storage(address(who), *slot).unwrap());
                let expected = (!value.is_zero()).then(|| alloy_rlp::encode(value));
                prop_assert!(verify_proof(
                    proof.account.storage_root,
                    Nibbles::unpack(keccak256(slot.to_be_bytes::<32>())),
                    expected,
                    nodes,
                ).is_ok());
            }
        }
    }
    /// The `nomt` root of an in-memory state, straight from the documented layout.
    fn binary_root(memory: &MemoryState) -> B256 {
        let mut leaves = Vec::new();
        for (address, state) in &memory.accounts {
            let hashed = keccak256(address);
            leaves.push((
                bs::account_key(&hashed),
                bs::account_value(state.nonce, state.balance, state.code_hash),
            ));
            for (slot, value) in memory.storage.get(address).into_iter().flatten() {
                if !value.is_zero() {
                    leaves.push((
                        bs::slot_key(&hashed, &keccak256(slot.to_be_bytes::<32>())),
                        bs::slot_value(*value),
                    ));
                }
            }
        }
        bs::root(leaves)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// The same random blocks under the `nomt` commitment: roots equal the documented
        /// binary tree over the in-memory state, through commits, restarts and crashes (journal
        /// replay, or a rebuild when the journal clears storage); proofs verify with the
        /// documented algorithm.
        #[test]
        fn nomt_roots_proofs_and_recovery(
            blocks in prop::collection::vec(prop::collection::vec(change_strategy(), 1..8), 1..12),
            interval in 1u64..4,
            restarts in prop::collection::vec((any::<bool>(), any::<bool>()), 12),
            probe in (0u8..12, prop::collection::vec(0u8..24, 0..3)),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let spec = ChainSpec::dev_with(1337, StateCommitment::Nomt).unwrap();
            let path = dir.path().join("db");
            let mut memory = memory_from_genesis(&spec);
            prop_assert_eq!(spec.genesis_header().state_root, binary_root(&memory));
            let config = || small_config(interval, 2);
            let mut store = Store::open_with(&path, &spec, config()).unwrap();
            for (b, changes) in blocks.iter().enumerate() {
                let diff = diff_of(changes);
                memory.apply(&diff);
                let block = store
                    .commit_block(next_header(&store), vec![], vec![], &diff)
                    .unwrap();
                prop_assert_eq!(block.header.state_root, binary_root(&memory), "block {}", b + 1);
                let (restart, crash) = restarts[b];
                if restart {
                    if crash {
                        store.close_without_checkpoint();
                    } else {
                        drop(store);
                    }
                    store = Store::open_with(&path, &spec, config()).unwrap();
                    prop_assert_eq!(store.head().header.state_root, binary_root(&memory));
                }
            }
            store.flush().unwrap();
            let snap = store.snapshot().unwrap();
            prop_assert_eq!(snap.compute_state_root(StateCommitment::Nomt).unwrap(), binary_root(&memory));

            let (who, slots) = probe;
            let slots: Vec<U256> = slots.into_iter().map(U256::from).collect();
            let proof = store.proof(address(who), &slots).unwrap();
            let root = store.head().header.state_root;
            prop_assert_eq!(proof.state_root, root);
            let hashed = keccak256(address(who));
            let proven = bs::verify_proof(root, &bs::account_key(&hashed), &proof.account_proof).unwrap();
            let expected = snap
                .account(address(who))
                .unwrap()
                .map(|s| bs::value_hash(&bs::account_value(s.nonce, s.balance, s.code_hash)));
            prop_assert_eq!(proven, expected);
            for (slot, value, nodes) in &proof.storage {
                prop_assert_eq!(*value, snap.storage(address(who), *slot).unwrap());
                let key = bs::slot_key(&hashed, &keccak256(slot.to_be_bytes::<32>()));
                let proven = bs::verify_proof(root, &key, nodes).unwrap();
                prop_assert_eq!(proven, (!value.is_zero()).then(|| bs::value_hash(&bs::slot_value(*value))));
            }
            // A tampered sibling fails.
            if proof.account_proof.len() > 1 {
                let mut bad = proof.account_proof.clone();
                let mut sibling = bad[1].to_vec();
                sibling[5] ^= 1;
                bad[1] = sibling.into();
                prop_assert!(bs::verify_proof(root, &bs::account_key(&hashed), &bad).is_err());
            }
        }
    }
}

#[test]
fn lost_or_damaged_trie_store_is_rebuilt_from_flat_state() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dev_spec();
    let path = dir.path().join("db");
    let mut memory = memory_from_genesis(&spec);
    {
        let store = Store::open_with(&path, &spec, small_config(2, 1)).unwrap();
        for n in 1..=5u8 {
            let diff = sample_diff(n);
            memory.apply(&diff);
            store
                .commit_block(next_header(&store), vec![], vec![], &diff)
                .unwrap();
        }
    }
    let trie_path = dir.path().join("db.trie");
    assert!(trie_path.exists());
    // Lost: rebuilt from the flat state.
    std::fs::remove_file(&trie_path).unwrap();
    {
        let store = Store::open(&path, &spec).unwrap();
        assert_eq!(store.trie_recovery(), Some(Recovery::Rebuilt));
        assert_eq!(store.head().header.number, 5);
        let diff = sample_diff(6);
        memory.apply(&diff);
        let block = store
            .commit_block(next_header(&store), vec![], vec![], &diff)
            .unwrap();
        assert_eq!(block.header.state_root, memory.state_root());
        store.close_without_checkpoint();
    }
    // Damaged: every stored node's bytes flipped. Replay fails its hash checks and the trie is
    // rebuilt; the chain carries on with the right roots.
    {
        let db = redb::Database::open(&trie_path).unwrap();
        use redb::ReadableTable;
        let nodes: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("trie_nodes");
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(nodes).unwrap();
            let entries: Vec<(Vec<u8>, Vec<u8>)> = table
                .iter()
                .unwrap()
                .map(|e| {
                    let (k, v) = e.unwrap();
                    let mut v = v.value().to_vec();
                    let last = v.len() - 1;
                    v[last] ^= 0x01;
                    (k.value().to_vec(), v)
                })
                .collect();
            for (k, v) in entries {
                table.insert(k.as_slice(), v.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path, &spec).unwrap();
    assert_eq!(store.trie_recovery(), Some(Recovery::Rebuilt));
    let diff = sample_diff(7);
    memory.apply(&diff);
    let block = store
        .commit_block(next_header(&store), vec![], vec![], &diff)
        .unwrap();
    assert_eq!(block.header.state_root, memory.state_root());
}

/// A transaction's location is found through the pending index and, after the index interval,
/// the table; a snapshot never sees it while its head is below the transaction's block.
#[test]
fn tx_locations_follow_the_snapshot_head() {
    use alloy_consensus::{Signed, TxEnvelope, TxLegacy};
    use pharos_primitives::RecoveredTx;

    let dir = tempfile::tempdir().unwrap();
    let spec = dev_spec();
    let path = dir.path().join("db");
    let store = Store::open(&path, &spec).unwrap();
    let genesis = store.head();
    let mut hashes = Vec::new();
    for n in 0..20u64 {
        let tx = TxLegacy {
            chain_id: Some(1337),
            nonce: n,
            gas_limit: 21_000,
            ..Default::default()
        };
        let signed = Signed::new_unhashed(tx, alloy_primitives::Signature::test_signature());
        let tx = Arc::new(RecoveredTx::new_unchecked(
            TxEnvelope::Legacy(signed),
            Address::repeat_byte(1),
        ));
        hashes.push(tx.hash());
        store
            .commit_block(next_header(&store), vec![tx], vec![], &StateDiff::default())
            .unwrap();
    }
    let snap = store.snapshot().unwrap();
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(snap.tx_location(*hash).unwrap(), Some((i as u64 + 1, 0)));
    }
    // A snapshot at genesis, taken with everything committed: nothing above its head shows.
    let old = Snapshot::open(&store.db, Some(genesis), None, Some(&store.tx_pending)).unwrap();
    for hash in &hashes {
        assert_eq!(old.tx_location(*hash).unwrap(), None);
    }
    // After a restart the pending locations come back from the bodies.
    drop(snap);
    drop(old);
    drop(store);
    let store = Store::open(&path, &spec).unwrap();
    let snap = store.snapshot().unwrap();
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(snap.tx_location(*hash).unwrap(), Some((i as u64 + 1, 0)));
    }
}
