//! `SubtensorChain`'s reads against an in-memory node (`mock_node`) that answers the
//! JSON-RPC methods a Subtensor node answers, from storage laid out with the recorded
//! runtime metadata (keys as checked against the Python SDK in `tests/calls.rs`). Every request is counted: the
//! metagraph, endpoints and commitments take a fixed number of round trips whatever the
//! subnet's size.

mod mock_node;

use std::collections::BTreeMap;
use std::sync::Arc;

use grail_chain::subtensor::{storage_key, SubtensorChain};
use grail_chain::{Chain, ChainError, Commitment, Endpoint};
use grail_proto::Hotkey;
use mock_node::{metadata, MockNode};
use subxt::dynamic::Value;
use subxt::ext::codec::{Compact, Encode};

const NETUID: u16 = 81;

fn hotkey(uid: u16) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..2].copy_from_slice(&uid.to_le_bytes());
    k[31] = 0x5a;
    k
}

fn u16v(v: u16) -> Value {
    Value::u128(v.into())
}

/// A subnet of `n` neurons: even uids hold validator permits; uid `i` has stake
/// `1000 · i`, except uid 1 which has no stake entry (stake 0). Axons: uid 0 at
/// 203.0.113.7:8080, uid 2 reset (placeholder); commitments for uid 1. Subnet 82 has an
/// entry of each kind too, which must not show up.
fn subnet(n: u16) -> MockNode {
    let m = metadata();
    let key =
        |entry: &str, keys: Vec<Value>| storage_key(&m, "SubtensorModule", entry, keys).unwrap();
    let mut storage = BTreeMap::new();
    for uid in 0..n {
        let hk = hotkey(uid);
        storage.insert(key("Keys", vec![u16v(NETUID), u16v(uid)]), hk.to_vec());
        if uid != 1 {
            storage.insert(
                key("TotalHotkeyStake", vec![Value::from_bytes(hk)]),
                (1000 * u64::from(uid)).encode(),
            );
        }
    }
    let permits: Vec<bool> = (0..n).map(|uid| uid % 2 == 0).collect();
    storage.insert(key("ValidatorPermit", vec![u16v(NETUID)]), permits.encode());
    // AxonInfo { block, version, ip, port, ip_type, protocol, placeholder1, placeholder2 }.
    let axon =
        |ip: u128, port: u16, ip_type: u8| (5u64, 3u32, ip, port, ip_type, 4u8, 0u8, 0u8).encode();
    storage.insert(
        key("Axons", vec![u16v(NETUID), Value::from_bytes(hotkey(0))]),
        axon(0xcb00_7107, 8080, 4),
    );
    storage.insert(
        key("Axons", vec![u16v(NETUID), Value::from_bytes(hotkey(2))]),
        axon(0, 1, 4),
    );
    storage.insert(
        key("Axons", vec![u16v(82), Value::from_bytes(hotkey(4))]),
        axon(0x0a00_0001, 80, 4),
    );
    storage.insert(key("Keys", vec![u16v(82), u16v(0)]), hotkey(999).to_vec());
    // Registration { deposit: u64, block: u32, info: { fields: [Raw5(b"hello")] } }.
    let registration = |bytes: &[u8]| {
        let mut v = (0u64, 77u32, Compact(1u32)).encode();
        v.push(u8::try_from(bytes.len() + 1).unwrap());
        v.extend_from_slice(bytes);
        v
    };
    let commitment_key = |netuid: u16, hk: [u8; 32]| {
        storage_key(
            &m,
            "Commitments",
            "CommitmentOf",
            vec![u16v(netuid), Value::from_bytes(hk)],
        )
        .unwrap()
    };
    storage.insert(commitment_key(NETUID, hotkey(1)), registration(b"hello"));
    storage.insert(commitment_key(82, hotkey(3)), registration(b"other"));
    storage.insert(
        key("Weights", vec![u16v(NETUID), u16v(0)]),
        vec![(1u16, 65535u16), (3, 12)].encode(),
    );
    storage.insert(
        key("CommitRevealWeightsEnabled", vec![u16v(NETUID)]),
        true.encode(),
    );
    storage.insert(key("WeightsVersionKey", vec![u16v(NETUID)]), 3u64.encode());
    MockNode::new(storage)
}

fn chain_on(node: Arc<MockNode>) -> SubtensorChain {
    mock_node::chain_on(node, NETUID)
}

