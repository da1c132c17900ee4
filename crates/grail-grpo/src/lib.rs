//! grail-grpo: GRPO training on verified rollout groups.
//!
//! - [`config::GrpoConfig`]: every coefficient in one place, with documented defaults.
//! - [`advantage`]: group advantages (GRPO, Dr.GRPO, rank-based) and the overlong penalty.
//! - [`loss`]: the token-level clipped policy loss with dual clip, k3 KL and entropy, as a
//!   pure function of tensors.
//! - [`optim`]: AdamW with decoupled weight decay, global-norm clipping, warmup + cosine.
//! - [`trainer::Trainer`]: micro-batched steps with gradient accumulation, health gates and
//!   metrics, on a grail-infer [`Model`](grail_infer::model::Model).
//! - [`checkpoint`]: Hugging Face export and resumable training state.

pub mod advantage;
pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod optim;
pub mod trainer;

pub use config::{AdvantageMode, Aggregation, GrpoConfig, OverlongPenalty};
pub use trainer::{RolloutGroup, StepReport, Trainer, TrainingRollout};

/// Why training could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum GrpoError {
    /// Input that cannot be trained on (shapes, lengths, ids).
    #[error("bad training input: {0}")]
    Input(String),
    /// A configuration value out of range.
    #[error("bad training configuration: {0}")]
    Config(String),
    /// The model layer failed.
    #[error(transparent)]
    Infer(#[from] grail_infer::InferError),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A tensor file could not be read or written.
    #[error("{context}: {source}")]
    TorchFile {
        /// What was being done (which file).
        context: String,
        /// libtorch's error.
        #[source]
        source: tch::TchError,
    },
    /// JSON could not be parsed or written.
    #[error("{context}: {source}")]
    Json {
        /// What was being done (which file).
        context: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

impl GrpoError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
