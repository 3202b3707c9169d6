//! The node's RPC methods driven in-process (no sockets): state changes through real blocks, bad
//! parameters, limits, and a property test that feeds every method arbitrary JSON.

use std::sync::Arc;

use alloy_primitives::{Address, U256};
use jsonrpsee::RpcModule;
use pharos_executor::{CodeCache, SequentialExecutor};
use pharos_node::Producer;
use pharos_primitives::ChainSpec;
use pharos_rpc::{RpcConfig, RpcContext};
use pharos_storage::Store;
use pharos_txpool::{PoolConfig, TxPool};
use pharos_workload::{TxBuilder, Wallet, raw};
use proptest::prelude::*;
use serde_json::{Value, json};

struct Harness {
    _dir: tempfile::TempDir,
    producer: Producer,
    module: RpcModule<Arc<RpcContext>>,
}

fn harness(config: RpcConfig) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = Arc::new(ChainSpec::dev(1337).expect("spec"));
    let store = Arc::new(Store::open(&dir.path().join("db"), &spec).expect("store"));
    let pool = Arc::new(TxPool::new(PoolConfig::new(1337, 1_000_000_000)));
    let codes = Arc::new(CodeCache::default());
    let (blocks, _) = tokio::sync::broadcast::channel(16);
    let wallets = pharos_primitives::dev_accounts()
        .expect("dev accounts")
        .iter()
        .take(10)
        .map(|(_, k)| Wallet::from_key(*k).expect("key"))
        .collect();
    let ctx = Arc::new(RpcContext::new(
        store.clone(),
        pool.clone(),
        spec.clone(),
        codes.clone(),
        blocks.clone(),
        wallets,
        config,
    ));
    let producer = Producer::new(
        store,
        pool,
        Arc::new(SequentialExecutor::new(1337, codes)),
        spec,
        Address::repeat_byte(0xc0),
        10_000,
        blocks,
        Arc::default(),
    );
    Harness {
        _dir: dir,
        producer,
        module: pharos_rpc::build_module(ctx).expect("module"),
    }
}

impl Harness {
    async fn raw(&self, request: &str) -> Value {
        let (response, _) = self
            .module
            .raw_json_request(request, 1)
            .await
            .expect("raw request");
        serde_json::from_str(response.get()).expect("response is JSON")
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, (i64, String)> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response = self.raw(&request.to_string()).await;
        match response.get("error") {
            Some(e) => Err((
                e["code"].as_i64().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )),
            None => Ok(response["result"].clone()),
        }
    }
}

fn dev_wallet(i: usize) -> Wallet {
    Wallet::from_key(pharos_primitives::dev_accounts().expect("dev")[i].1).expect("key")
}

#[tokio::test]
async fn transactions_flow_through_blocks_to_receipts_and_state() {
    let h = harness(RpcConfig::default());
    let alice = dev_wallet(0);
    let bob = Address::repeat_byte(0xb0);
    let builder = TxBuilder::new(1337);
    let mut hashes = Vec::new();
    for nonce in 0..3 {
        let tx = alice.sign(builder.transfer(nonce, bob, U256::from(1000)));
        let hash = h
            .call("eth_sendRawTransaction", json!([raw(&tx)]))
            .await
            .expect("accepted");
        hashes.push(hash);
    }
    assert_eq!(
        h.call(
            "eth_getTransactionCount",
            json!([alice.address(), "pending"])
        )
        .await
        .unwrap(),
        json!("0x3")
    );
    assert_eq!(
        h.call(
            "eth_getTransactionCount",
            json!([alice.address(), "latest"])
        )
        .await
        .unwrap(),
        json!("0x0")
    );
    let pending = h
        .call("eth_getTransactionByHash", json!([hashes[0]]))
        .await
        .unwrap();
    assert_eq!(pending["blockNumber"], Value::Null);

    let block = h.producer.produce().expect("block");
    assert_eq!(block.block.body.len(), 3);
    assert_eq!(
        h.call("eth_blockNumber", json!([])).await.unwrap(),
        json!("0x1")
    );
    let receipt = h
        .call("eth_getTransactionReceipt", json!([hashes[2]]))
        .await
        .unwrap();
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(receipt["gasUsed"], json!("0x5208"));
    assert_eq!(receipt["cumulativeGasUsed"], json!("0xf618"));
    assert_eq!(receipt["transactionIndex"], json!("0x2"));
    assert_eq!(
        h.call("eth_getBalance", json!([bob, "latest"]))
            .await
            .unwrap(),
        json!("0xbb8")
    );
    let b = h
        .call("eth_getBlockByNumber", json!(["0x1", true]))
        .await
        .unwrap();
    assert_eq!(b["transactions"].as_array().map(Vec::len), Some(3));
    assert_eq!(b["stateRoot"], json!(block.block.header.state_root));
    // The coinbase earned the tips; the base fee was burned.
    let coinbase = h
        .call(
            "eth_getBalance",
            json!([Address::repeat_byte(0xc0), "latest"]),
        )
        .await
        .unwrap();
    assert_eq!(
        coinbase,
        json!(format!("{:#x}", 3 * 21_000 * 1_000_000_000u64))
    );
    // Historical state is refused clearly; the head by number and by hash is served.
    let err = h
        .call("eth_getBalance", json!([bob, "0x0"]))
        .await
        .unwrap_err();
    assert_eq!(err.0, -32000);
    assert!(err.1.contains("historical state"), "{}", err.1);
    let by_hash = h
        .call(
            "eth_getBalance",
            json!([bob, {"blockHash": block.block.hash}]),
        )
        .await
        .unwrap();
    assert_eq!(by_hash, json!("0xbb8"));
}

