//! Training configuration: every coefficient in one struct, defaults documented.

use serde::{Deserialize, Serialize};

use crate::GrpoError;

/// How rewards within a group become advantages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageMode {
    /// `(r − μ) / σ` with the population σ (GRPO; the protocol's definition).
    Grpo,
    /// `r − μ` (Dr.GRPO: no σ normalisation).
    DrGrpo,
    /// Ranks of the rewards (ties share their mean rank), then `(rank − μ) / σ`: robust to
    /// reward scale and outliers.
    Rank,
}

/// How per-token losses are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Mean over every completion token of the batch (DAPO): long completions weigh more.
    TokenMean,
    /// Mean over tokens within each sequence, then over sequences (original GRPO).
    SequenceMean,
}

/// DAPO's soft overlong punishment: completions longer than `max_tokens − buffer` lose up
/// to `penalty` reward, linearly, reaching it at `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverlongPenalty {
    /// Completion length cap.
    pub max_tokens: usize,
    /// Length of the ramp before the cap.
    pub buffer: usize,
    /// Reward removed at the cap.
    pub penalty: f64,
}

/// Every training coefficient (a TOML table in the trainer's configuration; a field left
/// out takes its default, an unknown field is an error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Advantage definition (default GRPO).
    pub advantage: AdvantageMode,
    /// Lower clip of the importance ratio: `1 − clip_low` (default 0.2).
    pub clip_low: f64,
    /// Upper clip: `1 + clip_high` (default 0.28, DAPO's clip-higher).
    pub clip_high: f64,
    /// Dual clip for negative advantages: the loss of a token is at most `dual_clip · |A|`
    /// (default Some(3.0); None disables).
    pub dual_clip: Option<f64>,
    /// Loss averaging (default token mean).
    pub aggregation: Aggregation,
    /// Weight of the k3 KL estimate against the frozen reference (default 0: no reference
    /// model is loaded).
    pub kl_coef: f64,
    /// Weight of the entropy bonus (default 0).
    pub entropy_coef: f64,
    /// Soft overlong penalty on rewards (default off).
    pub overlong: Option<OverlongPenalty>,
    /// Temperature the behaviour log-probs were computed at (default 1: raw log-probs, as
    /// the protocol records them).
    pub temperature: f64,
    /// Peak learning rate (default 1e-6).
    pub learning_rate: f64,
    /// Final learning rate as a fraction of the peak (default 0.1).
    pub min_lr_ratio: f64,
    /// Linear warmup steps (default 10).
    pub warmup_steps: u64,
    /// Steps of the cosine schedule (default 1000); the rate stays at the minimum after.
    pub total_steps: u64,
    /// AdamW β₁ (default 0.9).
    pub beta1: f64,
    /// AdamW β₂ (default 0.999).
    pub beta2: f64,
    /// AdamW ε (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay on matrices (not norms or biases) (default 0.01).
    pub weight_decay: f64,
    /// Global gradient-norm clip (default 1.0).
    pub max_grad_norm: f64,
    /// Padded tokens per micro-batch; gradients accumulate across micro-batches
    /// (default 4096).
    pub micro_batch_tokens: usize,
    /// Skip the step when more than this fraction of tokens has an importance ratio
    /// outside the clip band (default 0.5): the behaviour policy is too far away.
    pub max_drift_fraction: f64,
    /// Mixed precision (libtorch autocast) for forward passes on CUDA (default true; CPU
    /// always trains in fp32).
    pub autocast_on_cuda: bool,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            advantage: AdvantageMode::Grpo,
            clip_low: 0.2,
            clip_high: 0.28,
            dual_clip: Some(3.0),
            aggregation: Aggregation::TokenMean,
            kl_coef: 0.0,
            entropy_coef: 0.0,
            overlong: None,
            temperature: 1.0,
            learning_rate: 1e-6,
            min_lr_ratio: 0.1,
            warmup_steps: 10,
            total_steps: 1000,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            micro_batch_tokens: 4096,
            max_drift_fraction: 0.5,
            autocast_on_cuda: true,
        }
    }
}

