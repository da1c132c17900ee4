//! Bit-exact reproductions of the Python reference proofs, so a Rust verifier can check
//! rollouts made by the reference miners.
//!
//! - [`grail_v5`] — one-covenant/grail proof v5.
//! - [`reliquary_v7`] — Reliquary proof v7.
//! - [`pyrandom`] — CPython's `random.Random`, which both use to pick challenge indices.
//!
//! Both profiles share the sketch math (top-16 |h| coordinates sorted by index, 8 signed
//! log buckets, 16 coefficients in ±127, Q = 2^31 − 1) and differ in their PRF framing and
//! tolerance base. These rules are the references' — including their weakness: a
//! tolerance of ≥ 5000 against sketches within ±14 224 accepts unrelated hidden states —
//! and the native protocol in this crate does not use them.

pub mod grail_v5;
pub mod pyrandom;
pub mod reliquary_v7;

use sha2::{Digest, Sha256};

/// Defines a profile's public API (coefficients, challenge indices, bucket, sketch,
/// tolerance, position check, commit binding) from the profile module's own `prf` and
/// `TOLERANCE_BASE`, so the two profiles differ only in those.
macro_rules! profile_api {
    () => {
        /// The 16 sketch coefficients seeded by `prf(b"sketch", hexbytes(randomness), 32)`.
        ///
        /// # Errors
        ///
        /// [`CompatError::BadHex`](crate::compat::CompatError::BadHex) when
        /// `randomness_hex` is not hex ([`hexbytes`](crate::compat::hexbytes)).
        pub fn coefficients(
            randomness_hex: &str,
        ) -> Result<[i8; $crate::compat::TOPK], $crate::compat::CompatError> {
            let raw = prf(
                b"sketch",
                &[&$crate::compat::hexbytes(randomness_hex)?],
                2 * $crate::compat::TOPK,
            );
            Ok($crate::compat::coefficients_from_raw(&raw))
        }

        /// Challenge indices in `[start, end)`: seed `prf(b"open", hash_tokens(tokens),
        /// hexbytes(randomness), 32)` into CPython's `Random`, then `sample` (k < 0.1·n) or
        /// `shuffle`, sorted, offset by `start`.
        ///
        /// # Errors
        ///
        /// [`CompatError::BadTokens`](crate::compat::CompatError::BadTokens) for no
        /// tokens, [`CompatError::BadHex`](crate::compat::CompatError::BadHex) when
        /// `randomness_hex` is not hex, and
        /// [`CompatError::BadChallenge`](crate::compat::CompatError::BadChallenge) for
        /// `k = 0` with a non-empty range.
        pub fn challenge_indices(
            tokens: &[u32],
            randomness_hex: &str,
            start: usize,
            end: usize,
            k: usize,
        ) -> Result<Vec<usize>, $crate::compat::CompatError> {
            if tokens.is_empty() {
                return Err($crate::compat::CompatError::BadTokens);
            }
            let randomness = $crate::compat::hexbytes(randomness_hex)?;
            let seed = prf(
                b"open",
                &[&$crate::compat::hash_tokens(tokens), &randomness],
                32,
            );
            $crate::compat::challenge_indices_from_seed(&seed, start, end, k)
        }

        /// The signed log bucket (8 buckets).
        pub fn bucket(x: f32) -> i8 {
            $crate::compat::bucket(x)
        }

        /// The sketch of one hidden vector.
        pub fn sketch(hidden: &[f32], coeffs: &[i8; $crate::compat::TOPK]) -> u32 {
            $crate::compat::sketch(hidden, coeffs)
        }

        /// Tolerance at absolute position `pos`: `int(TOLERANCE_BASE + 5.0·sqrt(pos))`.
        pub fn tolerance(pos: usize) -> u32 {
            $crate::compat::tolerance_with_base(TOLERANCE_BASE, pos)
        }

        /// Whether a miner's sketch passes against the validator's recomputation at `pos`.
        pub fn position_passes(claimed: u32, recomputed: u32, pos: usize) -> bool {
            $crate::compat::modular_distance(claimed, recomputed) <= tolerance(pos)
        }

        /// The commit binding the miner signs (`build_commit_binding`).
        ///
        /// # Errors
        ///
        /// [`CompatError::BadHex`](crate::compat::CompatError::BadHex) when
        /// `randomness_hex` is not hex.
        pub fn commit_binding(
            tokens: &[u32],
            randomness_hex: &str,
            model_name: &str,
            layer_index: i32,
            sketches: &[u32],
        ) -> Result<[u8; 32], $crate::compat::CompatError> {
            $crate::compat::commit_binding(
                tokens,
                randomness_hex,
                model_name,
                layer_index,
                sketches,
            )
        }
    };
}
pub(crate) use profile_api;

