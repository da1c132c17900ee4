//! grail-lab: the tools around the network rather than in it — the learning-efficacy
//! experiment, held-out evaluation, setting up and inspecting a whole network on one
//! machine, and the model tools behind `grail-miner model`.
//!
//! - [`experiment`]: the learning-efficacy experiment (zone vs random prompts).
//! - [`eval`]: held-out evaluation of a checkpoint.
//! - [`localnet`]: a whole network on one machine: init, beacon, summary.
//! - [`model_tools`]: GGUF import, tokenizer and tiny-model tools.

pub mod eval;
pub mod experiment;
pub mod localnet;
pub mod model_tools;

/// The default task of the experiment, held-out evaluation and the local network:
/// procedural math tiers 0–3 in equal parts.
pub const DEFAULT_ENVIRONMENT: &str = "math:0 + math:1 + math:2 + math:3";
