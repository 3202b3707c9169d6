//! From predicted accesses to a schedule: transactions that may conflict are joined into one
//! group (union-find over locations) and run in order on one worker; groups run in parallel.
//! Also the nearest predicted earlier writer of each transaction, Block-STM's dependency hint.

use alloy_primitives::map::HashMap;

use super::{
    predict::{ADD, AccessPrediction, READ, WRITE},
    types::TxIdx,
};

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The smaller index stays the root: groups are named by their first transaction.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi] = lo;
        }
    }
}

/// The schedule derived from predictions.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    /// Groups of transaction indices, each ascending; groups ordered by first index.
    pub groups: Vec<Vec<TxIdx>>,
    /// Group of each transaction.
    pub group_of: Vec<usize>,
    /// For each transaction, the nearest earlier one predicted to write what it touches (only
    /// from [`partition_with_dependencies`]; empty otherwise).
    pub depends_on: Vec<Option<TxIdx>>,
}

/// Per location: who touches it, for the partition. Transaction indices as `u32` (a block's
/// transactions each take at least 21,000 gas): the map stays small enough for the cache.
#[derive(Clone, Copy)]
struct Touchers {
    first_writer: u32,
    last_writer: u32,
    first_adder: u32,
    last_adder: u32,
    /// Some transaction reads or replaces it: then balance additions to it do not commute with
    /// everything, and all of them join.
    read: bool,
}

/// No transaction.
const NONE: u32 = u32::MAX;

impl Default for Touchers {
    fn default() -> Self {
        Self {
            first_writer: NONE,
            last_writer: NONE,
            first_adder: NONE,
            last_adder: NONE,
            read: false,
        }
    }
}

fn some(i: u32) -> Option<TxIdx> {
    (i != NONE).then_some(i as TxIdx)
}

/// A balance addition by `i`: it joins the location's first writer (every reader and writer
/// joins that one too); with no writer but a reader, it joins the first addition, which every
/// reader joins — a reader must see every earlier addition. Additions nobody reads commute.
fn join_addition(uf: &mut UnionFind, t: &Touchers, i: TxIdx) {
    if let Some(f) = some(t.first_writer) {
        uf.union(f, i);
    } else if t.read
        && let Some(f) = some(t.first_adder)
    {
        uf.union(f, i);
    }
}

/// Hashes fingerprints by using them as they are.
#[derive(Default, Clone, Copy)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type FingerprintMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdentityHasher>>;

/// Joins transactions whose predicted accesses conflict: one writes a location the other reads
/// or writes. Balance additions conflict with reads and writes of the account (a reader joins
/// every addition), not with each other. Leaves [`Partition::depends_on`] empty (see [`partition_with_dependencies`]).
pub fn partition(predictions: &[AccessPrediction]) -> Partition {
    build(predictions, false)
}

/// [`partition`], with each transaction's nearest predicted earlier writer (Block-STM's hints).
pub fn partition_with_dependencies(predictions: &[AccessPrediction]) -> Partition {
    build(predictions, true)
}

