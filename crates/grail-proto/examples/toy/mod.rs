//! A deterministic toy checkpoint, tokenizer and environment for grail-proto's example
//! verifier and its end-to-end conformance vectors (`tests/window_vectors.rs`): what a
//! real verifier gets from its model, tokenizer and environment.

#![allow(dead_code)]

use grail_proto::rules::group::RolloutEvidence;
use grail_proto::rules::WindowPlan;
use grail_proto::sampling::{claimed_gap, sample_token, temperature, RolloutNoise};
use grail_proto::signing::Keypair;
use grail_proto::*;

/// The toy vocabulary size.
pub const VOCAB: usize = 16;
/// The toy hidden size.
pub const HIDDEN: usize = 32;
/// The toy end-of-sequence token.
pub const EOS: u32 = 0;

/// The toy checkpoint: the hidden state at position `p` depends on `tokens[..=p]`, and the
/// logits of the next token are a projection of it.
pub struct ToyModel;

impl ToyModel {
    /// The last-layer hidden state at position `p`.
    pub fn hidden(&self, tokens: &[u32], p: usize) -> Vec<f32> {
        let state = tokens[..=p]
            .iter()
            .fold(0x9e37_79b9_7f4a_7c15u64, |acc, &t| {
                acc.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(u64::from(t) + 1)
            });
        (0..HIDDEN as u32)
            .map(|i| ((state.rotate_left(2 * i) % 2001) as f32 - 1000.0) / 400.0)
            .collect()
    }

    /// Logits of the token after `tokens[..=p]`.
    pub fn logits(&self, tokens: &[u32], p: usize) -> Vec<f32> {
        let h = self.hidden(tokens, p);
        (0..VOCAB).map(|j| h[j] + h[j + VOCAB] / 2.0).collect()
    }
}

impl HiddenStates for ToyModel {
    type Error = std::convert::Infallible;

    fn last_hidden_states(
        &mut self,
        tokens: &[u32],
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>, Self::Error> {
        Ok(positions.iter().map(|&p| self.hidden(tokens, p)).collect())
    }
}

/// Log-probability of `token` under `logits` at temperature 1.
pub fn logprob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z));
    let total: f64 = logits.iter().map(|&z| f64::from(z - max).exp()).sum();
    (f64::from(logits[token as usize] - max) - total.ln()) as f32
}

/// The canonical prompt of a prompt id (a real verifier renders it with the tokenizer).
pub fn prompt(prompt_id: u64) -> Vec<u32> {
    vec![1, 2 + (prompt_id % 10) as u32, 3, 4]
}

/// The toy environment: reward 1 when the completion contains token 7.
pub fn reward(completion: &[u32]) -> (f64, bool) {
    let success = completion.contains(&7);
    (f64::from(u8::from(success)), success)
}

/// A miner's group: `plan.group_size` completions drawn with the public noise, sketched
/// and signed.
pub fn mine(key: &Keypair, plan: &WindowPlan, prompt_id: u64) -> Group {
    let coefficients = SketchCoefficients::derive(&plan.window_randomness, HIDDEN);
    let t = temperature(plan.generation.temperature_milli);
    let prompt = prompt(prompt_id);
    let max_new = plan.generation.max_new_tokens as usize;
    let mut rollouts: Vec<Rollout> = (0..plan.group_size as u32)
        .map(|i| {
            let (mut tokens, mut logprobs) = (prompt.clone(), Vec::new());
            let noise = RolloutNoise::new(&plan.window_randomness, &key.public(), &prompt, i);
            for n in noise.take(max_new) {
                let z = ToyModel.logits(&tokens, tokens.len() - 1);
                let token = sample_token(&z, t, n).expect("finite logits");
                logprobs.push(logprob(&z, token));
                tokens.push(token);
                if token == EOS {
                    break;
                }
            }
            let (reward, success) = reward(&tokens[prompt.len()..]);
            let hidden = (0..tokens.len()).map(|p| ToyModel.hidden(&tokens, p));
            let sketches = hidden.map(|h| coefficients.sketch(&h).digest()).collect();
            let prompt_len = prompt.len() as u32;
            Rollout {
                tokens,
                prompt_len,
                sketches,
                logprobs,
                reward,
                advantage: 0.0,
                success,
            }
        })
        .collect();
    let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward).collect();
    for (r, a) in rollouts.iter_mut().zip(grpo::advantages(&rewards)) {
        r.advantage = a;
    }
    let header = plan.header(key.public(), prompt_id);
    let mut group = Group {
        header,
        rollouts,
        signature: Signature([0; 64]),
    };
    key.sign_group(&mut group);
    group
}

/// The verifier's forward pass and environment for a spot-checked group: the evidence
/// grail-proto judges ([`RolloutEvidence`], one per rollout, hidden states at
/// `positions[i]`).
pub fn forward(group: &Group, positions: &[Vec<usize>]) -> Vec<RolloutEvidence> {
    let t = temperature(group.header.generation.temperature_milli);
    let h = &group.header;
    group
        .rollouts
        .iter()
        .zip(positions)
        .enumerate()
        .map(|(i, (r, pos))| {
            let Ok(hidden) = ToyModel.last_hidden_states(&r.tokens, pos);
            let noise = RolloutNoise::new(&h.window_randomness, &h.hotkey, r.prompt(), i as u32);
            // The logits that predicted each completion token.
            let logits: Vec<Vec<f32>> = (r.prompt_len as usize - 1..r.tokens.len() - 1)
                .map(|p| ToyModel.logits(&r.tokens, p))
                .collect();
            let claimed = || logits.iter().zip(r.completion());
            RolloutEvidence {
                hidden,
                logprobs: claimed().map(|(z, &token)| logprob(z, token)).collect(),
                // The bundle check kept every id below VOCAB.
                gaps: claimed()
                    .zip(noise)
                    .map(|((z, &token), n)| claimed_gap(z, t, token, n).unwrap_or(f64::NAN))
                    .collect(),
                reward: reward(r.completion()),
            }
        })
        .collect()
}
