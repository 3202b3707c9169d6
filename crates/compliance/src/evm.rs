//! How the system contracts plug into revm: [`PharosPrecompiles`] (Ethereum's precompiles,
//! the system contracts, and the sanctions check on every call frame that moves native coin)
//! and [`transfer_log_hook`], the `LOG3` instruction that applies the asset rules whenever a
//! registered token emits `Transfer(from, to, value)`.
//!
//! Every read and write goes through revm's journal, hence through the executor's database:
//! the parallel executor records them like any contract's and a failed read (a transaction the
//! parallel executor must suspend) aborts the transaction as a database error, never as a
//! revert.

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{Revert, SolError};
use revm::{
    Database,
    context::Cfg,
    context_interface::{Block, ContextTr, JournalTr, context::ContextError},
    handler::{EthPrecompiles, PrecompileProvider},
    interpreter::{
        CallInputs, CallValue, Gas, Host, InstructionContext, InstructionExecResult,
        InstructionResult, InterpreterAction, InterpreterResult,
        interpreter::EthInterpreter,
        interpreter_types::{InputsTr, LoopControl, RuntimeFlag},
    },
    primitives::{AddressSet, Log},
    state::EvmState,
};

use crate::assets::{self, TRANSFER_TOPIC};
use crate::env::{BASE_GAS, Cx, Env, Failure, Stop};
use crate::{ASSET_COMPLIANCE, SYSTEM_CONTRACTS, call_system_contract, sanctions};

/// [`Env`] over a revm context: reads and writes through its journal; a database error is
/// kept in the context (revm turns it into `EVMError::Database`).
pub struct RevmEnv<'a, CTX> {
    ctx: &'a mut CTX,
}

impl<'a, CTX: ContextTr> RevmEnv<'a, CTX> {
    /// An environment over `ctx`.
    pub fn new(ctx: &'a mut CTX) -> Self {
        Self { ctx }
    }
}

impl<CTX: ContextTr> RevmEnv<'_, CTX> {
    /// Loads `address` into the journal (its storage is only reachable once it is there).
    fn load(&mut self, address: Address) -> Result<(), Stop> {
        match self.ctx.journal_mut().load_account(address) {
            Ok(_) => Ok(()),
            Err(e) => {
                *self.ctx.error() = Err(ContextError::Db(e));
                Err(Stop::Fatal)
            }
        }
    }
}

impl<CTX: ContextTr<Journal: JournalTr<State = EvmState>>> Env for RevmEnv<'_, CTX> {
    fn sload(&mut self, address: Address, slot: U256) -> Result<U256, Stop> {
        self.load(address)?;
        match self.ctx.journal_mut().sload(address, slot) {
            Ok(value) => Ok(value.data),
            Err(e) => {
                *self.ctx.error() = Err(ContextError::Db(e));
                Err(Stop::Fatal)
            }
        }
    }

    fn sstore(&mut self, address: Address, slot: U256, value: U256) -> Result<(), Stop> {
        self.load(address)?;
        match self.ctx.journal_mut().sstore(address, slot, value) {
            Ok(_) => Ok(()),
            Err(e) => {
                *self.ctx.error() = Err(ContextError::Db(e));
                Err(Stop::Fatal)
            }
        }
    }

    fn peek(&mut self, address: Address, slot: U256) -> Result<U256, Stop> {
        if let Some(value) = self
            .ctx
            .journal()
            .evm_state()
            .get(&address)
            .and_then(|account| account.storage.get(&slot))
        {
            return Ok(value.present_value);
        }
        match self.ctx.db_mut().storage(address, slot) {
            Ok(value) => Ok(value),
            Err(e) => {
                *self.ctx.error() = Err(ContextError::Db(e));
                Err(Stop::Fatal)
            }
        }
    }

    fn log(&mut self, log: Log) {
        JournalTr::log(self.ctx.journal_mut(), log);
    }

    fn timestamp(&self) -> u64 {
        self.ctx.block().timestamp().saturating_to()
    }
}

/// `Error(string)` revert data.
pub fn revert_data(reason: String) -> Bytes {
    Revert { reason }.abi_encode().into()
}

/// Ethereum's precompiles plus the compliance system contracts.
#[derive(Debug, Clone)]
pub struct PharosPrecompiles {
    eth: EthPrecompiles,
    warm: AddressSet,
}

