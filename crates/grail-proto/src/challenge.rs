//! Challenged positions and proof verification against any hidden-state provider.
//!
//! Positions: `L = total − prompt_len` completion positions. If `K ≥ L` every completion
//! position is checked. Otherwise a ChaCha20 stream keyed by
//! `prf32("grail/challenge-positions", [challenge_randomness, rollout_digest])` draws
//! `j = uniform_below(L)` repeatedly, skipping repeats, until K distinct values; the
//! result is `prompt_len + j`, sorted ascending.
//!
//! Verification recomputes the sketches at those positions from the validator's own
//! hidden states and compares each sketch by modular distance with the residue the
//! miner's digest stands for, against [`digest_tolerance`]. A position passes when every
//! sketch at it is within it; the rollout passes when at most [`allowed_misses`] positions fail
//! (`CHALLENGE_MAX_MISSES` at full K, none for completions shorter than 16 tokens).
//! The [`ProofReport`] keeps every distance so operators see margins, not only a verdict.

use std::collections::BTreeSet;

use crate::params::{CHALLENGE_K, CHALLENGE_MAX_MISSES, MAX_HIDDEN_SIZE, SKETCHES_PER_POSITION};
use crate::prf::{stream, uniform_below};
use crate::sketch::{
    digest_distances, digest_tolerance, PositionSketch, SketchCoefficients, SketchDigest,
};
use crate::wire::Rollout;

