//! Shared by the state-test runners: loading fixtures, building state and blocks, checking posts.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy_eips::Decodable2718;
use alloy_primitives::{B256, Log, U256, keccak256};
use pharos_evm::{BlockContext, revm::primitives::hardfork::SpecId};
use pharos_executor::{BlockExecutor, CodeCache, MemoryState, SequentialExecutor, TxResult};
use pharos_primitives::{RecoveredTx, TxEnvelope};
use rayon::prelude::*;
use revm_statetest_types::{SpecName, TestSuite, TestUnit};

/// Cases not run, each with its reason. Matched against the end of "file/test-name".
pub const SKIP: &[(&str, &str)] = &[
    // The next five start from an account that has storage but no code and a zero nonce, a
    // state EIP-7610 and EIP-161 make unreachable; revm does not model a storage collision on
    // creation (its own revme runner skips the same files).
    (
        "stCreate2/RevertInCreateInInitCreate2Paris.json/RevertInCreateInInitCreate2Paris",
        "unreachable pre-state: storage without code or nonce (EIP-7610)",
    ),
    (
        "stCreate2/create2collisionStorageParis.json/create2collisionStorageParis",
        "unreachable pre-state: storage without code or nonce (EIP-7610)",
    ),
    (
        "stExtCodeHash/dynamicAccountOverwriteEmpty_Paris.json/dynamicAccountOverwriteEmpty_Paris",
        "unreachable pre-state: storage without code or nonce (EIP-7610)",
    ),
    (
        "stRevertTest/RevertInCreateInInit_Paris.json/RevertInCreateInInit_Paris",
        "unreachable pre-state: storage without code or nonce (EIP-7610)",
    ),
    (
        "stSStoreTest/InitCollisionParis.json/InitCollisionParis",
        "unreachable pre-state: storage without code or nonce (EIP-7610)",
    ),
];

/// Files not run, each with its reason.
pub const SKIP_FILES: &[(&str, &str)] = &[(
    "stTransactionTest/ValueOverflowParis.json",
    "holds a value above 2^256 on purpose; the fixture parser rejects it before any execution",
)];

/// Where the fixtures are: `PHAROS_STATE_TESTS`, or `None` (with a message) when unset.
pub fn fixtures_root() -> Option<PathBuf> {
    match std::env::var_os("PHAROS_STATE_TESTS") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_dir(),
                "PHAROS_STATE_TESTS={} is not a directory",
                p.display()
            );
            Some(p)
        }
        None => {
            eprintln!(
                "state tests skipped: set PHAROS_STATE_TESTS to the ethereum-state-tests fixture folder, e.g. PHAROS_STATE_TESTS=../shared/fixtures/ethereum-state-tests"
            );
            None
        }
    }
}

/// Which executor runs the cases.
pub enum Mode {
    Sequential,
    Parallel(Vec<(usize, pharos_executor::Strategy)>),
}

pub fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

#[derive(Default)]
pub struct Report {
    pub passed: usize,
    pub skipped: usize,
    pub failures: Vec<String>,
}

