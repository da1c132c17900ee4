//! Verifiable sampling: every completion token is drawn by inverse-CDF sampling with a
//! public uniform, so a validator can check that the tokens came from the checkpoint's
//! tempered distribution and not from a cheaper model, another temperature, a best-of-n
//! search or an edit.
//!
//! **Uniforms.** Rollout `i` of a group draws its uniforms from
//! `stream("grail/sampling-uniforms", [window_randomness, hotkey, prompt_digest(prompt), u32be(i)])`;
//! the uniform of completion position `t` (0-based) is the `t`-th `u64` word `v` of that
//! stream mapped to `(v >> 11) · 2^-53 ∈ [0, 1)`. The stream is keyed by the prompt's
//! *tokens* rather than its id, so two prompt ids that render to the same prompt give the
//! same uniforms (and the same group): a miner cannot search ids for a luckier seed.
//!
//! **Distribution.** At a completion position the model's fp32 logits `z_0 … z_{V−1}`
//! (V = vocabulary size of the logits) are widened to f64; with `m = max z` and the
//! group's temperature `T = temperature_milli / 1000` (f64), `w_j = exp((z_j − m) / T)`,
//! `S = Σ w_j` and token `j` owns the interval `[Σ_{k<j} w_k / S, Σ_{k≤j} w_k / S)` of
//! `[0, 1)`, in vocabulary-id order; sums are sequential in id order from +0. There is no
//! top-k or top-p. `exp` is not correctly rounded in every math library, and validators
//! compute logits with other kernels than miners: the check's margin absorbs both.
//!
//! **Sampling.** The miner emits the token whose interval contains its uniform
//! ([`sample_token`]).
//!
//! **Check.** The validator recomputes the chosen token's interval from its own logits and
//! classifies the uniform ([`classify`]): *inside* the interval (the token is exactly the
//! one the validator's own sampler gives), *ambiguous* — outside, but within
//! [`SAMPLING_MARGIN`] of an end (floating-point drift between two machines moved a
//! boundary across the uniform), or a *miss* further outside. A rollout passes with no
//! miss and at most [`allowed_ambiguous`] ambiguous positions ([`check_sampling`]):
//! honest drift rarely crosses a boundary, and an attacker gets at most that many
//! positions where it may claim a token other than the sampled one — and only a token
//! whose interval lies within the margin of the uniform.
//!
//! ```
//! use grail_proto::sampling::{check_sampling, sample_token, temperature, token_interval};
//! use grail_proto::sampling::{CdfInterval, SamplingError, Uniforms};
//! use grail_proto::Hotkey;
//!
//! let (window_randomness, miner, prompt) = ([3; 32], Hotkey([1; 32]), [5, 6, 7]);
//! let t = temperature(700);
//! // Toy logits over a 4-token vocabulary at each of 6 completion positions.
//! let logits: Vec<[f32; 4]> = (0..6).map(|i| [0.5, i as f32 / 3.0, -1.0, 0.0]).collect();
//!
//! // Miner: rollout 0 of its group draws every token with the public uniforms.
//! let uniforms = Uniforms::new(&window_randomness, &miner, &prompt, 0).take_vec(logits.len());
//! let tokens = logits.iter().zip(&uniforms).map(|(z, &u)| sample_token(z, t, u));
//! let tokens: Vec<u32> = tokens.collect::<Result<_, _>>()?;
//!
//! // Validator: the interval of each claimed token under its own logits, and the same uniforms.
//! let intervals = |tokens: &[u32]| -> Result<Vec<CdfInterval>, SamplingError> {
//!     logits.iter().zip(tokens).map(|(z, &token)| token_interval(z, t, token)).collect()
//! };
//! assert!(check_sampling(&intervals(&tokens)?, &uniforms).accepted());
//!
//! // A token the uniform did not give (cherry-picked, edited, another model's) is a miss.
//! let mut edited = tokens.clone();
//! edited[2] = (edited[2] + 2) % 4;
//! let report = check_sampling(&intervals(&edited)?, &uniforms);
//! assert_eq!(report.misses, vec![2]);
//! assert!(!report.accepted());
//! # Ok::<(), SamplingError>(())
//! ```

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use crate::params::{
    SAMPLING_AMBIGUOUS_BASE, SAMPLING_AMBIGUOUS_PER, SAMPLING_MARGIN, SAMPLING_MAX_MISSES,
};
use crate::prf::stream;
use crate::wire::Hotkey;