impl PharosPrecompiles {
    /// The precompiles of `spec` and the system contracts.
    pub fn new(spec: revm::primitives::hardfork::SpecId) -> Self {
        let eth = EthPrecompiles::new(spec);
        let warm = Self::warm_set(&eth);
        Self { eth, warm }
    }

    fn warm_set(eth: &EthPrecompiles) -> AddressSet {
        let mut warm = eth.warm_addresses().clone();
        warm.extend(SYSTEM_CONTRACTS);
        warm
    }
}

fn result(kind: InstructionResult, output: Bytes, gas_limit: u64, used: u64) -> InterpreterResult {
    let mut gas = Gas::new(gas_limit);
    if kind.is_ok_or_revert() {
        let _ = gas.record_regular_cost(used.min(gas_limit));
        InterpreterResult::new(kind, output, gas)
    } else {
        gas.spend_all();
        InterpreterResult::new(kind, Bytes::new(), gas)
    }
}

fn stop_result(stop: Stop, gas_limit: u64) -> InterpreterResult {
    let kind = match stop {
        Stop::OutOfGas => InstructionResult::PrecompileOOG,
        Stop::StaticWrite => InstructionResult::StateChangeDuringStaticCall,
        Stop::Fatal => InstructionResult::FatalExternalError,
    };
    result(kind, Bytes::new(), gas_limit, gas_limit)
}

impl<CTX: ContextTr<Journal: JournalTr<State = EvmState>>> PrecompileProvider<CTX>
    for PharosPrecompiles
{
    type Output = InterpreterResult;

    fn set_spec(&mut self, spec: <CTX::Cfg as Cfg>::Spec) -> bool {
        let changed = <EthPrecompiles as PrecompileProvider<CTX>>::set_spec(&mut self.eth, spec);
        if changed {
            self.warm = Self::warm_set(&self.eth);
        }
        changed
    }

    fn run(
        &mut self,
        context: &mut CTX,
        inputs: &CallInputs,
    ) -> Result<Option<InterpreterResult>, String> {
        // Native coin moving in this frame: the sanctions list decides first (protocol read,
        // no gas).
        if let CallValue::Transfer(value) = inputs.value
            && !value.is_zero()
        {
            let mut env = RevmEnv::new(context);
            let mut cx = Cx::new(&mut env, u64::MAX, false);
            match sanctions::value_transfer_denied(&mut cx, inputs.caller, inputs.target_address) {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    return Ok(Some(result(
                        InstructionResult::Revert,
                        revert_data(reason),
                        inputs.gas_limit,
                        0,
                    )));
                }
                Err(Failure::Stop(stop)) => return Ok(Some(stop_result(stop, inputs.gas_limit))),
                Err(Failure::Revert(reason)) => return Err(reason),
            }
        }
        if SYSTEM_CONTRACTS.contains(&inputs.bytecode_address) {
            return Ok(Some(run_system(context, inputs)));
        }
        <EthPrecompiles as PrecompileProvider<CTX>>::run(&mut self.eth, context, inputs)
    }

    fn warm_addresses(&self) -> &AddressSet {
        &self.warm
    }

    fn contains(&self, address: &Address) -> bool {
        self.warm.contains(address)
    }
}

fn run_system<CTX: ContextTr<Journal: JournalTr<State = EvmState>>>(
    context: &mut CTX,
    inputs: &CallInputs,
) -> InterpreterResult {
    let gas_limit = inputs.gas_limit;
    if inputs.target_address != inputs.bytecode_address {
        return result(
            InstructionResult::Revert,
            revert_data("compliance: system contracts cannot be delegate-called".into()),
            gas_limit,
            0,
        );
    }
    if matches!(inputs.value, CallValue::Transfer(v) if !v.is_zero()) {
        return result(
            InstructionResult::Revert,
            revert_data("compliance: system contracts do not accept native coin".into()),
            gas_limit,
            0,
        );
    }
    let input = inputs.input.bytes(context);
    let mut env = RevmEnv::new(context);
    let mut cx = Cx::new(&mut env, gas_limit, inputs.is_static);
    let outcome = cx.charge(BASE_GAS).map_err(Failure::from).and_then(|()| {
        call_system_contract(&mut cx, inputs.bytecode_address, inputs.caller, &input)
    });
    let used = cx.gas_used();
    match outcome {
        Ok(output) => result(InstructionResult::Return, output, gas_limit, used),
        Err(Failure::Revert(reason)) => result(
            InstructionResult::Revert,
            revert_data(reason),
            gas_limit,
            used,
        ),
        Err(Failure::Stop(stop)) => stop_result(stop, gas_limit),
    }
}

