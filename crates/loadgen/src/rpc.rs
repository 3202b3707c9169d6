//! A small JSON-RPC client: the handful of calls a load run needs, batches included.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U64, U256};
use jsonrpsee_core::{
    client::ClientT,
    params::{ArrayParams, BatchRequestBuilder},
};
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use serde_json::Value;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum RpcClientError {
    /// Transport or protocol failure, or an error answer.
    #[error("rpc: {0}")]
    Call(String),
    /// An answer of the wrong shape.
    #[error("unexpected answer to {0}: {1}")]
    Shape(&'static str, String),
}

impl From<jsonrpsee_core::ClientError> for RpcClientError {
    fn from(e: jsonrpsee_core::ClientError) -> Self {
        Self::Call(e.to_string())
    }
}

impl From<serde_json::Error> for RpcClientError {
    fn from(e: serde_json::Error) -> Self {
        Self::Call(e.to_string())
    }
}

/// JSON-RPC over HTTP to one node.
#[derive(Debug)]
pub struct RpcClient {
    http: HttpClient,
}

fn params<T: serde::Serialize>(items: &[T]) -> Result<ArrayParams, RpcClientError> {
    let mut p = ArrayParams::new();
    for i in items {
        p.insert(i)?;
    }
    Ok(p)
}

impl RpcClient {
    /// A client for `url`.
    pub fn new(url: &str) -> Result<Self, RpcClientError> {
        let http = HttpClientBuilder::default()
            .max_request_size(100 * 1024 * 1024)
            .max_response_size(200 * 1024 * 1024)
            .request_timeout(Duration::from_secs(120))
            .build(url)
            .map_err(|e| RpcClientError::Call(format!("{url}: {e}")))?;
        Ok(Self { http })
    }

    async fn call(&self, method: &str, p: ArrayParams) -> Result<Value, RpcClientError> {
        Ok(self.http.request::<Value, _>(method, p).await?)
    }

    /// `web3_clientVersion`.
    pub async fn client_version(&self) -> Result<String, RpcClientError> {
        let v = self.call("web3_clientVersion", ArrayParams::new()).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, RpcClientError> {
        let v: U64 = serde_json::from_value(self.call("eth_chainId", ArrayParams::new()).await?)?;
        Ok(v.to())
    }

    /// `eth_gasPrice`.
    pub async fn gas_price(&self) -> Result<u128, RpcClientError> {
        let v: U256 = serde_json::from_value(self.call("eth_gasPrice", ArrayParams::new()).await?)?;
        Ok(v.saturating_to())
    }

    /// `eth_blockNumber`.
    pub async fn block_number(&self) -> Result<u64, RpcClientError> {
        let v: U64 =
            serde_json::from_value(self.call("eth_blockNumber", ArrayParams::new()).await?)?;
        Ok(v.to())
    }

    /// Pending nonce of `address`.
    pub async fn nonce(&self, address: Address) -> Result<u64, RpcClientError> {
        let mut p = ArrayParams::new();
        p.insert(address)?;
        p.insert("pending")?;
        let v: U64 = serde_json::from_value(self.call("eth_getTransactionCount", p).await?)?;
        Ok(v.to())
    }

    /// Transaction hashes and gas used of block `number`.
    pub async fn block_tx_hashes(&self, number: u64) -> Result<(Vec<B256>, u64), RpcClientError> {
        let mut p = ArrayParams::new();
        p.insert(U64::from(number))?;
        p.insert(false)?;
        let v = self.call("eth_getBlockByNumber", p).await?;
        if v.is_null() {
            return Ok((Vec::new(), 0));
        }
        let hashes: Vec<B256> = serde_json::from_value(v["transactions"].clone())?;
        let gas: U64 = serde_json::from_value(v["gasUsed"].clone())?;
        Ok((hashes, gas.to()))
    }

    /// Hash and state root of block `number`, if the node has it.
    pub async fn block_roots(&self, number: u64) -> Result<Option<(B256, B256)>, RpcClientError> {
        let mut p = ArrayParams::new();
        p.insert(U64::from(number))?;
        p.insert(false)?;
        let v = self.call("eth_getBlockByNumber", p).await?;
        if v.is_null() {
            return Ok(None);
        }
        let hash: B256 = serde_json::from_value(v["hash"].clone())?;
        let root: B256 = serde_json::from_value(v["stateRoot"].clone())?;
        Ok(Some((hash, root)))
    }

    /// Number of receipts with status 0 in block `number`.
    pub async fn failed_receipts(&self, number: u64) -> Result<usize, RpcClientError> {
        let v = self
            .call("eth_getBlockReceipts", params(&[U64::from(number)])?)
            .await?;
        let receipts = v
            .as_array()
            .ok_or_else(|| RpcClientError::Shape("eth_getBlockReceipts", v.to_string()))?;
        Ok(receipts.iter().filter(|r| r["status"] == "0x0").count())
    }

    /// `eth_getTransactionReceipt` status: `None` while pending.
    pub async fn receipt_status(&self, hash: B256) -> Result<Option<bool>, RpcClientError> {
        let v = self
            .call("eth_getTransactionReceipt", params(&[hash])?)
            .await?;
        if v.is_null() {
            return Ok(None);
        }
        Ok(Some(v["status"] == "0x1"))
    }

    /// Submits raw transactions in one batch; one result per transaction.
    pub async fn send_raw_batch(
        &self,
        raws: &[Bytes],
    ) -> Result<Vec<Result<B256, String>>, RpcClientError> {
        let mut batch = BatchRequestBuilder::new();
        for r in raws {
            batch.insert("eth_sendRawTransaction", params(std::slice::from_ref(r))?)?;
        }
        let response = self.http.batch_request::<B256>(batch).await?;
        Ok(response
            .into_iter()
            .map(|r| r.map_err(|e| e.message().to_string()))
            .collect())
    }

    /// Submits `raws` (in batches) and waits until every one is mined successfully.
    pub async fn submit_and_wait(
        &self,
        raws: &[Bytes],
        batch: usize,
    ) -> Result<(), crate::LoadError> {
        let mut hashes = Vec::with_capacity(raws.len());
        for chunk in raws.chunks(batch.max(1)) {
            for r in self.send_raw_batch(chunk).await? {
                hashes.push(r.map_err(crate::LoadError::Setup)?);
            }
        }
        let started = std::time::Instant::now();
        for h in hashes.iter().rev() {
            loop {
                match self.receipt_status(*h).await? {
                    Some(true) => break,
                    Some(false) => {
                        return Err(crate::LoadError::Setup(format!("transaction {h} reverted")));
                    }
                    None if started.elapsed() > Duration::from_secs(120) => {
                        return Err(crate::LoadError::Setup(format!(
                            "transaction {h} not mined within 120 s"
                        )));
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        Ok(())
    }
}
