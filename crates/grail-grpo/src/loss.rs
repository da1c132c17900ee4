//! The GRPO/DAPO policy loss as a pure function of tensors.
//!
//! Per completion token `t` with importance ratio `ρ = exp(log π(t) − log π_old(t))` and the
//! sequence's advantage `A`:
//!
//! ```text
//! pg    = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high))
//! pg    = min(pg, −A·c)                      when A < 0 and dual clip c is on
//! kl    = exp(r − log π) − (r − log π) − 1   (k3 estimator, r = log π_ref)
//! ℓ     = pg + β·kl − α·H
//! loss  = Σ_t w_t · ℓ_t
//! ```
//!
//! The weights `w` carry the aggregation ([`token_weights`]), so micro-batches sum to the
//! loss of the whole batch.

use tch::{Kind, Tensor};

use crate::config::{Aggregation, GrpoConfig};

/// The tensors of one micro-batch, all `[rows, T]` except `advantages` (`[rows]`).
pub struct LossInputs<'a> {
    /// Current-policy log-probs of the completion tokens (with gradient).
    pub logprobs: &'a Tensor,
    /// Behaviour log-probs (what the rollouts were sampled with).
    pub old_logprobs: &'a Tensor,
    /// Frozen reference log-probs, when the KL term is on.
    pub ref_logprobs: Option<&'a Tensor>,
    /// Per-token entropy of the current policy, when the entropy bonus is on.
    pub entropy: Option<&'a Tensor>,
    /// Per-sequence advantages.
    pub advantages: &'a Tensor,
    /// 1 for completion tokens, 0 for prompt and padding.
    pub mask: &'a Tensor,
}

/// Sums over one micro-batch, for metrics (token counts unweighted, loss parts weighted).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    /// Weighted policy-gradient term.
    pub policy: f64,
    /// Weighted KL term (before its coefficient).
    pub kl: f64,
    /// Weighted entropy (before its coefficient).
    pub entropy: f64,
    /// Tokens where clipping changed the objective.
    pub clipped_tokens: f64,
    /// Tokens whose ratio lies outside the clip band.
    pub drifted_tokens: f64,
    /// Completion tokens.
    pub tokens: f64,
}

impl std::ops::AddAssign for LossStats {
    fn add_assign(&mut self, o: Self) {
        self.policy += o.policy;
        self.kl += o.kl;
        self.entropy += o.entropy;
        self.clipped_tokens += o.clipped_tokens;
        self.drifted_tokens += o.drifted_tokens;
        self.tokens += o.tokens;
    }
}

/// Per-token weights for `mask`: `1 / total_tokens` (token mean) or
/// `1 / (tokens of the sequence · total_sequences)` (sequence mean).
pub fn token_weights(
    mask: &Tensor,
    aggregation: Aggregation,
    total_tokens: f64,
    total_sequences: f64,
) -> Tensor {
    match aggregation {
        Aggregation::TokenMean => mask / total_tokens.max(1.0),
        Aggregation::SequenceMean => {
            let per_seq = mask.sum_dim_intlist(-1, true, Kind::Float).clamp_min(1.0);
            mask / per_seq / total_sequences.max(1.0)
        }
    }
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// The weighted loss of a micro-batch (a scalar with gradient) and its statistics.
pub fn policy_loss(
    inputs: &LossInputs<'_>,
    config: &GrpoConfig,
    weights: &Tensor,
) -> (Tensor, LossStats) {
    let adv = inputs.advantages.unsqueeze(-1);
    let ratio = (inputs.logprobs - inputs.old_logprobs).exp();
    let low = 1.0 - config.clip_low;
    let high = 1.0 + config.clip_high;
    let unclipped = -&adv * &ratio;
    let clipped = -&adv * ratio.clamp(low, high);
    let mut pg = unclipped.maximum(&clipped);
    if let Some(c) = config.dual_clip {
        let cap = -&adv * c;
        pg = pg.where_self(&adv.ge(0.0), &pg.minimum(&cap));
    }
    let mut stats = LossStats::default();
    let kl_term = match inputs.ref_logprobs {
        Some(reference) => {
            let d = reference - inputs.logprobs;
            let kl = d.exp() - &d - 1.0;
            stats.kl = scalar(&(&kl * weights).sum(Kind::Double).detach());
            kl * config.kl_coef
        }
        None => pg.zeros_like(),
    };
    let entropy_term = match inputs.entropy {
        Some(h) => {
            stats.entropy = scalar(&(h * weights).sum(Kind::Double).detach());
            h * config.entropy_coef
        }
        None => pg.zeros_like(),
    };
    let per_token = &pg + kl_term - entropy_term;
    let loss = (&per_token * weights).sum(Kind::Float);
    tch::no_grad(|| {
        let m = inputs.mask;
        stats.policy = scalar(&(&pg * weights).sum(Kind::Double));
        stats.clipped_tokens =
            scalar(&(clipped.gt_tensor(&unclipped).to_kind(Kind::Float) * m).sum(Kind::Double));
        let outside = ratio.lt(low).logical_or(&ratio.gt(high));
        stats.drifted_tokens = scalar(&(outside.to_kind(Kind::Float) * m).sum(Kind::Double));
        stats.tokens = scalar(&m.sum(Kind::Double));
    });
    (loss, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], rows: i64) -> Tensor {
        Tensor::from_slice(v).view([rows, -1])
    }

    #[test]
    fn clipping_and_dual_clip_follow_the_formula() {
        let config = GrpoConfig::default();
        // Two sequences of two tokens: A = +1 and A = −1.
        let old = t(&[0.0; 4], 2);
        let ratios = [1.5f32, 0.9, 0.5, 4.0];
        let new = t(&ratios.map(f32::ln), 2);
        let adv = Tensor::from_slice(&[1.0f32, -1.0]);
        let mask = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
        let weights = token_weights(&mask, Aggregation::TokenMean, 4.0, 2.0);
        let inputs = LossInputs {
            logprobs: &new,
            old_logprobs: &old,
            ref_logprobs: None,
            entropy: None,
            advantages: &adv,
            mask: &mask,
        };
        let (loss, stats) = policy_loss(&inputs, &config, &weights);
        // A=+1: ρ=1.5 → −min(1.5, 1.28) = −1.28; ρ=0.9 → −0.9.
        // A=−1: ρ=0.5 → max(0.5, 0.8) = 0.8; ρ=4.0 → max(4, 1.28) = 4 → dual clip 3.
        let want = (-1.28 - 0.9 + 0.8 + 3.0) / 4.0;
        assert!(
            (loss.double_value(&[]) - want).abs() < 1e-6,
            "{loss:?} vs {want}"
        );
        assert_eq!(stats.tokens, 4.0);
        assert_eq!(stats.clipped_tokens, 2.0); // 1.5 (A>0) and 0.5 (A<0)
        assert_eq!(stats.drifted_tokens, 3.0); // 1.5, 0.5, 4.0
        let seq = token_weights(
            &t(&[1.0, 1.0, 1.0, 0.0], 2),
            Aggregation::SequenceMean,
            3.0,
            2.0,
        );
        assert_eq!(
            Vec::<f32>::try_from(seq.view([-1])).unwrap(),
            vec![0.25, 0.25, 0.5, 0.0]
        );
    }
}
