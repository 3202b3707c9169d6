//! The sequential executor on hand-built blocks: fees, rejections, contracts, EIP-7702.

use std::sync::Arc;

use alloy_consensus::{TxEip7702, TypedTransaction};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use pharos_evm::BlockContext;
use pharos_executor::{
    BlockExecutor, CodeCache, MemoryState, SequentialExecutor, TxResult, TxStatus,
};
use pharos_primitives::RecoveredTx;
use pharos_workload::{TxBuilder, Wallet};

const CHAIN: u64 = 1337;
const BASE_FEE: u64 = 1_000_000_000;
const COINBASE: Address = Address::repeat_byte(0xcb);

fn block() -> BlockContext {
    BlockContext {
        number: 1,
        timestamp: 1_700_000_000,
        beneficiary: COINBASE,
        gas_limit: 30_000_000,
        base_fee: BASE_FEE,
        prevrandao: B256::repeat_byte(7),
        excess_blob_gas: 0,
    }
}

fn funded(wallets: &[&Wallet]) -> MemoryState {
    let mut state = MemoryState::default();
    for w in wallets {
        state.insert_account(w.address(), 0, U256::from(10u128.pow(20)), None, []);
    }
    state
}

fn run(state: &MemoryState, txs: Vec<RecoveredTx>) -> pharos_executor::BlockOutput {
    let exec = SequentialExecutor::new(CHAIN, Arc::new(CodeCache::default()));
    let txs: Vec<Arc<RecoveredTx>> = txs.into_iter().map(Arc::new).collect();
    exec.execute(&block(), &txs, state).expect("block executes")
}

#[test]
fn transfer_burns_base_fee_and_pays_tip_to_coinbase() {
    let alice = Wallet::from_index(1);
    let bob = Address::repeat_byte(0xb0);
    let mut state = funded(&[&alice]);
    let b = TxBuilder::new(CHAIN);
    let out = run(
        &state,
        vec![alice.sign_recovered(b.transfer(0, bob, U256::from(5)))],
    );
    let outcome = out.results[0].outcome().expect("included");
    assert_eq!(outcome.status, TxStatus::Success);
    assert_eq!(outcome.gas_used, 21_000);
    state.apply(&out.diff);
    assert_eq!(state.accounts[&bob].balance, U256::from(5));
    let tip = U256::from(21_000u64 * b.max_priority_fee_per_gas as u64);
    assert_eq!(state.accounts[&COINBASE].balance, tip);
    let paid = U256::from(21_000u64) * U256::from(BASE_FEE + b.max_priority_fee_per_gas as u64);
    assert_eq!(
        state.accounts[&alice.address()].balance,
        U256::from(10u128.pow(20)) - paid - U256::from(5)
    );
    assert_eq!(state.accounts[&alice.address()].nonce, 1);
}

#[test]
fn invalid_transactions_are_rejected_and_change_nothing() {
    let alice = Wallet::from_index(2);
    let poor = Wallet::from_index(3);
    let state = funded(&[&alice]);
    let b = TxBuilder::new(CHAIN);
    let out = run(
        &state,
        vec![
            alice.sign_recovered(b.transfer(5, Address::ZERO, U256::ZERO)),
            poor.sign_recovered(b.transfer(0, Address::ZERO, U256::ZERO)),
            alice.sign_recovered(b.transfer(0, Address::ZERO, U256::ZERO)),
        ],
    );
    assert!(matches!(out.results[0], TxResult::Rejected(_)));
    assert!(matches!(out.results[1], TxResult::Rejected(_)));
    assert!(out.results[2].outcome().is_some());
    assert_eq!(out.gas_used, 21_000);
    assert!(!out.diff.accounts.contains_key(&poor.address()));
}

