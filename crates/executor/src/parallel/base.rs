//! The block's pre-state, read through a concurrent cache that preloading fills in one batch.

use std::hash::{BuildHasher, Hash};

use alloy_primitives::{Address, U256, map::HashMap};
use parking_lot::RwLock;

use super::types::{Location, Value};
use crate::{StateError, StateView};

const SHARDS: usize = 64;

/// The state before the block, cached: every location is read from the view at most once (per
/// race), whichever worker or preloader asks first.
pub struct BaseState<'a> {
    view: &'a dyn StateView,
    shards: Vec<RwLock<HashMap<Location, Value>>>,
    hasher: alloy_primitives::map::DefaultHashBuilder,
    /// The view answers about as fast as the cache would: read it directly.
    direct: std::sync::atomic::AtomicBool,
}

impl<'a> BaseState<'a> {
    /// An empty cache over `view`.
    pub fn new(view: &'a dyn StateView) -> Self {
        Self {
            view,
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::default()))
                .collect(),
            hasher: Default::default(),
            direct: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The view underneath.
    pub fn view(&self) -> &'a dyn StateView {
        self.view
    }

    fn shard(&self, location: &Location) -> &RwLock<HashMap<Location, Value>> {
        let h = self.hasher.hash_one(location);
        &self.shards[(h as usize) % SHARDS]
    }

    fn read_view(&self, location: &Location) -> Result<Value, StateError> {
        Ok(match *location {
            Location::Account(a) => Value::Account(self.view.account(a)?),
            Location::Storage(a, slot) => Value::Storage(self.view.storage(a, slot)?),
        })
    }

    /// The pre-block value at `location`.
    pub fn get(&self, location: &Location) -> Result<Value, StateError> {
        if self.direct.load(std::sync::atomic::Ordering::Relaxed) {
            return self.read_view(location);
        }
        let shard = self.shard(location);
        if let Some(v) = shard.read().get(location) {
            return Ok(*v);
        }
        let value = self.read_view(location)?;
        shard.write().insert(*location, value);
        Ok(value)
    }

    /// The pre-block account at `address`.
    pub fn account(
        &self,
        address: Address,
    ) -> Result<Option<pharos_primitives::AccountState>, StateError> {
        match self.get(&Location::Account(address))? {
            Value::Account(a) => Ok(a),
            Value::Storage(_) => Err(StateError("account location holds a slot".into())),
        }
    }

    /// The pre-block value of a slot.
    pub fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        match self.get(&Location::Storage(address, slot))? {
            Value::Storage(v) => Ok(v),
            Value::Account(_) => Err(StateError("slot location holds an account".into())),
        }
    }

    /// Number of cached locations.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Times a few reads of the view. A view that answers from memory (below `FAST_READ`) is
    /// read directly from then on, without the cache; preloading only pays off for slow ones.
    /// Returns whether the view is slow.
    pub fn probe(&self, locations: &[Location]) -> Result<bool, StateError> {
        const PROBE: usize = 16;
        const FAST_READ: std::time::Duration = std::time::Duration::from_micros(1);
        let probe = locations.len().min(PROBE);
        if probe == 0 {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        for l in &locations[..probe] {
            self.read_view(l)?;
        }
        let per_read = started.elapsed() / probe as u32;
        if per_read < FAST_READ {
            self.direct
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(per_read >= FAST_READ * 8)
    }

    /// Reads `locations` with up to `threads` concurrent readers, so that the latency of the
    /// view's misses overlaps instead of adding up.
    pub fn preload(&self, locations: &[Location], threads: usize) -> Result<(), StateError> {
        if locations.is_empty() {
            return Ok(());
        }
        // A reader thread pays for itself only with enough reads to overlap.
        let threads = threads.clamp(1, locations.len().div_ceil(64));
        if threads == 1 {
            for l in locations {
                self.get(l)?;
            }
            return Ok(());
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let error = parking_lot::Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(l) = locations.get(i) else { break };
                        if let Err(e) = self.get(l) {
                            *error.lock() = Some(e);
                            break;
                        }
                    }
                });
            }
        });
        match error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The cached pre-state is itself a view: the sequential fallback reuses what was preloaded.
impl StateView for BaseState<'_> {
    fn account(
        &self,
        address: Address,
    ) -> Result<Option<pharos_primitives::AccountState>, StateError> {
        BaseState::account(self, address)
    }
    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        BaseState::storage(self, address, slot)
    }
    fn code(
        &self,
        code_hash: alloy_primitives::B256,
    ) -> Result<Option<alloy_primitives::Bytes>, StateError> {
        self.view.code(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<alloy_primitives::B256, StateError> {
        self.view.block_hash(number)
    }
}

/// Deduplicates locations, keeping first-seen order.
pub fn dedup<T: Hash + Eq + Copy>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen: alloy_primitives::map::HashSet<T> = Default::default();
    items.into_iter().filter(|i| seen.insert(*i)).collect()
}

/// A worker's own memo in front of [`BaseState`]: repeated reads of hot locations (a pool's
/// reserves, a token's code) stay on the worker, without touching shared structures.
#[derive(Default)]
pub struct BaseMemo {
    map: HashMap<Location, Value>,
}

impl BaseMemo {
    /// The pre-block value at `location`.
    pub fn get(&mut self, base: &BaseState<'_>, location: Location) -> Result<Value, StateError> {
        if let Some(v) = self.map.get(&location) {
            return Ok(*v);
        }
        let v = base.get(&location)?;
        self.map.insert(location, v);
        Ok(v)
    }

    /// The pre-block account at `address`.
    pub fn account(
        &mut self,
        base: &BaseState<'_>,
        address: Address,
    ) -> Result<Option<pharos_primitives::AccountState>, StateError> {
        match self.get(base, Location::Account(address))? {
            Value::Account(a) => Ok(a),
            Value::Storage(_) => Err(StateError("account location holds a slot".into())),
        }
    }

    /// The pre-block value of a slot.
    pub fn storage(
        &mut self,
        base: &BaseState<'_>,
        address: Address,
        slot: U256,
    ) -> Result<U256, StateError> {
        match self.get(base, Location::Storage(address, slot))? {
            Value::Storage(v) => Ok(v),
            Value::Account(_) => Err(StateError("slot location holds an account".into())),
        }
    }
}
