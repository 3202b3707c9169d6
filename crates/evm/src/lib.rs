//! Configures revm for Pharos: the hardfork, the block, transaction and configuration
//! environments, intrinsic gas, and how revert data reads to a person.
//!
//! # Design
//! Every place that runs the EVM — block execution (sequential and parallel), `eth_call`,
//! `eth_estimateGas`, the txpool's intrinsic-gas check — builds its environments here, so they
//! agree on the rules. The chain runs the newest Ethereum hardfork revm ships as stable
//! ([`SPEC`]: Osaka), including its per-transaction gas cap (EIP-7825).
//!
//! This crate knows nothing about where state comes from (any [`revm::Database`]) nor about
//! blocks' storage.
#![warn(missing_docs)]

use alloy_consensus::{Header, Transaction as _};
use alloy_primitives::{Address, B256, Bytes, U256};
use pharos_primitives::RecoveredTx;
use revm::{
    Context, MainContext,
    context::{
        BlockEnv, CfgEnv, Evm, TxEnv,
        either::Either,
        transaction::{AccessList, SignedAuthorization},
    },
    context_interface::{block::BlobExcessGasAndPrice, cfg::gas::calculate_initial_tx_gas_for_tx},
    handler::{EthFrame, instructions::EthInstructions},
    interpreter::{Instruction, interpreter::EthInterpreter},
    primitives::hardfork::SpecId,
};

pub use pharos_compliance::{self, PharosPrecompiles};

pub use revm;

/// The hardfork every block executes under.
pub const SPEC: SpecId = SpecId::OSAKA;

/// Per-transaction gas cap of EIP-7825 (Osaka): 2^24.
pub const TX_GAS_LIMIT_CAP: u64 = 1 << 24;

/// A revm context over database `DB` with Ethereum mainnet types.
pub type PharosContext<DB> = Context<BlockEnv, TxEnv, CfgEnv, DB>;

/// The EVM Pharos runs over database `DB`: mainnet instructions except `LOG3`, which also
/// applies the protocol's asset rules ([`pharos_compliance::transfer_log_hook`]), and mainnet
/// precompiles plus the compliance system contracts ([`PharosPrecompiles`]).
pub type PharosEvm<DB, INSP = ()> = Evm<
    PharosContext<DB>,
    INSP,
    EthInstructions<EthInterpreter, PharosContext<DB>>,
    PharosPrecompiles,
    EthFrame<EthInterpreter>,
>;

/// The configuration environment for `chain_id` under [`SPEC`].
pub fn cfg_env(chain_id: u64) -> CfgEnv {
    cfg_env_with_spec(chain_id, SPEC)
}

/// The configuration environment for `chain_id` under another hardfork (reference tests).
pub fn cfg_env_with_spec(chain_id: u64, spec: SpecId) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(spec);
    cfg.chain_id = chain_id;
    // Blobs per transaction: 6 in Cancun, the block maximum of 9 in Prague, 6 again from Osaka
    // (EIP-7594).
    cfg.max_blobs_per_tx = Some(if spec.is_enabled_in(SpecId::OSAKA) {
        6
    } else if spec.is_enabled_in(SpecId::PRAGUE) {
        9
    } else {
        6
    });
    cfg
}

/// What a block's execution needs to know about the block itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockContext {
    /// Block number.
    pub number: u64,
    /// Timestamp in seconds.
    pub timestamp: u64,
    /// Receiver of priority fees.
    pub beneficiary: Address,
    /// Block gas limit.
    pub gas_limit: u64,
    /// EIP-1559 base fee.
    pub base_fee: u64,
    /// Value of `PREVRANDAO`.
    pub prevrandao: B256,
    /// Excess blob gas (EIP-4844); Pharos blocks carry none.
    pub excess_blob_gas: u64,
}

impl BlockContext {
    /// The context of the block described by `header`.
    pub fn from_header(header: &Header) -> Self {
        Self {
            number: header.number,
            timestamp: header.timestamp,
            beneficiary: header.beneficiary,
            gas_limit: header.gas_limit,
            base_fee: header.base_fee_per_gas.unwrap_or_default(),
            prevrandao: header.mix_hash,
            excess_blob_gas: header.excess_blob_gas.unwrap_or_default(),
        }
    }

    /// The revm block environment under [`SPEC`].
    pub fn block_env(&self) -> BlockEnv {
        self.block_env_with_spec(SPEC)
    }

    /// The revm block environment under `spec` (the blob fee rule depends on it).
    pub fn block_env_with_spec(&self, spec: SpecId) -> BlockEnv {
        BlockEnv {
            number: U256::from(self.number),
            beneficiary: self.beneficiary,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prevrandao),
            blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new_with_spec(
                self.excess_blob_gas,
                spec,
            )),
            ..Default::default()
        }
    }
}