#[test]
fn deploys_a_contract_and_calls_it() {
    let alice = Wallet::from_index(4);
    let mut state = funded(&[&alice]);
    let b = TxBuilder::new(CHAIN);
    // Runtime: SSTORE(0, CALLDATALOAD(0)); init code copies it out.
    let runtime = [0x60, 0x00, 0x35, 0x60, 0x00, 0x55, 0x00];
    let mut init = vec![
        0x60,
        runtime.len() as u8,
        0x60,
        0x0c,
        0x60,
        0x00,
        0x39,
        0x60,
        runtime.len() as u8,
        0x60,
        0x00,
        0xf3,
    ];
    init.extend_from_slice(&runtime);
    let deploy =
        alice.sign_recovered(b.eip1559(0, TxKind::Create, U256::ZERO, init.into(), 200_000));
    let contract = alice.address().create(0);
    let mut calldata = [0u8; 32];
    calldata[31] = 42;
    let call = alice.sign_recovered(b.eip1559(
        1,
        TxKind::Call(contract),
        U256::ZERO,
        Bytes::copy_from_slice(&calldata),
        100_000,
    ));
    let out = run(&state, vec![deploy, call]);
    let created = out.results[0].outcome().expect("deployed");
    assert_eq!(created.created, Some(contract));
    assert!(out.results[1].outcome().expect("called").success());
    state.apply(&out.diff);
    assert_eq!(state.accounts[&contract].code_hash, keccak256(runtime));
    assert_eq!(state.storage[&contract][&U256::ZERO], U256::from(42));
}

#[test]
fn reverts_keep_gas_and_nonce_but_not_writes() {
    let alice = Wallet::from_index(5);
    let target = Address::repeat_byte(0xee);
    let mut state = funded(&[&alice]);
    // SSTORE(0, 1) then REVERT(0, 0).
    state.insert_account(
        target,
        1,
        U256::ZERO,
        Some(Bytes::from_static(&[
            0x60, 0x01, 0x60, 0x00, 0x55, 0x60, 0x00, 0x60, 0x00, 0xfd,
        ])),
        [],
    );
    let b = TxBuilder::new(CHAIN);
    let out = run(
        &state,
        vec![alice.sign_recovered(b.eip1559(
            0,
            TxKind::Call(target),
            U256::ZERO,
            Bytes::new(),
            100_000,
        ))],
    );
    let outcome = out.results[0].outcome().expect("included");
    assert_eq!(outcome.status, TxStatus::Revert);
    assert!(outcome.gas_used > 21_000);
    state.apply(&out.diff);
    assert!(!state.storage.contains_key(&target));
    assert_eq!(state.accounts[&alice.address()].nonce, 1);
}

#[test]
fn eip7702_authorization_delegates_code() {
    let sponsor = Wallet::from_index(6);
    let authority = Wallet::from_index(7);
    let delegate = Address::repeat_byte(0xde);
    let mut state = funded(&[&sponsor, &authority]);
    let auth = authority.sign_authorization(CHAIN, delegate, 0);
    let tx = TypedTransaction::Eip7702(TxEip7702 {
        chain_id: CHAIN,
        nonce: 0,
        gas_limit: 100_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1,
        to: authority.address(),
        value: U256::ZERO,
        access_list: Default::default(),
        authorization_list: vec![auth],
        input: Bytes::new(),
    });
    let signed = sponsor.sign(tx);
    // Decoded from the wire like any other transaction.
    let recovered =
        RecoveredTx::decode_and_recover(&pharos_workload::raw(&signed)).expect("decodes");
    assert_eq!(recovered.sender(), sponsor.address());
    assert_eq!(recovered.tx_type() as u8, 4);
    let out = run(&state, vec![recovered]);
    assert!(out.results[0].outcome().expect("included").success());
    state.apply(&out.diff);
    let account = state.accounts[&authority.address()];
    assert_eq!(
        account.nonce, 1,
        "authorization bumps the authority's nonce"
    );
    let mut designator = vec![0xef, 0x01, 0x00];
    designator.extend_from_slice(delegate.as_slice());
    assert_eq!(
        state.codes[&account.code_hash].as_ref(),
        designator.as_slice()
    );
}
