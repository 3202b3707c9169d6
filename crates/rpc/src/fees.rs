//! Fee methods: `eth_gasPrice`, `eth_maxPriorityFeePerGas`, `eth_feeHistory`, `eth_blobBaseFee`.

use std::sync::Arc;

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, U64, U256};
use alloy_rpc_types_eth::FeeHistory;
use jsonrpsee::{RpcModule, types::Params};
use parking_lot::Mutex;
use pharos_storage::Snapshot;

use crate::{
    RpcContext,
    error::{self, RpcResult, header_not_found, invalid_params},
};

/// Tip suggested when recent blocks hold no transactions: 1 gwei, as geth.
pub const DEFAULT_TIP: u128 = 1_000_000_000;
/// Blocks looked at by the tip oracle.
const ORACLE_BLOCKS: u64 = 10;
/// Transactions sampled per block by the tip oracle (the block's first, best-paying ones).
const ORACLE_SAMPLE: usize = 64;
/// Most blocks `eth_feeHistory` reports.
const MAX_FEE_HISTORY: u64 = 1024;

/// The tip oracle's last answer and the head it was computed at.
pub(crate) type TipCache = Mutex<Option<(B256, u128)>>;

/// The 60th percentile of tips paid in recent blocks, or [`DEFAULT_TIP`]; cached per head.
pub(crate) fn suggested_tip(ctx: &RpcContext, snap: &Snapshot) -> u128 {
    let head = snap.head();
    if let Some((hash, tip)) = *ctx.tip_cache.lock()
        && hash == head.hash
    {
        return tip;
    }
    let mut tips = Vec::new();
    let newest = head.header.number;
    for number in newest.saturating_sub(ORACLE_BLOCKS - 1)..=newest {
        let Ok(Some(header)) = snap.header(number) else {
            continue;
        };
        let base_fee = header.base_fee_per_gas.unwrap_or_default();
        if let Ok(Some(body)) = snap.body_prefix(number, ORACLE_SAMPLE) {
            tips.extend(body.iter().filter_map(|t| t.effective_tip(base_fee)));
        }
    }
    let tip = if tips.is_empty() {
        DEFAULT_TIP
    } else {
        tips.sort_unstable();
        tips[(tips.len() - 1) * 60 / 100]
    };
    *ctx.tip_cache.lock() = Some((head.hash, tip));
    tip
}

fn fee_history(
    ctx: &RpcContext,
    count: u64,
    newest: BlockNumberOrTag,
    percentiles: Option<Vec<f64>>,
) -> RpcResult<FeeHistory> {
    if let Some(p) = &percentiles
        && (p.iter().any(|x| !(0.0..=100.0).contains(x)) || p.windows(2).any(|w| w[0] > w[1]))
    {
        return Err(invalid_params(
            "reward percentiles must be ascending values between 0 and 100",
        ));
    }
    let snap = ctx.snapshot()?;
    let newest = ctx.tag_number(&snap, newest);
    if newest > snap.head().header.number {
        return Err(header_not_found());
    }
    let count = count.min(MAX_FEE_HISTORY).min(newest + 1);
    if count == 0 {
        return Ok(FeeHistory::default());
    }
    let oldest = newest + 1 - count;
    let mut history = FeeHistory {
        oldest_block: oldest,
        ..Default::default()
    };
    let mut rewards = Vec::new();
    let mut last_header = None;
    for number in oldest..=newest {
        let header = snap
            .header(number)
            .map_err(error::storage)?
            .ok_or_else(header_not_found)?;
        let base_fee = header.base_fee_per_gas.unwrap_or_default();
        history.base_fee_per_gas.push(u128::from(base_fee));
        history
            .gas_used_ratio
            .push(header.gas_used as f64 / header.gas_limit.max(1) as f64);
        history.base_fee_per_blob_gas.push(1);
        history.blob_gas_used_ratio.push(0.0);
        if let Some(percentiles) = &percentiles {
            let body = snap
                .body(number)
                .map_err(error::storage)?
                .unwrap_or_default();
            let receipts = snap
                .receipts(number)
                .map_err(error::storage)?
                .unwrap_or_default();
            let mut prev = 0;
            let mut txs: Vec<(u128, u64)> = body
                .iter()
                .zip(&receipts)
                .map(|(t, r)| {
                    let used = r.cumulative_gas_used() - prev;
                    prev = r.cumulative_gas_used();
                    (t.effective_tip(base_fee).unwrap_or(0), used)
                })
                .collect();
            txs.sort_unstable();
            let total: u64 = txs.iter().map(|(_, g)| g).sum();
            let row = percentiles
                .iter()
                .map(|p| {
                    if txs.is_empty() {
                        return 0;
                    }
                    let threshold = (total as f64 * p / 100.0) as u64;
                    let mut acc = 0;
                    for (tip, gas) in &txs {
                        acc += gas;
                        if acc >= threshold {
                            return *tip;
                        }
                    }
                    txs.last().map(|(t, _)| *t).unwrap_or(0)
                })
                .collect();
            rewards.push(row);
        }
        last_header = Some(header);
    }
    if let Some(h) = last_header {
        history
            .base_fee_per_gas
            .push(u128::from(ctx.spec.next_base_fee(&h)));
        history.base_fee_per_blob_gas.push(1);
    }
    if percentiles.is_some() {
        history.reward = Some(rewards);
    }
    Ok(history)
}

pub(crate) fn register(m: &mut RpcModule<Arc<RpcContext>>) -> Result<(), crate::RpcError> {
    m.register_method("eth_gasPrice", |_, ctx, _| {
        let snap = ctx.snapshot()?;
        let price = u128::from(ctx.next_base_fee(&snap)) + suggested_tip(ctx, &snap);
        RpcResult::Ok(U256::from(price))
    })?;
    m.register_method("eth_maxPriorityFeePerGas", |_, ctx, _| {
        let snap = ctx.snapshot()?;
        RpcResult::Ok(U256::from(suggested_tip(ctx, &snap)))
    })?;
    m.register_method("eth_blobBaseFee", |_, _, _| RpcResult::Ok(U256::from(1)))?;
    m.register_blocking_method("eth_feeHistory", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let count: U64 = seq.next()?;
        let newest: BlockNumberOrTag = seq.next()?;
        let percentiles: Option<Vec<f64>> = seq.optional_next()?;
        fee_history(&ctx, count.to(), newest, percentiles)
    })?;
    Ok(())
}
