//! `eth_subscribe` over WebSocket: `newHeads`, `logs` (with a filter) and
//! `newPendingTransactions` (hashes, or full objects with `true`).

use std::sync::Arc;

use alloy_rpc_types_eth::Filter;
use jsonrpsee::{
    PendingSubscriptionSink, RpcModule, SubscriptionMessage, SubscriptionSink,
    core::SubscriptionResult, types::Params,
};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::{RpcContext, convert, error::invalid_params};

async fn send<T: Serialize>(sink: &SubscriptionSink, value: &T) -> bool {
    match serde_json::value::to_raw_value(value) {
        Ok(raw) => sink.send(SubscriptionMessage::from(raw)).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a subscription message");
            false
        }
    }
}

/// Forwards items from `rx`, each mapped to zero or more messages, until the client leaves.
async fn forward<T: Clone, M: Serialize>(
    sink: SubscriptionSink,
    mut rx: broadcast::Receiver<T>,
    map: impl Fn(T) -> Vec<M>,
) {
    loop {
        tokio::select! {
            _ = sink.closed() => break,
            item = rx.recv() => match item {
                Ok(item) => {
                    for msg in map(item) {
                        if !send(&sink, &msg).await {
                            return;
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "subscriber too slow; messages dropped");
                }
                Err(RecvError::Closed) => break,
            }
        }
    }
}

async fn subscribe(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    ctx: Arc<RpcContext>,
) -> SubscriptionResult {
    let mut seq = params.sequence();
    let kind: String = match seq.next() {
        Ok(k) => k,
        Err(e) => {
            pending.reject(e).await;
            return Ok(());
        }
    };
    match kind.as_str() {
        "newHeads" => {
            let rx = ctx.blocks.subscribe();
            let sink = pending.accept().await?;
            forward(sink, rx, |b: Arc<crate::CommittedBlock>| {
                vec![convert::header(&b.block.header, b.block.hash, None)]
            })
            .await;
        }
        "logs" => {
            let filter: Filter = match seq.optional_next::<Filter>() {
                Ok(f) => f.unwrap_or_default(),
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let rx = ctx.blocks.subscribe();
            let sink = pending.accept().await?;
            forward(sink, rx, move |b: Arc<crate::CommittedBlock>| {
                if !filter.matches_bloom(b.block.header.logs_bloom) {
                    return Vec::new();
                }
                convert::block_logs(&b.block.header, b.block.hash, &b.block.body, &b.receipts)
                    .into_iter()
                    .filter(|l| filter.matches(&l.inner))
                    .collect()
            })
            .await;
        }
        "newPendingTransactions" => {
            let full = match seq.optional_next::<bool>() {
                Ok(f) => f.unwrap_or(false),
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let rx = ctx.pool.subscribe();
            let sink = pending.accept().await?;
            forward(sink, rx, move |tx: Arc<pharos_primitives::RecoveredTx>| {
                vec![if full {
                    serde_json::to_value(convert::transaction(&tx, None))
                        .unwrap_or(serde_json::Value::Null)
                } else {
                    serde_json::Value::String(tx.hash().to_string())
                }]
            })
            .await;
        }
        other => {
            pending
                .reject(invalid_params(format!(
                    "unsupported subscription '{other}': use newHeads, logs or newPendingTransactions"
                )))
                .await;
        }
    }
    Ok(())
}

pub(crate) fn register(m: &mut RpcModule<Arc<RpcContext>>) -> Result<(), crate::RpcError> {
    m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, ctx, _| subscribe(params, pending, (*ctx).clone()),
    )?;
    Ok(())
}
