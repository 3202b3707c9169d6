//! Running one transaction for the parallel executor: revm over a versioned read source with the
//! block's fees collected lazily, or a native path for plain value transfers.

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, B256, Bytes, KECCAK256_EMPTY, U256, map::HashMap};
use parking_lot::RwLock;
use pharos_evm::{
    BlockContext, PharosContext, PharosEvm, TX_GAS_LIMIT_CAP, pharos_compliance as compliance,
    revm::{
        Database,
        bytecode::Bytecode,
        bytecode::opcode,
        context::{
            ContextTr, JournalTr,
            result::{EVMError, HaltReason, InvalidTransaction},
        },
        context_interface::ContextSetters,
        handler::{EthFrame, EvmTr, FrameTr, Handler},
        interpreter::{
            Host, InstructionContext, InstructionExecResult, InstructionResult,
            instructions::Instruction, interpreter::EthInterpreter, interpreter_types::MemoryTr,
        },
        precompile::{PrecompileSpecId, Precompiles},
        primitives::{StorageKey, hardfork::SpecId},
        state::{AccountInfo, EvmState},
    },
    tx_env,
};
use pharos_primitives::{AccountState, RecoveredTx, TxEnvelope};

use super::{
    base::BaseState,
    sali::Preimage,
    types::{Location, Observed, Read, ReadKind, TxIdx, TxRun, TxWrites, Value, WriteOp},
};
use crate::{CodeCache, StateError, TxOutcome, TxResult, TxStatus, sequential::outcome_of};

/// Why a read could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The value depends on a transaction that is being re-executed (an ESTIMATE marker).
    #[error("blocked on transaction {0}")]
    Blocked(TxIdx),
    /// The pre-state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

impl pharos_evm::revm::database_interface::DBErrorMarker for ReadError {}

/// Where a transaction's reads are served from: a group's own writes over the pre-state, or the
/// multi-version memory.
pub trait ReadSource {
    /// The value at `location` as the current transaction must see it.
    fn read(&mut self, location: Location, kind: ReadKind) -> Result<Value, ReadError>;
}

/// Code deployed in this block, by hash (kept apart from the bounded cross-block cache so it can
/// never be evicted mid-block).
#[derive(Default)]
pub struct BlockCodes {
    map: RwLock<HashMap<B256, Bytecode>>,
}

impl BlockCodes {
    fn get(&self, hash: &B256) -> Option<Bytecode> {
        self.map.read().get(hash).cloned()
    }

    fn insert(&self, hash: B256, code: Bytecode) {
        self.map.write().insert(hash, code);
    }
}

/// Everything transactions of one block share while they execute.
pub struct Shared<'a> {
    /// Pre-state.
    pub base: &'a BaseState<'a>,
    /// Cross-block analysed code.
    pub codes: &'a CodeCache,
    /// Code deployed in this block.
    pub block_codes: BlockCodes,
    /// The block.
    pub block: BlockContext,
    /// Hardfork.
    pub spec: SpecId,
    /// Chain id.
    pub chain_id: u64,
    precompiles: &'static Precompiles,
}

impl<'a> Shared<'a> {
    /// Shared context for one block.
    pub fn new(
        base: &'a BaseState<'a>,
        codes: &'a CodeCache,
        block: BlockContext,
        spec: SpecId,
        chain_id: u64,
    ) -> Self {
        Self {
            base,
            codes,
            block_codes: BlockCodes::default(),
            block,
            spec,
            chain_id,
            precompiles: Precompiles::new(PrecompileSpecId::from_spec_id(spec)),
        }
    }

    fn code(&self, hash: B256) -> Result<Bytecode, StateError> {
        if let Some(c) = self.block_codes.get(&hash) {
            return Ok(c);
        }
        self.codes.load(hash, self.base.view())
    }
}

/// The revm database of a worker: reads go to the source and are recorded.
pub struct TxDb<'a, S> {
    /// Where reads are served from.
    pub source: S,
    shared: &'a Shared<'a>,
    /// Reads of the transaction in progress.
    pub reads: Vec<Read>,
    /// The worker's own copies of the code it runs: handing revm a clone of shared code would
    /// bump a reference count both cores write on every transaction.
    codes: HashMap<B256, Bytecode>,
    /// Mapping slots the prediction of the transaction in progress already hashed: `KECCAK256`
    /// over one of these 64-byte inputs takes the hash from here (same result, same gas).
    pub preimages: Vec<Preimage>,
    /// Record every 64-byte `KECCAK256` input of the transaction in progress (into its
    /// [`TxRun::preimages`]), so learning can tell which slots are keyed by the sender.
    pub observe: bool,
    observed: Vec<Preimage>,
}

