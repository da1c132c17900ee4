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
    /// config.json (or a GGUF file) names a `model_type` this crate does not run.
    #[error("model config: model_type `{model_type}` is not supported (llama, qwen2, qwen3)")]
    UnsupportedArchitecture {
        /// The `model_type` found.
        model_type: String,
    },
    /// A config.json field is outside what the decoder can run.
    #[error("model config: config.json: {field} {requirement}")]
    ConfigField {
        /// The field (`hidden_size`, `max_position_embeddings`, ...).
        field: &'static str,
        /// What it must be.
        requirement: String,
    },
    /// A RoPE scaling type this crate does not implement.
    #[error("rope_scaling type `{rope_type}` is not supported")]
    UnsupportedRopeScaling {
        /// The type found.
        rope_type: String,
    },
    /// A model folder names no EOS token anywhere.
    #[error(
        "model config: {}: no EOS token in config.json, generation_config.json or \
         tokenizer_config.json",
        dir.display()
    )]
    NoEosToken {
        /// The model folder.
        dir: std::path::PathBuf,
    },
    /// A tensor the model needs is not among the weights.
    #[error("model weights: missing tensor `{name}`")]
    MissingTensor {
        /// Its Hugging Face name.
        name: String,
    },
    /// A tensor's shape is not the one the config implies.
    #[error("model weights: tensor `{name}` has shape {shape:?}, expected {expected:?}")]
    TensorShape {
        /// Its Hugging Face name.
        name: String,
        /// The shape found.
        shape: Vec<i64>,
        /// The shape the config implies.
        expected: Vec<i64>,
    },
    /// A dtype name that is not f32, bf16 or f16 ([`parse_kind`]).
    #[error("dtype `{name}` is not one of f32, bf16, f16")]
    UnsupportedDtype {
        /// The name given.
        name: String,
    },
    /// model.safetensors.index.json has no `weight_map`.
    #[error("model weights: {} has no weight_map", path.display())]
    NoWeightMap {
        /// The index file.
        path: std::path::PathBuf,
    },
    /// model.safetensors.index.json names a shard outside the model folder.
    #[error("model weights: shard name `{shard}` leaves the folder")]
    ShardOutsideFolder {
        /// The shard name.
        shard: String,
    },
    /// A token id at or above the vocabulary size.
    #[error("invalid input: token id {id} is outside the vocabulary ({vocab})")]
    TokenOutOfVocabulary {
        /// The first such id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A sequence (plus the room asked for after it) longer than the model's positions.
    #[error(
        "invalid input: sequence of {tokens} tokens (+{extra}) exceeds the model's {max} positions"
    )]
    SequenceTooLong {
        /// Tokens in the sequence.
        tokens: usize,
        /// Positions asked for after it (a completion's room).
        extra: usize,
        /// `max_position_embeddings`.
        max: usize,
    },
    /// An empty token sequence or prompt.
    #[error("invalid input: empty {what}")]
    EmptyTokens {
        /// What was empty (`token sequence`, `prompt`).
        what: &'static str,
    },
    /// A position asked of a scored sequence lies beyond its end.
    #[error("invalid input: position {position} beyond the sequence ({len} positions)")]
    PositionOutOfRange {
        /// The position asked for.
        position: usize,
        /// Positions in the sequence.
        len: usize,
    },
    /// One row's logits do not define a distribution to sample from (a non-finite logit).
    #[error("sampling row {row}: {source}")]
    Sampling {
        /// The row of the batch.
        row: usize,
        /// The protocol sampler's error.
        #[source]
        source: grail_proto::sampling::SamplingError,
    },
    /// The caller's arguments do not fit together (counts, sampling parameters, tokens
    /// other than the scored ones).
    #[error("invalid input: {0}")]
    Input(String),
    /// The tokenizers library panicked (on a malformed tokenizer.json, or mid-call).
    #[error("tokenizer: {what}: the tokenizers library panicked: {message}")]
    TokenizerPanic {
        /// What was being done (`parsing tokenizer.json`, `encoding`, `decoding`).
        what: &'static str,
        /// The panic message.
        message: String,
    },
    /// A GGUF pre-tokenizer (`tokenizer.ggml.pre`) this crate cannot rebuild.
    #[error("tokenizer: pre-tokenizer `{name}` is not supported (gpt-2, smollm, qwen2)")]
    UnsupportedPreTokenizer {
        /// The name found.
        name: String,
    },
    /// A GGUF tokenizer model (`tokenizer.ggml.model`) other than byte-level BPE.
    #[error("gguf: tokenizer model `{model}` is not supported (byte-level BPE `gpt2` only)")]
    UnsupportedTokenizer {
        /// The model found.
        model: String,
    },
    /// A Qwen `.tiktoken` vocabulary without the expected number of ranks.
    #[error("tokenizer: a Qwen vocabulary has {expected} ranks, this one {found}")]
    VocabularySize {
        /// Ranks a Qwen vocabulary has.
        expected: usize,
        /// Ranks in this one.
        found: usize,
    },
    /// A `.tiktoken` line that is not `base64 rank` with consecutive ranks.
    #[error("tokenizer: tiktoken line {line}: {problem}")]
    Tiktoken {
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Not a GGUF file (bad magic).
    #[error("gguf: not a GGUF file (bad magic)")]
    NotGguf,
    /// A GGUF version other than 2 and 3.
    #[error("gguf: GGUF version {version} is not supported (2, 3)")]
    UnsupportedGgufVersion {
        /// The version found.
        version: u32,
    },
    /// A GGUF tensor storage type this crate does not dequantize.
    #[error("gguf: tensor type {code} is not supported (F32, F16, Q4_0, Q4_1, Q8_0)")]
    UnsupportedTensorType {
        /// The type code found.
        code: u32,
    },
    /// Required GGUF metadata is missing or of another type.
    #[error("gguf: metadata `{key}` missing or not {expected}")]
    GgufMetadata {
        /// The key.
        key: String,
        /// The type it must have (`an integer`, `a string`, `a string array`).
        expected: &'static str,
    },
    /// A GGUF tensor with no Hugging Face counterpart.
    #[error("gguf: unknown tensor `{name}`")]
    UnknownGgufTensor {
        /// Its GGUF name.
        name: String,
    },
    /// A GGUF file is malformed (truncated, implausible sizes, misshapen tensors).
    #[error("gguf: {0}")]
    Gguf(String),
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
        other => Err(InferError::UnsupportedDtype { name: other.into() }),
    }
}
