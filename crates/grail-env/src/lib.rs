//! grail-env: the environments miners and validators both run.
//!
//! An [`Environment`] turns a prompt id into a [`Problem`], renders it into a chat prompt
//! with a [`template::ChatTemplate`], and scores a completion into a [`RewardVector`].
//! Everything is deterministic and identical on every machine: generators draw from
//! ChaCha20 streams keyed by grail-proto's PRF, parsers are hand-written (no regex engine
//! differences), and rewards are plain f64 sums in a fixed order.
//!
//! - [`sat`] — 3-SAT from a seed, a DPLL solver, the `<SOLUTION>` bit parser and rewards.
//! - [`math`] — procedural arithmetic and word problems with exact rational answers, and
//!   loaders for GSM8K / Hendrycks MATH JSONL files the user has on disk.
//! - [`echo`] — a warm-up task (repeat a word) for tiny test models.
//! - [`mix`] — a weighted mix of environments (several task families or tiers per subnet).
//! - [`answer`] — shared answer extraction and normalisation (tags, `\boxed{}`, numbers).
//! - [`template`] — chat templates (ChatML, Llama-3, or the model's own Jinja template).
//! - [`registry`] — environments by spec (`math:1`, `3*math:0 + math:2`), with the [`EnvironmentId`] that goes into the
//!   signed binding.
//!
//! No I/O beyond reading a dataset file the user points to; no chain, store or torch.

pub mod answer;
pub mod echo;
pub mod math;
pub mod mix;
pub mod registry;
pub mod sat;
pub mod template;

pub use grail_proto::EnvironmentId;
pub use registry::{by_name, names};

/// A problem instance: what the model sees and what the scorer checks against.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The prompt id it was made from.
    pub prompt_id: u64,
    /// The user message (the task statement), before chat templating.
    pub statement: String,
    /// What a correct answer must satisfy.
    pub target: Target,
}

/// The environment-specific truth a completion is scored against.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A SAT instance: any satisfying assignment is correct.
    Sat(sat::SatInstance),
    /// A math answer, compared by value when both sides are numbers.
    Math(answer::Answer),
    /// A word to repeat (the echo environment).
    Word(String),
    /// The environment keeps the truth itself, by prompt id (a client job's gold answer
    /// and reward live in the job, see grail-jobs).
    Held,
}

/// A reward broken into named components, with their weighted total.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardVector {
    /// `(name, value)` per component, each value in `[0, 1]`, in a fixed order.
    pub components: Vec<(&'static str, f64)>,
    /// `Σ weight · value` over the components, in order.
    pub total: f64,
    /// Whether the answer is correct.
    pub success: bool,
}

