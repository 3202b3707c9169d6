//! RPC middleware: admits the `eth_sendRawTransaction` calls of a batch together.
//!
//! jsonrpsee runs the calls of a batch one after another, so a batch of 500 raw transactions
//! would recover 500 signatures on one core and hop to a blocking thread and open a state
//! snapshot 500 times. This layer looks at the batch first: in one blocking task it decodes and
//! recovers all of its raw transactions at once on every core (rayon), then admits them to the
//! pool in batch order against one snapshot, and attaches each outcome to its call's extensions;
//! the method then only returns it. Same results as one call at a time, in the same order.

use std::future::Future;

use alloy_primitives::Bytes;
use jsonrpsee::{
    MethodResponse,
    core::middleware::{Batch, BatchEntry, Notification, RpcServiceT},
    types::Request,
};
use std::sync::Arc;

use alloy_primitives::B256;

use crate::RpcContext;

/// Recovers every transaction of a batch in parallel, then admits them in order against one
/// snapshot of the head.
fn admit_batch(ctx: &RpcContext, raws: &[Bytes]) -> Vec<Result<B256, String>> {
    let recovered = pharos_txpool::recover_batch(raws);
    let snapshot = match ctx.snapshot() {
        Ok(s) => s,
        Err(e) => {
            let message = e.message().to_string();
            return raws.iter().map(|_| Err(message.clone())).collect();
        }
    };
    let base_fee = ctx.next_base_fee(&snapshot);
    recovered
        .into_iter()
        .map(|r| {
            let tx = r.map_err(|e| e.to_string())?;
            ctx.pool
                .add(tx, &snapshot, base_fee)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The outcome of one `eth_sendRawTransaction` call admitted with its batch: the hash, or the
/// error message.
#[derive(Debug, Clone)]
pub(crate) struct PreAdmitted(pub Result<B256, String>);

/// Batches with fewer raw transactions than this are left to the method.
const MIN_PARALLEL: usize = 4;

/// The middleware service.
#[derive(Clone)]
pub(crate) struct RecoverSenders<S> {
    pub inner: S,
    pub ctx: Arc<RpcContext>,
}

impl<S> RpcServiceT for RecoverSenders<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        self.inner.call(request)
    }

    fn batch<'a>(
        &self,
        mut batch: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let mut positions = Vec::new();
        let mut raws: Vec<Bytes> = Vec::new();
        for (i, entry) in batch.iter().enumerate() {
            if let Ok(BatchEntry::Call(req)) = entry
                && req.method_name() == "eth_sendRawTransaction"
                && let Ok(raw) = req.params().one::<Bytes>()
            {
                positions.push(i);
                raws.push(raw);
            }
        }
        let inner = self.inner.clone();
        let ctx = self.ctx.clone();
        async move {
            if raws.len() >= MIN_PARALLEL
                && let Ok(results) =
                    tokio::task::spawn_blocking(move || admit_batch(&ctx, &raws)).await
            {
                let mut results = positions.into_iter().zip(results).peekable();
                for (i, entry) in batch.iter_mut().enumerate() {
                    let Some((pos, _)) = results.peek() else {
                        break;
                    };
                    if *pos != i {
                        continue;
                    }
                    if let (Ok(BatchEntry::Call(req)), Some((_, r))) = (entry, results.next()) {
                        req.extensions_mut().insert(PreAdmitted(r));
                    }
                }
            }
            inner.batch(batch).await
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
