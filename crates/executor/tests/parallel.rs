//! The parallel executor must produce exactly what the sequential one produces — results, gas,
//! logs, state — on randomized, high-contention blocks, with 1, 2, 4 and 8 threads, whether the
//! group phase or Block-STM runs them.
//!
//! Blocks mix: many senders and a few hot accounts and slots, same-sender nonce chains with gaps
//! and duplicates, reverts, out-of-gas, nested calls (some failing), CREATE/CREATE2, SELFDESTRUCT
//! in the constructor and later, precompiles, insufficient balances, the block's beneficiary as
//! sender, recipient and reader, ERC-20 transfers, and Uniswap V2 swaps (when `tests/e2e` has its
//! npm packages installed).

use std::sync::{Arc, OnceLock};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolCall;
use pharos_evm::BlockContext;
use pharos_executor::{
    BlockExecutor, BlockOutput, CodeCache, MemoryState, ParallelConfig, ParallelExecutor,
    SequentialExecutor, Strategy as ExecStrategy,
};
use pharos_primitives::RecoveredTx;
use pharos_workload::{
    erc20,
    scenario::{self, UniswapArtifacts, Universe, UniverseConfig},
};
use proptest::prelude::*;

const CHAIN: u64 = 1337;

struct World {
    pre: MemoryState,
    universe: Universe,
}

fn block(number: u64, beneficiary: Address) -> BlockContext {
    BlockContext {
        number,
        timestamp: 1_700_000_000 + number,
        beneficiary,
        gas_limit: 1_000_000_000,
        base_fee: 1_000_000_000,
        prevrandao: B256::repeat_byte(0x42),
        excess_blob_gas: 0,
    }
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let uniswap = match UniswapArtifacts::load(&UniswapArtifacts::default_dir()) {
            Some(Ok(u)) => Some(u),
            Some(Err(e)) => panic!("Uniswap artifacts are unreadable: {e}"),
            None => {
                assert!(
                    std::env::var_os("PHAROS_REQUIRE_NPM").is_none(),
                    "Uniswap V2 artifacts missing: run `npm ci` in tests/e2e"
                );
                eprintln!("Uniswap V2 artifacts missing (run `npm ci` in tests/e2e): AMM swaps are left out");
                None
            }
        };
        let mut config = UniverseConfig::new(CHAIN, 24);
        config.tokens = 3;
        config.chaos = 3;
        config.pairs = if uniswap.is_some() { 2 } else { 0 };
        let universe = Universe::build(&config, uniswap.as_ref()).expect("universe");
        let mut pre = MemoryState::default();
        for (a, b) in &universe.genesis {
            pre.insert_account(*a, 0, *b, None, []);
        }
        let exec = SequentialExecutor::new(CHAIN, Arc::new(CodeCache::default()));
        for (n, txs) in universe.setup.iter().enumerate() {
            let txs: Vec<Arc<RecoveredTx>> = txs.iter().cloned().map(Arc::new).collect();
            let out = exec
                .execute(&block(n as u64 + 1, Address::ZERO), &txs, &pre)
                .expect("setup executes");
            for (i, r) in out.results.iter().enumerate() {
                assert!(
                    r.outcome().is_some_and(|o| o.success()),
                    "setup block {n} tx {i} failed: {r:?}"
                );
            }
            pre.apply(&out.diff);
        }
        World { pre, universe }
    })
}

