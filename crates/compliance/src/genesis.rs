//! The system contracts' genesis state: their accounts (one byte of code, nonce 1), the
//! administrator, the genesis claim topics, and optionally a zkDID verifying key and policy.

use std::collections::BTreeMap;

use alloy_genesis::GenesisAccount;
use alloy_primitives::{Address, B256, Bytes, U256};
use pharos_primitives::chain::{ChainSpec, ChainSpecError};

use crate::env::address_word;
use crate::identity::{ADMIN_SLOT, GENESIS_TOPICS, TOPIC_ZK_CREDENTIAL, encode_short_string};
use crate::zk::{FLAG_ALLOW_INSECURE_DEV, FLAGS_SLOT, StoredPolicy, vk_storage};
use crate::{IDENTITY_REGISTRY, SYSTEM_CONTRACTS, TRUSTED_ISSUERS, ZK_VERIFIER};

/// Seed of the development zkDID keys ([`pharos_zkdid::insecure_dev_setup`]): anyone can forge
/// proofs for them. Development chains only.
pub const DEV_ZK_SEED: u64 = 0x7068_6172_6f73; // "pharos"

/// The verifying key of [`DEV_ZK_SEED`] (a test checks it against the setup).
pub const DEV_VERIFYING_KEY: &[u8] = include_bytes!("dev_verifying_key.bin");

/// What the genesis sets.
#[derive(Debug, Clone)]
pub struct ComplianceGenesis {
    /// The compliance administrator.
    pub admin: Address,
    /// Accept insecure development zkDID keys (development chains only).
    pub allow_insecure_dev_keys: bool,
    /// The zkDID verifying key, if set at genesis.
    pub verifying_key: Option<Vec<u8>>,
    /// The zkDID policy, if set at genesis.
    pub policy: Option<StoredPolicy>,
}

impl ComplianceGenesis {
    /// A development chain: `admin`, insecure development keys allowed and installed, and a
    /// policy of age 18, KYC level 1, any scope, one day of date lag, claims of topic
    /// `ZK_CREDENTIAL` valid for a year.
    pub fn dev(admin: Address) -> Self {
        Self {
            admin,
            allow_insecure_dev_keys: true,
            verifying_key: Some(DEV_VERIFYING_KEY.to_vec()),
            policy: Some(StoredPolicy {
                min_age_years: 18,
                min_kyc_level: 1,
                required_blocked: Vec::new(),
                required_scope: B256::ZERO,
                max_date_lag_days: 1,
                claim_topic: U256::from(TOPIC_ZK_CREDENTIAL),
                claim_validity: 365 * 86_400,
            }),
        }
    }

    /// The system contracts' accounts.
    pub fn accounts(&self) -> BTreeMap<Address, GenesisAccount> {
        let mut storage: BTreeMap<Address, BTreeMap<B256, B256>> = BTreeMap::new();
        let mut set = |address: Address, slot: U256, value: U256| {
            if !value.is_zero() {
                storage
                    .entry(address)
                    .or_default()
                    .insert(B256::from(slot), B256::from(value));
            }
        };
        set(IDENTITY_REGISTRY, ADMIN_SLOT, address_word(self.admin));
        for (topic, name) in GENESIS_TOPICS {
            if let Some(word) = encode_short_string(name) {
                set(
                    TRUSTED_ISSUERS,
                    crate::env::slot(b"topic", &[crate::env::nkey(topic)]),
                    word,
                );
            }
        }
        if self.allow_insecure_dev_keys {
            set(ZK_VERIFIER, FLAGS_SLOT, U256::from(FLAG_ALLOW_INSECURE_DEV));
        }
        if let Some(key) = &self.verifying_key {
            for (slot, value) in vk_storage(key) {
                set(ZK_VERIFIER, slot, value);
            }
        }
        if let Some(policy) = &self.policy {
            for (slot, value) in policy.storage() {
                set(ZK_VERIFIER, slot, value);
            }
        }
        SYSTEM_CONTRACTS
            .iter()
            .map(|address| {
                let account = GenesisAccount::default()
                    .with_nonce(Some(1))
                    .with_code(Some(Bytes::from_static(&[0xfe])))
                    .with_storage(storage.remove(address));
                (*address, account)
            })
            .collect()
    }

    /// `spec` with the system contracts added to its genesis.
    pub fn install(&self, spec: &ChainSpec) -> Result<ChainSpec, ChainSpecError> {
        let mut genesis = spec.genesis().clone();
        genesis.alloc.extend(self.accounts());
        ChainSpec::from_genesis(genesis)
    }
}

/// A development chain's spec with the system contracts: dev account 0 is the compliance
/// administrator and the insecure development zkDID keys are installed (`pharos node --dev`,
/// `pharos testnet init`).
pub fn dev_chain_spec(spec: &ChainSpec) -> Result<ChainSpec, ChainSpecError> {
    let admin = pharos_primitives::dev_accounts()?
        .first()
        .map(|(address, _)| *address)
        .unwrap_or_default();
    ComplianceGenesis::dev(admin).install(spec)
}