/// The revm transaction environment of a signed transaction with its recovered sender.
pub fn tx_env(tx: &RecoveredTx) -> TxEnv {
    let env = tx.envelope();
    TxEnv {
        tx_type: env.tx_type() as u8,
        caller: tx.sender(),
        gas_limit: env.gas_limit(),
        gas_price: env.max_fee_per_gas(),
        kind: env.kind(),
        value: env.value(),
        data: env.input().clone(),
        nonce: env.nonce(),
        chain_id: env.chain_id(),
        access_list: env.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: env.max_priority_fee_per_gas(),
        blob_hashes: env
            .blob_versioned_hashes()
            .map(<[B256]>::to_vec)
            .unwrap_or_default(),
        max_fee_per_blob_gas: env.max_fee_per_blob_gas().unwrap_or_default(),
        authorization_list: env
            .authorization_list()
            .map(|list| list.iter().cloned().map(Either::Left).collect())
            .unwrap_or_default(),
    }
}

/// Builds an EVM over `db` for one block.
pub fn build_evm<DB: revm::Database>(db: DB, chain_id: u64, block: &BlockContext) -> PharosEvm<DB> {
    build_evm_with_cfg(db, cfg_env(chain_id), block)
}

/// Builds an EVM over `db` with a custom configuration (simulations relax some checks; reference
/// tests pick their hardfork).
pub fn build_evm_with_cfg<DB: revm::Database>(
    db: DB,
    cfg: CfgEnv,
    block: &BlockContext,
) -> PharosEvm<DB> {
    let block_env = block.block_env_with_spec(cfg.spec);
    let spec = cfg.spec;
    let ctx = Context::mainnet()
        .with_db(db)
        .with_cfg(cfg)
        .with_block(block_env);
    let mut instructions = EthInstructions::new_mainnet_with_spec(spec);
    // Protocol hooks (compliance): asset rules on Transfer events, sanctions on coin leaving
    // through SELFDESTRUCT, funding CREATE, or creating a contract from a listed account (init
    // code ending in STOP/RETURN). Static gas stays the EVM's.
    use revm::bytecode::opcode::{CREATE, CREATE2, LOG3, RETURN, SELFDESTRUCT, STOP};
    let table = instructions.instruction_table_mut();
    table[STOP as usize] = Instruction::new(pharos_compliance::stop_hook::<PharosContext<DB>>);
    table[RETURN as usize] = Instruction::new(pharos_compliance::return_hook::<PharosContext<DB>>);
    table[LOG3 as usize] =
        Instruction::new(pharos_compliance::transfer_log_hook::<PharosContext<DB>>);
    table[SELFDESTRUCT as usize] =
        Instruction::new(pharos_compliance::selfdestruct_hook::<PharosContext<DB>>);
    table[CREATE as usize] =
        Instruction::new(pharos_compliance::create_hook::<false, PharosContext<DB>>);
    table[CREATE2 as usize] =
        Instruction::new(pharos_compliance::create_hook::<true, PharosContext<DB>>);
    Evm::new(ctx, instructions, PharosPrecompiles::new(spec))
}

/// Whether `address` holds a precompile under [`SPEC`].
pub fn is_precompile(address: &Address) -> bool {
    use revm::precompile::{PrecompileSpecId, Precompiles};
    Precompiles::new(PrecompileSpecId::from_spec_id(SPEC)).contains(address)
}

/// geth's wording for a transaction revm refuses to run, where geth has one.
pub fn invalid_tx_message(
    err: &revm::context::result::InvalidTransaction,
    caller: Address,
) -> String {
    use revm::context::result::InvalidTransaction as E;
    match err {
        E::LackOfFundForMaxFee { fee, balance } => format!(
            "insufficient funds for gas * price + value: address {caller} have {balance} want {fee}"
        ),
        E::NonceTooLow { tx, state } => {
            format!("nonce too low: address {caller}, tx: {tx} state: {state}")
        }
        E::NonceTooHigh { tx, state } => {
            format!("nonce too high: address {caller}, tx: {tx} state: {state}")
        }
        E::GasPriceLessThanBasefee => "max fee per gas less than block base fee".into(),
        E::PriorityFeeGreaterThanMaxFee => {
            "max priority fee per gas higher than max fee per gas".into()
        }
        E::CallGasCostMoreThanGasLimit { .. } | E::GasFloorMoreThanGasLimit { .. } => {
            "intrinsic gas too low".into()
        }
        E::CallerGasLimitMoreThanBlock => "exceeds block gas limit".into(),
        E::RejectCallerWithCode => format!("sender not an eoa: address {caller}"),
        other => other.to_string(),
    }
}

