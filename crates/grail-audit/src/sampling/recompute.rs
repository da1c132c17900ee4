//! The validator's view ([`Checked`]): the gap of every completion token recomputed with
//! its public noise, in batches or along the miner's KV-cache path, and the most likely
//! other token at every position.

use grail_proto::sampling::{check_sampling_with, claimed_gap, SamplingReport};
use tch::{Device, Kind, Tensor};

use grail_infer::model::Model;
use grail_infer::{InferError, SamplingCheck};

use super::corpus::{Corpus, Setup};

/// Positions whose logits are materialised at once (bounds memory at vocab × this).
const LOGIT_CHUNK: i64 = 128;

/// The validator's view of rollouts: per rollout, the recomputed gap of each completion
/// token under its public noise.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// `gaps[r][t]`: rollout r, completion position t.
    pub gaps: Vec<Vec<f64>>,
}

impl Checked {
    /// Rollouts.
    pub fn len(&self) -> usize {
        self.gaps.len()
    }

    /// Whether there are no rollouts.
    pub fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    /// Completion positions.
    pub fn positions(&self) -> usize {
        self.gaps.iter().map(Vec::len).sum()
    }

    /// The protocol's check of rollout `r` at `margin`.
    pub fn check(&self, r: usize, margin: f64) -> SamplingReport {
        check_sampling_with(&self.gaps[r], margin)
    }

    /// Whether rollout `r` passes at `margin` (at most `SAMPLING_MAX_MISSES` misses).
    pub fn accepted(&self, r: usize, margin: f64) -> bool {
        self.check(r, margin).accepted()
    }

    /// The gap of every position of rollout `r`.
    pub fn rollout(&self, r: usize) -> impl Iterator<Item = f64> + '_ {
        self.gaps[r].iter().copied()
    }
}

fn sequence(prompt: &[u32], completion: &[u32]) -> Vec<u32> {
    prompt.iter().chain(completion).copied().collect()
}

/// The validator's recomputation: `Model::score_from` over right-padded batches of
/// `batch` slots at `temperature`, each with its public noise.
pub fn recompute(
    model: &Model,
    corpus: &Corpus,
    setup: &Setup,
    completions: &[Vec<u32>],
    batch: usize,
    temperature: f64,
) -> Result<Checked, InferError> {
    let mut out = Checked::default();
    for (chunk, part) in completions.chunks(batch.max(1)).enumerate() {
        let first = chunk * batch.max(1);
        let sequences: Vec<Vec<u32>> = part
            .iter()
            .enumerate()
            .map(|(k, c)| sequence(corpus.prompt(setup, first + k), c))
            .collect();
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let from: Vec<usize> = (0..part.len())
            .map(|k| corpus.prompt(setup, first + k).len())
            .collect();
        let check = SamplingCheck {
            temperature,
            noise: (0..part.len())
                .map(|k| corpus.noise(setup, first + k))
                .collect(),
        };
        let scored = model.score_from(&refs, &from, &[], Some(&check))?;
        for (s, &p) in scored.into_iter().zip(&from) {
            out.gaps.push(s.gaps[p..].to_vec());
        }
    }
    Ok(out)
}

/// Gaps of `targets[r]` under each row of `logits` (`[rows, vocab]`) and `noise[r]`.
fn row_gaps(
    logits: &Tensor,
    targets: &[u32],
    noise: &[grail_proto::sampling::PositionNoise],
    temperature: f64,
) -> Vec<f64> {
    let flat = Vec::<f32>::try_from(
        logits
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous()
            .view([-1]),
    )
    .unwrap_or_default();
    let vocab = flat.len() / targets.len().max(1);
    flat.chunks_exact(vocab.max(1))
        .zip(targets.iter().zip(noise))
        .map(|(z, (&t, &n))| claimed_gap(z, temperature, t, n).unwrap_or(f64::NAN))
        .collect()
}

fn ids_tensor(ids: &[u32], device: Device) -> Tensor {
    let ids: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    Tensor::from_slice(&ids).to_device(device)
}

