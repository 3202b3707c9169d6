//! What a system contract runs against: raw state access ([`Env`]) and the metered context
//! ([`Cx`]) every contract function uses, which charges gas, refuses writes in static calls and
//! turns failures into reverts with a reason.

use alloy_primitives::{Address, B256, Bytes, Log, LogData, U256, keccak256};
use alloy_sol_types::SolEvent;

/// Gas charged when a system contract function starts.
pub const BASE_GAS: u64 = 700;
/// Gas per storage slot read.
pub const READ_GAS: u64 = 2_100;
/// Gas per storage slot written from zero to non-zero.
pub const WRITE_NEW_GAS: u64 = 20_000;
/// Gas per other storage slot write.
pub const WRITE_GAS: u64 = 2_900;
/// Gas for checking a Groth16 proof (about 2 ms here, priced like the EVM's pairing check).
pub const ZK_VERIFY_GAS: u64 = 250_000;

/// Why a system contract stopped without a revert reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The gas given to the call ran out.
    OutOfGas,
    /// A write in a static call.
    StaticWrite,
    /// The state could not be read (the error is kept by the environment and aborts the
    /// transaction; the parallel executor uses this to suspend a transaction).
    Fatal,
}

/// How a system contract call fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Revert with `Error(string)` carrying this reason.
    Revert(String),
    /// Stop without a reason.
    Stop(Stop),
}

impl From<Stop> for Failure {
    fn from(stop: Stop) -> Self {
        Failure::Stop(stop)
    }
}

/// A revert whose reason starts with `compliance: `.
pub fn deny<T>(reason: impl std::fmt::Display) -> Result<T, Failure> {
    Err(Failure::Revert(format!("compliance: {reason}")))
}

/// Raw access to the world state and the block, without gas.
pub trait Env {
    /// Reads a storage slot.
    fn sload(&mut self, address: Address, slot: U256) -> Result<U256, Stop>;
    /// Reads a storage slot for a protocol check that charges no gas, without loading the
    /// account into the transaction's journal when it is not there yet (cheaper, and nothing
    /// about the transaction's accessed state changes). Sees the transaction's own writes.
    fn peek(&mut self, address: Address, slot: U256) -> Result<U256, Stop> {
        self.sload(address, slot)
    }
    /// Writes a storage slot.
    fn sstore(&mut self, address: Address, slot: U256, value: U256) -> Result<(), Stop>;
    /// Appends a log to the transaction's logs (reverted with the call).
    fn log(&mut self, log: Log);
    /// The block timestamp, seconds.
    fn timestamp(&self) -> u64;
}

/// A metered call context over an [`Env`].
pub struct Cx<'e, E: Env + ?Sized> {
    env: &'e mut E,
    gas_limit: u64,
    gas_used: u64,
    is_static: bool,
}

impl<'e, E: Env + ?Sized> Cx<'e, E> {
    /// A context with `gas_limit` gas; writes fail when `is_static`.
    pub fn new(env: &'e mut E, gas_limit: u64, is_static: bool) -> Self {
        Self {
            env,
            gas_limit,
            gas_used: 0,
            is_static,
        }
    }

    /// Gas used so far.
    pub fn gas_used(&self) -> u64 {
        self.gas_used
    }

    /// Charges `gas`.
    pub fn charge(&mut self, gas: u64) -> Result<(), Stop> {
        let used = self.gas_used.saturating_add(gas);
        if used > self.gas_limit {
            self.gas_used = self.gas_limit;
            return Err(Stop::OutOfGas);
        }
        self.gas_used = used;
        Ok(())
    }

    /// The block timestamp.
    pub fn timestamp(&self) -> u64 {
        self.env.timestamp()
    }

    /// Reads a slot for [`READ_GAS`].
    pub fn read(&mut self, address: Address, slot: U256) -> Result<U256, Stop> {
        self.charge(READ_GAS)?;
        self.env.sload(address, slot)
    }