use crate::params::SKETCH_MODULUS;
use pyrandom::PyRandom;

/// Coordinates per sketch in both reference profiles.
pub const TOPK: usize = 16;
/// Buckets per sign in both reference profiles.
pub const NUM_BUCKETS: i32 = 8;
/// Coefficient range (±127) in both reference profiles.
pub const COEFF_RANGE: i32 = 127;
/// Domain prefix of the reference commit binding.
pub const COMMIT_DOMAIN: &[u8] = b"grail-commit-v1";

/// Errors from reference-format inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompatError {
    /// A randomness string that Python's `bytes.fromhex` would reject.
    #[error("invalid randomness hex: {input}")]
    BadHex {
        /// The string given.
        input: String,
    },
    /// `k = 0` for a non-empty range (a `k` over the range's length is capped, not
    /// refused).
    #[error(
        "invalid challenge request: k = {k} for a range of {len} positions (k must be positive)"
    )]
    BadChallenge {
        /// Indices asked for.
        k: usize,
        /// Positions in the range (`end - start`).
        len: usize,
    },
    /// An empty token list (the references hash at least one token).
    #[error("invalid token list: no tokens")]
    BadTokens,
}

/// The references' hex normalisation: strip whitespace, drop every `0x`/`0X`, prepend `0`
/// to an odd length, then Python `bytes.fromhex` (whitespace allowed between byte pairs).
///
/// # Errors
///
/// [`CompatError::BadHex`] (holding `s` as `input`) when what remains is not pairs of hex digits.
///
/// # Examples
///
/// ```
/// use grail_proto::compat::hexbytes;
///
/// assert_eq!(hexbytes("0xabc")?, vec![0x0a, 0xbc]);
/// assert_eq!(hexbytes("ff00")?, vec![0xff, 0x00]);
/// assert!(hexbytes("xyz").is_err());
/// # Ok::<(), grail_proto::compat::CompatError>(())
/// ```
pub fn hexbytes(s: &str) -> Result<Vec<u8>, CompatError> {
    let mut clean = s
        .trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b')
        .replace("0x", "")
        .replace("0X", "");
    if clean.chars().count() % 2 == 1 {
        clean.insert(0, '0');
    }
    let bytes = clean.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let bad = || CompatError::BadHex { input: s.into() };
        let pair = bytes.get(i..i + 2).ok_or_else(bad)?;
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        out.push(u8::from_str_radix(text, 16).map_err(|_| bad())?);
        i += 2;
    }
    Ok(out)
}

/// `SHA256(concat u32be(t))`: the references' `hash_tokens` / rollout hash.
pub fn hash_tokens(tokens: &[u32]) -> [u8; 32] {
    let mut h = Sha256::new();
    for &t in tokens {
        h.update(t.to_be_bytes());
    }
    h.finalize().into()
}

/// Coefficients from the 32 PRF bytes: big-endian i16, numpy int16 `abs` (−32768 stays
/// −32768), floor-mod 255, minus 127.
pub fn coefficients_from_raw(raw: &[u8]) -> [i8; TOPK] {
    let mut r = [0i8; TOPK];
    for (i, c) in raw.chunks_exact(2).take(TOPK).enumerate() {
        let v = i16::from_be_bytes([c[0], c[1]]);
        let a = v.wrapping_abs();
        r[i] = (i32::from(a).rem_euclid(255) - COEFF_RANGE) as i8;
    }
    r
}

/// The references' signed log bucket with 8 buckets, in f64 like their scalar code.
pub fn bucket(x: f32) -> i8 {
    let x = f64::from(x);
    if x.is_nan() {
        return 0;
    }
    if x.is_infinite() {
        return if x > 0.0 { 7 } else { -7 };
    }
    let a = x.abs();
    if a < 1e-6 {
        return 0;
    }
    let b = ((a + 1.0).log2() * (f64::from(NUM_BUCKETS) / 10.0)).trunc();
    let b = b.clamp(0.0, f64::from(NUM_BUCKETS - 1)) as i8;
    if x >= 0.0 {
        b
    } else {
        -b
    }
}