/// PRF label of the sampling streams.
pub const SAMPLING_LABEL: &[u8] = b"grail/sampling-uniforms";

/// SHA-256 of a prompt's token ids: `SHA256("grail-rs/prompt/v1" ‖ u32be(n) ‖ u32be(t)…)`.
/// Keys the sampling uniforms and identifies a prompt within a bundle.
pub fn prompt_digest(prompt: &[u32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"grail-rs/prompt/v1");
    h.update((prompt.len() as u32).to_be_bytes());
    for &t in prompt {
        h.update(t.to_be_bytes());
    }
    h.finalize().into()
}

/// The public uniforms of one rollout, one per completion position, in order.
#[derive(Debug, Clone)]
pub struct Uniforms(ChaCha20Rng);

impl Uniforms {
    /// The uniforms of rollout `rollout_index` of `hotkey`'s group for `prompt` (its
    /// tokens) in the window with `window_randomness`.
    pub fn new(
        window_randomness: &[u8; 32],
        hotkey: &Hotkey,
        prompt: &[u32],
        rollout_index: u32,
    ) -> Self {
        Self(stream(
            SAMPLING_LABEL,
            &[
                window_randomness,
                &hotkey.0,
                &prompt_digest(prompt),
                &rollout_index.to_be_bytes(),
            ],
        ))
    }

    /// The first `n` uniforms.
    pub fn take_vec(self, n: usize) -> Vec<f64> {
        self.take(n).collect()
    }
}

impl Iterator for Uniforms {
    type Item = f64;

    /// The next position's uniform in `[0, 1)` (53 random bits).
    fn next(&mut self) -> Option<f64> {
        Some((self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
    }
}

/// The temperature of `temperature_milli` as the protocol computes it.
pub fn temperature(temperature_milli: u32) -> f64 {
    f64::from(temperature_milli) / 1000.0
}

/// The part of `[0, 1)` that a token owns under the tempered distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CdfInterval {
    /// Mass of every token with a smaller id.
    pub lo: f64,
    /// `lo` plus the token's own mass.
    pub hi: f64,
}

/// Why logits cannot define a distribution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplingError {
    /// Empty logits, a non-finite logit, or a temperature that is not positive.
    #[error("logits or temperature do not define a distribution: {0}")]
    BadDistribution(&'static str),
    /// The token id is outside the logits.
    #[error("token {token} outside a vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The token.
        token: u32,
        /// Number of logits.
        vocab: usize,
    },
}

/// Unnormalised tempered weights `w_j = exp((z_j − max z) / T)` in f64.
fn weights(logits: &[f32], temperature: f64) -> Result<Vec<f64>, SamplingError> {
    if logits.is_empty() {
        return Err(SamplingError::BadDistribution("no logits"));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(SamplingError::BadDistribution(
            "temperature must be positive",
        ));
    }
    if logits.iter().any(|z| !z.is_finite()) {
        return Err(SamplingError::BadDistribution("non-finite logit"));
    }
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64));
    Ok(logits
        .iter()
        .map(|&z| ((z as f64 - m) / temperature).exp())
        .collect())
}

/// Sequential f64 sum in index order, starting from +0.
fn sum(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |acc, v| acc + v)
}

/// The interval of `token` under `softmax(logits / temperature)`, computed in f64 with a
/// sequential sum in id order (the normative definition).
///
/// # Errors
///
/// [`SamplingError::TokenOutOfRange`] when `token ≥ logits.len()`;
/// [`SamplingError::BadDistribution`] when a logit is not finite or the temperature is
/// not a finite positive number.
pub fn token_interval(
    logits: &[f32],
    temperature: f64,
    token: u32,
) -> Result<CdfInterval, SamplingError> {
    let j = token as usize;
    if j >= logits.len() {
        return Err(SamplingError::TokenOutOfRange {
            token,
            vocab: logits.len(),
        });
    }
    let w = weights(logits, temperature)?;
    let total = sum(&w);
    let below = sum(&w[..j]);
    Ok(CdfInterval {
        lo: below / total,
        hi: (below + w[j]) / total,
    })
}

