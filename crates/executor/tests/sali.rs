//! Static access-list inference on real contracts: an OpenZeppelin ERC-20 transfer resolves to
//! exactly the two balance slots of the caller and the recipient, and a swap through the helper
//! reaches the pair's reserves and the balances the helper moves.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolCall;
use pharos_evm::BlockContext;
use pharos_executor::{
    BlockExecutor, CodeCache, MemoryState, SequentialExecutor, StateView,
    parallel::{
        base::BaseState,
        sali::{Analyzer, Resolved, TemplateCache},
        types::Location,
    },
};
use pharos_primitives::RecoveredTx;
use pharos_workload::{
    erc20,
    scenario::{UniswapArtifacts, Universe, UniverseConfig, swapExactInCall},
};

fn setup(pairs: usize) -> Option<(Universe, MemoryState)> {
    let uniswap = match UniswapArtifacts::load(&UniswapArtifacts::default_dir()) {
        Some(u) => Some(u.expect("artifacts parse")),
        None if pairs > 0 => return None,
        None => None,
    };
    let mut config = UniverseConfig::new(1337, 4);
    config.tokens = 2;
    config.pairs = pairs;
    let u = Universe::build(&config, uniswap.as_ref()).expect("universe");
    let mut state = MemoryState::default();
    for (a, b) in &u.genesis {
        state.insert_account(*a, 0, *b, None, []);
    }
    let exec = SequentialExecutor::new(1337, Arc::new(CodeCache::default()));
    for (n, txs) in u.setup.iter().enumerate() {
        let txs: Vec<Arc<RecoveredTx>> = txs.iter().cloned().map(Arc::new).collect();
        let ctx = BlockContext {
            number: n as u64 + 1,
            timestamp: 1,
            beneficiary: Address::ZERO,
            gas_limit: 1_000_000_000,
            base_fee: 1_000_000_000,
            prevrandao: B256::ZERO,
            excess_blob_gas: 0,
        };
        let out = exec.execute(&ctx, &txs, &state).expect("setup");
        state.apply(&out.diff);
    }
    Some((u, state))
}

fn mapping_slot(key: Address, slot: u64) -> U256 {
    let mut buf = [0u8; 64];
    buf[12..32].copy_from_slice(key.as_slice());
    buf[32..].copy_from_slice(&U256::from(slot).to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(buf).0)
}

#[test]
fn erc20_transfer_resolves_to_the_two_balance_slots() {
    let (u, state) = setup(0).expect("universe without pairs");
    let base = BaseState::new(&state);
    let token = u.tokens[0];
    let code_hash = state.account(token).unwrap().unwrap().code_hash;
    let (caller, to) = (u.wallets[0].address(), Address::repeat_byte(0x77));
    let resolved = Analyzer::default()
        .resolve(
            &base,
            code_hash,
            token,
            caller,
            &erc20::transfer(to, U256::from(5)),
            &mut TemplateCache::default(),
        )
        .unwrap();
    let Resolved::Complete(accesses) = resolved else {
        panic!("transfer should resolve completely: {resolved:?}");
    };
    let mut writes = accesses.writes.clone();
    writes.sort();
    writes.dedup();
    let mut expected = vec![
        Location::Storage(token, mapping_slot(caller, 0)),
        Location::Storage(token, mapping_slot(to, 0)),
    ];
    expected.sort();
    assert_eq!(
        writes, expected,
        "writes: exactly the two balances, no totalSupply"
    );
}

#[test]
fn swap_through_the_helper_reaches_pair_and_token_balances() {
    let Some((u, state)) = setup(1) else {
        eprintln!("Uniswap artifacts missing (npm ci in tests/e2e): skipped");
        return;
    };
    let base = BaseState::new(&state);
    let pair = u.pairs[0];
    let caller = u.wallets[1].address();
    let call = swapExactInCall {
        pair: pair.pair,
        tokenIn: pair.tokens[0],
        amountIn: U256::from(1000),
        minOut: U256::ZERO,
    }
    .abi_encode();
    let code_hash = state.account(u.helper).unwrap().unwrap().code_hash;
    let resolved = Analyzer::default()
        .resolve(
            &base,
            code_hash,
            u.helper,
            caller,
            &call,
            &mut TemplateCache::default(),
        )
        .unwrap();
    let accesses = match resolved {
        Resolved::Complete(a) | Resolved::Partial(a) => a,
    };
    let touched: Vec<Location> = accesses
        .reads
        .iter()
        .chain(&accesses.writes)
        .copied()
        .collect();
    // The pair's reserves slot (8) is read and written.
    assert!(
        accesses
            .writes
            .contains(&Location::Storage(pair.pair, U256::from(8))),
        "{touched:?}"
    );
    // The caller pays: its balance of the input token.
    assert!(
        touched.contains(&Location::Storage(pair.tokens[0], mapping_slot(caller, 0))),
        "{touched:?}"
    );
    // The pair's balance of the input token (the helper pays it). What the pair itself calls
    // (its token transfers) is beyond the followed depth and left to the executor's check.
    assert!(
        accesses.writes.contains(&Location::Storage(
            pair.tokens[0],
            mapping_slot(pair.pair, 0)
        )),
        "{touched:?}"
    );
}
