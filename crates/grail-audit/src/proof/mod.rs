//! The proof soundness audit: how far honest recomputations drift under each sketch rule,
//! and how often substitutes pass. Its items are re-exported at the crate root.
//!
//! - `rules` — the sketch rules under audit ([`SketchRule`], [`Native`], [`Reference`]).
//! - `corpus` — the audited token sequences ([`Corpus`]).
//! - `sketch` — residues of every position of a corpus ([`sketch_corpus`]).
//! - `stats` — honest drift, forgery acceptance, rollout acceptance probability.
//! - `run` — every condition and substitute on a corpus ([`run()`], [`Report`]).
//! - `markdown` — the report as Markdown tables.

mod corpus;
mod markdown;
mod rules;
mod run;
mod sketch;
mod stats;

pub use corpus::Corpus;
pub use rules::{Native, Reference, SketchRule};
pub use run::{run, DriftRow, ForgeryRow, Report};
pub use sketch::{sketch_corpus, Pass, Sketches};
pub use stats::{drift, forgery, log2_acceptance, Drift, Forgery};
