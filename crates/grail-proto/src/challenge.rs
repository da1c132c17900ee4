//! Challenged positions and proof verification against any hidden-state provider.
//!
//! Positions: `L = total − prompt_len` completion positions. If `K ≥ L` every completion
//! position is checked. Otherwise a ChaCha20 stream keyed by
//! `prf32("grail/challenge-positions", [challenge_randomness, rollout_digest])` draws
//! `j = uniform_below(L)` repeatedly, skipping repeats, until K distinct values; the
//! result is `prompt_len + j`, sorted ascending.
//!
//! Verification recomputes the sketches at those positions from the validator's own
//! hidden states and compares each sketch by modular distance against
//! [`tolerance`]. A position passes when every sketch at it is
//! within tolerance; the rollout passes when at most [`allowed_misses`] positions fail
//! (`CHALLENGE_MAX_MISSES` at full K, none for completions shorter than 16 tokens).
//! The [`ProofReport`] keeps every distance so operators see margins, not only a verdict.

use std::collections::BTreeSet;

use crate::params::{CHALLENGE_K, CHALLENGE_MAX_MISSES, MAX_HIDDEN_SIZE, SKETCHES_PER_POSITION};
use crate::prf::{stream, uniform_below};
use crate::sketch::{modular_distance, tolerance, PositionSketch, SketchCoefficients};
use crate::wire::Rollout;

/// The completion positions a validator checks for one rollout.
pub fn challenge_positions(
    challenge_randomness: &[u8; 32],
    rollout_digest: &[u8; 32],
    prompt_len: usize,
    total_len: usize,
    k: usize,
) -> Vec<usize> {
    let span = total_len.saturating_sub(prompt_len);
    if k >= span {
        return (prompt_len..total_len).collect();
    }
    let mut rng = stream(
        b"grail/challenge-positions",
        &[challenge_randomness, rollout_digest],
    );
    let mut chosen = BTreeSet::new();
    while chosen.len() < k {
        chosen.insert(uniform_below(&mut rng, span as u64) as usize);
    }
    chosen.into_iter().map(|j| prompt_len + j).collect()
}

/// Gives the last-layer hidden state (after the final norm) of a model at chosen positions
/// of a token sequence. grail-infer implements it with libtorch; a third-party verifier
/// can implement it with any inference stack that computes the same model.
pub trait HiddenStates {
    /// The provider's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// One hidden vector (length = the model's hidden size) per requested position, in
    /// the order of `positions`, for the sequence `tokens`.
    fn last_hidden_states(
        &mut self,
        tokens: &[u32],
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>, Self::Error>;
}

/// The check at one position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionReport {
    /// Absolute token position.
    pub position: usize,
    /// The miner's sketches.
    pub claimed: PositionSketch,
    /// The validator's recomputation.
    pub recomputed: PositionSketch,
    /// Modular distance per sketch.
    pub distance: [u32; SKETCHES_PER_POSITION],
    /// Tolerance at this position.
    pub tolerance: u32,
    /// Every distance within tolerance.
    pub passed: bool,
}

/// The outcome of a proof check, with every per-position distance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofReport {
    /// One entry per challenged position.
    pub positions: Vec<PositionReport>,
    /// Positions that may fail while the rollout still passes.
    pub max_misses: usize,
}

impl ProofReport {
    /// Positions that failed.
    pub fn misses(&self) -> usize {
        self.positions.iter().filter(|p| !p.passed).count()
    }

    /// Largest distance seen at any checked position.
    pub fn max_distance(&self) -> u32 {
        self.positions
            .iter()
            .flat_map(|p| p.distance)
            .max()
            .unwrap_or(0)
    }

    /// Whether the proof is accepted.
    pub fn accepted(&self) -> bool {
        !self.positions.is_empty() && self.misses() <= self.max_misses
    }
}

/// Why a proof could not be checked at all (as opposed to checked and rejected).
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The hidden-state provider failed.
    #[error("hidden-state provider failed: {0}")]
    Provider(Box<dyn std::error::Error + Send + Sync>),
    /// The provider returned the wrong number of vectors.
    #[error("provider returned {got} hidden vectors for {want} positions")]
    WrongCount {
        /// Vectors returned.
        got: usize,
        /// Positions asked for.
        want: usize,
    },
    /// A vector's length differs from the coefficients' hidden size.
    #[error("hidden vector of length {got}, expected {want}")]
    WrongHiddenSize {
        /// Length returned.
        got: usize,
        /// Hidden size expected.
        want: usize,
    },
    /// A challenged position is outside the rollout.
    #[error("position {position} outside a rollout of {len} tokens")]
    PositionOutOfRange {
        /// The position.
        position: usize,
        /// Rollout length.
        len: usize,
    },
}

/// Challenged positions that may fail when `checked` positions are checked:
/// `CHALLENGE_MAX_MISSES · checked / CHALLENGE_K`, rounded down. Full challenges allow
/// `CHALLENGE_MAX_MISSES`; a completion shorter than 16 tokens allows none, so a short
/// rollout cannot pass on misses alone.
pub fn allowed_misses(checked: usize) -> usize {
    CHALLENGE_MAX_MISSES * checked.min(CHALLENGE_K) / CHALLENGE_K
}

/// Compares claimed sketches with hidden vectors the caller already computed (sans-I/O
/// core of [`verify_proof`]). `hidden[i]` belongs to `positions[i]`.
pub fn check_positions(
    claimed: &[PositionSketch],
    positions: &[usize],
    hidden: &[Vec<f32>],
    coefficients: &SketchCoefficients,
) -> Result<ProofReport, ProofError> {
    if hidden.len() != positions.len() {
        return Err(ProofError::WrongCount {
            got: hidden.len(),
            want: positions.len(),
        });
    }
    let want = coefficients.hidden_size();
    if want > MAX_HIDDEN_SIZE {
        return Err(ProofError::WrongHiddenSize {
            got: want,
            want: MAX_HIDDEN_SIZE,
        });
    }
    let mut reports = Vec::with_capacity(positions.len());
    for (&position, h) in positions.iter().zip(hidden) {
        if h.len() != want {
            return Err(ProofError::WrongHiddenSize { got: h.len(), want });
        }
        let claim = *claimed
            .get(position)
            .ok_or(ProofError::PositionOutOfRange {
                position,
                len: claimed.len(),
            })?;
        let recomputed = coefficients.sketch(h);
        let tol = tolerance(position);
        let mut distance = [0u32; SKETCHES_PER_POSITION];
        for (s, d) in distance.iter_mut().enumerate() {
            *d = modular_distance(claim.0[s], recomputed.0[s]);
        }
        reports.push(PositionReport {
            position,
            claimed: claim,
            recomputed,
            distance,
            tolerance: tol,
            passed: distance.iter().all(|&d| d <= tol),
        });
    }
    Ok(ProofReport {
        max_misses: allowed_misses(reports.len()),
        positions: reports,
    })
}

/// Checks a rollout's sketches at `positions` against hidden states from `provider`.
pub fn verify_proof<P: HiddenStates>(
    rollout: &Rollout,
    positions: &[usize],
    coefficients: &SketchCoefficients,
    provider: &mut P,
) -> Result<ProofReport, ProofError> {
    if let Some(&position) = positions.iter().find(|&&p| p >= rollout.tokens.len()) {
        return Err(ProofError::PositionOutOfRange {
            position,
            len: rollout.tokens.len(),
        });
    }
    let hidden = provider
        .last_hidden_states(&rollout.tokens, positions)
        .map_err(|e| ProofError::Provider(Box::new(e)))?;
    check_positions(&rollout.sketches, positions, &hidden, coefficients)
}
