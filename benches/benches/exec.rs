//! `cargo bench -p pharos-benches`: sequential vs parallel execution of each workload.
//! Workload size: `PHAROS_BENCH_TXS` (default 10,000).

use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pharos_benches::{Workload, prepare};
use pharos_executor::{
    BlockExecutor, CodeCache, ParallelConfig, ParallelExecutor, SequentialExecutor,
};

fn exec(c: &mut Criterion) {
    pharos_benches::retain_freed_memory();
    let txs: usize = std::env::var("PHAROS_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut workloads = vec![
        Workload::Transfers,
        Workload::Erc20,
        Workload::Erc20Hotspot(10),
        Workload::Erc20Hotspot(50),
        Workload::Chain,
    ];
    if pharos_workload::scenario::UniswapArtifacts::load(
        &pharos_workload::scenario::UniswapArtifacts::default_dir(),
    )
    .is_some()
    {
        workloads.extend([
            Workload::Uniswap,
            Workload::UniswapHotspot(10),
            Workload::UniswapHotspot(50),
        ]);
    }
    let mut group = c.benchmark_group("exec");
    group.sample_size(10);
    for workload in workloads {
        let p = match prepare(workload, txs) {
            Ok(p) => p,
            Err(e) => panic!("preparing {workload}: {e}"),
        };
        let codes = Arc::new(CodeCache::default());
        let seq = SequentialExecutor::new(1337, codes.clone());
        group.bench_function(BenchmarkId::new(workload.to_string(), "sequential"), |b| {
            b.iter(|| seq.execute(&p.block, &p.txs, &p.pre).expect("executes"))
        });
        for threads in [1, 2] {
            let par =
                ParallelExecutor::new(1337, codes.clone(), ParallelConfig::with_threads(threads));
            par.execute(&p.block, &p.warmup, &p.pre_warmup)
                .expect("warm-up");
            group.bench_function(
                BenchmarkId::new(workload.to_string(), format!("parallel-{threads}")),
                |b| b.iter(|| par.execute(&p.block, &p.txs, &p.pre).expect("executes")),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, exec);
criterion_main!(benches);