impl Report {
    pub fn assert_ok(&self) {
        eprintln!(
            "state tests: {} passed, {} skipped, {} failed",
            self.passed,
            self.skipped,
            self.failures.len()
        );
        assert!(self.passed > 1000, "too few cases ran: {}", self.passed);
        assert!(
            self.failures.is_empty(),
            "{} failures, first ones:\n{}",
            self.failures.len(),
            self.failures
                .iter()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut buf = Vec::new();
    alloy_rlp::encode_list(logs, &mut buf);
    keccak256(buf)
}

fn pre_state(unit: &TestUnit) -> MemoryState {
    let mut state = MemoryState::default();
    for (address, account) in &unit.pre {
        state.insert_account(
            *address,
            account.nonce,
            account.balance,
            Some(account.code.clone()),
            account.storage.iter().map(|(k, v)| (*k, *v)),
        );
    }
    state
}

fn block_context(unit: &TestUnit) -> BlockContext {
    let env = &unit.env;
    BlockContext {
        number: env.current_number.saturating_to(),
        timestamp: env.current_timestamp.saturating_to(),
        beneficiary: env.current_coinbase,
        gas_limit: env.current_gas_limit.saturating_to(),
        base_fee: env.current_base_fee.unwrap_or_default().saturating_to(),
        prevrandao: env.current_random.unwrap_or_default(),
        excess_blob_gas: env
            .current_excess_blob_gas
            .unwrap_or_default()
            .saturating_to(),
    }
}

pub fn executors(
    mode: &Mode,
    chain_id: u64,
    spec: SpecId,
) -> Vec<(String, Box<dyn BlockExecutor>)> {
    let codes = Arc::new(CodeCache::default());
    match mode {
        Mode::Sequential => vec![(
            "sequential".into(),
            Box::new(SequentialExecutor::with_spec(chain_id, spec, codes)),
        )],
        Mode::Parallel(configs) => configs
            .iter()
            .map(|(t, strategy)| {
                let mut config = pharos_executor::ParallelConfig::with_threads(*t);
                config.strategy = *strategy;
                (
                    format!("parallel({t}, {strategy:?})"),
                    Box::new(pharos_executor::ParallelExecutor::with_spec(
                        chain_id,
                        spec,
                        codes.clone(),
                        config,
                    )) as Box<dyn BlockExecutor>,
                )
            })
            .collect(),
    }
}

fn run_file(path: &Path, root: &Path, mode: &Mode) -> Report {
    let mut report = Report::default();
    let name = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    if SKIP_FILES.iter().any(|(f, _)| name.ends_with(f)) {
        report.skipped += 1;
        return report;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.failures.push(format!("{name}: unreadable: {e}"));
            return report;
        }
    };
    let suite: TestSuite = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            report.failures.push(format!("{name}: does not parse: {e}"));
            return report;
        }
    };
    for (test_name, unit) in &suite.0 {
        let key = format!("{name}/{test_name}");
        if SKIP.iter().any(|(k, _)| key.ends_with(k)) {
            report.skipped += unit.post.values().map(Vec::len).sum::<usize>();
            continue;
        }
        let chain_id = unit
            .env
            .current_chain_id
            .map(|c| c.saturating_to())
            .unwrap_or(1);
        let pre = pre_state(unit);
        let block = block_context(unit);
        for (spec_name, cases) in &unit.post {
            if !matches!(
                spec_name,
                SpecName::Cancun | SpecName::Prague | SpecName::Osaka
            ) {
                report.skipped += cases.len();
                continue;
            }
            let spec = spec_name.to_spec_id();
            for executor_pair in executors(mode, chain_id, spec) {
                let (label, executor) = executor_pair;
                for (i, case) in cases.iter().enumerate() {
                    let id = format!(
                        "{key} [{spec_name:?} #{i} d{} g{} v{}] {label}",
                        case.indexes.data, case.indexes.gas, case.indexes.value
                    );
                    match check_case(&pre, &block, executor.as_ref(), case) {
                        Ok(()) => report.passed += 1,
                        Err(e) => report.failures.push(format!("{id}: {e}")),
                    }
                }
            }
        }
    }
    report
}

fn check_case(
    pre: &MemoryState,
    block: &BlockContext,
    executor: &dyn BlockExecutor,
    case: &revm_statetest_types::Test,
) -> Result<(), String> {
    let raw = case
        .txbytes
        .as_ref()
        .ok_or_else(|| "case has no txbytes".to_string())?;
    let tx = match TxEnvelope::decode_2718_exact(raw) {
        Ok(tx) => tx,
        Err(e) => {
            // A transaction that does not decode changes nothing.
            return if case.expect_exception.is_some() && pre.state_root() == case.hash {
                Ok(())
            } else {
                Err(format!("txbytes do not decode: {e}"))
            };
        }
    };
    let sender = match alloy_consensus::transaction::SignerRecoverable::recover_signer(&tx) {
        Ok(s) => s,
        Err(_) if case.expect_exception.is_some() => {
            return if pre.state_root() == case.hash {
                Ok(())
            } else {
                Err("unrecoverable signature but the post state differs from pre".into())
            };
        }
        Err(e) => return Err(format!("signature does not recover: {e}")),
    };
    let txs = vec![Arc::new(RecoveredTx::new_unchecked(tx, sender))];
    let out = executor
        .execute(block, &txs, pre)
        .map_err(|e| format!("execution failed: {e}"))?;
    let logs: Vec<Log> = match &out.results[0] {
        TxResult::Included(o) => o.logs.clone(),
        TxResult::Rejected(reason) => {
            if case.expect_exception.is_none() {
                return Err(format!("rejected unexpectedly: {reason}"));
            }
            Vec::new()
        }
    };
    if let (TxResult::Included(_), Some(expected)) = (&out.results[0], &case.expect_exception) {
        return Err(format!("included but expected exception {expected}"));
    }
    let mut post = pre.clone();
    post.apply(&out.diff);
    let root = post.state_root();
    if root != case.hash {
        return Err(format!("state root {root}, expected {}", case.hash));
    }
    let lh = logs_hash(&logs);
    if lh != case.logs {
        return Err(format!("logs hash {lh}, expected {}", case.logs));
    }
    Ok(())
}

pub fn run_all(root: &Path, mode: &Mode) -> Report {
    let mut files = Vec::new();
    json_files(root, &mut files);
    files.sort();
    let reports: Vec<Report> = files.par_iter().map(|f| run_file(f, root, mode)).collect();
    let mut total = Report::default();
    for r in reports {
        total.passed += r.passed;
        total.skipped += r.skipped;
        total.failures.extend(r.failures);
    }
    let _ = U256::ZERO;
    total
}
