//! An in-memory Subtensor node for tests: it answers the JSON-RPC methods `SubtensorChain`
//! and subxt use (storage reads, headers, blocks, the account nonce, and extrinsic
//! submission with a status subscription) from storage laid out with the recorded runtime
//! metadata, counts every request, and hands submitted extrinsics to a test-defined
//! runtime.

#![allow(dead_code)] // each test file uses part of it

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use grail_chain::subtensor::{decode_metadata, SubtensorChain};
use serde_json::{json, Value as Json};
use subxt::backend::rpc::{RawRpcFuture, RawRpcSubscription, RawValue, RpcClient, RpcClientT};
use subxt::client::RuntimeVersion;
use subxt::Metadata;

pub const METADATA: &[u8] = include_bytes!("../fixtures/subtensor-metadata-2024-09.scale");
/// The hash of every block of the mock chain.
pub const HEAD: [u8; 32] = [0xbb; 32];

pub fn metadata() -> Metadata {
    decode_metadata(METADATA).unwrap()
}

/// A `SubtensorChain` for `netuid` over `node`, with the recorded metadata (spec and
/// transaction version 1).
pub fn chain_on(node: Arc<MockNode>, netuid: u16) -> SubtensorChain {
    SubtensorChain::with_metadata(
        RpcClient::new(node),
        metadata(),
        [0x2f; 32],
        RuntimeVersion {
            spec_version: 1,
            transaction_version: 1,
        },
        netuid,
    )
    .unwrap()
}

/// Applies a submitted extrinsic to the node (`Err`: the node reports it invalid).
pub type Runtime = Box<dyn Fn(&MockNode, &[u8]) -> Result<(), String> + Send + Sync>;

/// Storage, a block number, a log of the methods called, and a runtime for extrinsics.
#[derive(Default)]
pub struct MockNode {
    pub storage: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    pub block: AtomicU64,
    calls: Mutex<Vec<String>>,
    runtime: Option<Runtime>,
    last_extrinsic: Mutex<Vec<u8>>,
    failing: Mutex<Vec<String>>,
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn unhex(v: &Json) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

impl MockNode {
    pub fn new(storage: BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        Self {
            storage: Mutex::new(storage),
            ..Default::default()
        }
    }

    pub fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    pub fn set_block(&self, block: u64) {
        self.block.store(block, Ordering::SeqCst);
    }

    pub fn block(&self) -> u64 {
        self.block.load(Ordering::SeqCst)
    }

    pub fn insert(&self, key: Vec<u8>, value: Vec<u8>) {
        self.storage.lock().unwrap().insert(key, value);
    }

    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.storage.lock().unwrap().get(key).cloned()
    }

    /// Makes `method` fail from now on.
    pub fn fail(&self, method: &str) {
        self.failing.lock().unwrap().push(method.to_string());
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn header(&self) -> Json {
        json!({
            "parentHash": hex0x(&[0xaa; 32]),
            "number": format!("0x{:x}", self.block()),
            "stateRoot": hex0x(&[0; 32]),
            "extrinsicsRoot": hex0x(&[0; 32]),
            "digest": { "logs": [] },
        })
    }

    fn answer(&self, method: &str, params: &[Json]) -> Result<Json, String> {
        self.calls.lock().unwrap().push(method.to_string());
        if self.failing.lock().unwrap().iter().any(|m| m == method) {
            return Err(format!("{method} failed"));
        }
        let storage = self.storage.lock().unwrap();
        match method {
            "chain_getFinalizedHead" | "chain_getBlockHash" => Ok(json!(hex0x(&HEAD))),
            "chain_getHeader" => Ok(self.header()),
            "chain_getBlock" => Ok(json!({
                "block": {
                    "header": self.header(),
                    "extrinsics": [hex0x(&self.last_extrinsic.lock().unwrap())],
                },
                "justifications": null,
            })),
            // AccountNonceApi_account_nonce: a u32.
            "state_call" => Ok(json!(hex0x(&7u32.to_le_bytes()))),
            "state_getStorage" => Ok(storage
                .get(&unhex(&params[0]))
                .map_or(Json::Null, |v| json!(hex0x(v)))),
            "state_getKeysPaged" => {
                let prefix = unhex(&params[0]);
                let count = params[1].as_u64().unwrap() as usize;
                let start = params.get(2).filter(|s| !s.is_null()).map(unhex);
                let keys: Vec<Json> = storage
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .filter(|k| start.as_ref().is_none_or(|s| *k > s))
                    .take(count)
                    .map(|k| json!(hex0x(k)))
                    .collect();
                Ok(Json::Array(keys))
            }
            "state_queryStorageAt" => {
                let changes: Vec<Json> = params[0]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| json!([k, storage.get(&unhex(k)).map(|v| hex0x(v))]))
                    .collect();
                Ok(json!([{ "block": hex0x(&HEAD), "changes": changes }]))
            }
            other => Err(format!("the mock node does not answer {other}")),
        }
    }

    /// Applies an extrinsic; the statuses a node would send.
    fn submit(&self, extrinsic: Vec<u8>) -> Vec<Json> {
        let verdict = match &self.runtime {
            Some(runtime) => runtime(self, &extrinsic),
            None => Err("the mock node has no runtime".into()),
        };
        *self.last_extrinsic.lock().unwrap() = extrinsic;
        match verdict {
            Ok(()) => vec![json!("ready"), json!({ "finalized": hex0x(&HEAD) })],
            Err(_) => vec![json!("ready"), json!("invalid")],
        }
    }
}

impl RpcClientT for MockNode {
    fn request_raw<'a>(
        &'a self,
        method: &'a str,
        params: Option<Box<RawValue>>,
    ) -> RawRpcFuture<'a, Box<RawValue>> {
        Box::pin(async move {
            let params: Vec<Json> = params
                .map(|p| serde_json::from_str(p.get()).unwrap())
                .unwrap_or_default();
            let answer = self
                .answer(method, &params)
                .map_err(|e| subxt::ext::subxt_rpcs::Error::Client(e.into()))?;
            Ok(RawValue::from_string(answer.to_string()).unwrap())
        })
    }

    fn subscribe_raw<'a>(
        &'a self,
        sub: &'a str,
        params: Option<Box<RawValue>>,
        _unsub: &'a str,
    ) -> RawRpcFuture<'a, RawRpcSubscription> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(sub.to_string());
            if sub != "author_submitAndWatchExtrinsic" {
                return Err(subxt::ext::subxt_rpcs::Error::Client(
                    format!("the mock node has no subscription {sub}").into(),
                ));
            }
            let params: Vec<Json> = serde_json::from_str(params.unwrap().get()).unwrap();
            let statuses = self.submit(unhex(&params[0]));
            let items: Vec<Result<Box<RawValue>, subxt::ext::subxt_rpcs::Error>> = statuses
                .into_iter()
                .map(|s| Ok(RawValue::from_string(s.to_string()).unwrap()))
                .collect();
            Ok(RawRpcSubscription {
                stream: Box::pin(subxt::ext::futures::stream::iter(items)),
                id: Some("1".into()),
            })
        })
    }
}