/// The reference sampler: the smallest token id `j` with `u · S < Σ_{k≤j} w_k` (never a
/// token of zero mass; the last token of positive mass if rounding leaves none).
///
/// # Errors
///
/// [`SamplingError::BadDistribution`] when `logits` is empty, a logit is not finite, or
/// the temperature is not a finite positive number.
pub fn sample_token(logits: &[f32], temperature: f64, u: f64) -> Result<u32, SamplingError> {
    let w = weights(logits, temperature)?;
    let total = sum(&w);
    let target = u * total;
    let mut acc = 0.0;
    let mut last_positive = 0;
    for (j, &wj) in w.iter().enumerate() {
        if wj > 0.0 {
            last_positive = j;
        }
        acc += wj;
        if target < acc {
            return Ok(j as u32);
        }
    }
    Ok(last_positive as u32)
}

/// Where a uniform falls relative to a claimed token's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PositionClass {
    /// Inside the interval: the token is the one the validator's sampler gives.
    Inside,
    /// Outside, but within the margin of an end: drift could have moved the boundary
    /// across the uniform; tolerated a limited number of times per rollout.
    Ambiguous,
    /// Further than the margin outside the interval: another token was sampled.
    Miss,
}

/// Classifies `u` against a claimed token's interval with `margin`.
pub fn classify(interval: CdfInterval, u: f64, margin: f64) -> PositionClass {
    if interval.lo <= u && u < interval.hi {
        PositionClass::Inside
    } else if excess(interval, u) <= margin {
        PositionClass::Ambiguous
    } else {
        PositionClass::Miss
    }
}

/// How far `u` lies outside the interval (0 when inside, infinite for NaN): what the
/// margin must absorb.
pub fn excess(interval: CdfInterval, u: f64) -> f64 {
    if u.is_nan() || interval.lo.is_nan() || interval.hi.is_nan() {
        f64::INFINITY
    } else if u < interval.lo {
        interval.lo - u
    } else if u >= interval.hi {
        u - interval.hi
    } else {
        0.0
    }
}

/// The sampling check of one rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingReport {
    /// Completion positions checked.
    pub positions: usize,
    /// Positions outside the claimed token's interval but within the margin.
    pub ambiguous: usize,
    /// Completion positions (0-based) whose uniform lies outside the widened interval.
    pub misses: Vec<usize>,
    /// Largest distance of a uniform outside its token's interval.
    pub max_excess: f64,
}

impl SamplingReport {
    /// Whether the rollout's tokens are accepted as sampled from the distribution: no
    /// more than [`SAMPLING_MAX_MISSES`] misses and [`allowed_ambiguous`] ambiguous
    /// positions.
    pub fn accepted(&self) -> bool {
        // `SAMPLING_MAX_MISSES` may be 0, which makes `<=` look absurd to clippy.
        !self.misses.iter().skip(SAMPLING_MAX_MISSES).any(|_| true)
            && self.ambiguous <= allowed_ambiguous(self.positions)
            && self.positions > 0
    }
}

/// Ambiguous positions tolerated in a rollout of `positions` completion positions:
/// `SAMPLING_AMBIGUOUS_BASE + positions / SAMPLING_AMBIGUOUS_PER` (rounded down).
pub fn allowed_ambiguous(positions: usize) -> usize {
    SAMPLING_AMBIGUOUS_BASE + positions / SAMPLING_AMBIGUOUS_PER
}

/// Checks a rollout's completion: `intervals[t]` is the validator's interval of the
/// claimed token at completion position `t`, `uniforms[t]` the public uniform. Positions
/// beyond the shorter of the two count as misses.
pub fn check_sampling(intervals: &[CdfInterval], uniforms: &[f64]) -> SamplingReport {
    check_sampling_with(intervals, uniforms, SAMPLING_MARGIN)
}

