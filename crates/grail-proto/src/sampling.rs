//! Verifiable sampling (protocol v5): Gumbel-max with public noise. Every completion token
//! is the argmax of the tempered logits plus public Gumbel noise, which is exactly a draw
//! from `softmax(logits / T)`; a validator recomputes the scores from its own logits and
//! checks that the claimed token wins, so tokens from a cheaper model, another
//! temperature, top-k/top-p, a best-of-n search or an edit are caught.
//!
//! **Noise.** Rollout `i` of a group has the seed stream
//! `stream("grail/sampling-noise", [window_randomness, hotkey, prompt_digest(prompt), u32be(i)])`
//! ([`RolloutNoise`]); completion position `t` (0-based) takes the `t`-th `u64` word of
//! that stream as its seed `s` ([`PositionNoise`]). Token `j`'s word at that position is
//! SplitMix64 output `j` of `s`: `x = s + (j + 1) · 0x9E3779B97F4A7C15 (mod 2^64)`, then
//! `x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB;
//! x ^= x >> 31` — random access, one word per token id. The stream is keyed by the
//! prompt's *tokens*, so two prompt ids that render alike share their noise: a miner
//! cannot search ids for luckier noise.
//!
//! **Scores.** With `k = word >> 11` and `v = (k + 1) · 2^-53 ∈ (0, 1]` (exact in f64),
//! token `j` scores `s_j = z_j / T − ln(−ln v_j)` in f64, where `z_j` is its fp32 logit
//! widened to f64 and `T = temperature_milli / 1000`; `−ln v` is an Exp(1) variable and
//! `−ln(−ln v)` a standard Gumbel one (`v = 1` scores `+∞`). The sampled token is the one
//! with the largest score, the smallest id among equal scores ([`sample_token`]). There is
//! no top-k or top-p. `ln` is not correctly rounded in every math library and validators
//! compute logits with other kernels than miners: the check's margin absorbs both.
//!
//! **Check.** The validator computes the claimed token's *gap*: its score minus the
//! largest score of any other token ([`claimed_gap`]), from its own logits. A positive
//! gap is *inside* (the token is the one the validator's own sampler gives); a gap in
//! `[−SAMPLING_MARGIN, 0]` is *ambiguous* (drift between two machines can swap two tokens
//! whose scores are that close); below it, a *miss*. A rollout passes with no miss and at
//! most [`allowed_ambiguous`] ambiguous positions ([`check_sampling`]), and a miner's
//! whole checked sample with at most [`allowed_ambiguous_in_sample`].
//!
//! **Why Gumbel-max.** An attacker has a *choice* at a position only where another
//! token's score is within the margin of the winner's: there it may claim either and pass.
//! Under v4's inverse-CDF rule every boundary between two tokens' intervals was a
//! choice, and the vocabulary's long tail puts boundaries everywhere (11.6 % of honest
//! SmolLM2 positions at its margin). Here a choice needs two *scores* within the margin,
//! which happens at a share of positions about equal to the margin in logit units
//! (the top-two gap of Gumbel-perturbed scores has a density of at most about 1 at 0),
//! whatever the vocabulary size (docs/soundness.md).
//!
//! ```
//! use grail_proto::sampling::{check_sampling, claimed_gap, sample_token, temperature};
//! use grail_proto::sampling::{RolloutNoise, SamplingError};
//! use grail_proto::Hotkey;
//!
//! let (window_randomness, miner, prompt) = ([3; 32], Hotkey([1; 32]), [5, 6, 7]);
//! let t = temperature(700);
//! // Toy logits over a 4-token vocabulary at each of 6 completion positions.
//! let logits: Vec<[f32; 4]> = (0..6).map(|i| [0.5, i as f32 / 3.0, -1.0, 0.0]).collect();
//! let noise = || RolloutNoise::new(&window_randomness, &miner, &prompt, 0);
//!
//! // Miner: rollout 0 of its group draws every token with the public noise.
//! let tokens = logits.iter().zip(noise()).map(|(z, n)| sample_token(z, t, n));
//! let tokens: Vec<u32> = tokens.collect::<Result<_, _>>()?;
//!
//! // Validator: the gap of each claimed token under its own logits and the same noise.
//! let gaps = |tokens: &[u32]| -> Result<Vec<f64>, SamplingError> {
//!     logits.iter().zip(tokens).zip(noise()).map(|((z, &token), n)| claimed_gap(z, t, token, n)).collect()
//! };
//! assert!(check_sampling(&gaps(&tokens)?).accepted());
//!
//! // A token the noise did not give (cherry-picked, edited, another model's) is a miss.
//! let mut edited = tokens.clone();
//! edited[2] = (edited[2] + 2) % 4;
//! let report = check_sampling(&gaps(&edited)?);
//! assert_eq!(report.misses, vec![2]);
//! assert!(!report.accepted());
//! # Ok::<(), SamplingError>(())
//! ```

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use crate::params::{
    SAMPLING_AMBIGUOUS_BASE, SAMPLING_AMBIGUOUS_PER, SAMPLING_MARGIN, SAMPLING_MAX_MISSES,
    SAMPLING_SAMPLE_AMBIGUOUS_BASE, SAMPLING_SAMPLE_AMBIGUOUS_PER,
};
use crate::prf::stream;
use crate::wire::Hotkey;