impl RewardVector {
    /// Builds the vector from `(name, weight, value)` triples.
    pub fn weighted(parts: &[(&'static str, f64, f64)], success: bool) -> Self {
        Self {
            components: parts.iter().map(|&(n, _, v)| (n, v)).collect(),
            total: parts.iter().map(|&(_, w, v)| w * v).sum(),
            success,
        }
    }

    /// Builds the vector from a weight table and the matching component values.
    pub fn from_table(weights: &[(&'static str, f64)], values: &[f64], success: bool) -> Self {
        let parts: Vec<(&'static str, f64, f64)> = weights
            .iter()
            .zip(values)
            .map(|(&(n, w), &v)| (n, w, v))
            .collect();
        Self::weighted(&parts, success)
    }

    /// The value of one component, if present.
    pub fn component(&self, name: &str) -> Option<f64> {
        self.components
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

/// Errors an environment reports.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The prompt id is outside the environment's prompt space.
    #[error("prompt id {id} outside the prompt space of {env} ({size} prompts)")]
    PromptOutOfRange {
        /// Environment name.
        env: String,
        /// The id asked for.
        id: u64,
        /// Number of prompts.
        size: u64,
    },
    /// A dataset file could not be read.
    #[error("cannot read dataset {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A dataset line is malformed.
    #[error("{path}:{line}: {message}")]
    Dataset {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A dataset line is not JSON.
    #[error("{path}:{line}: invalid JSON: {source}")]
    DatasetJson {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An environment name that is not registered.
    #[error("unknown environment `{name}` (known: {})", .known.join(", "))]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// The registered names ([`names`]).
        known: &'static [&'static str],
    },
    /// A tier the environment does not have.
    #[error("environment {env} has tiers 0..={}, not {tier}", .tiers.saturating_sub(1))]
    NoSuchTier {
        /// Environment name.
        env: String,
        /// The tier asked for.
        tier: u8,
        /// Number of tiers (`0..tiers` exist).
        tiers: u8,
    },
    /// A dataset environment and no dataset file to read.
    #[error(
        "environment `{env}` needs a dataset file (JSONL; `subnet.dataset` in the configuration)"
    )]
    NeedsDataset {
        /// Environment name.
        env: String,
    },
    /// A tier on an environment without tiers.
    #[error("environment spec `{label}`: only `math` and `sat` have tiers")]
    Untiered {
        /// The spec part (`echo:1`).
        label: String,
    },
    /// A tier that is not a number from 0 to 255.
    #[error("environment spec `{label}`: the tier must be a small number: {source}")]
    BadTier {
        /// The spec part (`math:x`).
        label: String,
        /// Why it does not parse.
        #[source]
        source: std::num::ParseIntError,
    },
    /// A weight that is not a whole number ≥ 1.
    #[error("environment spec `{part}`: the weight must be a whole number ≥ 1")]
    BadWeight {
        /// The spec part (`0*math`).
        part: String,
    },
    /// A weight on a spec of a single part.
    #[error("environment spec `{spec}`: a weight needs a mix of several parts")]
    LoneWeight {
        /// The spec.
        spec: String,
    },
    /// A mix with too few or too many parts.
    #[error("a mix needs 2..={max} parts, not {parts}")]
    MixSize {
        /// Parts given.
        parts: usize,
        /// Most parts allowed ([`mix::MAX_PARTS`]).
        max: usize,
    },
    /// A mix part of weight 0.
    #[error("mix part `{label}` has weight 0; mix weights must be at least 1")]
    ZeroWeight {
        /// The part's label.
        label: String,
    },
    /// `tokenizer_config.json` is not JSON.
    #[error("chat template: tokenizer_config.json: {0}")]
    TemplateConfig(#[source] serde_json::Error),
    /// A Jinja chat template failed to compile or render.
    #[error("chat template: {0}")]
    Jinja(#[source] minijinja::Error),
}

/// `tier` when it is below `tiers`, else an error naming the environment's tiers.
fn check_tier(env: &str, tier: u8, tiers: u8) -> Result<u8, EnvError> {
    if tier < tiers {
        Ok(tier)
    } else {
        Err(EnvError::NoSuchTier {
            env: env.into(),
            tier,
            tiers,
        })
    }
}

/// How many prompts an environment offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptSpace {
    /// Any `u64` is a valid prompt id (procedural generators).
    Unbounded,
    /// Ids `0..n` (datasets).
    Finite(u64),
}

/// A task family: problems from prompt ids, rendering, scoring.
pub trait Environment: Send + Sync {
    /// Name and canonical parameters; bound into every signed group.
    fn id(&self) -> EnvironmentId;

    /// The valid prompt ids.
    fn prompt_space(&self) -> PromptSpace;

    /// The problem for a prompt id.
    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError>;

    /// Scores a completion. `completion` is the decoded completion text; a trailing
    /// end-of-sequence marker (one of `eos_markers`, e.g. `<|im_end|>`) is not part of the
    /// answer and is never counted as trailing text.
    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector;

    /// A label for the kind of problem a prompt id gives (its tier, level or mix part,
    /// e.g. `math:1`): validators report learning-zone statistics per stratum, and miners
    /// may use them to choose prompts. Default: the environment's name.
    fn stratum(&self, _prompt_id: u64) -> String {
        self.id().name
    }

    /// Every stratum [`Self::stratum`] can return. Default: the one of prompt 0 (an
    /// environment whose strata vary overrides it).
    fn strata(&self) -> Vec<String> {
        vec![self.stratum(0)]
    }

    /// The chat messages for a problem: the shared system prompt and the statement.
    fn messages(&self, problem: &Problem) -> Vec<template::Message> {
        vec![
            template::Message::system(template::SYSTEM_PROMPT),
            template::Message::user(&problem.statement),
        ]
    }

    /// The full prompt text for a problem under a chat template (with the assistant's
    /// generation prompt). Byte-identical on every machine for the same template.
    fn render(&self, problem: &Problem, tmpl: &template::ChatTemplate) -> Result<String, EnvError> {
        tmpl.render(&self.messages(problem), true)
    }
}
