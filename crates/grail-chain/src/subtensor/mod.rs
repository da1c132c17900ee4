//! Bittensor's Subtensor chain over subxt, with the runtime metadata fetched from the node
//! (dynamic API: pallets, calls and storage are looked up by name, so added fields and
//! runtime upgrades do not break decoding).
//!
//! - [`calls`]: the calls grail submits and the pure computations behind them, checked
//!   offline against recorded metadata and the Python SDK's output;
//! - [`config`]: [`SubtensorConfig`], subxt's configuration with Subtensor's own
//!   transaction extension;
//! - [`commit_reveal`]: when committed weights are revealed;
//! - [`values`]: reading decoded storage values.
//!
//! Reads are batched: a map is read with one `state_getKeysPaged` per 1 000 keys and one
//! `state_queryStorageAt` for the values, and known keys (one per neuron) with one
//! `state_queryStorageAt`, all at one pinned block. The metagraph takes four round trips
//! whatever the subnet's size (it took `4 + 4n` before; `tests/subtensor_rpc.rs` counts).

pub mod calls;
pub mod commit_reveal;
pub mod config;
pub mod values;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use grail_proto::signing::Keypair;
use grail_proto::Hotkey;
use subxt::backend::legacy::LegacyRpcMethods;
use subxt::backend::rpc::RpcClient;
use subxt::client::RuntimeVersion;
use subxt::dynamic::Value;
use subxt::metadata::types::StorageHasher;
use subxt::tx::{DynamicPayload, Signer};
use subxt::utils::{AccountId32, MultiSignature, H256};
use subxt::{Metadata, OnlineClient};

pub use calls::{
    commit_weights_call, decode_metadata, emit_weights, encode_call, has_call, reveal_weights_call,
    serve_axon_call, set_commitment_call, set_weights_call, weights_commit_hash,
};
use commit_reveal::{plan_reveal, CommitRevealError, PendingCommit, RevealSchedule};
pub use config::SubtensorConfig;
pub use values::{commitment_from_registration, endpoint_from_axon, weight_commits};
use values::{value_bool, value_bytes, value_items, value_u128};

use crate::{Chain, ChainError, Commitment, Endpoint, Metagraph, Neuron};

/// Named endpoints.
pub const FINNEY: &str = "wss://entrypoint-finney.opentensor.ai:443";
/// Bittensor testnet.
pub const TESTNET: &str = "wss://test.finney.opentensor.ai:443";
/// A subtensor node on this machine.
pub const LOCAL: &str = "ws://127.0.0.1:9944";

/// Keys asked per `state_getKeysPaged` (the node's maximum).
const KEYS_PAGE: u32 = 1000;
/// Keys per `state_queryStorageAt` request.
const VALUES_PER_QUERY: usize = 1000;
/// Salt words of a weights commit (as the SDK's legacy commits).
const SALT_WORDS: usize = 8;

/// Resolves `finney`, `test`, `local` or a `ws://`/`wss://` URL.
///
/// # Errors
/// [`ChainError::UnknownNetwork`] for anything else.
pub fn endpoint(network: &str) -> Result<String, ChainError> {
    match network {
        "finney" => Ok(FINNEY.into()),
        "test" => Ok(TESTNET.into()),
        "local" => Ok(LOCAL.into()),
        url if url.starts_with("ws://") || url.starts_with("wss://") => Ok(url.into()),
        other => Err(ChainError::UnknownNetwork {
            network: other.into(),
        }),
    }
}

/// The storage key of `pallet::entry` with `keys` under `metadata` (fewer keys than the
/// map has: the prefix of the entries under them).
///
/// # Errors
/// [`ChainError::Undecodable`] when the metadata has no such entry or the keys do not fit
/// its types.
pub fn storage_key(
    metadata: &Metadata,
    pallet: &str,
    entry: &str,
    keys: Vec<Value>,
) -> Result<Vec<u8>, ChainError> {
    subxt::ext::subxt_core::storage::get_address_bytes(
        &subxt::dynamic::storage(pallet, entry, keys),
        metadata,
    )
    .map_err(|e| ChainError::Undecodable {
        what: format!("the storage key of {pallet}::{entry}"),
        source: e.into(),
    })
}

