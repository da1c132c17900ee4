//! Subtensor call encoding against real runtime metadata, compared with what the Python
//! `bittensor` SDK produces for the same inputs (tests/vectors/bittensor_calls.json): call
//! data, commit hashes, storage keys and values, and the payload a signer signs.

use grail_chain::subtensor::config::{self, SubtensorConfig};
use grail_chain::subtensor::{
    commit_weights_call, commitment_from_registration, decode_metadata, decode_storage,
    emit_weights, encode_call, endpoint, endpoint_from_axon, reveal_weights_call, serve_axon_call,
    set_commitment_call, set_weights_call, storage_key, weight_commits, weights_commit_hash,
};
use grail_chain::{ChainError, Commitment, Endpoint};
use serde::Deserialize;
use subxt::client::{OfflineClient, RuntimeVersion};
use subxt::dynamic::Value;
use subxt::ext::codec::{Decode, Encode};
use subxt::ext::scale_value::Composite;
use subxt::tx::DynamicPayload;
use subxt::utils::H256;
use subxt::{Metadata, SubstrateConfig};

const METADATA: &[u8] = include_bytes!("fixtures/subtensor-metadata-2024-09.scale");

#[derive(Deserialize)]
struct WeightsCase {
    netuid: u16,
    uids: Vec<u16>,
    weights: Vec<f64>,
    version_key: u64,
    emitted_uids: Vec<u16>,
    emitted_weights: Vec<u16>,
    call_data: String,
}

#[derive(Deserialize)]
struct CommitmentCase {
    netuid: u16,
    fields_hex: Vec<String>,
    call_data: String,
}

#[derive(Deserialize)]
struct AxonCase {
    netuid: u16,
    ip: String,
    port: u16,
    protocol: u8,
    version: u32,
    call_data: String,
}

#[derive(Deserialize)]
struct CommitRevealCase {
    netuid: u16,
    hotkey: String,
    uids: Vec<u16>,
    values: Vec<u16>,
    salt: Vec<u16>,
    version_key: u64,
    commit_hash: String,
    commit_call_data: String,
    reveal_call_data: String,
}

#[derive(Deserialize)]
struct StorageKeyCase {
    pallet: String,
    entry: String,
    params: Vec<(String, serde_json::Value)>,
    key: String,
}

#[derive(Deserialize)]
struct StorageValueCase {
    pallet: String,
    entry: String,
    value: serde_json::Value,
    bytes: String,
}

#[derive(Deserialize)]
struct SignerPayloadCase {
    call_data: String,
    nonce: u64,
    genesis_hash: String,
    payload: String,
}

#[derive(Deserialize)]
struct Vectors {
    signed_extensions: Vec<String>,
    set_weights: Vec<WeightsCase>,
    set_commitment: Vec<CommitmentCase>,
    serve_axon: Vec<AxonCase>,
    commit_reveal: Vec<CommitRevealCase>,
    storage_keys: Vec<StorageKeyCase>,
    storage_values: Vec<StorageValueCase>,
    signer_payloads: Vec<SignerPayloadCase>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("vectors/bittensor_calls.json")).unwrap()
}

#[test]
fn set_weights_matches_the_python_sdk() {
    let metadata = decode_metadata(METADATA).unwrap();
    let v = vectors();
    assert!(v.set_weights.len() >= 6);
    for case in &v.set_weights {
        let emitted = emit_weights(&case.uids, &case.weights).unwrap();
        let (uids, weights): (Vec<u16>, Vec<u16>) = emitted.iter().copied().unzip();
        assert_eq!(uids, case.emitted_uids, "uids for {:?}", case.weights);
        assert_eq!(
            weights, case.emitted_weights,
            "weights for {:?}",
            case.weights
        );
        let call = encode_call(
            &metadata,
            &set_weights_call(case.netuid, &emitted, case.version_key),
        )
        .unwrap();
        assert_eq!(hex::encode(call), case.call_data);
    }
}