/// [`check_sampling`] with another margin (for audits).
pub fn check_sampling_with(
    intervals: &[CdfInterval],
    uniforms: &[f64],
    margin: f64,
) -> SamplingReport {
    let n = intervals.len().max(uniforms.len());
    let mut report = SamplingReport {
        positions: n,
        ambiguous: 0,
        misses: Vec::new(),
        max_excess: 0.0,
    };
    for t in 0..n {
        let (Some(&iv), Some(&u)) = (intervals.get(t), uniforms.get(t)) else {
            report.misses.push(t);
            continue;
        };
        report.max_excess = report.max_excess.max(excess(iv, u));
        match classify(iv, u, margin) {
            PositionClass::Inside => {}
            PositionClass::Ambiguous => report.ambiguous += 1,
            PositionClass::Miss => report.misses.push(t),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_picks_the_token_whose_interval_holds_u() {
        let logits = [0.0f32, 1.0, -3.0, 2.0, f32::MIN];
        for i in 0..1000 {
            let u = (i as f64 + 0.5) / 1000.0;
            let t = sample_token(&logits, 0.8, u).unwrap();
            let iv = token_interval(&logits, 0.8, t).unwrap();
            assert!(iv.lo <= u && u < iv.hi, "u {u} token {t} {iv:?}");
            assert_ne!(t, 4, "a zero-mass token is never sampled");
        }
        let total: f64 = (0..5)
            .map(|t| {
                let iv = token_interval(&logits, 0.8, t).unwrap();
                iv.hi - iv.lo
            })
            .sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn classification_and_report() {
        let iv = CdfInterval { lo: 0.2, hi: 0.5 };
        assert_eq!(classify(iv, 0.3, 0.01), PositionClass::Inside);
        assert_eq!(classify(iv, 0.2, 0.01), PositionClass::Inside);
        assert_eq!(classify(iv, 0.205, 0.01), PositionClass::Inside);
        assert_eq!(classify(iv, 0.195, 0.01), PositionClass::Ambiguous);
        assert_eq!(classify(iv, 0.5, 0.01), PositionClass::Ambiguous);
        assert_eq!(classify(iv, 0.505, 0.01), PositionClass::Ambiguous);
        assert_eq!(classify(iv, 0.6, 0.01), PositionClass::Miss);
        assert_eq!(classify(iv, f64::NAN, 0.01), PositionClass::Miss);
        let r = check_sampling_with(&[iv, iv, iv], &[0.3, 0.195, 0.9], 0.01);
        assert_eq!((r.ambiguous, r.misses.clone()), (1, vec![2]));
        assert!((r.max_excess - 0.4).abs() < 1e-12);
        // Ambiguous positions are tolerated up to the cap.
        let near = vec![iv.lo - SAMPLING_MARGIN / 2.0; allowed_ambiguous(3) + 1];
        let ivs = vec![iv; near.len()];
        assert!(!check_sampling(&ivs, &near).accepted());
        assert!(check_sampling(&ivs[1..], &near[1..]).accepted());
        // Missing uniforms or intervals are misses, never a panic.
        assert_eq!(check_sampling_with(&[iv], &[], 0.01).misses, vec![0]);
        assert!(!check_sampling(&[], &[]).accepted());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(token_interval(&[], 1.0, 0).is_err());
        assert!(token_interval(&[0.0, f32::NAN], 1.0, 0).is_err());
        assert!(token_interval(&[0.0, 1.0], 0.0, 0).is_err());
        assert!(matches!(
            token_interval(&[0.0, 1.0], 1.0, 2),
            Err(SamplingError::TokenOutOfRange { .. })
        ));
    }

    #[test]
    fn uniforms_are_keyed_by_prompt_tokens_index_and_hotkey() {
        let r = [3u8; 32];
        let a = Hotkey([1; 32]);
        let first = Uniforms::new(&r, &a, &[1, 2, 3], 0).take_vec(4);
        assert_eq!(first, Uniforms::new(&r, &a, &[1, 2, 3], 0).take_vec(4));
        assert_ne!(first, Uniforms::new(&r, &a, &[1, 2, 3], 1).take_vec(4));
        assert_ne!(first, Uniforms::new(&r, &a, &[1, 2, 4], 0).take_vec(4));
        assert_ne!(
            first,
            Uniforms::new(&r, &Hotkey([2; 32]), &[1, 2, 3], 0).take_vec(4)
        );
        assert!(first.iter().all(|u| (0.0..1.0).contains(u)));
    }
}