/// The completion positions a validator checks for one rollout: every completion position
/// when `k ≥ total_len − prompt_len`, otherwise `k` distinct ones drawn from the challenge
/// randomness and the rollout's [`crate::binding::rollout_digest`]; absolute token
/// positions, sorted ascending. Empty when `prompt_len ≥ total_len`.
///
/// # Examples
///
/// ```
/// use grail_proto::challenge_positions;
///
/// let (prompt_len, total_len) = (10, 200);
/// let picked = challenge_positions(&[1; 32], &[2; 32], prompt_len, total_len, 32);
/// assert_eq!(picked.len(), 32);
/// assert!(picked.windows(2).all(|w| w[0] < w[1]));
/// assert!(picked.iter().all(|p| (prompt_len..total_len).contains(p)));
/// // Deterministic for validators, unknown to the miner before the challenge randomness.
/// assert_eq!(picked, challenge_positions(&[1; 32], &[2; 32], prompt_len, total_len, 32));
/// assert_ne!(picked, challenge_positions(&[3; 32], &[2; 32], prompt_len, total_len, 32));
/// // Short completions are checked entirely.
/// assert_eq!(challenge_positions(&[1; 32], &[2; 32], 10, 15, 32), vec![10, 11, 12, 13, 14]);
/// ```
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
    /// the order of `positions`, for the sequence `tokens`. Every position is below
    /// `tokens.len()` when called from [`verify_proof`].
    ///
    /// # Errors
    ///
    /// Whatever the provider fails with (a failed forward pass, a device error);
    /// [`verify_proof`] returns it as [`ProofError::Provider`].
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
    /// The residues the miner's digest stands for.
    pub claimed: PositionSketch,
    /// The validator's recomputation.
    pub recomputed: PositionSketch,
    /// Modular distance per sketch.
    pub distance: [u32; SKETCHES_PER_POSITION],
    /// Largest distance that passes at this position: the tolerance plus the wire's
    /// rounding (`SKETCH_DIGEST_ROUNDING`).
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
#[non_exhaustive]
pub enum ProofError {
    /// The hidden-state provider failed.
    #[error("hidden-state provider failed: {0}")]
    Provider(#[source] Box<dyn std::error::Error + Send + Sync>),
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
///
/// A returned report may still reject the proof: check [`ProofReport::accepted`]. An
/// error means the inputs cannot be compared at all.
///
/// # Errors
///
/// [`ProofError::WrongCount`] when `hidden` and `positions` differ in length;
/// [`ProofError::WrongHiddenSize`] when the coefficients' hidden size exceeds
/// [`MAX_HIDDEN_SIZE`] or a vector's length differs from it;
/// [`ProofError::PositionOutOfRange`] when a position has no claimed sketch.
pub fn check_positions(
    claimed: &[SketchDigest],
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
        let tol = digest_tolerance(position);
        let distance: [u32; SKETCHES_PER_POSITION] = digest_distances(claim, recomputed);
        reports.push(PositionReport {
            position,
            claimed: claim.residues(),
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

/// Checks a rollout's sketches at `positions` (usually [`challenge_positions`]) against
/// hidden states from `provider`, the validator's own forward pass of the checkpoint.
///
/// A returned report may still reject the proof: check [`ProofReport::accepted`].
///
/// # Errors
///
/// [`ProofError::PositionOutOfRange`] when a position is outside the rollout's tokens;
/// [`ProofError::Provider`] when the provider fails; otherwise as [`check_positions`]
/// (a provider that returns the wrong number or size of vectors).
///
/// # Examples
///
/// ```
/// use grail_proto::binding::rollout_digest;
/// use grail_proto::{challenge_positions, verify_proof, HiddenStates, Rollout, SketchCoefficients};
///
/// /// A toy model: the hidden state at `p` depends on `tokens[..=p]` and the weights `self.0`.
/// struct Toy(u32);
/// impl HiddenStates for Toy {
///     type Error = std::convert::Infallible;
///     fn last_hidden_states(&mut self, tokens: &[u32], positions: &[usize]) -> Result<Vec<Vec<f32>>, Self::Error> {
///         let state = |p: usize| tokens[..=p].iter().fold(self.0, |a, &t| a.wrapping_mul(31).wrapping_add(t));
///         Ok(positions.iter().map(|&p| (0..8).map(|i| (state(p) >> i & 15) as f32 - 7.5).collect()).collect())
///     }
/// }
///
/// // Miner: a sketch of every position, committed before the challenge is known.
/// let coefficients = SketchCoefficients::derive(&[1; 32], 8);
/// let tokens: Vec<u32> = (1..=60).collect();
/// let every: Vec<usize> = (0..tokens.len()).collect();
/// let hidden = Toy(1).last_hidden_states(&tokens, &every).unwrap();
/// let sketches = hidden.iter().map(|h| coefficients.sketch(h).digest()).collect();
/// let rollout = Rollout { tokens, prompt_len: 4, sketches, logprobs: vec![-1.0; 56], reward: 0.0, advantage: 0.0, success: false };
///
/// // Validator: challenged positions, then its own forward pass.
/// let positions = challenge_positions(&[2; 32], &rollout_digest(0, &rollout), 4, 60, 32);
/// assert!(verify_proof(&rollout, &positions, &coefficients, &mut Toy(1))?.accepted());
/// assert!(!verify_proof(&rollout, &positions, &coefficients, &mut Toy(2))?.accepted());
/// # Ok::<(), grail_proto::ProofError>(())
/// ```
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("device lost")]
    struct DeviceLost;

    struct Failing;

    impl HiddenStates for Failing {
        type Error = DeviceLost;
        fn last_hidden_states(
            &mut self,
            _: &[u32],
            _: &[usize],
        ) -> Result<Vec<Vec<f32>>, DeviceLost> {
            Err(DeviceLost)
        }
    }

    #[test]
    fn provider_errors_are_the_source() {
        let rollout = Rollout {
            tokens: vec![1, 2, 3],
            prompt_len: 1,
            sketches: vec![SketchDigest::default(); 3],
            logprobs: vec![-1.0; 2],
            reward: 0.0,
            advantage: 0.0,
            success: false,
        };
        let coefficients = SketchCoefficients::derive(&[1; 32], 4);
        let err = verify_proof(&rollout, &[1, 2], &coefficients, &mut Failing).unwrap_err();
        assert!(matches!(err, ProofError::Provider(_)));
        assert!(err
            .source()
            .is_some_and(|s| s.downcast_ref::<DeviceLost>().is_some()));
        assert_eq!(err.to_string(), "hidden-state provider failed: device lost");
        // Positions outside the rollout never reach the provider.
        assert!(matches!(
            verify_proof(&rollout, &[3], &coefficients, &mut Failing),
            Err(ProofError::PositionOutOfRange {
                position: 3,
                len: 3
            })
        ));
    }
}
