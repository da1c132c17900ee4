//! grail-node: the role loops — miner, validator, trainer — composed from the other crates.
//!
//! It is the only crate that depends on everything. The binaries under `bins/` parse
//! arguments into a [`config::NodeConfig`] and call [`miner::run`], [`validator::run`] or
//! [`trainer::run`].
//!
//! - [`config`]: the node configuration (TOML) and the subnet settings every participant
//!   must share.
//! - [`network`]: chain + beacon behind one handle, window arithmetic and the two window
//!   randomness values.
//! - [`context`]: a loaded model with its tokenizer, chat template and EOS set, and the
//!   canonical prompt rendering.
//! - [`checkpoints`]: which checkpoint is in effect for a window, download and caching.
//! - [`mining`]: building signed groups; [`miner`]: the miner loop.
//! - [`verify`]: drives the validator rules of `grail_proto::rules` (prompts, forward
//!   passes, rewards); [`validator`]: the validator loop, state, weights and HTTP API.
//! - [`trainer`]: the trainer loop.
//! - [`cursor`]: which window a role loop works on next (start, resume, readiness).
//! - [`eval`]: held-out evaluation; [`experiment`]: the learning-efficacy experiment.
//! - [`localnet`]: setting up and inspecting a whole network on one machine.
//! - [`model_tools`]: GGUF import, tokenizer and tiny-model tools behind `grail-miner model`.
//! - [`cli`]: role flags, logging and the role runner the binaries call.
//! - [`metrics`]: the Prometheus text format and the miner's and trainer's `/metrics`.
//! - [`progress`]: progress lines (rate, ETA) for model import, loading and generation.

pub mod checkpoints;
pub mod cli;
pub mod config;
pub mod context;
pub mod cursor;
pub mod eval;
pub mod experiment;
pub mod jobs;
pub mod localnet;
pub mod metrics;
pub mod miner;
pub mod mining;
pub mod model_tools;
pub mod network;
pub mod progress;
#[cfg(test)]
mod sim;
pub mod trainer;
pub mod validator;
pub mod verify;
pub mod wiring;

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
    Verification(#[from] verify::OwnFailure),
    /// The validator's own failure while answering the window verifier (prompt
    /// rendering, forward pass, environment), after its retries.
    #[error("verification could not run: {0}")]
    Fault(#[from] grail_proto::verifier::ValidatorFault),
    /// `grail-validator reverify` could not run or found disagreeing verdicts.
    #[error(transparent)]
    Reverify(#[from] validator::reverify_cli::ReverifyError),
    /// `grail-trainer export` was asked for an impossible range.
    #[error(transparent)]
    Export(#[from] trainer::export::ExportError),
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

impl NodeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
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