#[tokio::test]
async fn the_metagraph_is_read_in_four_round_trips() {
    let node = Arc::new(subnet(5));
    let chain = chain_on(node.clone());
    let mg = chain.metagraph().await.unwrap();
    assert_eq!(
        node.take_calls(),
        [
            "chain_getFinalizedHead",
            "state_getKeysPaged",
            "state_queryStorageAt",
            "state_queryStorageAt"
        ]
    );
    assert_eq!(mg.netuid, NETUID);
    let uids: Vec<u16> = mg.neurons.iter().map(|n| n.uid).collect();
    assert_eq!(uids, [0, 1, 2, 3, 4]);
    for n in &mg.neurons {
        assert_eq!(n.hotkey, Hotkey(hotkey(n.uid)));
        assert_eq!(n.validator_permit, n.uid % 2 == 0, "uid {}", n.uid);
        let stake = if n.uid == 1 {
            0
        } else {
            1000 * u64::from(n.uid)
        };
        assert_eq!(n.stake, stake, "uid {}", n.uid);
    }
    // A subnet of 1 500: two pages of keys, and values in requests of 1 000 keys.
    let node = Arc::new(subnet(1500));
    let mg = chain_on(node.clone()).metagraph().await.unwrap();
    assert_eq!(mg.neurons.len(), 1500);
    assert_eq!(mg.neurons[1499].hotkey, Hotkey(hotkey(1499)));
    assert!(mg.neurons[1498].validator_permit && !mg.neurons[1499].validator_permit);
    assert_eq!(mg.neurons[1499].stake, 1_499_000);
    let calls = node.take_calls();
    assert_eq!(calls.len(), 1 + 2 + 2 + 2, "{calls:?}");
}

#[tokio::test]
async fn endpoints_commitments_weights_and_rules_are_batched_reads() {
    let node = Arc::new(subnet(5));
    let chain = chain_on(node.clone());

    let endpoints = chain.endpoints().await.unwrap();
    assert_eq!(node.count(), 3, "{:?}", node.take_calls());
    node.take_calls();
    // Subnet 82's axon and uid 2's reset placeholder are not endpoints.
    assert_eq!(
        endpoints,
        BTreeMap::from([(
            Hotkey(hotkey(0)),
            Endpoint {
                addr: "203.0.113.7:8080".parse().unwrap(),
                version: 3
            }
        )])
    );

    let commitments = chain.commitments().await.unwrap();
    assert_eq!(node.take_calls().len(), 3);
    assert_eq!(
        commitments,
        BTreeMap::from([(
            Hotkey(hotkey(1)),
            Commitment::new(b"hello".to_vec()).unwrap()
        )])
    );

    assert_eq!(chain.weights(0).await.unwrap(), vec![(1, 65535), (3, 12)]);
    assert!(chain.weights(4).await.unwrap().is_empty());
    assert_eq!(node.take_calls().len(), 4);

    let rules = chain.weights_rules().await.unwrap();
    assert!(rules.commit_reveal);
    assert_eq!(rules.version_key, 3);
    assert_eq!(node.take_calls().len(), 2);
}

#[tokio::test]
async fn malformed_chain_data_is_a_typed_error() {
    let m = metadata();
    let node = subnet(3);
    // A hotkey of 31 bytes.
    node.insert(
        storage_key(&m, "SubtensorModule", "Keys", vec![u16v(NETUID), u16v(1)]).unwrap(),
        vec![7; 31],
    );
    let chain = chain_on(Arc::new(node));
    let err = chain.metagraph().await.unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Undecodable { .. } | ChainError::UnexpectedShape { .. }
        ),
        "{err}"
    );
    // A weights entry that is not a list of pairs.
    let node = subnet(3);
    node.insert(
        storage_key(
            &m,
            "SubtensorModule",
            "Weights",
            vec![u16v(NETUID), u16v(0)],
        )
        .unwrap(),
        vec![0xff],
    );
    assert!(chain_on(Arc::new(node)).weights(0).await.is_err());
    // An empty subnet is an empty metagraph; a request the node fails is an RPC error.
    let node = Arc::new(MockNode::default());
    let chain = chain_on(node.clone());
    assert!(chain.metagraph().await.unwrap().neurons.is_empty());
    node.fail("state_getKeysPaged");
    let err = chain.metagraph().await.unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
}