/// The miner's path replayed: each prompt prefilled once, its M rollouts decoded together
/// token by token through the KV cache (rows past their end feed a dummy token), and the
/// gap of every completion token taken from the decode step's logits.
pub fn recompute_incremental(
    model: &Model,
    corpus: &Corpus,
    setup: &Setup,
    temperature: f64,
) -> Result<Checked, InferError> {
    let m = setup.rollouts_per_prompt.max(1);
    let device = model.device();
    let mut out = Checked::default();
    for (p, group) in corpus.completions.chunks(m).enumerate() {
        let prompt = &corpus.prompts[p];
        let longest = group.iter().map(Vec::len).max().unwrap_or(0);
        model.check_tokens(prompt, longest)?;
        for c in group {
            model.check_tokens(c, 0)?;
        }
        let rows = group.len();
        let mut gaps = vec![Vec::new(); rows];
        let noise: Vec<Vec<_>> = (0..rows)
            .map(|k| corpus.noise(setup, p * m + k).take_vec(longest))
            .collect();
        tch::no_grad(|| {
            let mut cache = model.new_cache(1, prompt.len() + longest);
            let hidden =
                model.hidden_states(&ids_tensor(prompt, device).view([1, -1]), Some(&mut cache));
            let last = hidden.narrow(1, prompt.len() as i64 - 1, 1).squeeze_dim(1);
            let mut logits = model.logits(&last).expand([rows as i64, -1], false);
            cache.select_rows(&vec![0i64; rows]);
            for step in 0..longest {
                let column: Vec<u32> = group
                    .iter()
                    .map(|c| c.get(step).copied().unwrap_or(0))
                    .collect();
                let targets = ids_tensor(&column, device).view([-1, 1]);
                let at_step: Vec<_> = noise.iter().map(|n| n[step]).collect();
                for (r, gap) in row_gaps(&logits, &column, &at_step, temperature)
                    .into_iter()
                    .enumerate()
                {
                    if step < group[r].len() {
                        gaps[r].push(gap);
                    }
                }
                if step + 1 == longest {
                    break;
                }
                let hidden = model.hidden_states(&targets, Some(&mut cache));
                logits = model.logits(&hidden.squeeze_dim(1));
            }
        });
        out.gaps.extend(gaps);
    }
    Ok(out)
}

/// At every completion position of the honest corpus: the most likely token other than the
/// sampled one and the EOS ids (the edit an attacker would make), with its gap under the
/// model's logits and the public noise (one forward over right-padded batches of `batch`).
pub fn alternatives(
    model: &Model,
    corpus: &Corpus,
    setup: &Setup,
    batch: usize,
    temperature: f64,
) -> Result<Vec<Vec<(u32, f64)>>, InferError> {
    let device = model.device();
    let k = (2 + setup.eos.len()).min(model.config().vocab_size) as i64;
    let mut out = Vec::with_capacity(corpus.completions.len());
    for (chunk, part) in corpus.completions.chunks(batch.max(1)).enumerate() {
        let first = chunk * batch.max(1);
        let sequences: Vec<Vec<u32>> = part
            .iter()
            .enumerate()
            .map(|(j, c)| sequence(corpus.prompt(setup, first + j), c))
            .collect();
        for s in &sequences {
            model.check_tokens(s, 0)?;
        }
        let longest = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![0u32; sequences.len() * longest];
        for (r, s) in sequences.iter().enumerate() {
            ids[r * longest..r * longest + s.len()].copy_from_slice(s);
        }
        let input = ids_tensor(&ids, device).view([sequences.len() as i64, longest as i64]);
        tch::no_grad(|| {
            let hidden = model.hidden_states(&input, None);
            for (r, completion) in part.iter().enumerate() {
                let p = corpus.prompt(setup, first + r).len() as i64;
                let n = completion.len() as i64;
                let row = hidden.get(r as i64);
                let mut found = Vec::with_capacity(completion.len());
                let noise = corpus.noise(setup, first + r).take_vec(completion.len());
                let mut start = 0;
                while start < n {
                    let len = LOGIT_CHUNK.min(n - start);
                    // Position p − 1 + t predicts completion token t.
                    let logits = model.logits(&row.narrow(0, p - 1 + start, len));
                    let top = Vec::<i64>::try_from(
                        logits.topk(k, -1, true, true).1.contiguous().view([-1]),
                    )
                    .unwrap_or_default();
                    let picks: Vec<u32> = (0..len as usize)
                        .map(|t| {
                            let sampled = completion[start as usize + t];
                            top[t * k as usize..(t + 1) * k as usize]
                                .iter()
                                .map(|&j| j as u32)
                                .find(|j| *j != sampled && !setup.eos.contains(j))
                                .unwrap_or(sampled)
                        })
                        .collect();
                    let at = &noise[start as usize..(start + len) as usize];
                    let gaps = row_gaps(&logits, &picks, at, temperature);
                    found.extend(picks.into_iter().zip(gaps));
                    start += len;
                }
                out.push(found);
            }
        });
    }
    Ok(out)
}
