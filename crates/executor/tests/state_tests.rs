//! Runs the ethereum/tests state tests (and the Osaka/Prague execution-spec tests) through the
//! executor crate's own API — our `StateView`, state diff and state-root computation — with the
//! sequential executor, and checks the expected post-state root and logs hash of every case.
//!
//! The fixtures are not in this repository. Point `PHAROS_STATE_TESTS` at them, e.g.
//! `PHAROS_STATE_TESTS=../shared/fixtures/ethereum-state-tests cargo test -p pharos-executor`
//! (`./scripts/test` does this when the folder exists beside the repository).

mod common;

#[test]
fn ethereum_state_tests_sequential() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    let report = common::run_all(&root, &common::Mode::Sequential);
    report.assert_ok();
}

#[test]
fn ethereum_state_tests_parallel() {
    use pharos_executor::Strategy;
    let Some(root) = common::fixtures_root() else {
        return;
    };
    let report = common::run_all(
        &root,
        &common::Mode::Parallel(vec![(2, Strategy::Groups), (2, Strategy::BlockStm)]),
    );
    report.assert_ok();
}
