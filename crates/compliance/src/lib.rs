//! Compliance built into the protocol: identity, zero-knowledge credentials and transfer rules
//! for regulated (real-world) assets, as system contracts at fixed addresses.
//!
//! # What this crate owns, and what it must not touch
//! It owns the system contracts' behaviour, storage layout, gas schedule and Solidity interface
//! (`solidity/IPharosCompliance.sol`, also the source of this crate's ABI bindings), their
//! genesis state, and how they plug into revm ([`evm`]). Their state lives in the normal state
//! trie under their own addresses and is read and written only through revm's journal, so the
//! parallel executor tracks every access like any contract's. It must not touch blocks,
//! storage engines, networking or the clock: time is the block timestamp.
//!
//! # The contracts
//! | address | interface | module |
//! |---|---|---|
//! | [`IDENTITY_REGISTRY`] | `IIdentityRegistry` | [`identity`] |
//! | [`TRUSTED_ISSUERS`] | `ITrustedIssuersRegistry` | [`identity`] |
//! | [`ZK_VERIFIER`] | `IZkCredentialVerifier` | [`zk`] |
//! | [`ASSET_COMPLIANCE`] | `IAssetCompliance` | [`assets`] |
//! | [`SANCTIONS_LIST`] | `ISanctionsList` | [`sanctions`] |
//!
//! # Design
//! * **Native code, EVM interface.** Calls are ABI-decoded and dispatched in Rust (like a
//!   precompile) with the EVM's call semantics: reverts carry `Error(string)` reasons starting
//!   `compliance: `, state changes revert with the frame, static calls cannot write, system
//!   contracts refuse native coin and delegate calls. Each account carries one byte of code
//!   (`0xfe`) so `extcodesize` checks and `eth_getCode` see a contract.
//! * **Gas** ([`env`]): 700 per call, 2,100 per slot read, 20,000 per slot written from zero
//!   (2,900 otherwise), the EVM's LOG price per event, 250,000 per proof verification.
//! * **Rules on every transfer.** revm's `LOG3` is replaced by [`evm::transfer_log_hook`]: when
//!   a registered token emits `Transfer(from, to, value)` — from `transfer`, `transferFrom`,
//!   mint, burn or any other path — the rules run against the balances the transfer leaves, in
//!   the token's frame, and a denial reverts that frame naming the rule. For unregistered
//!   tokens the hook costs one free storage read.
//! * **Sanctions** apply to regulated-asset transfers, to every call frame that moves native
//!   coin (checked before the frame runs, one free read while the list is empty), to coin
//!   leaving through `SELFDESTRUCT` or funding a `CREATE`, and to contracts created with a
//!   listed account's coin (hooks on those instructions and on `STOP`/`RETURN` ending init code).
//! * **zkDID** verification is [`pharos_zkdid::ClaimVerifier`]; the verifying key, policy,
//!   issuers and nullifiers live in the verifier's storage.
#![warn(missing_docs)]

pub mod assets;
pub mod env;
pub mod evm;
pub mod genesis;
pub mod identity;
pub mod sanctions;
pub mod zk;

use alloy_primitives::{Address, address};

pub use env::{Cx, Env, Failure, MemoryEnv, Stop};
pub use evm::{
    PharosPrecompiles, create_hook, return_hook, selfdestruct_hook, stop_hook, transfer_log_hook,
};

#[allow(missing_docs)]
mod bindings {
    alloy_sol_types::sol!("solidity/IPharosCompliance.sol");
}
pub use bindings::{
    IAssetCompliance, IIdentityRegistry, ISanctionsList, ITrustedIssuersRegistry,
    IZkCredentialVerifier,
};

/// The identity registry.
pub const IDENTITY_REGISTRY: Address = address!("0x7068000000000000000000000000000000000001");
/// The trusted-issuer and claim-topic registry.
pub const TRUSTED_ISSUERS: Address = address!("0x7068000000000000000000000000000000000002");
/// The zkDID credential verifier.
pub const ZK_VERIFIER: Address = address!("0x7068000000000000000000000000000000000003");
/// Regulated-asset rules.
pub const ASSET_COMPLIANCE: Address = address!("0x7068000000000000000000000000000000000004");
/// The sanctions list.
pub const SANCTIONS_LIST: Address = address!("0x7068000000000000000000000000000000000005");

/// Every system contract address.
pub const SYSTEM_CONTRACTS: [Address; 5] = [
    IDENTITY_REGISTRY,
    TRUSTED_ISSUERS,
    ZK_VERIFIER,
    ASSET_COMPLIANCE,
    SANCTIONS_LIST,
];

/// Runs a call to the system contract at `address` (one of [`SYSTEM_CONTRACTS`]).
pub fn call_system_contract<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    address: Address,
    caller: Address,
    input: &[u8],
) -> env::Output {
    match address {
        IDENTITY_REGISTRY => identity::call_identity(cx, caller, input),
        TRUSTED_ISSUERS => identity::call_issuers(cx, caller, input),
        ZK_VERIFIER => zk::call_zk(cx, caller, input),
        ASSET_COMPLIANCE => assets::call_assets(cx, caller, input),
        SANCTIONS_LIST => sanctions::call_sanctions(cx, caller, input),
        other => env::deny(format!("{other} is not a system contract")),
    }
}
