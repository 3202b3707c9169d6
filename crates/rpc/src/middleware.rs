//! RPC middleware: recovers the senders of every `eth_sendRawTransaction` in a batch in parallel.
//!
//! jsonrpsee runs the calls of a batch one after another, so a batch of 500 raw transactions
//! would recover 500 signatures on one core. This layer looks at the batch first, decodes and
//! recovers all of its raw transactions at once on every core (rayon), and attaches each result
//! to its call's extensions; the method then only admits it to the pool.

use std::future::Future;

use alloy_primitives::Bytes;
use jsonrpsee::{
    MethodResponse,
    core::middleware::{Batch, BatchEntry, Notification, RpcServiceT},
    types::Request,
};
use pharos_primitives::{RecoveredTx, TxDecodeError};

/// The decoded, sender-recovered transaction of one `eth_sendRawTransaction` call.
#[derive(Debug, Clone)]
pub(crate) struct PreRecovered(pub Result<RecoveredTx, TxDecodeError>);

/// Batches with fewer raw transactions than this are left to the method.
const MIN_PARALLEL: usize = 4;

/// The middleware service.
#[derive(Debug, Clone)]
pub(crate) struct RecoverSenders<S> {
    pub inner: S,
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
        async move {
            if raws.len() >= MIN_PARALLEL
                && let Ok(results) =
                    tokio::task::spawn_blocking(move || pharos_txpool::recover_batch(&raws)).await
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
                        req.extensions_mut().insert(PreRecovered(r));
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
