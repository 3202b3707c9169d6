#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use pharos_benches::{Workload, prepare};
use pharos_executor::{
    BlockExecutor, CodeCache, ParallelConfig, ParallelExecutor, Strategy,
    parallel::{base::BaseState, predict::Predictor},
};
use std::{sync::Arc, time::Instant};

fn main() {
    let w: Workload = std::env::args()
        .nth(1)
        .unwrap_or("erc20".into())
        .parse()
        .unwrap();
    let mode = std::env::args().nth(2).unwrap_or("exec".into());
    let p = prepare(w, 10_000).unwrap();
    if mode == "predict" {
        let base = BaseState::new(&p.pre);
        let pred = Predictor::default();
        for round in 0..20 {
            let t = Instant::now();
            let mut cache = pharos_executor::parallel::predict::PredictCache::default();
            let v: Vec<_> = p
                .txs
                .iter()
                .map(|tx| pred.predict(tx, &p.block, &base, &mut cache).unwrap())
                .collect();
            if round % 5 == 0 {
                println!("predict {:?} entries {}", t.elapsed(), v[0].entries.len());
            }
        }
        return;
    }
    if mode == "seq" {
        let seq = pharos_executor::SequentialExecutor::new(1337, Arc::new(CodeCache::default()));
        for _ in 0..20 {
            let t = Instant::now();
            seq.execute(&p.block, &p.txs, &p.pre).unwrap();
            println!("seq {:?}", t.elapsed());
        }
        return;
    }
    let mut config = ParallelConfig::with_threads(1);
    config.strategy = Strategy::Groups;
    let par = ParallelExecutor::new(1337, Arc::new(CodeCache::default()), config);
    par.execute(&p.block, &p.warmup, &p.pre_warmup).unwrap();
    for _ in 0..20 {
        let out = par.execute(&p.block, &p.txs, &p.pre).unwrap();
        println!(
            "{:?}",
            (
                out.stats.predict_us,
                out.stats.execute_us,
                out.stats.merge_us
            )
        );
    }
}
