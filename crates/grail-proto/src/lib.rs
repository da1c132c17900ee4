//! grail-proto: the GRAIL protocol core.
//!
//! Pure protocol math with no I/O, no async runtime and no tensor library, so a third
//! party can verify grail rollouts in their own verifier by depending on this crate alone.
//! `docs/protocol.md` is the normative specification; this crate implements it.
//!
//! - [`params`] — every protocol constant, with what breaks if it changes.
//! - [`prf`] — the domain-separated PRF (SHAKE256) and ChaCha20 streams seeded from it.
//! - [`randomness`] — window and challenge randomness from block hashes and drand.
//! - [`sketch`] — per-position sketch commitments mod 2^31 − 1.
//! - [`challenge`] — challenged positions and verification against any [`HiddenStates`].
//! - [`wire`] — rollouts, groups and bundles, and their size-limited byte format.
//! - [`binding`] — the canonical binary binding a miner signs.
//! - [`signing`] — sr25519 hotkeys and SS58 addresses (feature `sr25519`, on by default).
//! - [`sampling`] — public sampling uniforms, the inverse-CDF sampler and its check.
//! - [`rules`] — the validator's checks in order, typed [`rules::Reason`]s, duplicates,
//!   copies, replays, spot-check sampling and credited work.
//! - [`scoring`] — weights from credited work (superlinear, rolling, burn).
//! - [`grpo`] — group advantages and the learning-zone predicate.
//! - [`compat`] — bit-exact reproductions of the Python reference proofs (grail v5,
//!   Reliquary v7) and of CPython's `random.Random`.
//!
//! Everything here is deterministic and sans-I/O: the node crates fetch chain data,
//! beacons and hidden states and pass them in.

pub mod archive;
pub mod binding;
pub mod challenge;
pub mod compat;
pub mod grpo;
pub mod params;
pub mod prf;
pub mod randomness;
pub mod rules;
pub mod sampling;
pub mod scoring;
#[cfg(feature = "sr25519")]
pub mod signing;
pub mod sketch;
pub mod wire;

pub use challenge::{
    challenge_positions, check_positions, verify_proof, HiddenStates, ProofError, ProofReport,
};
pub use randomness::{challenge_randomness, window_randomness, Beacon};
pub use sketch::{PositionSketch, SketchCoefficients};
pub use wire::{
    decode_bundle, encode_bundle, EnvironmentId, GenerationParams, Group, GroupHeader, Hotkey,
    Rollout, Signature, WindowBundle, WireError,
};