impl GrpoConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`GrpoError::OutOfRange`] naming the first field outside its range.
    pub fn validate(&self) -> Result<(), GrpoError> {
        let bad = |field, value, allowed| {
            Err(GrpoError::OutOfRange {
                field,
                value,
                allowed,
            })
        };
        let finite = [
            ("clip_low", self.clip_low),
            ("clip_high", self.clip_high),
            ("kl_coef", self.kl_coef),
            ("entropy_coef", self.entropy_coef),
            ("temperature", self.temperature),
            ("learning_rate", self.learning_rate),
            ("min_lr_ratio", self.min_lr_ratio),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
            ("max_grad_norm", self.max_grad_norm),
            ("max_drift_fraction", self.max_drift_fraction),
        ];
        if let Some(&(field, value)) = finite.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            return bad(field, value, "finite and ≥ 0");
        }
        if self.clip_low >= 1.0 {
            return bad("clip_low", self.clip_low, "[0, 1)");
        }
        if self.clip_high <= 0.0 {
            return bad("clip_high", self.clip_high, "> 0");
        }
        if let Some(c) = self.dual_clip.filter(|c| !(*c > 1.0 && c.is_finite())) {
            return bad("dual_clip", c, "finite and > 1");
        }
        if self.temperature == 0.0 {
            return bad("temperature", self.temperature, "> 0");
        }
        if self.micro_batch_tokens == 0 {
            return bad("micro_batch_tokens", 0.0, "≥ 1");
        }
        if self.beta1 >= 1.0 {
            return bad("beta1", self.beta1, "[0, 1)");
        }
        if self.beta2 >= 1.0 {
            return bad("beta2", self.beta2, "[0, 1)");
        }
        if self.min_lr_ratio > 1.0 {
            return bad("min_lr_ratio", self.min_lr_ratio, "[0, 1]");
        }
        if let Some(o) = self.overlong {
            if o.buffer == 0 || o.buffer > o.max_tokens {
                return bad(
                    "overlong.buffer",
                    o.buffer as f64,
                    "1..=overlong.max_tokens",
                );
            }
            if !o.penalty.is_finite() {
                return bad("overlong.penalty", o.penalty, "finite");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_out_of_range_is_named_with_what_is_allowed() {
        assert!(GrpoConfig::default().validate().is_ok());
        let named = |config: GrpoConfig| match config.validate() {
            Err(GrpoError::OutOfRange {
                field,
                value,
                allowed,
            }) => (field, value, allowed),
            other => panic!("{other:?}"),
        };
        let c = GrpoConfig {
            clip_low: 1.5,
            ..GrpoConfig::default()
        };
        assert_eq!(named(c), ("clip_low", 1.5, "[0, 1)"));
        let c = GrpoConfig {
            weight_decay: f64::NAN,
            ..GrpoConfig::default()
        };
        assert_eq!(named(c).0, "weight_decay");
        let c = GrpoConfig {
            dual_clip: Some(0.5),
            ..GrpoConfig::default()
        };
        assert_eq!(named(c), ("dual_clip", 0.5, "finite and > 1"));
        let c = GrpoConfig {
            micro_batch_tokens: 0,
            ..GrpoConfig::default()
        };
        assert_eq!(named(c), ("micro_batch_tokens", 0.0, "≥ 1"));
        let c = GrpoConfig {
            overlong: Some(OverlongPenalty {
                max_tokens: 10,
                buffer: 20,
                penalty: 1.0,
            }),
            ..GrpoConfig::default()
        };
        assert_eq!(
            named(c),
            ("overlong.buffer", 20.0, "1..=overlong.max_tokens")
        );
        let e = GrpoConfig {
            beta2: 1.0,
            ..GrpoConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "bad training configuration: `beta2` is 1, allowed [0, 1)"
        );
    }
}
