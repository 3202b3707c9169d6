//! The chain spec: chain id, genesis allocation and header, fee rules.
//!
//! Genesis files use geth's JSON format (`config.chainId`, `alloc`, `gasLimit`, `baseFeePerGas`,
//! ...), so an existing `genesis.json` works. Pharos-specific settings live under
//! `config.pharos` (see [`PharosConfig`]).

use std::{collections::BTreeMap, sync::OnceLock};

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::{eip1559::BaseFeeParams, eip7685::EMPTY_REQUESTS_HASH};
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, B64, B256, Bytes, U256, keccak256};
use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount, root::storage_root_unhashed};
use serde::{Deserialize, Serialize};

use crate::ONE_TOKEN;

/// The standard test mnemonic used by anvil and hardhat; its first ten accounts are funded in dev.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Chain id of a dev chain unless `--chain-id` says otherwise.
pub const DEV_CHAIN_ID: u64 = 1337;

/// Total native supply at genesis: 1,000,000,000 tokens of 18 decimals.
pub const TOTAL_SUPPLY_TOKENS: u64 = 1_000_000_000;

/// Tokens given to each of the ten dev accounts; the treasury holds the rest of the supply.
pub const DEV_ACCOUNT_TOKENS: u64 = 10_000_000;

/// Default block gas limit (1 Ggas): large blocks are what the throughput targets need.
pub const DEFAULT_GAS_LIMIT: u64 = 1_000_000_000;

/// Base fee of the genesis block and the floor below which it never falls: 1 gwei.
pub const DEFAULT_MIN_BASE_FEE: u64 = 1_000_000_000;

/// Why a chain spec was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ChainSpecError {
    /// The genesis file is not valid JSON of the expected shape.
    #[error("genesis file is not valid genesis JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// `config.chainId` is zero.
    #[error("genesis config.chainId must be non-zero")]
    ZeroChainId,
    /// `gasLimit` is below what a single transfer needs.
    #[error("genesis gasLimit {0} is below the 21000 a plain transfer needs")]
    GasLimitTooLow(u64),
    /// The sum of all balances does not fit in 256 bits.
    #[error("genesis alloc balances overflow 256 bits")]
    SupplyOverflow,
    /// The dev accounts could not be derived from the mnemonic.
    #[error("deriving dev accounts: {0}")]
    DevKeys(String),
}

/// Which authenticated structure commits to the state, and so what a header's `stateRoot` is.
/// Part of the chain's identity: it changes the genesis hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateCommitment {
    /// Ethereum's Merkle-Patricia trie (keccak256, RLP; per-account storage tries): roots and
    /// `eth_getProof` proofs exactly as on Ethereum.
    #[default]
    Mpt,
    /// NOMT's binary Merkle tree (SHA-256) over accounts and slots together; see
    /// [`crate::binary_state`] for the layout and the proof format.
    Nomt,
}

impl std::fmt::Display for StateCommitment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mpt => "mpt",
            Self::Nomt => "nomt",
        })
    }
}

impl std::str::FromStr for StateCommitment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mpt" => Ok(Self::Mpt),
            "nomt" => Ok(Self::Nomt),
            other => Err(format!(
                "unknown state commitment '{other}': use mpt or nomt"
            )),
        }
    }
}

/// Pharos-specific settings under `config.pharos` in a genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PharosConfig {
    /// Floor of the EIP-1559 base fee, in wei.
    pub min_base_fee: u64,
    /// The state commitment (`"mpt"`, the default, or `"nomt"`).
    pub state_commitment: StateCommitment,
}

impl Default for PharosConfig {
    fn default() -> Self {
        Self {
            min_base_fee: DEFAULT_MIN_BASE_FEE,
            state_commitment: StateCommitment::default(),
        }
    }
}

/// Everything that defines a chain: its id, genesis, and fee rules.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    chain_id: u64,
    genesis: Genesis,
    pharos: PharosConfig,
    base_fee_params: BaseFeeParams,
    genesis_header: Header,
    genesis_hash: B256,
}

impl ChainSpec {
    /// A dev chain: the ten standard test accounts with 10,000,000 tokens each and the treasury
    /// with the remaining 900,000,000, a 1 Ggas block gas limit and a 1 gwei base fee.
    pub fn dev(chain_id: u64) -> Result<Self, ChainSpecError> {
        let mut alloc = BTreeMap::new();
        let accounts = dev_accounts()?;
        let per_account = ONE_TOKEN * U256::from(DEV_ACCOUNT_TOKENS);
        for (address, _) in accounts.iter().take(10) {
            alloc.insert(
                *address,
                GenesisAccount::default().with_balance(per_account),
            );
        }
        let treasury_tokens = TOTAL_SUPPLY_TOKENS - 10 * DEV_ACCOUNT_TOKENS;
        alloc.insert(
            dev_treasury()?,
            GenesisAccount::default().with_balance(ONE_TOKEN * U256::from(treasury_tokens)),
        );
        let mut genesis = Genesis {
            gas_limit: DEFAULT_GAS_LIMIT,
            base_fee_per_gas: Some(u128::from(DEFAULT_MIN_BASE_FEE)),
            alloc,
            extra_data: Bytes::from_static(b"pharos dev"),
            ..Genesis::default()
        };
        genesis.config.chain_id = chain_id;
        Self::from_genesis(genesis)
    }

