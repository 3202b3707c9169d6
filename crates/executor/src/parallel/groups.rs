//! From predicted accesses to a schedule: transactions that may conflict are joined into one
//! group (union-find over locations) and run in order on one worker; groups run in parallel.
//! Also the nearest predicted earlier writer of each transaction, Block-STM's dependency hint.

use alloy_primitives::{Address, map::HashMap};

use super::{
    predict::AccessPrediction,
    types::{Location, TxIdx},
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
    /// For each transaction, the nearest earlier one predicted to write what it touches.
    pub depends_on: Vec<Option<TxIdx>>,
}

/// Joins transactions whose predicted accesses conflict: one writes a location the other reads
/// or writes. Balance additions conflict with reads and writes of the account, not with each
/// other.
pub fn partition(predictions: &[AccessPrediction]) -> Partition {
    let n = predictions.len();
    let mut uf = UnionFind::new(n);
    let mut first_writer: HashMap<Location, TxIdx> = HashMap::default();
    let mut first_adder: HashMap<Address, TxIdx> = HashMap::default();
    let mut last_writer: HashMap<Location, TxIdx> = HashMap::default();
    let mut last_adder: HashMap<Address, TxIdx> = HashMap::default();
    let mut depends_on = vec![None; n];
    let mut coinbase_toucher: Option<TxIdx> = None;

    for (i, p) in predictions.iter().enumerate() {
        for l in &p.writes {
            first_writer.entry(*l).or_insert(i);
        }
        for a in &p.adds {
            first_adder.entry(*a).or_insert(i);
        }
    }
    for (i, p) in predictions.iter().enumerate() {
        if p.touches_coinbase {
            // Reading the beneficiary means reading every earlier fee: depend on everything.
            match coinbase_toucher {
                Some(c) => uf.union(c, i),
                None => coinbase_toucher = Some(i),
            }
            for j in 0..i {
                uf.union(j, i);
            }
            if i > 0 {
                depends_on[i] = Some(i - 1);
            }
        }
        let mut nearest: Option<TxIdx> = depends_on[i];
        for l in p.reads.iter().chain(&p.writes) {
            if let Some(&w) = first_writer.get(l) {
                uf.union(w, i);
            }
            if let Location::Account(a) = l
                && let Some(&w) = first_adder.get(a)
            {
                uf.union(w, i);
            }
            let adder = match l {
                Location::Account(a) => last_adder.get(a).copied(),
                Location::Storage(..) => None,
            };
            for w in [last_writer.get(l).copied(), adder].into_iter().flatten() {
                nearest = Some(nearest.map_or(w, |x| x.max(w)));
            }
        }
        for a in &p.adds {
            if let Some(&w) = first_writer.get(&Location::Account(*a)) {
                uf.union(w, i);
            }
        }
        depends_on[i] = nearest;
        for l in &p.writes {
            last_writer.insert(*l, i);
        }
        for a in &p.adds {
            last_adder.insert(*a, i);
        }
    }

    let mut index_of_root: HashMap<usize, usize> = HashMap::default();
    let mut groups: Vec<Vec<TxIdx>> = Vec::new();
    let mut group_of = vec![0; n];
    for (i, g) in group_of.iter_mut().enumerate() {
        let root = uf.find(i);
        let idx = *index_of_root.entry(root).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[idx].push(i);
        *g = idx;
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
    use alloy_primitives::U256;

    fn p(reads: &[Location], writes: &[Location], adds: &[Address]) -> AccessPrediction {
        AccessPrediction {
            reads: reads.to_vec(),
            writes: writes.to_vec(),
            adds: adds.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn conflicts_join_groups_and_additions_commute() {
        let a = Location::Account(Address::repeat_byte(1));
        let b = Location::Account(Address::repeat_byte(2));
        let hot = Address::repeat_byte(9);
        let slot = Location::Storage(Address::repeat_byte(3), U256::from(1));
        let part = partition(&[
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
}
