//! The vocabulary every other crate speaks: transactions carrying their recovered sender, blocks,
//! receipts, account state and the state diff a block produces, and the chain spec with its genesis.
//!
//! # Design
//! The wire and consensus formats are Ethereum's, so the types are alloy's (`TxEnvelope`,
//! `Header`, `ReceiptEnvelope`) wrapped only where Pharos adds something: a [`RecoveredTx`] carries
//! the sender recovered once at admission so no later stage pays for `ecrecover` again, and a
//! [`StateDiff`] is the one shape in which execution hands its writes to storage.
//!
//! This crate performs no I/O and knows nothing about execution or storage engines; it may compute
//! pure functions of its types (hashes, the genesis state root).
#![warn(missing_docs)]

pub mod binary_state;
pub mod block;
pub mod chain;
pub mod receipt;
pub mod state;
pub mod tx;

pub use alloy_consensus::{self, Header, TxEnvelope};
pub use alloy_primitives::{self, Address, B256, Bloom, Bytes, Log, LogData, U256, keccak256};
pub use block::{Block, BlockBody};
pub use chain::{ChainSpec, ChainSpecError, DEV_MNEMONIC, StateCommitment, dev_accounts};
pub use receipt::{StoredReceipt, TxReceiptInfo};
pub use state::{AccountChange, AccountState, StateDiff};
pub use tx::{MAX_TX_SIZE, RecoveredTx, TxDecodeError};

/// One native token in wei (18 decimals).
pub const ONE_TOKEN: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);
