//! `SubtensorChain`'s signed submissions against the in-memory node (`mock_node`), whose
//! runtime applies the calls with the rules of the 2024 runtime the recorded metadata
//! describes (opentensor/subtensor at 2024-09-20, `subnets/weights.rs` and `serving.rs`):
//! weights with a version key, hash commit-reveal on `WeightCommitRevealInterval`-block
//! intervals, and `serve_axon`. The extrinsics are signed with `SubtensorConfig`, decoded
//! back with the metadata, and their calls applied to storage the reads then see.

mod mock_node;

use std::sync::{Arc, Mutex};

use grail_chain::subtensor::commit_reveal::CommitRevealError;
use grail_chain::subtensor::config::SubtensorConfig;
use grail_chain::subtensor::{storage_key, SubtensorChain};
use grail_chain::{Chain, ChainError, Endpoint};
use grail_proto::signing::Keypair;
use mock_node::{metadata, MockNode};
use subxt::config::substrate::BlakeTwo256;
use subxt::config::Hasher;
use subxt::dynamic::Value;
use subxt::ext::codec::{Decode, Encode};
use subxt::ext::scale_value::{Composite, Primitive, ValueDef};
use subxt::ext::subxt_core::blocks::Extrinsics;

const NETUID: u16 = 81;
const INTERVAL: u64 = 10;

fn key(entry: &str, keys: Vec<Value>) -> Vec<u8> {
    storage_key(&metadata(), "SubtensorModule", entry, keys).unwrap()
}

fn netuid() -> Value {
    Value::u128(NETUID.into())
}

/// A submitted call as the runtime saw it.
#[derive(Debug, Clone, PartialEq)]
struct Submitted {
    who: [u8; 32],
    call: String,
}

fn field<'a>(fields: &'a Composite<u32>, name: &str) -> &'a Value<u32> {
    match fields {
        Composite::Named(f) => &f.iter().find(|(n, _)| n == name).unwrap().1,
        Composite::Unnamed(_) => panic!("unnamed call fields"),
    }
}

fn number(v: &Value<u32>) -> u128 {
    match &v.value {
        ValueDef::Primitive(Primitive::U128(n)) => *n,
        ValueDef::Composite(c) if c.len() == 1 => number(c.values().next().unwrap()),
        other => panic!("not a number: {other:?}"),
    }
}

fn numbers(v: &Value<u32>) -> Vec<u16> {
    match &v.value {
        ValueDef::Composite(c) => c.values().map(|x| number(x) as u16).collect(),
        other => panic!("not a list: {other:?}"),
    }
}

fn hash(v: &Value<u32>) -> [u8; 32] {
    match &v.value {
        ValueDef::Composite(c) if c.len() == 1 => hash(c.values().next().unwrap()),
        ValueDef::Composite(c) => c
            .values()
            .map(|x| number(x) as u8)
            .collect::<Vec<u8>>()
            .try_into()
            .unwrap(),
        other => panic!("not a hash: {other:?}"),
    }
}

