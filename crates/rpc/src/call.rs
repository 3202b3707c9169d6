//! Simulations over the head state: `eth_call`, `eth_estimateGas`, `eth_createAccessList`,
//! and dev-mode `eth_sendTransaction`.

use std::{collections::BTreeMap, sync::Arc};

use alloy_consensus::{TxEip1559, TxEip2930, TxLegacy, TypedTransaction};
use alloy_eips::{
    BlockId,
    eip2930::{AccessList, AccessListItem},
};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256, map::HashMap};
use alloy_rpc_types_eth::{
    AccessListResult, BlockOverrides, TransactionRequest, state::StateOverride,
};
use jsonrpsee::{RpcModule, types::Params};
use pharos_evm::{
    BlockContext, TX_GAS_LIMIT_CAP, build_evm_with_cfg, call_tx_env, cfg_env, halt_message,
    invalid_tx_message, is_precompile,
    revm::{
        ExecuteEvm,
        context::{
            TxEnv,
            result::{EVMError, ExecutionResult, ResultAndState},
        },
    },
};
use pharos_executor::{Overlay, StateError, StateView};
use pharos_primitives::{AccountState, RecoveredTx};
use pharos_storage::Snapshot;

use crate::{
    RpcContext,
    error::{RpcResult, internal, invalid_params, reverted, server_error},
};

/// The head state with `eth_call` state overrides applied on top.
struct OverrideView<'a> {
    base: &'a dyn StateView,
    accounts: HashMap<Address, ResolvedOverride>,
    codes: HashMap<B256, Bytes>,
}

#[derive(Default)]
struct ResolvedOverride {
    balance: Option<U256>,
    nonce: Option<u64>,
    code_hash: Option<B256>,
    /// Replaces all storage.
    state: Option<HashMap<U256, U256>>,
    /// Replaces the given slots.
    state_diff: HashMap<U256, U256>,
}

impl<'a> OverrideView<'a> {
    fn new(base: &'a dyn StateView, overrides: Option<StateOverride>) -> RpcResult<Self> {
        let mut view = Self {
            base,
            accounts: HashMap::default(),
            codes: HashMap::default(),
        };
        for (address, o) in overrides.unwrap_or_default() {
            if o.move_precompile_to.is_some() {
                return Err(invalid_params("movePrecompileToAddress is not supported"));
            }
            if o.state.is_some() && o.state_diff.is_some() {
                return Err(invalid_params(format!(
                    "account {address} has both 'state' and 'stateDiff'"
                )));
            }
            let code_hash = o.code.map(|code| {
                let hash = keccak256(&code);
                view.codes.insert(hash, code);
                hash
            });
            let to_u256 = |m: alloy_primitives::map::B256HashMap<B256>| -> HashMap<U256, U256> {
                m.into_iter()
                    .map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0)))
                    .collect()
            };
            view.accounts.insert(
                address,
                ResolvedOverride {
                    balance: o.balance,
                    nonce: o.nonce,
                    code_hash,
                    state: o.state.map(to_u256),
                    state_diff: o.state_diff.map(to_u256).unwrap_or_default(),
                },
            );
        }
        Ok(view)
    }
}

impl StateView for OverrideView<'_> {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        let base = self.base.account(address)?;
        let Some(o) = self.accounts.get(&address) else {
            return Ok(base);
        };
        let mut account = base.unwrap_or_default();
        if let Some(b) = o.balance {
            account.balance = b;
        }
        if let Some(n) = o.nonce {
            account.nonce = n;
        }
        if let Some(h) = o.code_hash {
            account.code_hash = h;
        }
        Ok(Some(account))
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        if let Some(o) = self.accounts.get(&address) {
            if let Some(state) = &o.state {
                return Ok(state.get(&slot).copied().unwrap_or_default());
            }
            if let Some(v) = o.state_diff.get(&slot) {
                return Ok(*v);
            }
        }
        self.base.storage(address, slot)
    }

    fn code(&self, code_hash: B256) -> Result<Option<Bytes>, StateError> {
        match self.codes.get(&code_hash) {
            Some(c) => Ok(Some(c.clone())),
            None => self.base.code(code_hash),
        }
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.base.block_hash(number)
    }
}

/// A call to simulate: the environment, and whether fees are charged.
struct CallSpec {
    tx: TxEnv,
    block: BlockContext,
    charge_fees: bool,
}

