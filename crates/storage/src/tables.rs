//! Table layout of the chain database.

use redb::TableDefinition;

/// Chain identity and the head pointer: `chain_id`, `genesis_hash`, `head`, `schema`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Block number → header RLP.
pub const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
/// Block number → block hash.
pub const CANONICAL: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("canonical");
/// Block hash → block number.
pub const HASH_NUMBERS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("hash_numbers");
/// Block number → body (see [`crate::codec::encode_body`]).
pub const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
/// Block number → receipts (see [`crate::codec::encode_receipts`]).
pub const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
/// Transaction hash → (block number, index in block).
pub const TX_LOOKUP: TableDefinition<&[u8; 32], (u64, u32)> = TableDefinition::new("tx_lookup");
/// Emitting address | block number → (): which blocks hold logs of an address.
pub const LOG_ADDRESSES: TableDefinition<&[u8; 28], ()> = TableDefinition::new("log_addresses");
/// keccak256(address) → [`crate::AccountRecord`].
pub const ACCOUNTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("accounts");
/// keccak256(address) | keccak256(slot) → value (32 bytes, big-endian; zero values absent).
pub const STORAGE: TableDefinition<&[u8; 64], &[u8; 32]> = TableDefinition::new("storage");
/// Code hash → code.
pub const CODES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("codes");
/// Block number → the hashed keys that block changed (see [`crate::codec::encode_journal`]):
/// what the state trie replays after a crash. Pruned below the trie's durable checkpoint.
pub const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("trie_journal");
