//! grail-chain: everything the roles need from the outside world except storage.
//!
//! - [`Chain`]: block numbers, hashes and times, the metagraph, commitments, published API
//!   endpoints and weights, with two backends: [`local::LocalChain`] (the embedded
//!   default: a clock chain whose state lives in a directory) and
//!   [`subtensor::SubtensorChain`] (Bittensor over subxt).
//! - [`drand`]: drand chain parameters, round ↔ time arithmetic, BLS verification of
//!   every beacon, an HTTP client with several relays, and [`beacon::LocalBeacon`], a
//!   drand-format beacon with its own key for local networks, served over HTTP and
//!   verified by the same code.
//! - [`keys`]: Bittensor wallet hotkey files (plain JSON and NaCl-encrypted).
//! - [`commitment`]: what grail publishes in a commitment (read credentials, checkpoint
//!   announcements).
//! - [`endpoint`]: where a participant serves its API (Subtensor: the axon).

pub mod beacon;
pub mod clock;
pub mod commitment;
pub mod drand;
pub mod endpoint;
pub mod keys;
pub mod local;
pub mod subtensor;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use grail_proto::signing::Keypair;
use grail_proto::Hotkey;
use serde::{Deserialize, Serialize};

pub use clock::{Clock, SystemClock, TokioClock};
pub use commitment::{CheckpointAnnouncement, Commitment};
pub use drand::{BeaconSource, ChainInfo, DrandClient, DrandError};
pub use endpoint::Endpoint;

/// The `version_key` grail validators set weights with: the protocol version.
///
/// Subtensor refuses weights whose version key is below the subnet's `WeightsVersionKey`
/// hyperparameter (`IncorrectWeightVersionKey`), which a subnet owner raises to lock out
/// validators running an outdated protocol. Deriving it from `PROTOCOL_VERSION` makes that
/// lever match protocol bumps: after a bump the owner sets `WeightsVersionKey` to the new
/// version and validators still checking the old rules can no longer set weights. What
/// breaks if it changes: lowering it (or deriving it from something smaller) below the
/// subnet's `WeightsVersionKey` makes every `set_weights` fail; it must never decrease.
pub const WEIGHTS_VERSION_KEY: u64 = grail_proto::params::PROTOCOL_VERSION as u64;

/// One registered participant of a subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neuron {
    /// Its uid in the subnet.
    pub uid: u16,
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Stake behind it (chain units, RAO on Bittensor).
    pub stake: u64,
    /// Whether it may set weights.
    pub validator_permit: bool,
}

/// The registered participants of a subnet, by uid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metagraph {
    /// Subnet id.
    pub netuid: u16,
    /// Participants in uid order.
    pub neurons: Vec<Neuron>,
}

impl Metagraph {
    /// The neuron registered with `hotkey`.
    pub fn by_hotkey(&self, hotkey: &Hotkey) -> Option<&Neuron> {
        self.neurons.iter().find(|n| &n.hotkey == hotkey)
    }
}

