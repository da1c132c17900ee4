//! Bittensor's Subtensor chain over subxt, with the runtime metadata fetched from the node
//! (dynamic API: pallets, calls and storage are looked up by name, so added fields and
//! runtime upgrades do not break decoding).
//!
//! The pure parts — weight quantisation and call encoding — are separate functions so they
//! can be checked offline against recorded metadata and the Python SDK's output.

use std::collections::BTreeMap;

use async_trait::async_trait;
use grail_proto::signing::Keypair;
use grail_proto::Hotkey;
use subxt::backend::legacy::LegacyRpcMethods;
use subxt::backend::rpc::RpcClient;
use subxt::dynamic::Value;
use subxt::ext::codec::Decode;
use subxt::ext::scale_value::{Composite, Primitive, ValueDef};
use subxt::tx::{DynamicPayload, Payload, Signer};
use subxt::utils::{AccountId32, MultiSignature};
use subxt::{Metadata, OnlineClient, SubstrateConfig};

use crate::{Chain, ChainError, Commitment, Metagraph, Neuron};

/// Named endpoints.
pub const FINNEY: &str = "wss://entrypoint-finney.opentensor.ai:443";
/// Bittensor testnet.
pub const TESTNET: &str = "wss://test.finney.opentensor.ai:443";
/// A subtensor node on this machine.
pub const LOCAL: &str = "ws://127.0.0.1:9944";

/// Resolves `finney`, `test`, `local` or a `ws://`/`wss://` URL.
pub fn endpoint(network: &str) -> Result<String, ChainError> {
    match network {
        "finney" => Ok(FINNEY.into()),
        "test" => Ok(TESTNET.into()),
        "local" => Ok(LOCAL.into()),
        url if url.starts_with("ws://") || url.starts_with("wss://") => Ok(url.into()),
        other => Err(ChainError::Config(format!(
            "network `{other}` is not finney, test, local or a ws:// / wss:// URL"
        ))),
    }
}

/// Decodes SCALE runtime metadata (`meta` magic, V14 or V15).
pub fn decode_metadata(bytes: &[u8]) -> Result<Metadata, ChainError> {
    Metadata::decode(&mut &bytes[..]).map_err(|e| ChainError::Undecodable {
        what: "runtime metadata".into(),
        source: e.into(),
    })
}