/// Decodes a stored value of `pallet::entry` with the type `metadata` gives it.
///
/// # Errors
/// [`ChainError::NoSuchStorage`] when the metadata has no such entry,
/// [`ChainError::Undecodable`] when the bytes do not decode as its type,
/// [`ChainError::TrailingBytes`] when they are longer than it.
pub fn decode_storage(
    metadata: &Metadata,
    pallet: &str,
    entry: &str,
    bytes: &[u8],
) -> Result<Value<u32>, ChainError> {
    let ty = metadata
        .pallet_by_name(pallet)
        .and_then(|p| p.storage())
        .and_then(|s| s.entry_by_name(entry))
        .map(|e| e.entry_type().value_ty())
        .ok_or_else(|| ChainError::NoSuchStorage {
            pallet: pallet.into(),
            entry: entry.into(),
        })?;
    let mut rest = bytes;
    let value = subxt::ext::scale_value::scale::decode_as_type(&mut rest, ty, metadata.types())
        .map_err(|e| ChainError::Undecodable {
            what: format!("{pallet}::{entry}"),
            source: e.into(),
        })?;
    if !rest.is_empty() {
        return Err(ChainError::TrailingBytes {
            pallet: pallet.into(),
            entry: entry.into(),
            left: rest.len(),
        });
    }
    Ok(value)
}

/// Signs extrinsics with a grail hotkey.
struct HotkeySigner(Keypair);

impl Signer<SubtensorConfig> for HotkeySigner {
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
    api: OnlineClient<SubtensorConfig>,
    rpc: LegacyRpcMethods<SubtensorConfig>,
    netuid: u16,
    /// Weights committed by this process and not revealed yet (commit-reveal subnets).
    /// Kept in memory: after a restart, earlier commits expire unrevealed.
    pending: Arc<Mutex<Vec<PendingCommit>>>,
}

impl std::fmt::Debug for SubtensorChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubtensorChain")
            .field("netuid", &self.netuid)
            .finish()
    }
}

/// The weights rules of a subnet, read at one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsRules {
    /// `CommitRevealWeightsEnabled`.
    pub commit_reveal: bool,
    /// `WeightsVersionKey`: weights with a lower version key are refused.
    pub version_key: u64,
}

impl SubtensorChain {
    /// Connects to `network` (`finney`, `test`, `local` or a URL) for subnet `netuid`.
    ///
    /// # Errors
    /// [`ChainError::UnknownNetwork`] for an unknown network, [`ChainError::Rpc`] when the node
    /// cannot be reached or its metadata fetched.
    pub async fn connect(network: &str, netuid: u16) -> Result<Self, ChainError> {
        let url = endpoint(network)?;
        let rpc_client = if url.starts_with("ws://") {
            RpcClient::from_insecure_url(&url).await
        } else {
            RpcClient::from_url(&url).await
        }
        .map_err(|e| ChainError::rpc(format!("connecting to {url}"), e))?;
        let api = OnlineClient::<SubtensorConfig>::from_rpc_client(rpc_client.clone())
            .await
            .map_err(|e| ChainError::rpc(format!("fetching metadata from {url}"), e))?;
        Ok(Self::from_parts(api, rpc_client, netuid))
    }

    /// A connection over `rpc_client` with the node's details given rather than fetched
    /// (tests over a recorded metadata, custom transports).
    ///
    /// # Errors
    /// [`ChainError::Rpc`] when subxt refuses the details.
    pub fn with_metadata(
        rpc_client: RpcClient,
        metadata: Metadata,
        genesis_hash: [u8; 32],
        runtime_version: RuntimeVersion,
        netuid: u16,
    ) -> Result<Self, ChainError> {
        let api = OnlineClient::<SubtensorConfig>::from_rpc_client_with(
            H256(genesis_hash),
            runtime_version,
            metadata,
            rpc_client.clone(),
        )
        .map_err(|e| ChainError::rpc("building the client", e))?;
        Ok(Self::from_parts(api, rpc_client, netuid))
    }

    fn from_parts(api: OnlineClient<SubtensorConfig>, rpc: RpcClient, netuid: u16) -> Self {
        Self {
            api,
            rpc: LegacyRpcMethods::new(rpc),
            netuid,
            pending: Arc::default(),
        }
    }

    /// The runtime metadata in use.
    pub fn metadata(&self) -> Metadata {
        self.api.metadata()
    }

