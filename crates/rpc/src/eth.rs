//! Chain, state, block, transaction and receipt methods; transaction submission.

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256, keccak256};
use alloy_rpc_types_eth::{TransactionReceipt, TransactionRequest};
use jsonrpsee::{RpcModule, types::Params};
use pharos_executor::StateView;
use pharos_primitives::{BlockBody, RecoveredTx};
use pharos_storage::Snapshot;
use serde_json::{Value, json};

use crate::{
    RpcContext,
    convert::{self, TxPosition},
    error::{self, RpcResult, header_not_found, internal, server_error},
};

/// Storage keys one `eth_getProof` call may ask for.
const MAX_PROOF_KEYS: usize = 1024;

impl RpcContext {
    /// A read view of the head.
    pub(crate) fn snapshot(&self) -> RpcResult<Snapshot> {
        self.store.snapshot().map_err(error::storage)
    }

    /// Block number a tag refers to in `snap` (may be above the head for explicit numbers).
    pub(crate) fn tag_number(&self, snap: &Snapshot, tag: BlockNumberOrTag) -> u64 {
        let head = snap.head().header.number;
        match tag {
            BlockNumberOrTag::Latest
            | BlockNumberOrTag::Pending
            | BlockNumberOrTag::Safe
            | BlockNumberOrTag::Finalized => head,
            BlockNumberOrTag::Earliest => 0,
            BlockNumberOrTag::Number(n) => n,
        }
    }

    /// The canonical block number `id` names, if that block exists.
    pub(crate) fn block_number_of(&self, snap: &Snapshot, id: BlockId) -> RpcResult<Option<u64>> {
        match id {
            BlockId::Hash(h) => snap.block_number(h.block_hash).map_err(error::storage),
            BlockId::Number(tag) => {
                let n = self.tag_number(snap, tag);
                Ok((n <= snap.head().header.number).then_some(n))
            }
        }
    }

    /// A view of the state at `id`; this node keeps the head state only.
    pub(crate) fn state_at(&self, id: Option<BlockId>) -> RpcResult<Snapshot> {
        let snap = self.snapshot()?;
        let id = id.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest));
        let number = self
            .block_number_of(&snap, id)?
            .ok_or_else(header_not_found)?;
        let head = snap.head().header.number;
        if number != head {
            return Err(server_error(format!(
                "historical state for block {number} is not available: this node keeps the state of the head block ({head}) only"
            )));
        }
        Ok(snap)
    }

    /// Base fee of the next block.
    pub(crate) fn next_base_fee(&self, snap: &Snapshot) -> u64 {
        self.spec.next_base_fee(&snap.head().header)
    }

    /// Header, hash and body of block `number`.
    pub(crate) fn block_parts(
        &self,
        snap: &Snapshot,
        number: u64,
    ) -> RpcResult<Option<(alloy_consensus::Header, B256, BlockBody)>> {
        let Some(header) = snap.header(number).map_err(error::storage)? else {
            return Ok(None);
        };
        let hash = snap
            .block_hash_of(number)
            .map_err(error::storage)?
            .ok_or_else(|| internal(format!("block {number} has a header but no hash")))?;
        let body = snap
            .body(number)
            .map_err(error::storage)?
            .ok_or_else(|| internal(format!("block {number} has a header but no body")))?;
        Ok(Some((header, hash, body)))
    }

    /// The receipt objects of block `number`.
    pub(crate) fn block_receipts(
        &self,
        snap: &Snapshot,
        number: u64,
    ) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let Some((header, hash, body)) = self.block_parts(snap, number)? else {
            return Ok(None);
        };
        let receipts = snap
            .receipts(number)
            .map_err(error::storage)?
            .ok_or_else(|| internal(format!("block {number} has no receipts")))?;
        Ok(Some(convert::receipts(&header, hash, &body, &receipts)))
    }

    /// Admits a transaction recovered elsewhere; answers its hash.
    pub(crate) fn submit(&self, tx: RecoveredTx) -> RpcResult<B256> {
        let snap = self.snapshot()?;
        let base_fee = self.next_base_fee(&snap);
        self.pool
            .add(tx, &snap, base_fee)
            .map_err(|e| server_error(e.to_string()))
    }
}

fn block_id_param(
    p: &mut jsonrpsee::types::params::ParamsSequence<'_>,
) -> RpcResult<Option<BlockId>> {
    p.optional_next::<BlockId>()
}

