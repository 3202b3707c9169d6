//! A consistent read view: the head block at the moment it was opened, and the state after it.

use std::sync::Arc;

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_rlp::Decodable;
use pharos_executor::{StateError, StateView};
use pharos_primitives::{AccountState, BlockBody, StoredReceipt};
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTableMetadata};

use crate::{Head, StoreError, codec, flat::FlatView, log_address_key, tables::*};

/// A read transaction over the whole database. Cheap to open; holds no lock against writers.
pub struct Snapshot {
    head: Arc<Head>,
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
    headers: ReadOnlyTable<u64, &'static [u8]>,
    canonical: ReadOnlyTable<u64, &'static [u8; 32]>,
    hash_numbers: ReadOnlyTable<&'static [u8; 32], u64>,
    bodies: ReadOnlyTable<u64, &'static [u8]>,
    receipts: ReadOnlyTable<u64, &'static [u8]>,
    tx_lookup: ReadOnlyTable<&'static [u8; 32], (u64, u32)>,
    /// Transaction locations of recent blocks not yet in `tx_lookup`.
    tx_pending: crate::TxPending,
    log_addresses: ReadOnlyTable<&'static [u8; 28], ()>,
    codes: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    /// State; `None` only while the store itself is opening.
    state: Option<FlatView>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("head", &self.head.header.number)
            .finish()
    }
}

impl Snapshot {
    /// Opens a view of the chain database at `head` (read from the database when `None`) with
    /// the state `state` (which must be the state after that head).
    pub(crate) fn open(
        db: &Database,
        head: Option<Arc<Head>>,
        state: Option<FlatView>,
        tx_pending: Option<&parking_lot::RwLock<crate::TxPending>>,
    ) -> Result<Self, StoreError> {
        // The read transaction first, then the pending index: entries leave the pending list
        // only a whole index interval after the transaction that wrote them to the table.
        let txn = db.begin_read()?;
        let tx_pending = tx_pending.map(|p| p.read().clone()).unwrap_or_default();
        let mut snapshot = Self {
            head: Arc::new(Head {
                header: Header::default(),
                hash: B256::ZERO,
            }),
            meta: txn.open_table(META)?,
            headers: txn.open_table(HEADERS)?,
            canonical: txn.open_table(CANONICAL)?,
            hash_numbers: txn.open_table(HASH_NUMBERS)?,
            bodies: txn.open_table(BODIES)?,
            receipts: txn.open_table(RECEIPTS)?,
            tx_lookup: txn.open_table(TX_LOOKUP)?,
            tx_pending,
            log_addresses: txn.open_table(LOG_ADDRESSES)?,
            codes: txn.open_table(CODES)?,
            state,
        };
        // The head is the one given: block data is immutable, so a transaction that also sees
        // a newer block is still consistent with it; the state view is that head's.
        if let Some(head) = head {
            snapshot.head = head;
        }
        Ok(snapshot)
    }

    fn state(&self) -> Result<&FlatView, StoreError> {
        self.state
            .as_ref()
            .ok_or_else(|| StoreError::Db("snapshot without state".into()))
    }