/// One transaction of a random block.
#[derive(Debug, Clone)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        value: u64,
    },
    Broke {
        from: usize,
    },
    Erc20 {
        from: usize,
        token: usize,
        to: usize,
        amount: u64,
    },
    Increment {
        from: usize,
        chaos: usize,
    },
    Bump {
        from: usize,
        chaos: usize,
        key: u8,
    },
    Forward {
        from: usize,
        chaos: usize,
        to: usize,
        value: u64,
    },
    Nested {
        from: usize,
        chaos: usize,
        targets: Vec<usize>,
    },
    TryNested {
        from: usize,
        chaos: usize,
        target: usize,
    },
    Create {
        from: usize,
        chaos: usize,
        salt: u8,
        destroy: bool,
        value: u64,
    },
    CreatePlain {
        from: usize,
        chaos: usize,
    },
    DestroyChild {
        from: usize,
        chaos: usize,
    },
    Precompiles {
        from: usize,
        chaos: usize,
        len: u8,
    },
    Revert {
        from: usize,
        chaos: usize,
    },
    OutOfGas {
        from: usize,
        chaos: usize,
    },
    ReadCoinbase {
        from: usize,
        chaos: usize,
    },
    ReadBalance {
        from: usize,
        chaos: usize,
        who: usize,
    },
    PayCoinbase {
        from: usize,
        chaos: usize,
        value: u64,
    },
    MoveToken {
        from: usize,
        chaos: usize,
        token: usize,
    },
    Swap {
        from: usize,
        pair: usize,
        direction: bool,
        amount: u64,
    },
    NonceGap {
        from: usize,
    },
    NonceReuse {
        from: usize,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    // Senders 0..24; recipients 0..12 where 8.. are hot or special addresses.
    let w = 0usize..24;
    let r = 0usize..12;
    let c = 0usize..3;
    prop_oneof![
        4 => (w.clone(), r.clone(), 0u64..1000).prop_map(|(from, to, value)| Op::Transfer { from, to, value }),
        1 => w.clone().prop_map(|from| Op::Broke { from }),
        4 => (w.clone(), 0usize..3, r.clone(), 0u64..2000).prop_map(|(from, token, to, amount)| Op::Erc20 { from, token, to, amount }),
        3 => (w.clone(), c.clone()).prop_map(|(from, chaos)| Op::Increment { from, chaos }),
        3 => (w.clone(), c.clone(), 0u8..4).prop_map(|(from, chaos, key)| Op::Bump { from, chaos, key }),
        2 => (w.clone(), c.clone(), r.clone(), 0u64..500).prop_map(|(from, chaos, to, value)| Op::Forward { from, chaos, to, value }),
        2 => (w.clone(), c.clone(), proptest::collection::vec(0usize..3, 0..3)).prop_map(|(from, chaos, targets)| Op::Nested { from, chaos, targets }),
        1 => (w.clone(), c.clone(), c.clone()).prop_map(|(from, chaos, target)| Op::TryNested { from, chaos, target }),
        2 => (w.clone(), c.clone(), 0u8..3, any::<bool>(), 0u64..100).prop_map(|(from, chaos, salt, destroy, value)| Op::Create { from, chaos, salt, destroy, value }),
        1 => (w.clone(), c.clone()).prop_map(|(from, chaos)| Op::CreatePlain { from, chaos }),
        1 => (w.clone(), c.clone()).prop_map(|(from, chaos)| Op::DestroyChild { from, chaos }),
        1 => (w.clone(), c.clone(), 0u8..100).prop_map(|(from, chaos, len)| Op::Precompiles { from, chaos, len }),
        1 => (w.clone(), c.clone()).prop_map(|(from, chaos)| Op::Revert { from, chaos }),
        1 => (w.clone(), c.clone()).prop_map(|(from, chaos)| Op::OutOfGas { from, chaos }),
        1 => (w.clone(), c.clone()).prop_map(|(from, chaos)| Op::ReadCoinbase { from, chaos }),
        2 => (w.clone(), c.clone(), r.clone()).prop_map(|(from, chaos, who)| Op::ReadBalance { from, chaos, who }),
        1 => (w.clone(), c.clone(), 0u64..100).prop_map(|(from, chaos, value)| Op::PayCoinbase { from, chaos, value }),
        1 => (w.clone(), c.clone(), 0usize..3).prop_map(|(from, chaos, token)| Op::MoveToken { from, chaos, token }),
        3 => (w.clone(), 0usize..2, any::<bool>(), 1u64..1_000_000).prop_map(|(from, pair, direction, amount)| Op::Swap { from, pair, direction, amount }),
        1 => w.clone().prop_map(|from| Op::NonceGap { from }),
        1 => w.prop_map(|from| Op::NonceReuse { from }),
    ]
}

fn recipient(u: &Universe, coinbase: Address, i: usize) -> Address {
    match i {
        0..8 => u.wallets[i].address(),
        8 => Address::repeat_byte(0xaa), // a hot EOA
        9 => coinbase,
        10 => u.chaos[0],
        _ => Address::from_word(B256::from(U256::from(0x0100 + i))), // fresh or a precompile
    }
}