impl<'a, S: ReadSource> TxDb<'a, S> {
    /// A database over `source`.
    pub fn new(source: S, shared: &'a Shared<'a>) -> Self {
        Self {
            source,
            shared,
            reads: Vec::with_capacity(64),
            codes: HashMap::default(),
            preimages: Vec::new(),
            observe: false,
            observed: Vec::new(),
        }
    }

    fn read(&mut self, location: Location, kind: ReadKind) -> Result<Value, ReadError> {
        let value = self.source.read(location, kind)?;
        self.reads.push(Read {
            location,
            kind,
            observed: Observed::of(kind, value),
        });
        Ok(value)
    }

    fn account(
        &mut self,
        address: Address,
        kind: ReadKind,
    ) -> Result<Option<AccountState>, ReadError> {
        match self.read(Location::Account(address), kind)? {
            Value::Account(a) => Ok(a),
            Value::Storage(_) => Err(StateError("account location holds a slot".into()).into()),
        }
    }
}

impl<S: ReadSource> Database for TxDb<'_, S> {
    type Error = ReadError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self
            .account(address, ReadKind::Full)?
            .as_ref()
            .map(crate::overlay::account_info))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if let Some(c) = self.codes.get(&code_hash) {
            return Ok(c.clone());
        }
        let shared = self.shared.code(code_hash)?;
        let own = Bytecode::new_raw(Bytes::copy_from_slice(&shared.original_bytes()));
        self.codes.insert(code_hash, own.clone());
        Ok(own)
    }

    fn storage(&mut self, address: Address, index: StorageKey) -> Result<U256, Self::Error> {
        match self.read(Location::Storage(address, index), ReadKind::Full)? {
            Value::Storage(v) => Ok(v),
            Value::Account(_) => Err(StateError("slot location holds an account".into()).into()),
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.shared.base.view().block_hash(number)?)
    }
}

/// The mainnet handler, except that the block's beneficiary is not paid per transaction: its
/// fees are added once, lazily, so transactions do not all conflict on its balance.
struct LazyFeeHandler<EVM> {
    _evm: std::marker::PhantomData<EVM>,
}