    fn has_storage(&self, pallet: &str, entry: &str) -> bool {
        self.metadata()
            .pallet_by_name(pallet)
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name(entry))
            .is_some()
    }

    /// The storage key of `pallet::entry` with `keys` ([`storage_key`]).
    fn storage_key(
        &self,
        pallet: &str,
        entry: &str,
        keys: Vec<Value>,
    ) -> Result<Vec<u8>, ChainError> {
        storage_key(&self.metadata(), pallet, entry, keys)
    }

    /// Decodes a value of `pallet::entry` ([`decode_storage`]).
    fn decode(&self, pallet: &str, entry: &str, bytes: &[u8]) -> Result<Value<u32>, ChainError> {
        decode_storage(&self.metadata(), pallet, entry, bytes)
    }

    /// The SCALE bytes of the last key of a map entry's storage key `key` (`len` bytes),
    /// when its hasher keeps the key (identity or a `…Concat` hasher).
    fn last_key<'k>(
        &self,
        pallet: &str,
        entry: &str,
        key: &'k [u8],
        len: usize,
    ) -> Result<&'k [u8], ChainError> {
        let metadata = self.metadata();
        let hasher = metadata
            .pallet_by_name(pallet)
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name(entry))
            .and_then(|e| match e.entry_type() {
                subxt::metadata::types::StorageEntryType::Map { hashers, .. } => {
                    hashers.last().copied()
                }
                subxt::metadata::types::StorageEntryType::Plain(_) => None,
            });
        match hasher {
            Some(
                StorageHasher::Identity
                | StorageHasher::Twox64Concat
                | StorageHasher::Blake2_128Concat,
            ) if key.len() >= len => Ok(&key[key.len() - len..]),
            _ => Err(ChainError::OpaqueStorageKey {
                pallet: pallet.into(),
                entry: entry.into(),
                hasher,
                key_len: key.len(),
            }),
        }
    }

    /// The block reads are pinned to: the finalized head.
    async fn pin(&self) -> Result<H256, ChainError> {
        self.rpc
            .chain_get_finalized_head()
            .await
            .map_err(|e| ChainError::rpc("fetching the finalized head", e))
    }

    /// The values of `keys` at `at` (`None` where there is none), in one request per
    /// 1 000 keys.
    async fn fetch_many(
        &self,
        at: H256,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, ChainError> {
        let mut values: BTreeMap<&[u8], Vec<u8>> = BTreeMap::new();
        let mut answers = Vec::new();
        for chunk in keys.chunks(VALUES_PER_QUERY) {
            let sets = self
                .rpc
                .state_query_storage_at(chunk.iter().map(Vec::as_slice), Some(at))
                .await
                .map_err(|e| ChainError::rpc("reading storage (state_queryStorageAt)", e))?;
            answers.extend(sets);
        }
        for set in &answers {
            for (key, value) in &set.changes {
                if let Some(v) = value {
                    values.insert(&key.0, v.0.clone());
                }
            }
        }
        Ok(keys.iter().map(|k| values.get(&k[..]).cloned()).collect())
    }

    /// Every `(key, value)` under `prefix` at `at`.
    async fn prefix_entries(
        &self,
        at: H256,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ChainError> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        loop {
            let page = self
                .rpc
                .state_get_keys_paged(prefix, KEYS_PAGE, keys.last().map(Vec::as_slice), Some(at))
                .await
                .map_err(|e| ChainError::rpc("listing storage keys (state_getKeysPaged)", e))?;
            let full = page.len() == KEYS_PAGE as usize;
            keys.extend(page.into_iter().filter(|k| k.starts_with(prefix)));
            if !full {
                break;
            }
        }
        let values = self.fetch_many(at, &keys).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k, v?)))
            .collect())
    }

    /// Every entry of the map `pallet::entry` under this subnet's netuid, as
    /// `(last key bytes, decoded value)`.
    async fn subnet_map(
        &self,
        at: H256,
        pallet: &str,
        entry: &str,
        key_len: usize,
    ) -> Result<Vec<(Vec<u8>, Value<u32>)>, ChainError> {
        let prefix = self.storage_key(pallet, entry, vec![Value::u128(self.netuid.into())])?;
        let mut out = Vec::new();
        for (key, bytes) in self.prefix_entries(at, &prefix).await? {
            let last = self.last_key(pallet, entry, &key, key_len)?.to_vec();
            out.push((last, self.decode(pallet, entry, &bytes)?));
        }
        Ok(out)
    }

    /// The subnet's weights rules at the finalized head.
    ///
    /// # Errors
    /// [`ChainError::Rpc`] or decoding errors.
    pub async fn weights_rules(&self) -> Result<WeightsRules, ChainError> {
        let at = self.pin().await?;
        let netuid = || vec![Value::u128(self.netuid.into())];
        let keys = [
            self.storage_key("SubtensorModule", "CommitRevealWeightsEnabled", netuid())?,
            self.storage_key("SubtensorModule", "WeightsVersionKey", netuid())?,
        ];
        let values = self.fetch_many(at, &keys).await?;
        let commit_reveal = match &values[0] {
            Some(b) => {
                value_bool(&self.decode("SubtensorModule", "CommitRevealWeightsEnabled", b)?)
                    .ok_or_else(|| ChainError::UnexpectedShape {
                        item: "SubtensorModule::CommitRevealWeightsEnabled".into(),
                        expected: "a bool",
                    })?
            }
            None => false,
        };
        let version_key = match &values[1] {
            Some(b) => value_u128(&self.decode("SubtensorModule", "WeightsVersionKey", b)?)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| ChainError::UnexpectedShape {
                    item: "SubtensorModule::WeightsVersionKey".into(),
                    expected: "a u64",
                })?,
            None => 0,
        };
        Ok(WeightsRules {
            commit_reveal,
            version_key,
        })
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

    /// The reveal schedule and `key`'s commits on chain, at the finalized head.
    async fn commit_state(
        &self,
        hotkey: &[u8; 32],
    ) -> Result<(RevealSchedule, Vec<([u8; 32], u64)>), ChainError> {
        let at = self.pin().await?;
        let netuid = || Value::u128(self.netuid.into());
        let commits_key = self.storage_key(
            "SubtensorModule",
            "WeightCommits",
            vec![netuid(), Value::from_bytes(hotkey)],
        )?;
        let u64_of = |bytes: &Option<Vec<u8>>, entry: &str| -> Result<u64, ChainError> {
            match bytes {
                Some(b) => value_u128(&self.decode("SubtensorModule", entry, b)?)
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| ChainError::UnexpectedShape {
                        item: format!("SubtensorModule::{entry}"),
                        expected: "a u64",
                    }),
                None => Ok(0),
            }
        };
        let (schedule, commits) = if self.has_storage("SubtensorModule", "SubnetEpochIndex")
            && self.has_storage("SubtensorModule", "RevealPeriodEpochs")
        {
            let keys = [
                commits_key,
                self.storage_key("SubtensorModule", "SubnetEpochIndex", vec![netuid()])?,
                self.storage_key("SubtensorModule", "RevealPeriodEpochs", vec![netuid()])?,
            ];
            let values = self.fetch_many(at, &keys).await?;
            let schedule = RevealSchedule::Epochs {
                epoch: u64_of(&values[1], "SubnetEpochIndex")?,
                reveal_period: u64_of(&values[2], "RevealPeriodEpochs")?,
            };
            (schedule, values[0].clone())
        } else if self.has_storage("SubtensorModule", "WeightCommitRevealInterval") {
            let keys = [
                commits_key,
                self.storage_key(
                    "SubtensorModule",
                    "WeightCommitRevealInterval",
                    vec![netuid()],
                )?,
            ];
            let values = self.fetch_many(at, &keys).await?;
            let header = self
                .rpc
                .chain_get_header(Some(at))
                .await
                .map_err(|e| ChainError::rpc("fetching the finalized header", e))?
                .ok_or_else(|| ChainError::MissingValue {
                    item: "header",
                    block: format!("{at:?} (the finalized head)"),
                })?;
            let schedule = RevealSchedule::Interval {
                interval: u64_of(&values[1], "WeightCommitRevealInterval")?,
                block: header.number.into(),
            };
            (schedule, values[0].clone())
        } else {
            return Err(ChainError::CommitReveal(CommitRevealError::UnknownSchedule));
        };
        let commits = match commits {
            Some(bytes) => {
                weight_commits(&self.decode("SubtensorModule", "WeightCommits", &bytes)?)
                    .ok_or_else(|| ChainError::UnexpectedShape {
                        item: "SubtensorModule::WeightCommits".into(),
                        expected: "a known commit list shape",
                    })?
            }
            None => Vec::new(),
        };
        Ok((schedule, commits))
    }

    /// Commit-reveal: reveals `key`'s newest due commit, then commits `weights`.
    async fn commit_and_reveal(
        &self,
        key: &Keypair,
        weights: &[(u16, u16)],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let metadata = self.metadata();
        if !(has_call(&metadata, "SubtensorModule", "commit_weights")
            && has_call(&metadata, "SubtensorModule", "reveal_weights"))
        {
            let timelocked = ["commit_timelocked_weights", "commit_crv3_weights"]
                .into_iter()
                .filter(|c| has_call(&metadata, "SubtensorModule", c))
                .map(String::from)
                .collect();
            return Err(ChainError::CommitReveal(CommitRevealError::TimelockOnly {
                timelocked,
            }));
        }
        let hotkey = key.public().0;
        let (schedule, on_chain) = self.commit_state(&hotkey).await?;
        let mine: Vec<PendingCommit> = self
            .pending_lock()
            .iter()
            .filter(|p| p.hotkey == hotkey)
            .cloned()
            .collect();
        let plan = plan_reveal(&mine, &on_chain, &schedule);
        let mut reveal_error = None;
        let mut kept: Vec<PendingCommit> = plan.keep.iter().map(|&i| mine[i].clone()).collect();
        if let Some(i) = plan.reveal {
            let p = &mine[i];
            let call = reveal_weights_call(self.netuid, &p.weights, &p.salt, p.version_key);
            if let Err(e) = self.submit(key, call).await {
                // Not revealed (too early after all, or the node failed): try again later.
                kept.insert(0, p.clone());
                reveal_error = Some(e);
            }
        }
        let commit_result = match schedule.can_commit(&on_chain) {
            Ok(()) => {
                let mut salt = [0u8; 2 * SALT_WORDS];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
                let salt: Vec<u16> = salt
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let hash = weights_commit_hash(&hotkey, self.netuid, weights, &salt, version_key);
                let result = self
                    .submit(key, commit_weights_call(self.netuid, hash))
                    .await;
                if result.is_ok() {
                    kept.push(PendingCommit {
                        hotkey,
                        hash,
                        weights: weights.to_vec(),
                        salt,
                        version_key,
                    });
                }
                result
            }
            Err(why) => Err(ChainError::CommitReveal(why)),
        };
        {
            let mut pending = self.pending_lock();
            pending.retain(|p| p.hotkey != hotkey);
            pending.extend(kept);
        }
        match (reveal_error, commit_result) {
            (_, Err(e)) | (Some(e), Ok(())) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, Vec<PendingCommit>> {
        // A panic elsewhere while holding the lock leaves a list that is still valid.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
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
        let hash = H256(self.block_hash(number).await?);
        let key = self.storage_key("Timestamp", "Now", vec![])?;
        let bytes = self.fetch_many(hash, &[key]).await?.remove(0);
        let bytes = bytes.ok_or_else(|| ChainError::MissingValue {
            item: "Timestamp::Now",
            block: number.to_string(),
        })?;
        value_u128(&self.decode("Timestamp", "Now", &bytes)?)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| ChainError::UnexpectedShape {
                item: format!("Timestamp::Now at block {number}"),
                expected: "a u64",
            })
    }

    async fn metagraph(&self) -> Result<Metagraph, ChainError> {
        let at = self.pin().await?;
        let netuid = Value::u128(self.netuid.into());
        // Round trips 2 and 3: every Keys(netuid, uid) entry.
        let mut hotkeys: Vec<(u16, [u8; 32])> = Vec::new();
        for (uid, value) in self.subnet_map(at, "SubtensorModule", "Keys", 2).await? {
            let uid = u16::from_le_bytes([uid[0], uid[1]]);
            let hotkey = value_bytes(&value)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| ChainError::UnexpectedShape {
                    item: format!("SubtensorModule::Keys({uid})"),
                    expected: "an account id",
                })?;
            hotkeys.push((uid, hotkey));
        }
        hotkeys.sort_unstable_by_key(|(uid, _)| *uid);
        // Round trip 4: the permits and every hotkey's stake.
        let (stake_entry, stake_keys) = if self.has_storage("SubtensorModule", "TotalHotkeyAlpha") {
            let keys = hotkeys
                .iter()
                .map(|(_, hk)| {
                    self.storage_key(
                        "SubtensorModule",
                        "TotalHotkeyAlpha",
                        vec![Value::from_bytes(hk), netuid.clone()],
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            ("TotalHotkeyAlpha", keys)
        } else {
            let keys = hotkeys
                .iter()
                .map(|(_, hk)| {
                    self.storage_key(
                        "SubtensorModule",
                        "TotalHotkeyStake",
                        vec![Value::from_bytes(hk)],
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            ("TotalHotkeyStake", keys)
        };
        let mut keys =
            vec![self.storage_key("SubtensorModule", "ValidatorPermit", vec![netuid])?];
        keys.extend(stake_keys);
        let mut values = self.fetch_many(at, &keys).await?.into_iter();
        let permits: Vec<bool> = match values.next().flatten() {
            Some(b) => value_items(&self.decode("SubtensorModule", "ValidatorPermit", &b)?)
                .map(|items| items.iter().map(|v| value_bool(v) == Some(true)).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut neurons = Vec::with_capacity(hotkeys.len());
        for ((uid, hotkey), stake) in hotkeys.into_iter().zip(values) {
            let stake = match stake {
                Some(b) => value_u128(&self.decode("SubtensorModule", stake_entry, &b)?)
                    .ok_or_else(|| ChainError::UnexpectedShape {
                        item: format!("SubtensorModule::{stake_entry}"),
                        expected: "a number",
                    })?,
                None => 0,
            };
            neurons.push(Neuron {
                uid,
                hotkey: Hotkey(hotkey),
                stake: u64::try_from(stake).unwrap_or(u64::MAX),
                validator_permit: permits.get(usize::from(uid)).copied().unwrap_or(false),
            });
        }
        Ok(Metagraph {
            netuid: self.netuid,
            neurons,
        })
    }

    async fn commitments(&self) -> Result<BTreeMap<Hotkey, Commitment>, ChainError> {
        let at = self.pin().await?;
        let mut out = BTreeMap::new();
        for (hotkey, registration) in self
            .subnet_map(at, "Commitments", "CommitmentOf", 32)
            .await?
        {
            let hotkey = <[u8; 32]>::try_from(hotkey.as_slice()).map_err(|_| {
                ChainError::UnexpectedShape {
                    item: "a Commitments::CommitmentOf key".into(),
                    expected: "an account id",
                }
            })?;
            if let Some(c) = commitment_from_registration(&registration) {
                out.insert(Hotkey(hotkey), c);
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
        let rules = self.weights_rules().await?;
        if version_key < rules.version_key {
            return Err(ChainError::VersionKeyTooOld {
                ours: version_key,
                required: rules.version_key,
            });
        }
        if rules.commit_reveal {
            self.commit_and_reveal(key, weights, version_key).await
        } else {
            self.submit(key, set_weights_call(self.netuid, weights, version_key))
                .await
        }
    }

    async fn weights(&self, validator: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        let at = self.pin().await?;
        let key = self.storage_key(
            "SubtensorModule",
            "Weights",
            vec![
                Value::u128(self.netuid.into()),
                Value::u128(validator.into()),
            ],
        )?;
        let Some(bytes) = self.fetch_many(at, &[key]).await?.remove(0) else {
            return Ok(Vec::new());
        };
        let value = self.decode("SubtensorModule", "Weights", &bytes)?;
        let pairs = value_items(&value).ok_or_else(|| ChainError::UnexpectedShape {
            item: format!("SubtensorModule::Weights({validator})"),
            expected: "a list",
        })?;
        pairs
            .into_iter()
            .map(|pair| {
                let items = value_items(pair).filter(|i| i.len() == 2);
                let uid = items.as_ref().and_then(|i| value_u128(i[0]));
                let w = items.as_ref().and_then(|i| value_u128(i[1]));
                match (uid, w) {
                    (Some(u), Some(w)) if u <= 65535 && w <= 65535 => Ok((u as u16, w as u16)),
                    _ => Err(ChainError::UnexpectedShape {
                        item: format!("an entry of SubtensorModule::Weights({validator})"),
                        expected: "(u16, u16)",
                    }),
                }
            })
            .collect()
    }

    async fn serve_endpoint(&self, key: &Keypair, endpoint: &Endpoint) -> Result<(), ChainError> {
        endpoint.check_for_subtensor()?;
        self.submit(key, serve_axon_call(self.netuid, endpoint))
            .await
    }

    async fn endpoints(&self) -> Result<BTreeMap<Hotkey, Endpoint>, ChainError> {
        let at = self.pin().await?;
        let mut out = BTreeMap::new();
        for (hotkey, axon) in self.subnet_map(at, "SubtensorModule", "Axons", 32).await? {
            let hotkey = <[u8; 32]>::try_from(hotkey.as_slice()).map_err(|_| {
                ChainError::UnexpectedShape {
                    item: "a SubtensorModule::Axons key".into(),
                    expected: "an account id",
                }
            })?;
            if let Some(e) = endpoint_from_axon(&axon) {
                out.insert(Hotkey(hotkey), e);
            }
        }
        Ok(out)
    }
}
