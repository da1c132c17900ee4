//! The proof pass: one forward over prompt + completion giving last-layer hidden states
//! (after the final norm) and per-position log-probs, batched with right padding.
//! Causal attention means padding after a sequence cannot change its positions.

use grail_proto::sampling::{claimed_gap, RolloutNoise};
use grail_proto::HiddenStates;
use tch::{Kind, Tensor};

use crate::model::Model;
use crate::InferError;

/// Positions whose logits are materialised at once (bounds memory at vocab × this).
const LOGIT_CHUNK: i64 = 256;

/// What the validator's sampling check needs from a proof pass: the group's temperature
/// and each sequence's public noise, whose position 0 is the sequence's first scored
/// token (`from`).
#[derive(Debug, Clone)]
pub struct SamplingCheck {
    /// Sampling temperature (finite, positive).
    pub temperature: f64,
    /// One noise stream per sequence, in order.
    pub noise: Vec<RolloutNoise>,
}

/// One scored sequence. From [`Model::score_from`], `logprobs` and `eos_probs` are 0 and
/// `gaps` NaN before the requested position.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The tokens that were run.
    pub tokens: Vec<u32>,
    hidden_size: usize,
    hidden: Vec<f32>,
    /// `logprobs[t]` = log p(`tokens[t]` | `tokens[..t]`) from raw fp32 logits; `logprobs[0]` = 0.
    pub logprobs: Vec<f32>,
    /// `gaps[t]`: the sampling gap of `tokens[t]` (`grail_proto::sampling::claimed_gap`)
    /// from the logits at position t − 1 and the sequence's noise; NaN where not
    /// computed or the logits are not finite; empty when no [`SamplingCheck`] was given.
    pub gaps: Vec<f64>,
    /// `eos_probs[t]`: the probability (raw logits) that the token after position t is an EOS id.
    pub eos_probs: Vec<f32>,
}

impl Scored {
    /// The hidden state at a position.
    pub fn hidden(&self, position: usize) -> Option<&[f32]> {
        let h = self.hidden_size;
        self.hidden.get(position * h..(position + 1) * h)
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }
}

/// Hidden states from a finished pass: the validator runs one forward, then checks the
/// proof and the log-probs from the same numbers.
impl HiddenStates for Scored {
    type Error = InferError;

    fn last_hidden_states(
        &mut self,
        tokens: &[u32],
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        if tokens != self.tokens.as_slice() {
            return Err(InferError::Input(
                "tokens differ from the scored sequence".into(),
            ));
        }
        positions
            .iter()
            .map(|&p| {
                self.hidden(p)
                    .map(<[f32]>::to_vec)
                    .ok_or_else(|| InferError::PositionOutOfRange {
                        position: p,
                        len: self.hidden.len() / self.hidden_size.max(1),
                    })
            })
            .collect()
    }
}

/// A model as a [`HiddenStates`] provider (one forward per call).
pub struct ProofModel<'m>(pub &'m Model);

impl HiddenStates for ProofModel<'_> {
    type Error = InferError;

    fn last_hidden_states(
        &mut self,
        tokens: &[u32],
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let mut scored = self
            .0
            .score(&[tokens], &[])?
            .pop()
            .expect("one sequence in, one out");
        scored.last_hidden_states(tokens, positions)
    }
}

impl Model {
    /// Scores sequences in one batched forward (right-padded to the longest).
    pub fn score(&self, sequences: &[&[u32]], eos: &[u32]) -> Result<Vec<Scored>, InferError> {
        self.score_from(sequences, &vec![0; sequences.len()], eos, None)
    }

