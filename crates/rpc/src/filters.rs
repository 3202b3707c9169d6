//! Polling filters: `eth_newFilter`, `eth_newBlockFilter`, `eth_newPendingTransactionFilter`,
//! `eth_getFilterChanges`, `eth_getFilterLogs`, `eth_uninstallFilter`.
//!
//! Filters not polled for five minutes are removed, as geth does.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::B256;
use alloy_rpc_types_eth::{Filter, FilterBlockOption};
use jsonrpsee::{RpcModule, types::Params};
use parking_lot::Mutex;
use pharos_primitives::RecoveredTx;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::{
    RpcContext,
    error::{self, RpcResult, internal, limit_exceeded, server_error},
};

const FILTER_TIMEOUT: Duration = Duration::from_secs(300);
const MAX_FILTERS: usize = 10_000;

enum Kind {
    Logs {
        filter: Box<Filter>,
        next_block: u64,
    },
    Blocks {
        next_block: u64,
    },
    PendingTxs {
        rx: broadcast::Receiver<Arc<RecoveredTx>>,
    },
}

struct Installed {
    kind: Kind,
    last_poll: Instant,
}

/// The installed filters.
#[derive(Default)]
pub(crate) struct Filters {
    inner: Mutex<HashMap<String, Installed>>,
}

impl Filters {
    fn install(&self, kind: Kind) -> RpcResult<String> {
        let mut map = self.inner.lock();
        map.retain(|_, f| f.last_poll.elapsed() < FILTER_TIMEOUT);
        if map.len() >= MAX_FILTERS {
            return Err(limit_exceeded(format!(
                "too many installed filters ({MAX_FILTERS}); uninstall some first"
            )));
        }
        let id = format!("0x{:032x}", rand::random::<u128>());
        map.insert(
            id.clone(),
            Installed {
                kind,
                last_poll: Instant::now(),
            },
        );
        Ok(id)
    }
}

fn not_found() -> jsonrpsee::types::ErrorObjectOwned {
    server_error("filter not found")
}

fn changes(ctx: &RpcContext, id: &str) -> RpcResult<Value> {
    let snap = ctx.snapshot()?;
    let head = snap.head().header.number;
    // Take what is needed out of the filter under the lock, then query without it.
    enum Todo {
        Logs(Box<Filter>, u64, u64),
        Blocks(u64, u64),
        Hashes(Vec<B256>),
    }
    let todo = {
        let mut map = ctx.filters.inner.lock();
        let f = map.get_mut(id).ok_or_else(not_found)?;
        if f.last_poll.elapsed() >= FILTER_TIMEOUT {
            map.remove(id);
            return Err(not_found());
        }
        f.last_poll = Instant::now();
        match &mut f.kind {
            Kind::Logs { filter, next_block } => {
                let from = *next_block;
                let mut to = head;
                if let FilterBlockOption::Range {
                    to_block: Some(BlockNumberOrTag::Number(n)),
                    ..
                } = filter.block_option
                {
                    to = to.min(n);
                }
                let to = to.min(from.saturating_add(ctx.config.max_block_range - 1));
                *next_block = (to + 1).max(from);
                Todo::Logs(filter.clone(), from, to)
            }
            Kind::Blocks { next_block } => {
                let from = *next_block;
                let to = head.min(from.saturating_add(ctx.config.max_block_range - 1));
                *next_block = (to + 1).max(from);
                Todo::Blocks(from, to)
            }
            Kind::PendingTxs { rx } => {
                let mut hashes = Vec::new();
                loop {
                    match rx.try_recv() {
                        Ok(tx) => hashes.push(tx.hash()),
                        Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    }
                }
                Todo::Hashes(hashes)
            }
        }
    };
    match todo {
        Todo::Logs(filter, from, to) => {
            serde_json::to_value(ctx.logs_in_range(&snap, &filter, from, to)?).map_err(internal)
        }
        Todo::Blocks(from, to) => {
            let mut hashes = Vec::new();
            for n in from..=to {
                if let Some(h) = snap.block_hash_of(n).map_err(error::storage)? {
                    hashes.push(h);
                }
            }
            serde_json::to_value(hashes).map_err(internal)
        }
        Todo::Hashes(h) => serde_json::to_value(h).map_err(internal),
    }
}

pub(crate) fn register(m: &mut RpcModule<Arc<RpcContext>>) -> Result<(), crate::RpcError> {
    m.register_method("eth_newFilter", |p: Params, ctx, _| {
        let filter: Filter = p.one()?;
        let snap = ctx.snapshot()?;
        let head = snap.head().header.number;
        let next_block = match filter.block_option {
            FilterBlockOption::Range {
                from_block: Some(BlockNumberOrTag::Number(n)),
                ..
            } => n,
            FilterBlockOption::AtBlockHash(_) => {
                return Err(server_error(
                    "filters by block hash are not supported; use eth_getLogs",
                ));
            }
            _ => head + 1,
        };
        ctx.filters.install(Kind::Logs {
            filter: Box::new(filter),
            next_block,
        })
    })?;
    m.register_method("eth_newBlockFilter", |_, ctx, _| {
        let head = ctx.store.head().header.number;
        ctx.filters.install(Kind::Blocks {
            next_block: head + 1,
        })
    })?;
    m.register_method("eth_newPendingTransactionFilter", |_, ctx, _| {
        ctx.filters.install(Kind::PendingTxs {
            rx: ctx.pool.subscribe(),
        })
    })?;
    m.register_blocking_method("eth_getFilterChanges", |p: Params, ctx, _| {
        let id: String = p.one()?;
        changes(&ctx, &id)
    })?;
    m.register_blocking_method("eth_getFilterLogs", |p: Params, ctx, _| {
        let id: String = p.one()?;
        let filter = {
            let mut map = ctx.filters.inner.lock();
            let f = map.get_mut(&id).ok_or_else(not_found)?;
            f.last_poll = Instant::now();
            match &f.kind {
                Kind::Logs { filter, .. } => (**filter).clone(),
                _ => return Err(server_error("filter is not a log filter")),
            }
        };
        ctx.get_logs(&filter)
    })?;
    m.register_method("eth_uninstallFilter", |p: Params, ctx, _| {
        let id: String = p.one()?;
        RpcResult::Ok(ctx.filters.inner.lock().remove(&id).is_some())
    })?;
    Ok(())
}