    /// [`ChainSpec::dev`] with the given state commitment (recorded in `config.pharos`).
    pub fn dev_with(chain_id: u64, commitment: StateCommitment) -> Result<Self, ChainSpecError> {
        let mut genesis = Self::dev(chain_id)?.genesis;
        if commitment != StateCommitment::default() {
            let pharos = PharosConfig {
                state_commitment: commitment,
                ..PharosConfig::default()
            };
            genesis
                .config
                .extra_fields
                .insert("pharos".into(), serde_json::to_value(pharos)?);
        }
        Self::from_genesis(genesis)
    }

    /// A chain from a parsed genesis.
    pub fn from_genesis(genesis: Genesis) -> Result<Self, ChainSpecError> {
        let chain_id = genesis.config.chain_id;
        if chain_id == 0 {
            return Err(ChainSpecError::ZeroChainId);
        }
        if genesis.gas_limit < 21_000 {
            return Err(ChainSpecError::GasLimitTooLow(genesis.gas_limit));
        }
        genesis
            .alloc
            .values()
            .try_fold(U256::ZERO, |acc, a| acc.checked_add(a.balance))
            .ok_or(ChainSpecError::SupplyOverflow)?;
        let pharos = match genesis.config.extra_fields.get("pharos") {
            Some(v) => serde_json::from_value(v.clone())?,
            None => PharosConfig::default(),
        };
        let genesis_header = genesis_header(&genesis, &pharos);
        let genesis_hash = genesis_header.hash_slow();
        Ok(Self {
            chain_id,
            genesis,
            pharos,
            base_fee_params: BaseFeeParams::ethereum(),
            genesis_header,
            genesis_hash,
        })
    }

    /// A chain from the text of a geth-format genesis JSON file.
    pub fn from_genesis_json(json: &str) -> Result<Self, ChainSpecError> {
        Self::from_genesis(serde_json::from_str(json)?)
    }

    /// The chain id transactions must sign over (EIP-155).
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The genesis as given.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis block's header.
    pub fn genesis_header(&self) -> &Header {
        &self.genesis_header
    }

    /// The genesis block's hash: identifies the chain in the database.
    pub fn genesis_hash(&self) -> B256 {
        self.genesis_hash
    }

    /// Pharos-specific settings.
    pub fn pharos(&self) -> &PharosConfig {
        &self.pharos
    }

    /// EIP-1559 base fee of the block after `parent`, never below the chain's floor.
    pub fn next_base_fee(&self, parent: &Header) -> u64 {
        let base = parent
            .next_block_base_fee(self.base_fee_params)
            .unwrap_or(self.pharos.min_base_fee);
        base.max(self.pharos.min_base_fee)
    }

    /// Total of all balances at genesis.
    pub fn genesis_supply(&self) -> U256 {
        self.genesis
            .alloc
            .values()
            .fold(U256::ZERO, |acc, a| acc.saturating_add(a.balance))
    }
}

fn genesis_header(genesis: &Genesis, pharos: &PharosConfig) -> Header {
    let base_fee = genesis
        .base_fee_per_gas
        .map(|b| u64::try_from(b).unwrap_or(u64::MAX))
        .unwrap_or(pharos.min_base_fee);
    Header {
        parent_hash: B256::ZERO,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.coinbase,
        state_root: match pharos.state_commitment {
            StateCommitment::Mpt => genesis_state_root(&genesis.alloc),
            StateCommitment::Nomt => genesis_binary_state_root(&genesis.alloc),
        },
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: Default::default(),
        difficulty: U256::ZERO,
        number: 0,
        gas_limit: genesis.gas_limit,
        gas_used: 0,
        timestamp: genesis.timestamp,
        extra_data: genesis.extra_data.clone(),
        mix_hash: genesis.mix_hash,
        nonce: B64::from(genesis.nonce),
        base_fee_per_gas: Some(base_fee),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(EMPTY_REQUESTS_HASH),
        ..Default::default()
    }
}

/// Code hash of a genesis account (empty code counts as none).
fn genesis_code_hash(account: &GenesisAccount) -> B256 {
    account
        .code
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(keccak256)
        .unwrap_or(alloy_primitives::KECCAK256_EMPTY)
}

/// State root of a genesis allocation (Ethereum MPT).
pub fn genesis_state_root(alloc: &BTreeMap<Address, GenesisAccount>) -> B256 {
    let mut leaves: Vec<(B256, TrieAccount)> = alloc
        .iter()
        .map(|(address, account)| {
            let storage_root = account
                .storage
                .as_ref()
                .map(|s| {
                    storage_root_unhashed(
                        s.iter()
                            .filter(|(_, v)| !v.is_zero())
                            .map(|(k, v)| (*k, U256::from_be_bytes(v.0))),
                    )
                })
                .unwrap_or(EMPTY_ROOT_HASH);
            let code_hash = genesis_code_hash(account);
            (
                keccak256(address),
                TrieAccount {
                    nonce: account.nonce.unwrap_or_default(),
                    balance: account.balance,
                    storage_root,
                    code_hash,
                },
            )
        })
        .collect();
    leaves.sort_unstable_by_key(|(k, _)| *k);
    alloy_trie::root::state_root(leaves)
}

