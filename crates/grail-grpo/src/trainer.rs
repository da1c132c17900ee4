//! One training step: groups → advantages → micro-batches (forward, loss, backward,
//! accumulate) → health gates → AdamW.

use grail_infer::model::Model;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::advantage::{advantages, shaped_reward};
use crate::config::GrpoConfig;
use crate::loss::{policy_loss, token_weights, LossInputs, LossStats};
use crate::optim::{grad_norm, learning_rate, zero_grads, AdamW};
use crate::GrpoError;

/// One verified rollout as the trainer consumes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRollout {
    /// Completion tokens.
    pub completion: Vec<u32>,
    /// Behaviour log-probs of the completion tokens, recomputed by the validator.
    pub behaviour_logprobs: Vec<f32>,
    /// Reward recomputed by the environment.
    pub reward: f64,
}

/// M rollouts of one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutGroup {
    /// Prompt tokens.
    pub prompt: Vec<u32>,
    /// The rollouts.
    pub rollouts: Vec<TrainingRollout>,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Steps attempted so far, this one included.
    pub step: u64,
    /// Optimizer updates taken so far.
    pub updates: u64,
    /// Learning rate used (0 when skipped).
    pub learning_rate: f64,
    /// Why the optimizer was not touched, when it was not.
    pub skipped: Option<String>,
    /// Total loss.
    pub loss: f64,
    /// Policy-gradient part.
    pub policy_loss: f64,
    /// KL to the reference (before its coefficient).
    pub kl: f64,
    /// Weighted token entropy (before its coefficient; 0 when `entropy_coef` is 0).
    pub entropy: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Fraction of tokens where clipping changed the objective.
    pub clip_fraction: f64,
    /// Fraction of tokens with a ratio outside the clip band.
    pub drift_fraction: f64,
    /// Mean reward over all rollouts given (after shaping).
    pub mean_reward: f64,
    /// Mean |advantage| over the sequences trained on.
    pub mean_abs_advantage: f64,
    /// Completion tokens trained on.
    pub tokens: usize,
    /// Sequences trained on (zero-advantage sequences are left out).
    pub sequences: usize,
}

struct Sample {
    tokens: Vec<u32>,
    prompt_len: usize,
    old: Vec<f32>,
    advantage: f64,
}

/// Accumulated results of a gradient pass.
pub struct Gradients {
    /// Summed loss.
    pub loss: f64,
    /// Summed statistics.
    pub stats: LossStats,
    /// Sequences used.
    pub sequences: usize,
    /// Mean reward over all rollouts.
    pub mean_reward: f64,
    /// Mean |advantage| over the sequences used.
    pub mean_abs_advantage: f64,
}

/// A policy being trained (and an optional frozen reference for the KL term).
pub struct Trainer {
    model: Model,
    reference: Option<Model>,
    params: Vec<Tensor>,
    optimizer: AdamW,
    config: GrpoConfig,
    steps: u64,
}

impl Trainer {
    /// Trains `model` (its parameters get gradients). `reference` is needed when
    /// `config.kl_coef > 0`.
    pub fn new(
        model: Model,
        reference: Option<Model>,
        config: GrpoConfig,
    ) -> Result<Self, GrpoError> {
        config.validate()?;
        if config.kl_coef > 0.0 && reference.is_none() {
            return Err(GrpoError::NoReference {
                kl_coef: config.kl_coef,
            });
        }
        let params = model.parameters();
        for p in &params {
            let _ = p.set_requires_grad(true);
        }
        let optimizer = AdamW::new(&params);
        Ok(Self {
            model,
            reference,
            params,
            optimizer,
            config,
            steps: 0,
        })
    }

    /// The policy.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The configuration.
    pub fn config(&self) -> &GrpoConfig {
        &self.config
    }

    /// The trainable tensors (shared with the model).
    pub fn parameters(&self) -> &[Tensor] {
        &self.params
    }

    /// Steps attempted and optimizer updates taken.
    pub fn progress(&self) -> (u64, u64) {
        (self.steps, self.optimizer.step)
    }

    pub(crate) fn optimizer_mut(&mut self) -> (&mut AdamW, &mut u64) {
        (&mut self.optimizer, &mut self.steps)
    }

