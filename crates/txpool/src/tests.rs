use alloy_primitives::{Address, Bytes, TxKind, U256};
use pharos_executor::MemoryState;
use pharos_workload::{TxBuilder, Wallet};

use super::*;

const CHAIN: u64 = 1337;
const BASE_FEE: u64 = 1_000_000_000;

fn setup(wallets: &[Wallet]) -> (TxPool, MemoryState) {
    let mut state = MemoryState::default();
    for w in wallets {
        state.insert_account(w.address(), 0, U256::from(10u128.pow(21)), None, []);
    }
    (TxPool::new(PoolConfig::new(CHAIN, 30_000_000)), state)
}

fn transfer(w: &Wallet, nonce: u64) -> RecoveredTx {
    w.sign_recovered(TxBuilder::new(CHAIN).transfer(nonce, Address::repeat_byte(9), U256::from(1)))
}

#[test]
fn geth_errors_for_bad_transactions() {
    let w = Wallet::from_index(1);
    let (pool, mut state) = setup(std::slice::from_ref(&w));
    state.insert_account(w.address(), 5, U256::from(10u128.pow(21)), None, []);

    let err = pool.add(transfer(&w, 4), &state, BASE_FEE).unwrap_err();
    assert!(err.to_string().starts_with("nonce too low"), "{err}");

    let other_chain = w.sign_recovered(TxBuilder::new(1).transfer(5, Address::ZERO, U256::ZERO));
    let err = pool.add(other_chain, &state, BASE_FEE).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid chain id for signer"),
        "{err}"
    );

    let b = TxBuilder::new(CHAIN);
    let low_gas = w.sign_recovered(b.eip1559(
        5,
        TxKind::Call(Address::ZERO),
        U256::ZERO,
        Bytes::new(),
        20_000,
    ));
    let err = pool.add(low_gas, &state, BASE_FEE).unwrap_err();
    assert!(
        err.to_string().starts_with("intrinsic gas too low"),
        "{err}"
    );

    let rich = w.sign_recovered(b.transfer(5, Address::ZERO, U256::from(10u128.pow(22))));
    let err = pool.add(rich, &state, BASE_FEE).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("insufficient funds for gas * price + value"),
        "{err}"
    );

    let cheap = TxBuilder {
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        ..b
    };
    let err = pool
        .add(
            w.sign_recovered(cheap.transfer(5, Address::ZERO, U256::ZERO)),
            &state,
            BASE_FEE,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("max fee per gas less than block base fee"),
        "{err}"
    );

    let tip_above = TxBuilder {
        max_fee_per_gas: 2 * BASE_FEE as u128,
        max_priority_fee_per_gas: 3 * BASE_FEE as u128,
        ..b
    };
    let err = pool
        .add(
            w.sign_recovered(tip_above.transfer(5, Address::ZERO, U256::ZERO)),
            &state,
            BASE_FEE,
        )
        .unwrap_err();
    assert_eq!(err, PoolError::TipAboveFeeCap);

    let huge = w.sign_recovered(b.eip1559(
        5,
        TxKind::Call(Address::ZERO),
        U256::ZERO,
        Bytes::new(),
        40_000_000,
    ));
    assert_eq!(
        pool.add(huge, &state, BASE_FEE).unwrap_err(),
        PoolError::ExceedsBlockGasLimit
    );
    assert!(pool.is_empty());
}

#[test]
fn replacement_needs_ten_percent_more() {
    let w = Wallet::from_index(2);
    let (pool, state) = setup(std::slice::from_ref(&w));
    let b = TxBuilder::new(CHAIN);
    pool.add(
        w.sign_recovered(b.transfer(0, Address::ZERO, U256::ZERO)),
        &state,
        BASE_FEE,
    )
    .unwrap();
    let same = w.sign_recovered(b.transfer(0, Address::ZERO, U256::ZERO));
    assert_eq!(
        pool.add(same, &state, BASE_FEE).unwrap_err(),
        PoolError::AlreadyKnown
    );
    let slightly = TxBuilder {
        max_fee_per_gas: b.max_fee_per_gas + 1,
        max_priority_fee_per_gas: b.max_priority_fee_per_gas + 1,
        ..b
    };
    let err = pool
        .add(
            w.sign_recovered(slightly.transfer(0, Address::ZERO, U256::ZERO)),
            &state,
            BASE_FEE,
        )
        .unwrap_err();
    assert_eq!(err, PoolError::ReplacementUnderpriced);
    let bumped = TxBuilder {
        max_fee_per_gas: b.max_fee_per_gas * 2,
        max_priority_fee_per_gas: b.max_priority_fee_per_gas * 2,
        ..b
    };
    let new = w.sign_recovered(bumped.transfer(0, Address::ZERO, U256::ZERO));
    let new_hash = new.hash();
    pool.add(new, &state, BASE_FEE).unwrap();
    assert_eq!(pool.len(), 1);
    assert!(pool.get(&new_hash).is_some());
}

