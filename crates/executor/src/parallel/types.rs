//! What the parallel executor tracks per transaction: locations, values, reads and writes.

use alloy_primitives::{Address, B256, Bytes, KECCAK256_EMPTY, U256};
use pharos_primitives::AccountState;

use crate::TxResult;

/// Index of a transaction in its block.
pub type TxIdx = usize;

/// A unit of state that transactions read and write, and the grain of conflict detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// An account's nonce, balance, code hash and existence.
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
}

impl Location {
    /// The account the location belongs to.
    pub fn address(&self) -> Address {
        match self {
            Location::Account(a) | Location::Storage(a, _) => *a,
        }
    }
}

/// The value at a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// An account (`None`: does not exist).
    Account(Option<AccountState>),
    /// A storage slot.
    Storage(U256),
}

/// How a transaction changes a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// Replace the value.
    Set(Value),
    /// Add to an account's balance without reading it (fees to the block's beneficiary, value to a
    /// plain-transfer recipient). Additions commute, so they do not conflict with each other.
    AddBalance(U256),
}

/// Applies a balance addition to an account value.
pub fn add_balance(account: Option<AccountState>, delta: U256) -> Option<AccountState> {
    if delta.is_zero() {
        return account;
    }
    let mut a = account.unwrap_or_default();
    a.balance = a.balance.saturating_add(delta);
    Some(a)
}

/// What part of an account a read depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// Everything at the location.
    Full,
    /// Only an account's code hash: balance additions do not change it.
    CodeOnly,
}

/// What a read observed, compared again at validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The value.
    Value(Value),
    /// An account's code hash (for [`ReadKind::CodeOnly`]).
    CodeHash(B256),
}

impl Observed {
    /// What `kind` observes of `value`.
    pub fn of(kind: ReadKind, value: Value) -> Self {
        match (kind, value) {
            (ReadKind::CodeOnly, Value::Account(a)) => {
                Observed::CodeHash(a.map(|a| a.code_hash).unwrap_or(KECCAK256_EMPTY))
            }
            (_, v) => Observed::Value(v),
        }
    }
}

/// One read of a transaction execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Where.
    pub location: Location,
    /// Which part.
    pub kind: ReadKind,
    /// What was seen.
    pub observed: Observed,
}

/// Everything one execution of a transaction wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxWrites {
    /// One operation per location, in no particular order.
    pub ops: Vec<(Location, WriteOp)>,
    /// Accounts whose storage was wiped first (created or deleted by this transaction).
    pub wipes: Vec<Address>,
    /// Code deployed by this transaction.
    pub codes: Vec<(B256, Bytes)>,
}

/// One execution of one transaction.
#[derive(Debug, Clone)]
pub struct TxRun {
    /// Its outcome (or rejection).
    pub result: TxResult,
    /// What it read, in order.
    pub reads: Vec<Read>,
    /// What it wrote.
    pub writes: TxWrites,
    /// The 64-byte `KECCAK256` inputs (mapping slots) it hashed, with their hashes: recorded only
    /// for the transactions learning looks at (see [`super::txexec::TxDb::observe`]).
    pub preimages: Vec<super::sali::Preimage>,
}
