//! grail-audit: the soundness audits behind `cargo xtask audit-proof` and
//! `cargo xtask audit-sampling`. Not part of any role: no runtime crate depends on it.
//!
//! Proof soundness audit (the items at this crate's root): how far honest recomputations
//! drift under each sketch rule, and how often substitutes (other weights, noise,
//! quantization, a missing layer, another prompt) pass. Used by `cargo xtask audit-proof`
//! (SmolLM2) and by CI on the tiny model.
//!
//! - `proof` (private; its items are re-exported here) — rules, corpus, sketching,
//!   statistics, the run and its Markdown report.
//! - [`sampling`] — the sampling soundness audit (`cargo xtask audit-sampling`).
//! - [`choice_search`] — the simulated gain of searching over choice positions.
//! - substitute models shared by both audits ([`perturbed_weights`], [`add_noise`],
//!   [`int8_roundtrip`], [`without_last_layer`]).

pub mod choice_search;
mod proof;
pub mod sampling;
mod substitutes;

pub use proof::{
    drift, forgery, log2_acceptance, run, sketch_corpus, Corpus, Drift, DriftRow, Forgery,
    ForgeryRow, Native, Pass, Reference, Report, SketchRule, Sketches,
};
pub use substitutes::{add_noise, int8_roundtrip, perturbed_weights, without_last_layer};
