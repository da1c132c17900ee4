//! Reliquary proof v7 (2026-08), bit-exact.
//!
//! Conformance values: `shared/vectors/reliquary_v7.json` (tested in `tests/compat_vectors.rs`).

use sha3::digest::{ExtendableOutput, Update, XofReader};

use super::{CompatError, TOPK};

/// Tolerance base of this profile.
pub const TOLERANCE_BASE: f64 = 5000.0;
/// Challenged positions per rollout in this profile.
pub const CHALLENGE_K: usize = 32;

/// `SHAKE256(u32be(len label) ‖ label ‖ u32be(len part) ‖ part …)`, first `out_len` bytes.
pub fn prf(label: &[u8], parts: &[&[u8]], out_len: usize) -> Vec<u8> {
    let mut h = sha3::Shake256::default();
    h.update(&(label.len() as u32).to_be_bytes());
    h.update(label);
    for part in parts {
        h.update(&(part.len() as u32).to_be_bytes());
        h.update(part);
    }
    let mut out = vec![0u8; out_len];
    h.finalize_xof().read(&mut out);
    out
}

/// The 16 sketch coefficients seeded by `prf(b"sketch", hexbytes(randomness), 32)`.
pub fn coefficients(randomness_hex: &str) -> Result<[i8; TOPK], CompatError> {
    let raw = prf(b"sketch", &[&super::hexbytes(randomness_hex)?], 2 * TOPK);
    Ok(super::coefficients_from_raw(&raw))
}

/// Challenge indices in `[start, end)`: seed `prf(b"open", hash_tokens(tokens),
/// hexbytes(randomness), 32)` into CPython's `Random`, then `sample` (k < 0.1·n) or
/// `shuffle`, sorted, offset by `start`.
pub fn challenge_indices(
    tokens: &[u32],
    randomness_hex: &str,
    start: usize,
    end: usize,
    k: usize,
) -> Result<Vec<usize>, CompatError> {
    if tokens.is_empty() {
        return Err(CompatError::BadTokens("empty".into()));
    }
    let randomness = super::hexbytes(randomness_hex)?;
    let seed = prf(b"open", &[&super::hash_tokens(tokens), &randomness], 32);
    super::challenge_indices_from_seed(&seed, start, end, k)
}

/// The signed log bucket (8 buckets).
pub fn bucket(x: f32) -> i8 {
    super::bucket(x)
}

/// The sketch of one hidden vector.
pub fn sketch(hidden: &[f32], coeffs: &[i8; TOPK]) -> u32 {
    super::sketch(hidden, coeffs)
}

/// Tolerance at absolute position `pos`: `int(5000.0 + 5.0·sqrt(pos))`.
pub fn tolerance(pos: usize) -> u32 {
    super::tolerance_with_base(TOLERANCE_BASE, pos)
}

/// Whether a miner's sketch passes against the validator's recomputation at `pos`.
pub fn position_passes(claimed: u32, recomputed: u32, pos: usize) -> bool {
    super::modular_distance(claimed, recomputed) <= tolerance(pos)
}

/// The commit binding the miner signs (`build_commit_binding`).
pub fn commit_binding(
    tokens: &[u32],
    randomness_hex: &str,
    model_name: &str,
    layer_index: i32,
    sketches: &[u32],
) -> Result<[u8; 32], CompatError> {
    super::commit_binding(tokens, randomness_hex, model_name, layer_index, sketches)
}
