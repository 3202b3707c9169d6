//! A revm database over a [`StateView`] that remembers what execution wrote.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, U256, map::HashMap};
use pharos_evm::revm::{
    Database, DatabaseCommit,
    bytecode::Bytecode,
    primitives::StorageKey,
    state::{Account, AccountInfo},
};
use pharos_primitives::{AccountChange, AccountState, StateDiff};

use crate::{CodeCache, StateError, StateView};

#[derive(Debug, Default, Clone)]
struct CachedAccount {
    /// Current value (`None`: does not exist).
    info: Option<AccountState>,
    /// Slots read or written, with current values.
    storage: HashMap<U256, U256>,
    /// Slots written since the overlay was created.
    written: BTreeMap<U256, U256>,
    /// Storage was wiped (account deleted or re-created): unread slots are zero.
    wiped: bool,
    /// Info changed since the overlay was created.
    changed: bool,
}

/// Pending writes over a [`StateView`]: reads fall through to the view, commits land here, and
/// [`Overlay::into_diff`] returns them as a [`StateDiff`].
///
/// Commit follows Ethereum's rules after Spurious Dragon: an account self-destructed or touched
/// while empty (EIP-161) is deleted with its storage; a created account starts with empty storage.
pub struct Overlay<'a> {
    base: &'a dyn StateView,
    codes: &'a CodeCache,
    accounts: HashMap<Address, CachedAccount>,
    new_codes: BTreeMap<B256, Bytes>,
}

impl<'a> Overlay<'a> {
    /// An overlay with no writes yet.
    pub fn new(base: &'a dyn StateView, codes: &'a CodeCache) -> Self {
        Self {
            base,
            codes,
            accounts: HashMap::default(),
            new_codes: BTreeMap::new(),
        }
    }

    fn load(&mut self, address: Address) -> Result<&mut CachedAccount, StateError> {
        use std::collections::hash_map::Entry;
        Ok(match self.accounts.entry(address) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(CachedAccount {
                info: self.base.account(address)?,
                ..Default::default()
            }),
        })
    }

    /// Applies revm's post-transaction state of one account.
    pub fn commit_account(&mut self, address: Address, account: Account) {
        if !account.is_touched() {
            return;
        }
        let entry = self.accounts.entry(address).or_default();
        entry.changed = true;
        if account.is_selfdestructed() {
            entry.info = None;
            entry.storage.clear();
            entry.written.clear();
            entry.wiped = true;
            return;
        }
        if account.is_created() {
            entry.storage.clear();
            entry.written.clear();
            entry.wiped = true;
        } else if account.is_empty() {
            // EIP-161: a touched empty account is removed.
            entry.info = None;
            entry.storage.clear();
            entry.written.clear();
            entry.wiped = true;
            return;
        }
        for (slot, value) in account.changed_storage_slots() {
            let v = value.present_value();
            entry.storage.insert(*slot, v);
            entry.written.insert(*slot, v);
        }
        let info = account.info;
        let code_changed = entry.info.map(|i| i.code_hash) != Some(info.code_hash);
        if code_changed
            && let Some(code) = &info.code
            && !code.is_empty()
        {
            self.new_codes.insert(info.code_hash, code.original_bytes());
            self.codes.insert(info.code_hash, code.clone());
        }
        entry.info = Some(AccountState {
            nonce: info.nonce,
            balance: info.balance,
            code_hash: info.code_hash,
        });
    }

    /// The writes made through this overlay.
    pub fn into_diff(self) -> StateDiff {
        let accounts = self
            .accounts
            .into_iter()
            .filter(|(_, a)| a.changed || !a.written.is_empty())
            .map(|(address, a)| {
                (
                    address,
                    AccountChange {
                        info: a.info,
                        storage_wiped: a.wiped,
                        storage: a.written,
                    },
                )
            })
            .collect();
        StateDiff {
            accounts,
            codes: self.new_codes,
        }
    }
}

/// revm's view of an account; its code is fetched by hash when needed.
pub(crate) fn account_info(a: &AccountState) -> AccountInfo {
    AccountInfo {
        balance: a.balance,
        nonce: a.nonce,
        code_hash: a.code_hash,
        code: None,
        ..Default::default()
    }
}

impl Database for Overlay<'_> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.load(address)?.info.as_ref().map(account_info))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.codes.load(code_hash, self.base)
    }

    fn storage(&mut self, address: Address, index: StorageKey) -> Result<U256, Self::Error> {
        let base = self.base;
        let account = self.load(address)?;
        if let Some(v) = account.storage.get(&index) {
            return Ok(*v);
        }
        let value = if account.wiped {
            U256::ZERO
        } else {
            base.storage(address, index)?
        };
        account.storage.insert(index, value);
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.base.block_hash(number)
    }
}

impl DatabaseCommit for Overlay<'_> {
    fn commit(&mut self, changes: alloy_primitives::map::AddressMap<Account>) {
        for (address, account) in changes {
            self.commit_account(address, account);
        }
    }
}