fn tx_at(
    ctx: &RpcContext,
    snap: &Snapshot,
    number: u64,
    index: u64,
) -> RpcResult<Option<alloy_rpc_types_eth::Transaction>> {
    let Some((header, hash, body)) = ctx.block_parts(snap, number)? else {
        return Ok(None);
    };
    Ok(body.get(index as usize).map(|tx| {
        convert::transaction(
            tx,
            Some(TxPosition {
                block_hash: hash,
                block_number: number,
                index,
                base_fee: header.base_fee_per_gas.unwrap_or_default(),
                timestamp: header.timestamp,
            }),
        )
    }))
}

fn get_block(ctx: &RpcContext, snap: &Snapshot, id: BlockId, full: bool) -> RpcResult<Value> {
    let Some(number) = ctx.block_number_of(snap, id)? else {
        return Ok(Value::Null);
    };
    match ctx.block_parts(snap, number)? {
        None => Ok(Value::Null),
        Some((header, hash, body)) => {
            serde_json::to_value(convert::block(&header, hash, &body, full)).map_err(internal)
        }
    }
}

fn to_json<T: serde::Serialize>(v: T) -> RpcResult<Value> {
    serde_json::to_value(v).map_err(internal)
}

pub(crate) fn register(m: &mut RpcModule<Arc<RpcContext>>) -> Result<(), crate::RpcError> {
    m.register_method("web3_clientVersion", |_, _, _| {
        RpcResult::Ok(crate::client_version())
    })?;
    m.register_method("web3_sha3", |p: Params, _, _| {
        let data: Bytes = p.one()?;
        RpcResult::Ok(keccak256(&data))
    })?;
    m.register_method("net_version", |_, ctx, _| {
        RpcResult::Ok(ctx.spec.chain_id().to_string())
    })?;
    m.register_method("net_listening", |_, _, _| RpcResult::Ok(true))?;
    m.register_method("net_peerCount", |_, _, _| RpcResult::Ok(U64::ZERO))?;
    m.register_method("eth_chainId", |_, ctx, _| {
        RpcResult::Ok(U64::from(ctx.spec.chain_id()))
    })?;
    m.register_method("eth_blockNumber", |_, ctx, _| {
        RpcResult::Ok(U64::from(ctx.store.head().header.number))
    })?;
    m.register_method("eth_syncing", |_, _, _| RpcResult::Ok(false))?;
    m.register_method("eth_mining", |_, _, _| RpcResult::Ok(false))?;
    m.register_method("eth_hashrate", |_, _, _| RpcResult::Ok(U64::ZERO))?;
    m.register_method("eth_coinbase", |_, ctx, _| {
        RpcResult::Ok(ctx.store.head().header.beneficiary)
    })?;
    m.register_method("eth_accounts", |_, ctx, _| {
        RpcResult::Ok(
            ctx.dev_wallets
                .iter()
                .map(|w| w.address())
                .collect::<Vec<Address>>(),
        )
    })?;

    // State.
    m.register_method("eth_getBalance", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let snap = ctx.state_at(block_id_param(&mut seq)?)?;
        let account = snap.account(address).map_err(internal)?;
        RpcResult::Ok(account.map(|a| a.balance).unwrap_or_default())
    })?;
    m.register_method("eth_getTransactionCount", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let id = block_id_param(&mut seq)?;
        let pending = matches!(id, Some(BlockId::Number(BlockNumberOrTag::Pending)));
        // Read what is executed but not committed before the snapshot: a block committed in
        // between (and dropped from the in-flight set) is then in the snapshot.
        let in_flight = if pending {
            ctx.pool.in_flight_nonce(address)
        } else {
            0
        };
        let snap = ctx.state_at(id)?;
        let nonce = snap
            .account(address)
            .map_err(internal)?
            .map(|a| a.nonce)
            .unwrap_or_default();
        let nonce = if pending {
            ctx.pool.pending_nonce(address, nonce.max(in_flight))
        } else {
            nonce
        };
        RpcResult::Ok(U64::from(nonce))
    })?;
    m.register_method("eth_getCode", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let snap = ctx.state_at(block_id_param(&mut seq)?)?;
        let Some(account) = snap.account(address).map_err(internal)? else {
            return RpcResult::Ok(Bytes::new());
        };
        if !account.has_code() {
            return Ok(Bytes::new());
        }
        Ok(snap
            .code(account.code_hash)
            .map_err(internal)?
            .unwrap_or_default())
    })?;
    m.register_method("eth_getStorageAt", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let slot: U256 = seq.next()?;
        let snap = ctx.state_at(block_id_param(&mut seq)?)?;
        let value = snap.storage(address, slot).map_err(internal)?;
        RpcResult::Ok(B256::from(value))
    })?;
    m.register_blocking_method("eth_getProof", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let keys: Vec<alloy_serde::storage::JsonStorageKey> = seq.next()?;
        if keys.len() > MAX_PROOF_KEYS {
            return Err(error::invalid_params(format!(
                "{} storage keys requested; at most {MAX_PROOF_KEYS} per call",
                keys.len()
            )));
        }
        let id = block_id_param(&mut seq)?;
        let slots: Vec<U256> = keys.iter().map(|k| k.as_b256().into()).collect();
        // The trie proves the head it has merkleized, which can be a block ahead of the head
        // a snapshot saw while a block is being committed: then look again.
        let mut attempt = 0;
        let proof = loop {
            let wanted = ctx.state_at(id)?.head().header.number;
            let proof = ctx.store.proof(address, &slots).map_err(error::storage)?;
            if proof.block == wanted {
                break proof;
            }
            attempt += 1;
            if attempt == 3 {
                return Err(server_error(format!(
                    "block {wanted} is no longer the head (now {}); ask again",
                    proof.block
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        RpcResult::Ok(alloy_rpc_types_eth::EIP1186AccountProofResponse {
            address,
            balance: proof.account.balance,
            code_hash: proof.account.code_hash,
            nonce: proof.account.nonce,
            storage_hash: proof.account.storage_root,
            account_proof: proof.account_proof,
            storage_proof: keys
                .into_iter()
                .zip(proof.storage)
                .map(
                    |(key, (_, value, nodes))| alloy_rpc_types_eth::EIP1186StorageProof {
                        key,
                        value,
                        proof: nodes,
                    },
                )
                .collect(),
        })
    })?;

    // Blocks.
    m.register_method("eth_getBlockByNumber", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let tag: BlockNumberOrTag = seq.next()?;
        let full: bool = seq.optional_next()?.unwrap_or(false);
        let snap = ctx.snapshot()?;
        get_block(ctx, &snap, BlockId::Number(tag), full)
    })?;
    m.register_method("eth_getBlockByHash", |p: Params, ctx, _| {
        let mut seq = p.sequence();
        let hash: B256 = seq.next()?;
        let full: bool = seq.optional_next()?.unwrap_or(false);
        let snap = ctx.snapshot()?;
        get_block(ctx, &snap, BlockId::from(hash), full)
    })?;
    for (name, by_hash) in [
        ("eth_getBlockTransactionCountByNumber", false),
        ("eth_getBlockTransactionCountByHash", true),
    ] {
        m.register_method(name, move |p: Params, ctx, _| {
            let snap = ctx.snapshot()?;
            let id = if by_hash {
                BlockId::from(p.one::<B256>()?)
            } else {
                BlockId::Number(p.one::<BlockNumberOrTag>()?)
            };
            match ctx.block_number_of(&snap, id)? {
                None => RpcResult::Ok(Value::Null),
                Some(n) => {
                    let body = snap.body(n).map_err(error::storage)?.unwrap_or_default();
                    to_json(U64::from(body.len()))
                }
            }
        })?;
    }
    for (name, by_hash) in [
        ("eth_getUncleCountByBlockNumber", false),
        ("eth_getUncleCountByBlockHash", true),
    ] {
        m.register_method(name, move |p: Params, ctx, _| {
            let snap = ctx.snapshot()?;
            let id = if by_hash {
                BlockId::from(p.one::<B256>()?)
            } else {
                BlockId::Number(p.one::<BlockNumberOrTag>()?)
            };
            RpcResult::Ok(match ctx.block_number_of(&snap, id)? {
                None => Value::Null,
                Some(_) => json!("0x0"),
            })
        })?;
    }
    m.register_method("eth_getUncleByBlockNumberAndIndex", |_, _, _| {
        RpcResult::Ok(Value::Null)
    })?;
    m.register_method("eth_getUncleByBlockHashAndIndex", |_, _, _| {
        RpcResult::Ok(Value::Null)
    })?;

    // Transactions.
    m.register_method("eth_getTransactionByHash", |p: Params, ctx, _| {
        let hash: B256 = p.one()?;
        let snap = ctx.snapshot()?;
        if let Some((number, index)) = snap.tx_location(hash).map_err(error::storage)? {
            return to_json(tx_at(ctx, &snap, number, index as u64)?);
        }
        match ctx.pool.get(&hash) {
            Some(tx) => to_json(convert::transaction(&tx, None)),
            None => Ok(Value::Null),
        }
    })?;
    m.register_method("eth_getRawTransactionByHash", |p: Params, ctx, _| {
        let hash: B256 = p.one()?;
        let snap = ctx.snapshot()?;
        if let Some((number, index)) = snap.tx_location(hash).map_err(error::storage)? {
            let body = snap
                .body(number)
                .map_err(error::storage)?
                .unwrap_or_default();
            return to_json(body.get(index as usize).map(|t| t.encoded().clone()));
        }
        to_json(ctx.pool.get(&hash).map(|t| t.encoded().clone()))
    })?;
    m.register_method(
        "eth_getTransactionByBlockNumberAndIndex",
        |p: Params, ctx, _| {
            let mut seq = p.sequence();
            let tag: BlockNumberOrTag = seq.next()?;
            let index: U64 = seq.next()?;
            let snap = ctx.snapshot()?;
            match ctx.block_number_of(&snap, BlockId::Number(tag))? {
                None => RpcResult::Ok(Value::Null),
                Some(n) => to_json(tx_at(ctx, &snap, n, index.to())?),
            }
        },
    )?;
    m.register_method(
        "eth_getTransactionByBlockHashAndIndex",
        |p: Params, ctx, _| {
            let mut seq = p.sequence();
            let hash: B256 = seq.next()?;
            let index: U64 = seq.next()?;
            let snap = ctx.snapshot()?;
            match snap.block_number(hash).map_err(error::storage)? {
                None => RpcResult::Ok(Value::Null),
                Some(n) => to_json(tx_at(ctx, &snap, n, index.to())?),
            }
        },
    )?;
    m.register_method("eth_getTransactionReceipt", |p: Params, ctx, _| {
        let hash: B256 = p.one()?;
        let snap = ctx.snapshot()?;
        let Some((number, index)) = snap.tx_location(hash).map_err(error::storage)? else {
            return RpcResult::Ok(Value::Null);
        };
        let receipts = ctx.block_receipts(&snap, number)?.unwrap_or_default();
        to_json(receipts.into_iter().nth(index as usize))
    })?;
    m.register_method("eth_getBlockReceipts", |p: Params, ctx, _| {
        let id: BlockId = p.one()?;
        let snap = ctx.snapshot()?;
        match ctx.block_number_of(&snap, id)? {
            None => RpcResult::Ok(Value::Null),
            Some(n) => to_json(ctx.block_receipts(&snap, n)?),
        }
    })?;

    // Submission.
    m.register_async_method("eth_sendRawTransaction", |p, ctx, ext| async move {
        let raw: Bytes = p.one()?;
        // In a batch the middleware has already admitted it (with the rest of the batch).
        if let Some(pre) = ext.get::<crate::middleware::PreAdmitted>() {
            return pre.0.clone().map_err(server_error);
        }
        tokio::task::spawn_blocking(move || {
            let tx =
                RecoveredTx::decode_and_recover(&raw).map_err(|e| server_error(e.to_string()))?;
            ctx.submit(tx)
        })
        .await
        .map_err(internal)?
    })?;
    m.register_blocking_method("eth_sendTransaction", |p, ctx, _| {
        let request: TransactionRequest = p.one()?;
        crate::call::send_dev_transaction(&ctx, request)
    })?;

    // Pool.
    m.register_method("txpool_status", |_, ctx, _| {
        let s = ctx.pool.status();
        RpcResult::Ok(json!({
            "pending": U64::from(s.pending),
            "queued": U64::from(s.queued),
        }))
    })?;
    m.register_method("txpool_content", |_, ctx, _| {
        let mut pending = serde_json::Map::new();
        let mut queued = serde_json::Map::new();
        for pharos_txpool::SenderContent {
            address,
            pending: p,
            queued: q,
        } in ctx.pool.content()
        {
            let group = |txs: Vec<Arc<RecoveredTx>>| -> serde_json::Map<String, Value> {
                txs.iter()
                    .map(|t| {
                        (
                            t.nonce().to_string(),
                            serde_json::to_value(convert::transaction(t, None))
                                .unwrap_or(Value::Null),
                        )
                    })
                    .collect()
            };
            if !p.is_empty() {
                pending.insert(address.to_checksum(None), Value::Object(group(p)));
            }
            if !q.is_empty() {
                queued.insert(address.to_checksum(None), Value::Object(group(q)));
            }
        }
        RpcResult::Ok(json!({ "pending": pending, "queued": queued }))
    })?;
    Ok(())
}