/// PRF label of the per-rollout seed streams.
pub const SAMPLING_LABEL: &[u8] = b"grail/sampling-noise";

/// SHA-256 of a prompt's token ids: `SHA256("grail-rs/prompt/v1" ‖ u32be(n) ‖ u32be(t)…)`.
/// Keys the sampling noise and identifies a prompt within a bundle.
pub fn prompt_digest(prompt: &[u32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"grail-rs/prompt/v1");
    h.update((prompt.len() as u32).to_be_bytes());
    for &t in prompt {
        h.update(t.to_be_bytes());
    }
    h.finalize().into()
}

/// The public noise of one rollout: yields each completion position's [`PositionNoise`],
/// in order.
#[derive(Debug, Clone)]
pub struct RolloutNoise(ChaCha20Rng);

impl RolloutNoise {
    /// The noise of rollout `rollout_index` of `hotkey`'s group for `prompt` (its tokens)
    /// in the window with `window_randomness`.
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

    /// The noise of the first `n` positions.
    pub fn take_vec(self, n: usize) -> Vec<PositionNoise> {
        self.take(n).collect()
    }
}

impl Iterator for RolloutNoise {
    type Item = PositionNoise;

    /// The next completion position's noise.
    fn next(&mut self) -> Option<PositionNoise> {
        Some(PositionNoise(self.0.next_u64()))
    }
}

/// The noise of one completion position over the whole vocabulary: a SplitMix64 seed
/// whose output `j` is token `j`'s word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PositionNoise(pub u64);

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// 2^-53.
const EPSILON_53: f64 = 1.0 / (1u64 << 53) as f64;