/// The 2024 runtime's rules for the calls grail makes, validator at uid 0.
fn runtime(log: Arc<Mutex<Vec<Submitted>>>) -> mock_node::Runtime {
    Box::new(move |node: &MockNode, extrinsic: &[u8]| {
        let decoded =
            Extrinsics::<SubtensorConfig>::decode_from(vec![extrinsic.to_vec()], metadata())
                .map_err(|e| e.to_string())?;
        let ext = decoded.iter().next().ok_or("no extrinsic")?;
        let who: [u8; 32] = ext.address_bytes().ok_or("unsigned")?[1..33]
            .try_into()
            .unwrap();
        let call = ext.variant_name().map_err(|e| e.to_string())?.to_string();
        assert_eq!(ext.pallet_name().unwrap(), "SubtensorModule");
        let fields = ext.field_values().map_err(|e| e.to_string())?;
        log.lock().unwrap().push(Submitted {
            who,
            call: call.clone(),
        });
        if node.get(format!("mock:refuse:{call}").as_bytes()).is_some() {
            return Err(format!("{call} refused"));
        }
        assert_eq!(number(field(&fields, "netuid")), NETUID.into());
        let enabled = node
            .get(&key("CommitRevealWeightsEnabled", vec![netuid()]))
            .is_some_and(|b| b == [1]);
        let required = node
            .get(&key("WeightsVersionKey", vec![netuid()]))
            .map_or(0, |b| u64::decode(&mut &b[..]).unwrap());
        let block = node.block();
        let commit_key = key("WeightCommits", vec![netuid(), Value::from_bytes(who)]);
        let set = |uids: Vec<u16>, values: Vec<u16>, version_key: u64| {
            if version_key < required {
                return Err("IncorrectWeightVersionKey".to_string());
            }
            let pairs: Vec<(u16, u16)> = uids.into_iter().zip(values).collect();
            node.insert(
                key("Weights", vec![netuid(), Value::u128(0)]),
                pairs.encode(),
            );
            Ok(())
        };
        match call.as_str() {
            "set_weights" if enabled => Err("CommitRevealEnabled".into()),
            "set_weights" => set(
                numbers(field(&fields, "dests")),
                numbers(field(&fields, "weights")),
                number(field(&fields, "version_key")) as u64,
            ),
            "commit_weights" => {
                if !enabled {
                    return Err("CommitRevealDisabled".into());
                }
                if let Some(existing) = node.get(&commit_key) {
                    let (_, at) = <([u8; 32], u64)>::decode(&mut &existing[..]).unwrap();
                    let start = block - block % INTERVAL;
                    if !(block <= start + INTERVAL && start > at - at % INTERVAL) {
                        return Err("WeightsCommitNotAllowed".into());
                    }
                }
                let commit = hash(field(&fields, "commit_hash"));
                node.insert(commit_key, (commit, block).encode());
                Ok(())
            }
            "reveal_weights" => {
                if !enabled {
                    return Err("CommitRevealDisabled".into());
                }
                let existing = node.get(&commit_key).ok_or("NoWeightsCommitFound")?;
                let (committed, at) = <([u8; 32], u64)>::decode(&mut &existing[..]).unwrap();
                let reveal_start = at - at % INTERVAL + INTERVAL;
                if !(block >= reveal_start && block < reveal_start + INTERVAL) {
                    return Err("InvalidRevealCommitTempo".into());
                }
                let (uids, values, salt) = (
                    numbers(field(&fields, "uids")),
                    numbers(field(&fields, "values")),
                    numbers(field(&fields, "salt")),
                );
                let version_key = number(field(&fields, "version_key")) as u64;
                let preimage = (who, NETUID, &uids, &values, &salt, version_key).encode();
                if BlakeTwo256.hash(&preimage).0 != committed {
                    return Err("InvalidRevealCommitHashNotMatch".into());
                }
                set(uids, values, version_key)
            }
            "serve_axon" => {
                let ip = number(field(&fields, "ip"));
                let ip_type = number(field(&fields, "ip_type")) as u8;
                if ip == 0 || (ip_type == 4 && ip == 0x7f00_0001) {
                    return Err("InvalidIpAddress".into());
                }
                let axon = (
                    block,
                    number(field(&fields, "version")) as u32,
                    ip,
                    number(field(&fields, "port")) as u16,
                    ip_type,
                    number(field(&fields, "protocol")) as u8,
                    0u8,
                    0u8,
                );
                node.insert(
                    key("Axons", vec![netuid(), Value::from_bytes(who)]),
                    axon.encode(),
                );
                Ok(())
            }
            other => Err(format!("the mock runtime does not apply {other}")),
        }
    })
}

fn network(validator: &Keypair) -> (Arc<MockNode>, Arc<Mutex<Vec<Submitted>>>, SubtensorChain) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let node = MockNode::default().with_runtime(runtime(log.clone()));
    node.insert(
        key("Keys", vec![netuid(), Value::u128(0)]),
        validator.public().0.to_vec(),
    );
    node.insert(
        key("WeightCommitRevealInterval", vec![netuid()]),
        INTERVAL.encode(),
    );
    node.insert(key("WeightsVersionKey", vec![netuid()]), 3u64.encode());
    let node = Arc::new(node);
    let chain = mock_node::chain_on(node.clone(), NETUID);
    (node, log, chain)
}

fn calls(log: &Mutex<Vec<Submitted>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
        .into_iter()
        .map(|s| s.call)
        .collect()
}