fn block_context(snap: &Snapshot, overrides: Option<&BlockOverrides>) -> BlockContext {
    let mut block = BlockContext::from_header(&snap.head().header);
    if let Some(o) = overrides {
        if let Some(n) = o.number {
            block.number = n.saturating_to();
        }
        if let Some(t) = o.time {
            block.timestamp = t;
        }
        if let Some(g) = o.gas_limit {
            block.gas_limit = g;
        }
        if let Some(c) = o.coinbase {
            block.beneficiary = c;
        }
        if let Some(r) = o.random {
            block.prevrandao = r;
        }
        if let Some(b) = o.base_fee {
            block.base_fee = b.saturating_to();
        }
    }
    block
}

impl RpcContext {
    fn call_spec(
        &self,
        view: &dyn StateView,
        request: &TransactionRequest,
        block: BlockContext,
    ) -> RpcResult<CallSpec> {
        let caller = request.from.unwrap_or_default();
        let input = request
            .input
            .clone()
            .try_into_unique_input()
            .map_err(|e| invalid_params(e.to_string()))?
            .unwrap_or_default();
        let (gas_price, priority, charge_fees) = match (
            request.gas_price,
            request.max_fee_per_gas,
            request.max_priority_fee_per_gas,
        ) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid_params(
                    "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified",
                ));
            }
            (Some(price), None, None) => (price, None, price > 0),
            (None, Some(max), tip) => (max, Some(tip.unwrap_or(0)), max > 0),
            (None, None, Some(tip)) => (u128::from(block.base_fee) + tip, Some(tip), true),
            (None, None, None) => (0, None, false),
        };
        let nonce = match request.nonce {
            Some(n) => n,
            None => view
                .account(caller)
                .map_err(internal)?
                .map(|a| a.nonce)
                .unwrap_or_default(),
        };
        let gas_limit = request
            .gas
            .unwrap_or(self.config.gas_cap)
            .min(self.config.gas_cap);
        let tx = call_tx_env(
            caller,
            match request.to {
                Some(TxKind::Call(to)) => Some(to),
                _ => None,
            },
            request.value.unwrap_or_default(),
            input,
            gas_limit,
            gas_price,
            priority,
            nonce,
            self.spec.chain_id(),
            request.access_list.clone().unwrap_or_default(),
            request.authorization_list.clone().unwrap_or_default(),
        );
        Ok(CallSpec {
            tx,
            block,
            charge_fees,
        })
    }

    /// Runs `spec` over `view` without committing anything.
    fn simulate(&self, view: &dyn StateView, spec: &CallSpec) -> RpcResult<ResultAndState> {
        let mut cfg = cfg_env(self.spec.chain_id());
        cfg.disable_nonce_check = true;
        cfg.disable_block_gas_limit = true;
        cfg.tx_gas_limit_cap = Some(self.config.gas_cap.max(TX_GAS_LIMIT_CAP));
        cfg.disable_base_fee = !spec.charge_fees;
        cfg.disable_eip3607 = true;
        let overlay = Overlay::new(view, &self.code_cache);
        let mut evm = build_evm_with_cfg(overlay, cfg, &spec.block);
        evm.transact(spec.tx.clone()).map_err(|e| match e {
            EVMError::Transaction(t) => server_error(invalid_tx_message(&t, spec.tx.caller)),
            EVMError::Database(d) => internal(d),
            other => internal(other),
        })
    }

    fn call(
        &self,
        request: TransactionRequest,
        id: Option<BlockId>,
        state: Option<StateOverride>,
        block: Option<BlockOverrides>,
    ) -> RpcResult<Bytes> {
        let snap = self.state_at(id)?;
        let view = OverrideView::new(&snap, state)?;
        let spec = self.call_spec(&view, &request, block_context(&snap, block.as_ref()))?;
        match self.simulate(&view, &spec)?.result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(reverted(&output)),
            ExecutionResult::Halt { reason, .. } => Err(server_error(halt_message(&reason))),
        }
    }

    /// geth's estimation: the smallest gas limit (within 1.5%) at which the call succeeds.
    pub(crate) fn estimate_gas(
        &self,
        request: &TransactionRequest,
        id: Option<BlockId>,
        state: Option<StateOverride>,
    ) -> RpcResult<u64> {
        let snap = self.state_at(id)?;
        let view = OverrideView::new(&snap, state)?;
        let block = block_context(&snap, None);
        let mut spec = self.call_spec(&view, request, block)?;
        let mut hi = request
            .gas
            .unwrap_or(u64::MAX)
            .min(self.config.gas_cap)
            .min(block.gas_limit)
            .min(TX_GAS_LIMIT_CAP);
        if spec.charge_fees && spec.tx.gas_price > 0 {
            let balance = view
                .account(spec.tx.caller)
                .map_err(internal)?
                .map(|a| a.balance)
                .unwrap_or_default();
            if spec.tx.value > balance {
                return Err(server_error("insufficient funds for transfer"));
            }
            let allowance = (balance - spec.tx.value) / U256::from(spec.tx.gas_price);
            hi = hi.min(allowance.saturating_to());
        }
        // As geth: a plain transfer to an account without code costs exactly 21000.
        if spec.tx.data.is_empty()
            && let TxKind::Call(to) = spec.tx.kind
            && !view
                .account(to)
                .map_err(internal)?
                .is_some_and(|a| a.has_code())
            && hi >= 21_000
        {
            spec.tx.gas_limit = 21_000;
            if self
                .simulate(&view, &spec)
                .is_ok_and(|r| r.result.is_success())
            {
                return Ok(21_000);
            }
        }
        let intrinsic = pharos_evm::intrinsic_gas(&spec.tx);
        if hi < intrinsic {
            return Err(server_error(format!(
                "gas required exceeds allowance ({hi})"
            )));
        }
        // Run at the ceiling first: if it fails there, it fails everywhere.
        spec.tx.gas_limit = hi;
        let first = self.simulate(&view, &spec)?.result;
        let used = match &first {
            ExecutionResult::Success { .. } => first.tx_gas_used(),
            ExecutionResult::Revert { output, .. } => return Err(reverted(output)),
            ExecutionResult::Halt { reason, .. } => {
                return Err(match reason {
                    pharos_evm::revm::context::result::HaltReason::OutOfGas(_) => {
                        server_error(format!("gas required exceeds allowance ({hi})"))
                    }
                    other => server_error(halt_message(other)),
                });
            }
        };
        let refunded = first.gas().inner_refunded();
        let mut lo = intrinsic.saturating_sub(1).max(used.saturating_sub(1));
        let succeeds = |gas: u64, spec: &mut CallSpec| -> RpcResult<bool> {
            spec.tx.gas_limit = gas;
            match self.simulate(&view, spec) {
                Ok(r) => Ok(r.result.is_success()),
                Err(e) if e.code() == crate::error::SERVER_ERROR => Ok(false),
                Err(e) => Err(e),
            }
        };
        // Most calls need at most what they used plus the 63/64 reserve.
        let optimistic = ((used + refunded + 2_300) * 64 / 63).min(hi);
        if optimistic > lo && optimistic < hi {
            if succeeds(optimistic, &mut spec)? {
                hi = optimistic;
            } else {
                lo = optimistic;
            }
        }
        while lo + 1 < hi {
            if (hi - lo) * 1000 / hi < 15 {
                break;
            }
            let mid = (lo / 2 + hi / 2).min(lo.saturating_mul(2)).max(lo + 1);
            if succeeds(mid, &mut spec)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    fn create_access_list(
        &self,
        request: TransactionRequest,
        id: Option<BlockId>,
    ) -> RpcResult<AccessListResult> {
        let snap = self.state_at(id)?;
        let view = OverrideView::new(&snap, None)?;
        let block = block_context(&snap, None);
        let mut spec = self.call_spec(&view, &request, block)?;
        let mut excluded = vec![spec.tx.caller, block.beneficiary];
        match spec.tx.kind {
            TxKind::Call(to) => excluded.push(to),
            TxKind::Create => excluded.push(spec.tx.caller.create(spec.tx.nonce)),
        }
        let mut list = request.access_list.clone().unwrap_or_default();
        for _ in 0..16 {
            spec.tx.access_list = list.clone();
            let out = self.simulate(&view, &spec)?;
            let mut touched: BTreeMap<Address, Vec<B256>> = BTreeMap::new();
            for (address, account) in &out.state {
                // System contracts charge flat gas: listing their slots would only cost more.
                if pharos_evm::pharos_compliance::SYSTEM_CONTRACTS.contains(address) {
                    continue;
                }
                let mut keys: Vec<B256> = account.storage.keys().map(|k| B256::from(*k)).collect();
                // As geth: slots are listed for every account, bare addresses only for ones
                // the transaction does not warm anyway.
                if keys.is_empty() && (excluded.contains(address) || is_precompile(address)) {
                    continue;
                }
                keys.sort();
                touched.insert(*address, keys);
            }
            let next = AccessList(
                touched
                    .into_iter()
                    .map(|(address, storage_keys)| AccessListItem {
                        address,
                        storage_keys,
                    })
                    .collect(),
            );
            if next == list {
                let error = match &out.result {
                    ExecutionResult::Success { .. } => None,
                    ExecutionResult::Revert { output, .. } => {
                        Some(reverted(output).message().to_string())
                    }
                    ExecutionResult::Halt { reason, .. } => Some(halt_message(reason)),
                };
                return Ok(AccessListResult {
                    access_list: list,
                    gas_used: U256::from(out.result.tx_gas_used()),
                    error,
                });
            }
            list = next;
        }
        Err(server_error("access list did not converge"))
    }
}

/// `eth_sendTransaction` for the dev accounts: fills in nonce, gas and fees, signs, submits.
pub(crate) fn send_dev_transaction(
    ctx: &RpcContext,
    request: TransactionRequest,
) -> RpcResult<B256> {
    let from = request
        .from
        .ok_or_else(|| invalid_params("missing 'from'"))?;
    let wallet = ctx
        .dev_wallets
        .iter()
        .find(|w| w.address() == from)
        .ok_or_else(|| server_error(format!("unknown account {from}")))?;
    // In flight first, then the snapshot (see eth_getTransactionCount).
    let in_flight = ctx.pool.in_flight_nonce(from);
    let snap = ctx.snapshot()?;
    let state_nonce = snap
        .account(from)
        .map_err(internal)?
        .map(|a| a.nonce)
        .unwrap_or_default();
    let nonce = request
        .nonce
        .unwrap_or_else(|| ctx.pool.pending_nonce(from, state_nonce.max(in_flight)));
    let gas_limit = match request.gas {
        Some(g) => g,
        None => ctx.estimate_gas(&request, None, None)?,
    };
    let input = request
        .input
        .clone()
        .try_into_unique_input()
        .map_err(|e| invalid_params(e.to_string()))?
        .unwrap_or_default();
    let to = request.to.unwrap_or(TxKind::Create);
    let value = request.value.unwrap_or_default();
    let chain_id = ctx.spec.chain_id();
    let base_fee = ctx.next_base_fee(&snap);
    let tip = request
        .max_priority_fee_per_gas
        .unwrap_or_else(|| crate::fees::suggested_tip(ctx, &snap));
    let tx = if let Some(gas_price) = request.gas_price {
        match request.access_list.clone() {
            Some(access_list) => TypedTransaction::Eip2930(TxEip2930 {
                chain_id,
                nonce,
                gas_price,
                gas_limit,
                to,
                value,
                access_list,
                input,
            }),
            None => TypedTransaction::Legacy(TxLegacy {
                chain_id: Some(chain_id),
                nonce,
                gas_price,
                gas_limit,
                to,
                value,
                input,
            }),
        }
    } else {
        TypedTransaction::Eip1559(TxEip1559 {
            chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: request
                .max_fee_per_gas
                .unwrap_or(2 * u128::from(base_fee) + tip),
            max_priority_fee_per_gas: tip,
            to,
            value,
            access_list: request.access_list.clone().unwrap_or_default(),
            input,
        })
    };
    let signed: RecoveredTx = wallet.sign_recovered(tx);
    ctx.submit(signed)
}

pub(crate) fn register(m: &mut RpcModule<Arc<RpcContext>>) -> Result<(), crate::RpcError> {
    m.register_blocking_method("eth_call", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let request: TransactionRequest = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        let state: Option<StateOverride> = seq.optional_next()?;
        let block: Option<BlockOverrides> = seq.optional_next()?;
        ctx.call(request, id, state, block)
    })?;
    m.register_blocking_method("eth_estimateGas", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let request: TransactionRequest = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        let state: Option<StateOverride> = seq.optional_next()?;
        ctx.estimate_gas(&request, id, state)
            .map(alloy_primitives::U64::from)
    })?;
    m.register_blocking_method("eth_createAccessList", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let request: TransactionRequest = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        ctx.create_access_list(request, id)
    })?;
    Ok(())
}
