//! Coverage-guided fuzzing of every surface where grail-rs reads bytes it does not trust:
//! miners' bundles and groups, validators' archives, environment parsers, the validator's
//! HTTP API, chain commitments and model files (GGUF, safetensors, config.json,
//! tokenizer.json).
//!
//! It runs on the stable toolchain: `cargo xtask fuzz` builds this crate with LLVM's
//! SanitizerCoverage counters ([`coverage`]) and runs each target in supervised child
//! processes ([`supervise`]) with a counting allocator ([`alloc`]); a panic, an abort, a
//! hang or one execution's heap use over the limit is a finding, saved with its input.
//! `cargo test -p grail-fuzz` runs a short uninstrumented pass of every target and replays
//! the inputs of earlier findings (`regressions/`). See docs/reliability.md.

pub mod alloc;
pub mod coverage;
pub mod engine;
pub mod supervise;
pub mod targets;

/// Every allocation of a process that links this crate is counted.
#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;
