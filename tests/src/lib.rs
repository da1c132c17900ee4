//! End-to-end tests of a whole local grail network live in `tests/tests/`.
//!
//! This crate has no library code of its own; it exists so that the end-to-end tests
//! build against the workspace crates like any user would.
