//! Analysed contract code shared across blocks and threads.

use alloy_primitives::{B256, KECCAK256_EMPTY, map::HashMap};
use parking_lot::RwLock;
use pharos_evm::revm::bytecode::Bytecode;

use crate::{StateError, StateView};

/// Contract code by hash, with jump destinations already analysed, so a contract called in every
/// block is read and analysed once. Bounded: when full, it starts over.
#[derive(Debug)]
pub struct CodeCache {
    map: RwLock<HashMap<B256, Bytecode>>,
    capacity: usize,
}

impl Default for CodeCache {
    fn default() -> Self {
        Self::new(20_000)
    }
}

impl CodeCache {
    /// A cache holding at most `capacity` contracts.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::default()),
            capacity: capacity.max(1),
        }
    }

    /// The code with hash `code_hash`, read from `state` and analysed on a miss.
    pub fn load(&self, code_hash: B256, state: &dyn StateView) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK256_EMPTY || code_hash == B256::ZERO {
            return Ok(Bytecode::default());
        }
        if let Some(code) = self.map.read().get(&code_hash) {
            return Ok(code.clone());
        }
        let raw = state
            .code(code_hash)?
            .ok_or_else(|| StateError(format!("code {code_hash} is missing from the state")))?;
        let code = Bytecode::new_raw(raw);
        self.insert(code_hash, code.clone());
        Ok(code)
    }

    /// Remembers analysed code (for example, code a block just deployed).
    pub fn insert(&self, code_hash: B256, code: Bytecode) {
        let mut map = self.map.write();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(code_hash, code);
    }

    /// Number of cached contracts.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