/// State root of a genesis allocation under [`StateCommitment::Nomt`].
pub fn genesis_binary_state_root(alloc: &BTreeMap<Address, GenesisAccount>) -> B256 {
    use crate::binary_state as bs;
    let mut leaves = Vec::new();
    for (address, account) in alloc {
        let hashed = keccak256(address);
        let code_hash = genesis_code_hash(account);
        leaves.push((
            bs::account_key(&hashed),
            bs::account_value(
                account.nonce.unwrap_or_default(),
                account.balance,
                code_hash,
            ),
        ));
        for (slot, value) in account.storage.iter().flatten() {
            if !value.is_zero() {
                leaves.push((
                    bs::slot_key(&hashed, &keccak256(slot)),
                    bs::slot_value(U256::from_be_bytes(value.0)),
                ));
            }
        }
    }
    bs::root(leaves)
}

/// The dev accounts of [`DEV_MNEMONIC`] (indices 0 to 10: ten funded users and the treasury),
/// as `(address, private key)`. Derived once per process.
pub fn dev_accounts() -> Result<&'static [(Address, B256)], ChainSpecError> {
    static ACCOUNTS: OnceLock<Result<Vec<(Address, B256)>, String>> = OnceLock::new();
    ACCOUNTS
        .get_or_init(|| {
            MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .into_iter()
                .take(11)
                .map(|s| {
                    s.map(|s| (s.address(), s.to_bytes()))
                        .map_err(|e| e.to_string())
                })
                .collect()
        })
        .as_deref()
        .map_err(|e| ChainSpecError::DevKeys(e.clone()))
}

/// The dev treasury: index 10 of [`DEV_MNEMONIC`], holding the supply not given to dev accounts.
pub fn dev_treasury() -> Result<Address, ChainSpecError> {
    dev_accounts().map(|a| a[10].0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn dev_accounts_match_anvil_and_hardhat() {
        let accounts = dev_accounts().expect("derive");
        assert_eq!(
            accounts[0].0,
            address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
        assert_eq!(
            accounts[9].0,
            address!("a0Ee7A142d267C1f36714E4a8F75612F20a79720")
        );
        assert_eq!(
            accounts[10].0,
            address!("Bcd4042DE499D14e55001CcbB24a551F3b954096")
        );
    }

    #[test]
    fn dev_supply_is_exactly_one_billion_tokens() {
        let spec = ChainSpec::dev(DEV_CHAIN_ID).expect("dev spec");
        assert_eq!(
            spec.genesis_supply(),
            ONE_TOKEN * U256::from(1_000_000_000u64)
        );
        assert_eq!(spec.genesis().alloc.len(), 11);
        assert_eq!(spec.genesis_header().gas_limit, DEFAULT_GAS_LIMIT);
    }

    #[test]
    fn chain_id_changes_genesis_hash_only_through_the_spec() {
        let a = ChainSpec::dev(1).expect("spec");
        let b = ChainSpec::dev(2).expect("spec");
        // The chain id is not part of the header; the database stores it beside the genesis hash.
        assert_eq!(a.genesis_hash(), b.genesis_hash());
        assert_eq!(a.chain_id(), 1);
    }

    #[test]
    fn geth_genesis_json_parses() {
        let json = r#"{
            "config": {"chainId": 7, "pharos": {"minBaseFee": 7}},
            "gasLimit": "0x1c9c380",
            "baseFeePerGas": "0x7",
            "alloc": {"0x0000000000000000000000000000000000000001": {"balance": "0x10"}}
        }"#;
        let spec = ChainSpec::from_genesis_json(json).expect("parse");
        assert_eq!(spec.chain_id(), 7);
        assert_eq!(spec.pharos().min_base_fee, 7);
        assert_eq!(spec.genesis_header().gas_limit, 30_000_000);
        assert!(ChainSpec::from_genesis_json("{").is_err());
        assert!(matches!(
            ChainSpec::from_genesis_json(
                r#"{"config":{"chainId":0},"gasLimit":"0x5208","alloc":{}}"#
            ),
            Err(ChainSpecError::ZeroChainId)
        ));
    }

    #[test]
    fn base_fee_never_drops_below_floor() {
        let spec = ChainSpec::dev(DEV_CHAIN_ID).expect("spec");
        let parent = spec.genesis_header().clone();
        assert_eq!(spec.next_base_fee(&parent), DEFAULT_MIN_BASE_FEE);
        let full = Header {
            gas_used: parent.gas_limit,
            ..parent
        };
        assert!(spec.next_base_fee(&full) > DEFAULT_MIN_BASE_FEE);
    }
}