    pub(crate) fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    fn samples(&self, groups: &[RolloutGroup]) -> Result<(Vec<Sample>, f64), GrpoError> {
        let mut samples = Vec::new();
        let (mut reward_sum, mut rollouts) = (0.0, 0usize);
        for (g, group) in groups.iter().enumerate() {
            if group.prompt.is_empty() {
                return Err(GrpoError::EmptyPrompt { group: g });
            }
            let rewards: Vec<f64> = group
                .rollouts
                .iter()
                .map(|r| shaped_reward(r.reward, r.completion.len(), self.config.overlong.as_ref()))
                .collect();
            if let Some((i, &reward)) = rewards.iter().enumerate().find(|(_, r)| !r.is_finite()) {
                return Err(GrpoError::NonFiniteReward {
                    group: g,
                    rollout: i,
                    reward,
                });
            }
            reward_sum += rewards.iter().sum::<f64>();
            rollouts += rewards.len();
            let adv = advantages(&rewards, self.config.advantage);
            for (i, (r, a)) in group.rollouts.iter().zip(adv).enumerate() {
                if r.completion.is_empty() {
                    return Err(GrpoError::EmptyCompletion {
                        group: g,
                        rollout: i,
                    });
                }
                if r.completion.len() != r.behaviour_logprobs.len() {
                    return Err(GrpoError::LogprobCount {
                        group: g,
                        rollout: i,
                        tokens: r.completion.len(),
                        logprobs: r.behaviour_logprobs.len(),
                    });
                }
                if let Some((index, &value)) = r
                    .behaviour_logprobs
                    .iter()
                    .enumerate()
                    .find(|(_, l)| !l.is_finite() || **l > 0.0)
                {
                    return Err(GrpoError::BadLogprob {
                        group: g,
                        rollout: i,
                        index,
                        value,
                    });
                }
                let tokens: Vec<u32> = group.prompt.iter().chain(&r.completion).copied().collect();
                self.model.check_tokens(&tokens, 0)?;
                if a == 0.0 {
                    continue; // no learning signal: contributes nothing, not even to the mean
                }
                samples.push(Sample {
                    tokens,
                    prompt_len: group.prompt.len(),
                    old: r.behaviour_logprobs.clone(),
                    advantage: a,
                });
            }
        }
        Ok((samples, reward_sum / rollouts.max(1) as f64))
    }

    /// Forward and backward over `groups`, accumulating gradients in the parameters
    /// (which the caller zeroes). Does not touch the optimizer.
    pub fn accumulate_gradients(&self, groups: &[RolloutGroup]) -> Result<Gradients, GrpoError> {
        let (samples, mean_reward) = self.samples(groups)?;
        let total_tokens: usize = samples.iter().map(|s| s.old.len()).sum();
        let mut out = Gradients {
            loss: 0.0,
            stats: LossStats::default(),
            sequences: samples.len(),
            mean_reward,
            mean_abs_advantage: samples.iter().fold(0.0, |acc, s| acc + s.advantage.abs())
                / samples.len().max(1) as f64,
        };
        let mut start = 0;
        while start < samples.len() {
            let mut end = start + 1;
            let mut longest = samples[start].tokens.len();
            while end < samples.len() {
                let l = longest.max(samples[end].tokens.len());
                if l * (end - start + 1) > self.config.micro_batch_tokens {
                    break;
                }
                longest = l;
                end += 1;
            }
            let (loss, stats) =
                self.micro_batch(&samples[start..end], total_tokens, samples.len())?;
            out.loss += loss;
            out.stats += stats;
            start = end;
        }
        Ok(out)
    }