/// `LOG3` with the asset rules: emits the log as the EVM does, then, when the log is a
/// `Transfer(from, to, value)` of a registered token, runs [`assets::on_transfer`] and charges
/// its gas to the token's frame; a denial reverts the frame with the rule's reason. For any
/// other log the only extra work is one storage read (is the emitter registered?), free of gas.
pub fn transfer_log_hook<CTX: ContextTr<Journal: JournalTr<State = EvmState>> + Host>(
    ic: InstructionContext<'_, CTX, EthInterpreter>,
) -> InstructionExecResult {
    let InstructionContext { interpreter, host } = ic;
    revm::interpreter::instructions::host::log::<3, CTX>(InstructionContext {
        interpreter: &mut *interpreter,
        host: &mut *host,
    })?;
    let Some(log) = host.journal().logs().last() else {
        return Ok(());
    };
    let topics = log.topics();
    if topics.len() != 3 || topics[0] != TRANSFER_TOPIC || log.data.data.len() != 32 {
        return Ok(());
    }
    let token = log.address;
    let from = Address::from_word(topics[1]);
    let to = Address::from_word(topics[2]);
    let amount = U256::from_be_slice(&log.data.data);
    let mut env = RevmEnv::new(host);
    let word = match env.peek(ASSET_COMPLIANCE, assets::registration_slot(token)) {
        Ok(word) => word,
        Err(_) => return Err(InstructionResult::FatalExternalError),
    };
    let Some(asset) = assets::asset_from_word(token, word) else {
        return Ok(());
    };
    let mut cx = Cx::new(&mut env, interpreter.gas.remaining(), false);
    let outcome = assets::on_transfer(&mut cx, &asset, from, to, amount);
    if !interpreter.gas.record_regular_cost(cx.gas_used()) {
        return Err(InstructionResult::OutOfGas);
    }
    match outcome {
        Ok(()) => Ok(()),
        Err(Failure::Revert(reason)) => {
            interpreter
                .bytecode
                .set_action(InterpreterAction::new_return(
                    InstructionResult::Revert,
                    revert_data(reason),
                    interpreter.gas,
                ));
            Err(InstructionResult::Revert)
        }
        Err(Failure::Stop(Stop::OutOfGas)) => Err(InstructionResult::OutOfGas),
        Err(Failure::Stop(Stop::StaticWrite)) => {
            Err(InstructionResult::StateChangeDuringStaticCall)
        }
        Err(Failure::Stop(Stop::Fatal)) => Err(InstructionResult::FatalExternalError),
    }
}

/// Native coin leaving a listed contract or reaching a listed address through `SELFDESTRUCT`,
/// or a listed contract funding a `CREATE`/`CREATE2`: the reason it is refused, if it is
/// (protocol reads without gas).
fn sanctioned_move<CTX: ContextTr<Journal: JournalTr<State = EvmState>>>(
    host: &mut CTX,
    from: Address,
    to: Option<Address>,
) -> Result<Option<String>, InstructionResult> {
    let mut env = RevmEnv::new(host);
    let mut cx = Cx::new(&mut env, u64::MAX, false);
    let outcome = match to {
        Some(to) => sanctions::value_transfer_denied(&mut cx, from, to),
        None => sanctions::value_transfer_denied(&mut cx, from, from),
    };
    match outcome {
        Ok(reason) => Ok(reason),
        Err(Failure::Stop(Stop::OutOfGas)) => Err(InstructionResult::OutOfGas),
        Err(_) => Err(InstructionResult::FatalExternalError),
    }
}

fn revert_with(
    interpreter: &mut revm::interpreter::Interpreter<EthInterpreter>,
    reason: String,
) -> InstructionExecResult {
    interpreter
        .bytecode
        .set_action(InterpreterAction::new_return(
            InstructionResult::Revert,
            revert_data(reason),
            interpreter.gas,
        ));
    Err(InstructionResult::Revert)
}