#[tokio::test]
async fn dev_send_transaction_and_filters() {
    let h = harness(RpcConfig::default());
    let filter = h.call("eth_newBlockFilter", json!([])).await.unwrap();
    let pending_filter = h
        .call("eth_newPendingTransactionFilter", json!([]))
        .await
        .unwrap();
    let from = dev_wallet(1).address();
    let hash = h
        .call(
            "eth_sendTransaction",
            json!([{"from": from, "to": Address::repeat_byte(7), "value": "0x10"}]),
        )
        .await
        .expect("dev account can send");
    let pending = h
        .call("eth_getFilterChanges", json!([pending_filter]))
        .await
        .unwrap();
    assert_eq!(pending, json!([hash]));
    let block = h.producer.produce().expect("block");
    let changes = h
        .call("eth_getFilterChanges", json!([filter]))
        .await
        .unwrap();
    assert_eq!(changes, json!([block.block.hash]));
    assert_eq!(
        h.call("eth_getFilterChanges", json!([filter]))
            .await
            .unwrap(),
        json!([])
    );
    assert_eq!(
        h.call("eth_uninstallFilter", json!([filter]))
            .await
            .unwrap(),
        json!(true)
    );
    let err = h
        .call("eth_getFilterChanges", json!([filter]))
        .await
        .unwrap_err();
    assert_eq!(err.1, "filter not found");
    let err = h
        .call(
            "eth_sendTransaction",
            json!([{"from": Address::repeat_byte(3), "to": from}]),
        )
        .await
        .unwrap_err();
    assert!(err.1.contains("unknown account"));
}

#[tokio::test]
async fn log_range_limit_is_enforced() {
    let h = harness(RpcConfig {
        max_block_range: 2,
        ..RpcConfig::default()
    });
    for _ in 0..4 {
        h.producer.produce().expect("block");
    }
    let err = h
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "0x4"}]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.0, -32005);
    assert!(err.1.contains("max block range 2"), "{}", err.1);
    assert_eq!(
        h.call(
            "eth_getLogs",
            json!([{"fromBlock": "0x3", "toBlock": "latest"}])
        )
        .await
        .unwrap(),
        json!([])
    );
}

#[tokio::test]
async fn calls_estimates_and_fee_methods_answer() {
    let h = harness(RpcConfig::default());
    h.producer.produce().expect("block");
    let from = dev_wallet(0).address();
    assert_eq!(
        h.call(
            "eth_estimateGas",
            json!([{"from": from, "to": Address::repeat_byte(9), "value": "0x1"}])
        )
        .await
        .unwrap(),
        json!("0x5208")
    );
    // A create whose init code is INVALID fails the estimate with a clear message.
    let err = h
        .call("eth_estimateGas", json!([{"from": from, "data": "0xfe"}]))
        .await
        .unwrap_err();
    assert_eq!(err.0, -32000);
    // Returning 32 bytes from a call with state override code.
    let code = "0x602a60005260206000f3";
    let out = h
        .call(
            "eth_call",
            json!([{"to": Address::repeat_byte(5)}, "latest", {Address::repeat_byte(5).to_string(): {"code": code}}]),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        json!("0x000000000000000000000000000000000000000000000000000000000000002a")
    );
    let history = h
        .call("eth_feeHistory", json!(["0x2", "latest", [50]]))
        .await
        .unwrap();
    assert_eq!(history["baseFeePerGas"].as_array().map(Vec::len), Some(3));
    assert!(h.call("eth_gasPrice", json!([])).await.is_ok());
    assert!(h.call("eth_maxPriorityFeePerGas", json!([])).await.is_ok());
}

const METHODS: &[&str] = &[
    "eth_chainId",
    "eth_blockNumber",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_call",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_feeHistory",
    "eth_sendRawTransaction",
    "eth_sendTransaction",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getLogs",
    "eth_getBlockReceipts",
    "eth_newFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_uninstallFilter",
    "web3_sha3",
    "txpool_content",
    "no_such_method",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[0-9a-fx]{0,70}".prop_map(|s| json!(format!("0x{s}"))),
        ".{0,20}".prop_map(Value::String),
        Just(json!("latest")),
        Just(json!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("to".to_string()),
                    Just("from".to_string()),
                    Just("data".to_string()),
                    Just("fromBlock".to_string()),
                    Just("address".to_string()),
                    Just("topics".to_string()),
                    ".{0,6}".prop_map(|s| s)
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn every_method_answers_arbitrary_params_without_panicking(
        method in proptest::sample::select(METHODS),
        params in proptest::collection::vec(arb_json(), 0..4),
        garbage in proptest::option::of(".{0,40}"),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let h = harness(RpcConfig::default());
        rt.block_on(async {
            let request = match &garbage {
                Some(g) => format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"{method}\",\"params\":{g}"),
                None => json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
            };
            if let Ok((response, _)) = h.module.raw_json_request(&request, 1).await {
                let v: Value = serde_json::from_str(response.get()).expect("answer is JSON");
                prop_assert!(v.get("result").is_some() || v.get("error").is_some());
            }
            Ok(())
        })?;
    }
}