#[test]
fn set_commitment_matches_the_python_sdk() {
    let metadata = decode_metadata(METADATA).unwrap();
    let v = vectors();
    let mut single_field = 0;
    for case in &v.set_commitment {
        // The chain (MaxFields = 1) takes one field; grail commits one.
        if case.fields_hex.len() != 1 {
            continue;
        }
        single_field += 1;
        let commitment = Commitment::new(hex::decode(&case.fields_hex[0]).unwrap()).unwrap();
        let call = encode_call(&metadata, &set_commitment_call(case.netuid, &commitment)).unwrap();
        assert_eq!(hex::encode(call), case.call_data);
    }
    assert!(single_field >= 3);
}

#[test]
fn bad_inputs_are_errors() {
    let metadata = decode_metadata(METADATA).unwrap();
    assert!(matches!(
        emit_weights(&[1, 2], &[1.0]),
        Err(ChainError::WeightsLengthMismatch {
            uids: 2,
            weights: 1
        })
    ));
    assert!(matches!(
        emit_weights(&[1, 7], &[1.0, -1.0]),
        Err(ChainError::InvalidWeight { uid: 7, weight }) if weight == -1.0
    ));
    assert!(matches!(
        emit_weights(&[1], &[f64::NAN]),
        Err(ChainError::InvalidWeight { uid: 1, .. })
    ));
    assert_eq!(emit_weights(&[1, 2], &[0.0, 0.0]).unwrap(), vec![]);
    let wrong = subxt::dynamic::tx("SubtensorModule", "no_such_call", Vec::<Value>::new());
    assert!(encode_call(&metadata, &wrong).is_err());
    assert!(decode_metadata(&METADATA[..1000]).is_err());
    assert!(decode_metadata(b"not metadata").is_err());
    assert!(endpoint("finney").unwrap().starts_with("wss://"));
    assert!(endpoint("ws://10.0.0.1:9944").is_ok());
    assert!(matches!(
        endpoint("mainnet"),
        Err(ChainError::UnknownNetwork { network }) if network == "mainnet"
    ));
}