/// The reference sketch: indices of the 16 largest |h| (ties: lower index first), sorted
/// ascending, bucketed, dotted with the coefficients, reduced mod Q into `[0, Q)`.
pub fn sketch(hidden: &[f32], coeffs: &[i8; TOPK]) -> u32 {
    let mut order: Vec<usize> = (0..hidden.len()).collect();
    let key = |i: usize| {
        let a = hidden[i].abs();
        if a.is_nan() {
            f32::NEG_INFINITY
        } else {
            a
        }
    };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    order.truncate(TOPK);
    order.sort_unstable();
    let sum: i64 = order
        .iter()
        .zip(coeffs)
        .map(|(&i, &c)| i64::from(bucket(hidden[i])) * i64::from(c))
        .sum();
    sum.rem_euclid(i64::from(SKETCH_MODULUS)) as u32
}

/// `int(base + 5.0 * sqrt(pos))`.
pub fn tolerance_with_base(base: f64, pos: usize) -> u32 {
    (base + 5.0 * (pos as f64).sqrt()) as u32
}

/// `indices_from_root_in_range` with a given seed material (`prf(b"open", …)` output).
/// Empty for an empty range; `k` is capped at the range's length.
///
/// # Errors
///
/// [`CompatError::BadChallenge`] when `k = 0` and the range is not empty.
pub fn challenge_indices_from_seed(
    seed: &[u8],
    start: usize,
    end: usize,
    k: usize,
) -> Result<Vec<usize>, CompatError> {
    let len = end.saturating_sub(start);
    if len == 0 {
        return Ok(Vec::new());
    }
    let bad = || CompatError::BadChallenge { k, len };
    if k == 0 {
        return Err(bad());
    }
    let k = k.min(len);
    let mut rnd = PyRandom::from_bytes(seed);
    let mut idx: Vec<usize> = if (k as f64) < (len as f64) * 0.1 {
        let population: Vec<usize> = (0..len).collect();
        rnd.sample(&population, k).ok_or_else(bad)?
    } else {
        let mut all: Vec<usize> = (0..len).collect();
        rnd.shuffle(&mut all);
        all.truncate(k);
        all
    };
    idx.sort_unstable();
    Ok(idx.into_iter().map(|i| start + i).collect())
}

/// Python `json.dumps([{"sketch": s}, ...], sort_keys=True, separators=(",", ":"))`.
pub fn commitments_json(sketches: &[u32]) -> String {
    let items: Vec<String> = sketches
        .iter()
        .map(|s| format!("{{\"sketch\":{s}}}"))
        .collect();
    format!("[{}]", items.join(","))
}

/// The reference commit binding (`build_commit_binding`), shared by both profiles.
///
/// # Errors
///
/// [`CompatError::BadHex`] when `randomness_hex` is not hex ([`hexbytes`]).
pub fn commit_binding(
    tokens: &[u32],
    randomness_hex: &str,
    model_name: &str,
    layer_index: i32,
    sketches: &[u32],
) -> Result<[u8; 32], CompatError> {
    let randomness = hexbytes(randomness_hex)?;
    let commitments = Sha256::digest(commitments_json(sketches).as_bytes());
    let parts: [&[u8]; 5] = [
        &hash_tokens(tokens),
        &randomness,
        model_name.as_bytes(),
        &layer_index.to_be_bytes(),
        &commitments,
    ];
    let mut h = Sha256::new();
    h.update(COMMIT_DOMAIN);
    for p in parts {
        h.update((p.len() as u32).to_be_bytes());
        h.update(p);
    }
    Ok(h.finalize().into())
}

/// Modular distance on the circle mod Q (the references' `min(d, Q − d)`).
pub fn modular_distance(a: u32, b: u32) -> u32 {
    crate::sketch::modular_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_was_refused() {
        assert_eq!(
            hexbytes("zz"),
            Err(CompatError::BadHex { input: "zz".into() })
        );
        assert_eq!(
            grail_v5::challenge_indices(&[], "ab", 0, 4, 1),
            Err(CompatError::BadTokens)
        );
        assert!(matches!(
            reliquary_v7::challenge_indices(&[7], "xyz", 0, 4, 1),
            Err(CompatError::BadHex { input }) if input == "xyz"
        ));
        assert_eq!(
            grail_v5::challenge_indices(&[7; 40], "ab", 10, 30, 0),
            Err(CompatError::BadChallenge { k: 0, len: 20 })
        );
        // A k over the range's length is capped, not refused.
        assert_eq!(
            challenge_indices_from_seed(&[0; 32], 3, 5, 9),
            Ok(vec![3, 4])
        );
    }
}