/// Why a chain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The local chain's state could not be locked in time (another process holds it).
    #[error("local chain state {path} is locked by another process (waited {waited_ms} ms)")]
    Locked {
        /// The lock file.
        path: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// A state file is not what this code wrote.
    #[error("local chain state {path} is corrupt: {detail}")]
    CorruptState {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The hotkey is not registered on the subnet.
    #[error("hotkey {} is not registered on subnet {netuid}", .hotkey.to_ss58())]
    NotRegistered {
        /// The hotkey.
        hotkey: Hotkey,
        /// The subnet.
        netuid: u16,
    },
    /// The chain refused the operation for a reason given only as text (test doubles and
    /// backends outside this crate; the refusals this crate detects have their own
    /// variants).
    #[error("{0}")]
    Rejected(String),
    /// The subnet has no free uid left for a new registration.
    #[error("subnet {netuid} is full")]
    SubnetFull {
        /// The subnet.
        netuid: u16,
    },
    /// Weights were set by a neuron without a validator permit.
    #[error("uid {uid} has no validator permit")]
    NoValidatorPermit {
        /// The setter's uid.
        uid: u16,
    },
    /// Weights name the same uid twice.
    #[error("weights name uid {uid} twice")]
    DuplicateWeightUid {
        /// The repeated uid.
        uid: u16,
    },
    /// Weights name a uid that is not registered.
    #[error("weights name uid {uid}, which is not registered (the subnet has {registered} uids)")]
    UnknownWeightUid {
        /// The uid.
        uid: u16,
        /// How many uids the subnet has.
        registered: usize,
    },
    /// Uids and weights given to [`subtensor::emit_weights`] differ in length.
    #[error("{uids} uids but {weights} weights")]
    WeightsLengthMismatch {
        /// Number of uids.
        uids: usize,
        /// Number of weights.
        weights: usize,
    },
    /// A weight given to [`subtensor::emit_weights`] is negative or not finite.
    #[error("weights must be finite and non-negative (uid {uid} has {weight})")]
    InvalidWeight {
        /// The uid it was given for.
        uid: u16,
        /// The weight.
        weight: f64,
    },
    /// An endpoint cannot be published: others could not connect to it, or Subtensor
    /// refuses it.
    #[error("endpoint {addr} {problem}")]
    UnpublishableEndpoint {
        /// The endpoint's address.
        addr: std::net::SocketAddr,
        /// What is wrong with it.
        problem: endpoint::EndpointProblem,
    },
    /// The block does not exist yet.
    #[error("block {requested} is in the future (head is {head})")]
    FutureBlock {
        /// Asked for.
        requested: u64,
        /// Current head.
        head: u64,
    },
    /// The RPC connection or a node call failed.
    #[error("subtensor: {context}: {source}")]
    Rpc {
        /// What was being done (endpoint, storage entry, call).
        context: String,
        /// subxt's error.
        #[source]
        source: BoxError,
    },
    /// A transaction could not be built, or the chain did not apply it.
    #[error("subtensor: {context}: {source}")]
    Transaction {
        /// What was being done.
        context: String,
        /// subxt's error (a dispatch error when the chain refused the call).
        #[source]
        source: BoxError,
    },
    /// The runtime has no such storage item (a runtime this code does not know).
    #[error("unexpected chain data: the runtime has no {pallet}::{entry}")]
    NoSuchStorage {
        /// The pallet.
        pallet: String,
        /// The storage item.
        entry: String,
    },
    /// A storage value decoded with bytes left over.
    #[error("unexpected chain data: {pallet}::{entry}: {left} bytes left after the value")]
    TrailingBytes {
        /// The pallet.
        pallet: String,
        /// The storage item.
        entry: String,
        /// Bytes not consumed by the value's type.
        left: usize,
    },
    /// The key of a storage map entry cannot be read back from its storage key (its
    /// hasher does not keep the key, or the storage key is too short).
    #[error(
        "unexpected chain data: {pallet}::{entry}: the key of a storage entry cannot be read back (hasher {hasher:?}, {key_len} bytes)"
    )]
    OpaqueStorageKey {
        /// The pallet.
        pallet: String,
        /// The storage item.
        entry: String,
        /// The map's last hasher (`None`: not a map, or no such item).
        hasher: Option<subxt::metadata::types::StorageHasher>,
        /// Length of the storage key.
        key_len: usize,
    },
    /// A decoded value or key does not have the shape grail reads.
    #[error("unexpected chain data: {item} is not {expected}")]
    UnexpectedShape {
        /// What was read (storage item, with its key where it helps).
        item: String,
        /// The shape expected.
        expected: &'static str,
    },
    /// A value every block has is absent.
    #[error("unexpected chain data: no {item} at block {block}")]
    MissingValue {
        /// What was read.
        item: &'static str,
        /// The block (number, or hash in hex).
        block: String,
    },
    /// Chain data could not be decoded at all.
    #[error("cannot decode {what}: {source}")]
    Undecodable {
        /// What was being decoded (metadata, a storage entry).
        what: String,
        /// The decoder's error.
        #[source]
        source: BoxError,
    },
    /// A local state file is not valid JSON of the expected shape.
    #[error("local chain state {path} is corrupt: {source}")]
    StateJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Local chain state could not be serialized.
    #[error("serializing {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking local chain task panicked or was cancelled.
    #[error("local chain task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A network name that is neither a known network nor a WebSocket URL.
    #[error(
        "configuration: network `{network}` is not finney, test, local or a ws:// / wss:// URL"
    )]
    UnknownNetwork {
        /// The name given.
        network: String,
    },
    /// A local chain with a block time of zero.
    #[error("configuration: block time must be positive")]
    ZeroBlockTime,
    /// No local chain exists in the directory opened.
    #[error("configuration: {} does not exist: no local chain there", .genesis.display())]
    NoLocalChain {
        /// The genesis file looked for.
        genesis: PathBuf,
    },
    /// This chain backend does not offer the operation.
    #[error("{0} is not supported by this chain backend")]
    Unsupported(&'static str),
    /// The subnet requires a newer weights version key than the one given.
    #[error("weights version key {ours} is below the subnet's WeightsVersionKey {required}")]
    VersionKeyTooOld {
        /// The version key given.
        ours: u64,
        /// The subnet's `WeightsVersionKey`.
        required: u64,
    },
    /// The subnet has commit-reveal enabled and weights cannot be committed the way the
    /// runtime requires, or not now.
    #[error("commit-reveal weights: {0}")]
    CommitReveal(#[source] subtensor::commit_reveal::CommitRevealError),
}

/// An error from a dependency whose error types are not part of this crate's API (subxt,
/// SCALE codecs).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl ChainError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn rpc(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Rpc {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// What grail needs from a chain. Implemented by the local clock chain and Subtensor.
#[async_trait]
pub trait Chain: Send + Sync {
    /// The subnet this handle is bound to.
    fn netuid(&self) -> u16;

    /// The current (best) block number.
    async fn block_number(&self) -> Result<u64, ChainError>;

    /// The hash of block `number` (an error for future blocks).
    async fn block_hash(&self, number: u64) -> Result<[u8; 32], ChainError>;

    /// The timestamp of block `number`, in milliseconds since the Unix epoch.
    async fn block_timestamp_ms(&self, number: u64) -> Result<u64, ChainError>;

    /// The subnet's registered participants.
    async fn metagraph(&self) -> Result<Metagraph, ChainError>;

    /// Every participant's latest commitment.
    async fn commitments(&self) -> Result<BTreeMap<Hotkey, Commitment>, ChainError>;

    /// Publishes `key`'s commitment (replacing its previous one).
    async fn commit(&self, key: &Keypair, commitment: &Commitment) -> Result<(), ChainError>;

    /// Sets `key`'s weights: `(uid, weight)` pairs, already quantised to u16
    /// ([`subtensor::emit_weights`]), under `version_key` (grail: [`WEIGHTS_VERSION_KEY`];
    /// refused with [`ChainError::VersionKeyTooOld`] below the subnet's). Where the subnet
    /// has commit-reveal enabled the weights are committed now and revealed later (the
    /// backend reveals due commits on later calls), so [`Chain::weights`] shows them only
    /// after the reveal.
    async fn set_weights(
        &self,
        key: &Keypair,
        weights: &[(u16, u16)],
        version_key: u64,
    ) -> Result<(), ChainError>;

    /// The weights `validator` last set, as `(uid, weight)` pairs.
    async fn weights(&self, validator: u16) -> Result<Vec<(u16, u16)>, ChainError>;

    /// Publishes where `key` serves its API, replacing what it published before
    /// (Subtensor: `serve_axon`). The default refuses with [`ChainError::Unsupported`].
    async fn serve_endpoint(&self, key: &Keypair, endpoint: &Endpoint) -> Result<(), ChainError> {
        let _ = (key, endpoint);
        Err(ChainError::Unsupported("publishing endpoints"))
    }

    /// Every endpoint published on the subnet, by hotkey (Subtensor: `Axons`; records
    /// that name no address are left out). Callers that want registered participants
    /// only join it with [`Chain::metagraph`]. The default refuses with
    /// [`ChainError::Unsupported`].
    async fn endpoints(&self) -> Result<BTreeMap<Hotkey, Endpoint>, ChainError> {
        Err(ChainError::Unsupported("reading endpoints"))
    }
}
