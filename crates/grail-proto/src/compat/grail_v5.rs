//! one-covenant/grail proof v5 (2026-04), bit-exact.
//!
//! Conformance values: `crates/grail-proto/tests/vectors/grail_v5.json` (from the project's shared
//! vectors; tested in `tests/compat_vectors.rs`).

use sha3::digest::{ExtendableOutput, Update, XofReader};

/// Tolerance base of this profile.
pub const TOLERANCE_BASE: f64 = 6000.0;
/// Challenged positions per rollout in this profile.
pub const CHALLENGE_K: usize = 32;

/// `SHAKE256(label ‖ "||" ‖ part0 ‖ "||" ‖ part1 …)`, first `out_len` bytes (zero parts: `label ‖ "||"`).
pub fn prf(label: &[u8], parts: &[&[u8]], out_len: usize) -> Vec<u8> {
    let mut h = sha3::Shake256::default();
    h.update(label);
    h.update(b"||");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"||");
        }
        h.update(part);
    }
    let mut out = vec![0u8; out_len];
    h.finalize_xof().read(&mut out);
    out
}

super::profile_api!();
