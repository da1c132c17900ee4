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
    pub fn validate(&self) -> Result<(), GrpoError> {
        let bad = |what: &str| Err(GrpoError::Config(what.to_string()));
        let finite = [
            self.clip_low,
            self.clip_high,
            self.kl_coef,
            self.entropy_coef,
            self.temperature,
            self.learning_rate,
            self.min_lr_ratio,
            self.beta1,
            self.beta2,
            self.eps,
            self.weight_decay,
            self.max_grad_norm,
            self.max_drift_fraction,
        ];
        if finite.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return bad("coefficients must be finite and non-negative");
        }
        if !(0.0..1.0).contains(&self.clip_low) || self.clip_high <= 0.0 {
            return bad("clip_low must be in [0, 1) and clip_high positive");
        }
        if self.dual_clip.is_some_and(|c| !(c > 1.0 && c.is_finite())) {
            return bad("dual_clip must be above 1");
        }
        if self.temperature == 0.0 || self.micro_batch_tokens == 0 {
            return bad("temperature and micro_batch_tokens must be positive");
        }
        if self.beta1 >= 1.0 || self.beta2 >= 1.0 || self.min_lr_ratio > 1.0 {
            return bad("betas must be below 1 and min_lr_ratio at most 1");
        }
        if let Some(o) = self.overlong {
            if o.buffer == 0 || o.buffer > o.max_tokens || !o.penalty.is_finite() {
                return bad("overlong buffer must be in 1..=max_tokens and the penalty finite");
            }
        }
        Ok(())
    }
}