impl PositionNoise {
    /// Token `token`'s 64-bit word: SplitMix64 output `token` of the seed.
    #[inline]
    pub fn word(self, token: usize) -> u64 {
        let mut x = self.0.wrapping_add(GOLDEN.wrapping_mul(token as u64 + 1));
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// Token `token`'s Gumbel noise `−ln(−ln v)`, `v = ((word >> 11) + 1) · 2^-53`.
    pub fn gumbel(self, token: usize) -> f64 {
        -ln_exponential(self.word(token))
    }
}

/// `ln E` for the Exp(1) variable `E = −ln v` of a word (`−∞` when `v = 1`).
#[inline]
fn ln_exponential(word: u64) -> f64 {
    let v = ((word >> 11) + 1) as f64 * EPSILON_53;
    (-v.ln()).ln()
}

/// A lower bound on [`ln_exponential`] from integer operations only: `E = −ln v ≥ 1 − v =
/// j · 2^-53` with `j = 2^53 − 1 − (word >> 11)`, and `ln j ≥ ⌊log2 j⌋ · ln 2`.
#[inline]
fn ln_exponential_floor_log2(word: u64) -> i32 {
    // (!word) >> 11 = 2^53 − 1 − (word >> 11); 63 − lz is ⌊log2⌋; −53 scales by 2^-53.
    // j = 0 (E = 0, ln E = −∞) gives −54 and nothing else does: the filter always scores it.
    10 - ((!word) >> 11).leading_zeros() as i32
}

/// The temperature of `temperature_milli` as the protocol computes it.
pub fn temperature(temperature_milli: u32) -> f64 {
    f64::from(temperature_milli) / 1000.0
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

/// Rejects empty logits, non-finite logits and temperatures that are not positive.
fn check_distribution(logits: &[f32], temperature: f64) -> Result<(), SamplingError> {
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
    Ok(())
}

/// Token `token`'s perturbed score `z / T − ln(−ln v)` (the normative definition).
pub fn score(logit: f32, temperature: f64, noise: PositionNoise, token: usize) -> f64 {
    f64::from(logit) / temperature - ln_exponential(noise.word(token))
}

/// The best token other than `exclude` and its score, scanning every id: a token is
/// scored exactly only when the integer lower bound on its `ln E` leaves it a chance to
/// win, which is a few dozen tokens of a real vocabulary. Same result as scoring all.
fn best_other(
    logits: &[f32],
    temperature: f64,
    noise: PositionNoise,
    exclude: Option<usize>,
) -> Option<(usize, f64)> {
    // Seed with the largest logit (usually close to the winner), then scan.
    let first = logits
        .iter()
        .enumerate()
        .filter(|&(j, _)| Some(j) != exclude)
        .fold(None, |best: Option<(usize, f32)>, (j, &z)| match best {
            Some((_, b)) if b >= z => best,
            _ => Some((j, z)),
        })?
        .0;
    let mut best = (first, score(logits[first], temperature, noise, first));
    // Token j can beat `best` only if z_j / T − floor_j · ln 2 ≥ best score, i.e.
    // z_j ≥ (best + floor_j · ln 2) · T; `limits[floor + 54]` holds that bound in f32,
    // lowered by a safety slack (the bound only decides what is scored exactly).
    let mut limits = [0f32; 66];
    let refresh = |limits: &mut [f32; 66], best_score: f64| {
        for (i, limit) in limits.iter_mut().enumerate() {
            if i == 0 {
                // E = 0 scores +∞: always scored.
                *limit = f32::NEG_INFINITY;
                continue;
            }
            let floor = i as f64 - 54.0;
            let bound = (best_score + floor * std::f64::consts::LN_2) * temperature;
            *limit = (bound - 1e-6 * (1.0 + bound.abs())) as f32;
        }
    };
    refresh(&mut limits, best.1);
    for (j, &z) in logits.iter().enumerate() {
        let word = noise.word(j);
        let floor = ln_exponential_floor_log2(word);
        if z < limits[(floor + 54) as usize] || Some(j) == exclude || j == first {
            continue;
        }
        let s = f64::from(z) / temperature - ln_exponential(word);
        if s > best.1 || (s == best.1 && j < best.0) {
            best = (j, s);
            refresh(&mut limits, s);
        }
    }
    Some(best)
}

/// The reference sampler: the token with the largest perturbed score, the smallest id
/// among equal scores.
///
/// # Errors
///
/// [`SamplingError::BadDistribution`] when `logits` is empty, a logit is not finite, or
/// the temperature is not a finite positive number.
pub fn sample_token(
    logits: &[f32],
    temperature: f64,
    noise: PositionNoise,
) -> Result<u32, SamplingError> {
    check_distribution(logits, temperature)?;
    let (token, _) = best_other(logits, temperature, noise, None)
        .ok_or(SamplingError::BadDistribution("no logits"))?;
    Ok(token as u32)
}

/// The claimed token's score minus the largest score of any other token (`+∞` for a
/// one-token vocabulary): positive when the sampler gives exactly this token.
///
/// # Errors
///
/// [`SamplingError::TokenOutOfRange`] when `token ≥ logits.len()`;
/// [`SamplingError::BadDistribution`] when a logit is not finite or the temperature is
/// not a finite positive number.
pub fn claimed_gap(
    logits: &[f32],
    temperature: f64,
    token: u32,
    noise: PositionNoise,
) -> Result<f64, SamplingError> {
    let c = token as usize;
    if c >= logits.len() {
        return Err(SamplingError::TokenOutOfRange {
            token,
            vocab: logits.len(),
        });
    }
    check_distribution(logits, temperature)?;
    let own = score(logits[c], temperature, noise, c);
    Ok(match best_other(logits, temperature, noise, Some(c)) {
        Some((_, other)) => own - other,
        None => f64::INFINITY,
    })
}

/// How a claimed token's gap classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PositionClass {
    /// Positive gap: the token is the one the validator's sampler gives.
    Inside,
    /// A gap in `[−margin, 0]`: drift could have swapped the two best tokens; tolerated a
    /// limited number of times.
    Ambiguous,
    /// Below `−margin` (or NaN): another token was sampled.
    Miss,
}

/// Classifies a claimed token's gap with `margin`.
pub fn classify(gap: f64, margin: f64) -> PositionClass {
    if gap > 0.0 {
        PositionClass::Inside
    } else if gap >= -margin {
        PositionClass::Ambiguous
    } else {
        PositionClass::Miss
    }
}

/// How far a gap lies below zero (0 when inside, infinite for NaN): what the margin must
/// absorb.
pub fn excess(gap: f64) -> f64 {
    if gap.is_nan() {
        f64::INFINITY
    } else {
        (-gap).max(0.0)
    }
}

/// The sampling check of one rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingReport {
    /// Completion positions checked.
    pub positions: usize,
    /// Positions with a gap within the margin below zero.
    pub ambiguous: usize,
    /// Completion positions (0-based) whose gap is below the margin.
    pub misses: Vec<usize>,
    /// Largest [`excess`] of any position.
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

/// Ambiguous positions tolerated over a miner's whole checked sample in a window (every
/// rollout of every checked group) of `positions` completion positions:
/// `SAMPLING_SAMPLE_AMBIGUOUS_BASE + positions / SAMPLING_SAMPLE_AMBIGUOUS_PER`.
pub fn allowed_ambiguous_in_sample(positions: usize) -> usize {
    SAMPLING_SAMPLE_AMBIGUOUS_BASE + positions / SAMPLING_SAMPLE_AMBIGUOUS_PER
}

/// Checks a rollout's completion from the validator's gap of each claimed token
/// ([`claimed_gap`]) with [`SAMPLING_MARGIN`].
pub fn check_sampling(gaps: &[f64]) -> SamplingReport {
    check_sampling_with(gaps, SAMPLING_MARGIN)
}

/// [`check_sampling`] with another margin (for audits).
pub fn check_sampling_with(gaps: &[f64], margin: f64) -> SamplingReport {
    let mut report = SamplingReport {
        positions: gaps.len(),
        ambiguous: 0,
        misses: Vec::new(),
        max_excess: 0.0,
    };
    for (t, &gap) in gaps.iter().enumerate() {
        report.max_excess = report.max_excess.max(excess(gap));
        match classify(gap, margin) {
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

    /// Every score computed, no filter: what `best_other` must equal.
    fn brute_force(
        logits: &[f32],
        t: f64,
        noise: PositionNoise,
        exclude: Option<usize>,
    ) -> (usize, f64) {
        let mut best = (usize::MAX, f64::NEG_INFINITY);
        for (j, &z) in logits.iter().enumerate() {
            let s = score(z, t, noise, j);
            if Some(j) != exclude && (s > best.1 || best.0 == usize::MAX) {
                best = (j, s);
            }
        }
        best
    }

    /// Language-model-like logits: a Zipf-shaped head over a long tail.
    fn lm_logits(vocab: usize, seed: u64) -> Vec<f32> {
        let noise = PositionNoise(seed);
        (0..vocab)
            .map(|j| {
                let u = (noise.word(j) >> 11) as f64 * EPSILON_53;
                (8.0 * u.powi(6) - 4.0 + u) as f32 * 3.0
            })
            .collect()
    }

    #[test]
    fn the_filtered_scan_equals_scoring_every_token() {
        for seed in 0..200u64 {
            let logits = lm_logits(3000, seed);
            for t in [0.05, 0.7, 1.0, 3.0] {
                let noise = PositionNoise(seed.wrapping_mul(7919));
                let fast = best_other(&logits, t, noise, None).unwrap();
                assert_eq!(
                    fast,
                    brute_force(&logits, t, noise, None),
                    "seed {seed} t {t}"
                );
                let excluded = best_other(&logits, t, noise, Some(fast.0)).unwrap();
                assert_eq!(excluded, brute_force(&logits, t, noise, Some(fast.0)));
            }
        }
    }

    #[test]
    fn sampling_follows_the_softmax() {
        // Empirical frequencies of 40 000 draws against softmax(z / T).
        let logits = [0.0f32, 1.0, -3.0, 2.0, -80.0];
        let t = 0.8;
        let mut counts = [0usize; 5];
        let n = 40_000;
        for s in 0..n {
            counts[sample_token(&logits, t, PositionNoise(s)).unwrap() as usize] += 1;
        }
        let w: Vec<f64> = logits.iter().map(|&z| (f64::from(z) / t).exp()).collect();
        let total: f64 = w.iter().sum();
        for (j, &c) in counts.iter().enumerate() {
            let p = w[j] / total;
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            let seen = c as f64 / n as f64;
            assert!(
                (seen - p).abs() < 5.0 * sd + 1e-9,
                "token {j}: {seen} vs {p}"
            );
        }
        assert_eq!(counts[4], 0, "a token e^-100 as likely is never drawn");
    }

    #[test]
    fn the_sampled_token_has_a_positive_gap() {
        let logits = lm_logits(2000, 5);
        for s in 0..300 {
            let noise = PositionNoise(s * 31 + 1);
            let token = sample_token(&logits, 1.0, noise).unwrap();
            let gap = claimed_gap(&logits, 1.0, token, noise).unwrap();
            assert!(gap > 0.0, "noise {s}: gap {gap}");
            let other = (token + 1) % 2000;
            assert!(claimed_gap(&logits, 1.0, other, noise).unwrap() < 0.0);
        }
        assert_eq!(
            claimed_gap(&[1.0], 1.0, 0, PositionNoise(0)),
            Ok(f64::INFINITY)
        );
    }

    #[test]
    fn classification_and_report() {
        assert_eq!(classify(0.3, 0.01), PositionClass::Inside);
        assert_eq!(classify(0.0, 0.01), PositionClass::Ambiguous);
        assert_eq!(classify(-0.01, 0.01), PositionClass::Ambiguous);
        assert_eq!(classify(-0.02, 0.01), PositionClass::Miss);
        assert_eq!(classify(f64::NAN, 0.01), PositionClass::Miss);
        let r = check_sampling_with(&[0.3, -0.005, -0.4], 0.01);
        assert_eq!((r.ambiguous, r.misses.clone()), (1, vec![2]));
        assert!((r.max_excess - 0.4).abs() < 1e-12);
        // Ambiguous positions are tolerated up to the cap.
        let near = vec![-SAMPLING_MARGIN / 2.0; allowed_ambiguous(3) + 1];
        assert!(!check_sampling(&near).accepted());
        assert!(check_sampling(&near[1..]).accepted());
        assert!(!check_sampling(&[]).accepted());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let n = PositionNoise(1);
        assert!(claimed_gap(&[], 1.0, 0, n).is_err());
        assert!(claimed_gap(&[0.0, f32::NAN], 1.0, 0, n).is_err());
        assert!(claimed_gap(&[0.0, 1.0], 0.0, 0, n).is_err());
        assert!(sample_token(&[], 1.0, n).is_err());
        assert!(sample_token(&[0.0, f32::INFINITY], 1.0, n).is_err());
        assert!(matches!(
            claimed_gap(&[0.0, 1.0], 1.0, 2, n),
            Err(SamplingError::TokenOutOfRange { .. })
        ));
    }

    #[test]
    fn noise_is_keyed_by_prompt_tokens_index_and_hotkey() {
        let r = [3u8; 32];
        let a = Hotkey([1; 32]);
        let first = RolloutNoise::new(&r, &a, &[1, 2, 3], 0).take_vec(4);
        assert_eq!(first, RolloutNoise::new(&r, &a, &[1, 2, 3], 0).take_vec(4));
        assert_ne!(first, RolloutNoise::new(&r, &a, &[1, 2, 3], 1).take_vec(4));
        assert_ne!(first, RolloutNoise::new(&r, &a, &[1, 2, 4], 0).take_vec(4));
        assert_ne!(
            first,
            RolloutNoise::new(&r, &Hotkey([2; 32]), &[1, 2, 3], 0).take_vec(4)
        );
        // SplitMix64's published first output for seed 0.
        assert_eq!(PositionNoise(0).word(0), 0xE220_A839_7B1D_CDAF);
    }

    /// A 49 152-token vocabulary shaped like a language model's: a head of ten likely
    /// tokens (its strength varies by position) over a long normal tail.
    fn realistic_logits(position: u64) -> Vec<f32> {
        let noise = PositionNoise(position.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let head = 6.0 + (position % 7) as f64;
        (0..49_152usize)
            .map(|j| {
                // Box-Muller from two words: a normal tail with sd 1.5.
                let (a, b) = (noise.word(2 * j), noise.word(2 * j + 1));
                let u1 = ((a >> 11) + 1) as f64 * EPSILON_53;
                let u2 = (b >> 11) as f64 * EPSILON_53;
                let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let bonus = if j % 4096 == 7 {
                    head - 1.5 * (j / 4096) as f64
                } else {
                    0.0
                };
                (1.5 * normal + bonus) as f32
            })
            .collect()
    }

    /// The ambiguity search of protocol v4: with inverse-CDF sampling, a position offers a
    /// choice when the uniform lies within the margin of an end of the sampled token's
    /// interval, and the long tail's tiny intervals put ends everywhere. Under Gumbel-max a
    /// choice needs two perturbed scores within the margin, which is rare whatever the
    /// vocabulary.
    #[test]
    fn ambiguity_search_finds_almost_no_choices() {
        let (positions, v4_margin) = (600u64, 2e-4);
        let (mut v4_choices, mut v5_choices) = (0, 0);
        for position in 0..positions {
            let logits = realistic_logits(position);
            let noise = PositionNoise(position ^ 0x5EED);
            // v4: the sampled token's interval under inverse-CDF sampling with uniform u.
            let u = (noise.word(usize::MAX - 1) >> 11) as f64 * EPSILON_53;
            let w: Vec<f64> = logits.iter().map(|&z| f64::from(z).exp()).collect();
            let total: f64 = w.iter().sum();
            let mut lo = 0.0;
            for &wj in &w {
                let hi = lo + wj / total;
                if u < hi {
                    v4_choices += usize::from(u - lo <= v4_margin || hi - u <= v4_margin);
                    break;
                }
                lo = hi;
            }
            // v5: the sampled token's gap.
            let token = sample_token(&logits, 1.0, noise).unwrap();
            let gap = claimed_gap(&logits, 1.0, token, noise).unwrap();
            assert!(gap > 0.0);
            v5_choices += usize::from(gap <= SAMPLING_MARGIN);
        }
        let (v4, v5) = (
            v4_choices as f64 / positions as f64,
            v5_choices as f64 / positions as f64,
        );
        eprintln!("choice share: v4 rule {v4}, v5 rule {v5} ({positions} positions)");
        assert!(v4 > 0.05, "the v4 rule offers choices at {v4} of positions");
        assert!(
            v5 <= 2e-3,
            "the v5 rule offers choices at {v5} of positions"
        );
    }

    #[test]
    fn the_integer_bound_never_exceeds_ln_e() {
        for seed in 0..20_000u64 {
            let w = PositionNoise(seed).word(seed as usize);
            let floor = f64::from(ln_exponential_floor_log2(w)) * std::f64::consts::LN_2;
            assert!(floor <= ln_exponential(w) + 1e-12, "word {w:#x}");
        }
        for w in [0u64, 1 << 11, (1 << 63) - 1, !(1u64 << 11), !(1u64 << 12)] {
            let floor = f64::from(ln_exponential_floor_log2(w)) * std::f64::consts::LN_2;
            assert!(floor <= ln_exponential(w) + 1e-12, "word {w:#x}");
            assert!(ln_exponential_floor_log2(w) > -54);
        }
        // The one word with E = 0 is told apart, and a token drawing it wins.
        assert_eq!(ln_exponential_floor_log2(u64::MAX), -54);
        assert_eq!(ln_exponential(u64::MAX), f64::NEG_INFINITY);
    }
}
