//! grail-infer: libtorch (tch) inference for rollouts and proofs.
//!
//! Miners sample rollouts with it, validators recompute hidden states and log-probs with
//! it, and the trainer trains through it. It owns the decoder ([`model`]: Llama, Qwen2,
//! Qwen3), model directories ([`files`]), GGUF import ([`gguf`], [`import`]), tokenizers
//! ([`tokenizer`]), batched sampling with a KV cache ([`generate`]), the proof pass that
//! implements grail-proto's `HiddenStates` ([`score`]) and a tiny seeded model for tests
//! ([`tiny`]). It knows nothing of chain or storage.

pub mod config;
pub mod device;
pub mod files;
pub mod generate;
pub mod gguf;
pub mod import;
pub mod model;
pub mod score;
pub mod tiny;
pub mod tokenizer;

pub use config::{Architecture, ModelConfig};
pub use device::{resolve as resolve_device, DeviceChoice};
pub use files::ModelDir;
pub use generate::{Completion, GroupRequest, SamplingParams};
pub use model::{KvCache, Model};
pub use score::{ProofModel, SamplingCheck, Scored};
pub use tokenizer::Tokenizer;

/// Progress of long work (loading, importing, generating), for a caller to display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is being done.
    pub stage: &'static str,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

impl Progress {
    /// A progress report.
    pub fn new(stage: &'static str, done: u64, total: u64) -> Self {
        Self { stage, done, total }
    }
}

/// Ignores progress.
pub fn no_progress(_: Progress) {}

/// Everything that can go wrong in grail-infer.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// config.json is unreadable or describes a model we cannot run.
    #[error("model config: {0}")]
    Config(String),
    /// Weights are missing, misshapen or unreadable.
    #[error("model weights: {0}")]
    Weights(String),
    /// The tokenizer could not be built or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A GGUF file is malformed or uses something we do not support.
    #[error("gguf: {0}")]
    Gguf(String),
    /// The caller's input (tokens, parameters) cannot be run.
    #[error("invalid input: {0}")]
    Input(String),
    /// The caller cancelled the work before it finished (`generate_groups_until`).
    #[error("cancelled before it finished")]
    Cancelled,
    /// A device could not be chosen.
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// JSON could not be parsed or written.
    #[error("{context}: {source}")]
    Json {
        /// What was being done (which file or document).
        context: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// libtorch failed (reading or writing safetensors, converting a tensor).
    #[error("{context}: {source}")]
    Torch {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: tch::TchError,
    },
    /// The Hugging Face tokenizers library failed.
    #[error("tokenizer: {context}: {source}")]
    TokenizerLib {
        /// What was being done.
        context: String,
        /// The library's error.
        #[source]
        source: tokenizers::Error,
    },
    /// Another error, with where it happened (a file, a tensor).
    #[error("{context}: {source}")]
    Context {
        /// Where or what.
        context: String,
        /// The error.
        #[source]
        source: Box<InferError>,
    },
}

impl InferError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A libtorch error with what was being done.
    pub fn torch(context: impl Into<String>, source: tch::TchError) -> Self {
        Self::Torch {
            context: context.into(),
            source,
        }
    }

    /// A JSON error with what was being done.
    pub fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            context: context.into(),
            source,
        }
    }

    /// This error with where it happened.
    pub fn context(self, context: impl Into<String>) -> Self {
        Self::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// Parses a dtype name (`f32`, `bf16`, `f16`, or the torch spellings).
pub fn parse_kind(name: &str) -> Result<tch::Kind, InferError> {
    match name {
        "f32" | "float32" | "fp32" => Ok(tch::Kind::Float),
        "bf16" | "bfloat16" => Ok(tch::Kind::BFloat16),
        "f16" | "float16" | "fp16" => Ok(tch::Kind::Half),
        other => Err(InferError::Input(format!(
            "dtype `{other}` is not one of f32, bf16, f16"
        ))),
    }
}
