//! Sampling soundness audit (protocol v5, Gumbel-max with public noise): how far honest
//! recomputations move the *gap* of each sampled token (its perturbed score minus the best
//! other token's, the drift `SAMPLING_MARGIN` must absorb), how often a position offers an
//! attacker a choice, whether bf16 sampling passes an fp32 check, and how often off-policy
//! rollouts pass: another model, int8 weights, another temperature, best-of-n and an
//! edited token. Used by `cargo xtask audit-sampling` (SmolLM2) and by CI on the tiny
//! model (`tests/soundness_sampling.rs`).
//!
//! Every measurement keeps, per completion position, the validator's recomputed gap of
//! the claimed token, so a [`Report`] can be read at any margin.
//!
//! - `corpus` — whose noise ([`Setup`]) and the honest rollouts ([`Corpus`]).
//! - `recompute` — the validator's recomputed gaps ([`Checked`]).
//! - `strategies` — off-policy samplers (best-of-n, one edited token).
//! - `run` — what to run ([`Plan`]), the run and its [`Report`].
//! - `stats` — summaries and bounds at a margin.
//! - `markdown` — the report as Markdown tables.
//! - `raw` — the raw measurement file ([`Report::write_raw`], [`Report::read_raw`]).

mod corpus;
mod markdown;
mod raw;
mod recompute;
mod run;
mod stats;
mod strategies;

pub use corpus::{sample_public, Corpus, Setup, GROUPS_PER_BATCH};
pub use recompute::{alternatives, recompute, recompute_incremental, Checked};
pub use run::{run, Condition, Plan, Report, Strategy};
pub use stats::{recommended_margin, upper_95, DriftSummary, StrategySummary, WINDOW_ROLLOUTS};
pub use strategies::{edit_one_token, sample_best_of};
