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

use std::path::PathBuf;

/// Why training could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum GrpoError {
    /// A configuration value outside its allowed range.
    #[error("bad training configuration: `{field}` is {value}, allowed {allowed}")]
    OutOfRange {
        /// The [`GrpoConfig`] field (`overlong.buffer` for a nested one).
        field: &'static str,
        /// Its value (an integer field's as `f64`).
        value: f64,
        /// The values allowed (`[0, 1)`, `> 0`, …).
        allowed: &'static str,
    },
    /// `kl_coef > 0` without a reference model to measure the KL against.
    #[error("bad training configuration: kl_coef = {kl_coef} > 0 needs a reference model")]
    NoReference {
        /// The configured KL coefficient.
        kl_coef: f64,
    },
    /// A group without prompt tokens.
    #[error("bad training input: group {group}: empty prompt")]
    EmptyPrompt {
        /// Index of the group in the step's input.
        group: usize,
    },
    /// A reward (after the overlong penalty) that is NaN or infinite.
    #[error("bad training input: group {group} rollout {rollout}: non-finite reward {reward}")]
    NonFiniteReward {
        /// Index of the group in the step's input.
        group: usize,
        /// Index of the rollout in its group.
        rollout: usize,
        /// The shaped reward.
        reward: f64,
    },
    /// A rollout without completion tokens.
    #[error("bad training input: group {group} rollout {rollout}: empty completion")]
    EmptyCompletion {
        /// Index of the group in the step's input.
        group: usize,
        /// Index of the rollout in its group.
        rollout: usize,
    },
    /// Completion tokens and behaviour log-probs of different counts.
    #[error(
        "bad training input: group {group} rollout {rollout}: {tokens} completion tokens but {logprobs} log-probs"
    )]
    LogprobCount {
        /// Index of the group in the step's input.
        group: usize,
        /// Index of the rollout in its group.
        rollout: usize,
        /// Completion tokens.
        tokens: usize,
        /// Behaviour log-probs.
        logprobs: usize,
    },
    /// A behaviour log-prob that is not finite and ≤ 0.
    #[error(
        "bad training input: group {group} rollout {rollout}: log-prob {value} at completion token {index}; log-probs must be finite and ≤ 0"
    )]
    BadLogprob {
        /// Index of the group in the step's input.
        group: usize,
        /// Index of the rollout in its group.
        rollout: usize,
        /// Index of the completion token.
        index: usize,
        /// The log-prob.
        value: f32,
    },
    /// The source model directory has no `tokenizer.json` to export with the weights.
    #[error("cannot export the model: {path} is missing")]
    MissingTokenizer {
        /// The file looked for.
        path: PathBuf,
    },
    /// Saved optimizer state for another number of parameter tensors.
    #[error("{dir} holds moments for {saved} tensors, the model has {model}")]
    StateTensorCount {
        /// The training-state directory.
        dir: PathBuf,
        /// Tensors in the saved state.
        saved: usize,
        /// Trainable tensors of the model.
        model: usize,
    },
    /// A moment tensor absent from the saved optimizer state.
    #[error("optimizer state {path} lacks `{name}`")]
    MissingMoment {
        /// The moments file.
        path: PathBuf,
        /// The tensor's name (`m.3`, `v.3`).
        name: String,
    },
    /// A saved moment tensor whose shape differs from its parameter's.
    #[error("optimizer `{name}` in {path} has shape {shape:?}, expected {expected:?}")]
    MomentShape {
        /// The moments file.
        path: PathBuf,
        /// The tensor's name (`m.3`, `v.3`).
        name: String,
        /// Its saved shape.
        shape: Vec<i64>,
        /// The parameter's shape.
        expected: Vec<i64>,
    },
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