    pub(crate) fn head_number_from_meta(&self) -> Result<u64, StoreError> {
        let raw = self
            .meta
            .get(crate::META_HEAD)?
            .ok_or_else(|| StoreError::Corrupt("no head recorded".into()))?;
        <[u8; 8]>::try_from(raw.value())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("head pointer is not 8 bytes".into()))
    }

    /// The head block of this view.
    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// Header of canonical block `number`.
    pub fn header(&self, number: u64) -> Result<Option<Header>, StoreError> {
        match self.headers.get(number)? {
            None => Ok(None),
            Some(raw) => {
                let mut bytes = raw.value();
                Header::decode(&mut bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("header {number}: {e}")))
            }
        }
    }

    /// Hash of canonical block `number`.
    pub fn block_hash_of(&self, number: u64) -> Result<Option<B256>, StoreError> {
        Ok(self.canonical.get(number)?.map(|v| B256::from(*v.value())))
    }

    /// Number of the block with hash `hash`.
    pub fn block_number(&self, hash: B256) -> Result<Option<u64>, StoreError> {
        Ok(self.hash_numbers.get(&hash.0)?.map(|v| v.value()))
    }

    /// Transactions of block `number`.
    pub fn body(&self, number: u64) -> Result<Option<BlockBody>, StoreError> {
        self.bodies
            .get(number)?
            .map(|raw| codec::decode_body(raw.value()))
            .transpose()
    }

    /// The first `max` transactions of block `number`.
    pub fn body_prefix(&self, number: u64, max: usize) -> Result<Option<BlockBody>, StoreError> {
        self.bodies
            .get(number)?
            .map(|raw| codec::decode_body_prefix(raw.value(), max))
            .transpose()
    }

    /// Receipts of block `number`.
    pub fn receipts(&self, number: u64) -> Result<Option<Vec<StoredReceipt>>, StoreError> {
        self.receipts
            .get(number)?
            .map(|raw| codec::decode_receipts(raw.value()))
            .transpose()
    }

    /// Where transaction `hash` was included: (block number, index).
    pub fn tx_location(&self, hash: B256) -> Result<Option<(u64, u32)>, StoreError> {
        // Blocks above this snapshot's head (committed while it was taken) are not visible:
        // a receipt must never show before the state after it.
        let head = self.head.header.number;
        for (number, block) in self.tx_pending.iter().rev() {
            if *number > head {
                continue;
            }
            if let Some(index) = block.get(&hash) {
                return Ok(Some((*number, *index)));
            }
        }
        Ok(self
            .tx_lookup
            .get(&hash.0)?
            .map(|v| v.value())
            .filter(|(number, _)| *number <= head))
    }

    /// Blocks in `from..=to` that hold logs emitted by `address`, ascending.
    pub fn blocks_with_logs_of(
        &self,
        address: &Address,
        from: u64,
        to: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let lo = log_address_key(address, from);
        let hi = log_address_key(address, to);
        let mut out = Vec::new();
        for entry in self.log_addresses.range::<&[u8; 28]>(&lo..=&hi)? {
            let (k, _) = entry?;
            let mut n = [0u8; 8];
            n.copy_from_slice(&k.value()[20..]);
            out.push(u64::from_be_bytes(n));
        }
        Ok(out)
    }

    /// The state of `address`.
    pub fn account_state(&self, address: Address) -> Result<Option<AccountState>, StoreError> {
        self.state()?.account(&keccak256(address))
    }

    /// Recomputes the state root from the flat state alone, storage roots included (for
    /// checks; linear in the state size). Needs every block written to the tables:
    /// see [`crate::Store::flush`].
    pub fn compute_state_root(
        &self,
        kind: pharos_primitives::StateCommitment,
    ) -> Result<B256, StoreError> {
        let state = self.state()?;
        if state.has_pending() {
            return Err(StoreError::Db(
                "recent blocks are not in the flat state tables yet; flush the store first".into(),
            ));
        }
        crate::commitment::full_state_root_of(kind, &state.accounts, &state.storage)
    }

    /// Number of accounts in the state tables (blocks not yet flushed to them not counted).
    pub fn account_count(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.accounts.len()?)
    }
}

fn state_err(e: StoreError) -> StateError {
    StateError(e.to_string())
}

impl StateView for Snapshot {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        self.account_state(address).map_err(state_err)
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        self.state()
            .and_then(|s| s.storage(&keccak256(address), &keccak256(slot.to_be_bytes::<32>())))
            .map_err(state_err)
    }

    fn code(&self, code_hash: B256) -> Result<Option<Bytes>, StateError> {
        Ok(self
            .codes
            .get(&code_hash.0)
            .map_err(|e| state_err(e.into()))?
            .map(|v| Bytes::copy_from_slice(v.value())))
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        Ok(self
            .block_hash_of(number)
            .map_err(state_err)?
            .unwrap_or_default())
    }
}
