//! Reliquary proof v7 (2026-08), bit-exact.
//!
//! Conformance values: `crates/grail-proto/tests/vectors/reliquary_v7.json` (from the project's shared
//! vectors; tested in `tests/compat_vectors.rs`).

use sha3::digest::{ExtendableOutput, Update, XofReader};

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

super::profile_api!();