/// `SELFDESTRUCT` with the sanctions list: a contract holding coin may not send it to a listed
/// beneficiary, nor may a listed contract send its coin anywhere; the frame reverts with the
/// reason. Otherwise exactly the EVM's instruction.
pub fn selfdestruct_hook<CTX: ContextTr<Journal: JournalTr<State = EvmState>> + Host>(
    ic: InstructionContext<'_, CTX, EthInterpreter>,
) -> InstructionExecResult {
    let InstructionContext { interpreter, host } = ic;
    if let Some(reason) = creation_denied(interpreter, host)? {
        return revert_with(interpreter, reason);
    }
    if !interpreter.runtime_flag.is_static()
        && let Ok(target) = interpreter.stack.peek(0)
    {
        let contract = interpreter.input.target_address();
        let balance = host
            .journal()
            .evm_state()
            .get(&contract)
            .map(|a| a.info.balance)
            .unwrap_or_default();
        if !balance.is_zero()
            && let Some(reason) =
                sanctioned_move(host, contract, Some(Address::from_word(target.into())))?
        {
            return revert_with(interpreter, reason);
        }
    }
    revm::interpreter::instructions::host::selfdestruct::<EthInterpreter, CTX>(InstructionContext {
        interpreter,
        host,
    })
}

/// `CREATE`/`CREATE2` with the sanctions list: a listed contract may not fund a new contract.
pub fn create_hook<
    const IS_CREATE2: bool,
    CTX: ContextTr<Journal: JournalTr<State = EvmState>> + Host,
>(
    ic: InstructionContext<'_, CTX, EthInterpreter>,
) -> InstructionExecResult {
    let InstructionContext { interpreter, host } = ic;
    if let Ok(value) = interpreter.stack.peek(0)
        && !value.is_zero()
        && !interpreter.runtime_flag.is_static()
    {
        let contract = interpreter.input.target_address();
        if let Some(reason) = sanctioned_move(host, contract, None)? {
            return revert_with(interpreter, reason);
        }
    }
    revm::interpreter::instructions::contract::create::<IS_CREATE2, EthInterpreter, CTX>(
        InstructionContext { interpreter, host },
    )
}

/// A contract being created with coin from a listed account may not come into existence: the
/// reason, checked where its init code ends successfully (`STOP`, `RETURN`, `SELFDESTRUCT`), so
/// the whole creation — including anything its init code did with the coin — reverts. Covers
/// a listed account's own contract-creation transaction, which no call frame sees.
fn creation_denied<CTX: ContextTr<Journal: JournalTr<State = EvmState>>>(
    interpreter: &revm::interpreter::Interpreter<EthInterpreter>,
    host: &mut CTX,
) -> Result<Option<String>, InstructionResult> {
    let input = &interpreter.input;
    if input.bytecode_address.is_some() || input.call_value.is_zero() {
        return Ok(None);
    }
    sanctioned_move(host, input.caller_address, None)
}

/// `STOP` ending init code funded by a listed account reverts instead ([`creation_denied`]).
pub fn stop_hook<CTX: ContextTr<Journal: JournalTr<State = EvmState>> + Host>(
    ic: InstructionContext<'_, CTX, EthInterpreter>,
) -> InstructionExecResult {
    let InstructionContext { interpreter, host } = ic;
    if let Some(reason) = creation_denied(interpreter, host)? {
        return revert_with(interpreter, reason);
    }
    Err(InstructionResult::Stop)
}

/// `RETURN` ending init code funded by a listed account reverts instead ([`creation_denied`]).
pub fn return_hook<CTX: ContextTr<Journal: JournalTr<State = EvmState>> + Host>(
    ic: InstructionContext<'_, CTX, EthInterpreter>,
) -> InstructionExecResult {
    let InstructionContext { interpreter, host } = ic;
    if let Some(reason) = creation_denied(interpreter, host)? {
        return revert_with(interpreter, reason);
    }
    revm::interpreter::instructions::control::ret::<EthInterpreter, CTX>(InstructionContext {
        interpreter,
        host,
    })
}
