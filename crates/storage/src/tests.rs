use std::collections::BTreeMap;

use alloy_primitives::{Address, Bytes, U256, keccak256};
use pharos_executor::{MemoryState, StateView};
use pharos_primitives::{AccountChange, AccountState, ChainSpec, StateDiff};

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
        snap.compute_state_root().unwrap(),
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
    assert_eq!(snap.compute_state_root().unwrap(), memory.state_root());
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
