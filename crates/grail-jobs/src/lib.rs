//! grail-jobs: client workloads on the network (the v2 open inference API's core).
//!
//! A client submits prompts and a reward ([`spec::JobRequest`]); the job is checked
//! against [`limits`] and put in canonical form ([`spec::Job`]), whose digest names it
//! ([`spec::JobId`]). Every miner and validator loads the same canonical bytes into a
//! [`env::JobEnvironment`] — an `Environment` like `math:1` — so job groups are sampled,
//! proved and verified by the protocol's ordinary rules, and the reward is recomputed
//! by every validator: built-in specs ([`reward::RewardSpec`]) or a WebAssembly module
//! run in a deterministic sandbox ([`wasm`]).
//!
//! Pure functions over bytes: no HTTP, store or clock (the submission time is passed in).
//! docs/jobs.md is the user's reference.

pub mod api;
pub mod env;
pub mod limits;
pub mod reward;
pub mod spec;
pub mod wasm;

pub use env::JobEnvironment;
pub use reward::{RewardSpec, Scorer};
pub use spec::{Job, JobId, JobRequest, PromptRequest};

/// Why a job is refused. The messages name the field and are meant for the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// The document is over a size cap.
    #[error("job is {bytes} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON of the expected shape.
    #[error("{}invalid JSON: {message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Json {
        /// 1-based line of a JSONL file, if it came from one.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A field breaks a rule.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field (`prompts[3].answer`, `reward.module`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Job bytes that parse but are not the canonical form of their job.
    #[error("job bytes are not in canonical form (re-encode with Job::canonical_bytes)")]
    NotCanonical,
}

impl JobError {
    /// An [`JobError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        JobError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
