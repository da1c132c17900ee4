//! grail-node: the node core every role is built on — configuration, the network handle,
//! the model context, checkpoints, the window cursor and the shared file and metrics
//! helpers. The roles live in their own crates (grail-mine, grail-validate, grail-train);
//! the lab tools (experiment, evaluation, local network) in grail-lab.
//!
//! - [`config`]: the node configuration (TOML) and the subnet settings every participant
//!   must share.
//! - [`network`]: chain + beacon behind one handle, window arithmetic and the two window
//!   randomness values.
//! - [`context`]: a loaded model with its tokenizer, chat template and EOS set, and the
//!   canonical prompt rendering.
//! - [`checkpoints`]: which checkpoint is in effect for a window, download and caching.
//! - [`wiring`]: a participant's key, network, bucket and checkpoints, built from config.
//! - [`cursor`]: which window a role loop works on next (start, resume, readiness).
//! - [`zone`]: the learning-zone counts validators report and miners read.
//! - [`cli`]: the flags every role binary shares, logging and the start-up a role needs.
//! - [`metrics`]: the Prometheus text format and the `/metrics` server.
//! - [`progress`]: progress lines (rate, ETA) for model import, loading and generation.
//! - `sim` (feature `sim`): a simulated chain on tokio's clock for role-loop tests.

pub mod checkpoints;
pub mod cli;
pub mod config;
pub mod context;
pub mod cursor;
pub mod metrics;
pub mod network;
pub mod progress;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod wiring;
pub mod zone;

use std::path::{Path, PathBuf};

/// The three roles of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Generates rollouts with proofs and uploads window bundles.
    Miner,
    /// Verifies bundles, scores miners and sets weights.
    Validator,
    /// Trains on verified rollouts and publishes checkpoints.
    Trainer,
}

impl Role {
    /// The role's lowercase name, as used in binaries and logs.
    pub fn name(self) -> &'static str {
        match self {
            Role::Miner => "miner",
            Role::Validator => "validator",
            Role::Trainer => "trainer",
        }
    }
}

/// Why a role stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Chain access failed.
    #[error(transparent)]
    Chain(#[from] grail_chain::ChainError),
    /// No verified beacon.
    #[error(transparent)]
    Drand(#[from] grail_chain::DrandError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] grail_store::StoreError),
    /// The model failed.
    #[error(transparent)]
    Infer(#[from] grail_infer::InferError),
    /// No usable compute device.
    #[error(transparent)]
    Device(#[from] grail_infer::device::DeviceError),
    /// An environment failed.
    #[error(transparent)]
    Env(#[from] grail_env::EnvError),
    /// Training failed.
    #[error(transparent)]
    Grpo(#[from] grail_grpo::GrpoError),
    /// The `[trainer.grpo]` coefficients are invalid.
    #[error("trainer.grpo: {0}")]
    TrainerCoefficients(#[source] grail_grpo::GrpoError),
    /// Encoding failed.
    #[error(transparent)]
    Wire(#[from] grail_proto::WireError),
    /// A key file could not be loaded.
    #[error(transparent)]
    Key(#[from] grail_chain::keys::KeyfileError),
    /// An SS58 address in the configuration is invalid.
    #[error("{field}: {source}")]
    Address {
        /// The configuration key.
        field: &'static str,
        /// The parse error.
        #[source]
        source: grail_proto::signing::KeyError,
    },
    /// A commitment would not fit on chain.
    #[error(transparent)]
    Commitment(#[from] grail_chain::commitment::CommitmentError),
    /// A configuration value or command-line argument is invalid (the message names it).
    #[error("configuration: {0}")]
    Config(String),
    /// A TOML file does not parse as the expected configuration.
    #[error("{path}: {source}")]
    Toml {
        /// The file (empty when parsed from a string).
        path: PathBuf,
        /// The parse error.
        #[source]
        source: toml::de::Error,
    },
    /// A JSON state file is not what this code wrote.
    #[error("{path} is corrupt: {source}")]
    CorruptJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded as JSON.
    #[error("encoding {what} as JSON: {source}")]
    EncodeJson {
        /// What was being encoded.
        what: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The chain reported a block time that is not a valid instant.
    #[error("block {block} has an impossible time {ms} ms")]
    BlockTime {
        /// The block.
        block: u64,
        /// Its timestamp.
        ms: u64,
    },
    /// The trainer's bucket holds a checkpoint other than the one announced on chain.
    #[error("checkpoint {number} in the trainer's bucket is not the announced one")]
    CheckpointMismatch {
        /// The checkpoint number.
        number: u64,
    },
    /// A blocking task (model loading) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The validator's own forward pass gave unusable evidence: the window is retried and
    /// no miner is blamed.
    #[error("verification could not run: {0}")]
    Verification(#[from] OwnFailure),
    /// The validator's own failure while answering the window verifier (prompt
    /// rendering, forward pass, environment), after its retries.
    #[error("verification could not run: {0}")]
    Fault(#[from] grail_proto::verifier::ValidatorFault),
    /// A role command's own error (`grail-validator reverify` found disagreeing
    /// verdicts, `grail-trainer export` was asked for an impossible range, …); the role
    /// crates convert their error types into this.
    #[error(transparent)]
    Command(Box<dyn std::error::Error + Send + Sync>),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The validator's own forward pass gave unusable evidence (never the miner's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OwnFailure {
    /// The proof pass returned no hidden state for a challenged position.
    #[error("a challenged position has no hidden state")]
    MissingHiddenState,
    /// The model's logits do not define a distribution (non-finite values).
    #[error("the model's logits do not define a distribution (non-finite values)")]
    NonFiniteLogits,
}

impl NodeError {
    /// An [`NodeError::Io`] saying what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// A background task that ends when its owner drops this handle.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs CPU-bound work (a forward pass, a training step) from async code: on a
/// multi-threaded runtime the worker thread is handed over meanwhile
/// (`block_in_place`); elsewhere (a current-thread runtime, as in simulated-time tests,
/// or no runtime) it runs in place.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Writes `bytes` to `path` atomically and durably (see [`grail_fs::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    grail_fs::write_atomic(path, bytes)
        .map_err(|e| NodeError::io(format!("writing {}", path.display()), e))
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), NodeError> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| NodeError::EncodeJson {
        what: path.display().to_string(),
        source,
    })?;
    write_atomic(path, &json)
}

/// Reads JSON from `path`; `None` when the file does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, NodeError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| NodeError::CorruptJson {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::io(format!("reading {}", path.display()), e)),
    }
}