impl<EVM, DB> Handler for LazyFeeHandler<EVM>
where
    DB: Database,
    EVM: EvmTr<
            Context: ContextTr<Db = DB, Journal: JournalTr<State = EvmState>>,
            Frame = EthFrame<EthInterpreter>,
        >,
{
    type Evm = EVM;
    type Error = EVMError<DB::Error, InvalidTransaction>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(
        &self,
        _evm: &mut Self::Evm,
        _exec_result: &mut <<Self::Evm as EvmTr>::Frame as FrameTr>::FrameResult,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A worker's EVM, reused across the transactions it executes.
pub type WorkerEvm<'a, S> = PharosEvm<TxDb<'a, S>>;

/// Builds a worker's EVM over `source`.
pub fn worker_evm<'a, S: ReadSource>(source: S, shared: &'a Shared<'a>) -> WorkerEvm<'a, S> {
    let mut evm = pharos_evm::build_evm_with_cfg(
        TxDb::new(source, shared),
        pharos_evm::cfg_env_with_spec(shared.chain_id, shared.spec),
        &shared.block,
    );
    evm.instruction.instruction_table_mut()[opcode::KECCAK256 as usize] =
        Instruction::new(memo_keccak::<S>);
    evm
}

/// `KECCAK256` that takes a 64-byte input's hash from the prediction when it has it (a mapping
/// slot it resolved), and otherwise is revm's own instruction. Only inputs already inside the
/// frame's memory are looked up, so memory growth and its gas stay revm's; the dynamic gas is
/// charged exactly as revm does.
fn memo_keccak<S: ReadSource>(
    ic: InstructionContext<'_, PharosContext<TxDb<'_, S>>, EthInterpreter>,
) -> InstructionExecResult {
    let InstructionContext { interpreter, host } = ic;
    let db = &host.journaled_state.database;
    if (db.observe || !db.preimages.is_empty())
        && let (Ok(offset), Ok(len)) = (interpreter.stack.peek(0), interpreter.stack.peek(1))
        && len == U256::from(64)
        && let Ok(offset) = usize::try_from(offset)
        && offset
            .checked_add(64)
            .is_some_and(|end| end <= interpreter.memory.size())
    {
        let mut input = [0u8; 64];
        input.copy_from_slice(&interpreter.memory.slice_len(offset, 64));
        let hit = db
            .preimages
            .iter()
            .find(|(p, _)| *p == input)
            .map(|(_, h)| *h);
        let hash = match hit {
            Some(hash) => {
                let cost = host.gas_params().keccak256_cost(64);
                if !interpreter.gas.record_regular_cost(cost) {
                    return Err(InstructionResult::OutOfGas);
                }
                // Pops the offset and replaces the length with the hash, as revm does.
                interpreter.stack.pop()?;
                if let Some(top) = interpreter.stack.top() {
                    *top = hash.into();
                }
                hash
            }
            None => {
                pharos_evm::revm::interpreter::instructions::system::keccak256(
                    InstructionContext {
                        interpreter: &mut *interpreter,
                        host: &mut *host,
                    },
                )?;
                match interpreter.stack.peek(0) {
                    Ok(top) => B256::from(top),
                    Err(_) => return Ok(()),
                }
            }
        };
        let db = &mut host.journaled_state.database;
        if db.observe {
            db.observed.push((input, hash));
        }
        return Ok(());
    }
    pharos_evm::revm::interpreter::instructions::system::keccak256(InstructionContext {
        interpreter,
        host,
    })
}

/// Priority fee per gas paid to the beneficiary.
fn tip_per_gas(tx: &RecoveredTx, base_fee: u64) -> u128 {
    tx.effective_gas_price(base_fee)
        .saturating_sub(u128::from(base_fee))
}

/// Executes `tx` on the worker's EVM. `Err` only when a read was blocked or the state failed.
pub fn execute<S: ReadSource>(
    evm: &mut WorkerEvm<'_, S>,
    shared: &Shared<'_>,
    tx: &RecoveredTx,
) -> Result<TxRun, ReadError> {
    evm.ctx.journaled_state.database.reads.clear();
    if let Some(run) = native_transfer(&mut evm.ctx.journaled_state.database, shared, tx)? {
        return Ok(run);
    }
    evm.ctx.journaled_state.database.reads.clear();
    evm.ctx.journaled_state.database.observed.clear();
    evm.ctx.set_tx(tx_env(tx));
    let outcome = LazyFeeHandler {
        _evm: std::marker::PhantomData,
    }
    .run(evm);
    let state = evm.ctx.journal_mut().finalize();
    // The scratch buffer keeps its capacity; the run keeps an exactly sized copy.
    let reads = evm.ctx.journaled_state.database.reads.to_vec();
    let preimages = std::mem::take(&mut evm.ctx.journaled_state.database.observed);
    match outcome {
        Ok(result) => {
            let outcome = outcome_of(result);
            let fee =
                U256::from(tip_per_gas(tx, shared.block.base_fee)) * U256::from(outcome.gas_used);
            let writes = writes_from_state(state, shared, fee);
            Ok(TxRun {
                result: TxResult::Included(outcome),
                reads,
                writes,
                preimages,
            })
        }
        Err(EVMError::Transaction(e)) => Ok(TxRun {
            result: TxResult::Rejected(e.to_string()),
            reads,
            writes: TxWrites::default(),
            preimages,
        }),
        Err(EVMError::Database(e)) => Err(e),
        Err(other) => Err(ReadError::State(StateError(format!("evm: {other}")))),
    }
}

/// Turns revm's post-transaction state into write operations, with the beneficiary's fee.
fn writes_from_state(state: EvmState, shared: &Shared<'_>, fee: U256) -> TxWrites {
    let mut writes = TxWrites::default();
    for (address, account) in state {
        if !account.is_touched() {
            continue;
        }
        let deleted = account.is_selfdestructed() || (!account.is_created() && account.is_empty());
        if deleted {
            // Deleting an account that did not exist changes nothing.
            if !account.is_loaded_as_not_existing() || account.is_created() {
                writes.ops.push((
                    Location::Account(address),
                    WriteOp::Set(Value::Account(None)),
                ));
                writes.wipes.push(address);
            }
            continue;
        }
        if account.is_created() {
            writes.wipes.push(address);
        }
        let info = &account.info;
        let original = account.original_info();
        let new = AccountState {
            nonce: info.nonce,
            balance: info.balance,
            code_hash: info.code_hash,
        };
        let changed = account.is_created()
            || account.is_loaded_as_not_existing()
            || original.nonce != new.nonce
            || original.balance != new.balance
            || original.code_hash != new.code_hash;
        if original.code_hash != new.code_hash
            && let Some(code) = &info.code
            && !code.is_empty()
        {
            shared.block_codes.insert(new.code_hash, code.clone());
            writes.codes.push((new.code_hash, code.original_bytes()));
        }
        if changed {
            writes.ops.push((
                Location::Account(address),
                WriteOp::Set(Value::Account(Some(new))),
            ));
        }
        for (slot, value) in account.changed_storage_slots() {
            writes.ops.push((
                Location::Storage(address, *slot),
                WriteOp::Set(Value::Storage(value.present_value())),
            ));
        }
    }
    add_fee(&mut writes.ops, shared.block.beneficiary, fee);
    writes
}

/// Credits `fee` to `coinbase`: folded into the transaction's own write of the account when it
/// has one (it then read the account in full), otherwise as a commutative addition.
fn add_fee(ops: &mut Vec<(Location, WriteOp)>, coinbase: Address, fee: U256) {
    if fee.is_zero() {
        return;
    }
    let location = Location::Account(coinbase);
    match ops.iter_mut().find(|(l, _)| *l == location) {
        Some((_, WriteOp::Set(Value::Account(a)))) => *a = super::types::add_balance(*a, fee),
        Some((_, WriteOp::AddBalance(d))) => *d = d.saturating_add(fee),
        Some((_, WriteOp::Set(Value::Storage(_)))) | None => {
            ops.push((location, WriteOp::AddBalance(fee)))
        }
    }
}

/// A plain value transfer between accounts without code, run without revm: the sender is read
/// and written, the recipient only receives an addition (so transfers to one hot address do not
/// conflict). Returns `None` when the transaction is not such a transfer or would be rejected;
/// revm then runs it and produces the exact outcome.
fn native_transfer<S: ReadSource>(
    db: &mut TxDb<'_, S>,
    shared: &Shared<'_>,
    tx: &RecoveredTx,
) -> Result<Option<TxRun>, ReadError> {
    let block = &shared.block;
    let env = tx.envelope();
    let Some(to) = tx.to() else { return Ok(None) };
    let sender = tx.sender();
    let plain_type = matches!(
        env,
        TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_)
    );
    let gas_limit = tx.gas_limit();
    let max_fee = tx.max_fee_per_gas();
    let base_fee = u128::from(block.base_fee);
    if !plain_type
        || !tx.input().is_empty()
        || env.access_list().is_some_and(|l| !l.0.is_empty())
        || tx.value().is_zero()
        || to == sender
        || to == block.beneficiary
        || sender == block.beneficiary
        || shared.precompiles.contains(&to)
        || tx.chain_id().is_some_and(|c| c != shared.chain_id)
        || gas_limit < 21_000
        || gas_limit > block.gas_limit
        || (shared.spec.is_enabled_in(SpecId::OSAKA) && gas_limit > TX_GAS_LIMIT_CAP)
        || max_fee < base_fee
        || tx.max_priority_fee_per_gas() > max_fee
        || !shared.spec.is_enabled_in(SpecId::LONDON)
    {
        return Ok(None);
    }
    // System contracts refuse coin; a non-empty sanctions list needs revm's frame check (while
    // it is empty — one read — plain transfers stay native).
    if compliance::SYSTEM_CONTRACTS.contains(&to)
        || !Database::storage(
            db,
            compliance::SANCTIONS_LIST,
            compliance::sanctions::COUNT_SLOT,
        )?
        .is_zero()
    {
        return Ok(None);
    }
    let recipient = db.account(to, ReadKind::CodeOnly)?;
    if recipient.is_some_and(|r| r.code_hash != KECCAK256_EMPTY) {
        return Ok(None);
    }
    let Some(mut account) = db.account(sender, ReadKind::Full)? else {
        return Ok(None);
    };
    let worst_case = U256::from(gas_limit) * U256::from(max_fee) + tx.value();
    if account.code_hash != KECCAK256_EMPTY
        || account.nonce != tx.nonce()
        || account.nonce == u64::MAX
        || account.balance < worst_case
    {
        return Ok(None);
    }
    let price = tx.effective_gas_price(block.base_fee);
    account.balance -= U256::from(21_000u64) * U256::from(price) + tx.value();
    account.nonce += 1;
    let mut ops = vec![
        (
            Location::Account(sender),
            WriteOp::Set(Value::Account(Some(account))),
        ),
        (Location::Account(to), WriteOp::AddBalance(tx.value())),
    ];
    add_fee(
        &mut ops,
        block.beneficiary,
        U256::from(21_000u64) * U256::from(price - base_fee),
    );
    Ok(Some(TxRun {
        result: TxResult::Included(TxOutcome {
            status: TxStatus::Success,
            gas_used: 21_000,
            logs: Vec::new(),
            output: Bytes::new(),
            created: None,
        }),
        reads: db.reads.to_vec(),
        writes: TxWrites {
            ops,
            wipes: Vec::new(),
            codes: Vec::new(),
        },
        preimages: Vec::new(),
    }))
}