fn build(predictions: &[AccessPrediction], dependencies: bool) -> Partition {
    let n = predictions.len();
    let mut uf = UnionFind::new(n);
    // One entry per written location at most: sized once, never rehashed.
    let entries: usize = predictions.iter().map(|p| p.entries.len()).sum();
    let mut touchers: FingerprintMap<Touchers> =
        HashMap::with_capacity_and_hasher(entries, Default::default());
    let mut depends_on = vec![None; n];

    // Blocks beyond `u32` indices cannot exist (gas); if one did, it would run as one group.
    if u32::try_from(n).is_err() {
        return Partition {
            groups: vec![(0..n).collect()],
            group_of: vec![0; n],
            depends_on: if dependencies {
                (0..n).map(|i| i.checked_sub(1)).collect()
            } else {
                Vec::new()
            },
        };
    }
    for (i, p) in predictions.iter().enumerate() {
        let i32 = i as u32;
        for e in &p.entries {
            let t = touchers.entry(e.key).or_default();
            if e.flags & WRITE != 0 && t.first_writer == NONE {
                t.first_writer = i32;
            }
            if e.flags & ADD != 0 && t.first_adder == NONE {
                t.first_adder = i32;
            }
            if e.flags & (READ | WRITE) != 0 {
                t.read = true;
            }
        }
    }
    // Transactions 0..joined are already one group (every one before a reader of the beneficiary).
    let mut joined: usize = 0;
    for (i, p) in predictions.iter().enumerate() {
        if p.touches_coinbase {
            // Reading the beneficiary means reading every earlier fee: depend on everything.
            for j in joined.saturating_sub(1)..i {
                uf.union(j, i);
            }
            joined = i + 1;
            if i > 0 {
                depends_on[i] = Some(i - 1);
            }
        }
        let mut nearest: Option<TxIdx> = depends_on[i];
        for e in &p.entries {
            let Some(t) = touchers.get_mut(&e.key) else {
                continue;
            };
            if e.flags & (READ | WRITE) != 0 {
                // Joining the first writer and the first addition covers this entry's own
                // addition too.
                for first in [t.first_writer, t.first_adder] {
                    if let Some(f) = some(first) {
                        uf.union(f, i);
                    }
                }
            } else if e.flags & ADD != 0 {
                join_addition(&mut uf, t, i);
            }
            if !dependencies {
                continue;
            }
            if e.flags & (READ | WRITE) != 0 {
                for w in [t.last_writer, t.last_adder] {
                    if let Some(w) = some(w) {
                        nearest = Some(nearest.map_or(w, |x| x.max(w)));
                    }
                }
            }
            if e.flags & WRITE != 0 {
                t.last_writer = i as u32;
            }
            if e.flags & ADD != 0 {
                t.last_adder = i as u32;
            }
        }
        depends_on[i] = nearest;
    }

    let mut index_of_root = vec![usize::MAX; n];
    let mut groups: Vec<Vec<TxIdx>> = Vec::new();
    let mut group_of = vec![0; n];
    for (i, g) in group_of.iter_mut().enumerate() {
        let root = uf.find(i);
        if index_of_root[root] == usize::MAX {
            index_of_root[root] = groups.len();
            groups.push(Vec::new());
        }
        let idx = index_of_root[root];
        groups[idx].push(i);
        *g = idx;
    }
    if !dependencies {
        depends_on = Vec::new();
    }
    Partition {
        groups,
        group_of,
        depends_on,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::types::Location;
    use alloy_primitives::{Address, U256};

    fn p(reads: &[Location], writes: &[Location], adds: &[Address]) -> AccessPrediction {
        let mut p = AccessPrediction::default();
        for l in reads {
            p.read(*l);
        }
        for l in writes {
            p.write(*l);
        }
        for a in adds {
            p.add(*a);
        }
        p.finish()
    }

    #[test]
    fn conflicts_join_groups_and_additions_commute() {
        let a = Location::Account(Address::repeat_byte(1));
        let b = Location::Account(Address::repeat_byte(2));
        let hot = Address::repeat_byte(9);
        let slot = Location::Storage(Address::repeat_byte(3), U256::from(1));
        let part = partition_with_dependencies(&[
            p(&[], &[a], &[hot]),  // 0: a sends to hot
            p(&[], &[b], &[hot]),  // 1: b sends to hot: commutes with 0
            p(&[slot], &[a], &[]), // 2: a again: joins 0
            p(&[slot], &[], &[]),  // 3: reads slot nobody writes: alone
            p(&[Location::Account(hot)], &[Location::Account(hot)], &[]), // 4: hot spends: joins 0, 1
        ]);
        assert_eq!(part.group_of[0], part.group_of[2]);
        assert_eq!(part.group_of[0], part.group_of[4]);
        assert_eq!(part.group_of[1], part.group_of[4]);
        assert_ne!(part.group_of[3], part.group_of[0]);
        assert_eq!(part.depends_on[2], Some(0));
        assert_eq!(part.depends_on[3], None);
    }

    #[test]
    fn a_reader_of_an_account_joins_every_addition_to_it() {
        // Two plain transfers credit `hot`, a later transaction reads its balance: it must see
        // both credits, so all three run in one group. Credits nobody reads stay apart.
        let hot = Address::repeat_byte(9);
        let cold = Address::repeat_byte(8);
        let sender = |b: u8| Location::Account(Address::repeat_byte(b));
        for reader_first in [false, true] {
            let reader = p(&[Location::Account(hot)], &[sender(3)], &[]);
            let mut block = vec![
                p(&[], &[sender(1)], &[hot, cold]),
                p(&[], &[sender(2)], &[hot, cold]),
            ];
            if reader_first {
                block.insert(0, reader);
            } else {
                block.push(reader);
            }
            for part in [partition(&block), partition_with_dependencies(&block)] {
                assert_eq!(part.groups.len(), 1, "reader first: {reader_first}");
            }
        }
        let credits = [p(&[], &[sender(1)], &[hot]), p(&[], &[sender(2)], &[hot])];
        assert_eq!(partition(&credits).groups.len(), 2);
    }

    #[test]
    fn groups_keep_conflicts_together_and_do_not_depend_on_computing_dependencies() {
        // Random predictions over a few hot locations: both entry points group alike, and every
        // conflict lands in one group.
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let location = |r: u64| match r % 3 {
            0 => Location::Account(Address::with_last_byte((r % 7) as u8)),
            _ => Location::Storage(Address::with_last_byte(1), U256::from(r % 11)),
        };
        for _ in 0..50 {
            let predictions: Vec<AccessPrediction> = (0..40)
                .map(|_| {
                    let n = next() % 4;
                    let reads: Vec<Location> = (0..n).map(|_| location(next())).collect();
                    let writes: Vec<Location> = (0..next() % 2).map(|_| location(next())).collect();
                    let adds: Vec<Address> = (0..next() % 2)
                        .map(|_| Address::with_last_byte((next() % 7) as u8))
                        .collect();
                    let mut p = p(&reads, &writes, &adds);
                    p.touches_coinbase = next() % 13 == 0;
                    p
                })
                .collect();
            let plain = partition(&predictions);
            let full = partition_with_dependencies(&predictions);
            assert_eq!(plain.groups, full.groups);
            assert_eq!(plain.group_of, full.group_of);
            assert!(plain.depends_on.is_empty());
            // A reader of the beneficiary reads every earlier fee: it joins everything before.
            for (i, p) in predictions.iter().enumerate() {
                if p.touches_coinbase {
                    assert!((0..i).all(|j| plain.group_of[j] == plain.group_of[i]));
                }
            }
            // The invariant the group phase relies on, checked directly: whatever a transaction
            // reads or replaces, every earlier transaction that wrote or credited it is in its
            // group; whatever it credits, every earlier one that replaced it is.
            for (i, pi) in predictions.iter().enumerate() {
                for (j, pj) in predictions[..i].iter().enumerate() {
                    let conflict = pi.entries.iter().any(|e| {
                        let earlier = pj.flags(&e.location);
                        (e.flags & (READ | WRITE) != 0 && earlier & (WRITE | ADD) != 0)
                            || (e.flags & ADD != 0 && earlier & WRITE != 0)
                    });
                    if conflict {
                        assert_eq!(
                            plain.group_of[i], plain.group_of[j],
                            "{j} before {i}: {pj:?} / {pi:?}"
                        );
                    }
                }
            }
            assert_eq!(full.depends_on.len(), predictions.len());
        }
    }
}