    /// [`Env::peek`], free of gas (protocol checks).
    pub fn peek(&mut self, address: Address, slot: U256) -> Result<U256, Stop> {
        self.env.peek(address, slot)
    }

    /// Reads a slot without charging (its cost was charged with something else).
    pub fn read_raw(&mut self, address: Address, slot: U256) -> Result<U256, Stop> {
        self.env.sload(address, slot)
    }

    /// Reads a slot holding an address.
    pub fn read_address(&mut self, address: Address, slot: U256) -> Result<Address, Stop> {
        Ok(word_address(self.read(address, slot)?))
    }

    /// Writes a slot: [`WRITE_NEW_GAS`] from zero to non-zero, [`WRITE_GAS`] otherwise (the
    /// current value is read first, without a separate charge). Unchanged values cost nothing
    /// more than the read.
    pub fn write(&mut self, address: Address, slot: U256, value: U256) -> Result<(), Stop> {
        if self.is_static {
            return Err(Stop::StaticWrite);
        }
        let current = self.env.sload(address, slot)?;
        if current == value {
            return self.charge(READ_GAS);
        }
        self.charge(if current.is_zero() {
            WRITE_NEW_GAS
        } else {
            WRITE_GAS
        })?;
        self.env.sstore(address, slot, value)
    }

    /// Emits `event` from `address` for the EVM's LOG cost.
    pub fn emit<T: SolEvent>(&mut self, address: Address, event: &T) -> Result<(), Stop> {
        self.emit_data(address, event.encode_log_data())
    }

    /// Emits raw log data from `address` for the EVM's LOG cost.
    pub fn emit_data(&mut self, address: Address, data: LogData) -> Result<(), Stop> {
        if self.is_static {
            return Err(Stop::StaticWrite);
        }
        let topics = data.topics().len() as u64;
        let bytes = data.data.len() as u64;
        self.charge(375 + 375 * topics + 8 * bytes)?;
        self.env.log(Log { address, data });
        Ok(())
    }
}

/// The low 20 bytes of a word as an address.
pub fn word_address(word: U256) -> Address {
    Address::from_word(B256::from(word))
}

/// An address as a word.
pub fn address_word(address: Address) -> U256 {
    U256::from_be_bytes(address.into_word().0)
}

/// `keccak256(tag || words...)`: where a keyed value lives in a system contract's storage.
pub fn slot(tag: &[u8], words: &[B256]) -> U256 {
    let mut buf = Vec::with_capacity(tag.len() + 32 * words.len());
    buf.extend_from_slice(tag);
    for word in words {
        buf.extend_from_slice(word.as_slice());
    }
    U256::from_be_bytes(keccak256(&buf).0)
}

/// An address as a key word.
pub fn akey(address: Address) -> B256 {
    address.into_word()
}

/// A number as a key word.
pub fn nkey<T>(value: T) -> B256
where
    U256: alloy_primitives::ruint::UintTryFrom<T>,
{
    B256::from(U256::from(value))
}

/// Output bytes of a successful call.
pub type Output = Result<Bytes, Failure>;

/// An in-memory [`Env`] for tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryEnv {
    /// Storage by (address, slot).
    pub storage: std::collections::HashMap<(Address, U256), U256>,
    /// Logs emitted.
    pub logs: Vec<Log>,
    /// Block timestamp.
    pub now: u64,
}

impl Env for MemoryEnv {
    fn sload(&mut self, address: Address, slot: U256) -> Result<U256, Stop> {
        Ok(self
            .storage
            .get(&(address, slot))
            .copied()
            .unwrap_or_default())
    }

    fn sstore(&mut self, address: Address, slot: U256, value: U256) -> Result<(), Stop> {
        if value.is_zero() {
            self.storage.remove(&(address, slot));
        } else {
            self.storage.insert((address, slot), value);
        }
        Ok(())
    }

    fn log(&mut self, log: Log) {
        self.logs.push(log);
    }

    fn timestamp(&self) -> u64 {
        self.now
    }
}
