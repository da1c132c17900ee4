//! Every constant of the native protocol, in one place.
//!
//! Changing any value here changes what miners commit to and what validators accept:
//! nodes that disagree on one of them reject each other's rollouts. Bump
//! [`PROTOCOL_VERSION`] with any change. The proof parameters are provisional until the
//! soundness audit fixes them from measured honest drift and
//! measured acceptance of substituted models.

/// Version of the native protocol. It is part of every signed binding, so rollouts made
/// under another version fail signature verification rather than being misread.
pub const PROTOCOL_VERSION: u32 = 1;

/// The sketch modulus, the Mersenne prime 2^31 − 1. Sketches are residues in `[0, Q)`;
/// changing it changes every commitment.
pub const SKETCH_MODULUS: u32 = 2_147_483_647;

/// Number of log-magnitude buckets per sign (bucket values lie in `−(B−1)..=B−1`).
/// More buckets bind magnitudes more finely but flip more often under float drift.
pub const SKETCH_NUM_BUCKETS: i32 = 8;

/// Bucket width multiplier: `bucket = trunc(log2(|x| + 1) · SCALE)`. With 0.8 a
/// coordinate needs |x| > 1.38 to leave bucket 0; lower it and small activations start to
/// count (and to drift across boundaries).
pub const SKETCH_BUCKET_SCALE: f64 = 0.8;

/// Coordinates with |x| below this are bucket 0 (also covers denormals and signed zeros).
pub const SKETCH_ZERO_EPSILON: f64 = 1e-6;

/// Independent sketches per token position, each with its own coefficient vector. More
/// sketches make a substitute's per-position acceptance the product of independent
/// chances; the wire carries this many `u32` per position.
pub const SKETCHES_PER_POSITION: usize = 2;

/// Per-position tolerance: a sketch passes when its modular distance to the validator's
/// recomputation is at most `TOLERANCE_BASE + TOLERANCE_GROWTH · sqrt(position)`.
/// Coefficients lie in ±128, so a base of 256 absorbs two bucket flips of the largest
/// coefficient. Wider means more honest drift absorbed and more forgeries accepted.
pub const TOLERANCE_BASE: u32 = 256;

/// Growth of the tolerance with the absolute token position (drift accumulates along long
/// sequences in some kernels). Zero until the audit measures position dependence.
pub const TOLERANCE_GROWTH: f64 = 0.0;

/// Number of completion positions a validator challenges per rollout (all of them when
/// the completion is shorter).
pub const CHALLENGE_K: usize = 32;

/// Challenged positions that may fail while the rollout still passes. The forgery bound
/// is the binomial tail of a substitute passing `K − MAX_MISSES` of `K` positions.
pub const CHALLENGE_MAX_MISSES: usize = 2;

/// Upper bound on tokens (prompt + completion) in one rollout accepted from the wire.
pub const MAX_ROLLOUT_TOKENS: usize = 8_192;

/// Upper bound on rollouts in one group (the group size M is a window parameter ≤ this).
pub const MAX_GROUP_SIZE: usize = 64;

/// Upper bound on groups in one window bundle.
pub const MAX_GROUPS_PER_BUNDLE: usize = 4_096;

/// Upper bound on an encoded window bundle, checked before decoding.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024 * 1024;

/// Upper bound on the hidden size a verifier accepts from a provider.
pub const MAX_HIDDEN_SIZE: usize = 65_536;

/// Upper bound on environment names and parameter strings in a binding.
pub const MAX_ENV_STRING_BYTES: usize = 256;

/// Minimum population standard deviation of a group's rewards for it to be in the
/// learning zone (worth training on). Groups below it carry no GRPO gradient.
pub const LEARNING_ZONE_SIGMA_FLOOR: f64 = 0.05;

/// Below this σ a group's advantages are exactly zero (equal rewards up to rounding).
pub const ADVANTAGE_SIGMA_EPSILON: f64 = 1e-8;

/// Largest |Σ advantages| a validator accepts for a group (they must sum to zero).
pub const ADVANTAGE_SUM_TOLERANCE: f64 = 1e-3;
