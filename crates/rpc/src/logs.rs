//! `eth_getLogs`: geth's range and filter semantics over the log-address index and header blooms.

use std::sync::Arc;

use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log as RpcLog};
use jsonrpsee::{RpcModule, types::Params};
use pharos_storage::Snapshot;

use crate::{
    RpcContext, convert,
    error::{self, RpcResult, header_not_found, invalid_params, limit_exceeded},
};

impl RpcContext {
    /// The block range a filter covers, checked against the head and the configured limit.
    pub(crate) fn filter_range(&self, snap: &Snapshot, filter: &Filter) -> RpcResult<(u64, u64)> {
        let head = snap.head().header.number;
        match &filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                let n = snap
                    .block_number(*hash)
                    .map_err(error::storage)?
                    .ok_or_else(header_not_found)?;
                Ok((n, n))
            }
            FilterBlockOption::Range {
                from_block,
                to_block,
            } => {
                let resolve = |tag: Option<BlockNumberOrTag>| {
                    self.tag_number(snap, tag.unwrap_or(BlockNumberOrTag::Latest))
                };
                let from = resolve(*from_block);
                let to = resolve(*to_block).min(head);
                if from > to && from <= head {
                    return Err(invalid_params(
                        "invalid block range params: fromBlock is after toBlock",
                    ));
                }
                if to + 1 - from.min(to + 1) > self.config.max_block_range {
                    return Err(limit_exceeded(format!(
                        "query exceeds max block range {}: asked for blocks {from} to {to}",
                        self.config.max_block_range
                    )));
                }
                Ok((from, to))
            }
        }
    }

    /// Logs matching `filter` in blocks `from..=to`.
    pub(crate) fn logs_in_range(
        &self,
        snap: &Snapshot,
        filter: &Filter,
        from: u64,
        to: u64,
    ) -> RpcResult<Vec<RpcLog>> {
        if from > to {
            return Ok(Vec::new());
        }
        // Candidate blocks: the address index when addresses are given, else every block.
        let candidates: Vec<u64> = if filter.address.is_empty() {
            (from..=to).collect()
        } else {
            let mut blocks = Vec::new();
            for address in filter.address.iter() {
                blocks.extend(
                    snap.blocks_with_logs_of(address, from, to)
                        .map_err(error::storage)?,
                );
            }
            blocks.sort_unstable();
            blocks.dedup();
            blocks
        };
        let mut out = Vec::new();
        for number in candidates {
            let Some(header) = snap.header(number).map_err(error::storage)? else {
                continue;
            };
            if !filter.matches_bloom(header.logs_bloom) {
                continue;
            }
            let Some((header, hash, body)) = self.block_parts(snap, number)? else {
                continue;
            };
            let receipts = snap
                .receipts(number)
                .map_err(error::storage)?
                .unwrap_or_default();
            for log in convert::block_logs(&header, hash, &body, &receipts) {
                if filter.matches(&log.inner) {
                    out.push(log);
                    if out.len() > self.config.max_logs {
                        return Err(limit_exceeded(format!(
                            "query returned more than {} results; narrow the block range or the filter",
                            self.config.max_logs
                        )));
                    }
                }
            }
        }
        Ok(out)
    }

    /// `eth_getLogs`.
    pub(crate) fn get_logs(&self, filter: &Filter) -> RpcResult<Vec<RpcLog>> {
        let snap = self.snapshot()?;
        let (from, to) = self.filter_range(&snap, filter)?;
        self.logs_in_range(&snap, filter, from, to)
    }
}

pub(crate) fn register(m: &mut RpcModule<Arc<RpcContext>>) -> Result<(), crate::RpcError> {
    m.register_blocking_method("eth_getLogs", |p: Params, ctx, _| {
        let filter: Filter = p.one()?;
        ctx.get_logs(&filter)
    })?;
    Ok(())
}
