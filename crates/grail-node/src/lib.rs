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
//! - [`localnet`]: setting up and inspecting a whole network on one machine.

pub mod checkpoints;
pub mod cli;
pub mod config;
pub mod context;
pub mod eval;
pub mod experiment;
pub mod localnet;
pub mod miner;
pub mod mining;
pub mod network;
pub mod trainer;
pub mod validator;
pub mod verify;
pub mod wiring;

use std::path::Path;

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
    /// An environment failed.
    #[error(transparent)]
    Env(#[from] grail_env::EnvError),
    /// Training failed.
    #[error(transparent)]
    Grpo(#[from] grail_grpo::GrpoError),
    /// Encoding failed.
    #[error(transparent)]
    Wire(#[from] grail_proto::WireError),
    /// A key file could not be loaded.
    #[error(transparent)]
    Key(#[from] grail_chain::keys::KeyfileError),
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The validator's own forward pass gave unusable evidence (non-finite logits, a
    /// missing position): the window is retried and no miner is blamed.
    #[error("verification could not run: {0}")]
    Verification(String),
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

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| NodeError::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| NodeError::io(format!("writing {}", path.display()), e))
}

/// Reads JSON from `path`; `None` when the file does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, NodeError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NodeError::Config(format!("{} is corrupt: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::io(format!("reading {}", path.display()), e)),
    }
}