fn build_tx(u: &mut Universe, coinbase: Address, op: &Op) -> RecoveredTx {
    use scenario::*;
    let gwei = U256::from(1_000_000_000u64);
    let chaos = |u: &Universe, c: usize| u.chaos[c % u.chaos.len()];
    match op {
        Op::Transfer { from, to, value } => {
            let to = recipient(u, coinbase, *to);
            u.call(*from, to, U256::from(*value) * gwei, Bytes::new(), 30_000)
        }
        Op::Broke { from } => u.call(
            *from,
            Address::repeat_byte(0xbb),
            U256::MAX >> 4,
            Bytes::new(),
            21_000,
        ),
        Op::Erc20 {
            from,
            token,
            to,
            amount,
        } => {
            let t = u.tokens[*token % u.tokens.len()];
            let to = recipient(u, coinbase, *to);
            let amount = U256::from(*amount) * U256::from(10u64).pow(U256::from(21));
            u.call(*from, t, U256::ZERO, erc20::transfer(to, amount), 100_000)
        }
        Op::Increment { from, chaos: c } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                incrementCall {}.abi_encode().into(),
                100_000,
            )
        }
        Op::Bump {
            from,
            chaos: c,
            key,
        } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                bumpCall {
                    key: U256::from(*key),
                }
                .abi_encode()
                .into(),
                100_000,
            )
        }
        Op::Forward {
            from,
            chaos: c,
            to,
            value,
        } => {
            let target = recipient(u, coinbase, *to);
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::from(*value),
                forwardCall { to: target }.abi_encode().into(),
                200_000,
            )
        }
        Op::Nested {
            from,
            chaos: c,
            targets,
        } => {
            let targets = targets.iter().map(|t| chaos(u, *t)).collect();
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                nestedCall { targets }.abi_encode().into(),
                400_000,
            )
        }
        Op::TryNested {
            from,
            chaos: c,
            target,
        } => {
            let target = chaos(u, *target);
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                tryNestedCall { target }.abi_encode().into(),
                300_000,
            )
        }
        Op::Create {
            from,
            chaos: c,
            salt,
            destroy,
            value,
        } => {
            let to = chaos(u, *c);
            let call = createCall {
                salt: B256::repeat_byte(*salt),
                destroyNow: *destroy,
            };
            u.call(
                *from,
                to,
                U256::from(*value),
                call.abi_encode().into(),
                600_000,
            )
        }
        Op::CreatePlain { from, chaos: c } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                createPlainCall {}.abi_encode().into(),
                600_000,
            )
        }
        Op::DestroyChild { from, chaos: c } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                destroyChildCall {}.abi_encode().into(),
                200_000,
            )
        }
        Op::Precompiles {
            from,
            chaos: c,
            len,
        } => {
            let to = chaos(u, *c);
            let data: Bytes = (0..*len).collect::<Vec<u8>>().into();
            u.call(
                *from,
                to,
                U256::ZERO,
                precompilesCall { data }.abi_encode().into(),
                300_000,
            )
        }
        Op::Revert { from, chaos: c } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                revertIfCall { yes: true }.abi_encode().into(),
                100_000,
            )
        }
        Op::OutOfGas { from, chaos: c } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                burnCall {
                    rounds: U256::from(5000),
                }
                .abi_encode()
                .into(),
                60_000,
            )
        }
        Op::ReadCoinbase { from, chaos: c } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::ZERO,
                readCoinbaseCall {}.abi_encode().into(),
                100_000,
            )
        }
        Op::ReadBalance {
            from,
            chaos: c,
            who,
        } => {
            let to = chaos(u, *c);
            let who = recipient(u, coinbase, *who);
            u.call(
                *from,
                to,
                U256::ZERO,
                readBalanceCall { who }.abi_encode().into(),
                100_000,
            )
        }
        Op::PayCoinbase {
            from,
            chaos: c,
            value,
        } => {
            let to = chaos(u, *c);
            u.call(
                *from,
                to,
                U256::from(*value),
                payCoinbaseCall {}.abi_encode().into(),
                100_000,
            )
        }
        Op::MoveToken {
            from,
            chaos: c,
            token,
        } => {
            let t = u.tokens[*token % u.tokens.len()];
            let to = chaos(u, *c);
            let call = moveTokenCall {
                token: t,
                to: u.wallets[0].address(),
                amount: U256::from(1),
            };
            u.call(*from, to, U256::ZERO, call.abi_encode().into(), 200_000)
        }
        Op::Swap {
            from,
            pair,
            direction,
            amount,
        } => {
            if u.pairs.is_empty() {
                return build_tx(
                    u,
                    coinbase,
                    &Op::Increment {
                        from: *from,
                        chaos: 0,
                    },
                );
            }
            let p = u.pairs[*pair % u.pairs.len()];
            let call = swapExactInCall {
                pair: p.pair,
                tokenIn: p.tokens[usize::from(*direction)],
                amountIn: U256::from(*amount) * U256::from(10u64).pow(U256::from(18)),
                minOut: U256::ZERO,
            };
            let helper = u.helper;
            u.call(*from, helper, U256::ZERO, call.abi_encode().into(), 300_000)
        }
        Op::NonceGap { from } => {
            let nonce = u.nonces[*from] + 3;
            u.wallets[*from].sign_recovered(u.builder.transfer(
                nonce,
                Address::repeat_byte(0xcc),
                U256::from(1),
            ))
        }
        Op::NonceReuse { from } => {
            let nonce = u.nonces[*from].saturating_sub(1);
            u.wallets[*from].sign_recovered(u.builder.transfer(
                nonce,
                Address::repeat_byte(0xdd),
                U256::from(2),
            ))
        }
    }
}