    fn micro_batch(
        &self,
        batch: &[Sample],
        total_tokens: usize,
        total_seqs: usize,
    ) -> Result<(f64, LossStats), GrpoError> {
        let device = self.model.device();
        let rows = batch.len() as i64;
        let len = batch.iter().map(|s| s.tokens.len()).max().unwrap_or(0) as i64;
        let width = (len - 1) as usize;
        let mut ids = vec![0i64; (rows * len) as usize];
        let mut targets = vec![0i64; batch.len() * width];
        let mut mask = vec![0f32; batch.len() * width];
        let mut old = vec![0f32; batch.len() * width];
        for (r, s) in batch.iter().enumerate() {
            for (j, &t) in s.tokens.iter().enumerate() {
                ids[r * len as usize + j] = t as i64;
            }
            for j in 0..s.tokens.len() - 1 {
                targets[r * width + j] = s.tokens[j + 1] as i64;
                if j + 1 >= s.prompt_len {
                    mask[r * width + j] = 1.0;
                    old[r * width + j] = s.old[j + 1 - s.prompt_len];
                }
            }
        }
        let tensor = |v: &[f32]| {
            Tensor::from_slice(v)
                .view([rows, width as i64])
                .to_device(device)
        };
        let ids = Tensor::from_slice(&ids).view([rows, len]).to_device(device);
        let targets = Tensor::from_slice(&targets)
            .view([rows, width as i64, 1])
            .to_device(device);
        let (mask, old) = (tensor(&mask), tensor(&old));
        let advantages =
            Tensor::from_slice(&batch.iter().map(|s| s.advantage as f32).collect::<Vec<_>>())
                .to_device(device);
        let temperature = self.config.temperature;
        let log_softmax = |model: &Model| {
            let hidden = model.hidden_states(&ids, None).narrow(1, 0, len - 1);
            let logits = model.logits(&hidden);
            let logits = if temperature == 1.0 {
                logits
            } else {
                logits / temperature
            };
            logits.log_softmax(-1, Kind::Float)
        };
        let autocast = device != Device::Cpu && self.config.autocast_on_cuda;
        let all = tch::autocast(autocast, || log_softmax(&self.model));
        let logprobs = all.gather(-1, &targets, false).squeeze_dim(-1);
        // The entropy costs a pass over the vocabulary per token: only when it is trained.
        let entropy = (self.config.entropy_coef > 0.0)
            .then(|| -(all.exp() * &all).sum_dim_intlist(-1, false, Kind::Float));
        let reference = match (&self.reference, self.config.kl_coef > 0.0) {
            (Some(r), true) => Some(tch::no_grad(|| {
                tch::autocast(autocast, || log_softmax(r))
                    .gather(-1, &targets, false)
                    .squeeze_dim(-1)
            })),
            _ => None,
        };
        let weights = token_weights(
            &mask,
            self.config.aggregation,
            total_tokens as f64,
            total_seqs as f64,
        );
        let inputs = LossInputs {
            logprobs: &logprobs,
            old_logprobs: &old,
            ref_logprobs: reference.as_ref(),
            entropy: entropy.as_ref(),
            advantages: &advantages,
            mask: &mask,
        };
        let (loss, stats) = policy_loss(&inputs, &self.config, &weights);
        let value = loss.double_value(&[]);
        if value.is_finite() {
            loss.backward();
        }
        Ok((value, stats))
    }

    /// One training step on `groups`. The optimizer is left untouched (and the report
    /// says why) when there is no learning signal, the loss or gradient is not finite, or
    /// too many tokens drifted outside the clip band.
    pub fn step(&mut self, groups: &[RolloutGroup]) -> Result<StepReport, GrpoError> {
        zero_grads(&self.params);
        let grads = self.accumulate_gradients(groups)?;
        self.steps += 1;
        let s = grads.stats;
        let tokens = s.tokens.max(1.0);
        let norm = grad_norm(&self.params);
        let mut report = StepReport {
            step: self.steps,
            updates: self.optimizer.step,
            learning_rate: 0.0,
            skipped: None,
            loss: grads.loss,
            policy_loss: s.policy,
            kl: s.kl,
            entropy: s.entropy,
            grad_norm: norm,
            clip_fraction: s.clipped_tokens / tokens,
            drift_fraction: s.drifted_tokens / tokens,
            mean_reward: grads.mean_reward,
            mean_abs_advantage: grads.mean_abs_advantage,
            tokens: s.tokens as usize,
            sequences: grads.sequences,
        };
        report.skipped = if grads.sequences == 0 {
            Some("no learning signal: every group has equal rewards".into())
        } else if !grads.loss.is_finite() {
            Some(format!("non-finite loss {}", grads.loss))
        } else if !norm.is_finite() {
            Some(format!("non-finite gradient norm {norm}"))
        } else if report.drift_fraction > self.config.max_drift_fraction {
            Some(format!(
                "{:.1}% of tokens have an importance ratio outside the clip band (limit {:.1}%): \
                 the rollouts' behaviour policy is too far from this model",
                100.0 * report.drift_fraction,
                100.0 * self.config.max_drift_fraction
            ))
        } else {
            None
        };
        if report.skipped.is_none() {
            let lr = learning_rate(&self.config, self.optimizer.step);
            self.optimizer.update(&self.params, &self.config, lr, norm);
            report.learning_rate = lr;
            report.updates = self.optimizer.step;
        }
        zero_grads(&self.params);
        Ok(report)
    }
}
