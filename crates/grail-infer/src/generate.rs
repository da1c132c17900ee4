//! Sampling with a KV cache: M completions of one prompt share one prefill, then decode
//! together; several groups' prompts can run as one batch (left-padded to the longest,
//! [`Model::generate_groups`]); finished rows leave the batch. Every token is drawn by
//! Gumbel-max sampling in f64 (`grail_proto::sampling::sample_token`) with one
//! [`PositionNoise`] per row and step: from the protocol's public noise
//! ([`Model::generate_rows`], what miners use, so validators can check each token) or
//! from the caller's seeded stream ([`Model::generate_group`]).

use grail_proto::sampling::PositionNoise;
use rand_core::RngCore;
use tch::{Device, Kind, Tensor};

use crate::model::Model;
use crate::{InferError, Progress};

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Most tokens a completion may have.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy.
    pub temperature: f64,
    /// Keep only the k most likely tokens (None: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose mass reaches this (1.0: all).
    pub top_p: f32,
    /// Hugging Face repetition penalty over prompt and completion (1.0: off).
    pub repetition_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            temperature: 1.0,
            top_k: None,
            top_p: 1.0,
            repetition_penalty: 1.0,
        }
    }
}

impl From<&grail_proto::GenerationParams> for SamplingParams {
    fn from(p: &grail_proto::GenerationParams) -> Self {
        Self {
            max_new_tokens: p.max_new_tokens as usize,
            temperature: grail_proto::sampling::temperature(p.temperature_milli),
            top_k: None,
            top_p: 1.0,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplingParams {
    fn check(&self) -> Result<(), InferError> {
        let ok = self.max_new_tokens > 0
            && self.temperature.is_finite()
            && self.temperature >= 0.0
            && self.top_p > 0.0
            && self.top_p <= 1.0
            && self.top_k != Some(0)
            && self.repetition_penalty.is_finite()
            && self.repetition_penalty > 0.0;
        if ok {
            Ok(())
        } else {
            Err(InferError::Input(format!(
                "invalid sampling parameters {self:?}"
            )))
        }
    }
}

/// One sampled completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Completion tokens (the EOS token included when it stopped on one).
    pub tokens: Vec<u32>,
    /// log p(token) under the raw (untempered, unfiltered) fp32 logits, one per token.
    pub logprobs: Vec<f32>,
    /// Whether it ended on an EOS id (otherwise it hit `max_new_tokens`).
    pub stopped_on_eos: bool,
}

/// One group to sample in a batch of groups ([`Model::generate_groups`]).
pub struct GroupRequest<'a, U> {
    /// The prompt's token ids.
    pub prompt: &'a [u32],
    /// One noise stream per completion: completion `r` draws its `t`-th token with the
    /// `t`-th value of `noise[r]`.
    pub noise: Vec<U>,
}

/// Chooses one token per row of `logits` (`[rows, vocab]`, fp32) by Gumbel-max sampling
/// with one [`PositionNoise`] per row (`grail_proto::sampling::sample_token`, the
/// protocol's rule), rows split over the cores. Top-k and top-p, when set, lower the
/// logits they drop to `f32::MIN` first (not part of the protocol).
///
/// # Errors
/// libtorch failed to copy the logits out of the tensor, or they do not define a
/// distribution (a non-finite logit).
pub fn sample(
    logits: &Tensor,
    params: &SamplingParams,
    noise: &[PositionNoise],
) -> Result<Vec<i64>, InferError> {
    let (rows, vocab) = logits.size2().expect("logits are [rows, vocab]");
    if params.temperature == 0.0 {
        return Vec::<i64>::try_from(logits.argmax(-1, false))
            .map_err(|e| InferError::torch("reading greedy token ids", e));
    }
    let mut kept = logits.shallow_clone();
    if let Some(k) = params.top_k.filter(|&k| (k as i64) < vocab) {
        let kth = kept
            .topk(k as i64, -1, true, true)
            .0
            .narrow(-1, k as i64 - 1, 1);
        kept = kept.masked_fill(&kept.lt_tensor(&kth), f64::from(f32::MIN));
    }
    if params.top_p < 1.0 {
        let probs = (kept.to_kind(Kind::Double) / params.temperature).softmax(-1, Kind::Double);
        let (sorted, order) = probs.sort(-1, true);
        // Drop a token when the mass before it already reaches top_p (the first stays).
        let before = sorted.cumsum(-1, Kind::Double) - &sorted;
        let dropped_sorted = before.ge(params.top_p as f64);
        let dropped = dropped_sorted
            .zeros_like()
            .scatter(-1, &order, &dropped_sorted);
        kept = kept.masked_fill(&dropped, f64::from(f32::MIN));
    }
    let vocab = vocab as usize;
    let rows = rows as usize;
    // The logits are copied into a buffer this thread keeps between calls: a fresh
    // allocation per token (up to 32 × 151 936 floats) costs page faults on every step.
    let host = kept
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .contiguous()
        .view([-1]);
    let mut flat = LOGIT_BUFFER.take();
    flat.resize(rows * vocab, 0.0);
    host.f_copy_data(&mut flat, rows * vocab)
        .map_err(|e| InferError::torch("reading logits for sampling", e))?;
    let picked = sample_rows(&flat, rows, vocab, params.temperature, noise);
    LOGIT_BUFFER.set(flat);
    picked
}

thread_local! {
    /// [`sample`]'s logits buffer, reused from token to token.
    static LOGIT_BUFFER: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Gumbel-max sampling of each row of `flat` (`rows × vocab` logits), rows split over
/// the cores.
fn sample_rows(
    flat: &[f32],
    rows: usize,
    vocab: usize,
    temperature: f64,
    noise: &[PositionNoise],
) -> Result<Vec<i64>, InferError> {
    if noise.len() != rows {
        return Err(InferError::Input(format!(
            "{} noise values for {rows} rows",
            noise.len()
        )));
    }
    let row = |r: usize| {
        grail_proto::sampling::sample_token(
            &flat[r * vocab..(r + 1) * vocab],
            temperature,
            noise[r],
        )
        .map(i64::from)
        .map_err(|source| InferError::Sampling { row: r, source })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = rows.div_ceil(threads).max(4);
    if rows <= per {
        return (0..rows).map(row).collect();
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..rows)
            .step_by(per)
            .map(|first| {
                let row = &row;
                scope.spawn(move || {
                    (first..(first + per).min(rows))
                        .map(row)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(rows);
        for w in workers {
            out.extend(w.join().expect("a sampling thread panicked"));
        }
        out.into_iter().collect()
    })
}

/// Hugging Face's repetition penalty: seen tokens' positive logits are divided by the
/// penalty, negative ones multiplied.
fn penalize(logits: &Tensor, seen: &Tensor, penalty: f32) -> Tensor {
    let p = penalty as f64;
    let penalized = logits
        .where_self(&logits.lt(0.0), &(logits / p))
        .where_self(&logits.ge(0.0), &(logits * p));
    penalized.where_self(seen, logits)
}

/// A cancellation that never comes.
fn never() -> bool {
    false
}

impl Model {
    /// Samples `rows` completions of `prompt`. The prompt is prefilled once; rows stop on
    /// any id in `eos` or after `max_new_tokens`. `progress` sees generated tokens.
    pub fn generate_group(
        &self,
        prompt: &[u32],
        rows: usize,
        params: &SamplingParams,
        eos: &[u32],
        rng: &mut impl RngCore,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Completion>, InferError> {
        let mut next = |_row: usize| PositionNoise(rng.next_u64());
        self.generate_from(&[prompt], &[rows], params, eos, &mut next, progress, &never)
    }

    /// Samples one completion of `prompt` per iterator in `noise`, row `r` drawing its
    /// `t`-th token with the `t`-th value of `noise[r]` (a miner passes the protocol's
    /// public noise, `grail_proto::sampling::RolloutNoise`).
    pub fn generate_rows<U: Iterator<Item = PositionNoise>>(
        &self,
        prompt: &[u32],
        noise: &mut [U],
        params: &SamplingParams,
        eos: &[u32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Completion>, InferError> {
        let rows = noise.len();
        let mut next = |row: usize| noise[row].next().unwrap_or(PositionNoise(0));
        self.generate_from(&[prompt], &[rows], params, eos, &mut next, progress, &never)
    }

    /// [`Self::generate_rows`] for several groups in one batch: the prompts are
    /// left-padded to the longest and prefilled together, then every completion of every
    /// group decodes in the same steps (what a miner does to fill a wide batch with
    /// small groups). Returns each group's completions in order. Padding is masked, so
    /// each completion is what [`Self::generate_rows`] gives for its group up to
    /// summation order.
    pub fn generate_groups<U: Iterator<Item = PositionNoise>>(
        &self,
        groups: &mut [GroupRequest<'_, U>],
        params: &SamplingParams,
        eos: &[u32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Vec<Completion>>, InferError> {
        self.generate_groups_until(groups, params, eos, progress, &never)
    }

    /// [`Self::generate_groups`], stopped with [`InferError::Cancelled`] at the first
    /// decode step where `cancel()` is true (a miner whose deadline came first).
    pub fn generate_groups_until<U: Iterator<Item = PositionNoise>>(
        &self,
        groups: &mut [GroupRequest<'_, U>],
        params: &SamplingParams,
        eos: &[u32],
        progress: &mut dyn FnMut(Progress),
        cancel: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<Completion>>, InferError> {
        let prompts: Vec<&[u32]> = groups.iter().map(|g| g.prompt).collect();
        let counts: Vec<usize> = groups.iter().map(|g| g.noise.len()).collect();
        let owners: Vec<(usize, usize)> = counts
            .iter()
            .enumerate()
            .flat_map(|(g, &n)| (0..n).map(move |i| (g, i)))
            .collect();
        let mut next = |row: usize| {
            let (g, i) = owners[row];
            groups[g].noise[i].next().unwrap_or(PositionNoise(0))
        };
        let mut flat = self
            .generate_from(&prompts, &counts, params, eos, &mut next, progress, cancel)?
            .into_iter();
        Ok(counts
            .iter()
            .map(|&n| flat.by_ref().take(n).collect())
            .collect())
    }

    /// Samples `counts[p]` completions of each `prompts[p]`, rows numbered group after
    /// group; `noise(row)` gives a row's next position noise; `cancel()` is asked before
    /// every decode step.
    #[allow(clippy::too_many_arguments)]
    fn generate_from(
        &self,
        prompts: &[&[u32]],
        counts: &[usize],
        params: &SamplingParams,
        eos: &[u32],
        noise: &mut dyn FnMut(usize) -> PositionNoise,
        progress: &mut dyn FnMut(Progress),
        cancel: &dyn Fn() -> bool,
    ) -> Result<Vec<Completion>, InferError> {
        params.check()?;
        for prompt in prompts {
            self.check_tokens(prompt, params.max_new_tokens)?;
        }
        let rows: usize = counts.iter().sum();
        if rows == 0 {
            return Ok(Vec::new());
        }
        let _no_grad = tch::no_grad_guard();
        let device = self.device();
        let vocab = self.config().vocab_size as i64;
        let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
        let mut ids = vec![0i64; prompts.len() * longest];
        for (p, prompt) in prompts.iter().enumerate() {
            for (j, &t) in prompt.iter().enumerate() {
                ids[p * longest + pads[p] + j] = i64::from(t);
            }
        }
        let mut cache = self.new_padded_cache(&pads, longest + params.max_new_tokens);
        let input = Tensor::from_slice(&ids)
            .to_device(device)
            .view([prompts.len() as i64, longest as i64]);
        let hidden = self.hidden_states(&input, Some(&mut cache));
        let last = hidden.select(1, longest as i64 - 1);
        // Each group's rows continue its prompt: row r of the batch reads prompt fan[r].
        let fan: Vec<i64> = counts
            .iter()
            .enumerate()
            .flat_map(|(p, &n)| std::iter::repeat_n(p as i64, n))
            .collect();
        let fan_index = Tensor::from_slice(&fan).to_device(device);
        let mut logits = self.logits(&last).index_select(0, &fan_index);
        cache.select_rows(&fan);
        let penalty = params.repetition_penalty != 1.0;
        let mut seen = if penalty {
            let s = Tensor::zeros([prompts.len() as i64, vocab], (Kind::Bool, device));
            for (p, prompt) in prompts.iter().enumerate() {
                let own: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
                let own = Tensor::from_slice(&own).to_device(device);
                let _ = s.get(p as i64).index_fill_(0, &own, 1);
            }
            Some(s.index_select(0, &fan_index))
        } else {
            None
        };
        let mut out: Vec<Completion> = (0..rows)
            .map(|_| Completion {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                stopped_on_eos: false,
            })
            .collect();
        let mut active: Vec<usize> = (0..rows).collect();
        let total = (rows * params.max_new_tokens) as u64;
        let mut produced = 0u64;
        for step in 0..params.max_new_tokens {
            if cancel() {
                return Err(InferError::Cancelled);
            }
            let filtered = match &seen {
                Some(s) => penalize(&logits, s, params.repetition_penalty),
                None => logits.shallow_clone(),
            };
            let drawn: Vec<PositionNoise> = active.iter().map(|&row| noise(row)).collect();
            let chosen = sample(&filtered, params, &drawn)?;
            let chosen_t = Tensor::from_slice(&chosen).to_device(device).view([-1, 1]);
            // log p = logit − logsumexp: no full-vocabulary log-softmax per step.
            let logprobs = logits.gather(-1, &chosen_t, false) - logits.logsumexp([-1], true);
            let logprobs = Vec::<f32>::try_from(logprobs.view([-1]))
                .map_err(|e| InferError::torch("reading sampled log-probs", e))?;
            let mut keep = Vec::with_capacity(active.len());
            for (slot, &row) in active.iter().enumerate() {
                let token = chosen[slot] as u32;
                let c = &mut out[row];
                c.tokens.push(token);
                c.logprobs
                    .push(logprobs.get(slot).copied().unwrap_or(f32::NAN));
                if eos.contains(&token) {
                    c.stopped_on_eos = true;
                } else {
                    keep.push(slot as i64);
                }
            }
            produced += active.len() as u64;
            if step % 16 == 15 {
                progress(Progress::new("generating", produced, total));
            }
            if keep.is_empty() || step + 1 == params.max_new_tokens {
                break;
            }
            let mut next = chosen_t;
            if keep.len() < active.len() {
                let index = Tensor::from_slice(&keep).to_device(device);
                cache.select_rows(&keep);
                next = next.index_select(0, &index);
                seen = seen.map(|s| s.index_select(0, &index));
                active = keep.iter().map(|&slot| active[slot as usize]).collect();
            }
            if let Some(s) = &mut seen {
                *s = s.scatter_value(-1, &next, 1);
            }
            let hidden = self.hidden_states(&next, Some(&mut cache));
            logits = self.logits(&hidden.squeeze_dim(1));
        }
        progress(Progress::new("generating", total, total));
        Ok(out)
    }
}