fn assert_same(label: &str, pre: &MemoryState, seq: &BlockOutput, par: &BlockOutput) {
    assert_eq!(
        seq.results.len(),
        par.results.len(),
        "{label}: result count"
    );
    for (i, (a, b)) in seq.results.iter().zip(&par.results).enumerate() {
        assert_eq!(
            a, b,
            "{label}: transaction {i} differs ({})",
            par.stats.strategy
        );
    }
    assert_eq!(seq.gas_used, par.gas_used, "{label}: gas used");
    let mut s = pre.clone();
    s.apply(&seq.diff);
    let mut p = pre.clone();
    p.apply(&par.diff);
    assert_eq!(
        s.accounts, p.accounts,
        "{label}: accounts differ ({})",
        par.stats.strategy
    );
    assert_eq!(
        s.storage, p.storage,
        "{label}: storage differs ({})",
        par.stats.strategy
    );
    assert_eq!(s.state_root(), p.state_root(), "{label}: state root");
}

fn executors() -> &'static Vec<(String, ParallelExecutor)> {
    static EXECS: OnceLock<Vec<(String, ParallelExecutor)>> = OnceLock::new();
    EXECS.get_or_init(|| {
        let codes = Arc::new(CodeCache::default());
        [
            (1, ExecStrategy::Groups),
            (2, ExecStrategy::Groups),
            (4, ExecStrategy::Groups),
            (8, ExecStrategy::Groups),
            (1, ExecStrategy::BlockStm),
            (2, ExecStrategy::BlockStm),
            (4, ExecStrategy::BlockStm),
            (8, ExecStrategy::BlockStm),
            (2, ExecStrategy::Auto),
        ]
        .into_iter()
        .map(|(threads, strategy)| (threads, strategy, true))
        // As a node runs it: without measuring accuracy, workers free what the block no longer
        // needs as soon as it is folded.
        .chain([
            (2, ExecStrategy::Groups, false),
            (2, ExecStrategy::Auto, false),
        ])
        .map(|(threads, strategy, measure)| {
            let mut config = ParallelConfig::with_threads(threads);
            config.strategy = strategy;
            config.measure_accuracy = measure;
            let lean = if measure { "" } else { ", lean" };
            (
                format!("{threads} threads{lean}, {strategy:?}"),
                ParallelExecutor::new(CHAIN, codes.clone(), config),
            )
        })
        .collect()
    })
}

/// A fresh parallel executor (nothing learned from other tests) with `threads` workers and
/// `strategy`.
fn fresh_executor(threads: usize, strategy: ExecStrategy) -> ParallelExecutor {
    let mut config = ParallelConfig::with_threads(threads);
    config.strategy = strategy;
    ParallelExecutor::new(CHAIN, Arc::new(CodeCache::default()), config)
}

/// The sequential executor's output: the reference every parallel result must equal.
fn sequential(
    ctx: &BlockContext,
    txs: &[Arc<RecoveredTx>],
    state: &dyn pharos_executor::StateView,
) -> BlockOutput {
    SequentialExecutor::new(CHAIN, Arc::new(CodeCache::default()))
        .execute(ctx, txs, state)
        .expect("sequential")
}