#[tokio::test]
async fn weights_are_set_directly_or_committed_and_revealed_in_the_next_interval() {
    let validator = Keypair::from_seed(&[9; 32]);
    let (node, log, chain) = network(&validator);
    let (w1, w2, w3, w4) = (
        vec![(1, 65535)],
        vec![(1, 100), (2, 65535)],
        vec![(2, 65535)],
        vec![(1, 65535), (2, 65535)],
    );

    // Commit-reveal off: set_weights, visible at once, signed by the validator.
    node.set_block(5);
    chain.set_weights(&validator, &w1, 3).await.unwrap();
    assert_eq!(
        log.lock().unwrap().clone(),
        vec![Submitted {
            who: validator.public().0,
            call: "set_weights".into()
        }]
    );
    log.lock().unwrap().clear();
    assert_eq!(chain.weights(0).await.unwrap(), w1);

    // A version key below the subnet's is refused before anything is submitted.
    let err = chain.set_weights(&validator, &w2, 2).await.unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::VersionKeyTooOld {
                ours: 2,
                required: 3
            }
        ),
        "{err}"
    );
    assert!(calls(&log).is_empty());

    // Commit-reveal on: block 25 commits (revealed in [30, 40)).
    node.insert(
        key("CommitRevealWeightsEnabled", vec![netuid()]),
        true.encode(),
    );
    node.set_block(25);
    chain.set_weights(&validator, &w2, 3).await.unwrap();
    assert_eq!(calls(&log), ["commit_weights"]);
    assert_eq!(chain.weights(0).await.unwrap(), w1, "hidden until revealed");
    // A second commit in the same interval is refused before submitting.
    node.set_block(27);
    let err = chain.set_weights(&validator, &w3, 3).await.unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::CommitReveal(CommitRevealError::IntervalUsed {
                interval: 10,
                committed_at: 25,
                next_block: 30
            })
        ),
        "{err}"
    );
    assert!(calls(&log).is_empty());
    // Block 33: the commit of block 25 is revealed (the runtime checks the hash), then the
    // new weights are committed.
    node.set_block(33);
    chain.set_weights(&validator, &w3, 3).await.unwrap();
    assert_eq!(calls(&log), ["reveal_weights", "commit_weights"]);
    assert_eq!(chain.weights(0).await.unwrap(), w2);
    // Block 45 reveals the commit of block 33.
    node.set_block(45);
    chain.set_weights(&validator, &w4, 3).await.unwrap();
    assert_eq!(calls(&log), ["reveal_weights", "commit_weights"]);
    assert_eq!(chain.weights(0).await.unwrap(), w3);
    // Block 70: the commit of block 45 expired at 60; it is dropped, not revealed.
    node.set_block(70);
    chain.set_weights(&validator, &w1, 3).await.unwrap();
    assert_eq!(calls(&log), ["commit_weights"]);
    assert_eq!(chain.weights(0).await.unwrap(), w3);
    // Block 85 reveals the commit of block 70.
    node.set_block(85);
    chain.set_weights(&validator, &w2, 3).await.unwrap();
    assert_eq!(calls(&log), ["reveal_weights", "commit_weights"]);
    assert_eq!(chain.weights(0).await.unwrap(), w1);
}

#[tokio::test]
async fn calls_the_runtime_refuses_are_transaction_errors() {
    let validator = Keypair::from_seed(&[9; 32]);
    let (node, log, chain) = network(&validator);
    node.set_block(5);
    node.insert(b"mock:refuse:set_weights".to_vec(), vec![1]);
    let err = chain
        .set_weights(&validator, &[(1, 65535)], 3)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Transaction { .. }), "{err}");
    assert_eq!(calls(&log), ["set_weights"]);
    assert!(chain.weights(0).await.unwrap().is_empty());

    // Commit-reveal: a refused reveal is reported, and the new weights are still committed.
    node.insert(
        key("CommitRevealWeightsEnabled", vec![netuid()]),
        true.encode(),
    );
    node.set_block(25);
    chain
        .set_weights(&validator, &[(1, 65535)], 3)
        .await
        .unwrap();
    node.insert(b"mock:refuse:reveal_weights".to_vec(), vec![1]);
    node.set_block(33);
    let err = chain
        .set_weights(&validator, &[(2, 65535)], 3)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Transaction { .. }), "{err}");
    assert_eq!(
        calls(&log),
        ["commit_weights", "reveal_weights", "commit_weights"]
    );
    assert!(chain.weights(0).await.unwrap().is_empty());
}

#[tokio::test]
async fn endpoints_are_published_with_serve_axon() {
    let validator = Keypair::from_seed(&[9; 32]);
    let (node, log, chain) = network(&validator);
    node.set_block(12);
    // Loopback and bind addresses never reach the chain.
    for bad in ["127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080"] {
        let err = chain
            .serve_endpoint(&validator, &Endpoint::new(bad.parse().unwrap()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ChainError::UnpublishableEndpoint { .. }),
            "{bad}: {err}"
        );
    }
    assert!(calls(&log).is_empty());
    for public in ["203.0.113.7:8080", "[2001:db8::1]:443"] {
        let endpoint = Endpoint::new(public.parse().unwrap());
        chain.serve_endpoint(&validator, &endpoint).await.unwrap();
        assert_eq!(calls(&log), ["serve_axon"]);
        let published = chain.endpoints().await.unwrap();
        assert_eq!(published.get(&validator.public()), Some(&endpoint));
    }
}
