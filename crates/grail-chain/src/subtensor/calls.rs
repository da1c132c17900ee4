//! The calls grail submits, as dynamic payloads, and the pure computations behind them
//! (weight quantisation, commit hashes). Checked offline against the recorded runtime
//! metadata and the Python SDK's output (`tests/calls.rs`).

use subxt::config::substrate::BlakeTwo256;
use subxt::config::Hasher;
use subxt::dynamic::Value;
use subxt::ext::codec::{Decode, Encode};
use subxt::ext::scale_value::Composite;
use subxt::tx::{DynamicPayload, Payload};
use subxt::Metadata;

use crate::{ChainError, Commitment, Endpoint};

/// Decodes SCALE runtime metadata (`meta` magic, V14 or V15).
///
/// # Errors
/// [`ChainError::Undecodable`] when the bytes are not metadata subxt understands.
pub fn decode_metadata(bytes: &[u8]) -> Result<Metadata, ChainError> {
    Metadata::decode(&mut &bytes[..]).map_err(|e| ChainError::Undecodable {
        what: "runtime metadata".into(),
        source: e.into(),
    })
}

/// Weights as the chain takes them, exactly as the Python SDK's `normalize`: scale so the
/// largest is 65535, round half to even, drop zeros. All-zero input gives no weights.
///
/// # Errors
/// [`ChainError::WeightsLengthMismatch`] for mismatched lengths,
/// [`ChainError::InvalidWeight`] for weights that are negative or not finite.
pub fn emit_weights(uids: &[u16], weights: &[f64]) -> Result<Vec<(u16, u16)>, ChainError> {
    if uids.len() != weights.len() {
        return Err(ChainError::WeightsLengthMismatch {
            uids: uids.len(),
            weights: weights.len(),
        });
    }
    if let Some((&uid, &weight)) = uids
        .iter()
        .zip(weights)
        .find(|(_, w)| !w.is_finite() || **w < 0.0)
    {
        return Err(ChainError::InvalidWeight { uid, weight });
    }
    let top = weights.iter().copied().fold(0.0, f64::max);
    if top == 0.0 {
        return Ok(Vec::new());
    }
    Ok(uids
        .iter()
        .zip(weights)
        .filter_map(|(&uid, &w)| {
            let value = ((w / top) * 65535.0).round_ties_even() as u16;
            (value != 0).then_some((uid, value))
        })
        .collect())
}

fn u16_list(values: impl IntoIterator<Item = u16>) -> Value {
    Value::unnamed_composite(values.into_iter().map(|v| Value::u128(v.into())))
}

/// `SubtensorModule::set_weights(netuid, dests, weights, version_key)`.
pub fn set_weights_call(netuid: u16, weights: &[(u16, u16)], version_key: u64) -> DynamicPayload {
    subxt::dynamic::tx(
        "SubtensorModule",
        "set_weights",
        vec![
            Value::u128(netuid.into()),
            u16_list(weights.iter().map(|(uid, _)| *uid)),
            u16_list(weights.iter().map(|(_, w)| *w)),
            Value::u128(version_key.into()),
        ],
    )
}

/// `SubtensorModule::commit_weights(netuid, commit_hash)` (hash-based commit-reveal; the
/// hash is [`weights_commit_hash`]).
pub fn commit_weights_call(netuid: u16, commit_hash: [u8; 32]) -> DynamicPayload {
    subxt::dynamic::tx(
        "SubtensorModule",
        "commit_weights",
        vec![Value::u128(netuid.into()), Value::from_bytes(commit_hash)],
    )
}

/// `SubtensorModule::reveal_weights(netuid, uids, values, salt, version_key)`: the
/// preimage of an earlier [`commit_weights_call`].
pub fn reveal_weights_call(
    netuid: u16,
    weights: &[(u16, u16)],
    salt: &[u16],
    version_key: u64,
) -> DynamicPayload {
    subxt::dynamic::tx(
        "SubtensorModule",
        "reveal_weights",
        vec![
            Value::u128(netuid.into()),
            u16_list(weights.iter().map(|(uid, _)| *uid)),
            u16_list(weights.iter().map(|(_, w)| *w)),
            u16_list(salt.iter().copied()),
            Value::u128(version_key.into()),
        ],
    )
}

/// The hash `commit_weights` commits to, as Subtensor checks it on reveal
/// (`get_commit_hash`): BLAKE2b-256 of the SCALE encoding of
/// `(hotkey, netuid, uids, values, salt, version_key)`.
pub fn weights_commit_hash(
    hotkey: &[u8; 32],
    netuid: u16,
    weights: &[(u16, u16)],
    salt: &[u16],
    version_key: u64,
) -> [u8; 32] {
    let uids: Vec<u16> = weights.iter().map(|(uid, _)| *uid).collect();
    let values: Vec<u16> = weights.iter().map(|(_, w)| *w).collect();
    let preimage = (hotkey, netuid, uids, values, salt.to_vec(), version_key).encode();
    BlakeTwo256.hash(&preimage).0
}

/// `Commitments::set_commitment(netuid, CommitmentInfo { fields: [RawN(bytes)] })`.
pub fn set_commitment_call(netuid: u16, commitment: &Commitment) -> DynamicPayload {
    let bytes = commitment.as_bytes();
    let field = Value::variant(
        format!("Raw{}", bytes.len()),
        Composite::unnamed(vec![Value::from_bytes(bytes)]),
    );
    subxt::dynamic::tx(
        "Commitments",
        "set_commitment",
        vec![
            Value::u128(netuid.into()),
            Value::named_composite(vec![("fields", Value::unnamed_composite(vec![field]))]),
        ],
    )
}

/// `SubtensorModule::serve_axon(netuid, version, ip, port, ip_type, protocol, 0, 0)`: the
/// endpoint as the SDK's `serve_axon` intent publishes it (IPv4 as a 32-bit integer with
/// `ip_type` 4, IPv6 as 128 bits with 6), protocol [`crate::endpoint::AXON_PROTOCOL`].
pub fn serve_axon_call(netuid: u16, endpoint: &Endpoint) -> DynamicPayload {
    let (ip, ip_type) = endpoint.axon_ip();
    subxt::dynamic::tx(
        "SubtensorModule",
        "serve_axon",
        vec![
            Value::u128(netuid.into()),
            Value::u128(endpoint.version.into()),
            Value::u128(ip),
            Value::u128(endpoint.addr.port().into()),
            Value::u128(ip_type.into()),
            Value::u128(crate::endpoint::AXON_PROTOCOL.into()),
            Value::u128(0),
            Value::u128(0),
        ],
    )
}

/// SCALE call data of `call` under `metadata` (pallet index, call index, arguments).
///
/// # Errors
/// [`ChainError::Transaction`] when the metadata has no such call or the arguments do not
/// fit its types.
pub fn encode_call(metadata: &Metadata, call: &DynamicPayload) -> Result<Vec<u8>, ChainError> {
    call.encode_call_data(metadata)
        .map_err(|e| ChainError::Transaction {
            context: "cannot encode call".into(),
            source: e.into(),
        })
}

/// Whether the runtime offers `pallet::call`.
pub fn has_call(metadata: &Metadata, pallet: &str, call: &str) -> bool {
    metadata
        .pallet_by_name(pallet)
        .and_then(|p| p.call_variant_by_name(call))
        .is_some()
}