/// Weights as the chain takes them, exactly as the Python SDK's `normalize`: scale so the
/// largest is 65535, round half to even, drop zeros. All-zero input gives no weights.
pub fn emit_weights(uids: &[u16], weights: &[f64]) -> Result<Vec<(u16, u16)>, ChainError> {
    if uids.len() != weights.len() {
        return Err(ChainError::Rejected(format!(
            "{} uids but {} weights",
            uids.len(),
            weights.len()
        )));
    }
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return Err(ChainError::Rejected(
            "weights must be finite and non-negative".into(),
        ));
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

/// `SubtensorModule::set_weights(netuid, dests, weights, version_key)`.
pub fn set_weights_call(netuid: u16, weights: &[(u16, u16)], version_key: u64) -> DynamicPayload {
    subxt::dynamic::tx(
        "SubtensorModule",
        "set_weights",
        vec![
            Value::u128(netuid.into()),
            Value::unnamed_composite(weights.iter().map(|(uid, _)| Value::u128((*uid).into()))),
            Value::unnamed_composite(weights.iter().map(|(_, w)| Value::u128((*w).into()))),
            Value::u128(version_key.into()),
        ],
    )
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

/// SCALE call data of `call` under `metadata` (pallet index, call index, arguments).
pub fn encode_call(metadata: &Metadata, call: &DynamicPayload) -> Result<Vec<u8>, ChainError> {
    call.encode_call_data(metadata)
        .map_err(|e| ChainError::Transaction {
            context: "cannot encode call".into(),
            source: e.into(),
        })
}

/// Bytes held by a composite of u8 values (also nested one level, as `AccountId32`).
fn value_bytes<T>(value: &Value<T>) -> Option<Vec<u8>> {
    match &value.value {
        ValueDef::Composite(c) => {
            let values: Vec<&Value<T>> = c.values().collect();
            if values.len() == 1 {
                if let Some(inner) = value_bytes(values[0]) {
                    return Some(inner);
                }
            }
            values
                .iter()
                .map(|v| match &v.value {
                    ValueDef::Primitive(Primitive::U128(b)) => u8::try_from(*b).ok(),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

fn value_u128<T>(value: &Value<T>) -> Option<u128> {
    match &value.value {
        ValueDef::Primitive(Primitive::U128(v)) => Some(*v),
        ValueDef::Composite(c) if c.len() == 1 => value_u128(c.values().next()?),
        _ => None,
    }
}

fn field<'a, T>(value: &'a Value<T>, name: &str) -> Option<&'a Value<T>> {
    match &value.value {
        ValueDef::Composite(Composite::Named(fields)) => {
            fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
        }
        _ => None,
    }
}

/// The commitment in a decoded `Commitments::CommitmentOf` value
/// (`Registration { info: { fields: [RawN(bytes)] }, .. }`); `None` for other shapes.
pub fn commitment_from_registration<T>(registration: &Value<T>) -> Option<Commitment> {
    let fields = field(field(registration, "info")?, "fields")?;
    let first = match &fields.value {
        ValueDef::Composite(c) => c.values().next()?,
        _ => return None,
    };
    match &first.value {
        ValueDef::Variant(v) if v.name.starts_with("Raw") => {
            let bytes = match v.values.values().next() {
                Some(inner) => value_bytes(inner)?,
                None => Vec::new(),
            };
            Commitment::new(bytes).ok()
        }
        _ => None,
    }
}

/// Signs extrinsics with a grail hotkey.
struct HotkeySigner(Keypair);

impl Signer<SubstrateConfig> for HotkeySigner {
    fn account_id(&self) -> AccountId32 {
        AccountId32(self.0.public().0)
    }

    fn sign(&self, payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.0.sign(payload).0)
    }
}

/// A Subtensor node connection bound to one subnet.
#[derive(Clone)]
pub struct SubtensorChain {
    api: OnlineClient<SubstrateConfig>,
    rpc: LegacyRpcMethods<SubstrateConfig>,
    netuid: u16,
}

impl std::fmt::Debug for SubtensorChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubtensorChain")
            .field("netuid", &self.netuid)
            .finish()
    }
}

impl SubtensorChain {
    /// Connects to `network` (`finney`, `test`, `local` or a URL) for subnet `netuid`.
    pub async fn connect(network: &str, netuid: u16) -> Result<Self, ChainError> {
        let url = endpoint(network)?;
        let rpc_client = if url.starts_with("ws://") {
            RpcClient::from_insecure_url(&url).await
        } else {
            RpcClient::from_url(&url).await
        }
        .map_err(|e| ChainError::rpc(format!("connecting to {url}"), e))?;
        let api = OnlineClient::<SubstrateConfig>::from_rpc_client(rpc_client.clone())
            .await
            .map_err(|e| ChainError::rpc(format!("fetching metadata from {url}"), e))?;
        Ok(Self {
            api,
            rpc: LegacyRpcMethods::new(rpc_client),
            netuid,
        })
    }

    async fn fetch_at(
        &self,
        at: Option<[u8; 32]>,
        pallet: &str,
        entry: &str,
        keys: Vec<Value>,
    ) -> Result<Option<Value<u32>>, ChainError> {
        let storage = match at {
            Some(hash) => self.api.storage().at(subxt::utils::H256(hash)),
            None => self
                .api
                .storage()
                .at_latest()
                .await
                .map_err(|e| ChainError::rpc("fetching the latest block", e))?,
        };
        let address = subxt::dynamic::storage(pallet, entry, keys);
        let fetched = storage
            .fetch(&address)
            .await
            .map_err(|e| ChainError::rpc(format!("reading {pallet}::{entry}"), e))?;
        match fetched {
            Some(thunk) => Ok(Some(thunk.to_value().map_err(|e| {
                ChainError::Undecodable {
                    what: format!("{pallet}::{entry}"),
                    source: e.into(),
                }
            })?)),
            None => Ok(None),
        }
    }

    async fn submit(&self, key: &Keypair, call: DynamicPayload) -> Result<(), ChainError> {
        let signer = HotkeySigner(key.clone());
        self.api
            .tx()
            .sign_and_submit_then_watch_default(&call, &signer)
            .await
            .map_err(|e| ChainError::rpc("submitting a transaction", e))?
            .wait_for_finalized_success()
            .await
            .map_err(|e| ChainError::Transaction {
                context: "transaction not finalized successfully".into(),
                source: e.into(),
            })?;
        Ok(())
    }
}

#[async_trait]
impl Chain for SubtensorChain {
    fn netuid(&self) -> u16 {
        self.netuid
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        let block = self
            .api
            .blocks()
            .at_latest()
            .await
            .map_err(|e| ChainError::rpc("fetching the latest block", e))?;
        Ok(block.number().into())
    }

    async fn block_hash(&self, number: u64) -> Result<[u8; 32], ChainError> {
        let hash = self
            .rpc
            .chain_get_block_hash(Some(number.into()))
            .await
            .map_err(|e| ChainError::rpc(format!("fetching the hash of block {number}"), e))?;
        match hash {
            Some(h) => Ok(h.0),
            None => Err(ChainError::FutureBlock {
                requested: number,
                head: self.block_number().await?,
            }),
        }
    }

    async fn block_timestamp_ms(&self, number: u64) -> Result<u64, ChainError> {
        let hash = self.block_hash(number).await?;
        let now = self
            .fetch_at(Some(hash), "Timestamp", "Now", vec![])
            .await?;
        now.as_ref()
            .and_then(value_u128)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| ChainError::Decode(format!("no Timestamp::Now at block {number}")))
    }

    async fn metagraph(&self) -> Result<Metagraph, ChainError> {
        let netuid = Value::u128(self.netuid.into());
        let n = self
            .fetch_at(None, "SubtensorModule", "SubnetworkN", vec![netuid.clone()])
            .await?
            .as_ref()
            .and_then(value_u128)
            .unwrap_or(0);
        let permits = self
            .fetch_at(
                None,
                "SubtensorModule",
                "ValidatorPermit",
                vec![netuid.clone()],
            )
            .await?;
        let permits: Vec<bool> = match permits.map(|v| v.value) {
            Some(ValueDef::Composite(c)) => c
                .values()
                .map(|v| matches!(v.value, ValueDef::Primitive(Primitive::Bool(true))))
                .collect(),
            _ => Vec::new(),
        };
        let mut neurons = Vec::new();
        for uid in 0..n.min(u16::MAX as u128) as u16 {
            let key = self
                .fetch_at(
                    None,
                    "SubtensorModule",
                    "Keys",
                    vec![netuid.clone(), Value::u128(uid.into())],
                )
                .await?;
            let Some(bytes) = key.as_ref().and_then(value_bytes) else {
                continue;
            };
            let Ok(hotkey) = <[u8; 32]>::try_from(bytes) else {
                return Err(ChainError::Decode(format!(
                    "Keys({uid}) is not an account id"
                )));
            };
            let account = Value::from_bytes(hotkey);
            let stake = match self
                .fetch_at(
                    None,
                    "SubtensorModule",
                    "TotalHotkeyAlpha",
                    vec![account.clone(), netuid.clone()],
                )
                .await
            {
                Ok(v) => v,
                Err(_) => {
                    self.fetch_at(None, "SubtensorModule", "TotalHotkeyStake", vec![account])
                        .await?
                }
            };
            neurons.push(Neuron {
                uid,
                hotkey: Hotkey(hotkey),
                stake: stake
                    .as_ref()
                    .and_then(value_u128)
                    .map_or(0, |s| u64::try_from(s).unwrap_or(u64::MAX)),
                validator_permit: permits.get(uid as usize).copied().unwrap_or(false),
            });
        }
        Ok(Metagraph {
            netuid: self.netuid,
            neurons,
        })
    }

    async fn commitments(&self) -> Result<BTreeMap<Hotkey, Commitment>, ChainError> {
        let mut out = BTreeMap::new();
        for neuron in self.metagraph().await?.neurons {
            let registration = self
                .fetch_at(
                    None,
                    "Commitments",
                    "CommitmentOf",
                    vec![
                        Value::u128(self.netuid.into()),
                        Value::from_bytes(neuron.hotkey.0),
                    ],
                )
                .await?;
            if let Some(c) = registration.as_ref().and_then(commitment_from_registration) {
                out.insert(neuron.hotkey, c);
            }
        }
        Ok(out)
    }

    async fn commit(&self, key: &Keypair, commitment: &Commitment) -> Result<(), ChainError> {
        self.submit(key, set_commitment_call(self.netuid, commitment))
            .await
    }

    async fn set_weights(
        &self,
        key: &Keypair,
        weights: &[(u16, u16)],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.submit(key, set_weights_call(self.netuid, weights, version_key))
            .await
    }

    async fn weights(&self, validator: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        let value = self
            .fetch_at(
                None,
                "SubtensorModule",
                "Weights",
                vec![
                    Value::u128(self.netuid.into()),
                    Value::u128(validator.into()),
                ],
            )
            .await?;
        let Some(ValueDef::Composite(pairs)) = value.map(|v| v.value) else {
            return Ok(Vec::new());
        };
        pairs
            .values()
            .map(|pair| match &pair.value {
                ValueDef::Composite(c) if c.len() == 2 => {
                    let mut it = c.values();
                    let uid = it.next().and_then(value_u128);
                    let w = it.next().and_then(value_u128);
                    match (uid, w) {
                        (Some(u), Some(w)) if u <= 65535 && w <= 65535 => Ok((u as u16, w as u16)),
                        _ => Err(ChainError::Decode("Weights entry is not (u16, u16)".into())),
                    }
                }
                _ => Err(ChainError::Decode("Weights entry is not a pair".into())),
            })
            .collect()
    }
}
