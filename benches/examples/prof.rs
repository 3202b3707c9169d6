//! A profiling harness: one workload, one executor, many runs, per-run phase timings and page
//! faults. `perf record target/release/examples/prof erc20 exec 2` profiles the parallel
//! executor on 2 threads; `... erc20 seq` the sequential one; `... erc20 predict` prediction only.
//! `ROUNDS=N` sets the number of runs; `INTERLEAVE=1` runs the sequential executor before each
//! parallel run (as `pharos bench exec` does).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{sync::Arc, time::Instant};

use pharos_benches::{Workload, prepare};
use pharos_executor::{
    BlockExecutor, CodeCache, ParallelConfig, ParallelExecutor, SequentialExecutor, Strategy,
    parallel::{
        base::BaseState,
        predict::{PredictCache, Predictor},
    },
};

fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit(')').next().map(str::to_owned))
        .and_then(|s| s.split_whitespace().nth(7).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    pharos_benches::retain_freed_memory();
    let mut args = std::env::args().skip(1);
    let workload: Workload = args
        .next()
        .unwrap_or_else(|| "erc20".into())
        .parse()
        .expect("workload");
    let mode = args.next().unwrap_or_else(|| "exec".into());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let p = prepare(workload, 10_000).expect("workload prepares");
    match mode.as_str() {
        "predict" => {
            let base = BaseState::new(&p.pre);
            let predictor = Predictor::default();
            for _ in 0..rounds {
                let t = Instant::now();
                let mut cache = PredictCache::default();
                let n: usize = p
                    .txs
                    .iter()
                    .map(|tx| {
                        predictor
                            .predict(tx, &p.block, &base, &mut cache)
                            .expect("predicts")
                            .entries
                            .len()
                    })
                    .sum();
                println!("predict {:?} ({n} locations)", t.elapsed());
            }
        }
        "seq" => {
            let seq = SequentialExecutor::new(1337, Arc::new(CodeCache::default()));
            for _ in 0..rounds {
                let t = Instant::now();
                seq.execute(&p.block, &p.txs, &p.pre).expect("executes");
                println!("sequential {:?}", t.elapsed());
            }
        }
        _ => {
            let mut config = ParallelConfig::with_threads(threads);
            config.strategy = Strategy::Groups;
            let par = ParallelExecutor::new(1337, Arc::new(CodeCache::default()), config);
            par.execute(&p.block, &p.warmup, &p.pre_warmup)
                .expect("warm-up");
            let seq = SequentialExecutor::new(1337, Arc::new(CodeCache::default()));
            let interleave = std::env::var_os("INTERLEAVE").is_some();
            for _ in 0..rounds {
                if interleave {
                    let t = Instant::now();
                    seq.execute(&p.block, &p.txs, &p.pre).expect("executes");
                    println!("sequential {:?}", t.elapsed());
                }
                let faults = minor_faults();
                let t = Instant::now();
                let out = par.execute(&p.block, &p.txs, &p.pre).expect("executes");
                println!("wall {:?}", t.elapsed());
                println!(
                    "predict {} us, execute {} us, merge {} us, total {} us, page faults {}",
                    out.stats.predict_us,
                    out.stats.execute_us,
                    out.stats.merge_us,
                    out.stats.total_us,
                    minor_faults() - faults
                );
            }
        }
    }
}