#[test]
fn pending_queued_and_best_order() {
    let a = Wallet::from_index(3);
    let c = Wallet::from_index(4);
    let (pool, state) = setup(&[a.clone(), c.clone()]);
    // a: nonces 0, 1, 3 (3 is queued behind a gap); c: nonce 0 with a higher tip.
    for n in [0, 1, 3] {
        pool.add(transfer(&a, n), &state, BASE_FEE).unwrap();
    }
    let rich_tip = TxBuilder {
        max_priority_fee_per_gas: 5_000_000_000,
        ..TxBuilder::new(CHAIN)
    };
    pool.add(
        c.sign_recovered(rich_tip.transfer(0, Address::ZERO, U256::ZERO)),
        &state,
        BASE_FEE,
    )
    .unwrap();
    assert_eq!(
        pool.status(),
        PoolStatus {
            pending: 3,
            queued: 1
        }
    );
    assert_eq!(pool.pending_nonce(a.address(), 0), 2);

    let best = pool.best_transactions(BASE_FEE, 30_000_000, 100);
    let order: Vec<(Address, u64)> = best.iter().map(|t| (t.sender(), t.nonce())).collect();
    assert_eq!(
        order,
        vec![(c.address(), 0), (a.address(), 0), (a.address(), 1)]
    );

    // Gas budget for two transfers only.
    assert_eq!(pool.best_transactions(BASE_FEE, 42_000, 100).len(), 2);

    // After a block including a's first two and c's, only a's nonce 3 stays (queued).
    let mut after = state.clone();
    after.insert_account(a.address(), 2, U256::from(10u128.pow(21)), None, []);
    after.insert_account(c.address(), 1, U256::from(10u128.pow(21)), None, []);
    pool.on_executed(1, &best, &[], &after).unwrap();
    pool.on_committed(1);
    assert_eq!(
        pool.status(),
        PoolStatus {
            pending: 0,
            queued: 1
        }
    );
    pool.add(transfer(&a, 2), &after, BASE_FEE).unwrap();
    assert_eq!(
        pool.status(),
        PoolStatus {
            pending: 2,
            queued: 0
        }
    );
}

#[test]
fn limits_hold() {
    let w = Wallet::from_index(5);
    let (_, state) = setup(std::slice::from_ref(&w));
    let mut config = PoolConfig::new(CHAIN, 30_000_000);
    config.max_per_sender = 2;
    let pool = TxPool::new(config);
    pool.add(transfer(&w, 0), &state, BASE_FEE).unwrap();
    pool.add(transfer(&w, 1), &state, BASE_FEE).unwrap();
    assert!(matches!(
        pool.add(transfer(&w, 2), &state, BASE_FEE),
        Err(PoolError::AccountLimit { .. })
    ));
}

#[test]
fn parallel_recovery_keeps_order_and_reports_bad_input() {
    let w = Wallet::from_index(6);
    let b = TxBuilder::new(CHAIN);
    let mut raws: Vec<Vec<u8>> = (0..16)
        .map(|n| pharos_workload::raw(&w.sign(b.transfer(n, Address::ZERO, U256::ZERO))).to_vec())
        .collect();
    raws[5] = vec![0xde, 0xad];
    let out = recover_batch(&raws);
    assert_eq!(out.len(), 16);
    assert!(out[5].is_err());
    for (i, r) in out.iter().enumerate().filter(|(i, _)| *i != 5) {
        let tx = r.as_ref().unwrap();
        assert_eq!(tx.nonce(), i as u64);
        assert_eq!(tx.sender(), w.address());
    }
}