    /// [`Self::score`] for callers that need only the completions (the miner's proof pass,
    /// the validator's check): for sequence `i`, log-probs, sampling gaps (with a
    /// [`SamplingCheck`]) and EOS probabilities are computed for the tokens from
    /// `from[i]` on, and the vocabulary-wide work of the earlier positions (LM head,
    /// log-softmax, the sampling scan) is skipped. Hidden states cover every position.
    pub fn score_from(
        &self,
        sequences: &[&[u32]],
        from: &[usize],
        eos: &[u32],
        sampling: Option<&SamplingCheck>,
    ) -> Result<Vec<Scored>, InferError> {
        if from.len() != sequences.len() {
            return Err(InferError::Input(format!(
                "{} start positions for {} sequences",
                from.len(),
                sequences.len()
            )));
        }
        for s in sequences {
            self.check_tokens(s, 0)?;
        }
        check_sampling(sampling, sequences.len())?;
        if sequences.is_empty() {
            return Ok(Vec::new());
        }
        tch::no_grad(|| self.score_inner(sequences, from, eos, sampling))
    }

    fn score_inner(
        &self,
        sequences: &[&[u32]],
        from: &[usize],
        eos: &[u32],
        sampling: Option<&SamplingCheck>,
    ) -> Result<Vec<Scored>, InferError> {
        let input = self.padded(sequences);
        let hidden = self.hidden_states(&input, None);
        let eos_index = self.ids(eos);
        let mut out = Vec::with_capacity(sequences.len());
        for (row, s) in sequences.iter().enumerate() {
            let h = hidden.get(row as i64).narrow(0, 0, s.len() as i64);
            let targets = input.get(row as i64).narrow(0, 0, s.len() as i64);
            let noise = sampling.map(|c| (c.temperature, &c.noise[row]));
            out.push(self.score_row(s, &h, &targets, from[row], &eos_index, noise));
        }
        Ok(out)
    }

    /// Scores completions of one shared prompt (a group): the prompt runs once and its
    /// keys and values are shared by every completion, so the forward costs
    /// `prompt + Σ completions` positions instead of `rows × prompt + Σ completions`.
    /// Returns one [`Scored`] per completion over `prompt ++ completion`, with
    /// log-probs, sampling gaps and EOS probabilities of the completion tokens (as
    /// [`Self::score_from`] with `from = prompt.len()`) and hidden states of every position.
    pub fn score_shared_prompt(
        &self,
        prompt: &[u32],
        completions: &[&[u32]],
        eos: &[u32],
        sampling: Option<&SamplingCheck>,
    ) -> Result<Vec<Scored>, InferError> {
        if prompt.is_empty() {
            return Err(InferError::EmptyTokens { what: "prompt" });
        }
        let longest = completions.iter().map(|c| c.len()).max().unwrap_or(0);
        self.check_tokens(prompt, longest)?;
        for c in completions.iter().filter(|c| !c.is_empty()) {
            self.check_tokens(c, prompt.len())?;
        }
        check_sampling(sampling, completions.len())?;
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        tch::no_grad(|| {
            let p = prompt.len() as i64;
            let prompt_input = self.ids(prompt);
            let mut cache = self.new_cache(1, prompt.len() + longest);
            let prompt_hidden = self
                .hidden_states(&prompt_input.view([1, p]), Some(&mut cache))
                .get(0);
            let input = self.padded(completions);
            let completion_hidden = if longest > 0 {
                cache.select_rows(&vec![0; completions.len()]);
                Some(self.hidden_states(&input, Some(&mut cache)))
            } else {
                None
            };
            let eos_index = self.ids(eos);
            let mut out = Vec::with_capacity(completions.len());
            for (row, c) in completions.iter().enumerate() {
                let n = c.len() as i64;
                let (h, targets) = match &completion_hidden {
                    Some(hidden) => (
                        Tensor::cat(
                            &[&prompt_hidden, &hidden.get(row as i64).narrow(0, 0, n)],
                            0,
                        ),
                        Tensor::cat(&[&prompt_input, &input.get(row as i64).narrow(0, 0, n)], 0),
                    ),
                    None => (prompt_hidden.shallow_clone(), prompt_input.shallow_clone()),
                };
                let tokens = [prompt, c].concat();
                let noise = sampling.map(|c| (c.temperature, &c.noise[row]));
                out.push(self.score_row(&tokens, &h, &targets, prompt.len(), &eos_index, noise));
            }
            Ok(out)
        })
    }