#[test]
fn commitments_are_read_from_registrations() {
    let registration = |field: Value| {
        Value::named_composite(vec![
            ("deposit", Value::u128(0)),
            ("block", Value::u128(1234)),
            (
                "info",
                Value::named_composite(vec![("fields", Value::unnamed_composite(vec![field]))]),
            ),
        ])
    };
    let raw = Value::variant(
        "Raw5",
        Composite::unnamed(vec![Value::from_bytes(b"hello")]),
    );
    assert_eq!(
        commitment_from_registration(&registration(raw)),
        Some(Commitment::new(b"hello".to_vec()).unwrap())
    );
    let hashed = Value::variant(
        "Sha256",
        Composite::unnamed(vec![Value::from_bytes([0u8; 32])]),
    );
    assert_eq!(commitment_from_registration(&registration(hashed)), None);
    assert_eq!(commitment_from_registration(&Value::u128(3)), None);
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[test]
fn serve_axon_matches_the_python_sdk() {
    let metadata = decode_metadata(METADATA).unwrap();
    let v = vectors();
    assert!(v.serve_axon.len() >= 4);
    for case in &v.serve_axon {
        assert_eq!(case.protocol, grail_chain::endpoint::AXON_PROTOCOL);
        let ip: std::net::IpAddr = case.ip.parse().unwrap();
        let endpoint = Endpoint {
            addr: std::net::SocketAddr::new(ip, case.port),
            version: case.version,
        };
        let call = encode_call(&metadata, &serve_axon_call(case.netuid, &endpoint)).unwrap();
        assert_eq!(hex::encode(call), case.call_data, "{}", case.ip);
    }
}

#[test]
fn commit_and_reveal_match_the_python_sdk_and_the_runtime_hash() {
    let metadata = decode_metadata(METADATA).unwrap();
    let v = vectors();
    assert!(v.commit_reveal.len() >= 3);
    for case in &v.commit_reveal {
        let weights: Vec<(u16, u16)> = case
            .uids
            .iter()
            .copied()
            .zip(case.values.iter().copied())
            .collect();
        let hash = weights_commit_hash(
            &hex32(&case.hotkey),
            case.netuid,
            &weights,
            &case.salt,
            case.version_key,
        );
        assert_eq!(hex::encode(hash), case.commit_hash);
        let commit = encode_call(&metadata, &commit_weights_call(case.netuid, hash)).unwrap();
        assert_eq!(hex::encode(commit), case.commit_call_data);
        let reveal = encode_call(
            &metadata,
            &reveal_weights_call(case.netuid, &weights, &case.salt, case.version_key),
        )
        .unwrap();
        assert_eq!(hex::encode(reveal), case.reveal_call_data);
    }
    // Any change to what is hashed changes the hash.
    let case = &v.commit_reveal[0];
    let weights = [(1, 65535), (2, 11)];
    let other = weights_commit_hash(&hex32(&case.hotkey), 81, &weights, &case.salt, 3);
    assert_ne!(hex::encode(other), case.commit_hash);
}

fn key_value(param: &(String, serde_json::Value)) -> Value {
    match param.0.as_str() {
        "u16" => Value::u128(param.1.as_u64().unwrap().into()),
        "account" => Value::from_bytes(hex32(param.1.as_str().unwrap())),
        other => panic!("unknown key type {other}"),
    }
}

#[test]
fn storage_keys_match_the_python_sdk() {
    let metadata = decode_metadata(METADATA).unwrap();
    let v = vectors();
    assert!(v.storage_keys.len() >= 14);
    for case in &v.storage_keys {
        let keys = case.params.iter().map(key_value).collect();
        let key = storage_key(&metadata, &case.pallet, &case.entry, keys).unwrap();
        assert_eq!(
            hex::encode(key),
            case.key,
            "{}::{}",
            case.pallet,
            case.entry
        );
    }
    assert!(storage_key(&metadata, "SubtensorModule", "NoSuchEntry", vec![]).is_err());
}

#[test]
fn storage_values_encoded_by_the_sdk_decode() {
    let metadata = decode_metadata(METADATA).unwrap();
    let v = vectors();
    let decoded = |case: &StorageValueCase| {
        decode_storage(
            &metadata,
            &case.pallet,
            &case.entry,
            &hex::decode(&case.bytes).unwrap(),
        )
        .unwrap()
    };
    let axons: Vec<Option<Endpoint>> = v
        .storage_values
        .iter()
        .filter(|c| c.entry == "Axons")
        .map(|c| endpoint_from_axon(&decoded(c)))
        .collect();
    assert_eq!(
        axons,
        vec![
            Some(Endpoint {
                addr: "203.0.113.7:8080".parse().unwrap(),
                version: 3
            }),
            Some(Endpoint {
                addr: "[2001:db8::1]:443".parse().unwrap(),
                version: 3
            }),
            None, // reset_axon's placeholder names no address
        ]
    );
    for case in &v.storage_values {
        let value = decoded(case);
        match case.entry.as_str() {
            "CommitmentOf" => assert_eq!(
                commitment_from_registration(&value),
                Some(Commitment::new(b"hello".to_vec()).unwrap())
            ),
            "WeightCommits" => {
                assert_eq!(weight_commits(&value), Some(vec![([0xab; 32], 1234)]))
            }
            "Axons" => {} // checked above
            // Plain values: the decoded value is the one the SDK encoded.
            _ => assert_eq!(plain_json(&value), case.value, "{}", case.entry),
        }
        // Trailing bytes are an error, not ignored.
        let mut long = hex::decode(&case.bytes).unwrap();
        long.push(0);
        assert!(decode_storage(&metadata, &case.pallet, &case.entry, &long).is_err());
    }
    // The current runtime's queue of commits: (hash, epoch, block, _).
    let queue = Value::unnamed_composite(vec![
        Value::unnamed_composite(vec![
            Value::from_bytes([1u8; 32]),
            Value::u128(40),
            Value::u128(14_400),
            Value::u128(0),
        ]),
        Value::unnamed_composite(vec![
            Value::from_bytes([2u8; 32]),
            Value::u128(41),
            Value::u128(14_800),
            Value::u128(0),
        ]),
    ]);
    assert_eq!(
        weight_commits(&queue),
        Some(vec![([1; 32], 40), ([2; 32], 41)])
    );
    assert_eq!(weight_commits(&Value::u128(3)), None);
}

/// A decoded plain value as the SDK writes it in JSON (numbers, booleans, lists, account
/// ids as `0x` hex).
fn plain_json(value: &Value<u32>) -> serde_json::Value {
    use subxt::ext::scale_value::{Primitive, ValueDef};
    match &value.value {
        ValueDef::Primitive(Primitive::U128(n)) => serde_json::json!(*n as u64),
        ValueDef::Primitive(Primitive::Bool(b)) => serde_json::json!(*b),
        ValueDef::Composite(c) => {
            let items: Vec<&Value<u32>> = c.values().collect();
            let bytes: Option<Vec<u8>> = match items.as_slice() {
                [inner] if matches!(inner.value, ValueDef::Composite(_)) => {
                    return plain_json(inner);
                }
                _ if items.len() == 32 => items
                    .iter()
                    .map(|v| match v.value {
                        ValueDef::Primitive(Primitive::U128(b)) => u8::try_from(b).ok(),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            };
            match bytes {
                Some(b) => serde_json::json!(format!("0x{}", hex::encode(b))),
                None => serde_json::Value::Array(items.into_iter().map(plain_json).collect()),
            }
        }
        other => panic!("unexpected value {other:?}"),
    }
}

/// The recorded metadata with the `ChargeTransactionPayment` extension renamed as the
/// current runtime names its replacement (`ChargeTransactionPaymentWrapper`, which wraps
/// the same type, so the same bytes).
fn metadata_with_payment_wrapper() -> Metadata {
    use subxt::ext::frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
    let mut prefixed = RuntimeMetadataPrefixed::decode(&mut &METADATA[..]).unwrap();
    let RuntimeMetadata::V15(m) = &mut prefixed.1 else {
        panic!("the fixture is V15 metadata");
    };
    let ext = m
        .extrinsic
        .signed_extensions
        .iter_mut()
        .find(|e| e.identifier == "ChargeTransactionPayment")
        .unwrap();
    ext.identifier = "ChargeTransactionPaymentWrapper".into();
    decode_metadata(&prefixed.encode()).unwrap()
}

fn rebuilt_calls(v: &Vectors) -> Vec<DynamicPayload> {
    let w = &v.set_weights[0];
    let a = &v.serve_axon[0];
    let c = &v.set_commitment[1];
    vec![
        set_weights_call(
            w.netuid,
            &emit_weights(&w.uids, &w.weights).unwrap(),
            w.version_key,
        ),
        serve_axon_call(
            a.netuid,
            &Endpoint {
                addr: std::net::SocketAddr::new(a.ip.parse().unwrap(), a.port),
                version: a.version,
            },
        ),
        set_commitment_call(
            c.netuid,
            &Commitment::new(hex::decode(&c.fields_hex[0]).unwrap()).unwrap(),
        ),
    ]
}

#[test]
fn signed_payloads_match_the_python_sdk_and_the_payment_wrapper_needs_our_config() {
    let v = vectors();
    let metadata = decode_metadata(METADATA).unwrap();
    let declared: Vec<String> = metadata
        .extrinsic()
        .transaction_extensions_to_use_for_encoding()
        .map(|e| e.identifier().to_string())
        .collect();
    assert_eq!(declared, v.signed_extensions);
    // The SDK signed with spec and transaction version 1.
    let version = RuntimeVersion {
        spec_version: 1,
        transaction_version: 1,
    };
    let calls = rebuilt_calls(&v);
    assert_eq!(calls.len(), v.signer_payloads.len());
    let wrapped = metadata_with_payment_wrapper();
    for (call, case) in calls.iter().zip(&v.signer_payloads) {
        assert_eq!(
            hex::encode(encode_call(&metadata, call).unwrap()),
            case.call_data
        );
        let genesis = H256(hex32(&case.genesis_hash));
        for m in [metadata.clone(), wrapped.clone()] {
            let client = OfflineClient::<SubtensorConfig>::new(genesis, version, m);
            let partial = client
                .tx()
                .create_partial_offline(call, config::params(case.nonce, None))
                .unwrap();
            assert_eq!(hex::encode(partial.signer_payload()), case.payload);
        }
        // subxt's default configuration cannot sign for the current runtime.
        let default = OfflineClient::<SubstrateConfig>::new(genesis, version, wrapped.clone());
        let refused = default
            .tx()
            .create_partial_offline(call, Default::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("ChargeTransactionPaymentWrapper"),
            "{refused}"
        );
    }
}