fn check_block(ops: &[Op], coinbase_choice: u8) {
    let world = world();
    let mut u = world.universe.clone();
    let coinbase = match coinbase_choice {
        0 => Address::repeat_byte(0xcb), // an outsider
        1 => u.wallets[0].address(),     // the beneficiary also sends and receives
        _ => u.chaos[1],                 // a contract
    };
    let txs: Vec<Arc<RecoveredTx>> = ops
        .iter()
        .map(|o| Arc::new(build_tx(&mut u, coinbase, o)))
        .collect();
    let ctx = block(10, coinbase);
    let seq = sequential(&ctx, &txs, &world.pre);
    for (label, exec) in executors() {
        let par = exec.execute(&ctx, &txs, &world.pre).expect("parallel");
        if std::env::var_os("PHAROS_DEBUG_STATS").is_some() {
            let rejected = par.results.iter().filter(|r| r.outcome().is_none()).count();
            let failed = par
                .results
                .iter()
                .filter(|r| r.outcome().is_some_and(|o| !o.success()))
                .count();
            eprintln!(
                "{label}: n={} rejected={rejected} failed={failed} {:?}",
                txs.len(),
                par.stats
            );
        }
        assert_same(label, &world.pre, &seq, &par);
        // Predictions from the preload stage are made on an earlier state (here: an empty
        // one) for a guess of the block (here: every other transaction); reusing them may only
        // cost time.
        if label.starts_with("2 threads") {
            let guess: Vec<Arc<RecoveredTx>> = txs.iter().step_by(2).cloned().collect();
            let prepared = exec
                .prepare(&ctx, &guess, &MemoryState::default())
                .expect("prepare");
            // One per distinct transaction (a block may repeat one; the repeat is rejected).
            let distinct: std::collections::HashSet<B256> =
                guess.iter().map(|t| t.hash()).collect();
            assert_eq!(
                prepared.len(),
                distinct.len(),
                "{label}: one prediction per guess"
            );
            let par = exec
                .execute_prepared(&ctx, &txs, &world.pre, prepared)
                .expect("parallel, prepared");
            assert_same(
                &format!("{label}, stale predictions"),
                &world.pre,
                &seq,
                &par,
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn parallel_equals_sequential_on_random_blocks(
        ops in proptest::collection::vec(op(), 1..80),
        coinbase in 0u8..3,
    ) {
        check_block(&ops, coinbase);
    }

    #[test]
    fn parallel_equals_sequential_on_hot_blocks(
        // Everything piles onto a few locations.
        ops in proptest::collection::vec(prop_oneof![
            (0usize..8).prop_map(|from| Op::Increment { from, chaos: 0 }),
            (0usize..8, 8usize..10, 1u64..50).prop_map(|(from, to, value)| Op::Transfer { from, to, value }),
            (0usize..8).prop_map(|from| Op::Swap { from, pair: 0, direction: from % 2 == 0, amount: 1000 }),
            (0usize..8).prop_map(|from| Op::Erc20 { from, token: 0, to: 8, amount: 1 }),
        ], 1..120),
        coinbase in 0u8..2,
    ) {
        check_block(&ops, coinbase);
    }
}

#[test]
fn workloads_of_the_benchmarks_match() {
    let world = world();
    let mut u = world.universe.clone();
    let mut blocks = vec![
        // Blocks beyond learning's 512-transaction sample: workers free the rest as they fold.
        u.transfers(1_200),
        u.erc20_transfers(300),
        u.erc20_hotspot(1_000, 50),
        // Long enough for auto's samples to settle it before predicting the rest.
        u.dependent_chain(300),
    ];
    if !u.pairs.is_empty() {
        blocks.push(u.swaps(200, 10));
    }
    let mut state = world.pre.clone();
    for (n, txs) in blocks.into_iter().enumerate() {
        let txs: Vec<Arc<RecoveredTx>> = txs.into_iter().map(Arc::new).collect();
        let ctx = block(20 + n as u64, Address::repeat_byte(0xcb));
        let seq = sequential(&ctx, &txs, &state);
        assert!(
            seq.results
                .iter()
                .all(|r| r.outcome().is_some_and(|o| o.success())),
            "workload {n} all succeed"
        );
        for (label, exec) in executors() {
            let par = exec.execute(&ctx, &txs, &state).expect("parallel");
            assert_same(&format!("workload {n}, {label}"), &state, &seq, &par);
            if n == 3 && label.ends_with("Auto") {
                // The dependent chain: settled by auto's first sample, before predicting more.
                assert_eq!(par.stats.strategy, "sequential (sampled dependent)");
            }
            // The same block with its predictions made ahead by the preload stage.
            let prepared = exec.prepare(&ctx, &txs, &state).expect("prepare");
            let ahead = exec
                .execute_prepared(&ctx, &txs, &state, prepared)
                .expect("parallel, prepared");
            assert_same(
                &format!("workload {n}, {label}, prepared"),
                &state,
                &seq,
                &ahead,
            );
            // A forced engine predicts every transaction: all of them come from the preload
            // stage. (Auto may stop after a sample; the partition itself may differ, since
            // the executor keeps learning and times its storage.)
            if !label.ends_with("Auto") {
                assert_eq!(
                    ahead.stats.prepared_hits,
                    txs.len(),
                    "{label}: every prediction reused"
                );
            }
            // Transfers and token transfers are predicted exactly: the fold path merges them.
            if n < 3 && label.ends_with("Groups") {
                assert_eq!(
                    par.stats.strategy, "groups",
                    "workload {n}, {label}: {:?}",
                    par.stats
                );
            }
        }
        state.apply(&seq.diff);
    }
}

/// A call the prediction cannot follow (a loop over a calldata array of targets) writes a slot
/// that a later transaction in another predicted group reads: the group phase must detect it and
/// Block-STM must repair it.
#[test]
fn mispredicted_cross_group_access_is_repaired() {
    let world = world();
    let mut u = world.universe.clone();
    let (c0, c1) = (u.chaos[0], u.chaos[1]);
    let mut txs = Vec::new();
    for round in 0..4 {
        // Wallet 0 increments c1 through c0 (unpredictable), then others increment c1 directly.
        txs.push(
            u.call(
                0,
                c0,
                U256::ZERO,
                scenario::nestedCall { targets: vec![c1] }
                    .abi_encode()
                    .into(),
                400_000,
            ),
        );
        for w in 1..4 {
            txs.push(u.call(
                w,
                c1,
                U256::ZERO,
                scenario::incrementCall {}.abi_encode().into(),
                100_000,
            ));
        }
        // Independent work in between, so groups form.
        for w in 4..8 {
            txs.push(u.call(
                w,
                Address::repeat_byte(0x70 + round),
                U256::from(1),
                Bytes::new(),
                21_000,
            ));
        }
    }
    let txs: Vec<Arc<RecoveredTx>> = txs.into_iter().map(Arc::new).collect();
    let ctx = block(11, Address::repeat_byte(0xcb));
    let seq = sequential(&ctx, &txs, &world.pre);
    for threads in [1, 2, 4] {
        // A fresh executor: no hints learned from other tests.
        let exec = fresh_executor(threads, ExecStrategy::Groups);
        let par = exec.execute(&ctx, &txs, &world.pre).expect("parallel");
        assert!(
            par.stats.mispredicted > 0,
            "the block was mispredicted: {:?}",
            par.stats
        );
        assert_eq!(par.stats.strategy, "groups+block-stm");
        assert!(par.stats.groups > 1);
        assert_same(
            &format!("repair with {threads} threads"),
            &world.pre,
            &seq,
            &par,
        );
    }
}

/// Plain transfers credit an account by addition (they commute); a later transaction that reads
/// the account's balance must see every one of them, even when each transaction's accesses were
/// all predicted (the fold path, no cross-group check).
#[test]
fn a_balance_read_sees_every_plain_transfer_before_it() {
    let world = world();
    let mut u = world.universe.clone();
    let coinbase = Address::repeat_byte(0xcb);
    let exec = fresh_executor(2, ExecStrategy::Groups);
    let mut state = world.pre.clone();
    // Recipient 8 is a hot EOA. The first block teaches the executor what `readBalance(hot)`
    // touches (it credits `hot` first, so the read stores a new value); the second credits
    // `hot` twice, then reads it.
    let warm_up: Vec<Op> = std::iter::once(Op::Transfer {
        from: 9,
        to: 8,
        value: 3,
    })
    .chain((0..8).map(|k| Op::ReadBalance {
        from: 10 + k,
        chaos: 0,
        who: 8,
    }))
    .collect();
    let credit_then_read = vec![
        Op::Transfer {
            from: 1,
            to: 8,
            value: 5,
        },
        Op::Transfer {
            from: 2,
            to: 8,
            value: 7,
        },
        Op::ReadBalance {
            from: 3,
            chaos: 0,
            who: 8,
        },
    ];
    for (n, ops) in [warm_up, credit_then_read].iter().enumerate() {
        let txs: Vec<Arc<RecoveredTx>> = ops
            .iter()
            .map(|o| Arc::new(build_tx(&mut u, coinbase, o)))
            .collect();
        let ctx = block(30 + n as u64, coinbase);
        let expected = sequential(&ctx, &txs, &state);
        let par = exec.execute(&ctx, &txs, &state).expect("parallel");
        assert_same(&format!("block {n}"), &state, &expected, &par);
        if n == 1 {
            assert_eq!(par.stats.strategy, "groups", "{:?}", par.stats);
        }
        state.apply(&expected.diff);
    }
}

/// A transaction that names the block's beneficiary in its access list and reads its balance
/// must see every earlier transaction's fee, though fees are credited by addition and never
/// predicted.
#[test]
fn a_beneficiary_read_named_in_an_access_list_sees_every_fee() {
    use alloy_eips::eip2930::{AccessList, AccessListItem};
    let world = world();
    let mut u = world.universe.clone();
    let coinbase = Address::repeat_byte(0xcb);
    let mut txs: Vec<Arc<RecoveredTx>> = (1..4)
        .map(|from| {
            Arc::new(build_tx(
                &mut u,
                coinbase,
                &Op::Transfer {
                    from,
                    to: 8,
                    value: 1,
                },
            ))
        })
        .collect();
    let (w, chaos) = (5, u.chaos[0]);
    let nonce = u.nonces[w];
    u.nonces[w] += 1;
    let read = u.builder.eip2930(
        nonce,
        alloy_primitives::TxKind::Call(chaos),
        U256::ZERO,
        scenario::readCoinbaseCall {}.abi_encode().into(),
        100_000,
        2_000_000_000,
        AccessList(vec![
            AccessListItem {
                address: coinbase,
                storage_keys: vec![],
            },
            AccessListItem {
                address: chaos,
                storage_keys: vec![B256::with_last_byte(2)],
            },
        ]),
    );
    txs.push(Arc::new(u.wallets[w].sign_recovered(read)));
    let ctx = block(40, coinbase);
    let seq = sequential(&ctx, &txs, &world.pre);
    for threads in [2, 4] {
        let exec = fresh_executor(threads, ExecStrategy::Groups);
        let par = exec.execute(&ctx, &txs, &world.pre).expect("parallel");
        assert_same(&format!("{threads} threads"), &world.pre, &seq, &par);
        // Every access was predicted: no cross-group check would have caught a missed fee.
        assert_eq!(par.stats.strategy, "groups", "{:?}", par.stats);
    }
}

/// Learning keeps hints only where static analysis falls short: ERC-20 transfers (every access
/// resolved statically) file none, swaps through the router (calls followed one level, the
/// rest learned) do.
#[test]
fn hints_are_learned_only_where_analysis_falls_short() {
    let world = world();
    let mut u = world.universe.clone();
    let exec = fresh_executor(2, ExecStrategy::Groups);
    let transfers: Vec<Arc<RecoveredTx>> =
        u.erc20_transfers(600).into_iter().map(Arc::new).collect();
    let ctx = block(13, Address::repeat_byte(0xcb));
    let out = exec
        .execute(&ctx, &transfers, &world.pre)
        .expect("parallel");
    assert_eq!(out.stats.strategy, "groups", "{:?}", out.stats);
    assert_eq!(
        exec.predictor().hints_held(),
        0,
        "ERC-20 transfers filed hints"
    );
    if u.pairs.is_empty() {
        return;
    }
    let mut state = world.pre.clone();
    state.apply(&out.diff);
    let swaps: Vec<Arc<RecoveredTx>> = u.swaps(600, 0).into_iter().map(Arc::new).collect();
    exec.execute(&block(14, Address::repeat_byte(0xcb)), &swaps, &state)
        .expect("parallel");
    assert!(exec.predictor().hints_held() > 0, "swaps filed no hints");
}

/// Against slow storage the prediction of a hinted call also covers the slots keyed by its
/// sender (token balances and allowances, learned as rules from earlier executions), so a block
/// of swaps runs with every access predicted — each miss there would stall a worker.
#[test]
fn slots_keyed_by_the_sender_are_predicted_against_slow_storage() {
    let world = world();
    let mut u = world.universe.clone();
    if u.pairs.is_empty() {
        return;
    }
    let exec = fresh_executor(2, ExecStrategy::Groups);
    let mut state = world.pre.clone();
    for (n, expect_all_predicted) in [(0u64, false), (1, true)] {
        let txs: Vec<Arc<RecoveredTx>> = u.swaps(600, 0).into_iter().map(Arc::new).collect();
        let ctx = block(15 + n, Address::repeat_byte(0xcb));
        let seq = sequential(&ctx, &txs, &state);
        let par = exec
            .execute(&ctx, &txs, &SlowView(&state))
            .expect("parallel");
        assert_same(&format!("swaps block {n}"), &state, &seq, &par);
        if expect_all_predicted {
            assert_eq!(par.stats.strategy, "groups", "{:?}", par.stats);
        }
        state.apply(&seq.diff);
    }
}

/// A view that answers like a disk: the executor then preloads with many readers, predicts with
/// many threads and follows calls deeper. Results must not change.
struct SlowView<'a>(&'a MemoryState);

impl pharos_executor::StateView for SlowView<'_> {
    fn account(
        &self,
        address: Address,
    ) -> Result<Option<pharos_primitives::AccountState>, pharos_executor::StateError> {
        std::thread::sleep(std::time::Duration::from_micros(20));
        self.0.account(address)
    }
    fn storage(&self, address: Address, slot: U256) -> Result<U256, pharos_executor::StateError> {
        std::thread::sleep(std::time::Duration::from_micros(20));
        self.0.storage(address, slot)
    }
    fn code(&self, hash: B256) -> Result<Option<Bytes>, pharos_executor::StateError> {
        self.0.code(hash)
    }
    fn block_hash(&self, number: u64) -> Result<B256, pharos_executor::StateError> {
        self.0.block_hash(number)
    }
}

#[test]
fn slow_storage_path_matches() {
    let world = world();
    let mut u = world.universe.clone();
    let mut txs = u.erc20_transfers(40);
    txs.extend(u.transfers(40));
    if !u.pairs.is_empty() {
        txs.extend(u.swaps(40, 30));
    }
    let ops = [
        Op::Nested {
            from: 3,
            chaos: 0,
            targets: vec![1],
        },
        Op::Increment { from: 5, chaos: 1 },
        Op::ReadCoinbase { from: 6, chaos: 2 },
    ];
    for o in &ops {
        txs.push(build_tx(&mut u, Address::repeat_byte(0xcb), o));
    }
    let txs: Vec<Arc<RecoveredTx>> = txs.into_iter().map(Arc::new).collect();
    let ctx = block(12, Address::repeat_byte(0xcb));
    let seq = sequential(&ctx, &txs, &world.pre);
    for strategy in [
        ExecStrategy::Auto,
        ExecStrategy::Groups,
        ExecStrategy::BlockStm,
    ] {
        let exec = fresh_executor(2, strategy);
        let par = exec
            .execute(&ctx, &txs, &SlowView(&world.pre))
            .expect("parallel");
        if strategy != ExecStrategy::Auto {
            assert!(
                par.stats.preload_us > 0,
                "{strategy:?} preloaded: {:?}",
                par.stats
            );
        }
        assert_same(
            &format!("slow storage, {strategy:?}"),
            &world.pre,
            &seq,
            &par,
        );
    }
}

/// The group phase takes the hashes of mapping slots from the prediction instead of hashing
/// again (`KECCAK256` over a predicted 64-byte input): ERC-20 transfers with every gas limit
/// (in steps of 3, narrower than the instruction's 12 dynamic gas) from just above the calldata
/// floor (EIP-7623) to past the recipient's balance-slot hash run out of gas at every instruction
/// on the way, and must do so exactly as the sequential executor's.
#[test]
fn memoized_keccak_charges_gas_like_revm() {
    let world = world();
    let mut u = world.universe.clone();
    let token = u.tokens[0];
    let wallets = u.wallets.len();
    let txs: Vec<Arc<RecoveredTx>> = (22_500u64..32_000)
        .step_by(3)
        .enumerate()
        .map(|(i, gas)| {
            let to = scenario::fresh(1_000_000 + i as u64);
            Arc::new(u.call(
                i % wallets,
                token,
                U256::ZERO,
                erc20::transfer(to, U256::from(1)),
                gas,
            ))
        })
        .collect();
    let ctx = block(30, Address::repeat_byte(0xcb));
    let seq = sequential(&ctx, &txs, &world.pre);
    let halted = seq
        .results
        .iter()
        .filter(|r| r.outcome().is_some_and(|o| !o.success()))
        .count();
    assert!(
        halted > 3_000,
        "the sweep runs out of gas ({halted} halted)"
    );
    for (label, exec) in executors() {
        let par = exec.execute(&ctx, &txs, &world.pre).expect("parallel");
        assert_same(&format!("gas sweep, {label}"), &world.pre, &seq, &par);
    }
}