    /// Token ids as an int64 tensor on the model's device.
    fn ids(&self, tokens: &[u32]) -> Tensor {
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        Tensor::from_slice(&ids).to_device(self.device())
    }

    /// Sequences right-padded with id 0 into `[rows, longest]` on the model's device.
    fn padded(&self, sequences: &[&[u32]]) -> Tensor {
        let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; sequences.len() * longest];
        for (row, s) in sequences.iter().enumerate() {
            for (i, &t) in s.iter().enumerate() {
                ids[row * longest + i] = i64::from(t);
            }
        }
        Tensor::from_slice(&ids)
            .to_device(self.device())
            .view([sequences.len() as i64, longest as i64])
    }

    /// Log-probs, sampling gaps and EOS probabilities of one sequence's tokens from `from`
    /// on, given its hidden states `h` (`[len, hidden]`), token ids `targets` (`[len]`)
    /// and, for the gaps, the temperature and the sequence's noise.
    fn score_row(
        &self,
        tokens: &[u32],
        h: &Tensor,
        targets: &Tensor,
        from: usize,
        eos_index: &Tensor,
        sampling: Option<(f64, &RolloutNoise)>,
    ) -> Scored {
        let len = tokens.len() as i64;
        let mut logprobs = vec![0f32; tokens.len()];
        let mut gaps = vec![f64::NAN; if sampling.is_some() { tokens.len() } else { 0 }];
        // Completion position 0 is token `from`.
        let noise = sampling.map(|(_, n)| n.clone().take_vec(tokens.len().saturating_sub(from)));
        let mut eos_probs = vec![0f32; tokens.len()];
        // Position t predicts token t + 1: token `from` needs the logits of `from − 1`.
        let mut start = from.saturating_sub(1).min(tokens.len()) as i64;
        while start < len {
            let n = LOGIT_CHUNK.min(len - start);
            let logits = self.logits(&h.narrow(0, start, n));
            let log_p = logits.log_softmax(-1, Kind::Float);
            // The last position predicts nothing here.
            let next = n.min(len - 1 - start);
            if next > 0 {
                let tgt = targets.narrow(0, start + 1, next).view([-1, 1]);
                let chosen = log_p.narrow(0, 0, next).gather(-1, &tgt, false);
                let a = to_vec(&chosen);
                let at = (start + 1) as usize;
                logprobs[at..at + next as usize].copy_from_slice(&a);
                if let (Some((t, _)), Some(noise)) = (sampling, &noise) {
                    let rows = to_vec(&logits.narrow(0, 0, next));
                    let vocab = rows.len() / next as usize;
                    for (k, z) in rows.chunks_exact(vocab.max(1)).enumerate() {
                        let p = at + k;
                        if p < from {
                            continue;
                        }
                        gaps[p] = claimed_gap(z, t, tokens[p], noise[p - from]).unwrap_or(f64::NAN);
                    }
                }
            }
            if eos_index.numel() > 0 {
                let p =
                    log_p
                        .index_select(-1, eos_index)
                        .exp()
                        .sum_dim_intlist(-1, false, Kind::Float);
                eos_probs[start as usize..(start + n) as usize].copy_from_slice(&to_vec(&p));
            }
            start += n;
        }
        Scored {
            tokens: tokens.to_vec(),
            hidden_size: self.config().hidden_size,
            hidden: to_vec(&h.to_kind(Kind::Float)),
            logprobs,
            gaps,
            eos_probs,
        }
    }
}

/// A sampling check needs a finite positive temperature and one noise per sequence.
fn check_sampling(sampling: Option<&SamplingCheck>, sequences: usize) -> Result<(), InferError> {
    let Some(c) = sampling else { return Ok(()) };
    if !(c.temperature.is_finite() && c.temperature > 0.0) {
        return Err(InferError::Input(format!(
            "temperature {} must be positive",
            c.temperature
        )));
    }
    if c.noise.len() != sequences {
        return Err(InferError::Input(format!(
            "{} noise streams for {sequences} sequences",
            c.noise.len()
        )));
    }
    Ok(())
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(
        t.to_kind(Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous()
            .view([-1]),
    )
    .unwrap_or_default()
}