/// geth's wording for an exceptional halt.
pub fn halt_message(reason: &revm::context::result::HaltReason) -> String {
    use revm::context::result::{HaltReason as H, OutOfGasError};
    match reason {
        H::OutOfGas(OutOfGasError::Basic)
        | H::OutOfGas(OutOfGasError::Memory)
        | H::OutOfGas(OutOfGasError::MemoryLimit)
        | H::OutOfGas(OutOfGasError::Precompile)
        | H::OutOfGas(_) => "out of gas".into(),
        H::OpcodeNotFound | H::InvalidFEOpcode => "invalid opcode".into(),
        H::InvalidJump => "invalid jump destination".into(),
        H::StackUnderflow => "stack underflow".into(),
        H::StackOverflow => "stack limit reached 1024 (1023)".into(),
        H::CallTooDeep => "max call depth exceeded".into(),
        H::StateChangeDuringStaticCall => "write protection".into(),
        H::CreateCollision => "contract address collision".into(),
        H::CreateContractSizeLimit => "max code size exceeded".into(),
        H::CreateContractStartingWithEF => "invalid code: must not begin with 0xef".into(),
        H::CreateInitCodeSizeLimit => "max initcode size exceeded".into(),
        H::OutOfFunds => "insufficient balance for transfer".into(),
        H::NonceOverflow => "nonce uint64 overflow".into(),
        H::PrecompileError | H::PrecompileErrorWithContext(_) => {
            "precompiled contract failed".into()
        }
        other => format!("{other:?}"),
    }
}

/// Intrinsic gas of a transaction: what it costs before any code runs, including the EIP-7623
/// calldata floor. A transaction with a lower gas limit can never be included.
pub fn intrinsic_gas(tx: &TxEnv) -> u64 {
    let gas = calculate_initial_tx_gas_for_tx(tx, SPEC, None);
    (gas.initial_regular_gas + gas.initial_state_gas).max(gas.floor_gas)
}

/// Helper to build a [`TxEnv`] for calls that are not signed transactions (`eth_call`,
/// `eth_estimateGas`): fees default to zero, so no balance is needed for gas.
#[allow(clippy::too_many_arguments)]
pub fn call_tx_env(
    caller: Address,
    to: Option<Address>,
    value: U256,
    data: Bytes,
    gas_limit: u64,
    gas_price: u128,
    gas_priority_fee: Option<u128>,
    nonce: u64,
    chain_id: u64,
    access_list: AccessList,
    authorization_list: Vec<SignedAuthorization>,
) -> TxEnv {
    let tx_type = if !authorization_list.is_empty() {
        4
    } else if gas_priority_fee.is_some() {
        2
    } else if !access_list.0.is_empty() {
        1
    } else {
        0
    };
    TxEnv {
        tx_type,
        caller,
        gas_limit,
        gas_price,
        kind: to
            .map(Into::into)
            .unwrap_or(alloy_primitives::TxKind::Create),
        value,
        data,
        nonce,
        chain_id: Some(chain_id),
        access_list,
        gas_priority_fee,
        blob_hashes: Vec::new(),
        max_fee_per_blob_gas: 0,
        authorization_list: authorization_list.into_iter().map(Either::Left).collect(),
    }
}

/// Reads revert data as geth does: `Error(string)` gives its message, `Panic(uint256)` names
/// the panic, anything else is `None` (the raw data is still returned to the caller).
pub fn decode_revert_reason(data: &[u8]) -> Option<String> {
    use alloy_sol_types::{GenericContractError, SolInterface};
    match GenericContractError::abi_decode(data) {
        Ok(GenericContractError::Revert(r)) => Some(r.reason),
        Ok(GenericContractError::Panic(p)) => Some(match p.kind() {
            Some(kind) => format!("{kind} (0x{:02x})", p.code),
            None => format!("unknown panic code: {:#x}", p.code),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intrinsic_gas_of_a_plain_transfer_is_21000() {
        let tx = call_tx_env(
            Address::ZERO,
            Some(Address::repeat_byte(1)),
            U256::from(1),
            Bytes::new(),
            21_000,
            1,
            None,
            0,
            1,
            AccessList::default(),
            vec![],
        );
        assert_eq!(intrinsic_gas(&tx), 21_000);
        let create = TxEnv {
            kind: alloy_primitives::TxKind::Create,
            data: Bytes::from(vec![1u8; 10]),
            ..tx
        };
        assert!(intrinsic_gas(&create) > 53_000);
    }

    #[test]
    fn revert_reasons_decode_like_geth() {
        use alloy_sol_types::{Revert, SolError};
        let data = Revert::from("not enough").abi_encode();
        assert_eq!(decode_revert_reason(&data).as_deref(), Some("not enough"));
        assert_eq!(decode_revert_reason(&[1, 2, 3]), None);
    }
}