/// A pipelined producer removes a block's transactions when it executes them; until the block is
/// committed the pool still answers for them: lookups, pending nonces, duplicate and stale
/// submissions.
#[test]
fn executed_but_uncommitted_transactions_stay_visible() {
    let w = Wallet::from_index(1);
    let (pool, state) = setup(std::slice::from_ref(&w));
    let first = transfer(&w, 0);
    let hash = first.hash();
    pool.add(first.clone(), &state, BASE_FEE).unwrap();
    pool.add(transfer(&w, 1), &state, BASE_FEE).unwrap();
    let best = pool.best_transactions(BASE_FEE, 30_000_000, 1);
    assert_eq!(best.len(), 1);

    let mut after = state.clone();
    after.insert_account(w.address(), 1, U256::from(10u128.pow(21)), None, []);
    pool.on_executed(7, &best, &[], &after).unwrap();
    // The committed state (`state`) still says nonce 0.
    assert_eq!(pool.get(&hash).map(|t| t.hash()), Some(hash));
    assert_eq!(pool.pending_nonce(w.address(), 0), 2);
    assert_eq!(pool.in_flight(), 1);
    assert_eq!(
        pool.add(first, &state, BASE_FEE),
        Err(PoolError::AlreadyKnown)
    );
    let stale =
        w.sign_recovered(TxBuilder::new(CHAIN).transfer(0, Address::repeat_byte(8), U256::from(2)));
    let err = pool.add(stale, &state, BASE_FEE).unwrap_err();
    assert!(err.to_string().starts_with("nonce too low"), "{err}");
    // The next block picks up where the executed one stopped.
    let next = pool.best_transactions(BASE_FEE, 30_000_000, 10);
    assert_eq!(next.iter().map(|t| t.nonce()).collect::<Vec<_>>(), vec![1]);

    pool.on_committed(6);
    assert_eq!(
        pool.in_flight(),
        1,
        "an older block's commit keeps block 7 in flight"
    );
    pool.on_committed(7);
    assert_eq!(pool.in_flight(), 0);
    // A reader whose snapshot predates the commit (nonce 0) still gets the right answers.
    assert_eq!(pool.pending_nonce(w.address(), 0), 2);
    assert_eq!(pool.get(&hash).map(|t| t.hash()), Some(hash));
    assert_eq!(pool.pending_nonce(w.address(), 1), 2);
    // Resubmitting the committed transaction is judged by state again, not "already known".
    let mut after_commit = state.clone();
    after_commit.insert_account(w.address(), 1, U256::from(10u128.pow(21)), None, []);
    let again = pool
        .add(transfer(&w, 0), &after_commit, BASE_FEE)
        .unwrap_err();
    assert!(again.to_string().starts_with("nonce too low"), "{again}");
    // Two blocks later the entries are gone.
    pool.on_committed(9);
    assert!(pool.get(&hash).is_none());
    assert_eq!(pool.pending_nonce(w.address(), 1), 2);
}

#[test]
fn look_ahead_continues_after_the_executing_block() {
    let a = Wallet::from_index(3);
    let c = Wallet::from_index(4);
    let (pool, state) = setup(&[a.clone(), c.clone()]);
    for n in 0..4 {
        pool.add(transfer(&a, n), &state, BASE_FEE).unwrap();
    }
    pool.add(transfer(&c, 0), &state, BASE_FEE).unwrap();
    // The executing block holds two of them.
    let executing = pool.best_transactions(BASE_FEE, 42_000, 2);
    let order = |txs: &[Arc<RecoveredTx>]| {
        let mut v: Vec<(Address, u64)> = txs.iter().map(|t| (t.sender(), t.nonce())).collect();
        v.sort();
        v
    };
    let executing_order = order(&executing);
    let next = pool.best_transactions_after(&executing, BASE_FEE, 30_000_000, 100);
    let mut want: Vec<(Address, u64)> = (0..4)
        .map(|n| (a.address(), n))
        .chain([(c.address(), 0)])
        .filter(|k| !executing_order.contains(k))
        .collect();
    want.sort();
    assert_eq!(order(&next), want);
    // Nothing was reserved: the pool still offers everything for the current block.
    assert_eq!(pool.best_transactions(BASE_FEE, 30_000_000, 100).len(), 5);
}

#[test]
fn equal_tips_are_first_come_first_served() {
    let wallets: Vec<Wallet> = (10..14).map(Wallet::from_index).collect();
    let (pool, state) = setup(&wallets);
    // Arrival order: w3, w1, w3 again, w0, w2, w1 again.
    let arrivals = [(3, 0), (1, 0), (3, 1), (0, 0), (2, 0), (1, 1)];
    for (w, n) in arrivals {
        pool.add(transfer(&wallets[w], n), &state, BASE_FEE)
            .unwrap();
    }
    let best = pool.best_transactions(BASE_FEE, 30_000_000, 100);
    let got: Vec<(Address, u64)> = best.iter().map(|t| (t.sender(), t.nonce())).collect();
    let want: Vec<(Address, u64)> = arrivals
        .iter()
        .map(|(w, n)| (wallets[*w].address(), *n))
        .collect();
    assert_eq!(got, want);
}
