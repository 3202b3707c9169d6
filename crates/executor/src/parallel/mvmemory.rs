//! Multi-version memory: for every location, the value each transaction wrote to it, so a
//! transaction reads exactly what the nearest earlier writer left.

use std::collections::BTreeMap;

use alloy_primitives::U256;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::{
    base::BaseState,
    txexec::ReadError,
    types::{Location, Observed, Read, ReadKind, TxIdx, TxWrites, Value, WriteOp, add_balance},
};

#[derive(Debug, Clone, Copy)]
enum Cell {
    /// What the transaction's latest incarnation wrote.
    Written(WriteOp),
    /// The writer is being re-executed: readers must wait for it (Block-STM's ESTIMATE).
    Estimate,
}

/// Versions per location, plus each transaction's last write locations and read set.
///
/// Memory is bounded by the block: at most one cell per (transaction, location it wrote), and a
/// re-execution replaces its previous cells instead of adding to them.
pub struct MvMemory {
    data: DashMap<Location, BTreeMap<TxIdx, Cell>>,
    last_locations: Vec<Mutex<Vec<Location>>>,
    last_reads: Vec<Mutex<Vec<Read>>>,
}

fn apply_delta(value: Value, delta: U256) -> Value {
    match value {
        Value::Account(a) => Value::Account(add_balance(a, delta)),
        v => v,
    }
}

impl MvMemory {
    /// Empty memory for a block of `n` transactions.
    pub fn new(n: usize) -> Self {
        Self {
            data: DashMap::with_capacity(n * 4),
            last_locations: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            last_reads: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// The value transaction `tx` reads at `location`: the nearest earlier write, plus any
    /// balance additions after it, else the pre-state.
    pub fn resolve(
        &self,
        location: Location,
        tx: TxIdx,
        kind: ReadKind,
        base: &BaseState<'_>,
    ) -> Result<Value, ReadError> {
        let mut delta = U256::ZERO;
        if let Some(versions) = self.data.get(&location) {
            for (writer, cell) in versions.range(..tx).rev() {
                match cell {
                    Cell::Estimate => return Err(ReadError::Blocked(*writer)),
                    Cell::Written(WriteOp::AddBalance(d)) => {
                        if kind == ReadKind::Full {
                            delta = delta.saturating_add(*d);
                        }
                    }
                    Cell::Written(WriteOp::Set(v)) => return Ok(apply_delta(*v, delta)),
                }
            }
        }
        Ok(apply_delta(base.get(&location)?, delta))
    }

    /// Records an execution of `tx`; returns whether it wrote a location its previous
    /// incarnation did not (later transactions must then be validated again).
    pub fn record(&self, tx: TxIdx, writes: &TxWrites, reads: Vec<Read>) -> bool {
        let new: Vec<Location> = writes.ops.iter().map(|(l, _)| *l).collect();
        for (location, op) in &writes.ops {
            self.data
                .entry(*location)
                .or_default()
                .insert(tx, Cell::Written(*op));
        }
        let mut previous = self.last_locations[tx].lock();
        let contains = |set: &[Location], l: &Location| {
            if set.len() > 32 {
                set.contains(l)
            } else {
                set.iter().any(|x| x == l)
            }
        };
        for old in previous.iter() {
            if !contains(&new, old)
                && let Some(mut versions) = self.data.get_mut(old)
            {
                versions.remove(&tx);
            }
        }
        let wrote_new = new.iter().any(|l| !contains(&previous, l));
        *previous = new;
        drop(previous);
        *self.last_reads[tx].lock() = reads;
        wrote_new
    }

    /// Whether every read of `tx`'s last execution would still see the same thing.
    pub fn validate(&self, tx: TxIdx, base: &BaseState<'_>) -> bool {
        let reads = self.last_reads[tx].lock().clone();
        reads
            .iter()
            .all(|r| match self.resolve(r.location, tx, r.kind, base) {
                Ok(v) => Observed::of(r.kind, v) == r.observed,
                Err(_) => false,
            })
    }

    /// Marks `tx`'s writes as estimates: it is about to run again.
    pub fn convert_writes_to_estimates(&self, tx: TxIdx) {
        let locations = self.last_locations[tx].lock().clone();
        for l in locations {
            if let Some(mut versions) = self.data.get_mut(&l) {
                versions.insert(tx, Cell::Estimate);
            }
        }
    }

    /// Takes the read set of `tx`'s last execution out of the memory.
    pub fn take_reads(&self, tx: TxIdx) -> Vec<Read> {
        std::mem::take(&mut *self.last_reads[tx].lock())
    }

    /// Number of locations with at least one version.
    pub fn locations(&self) -> usize {
        self.data.len()
    }
}
