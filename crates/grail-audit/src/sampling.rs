//! Sampling soundness audit (protocol v5, Gumbel-max with public noise): how far honest
//! recomputations move the *gap* of each sampled token (its perturbed score minus the best
//! other token's, the drift `SAMPLING_MARGIN` must absorb), how often a position offers an
//! attacker a choice, whether bf16 sampling passes an fp32 check, and how often off-policy
//! rollouts pass: another model, int8 weights, another temperature, best-of-n and an
//! edited token. Used by `cargo xtask audit-sampling` (SmolLM2) and by CI on the tiny
//! model (`tests/soundness_sampling.rs`).
//!
//! Every measurement keeps, per completion position, the validator's recomputed gap of
//! the claimed token, so a [`Report`] can be read at any margin.

use grail_infer::SamplingCheck;
use grail_proto::sampling::{
    allowed_ambiguous, allowed_ambiguous_in_sample, check_sampling_with, claimed_gap, classify,
    excess, PositionClass, RolloutNoise, SamplingReport,
};
use grail_proto::Hotkey;
use rand_core::RngCore;
use tch::{Device, Kind, Tensor};

use grail_infer::model::Model;
use grail_infer::{InferError, SamplingParams};

/// Positions whose logits are materialised at once (bounds memory at vocab × this).
const LOGIT_CHUNK: i64 = 128;

/// Whose noise: one window, one miner, M rollouts per prompt.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The window's randomness.
    pub window_randomness: [u8; 32],
    /// The miner.
    pub hotkey: Hotkey,
    /// Rollouts (noise streams) per prompt.
    pub rollouts_per_prompt: usize,
    /// Most tokens a completion may have.
    pub max_new_tokens: usize,
    /// Ids that end a completion.
    pub eos: Vec<u32>,
}

impl Setup {
    /// The public noise of rollout `index` of `prompt`.
    pub fn noise(&self, prompt: &[u32], index: usize) -> RolloutNoise {
        RolloutNoise::new(&self.window_randomness, &self.hotkey, prompt, index as u32)
    }

    /// Protocol sampling (no top-k/top-p) at `temperature`.
    pub fn params(&self, temperature: f64) -> SamplingParams {
        SamplingParams {
            max_new_tokens: self.max_new_tokens,
            temperature,
            ..SamplingParams::default()
        }
    }
}

/// Prompts and the honest completion of every rollout slot; slot `s` is rollout
/// `s % rollouts_per_prompt` of prompt `s / rollouts_per_prompt`.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Prompt tokens.
    pub prompts: Vec<Vec<u32>>,
    /// Honest completion tokens per slot (the EOS included when it stopped on one).
    pub completions: Vec<Vec<u32>>,
}

impl Corpus {
    /// Samples prompts from `next_prompt(i)` (i = 0, 1, …) with the public noise at
    /// temperature 1 until the completions hold `target` positions. `progress` sees the
    /// positions so far.
    pub fn sample(
        model: &Model,
        setup: &Setup,
        target: usize,
        next_prompt: &mut dyn FnMut(usize) -> Result<Vec<u32>, InferError>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Self, InferError> {
        let mut corpus = Corpus {
            prompts: Vec::new(),
            completions: Vec::new(),
        };
        while corpus.positions() < target {
            let first = corpus.prompts.len();
            let prompts = (first..first + GROUPS_PER_BATCH)
                .map(&mut *next_prompt)
                .collect::<Result<Vec<_>, _>>()?;
            corpus
                .completions
                .extend(sample_public(model, &prompts, setup, 1.0)?);
            corpus.prompts.extend(prompts);
            progress(corpus.positions());
        }
        Ok(corpus)
    }

    /// Completion positions.
    pub fn positions(&self) -> usize {
        self.completions.iter().map(Vec::len).sum()
    }

    /// The prompt of slot `s`.
    pub fn prompt(&self, setup: &Setup, s: usize) -> &[u32] {
        &self.prompts[s / setup.rollouts_per_prompt.max(1)]
    }

    /// The public noise of slot `s`.
    pub fn noise(&self, setup: &Setup, s: usize) -> RolloutNoise {
        setup.noise(self.prompt(setup, s), s % setup.rollouts_per_prompt.max(1))
    }
}

/// Groups sampled in one left-padded batch, as a miner with `miner.batch_groups = 4` does.
pub const GROUPS_PER_BATCH: usize = 4;

/// Samples every rollout slot of `prompts` as a miner does: [`GROUPS_PER_BATCH`] prompts
/// at a time prefilled together, their M rows each decoded together through the KV
/// cache (`Model::generate_groups`), each row with its public noise.
pub fn sample_public(
    model: &Model,
    prompts: &[Vec<u32>],
    setup: &Setup,
    temperature: f64,
) -> Result<Vec<Vec<u32>>, InferError> {
    let params = setup.params(temperature);
    let mut out = Vec::with_capacity(prompts.len() * setup.rollouts_per_prompt);
    for batch in prompts.chunks(GROUPS_PER_BATCH) {
        let mut requests: Vec<grail_infer::GroupRequest<'_, RolloutNoise>> = batch
            .iter()
            .map(|prompt| grail_infer::GroupRequest {
                prompt,
                noise: (0..setup.rollouts_per_prompt)
                    .map(|i| setup.noise(prompt, i))
                    .collect(),
            })
            .collect();
        let groups = model.generate_groups(
            &mut requests,
            &params,
            &setup.eos,
            &mut grail_infer::no_progress,
        )?;
        out.extend(groups.into_iter().flatten().map(|c| c.tokens));
    }
    Ok(out)
}

/// Best-of-n: `n` candidates per slot from private randomness at temperature 1, and the
/// one with the highest log-probability submitted.
pub fn sample_best_of(
    model: &Model,
    prompts: &[Vec<u32>],
    setup: &Setup,
    n: usize,
    rng: &mut impl RngCore,
) -> Result<Vec<Vec<u32>>, InferError> {
    let params = setup.params(1.0);
    let m = setup.rollouts_per_prompt;
    let mut out = Vec::with_capacity(prompts.len() * m);
    for prompt in prompts {
        let candidates = model.generate_group(
            prompt,
            m * n,
            &params,
            &setup.eos,
            rng,
            &mut grail_infer::no_progress,
        )?;
        for slot in candidates.chunks(n.max(1)) {
            let score =
                |c: &grail_infer::Completion| c.logprobs.iter().map(|&l| l as f64).sum::<f64>();
            let best = slot
                .iter()
                .max_by(|a, b| score(a).total_cmp(&score(b)))
                .map(|c| c.tokens.clone())
                .unwrap_or_default();
            out.push(best);
        }
    }
    Ok(out)
}

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

/// One edit per slot: a position chosen at random (never a final EOS) whose token is
/// replaced by `alternatives`' choice; the rest of the rollout is kept. Returns the edited
/// completions.
pub fn edit_one_token(
    completions: &[Vec<u32>],
    alternatives: &[Vec<(u32, f64)>],
    eos: &[u32],
    rng: &mut impl RngCore,
) -> Vec<Vec<u32>> {
    completions
        .iter()
        .zip(alternatives)
        .map(|(c, alt)| {
            let mut edited = c.clone();
            let eligible = match c.last() {
                Some(t) if eos.contains(t) => c.len() - 1,
                _ => c.len(),
            };
            if eligible > 0 {
                let t = (rng.next_u64() % eligible as u64) as usize;
                if let Some(&(token, _)) = alt.get(t) {
                    edited[t] = token;
                }
            }
            edited
        })
        .collect()
}

/// Rollouts sampled another way, checked against the honest model's recomputation.
#[derive(Debug, Clone)]
pub struct Strategy {
    /// What the sampler did.
    pub name: String,
    /// Whether each rollout differs from the honest rollout of its slot.
    pub differs: Vec<bool>,
    /// The validator's view.
    pub checked: Checked,
}

/// An honest validator condition.
#[derive(Debug, Clone)]
pub struct Condition {
    /// What differs from the reference.
    pub name: String,
    /// The validator's view.
    pub checked: Checked,
}

/// Everything one audit measured; summaries are read at any margin.
#[derive(Debug, Clone)]
pub struct Report {
    /// Honest conditions; the first is the reference (fp32, one sequence per forward).
    pub honest: Vec<Condition>,
    /// bf16 sampling with the public noise, checked by fp32.
    pub bf16: Option<Strategy>,
    /// Off-policy strategies.
    pub strategies: Vec<Strategy>,
    /// Every honest position: the gap of the most likely other token.
    pub edits: Vec<f64>,
}

/// Honest drift of one condition at a margin.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSummary {
    /// The condition.
    pub condition: String,
    /// Completion positions.
    pub positions: usize,
    /// Largest |Δ gap| against the reference.
    pub max_shift: f64,
    /// 99.99th percentile of that shift.
    pub p9999_shift: f64,
    /// Largest distance of a gap below zero.
    pub max_excess: f64,
    /// Positions whose gap is not positive (the validator's sampler gives another token).
    pub outside: usize,
    /// Positions with a gap in `[−margin, 0]` (ambiguous, tolerated up to
    /// `allowed_ambiguous` per rollout).
    pub ambiguous: usize,
    /// Most ambiguous positions in one rollout.
    pub max_ambiguous_in_rollout: usize,
    /// Positions where another token would also pass: |gap| ≤ margin, the sampled token
    /// ahead or behind (an attacker's choices).
    pub choices: usize,
    /// Positions with a gap below the margin (must be 0).
    pub misses: usize,
    /// Rollouts rejected (honest false rejects; must be 0).
    pub rejected: usize,
    /// Windows of [`WINDOW_ROLLOUTS`] consecutive rollouts (a miner's checked sample).
    pub windows: usize,
    /// Of those, windows over `allowed_ambiguous_in_sample` (honest windows drift alone
    /// would zero; must be 0).
    pub windows_over_cap: usize,
}

/// Rollouts in a miner's checked sample: `GROUPS_CHECKED` groups of 8.
pub const WINDOW_ROLLOUTS: usize = grail_proto::params::GROUPS_CHECKED * 8;

/// An off-policy strategy at a margin.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategySummary {
    /// The strategy.
    pub name: String,
    /// Rollouts produced.
    pub rollouts: usize,
    /// Rollouts that differ from the honest rollout of the same slot.
    pub differing: usize,
    /// Differing rollouts accepted.
    pub accepted: usize,
    /// Identical rollouts rejected (honest work rejected; must be 0).
    pub identical_rejected: usize,
    /// Divergent positions of differing rollouts: the uniform lies outside the claimed
    /// token's interval (the validator's sampler would have drawn another token).
    pub divergent: usize,
    /// Divergent positions within the margin (Ambiguous).
    pub ambiguous: usize,
    /// Fewest divergent positions in a differing rollout.
    pub min_divergent: usize,
    /// Median divergent positions per differing rollout.
    pub median_divergent: usize,
    /// Divergent positions of each differing rollout and the ambiguous positions its
    /// length allows (`allowed_ambiguous`), ascending.
    pub divergent_per_rollout: Vec<(usize, usize)>,
    /// Differing rollouts with more divergent positions than their length allows as
    /// ambiguous: rejected whatever the margin.
    pub over_cap: usize,
    /// The smallest largest-excess of a differing rollout: how close the best one came
    /// (accepted when within the margin).
    pub closest: f64,
}

impl StrategySummary {
    /// q: the share of divergent positions that were ambiguous.
    pub fn q(&self) -> f64 {
        self.ambiguous as f64 / self.divergent.max(1) as f64
    }

    /// 95 % upper bound of q.
    pub fn q_upper(&self) -> f64 {
        upper_95(self.ambiguous, self.divergent)
    }

    /// log2 of the 95 % upper bound of the per-rollout acceptance rate (Clopper-Pearson;
    /// the rule of three when none was accepted).
    pub fn log2_empirical(&self) -> f64 {
        upper_95(self.accepted, self.differing).log2()
    }

    /// log2 q_upper^d for a rollout with `d` divergent positions (independent positions).
    pub fn log2_q_pow(&self, d: usize) -> f64 {
        if d == 0 {
            return 0.0;
        }
        d as f64 * self.q_upper().log2()
    }

    /// log2 of the acceptance bound of a rollout with `d` divergent positions of which
    /// `cap` may be ambiguous: −∞ above the cap, else q_upper^d.
    pub fn log2_bound(&self, d: usize, cap: usize) -> f64 {
        if d > cap {
            f64::NEG_INFINITY
        } else {
            self.log2_q_pow(d)
        }
    }

    /// log2 of the bound of the differing rollout with the fewest divergent positions.
    pub fn log2_bound_min(&self) -> f64 {
        self.divergent_per_rollout
            .first()
            .map_or(0.0, |&(d, cap)| self.log2_bound(d, cap))
    }

    /// log2 of the mean bound over the differing rollouts: the acceptance probability of
    /// one such rollout predicted from q and the cap (≥ the typical rollout's when short
    /// rollouts are common).
    pub fn log2_expected(&self) -> f64 {
        let n = self.divergent_per_rollout.len();
        if n == 0 {
            return 0.0;
        }
        let sum: f64 = self
            .divergent_per_rollout
            .iter()
            .map(|&(d, cap)| self.log2_bound(d, cap).exp2())
            .sum();
        (sum / n as f64).log2()
    }

    /// Differing rollouts whose bound exceeds 2^`log2_goal`.
    pub fn above(&self, log2_goal: f64) -> usize {
        self.divergent_per_rollout
            .iter()
            .filter(|&&(d, cap)| self.log2_bound(d, cap) > log2_goal)
            .count()
    }
}

/// One-sided 95 % Clopper-Pearson upper bound of a binomial rate (`k` of `n`); 3/n-like
/// at k = 0, 1 when `n` is 0 or every trial succeeded.
pub fn upper_95(k: usize, n: usize) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    // P(X ≤ k | n, p) decreases in p; find where it equals 0.05.
    let log_cdf = |p: f64| -> f64 {
        let (lp, lq) = (p.ln(), (1.0 - p).ln());
        let mut ln_choose = 0.0;
        let mut terms = Vec::with_capacity(k + 1);
        for i in 0..=k {
            if i > 0 {
                ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
            }
            terms.push(ln_choose + i as f64 * lp + (n - i) as f64 * lq);
        }
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
    };
    let target = 0.05f64.ln();
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0);
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        if log_cdf(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A log2 probability for a table: one decimal, −∞ for zero.
fn log2_text(x: f64) -> String {
    if x == f64::NEG_INFINITY {
        "−∞".into()
    } else {
        format!("{x:.1}")
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

impl Report {
    /// Honest drift of every condition at `margin`.
    pub fn drift(&self, margin: f64) -> Vec<DriftSummary> {
        let Some(reference) = self.honest.first() else {
            return Vec::new();
        };
        self.honest
            .iter()
            .map(|c| {
                let mut shifts = Vec::with_capacity(c.checked.positions());
                let mut s = DriftSummary {
                    condition: c.name.clone(),
                    positions: 0,
                    max_shift: 0.0,
                    p9999_shift: 0.0,
                    max_excess: 0.0,
                    outside: 0,
                    ambiguous: 0,
                    max_ambiguous_in_rollout: 0,
                    choices: 0,
                    misses: 0,
                    rejected: 0,
                    windows: 0,
                    windows_over_cap: 0,
                };
                let (mut window_positions, mut window_ambiguous) = (0, 0);
                for r in 0..c.checked.len() {
                    let mut ambiguous = 0;
                    for (gap, ref_gap) in c.checked.rollout(r).zip(reference.checked.rollout(r)) {
                        s.positions += 1;
                        shifts.push((gap - ref_gap).abs());
                        let e = excess(gap);
                        s.max_excess = s.max_excess.max(e);
                        s.outside += usize::from(gap <= 0.0);
                        s.choices += usize::from(gap.abs() <= margin);
                        match classify(gap, margin) {
                            PositionClass::Inside => {}
                            PositionClass::Ambiguous => ambiguous += 1,
                            PositionClass::Miss => s.misses += 1,
                        }
                    }
                    s.ambiguous += ambiguous;
                    s.max_ambiguous_in_rollout = s.max_ambiguous_in_rollout.max(ambiguous);
                    s.rejected += usize::from(!c.checked.accepted(r, margin));
                    window_positions += c.checked.gaps[r].len();
                    window_ambiguous += ambiguous;
                    if (r + 1) % WINDOW_ROLLOUTS == 0 || r + 1 == c.checked.len() {
                        s.windows += 1;
                        s.windows_over_cap += usize::from(
                            window_ambiguous > allowed_ambiguous_in_sample(window_positions),
                        );
                        (window_positions, window_ambiguous) = (0, 0);
                    }
                }
                shifts.sort_unstable_by(f64::total_cmp);
                s.max_shift = shifts.last().copied().unwrap_or(0.0);
                s.p9999_shift = quantile(&shifts, 0.9999);
                s
            })
            .collect()
    }

    /// Every off-policy strategy (bf16 first when measured) at `margin`.
    pub fn strategies(&self, margin: f64) -> Vec<StrategySummary> {
        self.bf16
            .iter()
            .chain(&self.strategies)
            .map(|st| strategy_summary(st, margin))
            .collect()
    }

    /// The largest honest drift seen: gap shift or excess, over every condition.
    pub fn largest_honest_drift(&self) -> f64 {
        self.drift(0.0)
            .iter()
            .map(|d| d.max_shift.max(d.max_excess))
            .fold(0.0, f64::max)
    }

    /// Share of honest positions where editing the token to the most likely other one
    /// still passes at `margin` (the edit's probability when the rest is resampled
    /// honestly, so that it is the rollout's only divergent position).
    pub fn edit_acceptance(&self, margin: f64) -> (usize, usize) {
        let accepted = self
            .edits
            .iter()
            .filter(|&&gap| classify(gap, margin) != PositionClass::Miss)
            .count();
        (accepted, self.edits.len())
    }

    /// bf16 per-rollout largest excess, sorted (the margin that would admit a share of
    /// bf16 rollouts is its quantile).
    pub fn bf16_rollout_excess(&self) -> Vec<f64> {
        let Some(b) = &self.bf16 else {
            return Vec::new();
        };
        let mut v: Vec<f64> = (0..b.checked.len())
            .map(|r| b.checked.rollout(r).map(excess).fold(0.0, f64::max))
            .collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    }

    /// The simulated search over choice positions (`choice_search::simulate`) at the
    /// reference's measured choice share at `margin`, next to v4's share and caps.
    fn search_markdown(&self, margin: f64) -> String {
        use crate::choice_search::{simulate, SearchParams};
        use grail_proto::params::{
            GROUPS_CHECKED, SAMPLING_SAMPLE_AMBIGUOUS_BASE, SAMPLING_SAMPLE_AMBIGUOUS_PER,
        };
        let Some(reference) = self.drift(margin).into_iter().next() else {
            return String::new();
        };
        let rollouts = self.honest[0].checked.len().max(1);
        let len = (reference.positions / rollouts).max(1);
        let share = reference.choices as f64 / reference.positions.max(1) as f64;
        let sample_positions = GROUPS_CHECKED * 8 * len;
        let v5 = SearchParams {
            group_size: 8,
            rollout_len: len,
            success: 0.0,
            choice_share: share,
            per_group_budget: 1,
            groups_checked: GROUPS_CHECKED,
            sample_cap: SAMPLING_SAMPLE_AMBIGUOUS_BASE
                + sample_positions / SAMPLING_SAMPLE_AMBIGUOUS_PER,
            ambiguous_credited: false,
        };
        // The same share if groups that needed the margin were credited as zone work.
        let v5_credited = SearchParams {
            ambiguous_credited: true,
            ..v5
        };
        let v4 = SearchParams {
            choice_share: 0.116,
            per_group_budget: usize::MAX,
            sample_cap: usize::MAX,
            ambiguous_credited: true,
            ..v5
        };
        let mut s = format!("\n### Searching over choice positions (simulated, `choice_search::simulate`)\n\nA miner claims the other token at a choice position of a flat group (all rollouts failed or all succeeded), which re-rolls the rest of that rollout, until the group lands in the learning zone (the only credited groups); 200 windows of 32 groups of 8 rollouts of {len} tokens (the corpus mean), a re-rolled rollout succeeding with probability p, every choice usable. v5: the reference's choice share at margin {margin:e} ({share:.2e}), one choice kept per group, a group that needed the margin not credited as zone work (`rules::group::credited_in_zone`), windows zeroed when the {GROUPS_CHECKED} checked groups hold more than {} ambiguous positions (the sample cap). v4: a choice at 11.6 % of positions (the v4 audit), no sample cap. One flip puts a flat group in the zone, so the per-rollout caps do not bind.\n\n| p | honest in-zone share | rule | attacker in-zone share | windows zeroed | compute | credit per compute vs honest |\n|---|---|---|---|---|---|---|\n", v5.sample_cap);
        for p in [0.1, 0.3, 0.5, 0.7, 0.9] {
            for (rule, params) in [
                ("v5", v5),
                ("v5 if ambiguous groups were credited", v5_credited),
                ("v4", v4),
            ] {
                let g = simulate(
                    &SearchParams {
                        success: p,
                        ..params
                    },
                    200,
                    32,
                    11,
                );
                s += &format!(
                    "| {p} | {:.3} | {rule} | {:.3} | {:.1} % | {:.3}× | {:.3}× |\n",
                    g.honest_in_zone,
                    g.attacker_in_zone,
                    100.0 * g.zeroed,
                    g.compute_ratio,
                    g.credit_per_compute
                );
            }
        }
        s
    }

    /// The report as markdown at `margin`, with a sweep over `sweep` margins.
    pub fn markdown(&self, margin: f64, sweep: &[f64]) -> String {
        let mut s = format!("### Honest drift (completion positions; margin {margin:e})\n\nEach claimed token's gap (its Gumbel-perturbed score minus the best other token's, in logit/T units) recomputed by the validator with the public noise. Shift: largest |Δ gap| against the reference. Excess: how far a gap lies below 0. Ambiguous: gap in [−margin, 0], tolerated up to `allowed_ambiguous(n)` per rollout of n tokens and `allowed_ambiguous_in_sample` per window of {WINDOW_ROLLOUTS} rollouts. Choices: positions where a token other than the claimed one would also pass (|gap| ≤ margin).\n\n| condition | positions | max shift | p99.99 shift | max excess | positions with gap ≤ 0 | ambiguous (most in one rollout) | choices | misses | rollouts rejected | windows over the sample cap |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for d in self.drift(margin) {
            s += &format!(
                "| {} | {} | {:.2e} | {:.2e} | {:.2e} | {} | {} ({}) | {} ({:.3} %) | {} | {} | {} of {} |\n",
                d.condition,
                d.positions,
                d.max_shift,
                d.p9999_shift,
                d.max_excess,
                d.outside,
                d.ambiguous,
                d.max_ambiguous_in_rollout,
                d.choices,
                100.0 * d.choices as f64 / d.positions.max(1) as f64,
                d.misses,
                d.rejected,
                d.windows_over_cap,
                d.windows
            );
        }
        if self.bf16.is_some() {
            let v = self.bf16_rollout_excess();
            s += &format!(
                "\n### bf16 sampling with the public noise, checked in fp32\n\nPer-rollout largest excess (the margin needed to admit that rollout): median {:.2e}, 90th percentile {:.2e}, max {:.2e} over {} rollouts.\n",
                quantile(&v, 0.5),
                quantile(&v, 0.9),
                v.last().copied().unwrap_or(0.0),
                v.len()
            );
        }
        s += &format!("\n### Off-policy rollouts (margin {margin:e})\n\nDivergent position: the claimed token's recomputed gap is not positive (the validator's sampler draws another token there). q: share of divergent positions within the margin (ambiguous), 95 % upper bound in brackets. A differing rollout passes only if every divergent position is ambiguous and there are at most `allowed_ambiguous(n)` of them. Bounds on P(accept) per differing rollout: empirical (95 % Clopper-Pearson / rule of three on accepted ÷ differing), and q_up^d for a rollout with d divergent positions (positions taken as independent; 0 above the cap): for the rollout with the fewest (d_min), the mean over the differing rollouts, and how many differing rollouts stay above 2^-40.\n\n| strategy | rollouts | differing | accepted | identical rejected | divergent positions | ambiguous (q [95 % up]) | d_min / median d | over the cap | log2 P(accept) empirical | log2 bound at d_min | log2 mean bound | rollouts with bound > 2^-40 | closest rollout (its max excess) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for st in self.strategies(margin) {
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} ({:.2e} [{:.2e}]) | {} / {} | {} | {} | {} | {} | {} | {:.2e} |\n",
                st.name,
                st.rollouts,
                st.differing,
                st.accepted,
                st.identical_rejected,
                st.divergent,
                st.ambiguous,
                st.q(),
                st.q_upper(),
                st.min_divergent,
                st.median_divergent,
                st.over_cap,
                log2_text(st.log2_empirical()),
                log2_text(st.log2_bound_min()),
                log2_text(st.log2_expected()),
                st.above(-40.0),
                st.closest
            );
        }
        s += &self.search_markdown(margin);
        let (accepted, positions) = self.edit_acceptance(margin);
        s += &format!("\n### One edited token with an honest continuation (every honest position)\n\nThe token replaced by the most likely other (non-EOS) token and the rest resampled honestly, so that the edit is the rollout's only divergent position: accepted at {accepted} of {positions} positions (rate {:.2e}, 95 % upper {:.2e}, log2 {:.1}).\n", accepted as f64 / positions.max(1) as f64, upper_95(accepted, positions), upper_95(accepted, positions).log2());
        s += "\n### Margin sweep: honest rollouts (all conditions)\n\n| margin | misses | rollouts rejected | ambiguous positions | most ambiguous in one rollout | windows over the sample cap | choices (reference) | single-edit acceptance (per position) |\n|---|---|---|---|---|---|---|---|\n";
        for &m in sweep {
            let drift = self.drift(m);
            let sum = |f: fn(&DriftSummary) -> usize| drift.iter().map(f).sum::<usize>();
            let most = drift
                .iter()
                .map(|d| d.max_ambiguous_in_rollout)
                .max()
                .unwrap_or(0);
            let choices = drift
                .first()
                .map_or(0.0, |d| d.choices as f64 / d.positions.max(1) as f64);
            let (ea, ep) = self.edit_acceptance(m);
            s += &format!(
                "| {m:e} | {} | {} | {} | {most} | {} | {:.3} % | {:.2e} |\n",
                sum(|d| d.misses),
                sum(|d| d.rejected),
                sum(|d| d.ambiguous),
                sum(|d| d.windows_over_cap),
                100.0 * choices,
                ea as f64 / ep.max(1) as f64
            );
        }
        s += "\n### Margin sweep: off-policy rollouts\n\nPer margin: differing rollouts accepted / differing; q; log2 mean bound.\n\n| strategy |";
        for &m in sweep {
            s += &format!(" {m:e} |");
        }
        s += "\n|---|";
        s += &"---|".repeat(sweep.len());
        s += "\n";
        let per_margin: Vec<Vec<StrategySummary>> =
            sweep.iter().map(|&m| self.strategies(m)).collect();
        for (i, st) in self.strategies(margin).iter().enumerate() {
            s += &format!("| {} |", st.name);
            for at in &per_margin {
                let x = &at[i];
                s += &format!(
                    " {} / {}; {:.1e}; {} |",
                    x.accepted,
                    x.differing,
                    x.q(),
                    log2_text(x.log2_expected())
                );
            }
            s += "\n";
        }
        s
    }

    /// Writes the measurements (every gap) so that the report can be
    /// read again at other margins without measuring ([`Report::read_raw`]).
    pub fn write_raw(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(RAW_MAGIC);
        put_len(out, self.honest.len());
        for c in &self.honest {
            put_str(out, &c.name);
            put_checked(out, &c.checked);
        }
        let strategies: Vec<&Strategy> = self.bf16.iter().chain(&self.strategies).collect();
        out.push(u8::from(self.bf16.is_some()));
        put_len(out, strategies.len());
        for st in strategies {
            put_str(out, &st.name);
            put_checked(out, &st.checked);
            put_len(out, st.differs.len());
            out.extend(st.differs.iter().map(|&d| u8::from(d)));
        }
        put_len(out, self.edits.len());
        for gap in &self.edits {
            out.extend_from_slice(&gap.to_le_bytes());
        }
    }

    /// Reads what [`Report::write_raw`] wrote.
    pub fn read_raw(bytes: &[u8]) -> Result<Self, InferError> {
        let mut r = Raw(bytes);
        if r.take(RAW_MAGIC.len())? != RAW_MAGIC {
            return Err(InferError::Input("not a sampling audit raw file".into()));
        }
        let mut honest = Vec::new();
        for _ in 0..r.len()? {
            honest.push(Condition {
                name: r.string()?,
                checked: r.checked()?,
            });
        }
        let has_bf16 = r.take(1)?[0] != 0;
        let mut strategies = Vec::new();
        for _ in 0..r.len()? {
            let name = r.string()?;
            let checked = r.checked()?;
            let n = r.len()?;
            let differs = r.take(n)?.iter().map(|&b| b != 0).collect();
            strategies.push(Strategy {
                name,
                differs,
                checked,
            });
        }
        let bf16 = if has_bf16 && !strategies.is_empty() {
            Some(strategies.remove(0))
        } else {
            None
        };
        let mut edits = Vec::new();
        for _ in 0..r.len()? {
            edits.push(r.f64()?);
        }
        Ok(Report {
            honest,
            bf16,
            strategies,
            edits,
        })
    }
}

/// First bytes of a raw measurement file.
const RAW_MAGIC: &[u8] = b"grail-rs/audit-sampling/raw/v2-gumbel\n";

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_checked(out: &mut Vec<u8>, c: &Checked) {
    put_len(out, c.len());
    for r in 0..c.len() {
        put_len(out, c.gaps[r].len());
        for gap in c.rollout(r) {
            out.extend_from_slice(&gap.to_le_bytes());
        }
    }
}

/// A reader over raw measurement bytes; running out is an error, never a panic.
struct Raw<'a>(&'a [u8]);

impl<'a> Raw<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], InferError> {
        if n > self.0.len() {
            return Err(InferError::Input(
                "sampling audit raw file is truncated".into(),
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, InferError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn f64(&mut self) -> Result<f64, InferError> {
        self.u64().map(f64::from_bits)
    }

    /// A count, bounded by the bytes left so that a corrupt file cannot allocate wildly.
    fn len(&mut self) -> Result<usize, InferError> {
        let n = self.u64()?;
        if n > self.0.len() as u64 {
            return Err(InferError::Input(
                "sampling audit raw file is corrupt".into(),
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String, InferError> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| InferError::Input("sampling audit raw file is corrupt".into()))
    }

    fn checked(&mut self) -> Result<Checked, InferError> {
        let mut c = Checked::default();
        for _ in 0..self.len()? {
            let n = self.len()?;
            let mut gaps = Vec::with_capacity(n);
            for _ in 0..n {
                gaps.push(self.f64()?);
            }
            c.gaps.push(gaps);
        }
        Ok(c)
    }
}

fn strategy_summary(st: &Strategy, margin: f64) -> StrategySummary {
    let mut s = StrategySummary {
        name: st.name.clone(),
        rollouts: st.checked.len(),
        differing: 0,
        accepted: 0,
        identical_rejected: 0,
        divergent: 0,
        ambiguous: 0,
        min_divergent: 0,
        median_divergent: 0,
        divergent_per_rollout: Vec::new(),
        over_cap: 0,
        closest: f64::INFINITY,
    };
    let mut per_rollout = Vec::new();
    for r in 0..st.checked.len() {
        let accepted = st.checked.accepted(r, margin);
        if !st.differs.get(r).copied().unwrap_or(true) {
            s.identical_rejected += usize::from(!accepted);
            continue;
        }
        s.differing += 1;
        s.accepted += usize::from(accepted);
        let mut d = 0;
        let mut worst = 0.0f64;
        for gap in st.checked.rollout(r) {
            worst = worst.max(excess(gap));
            if gap <= 0.0 {
                d += 1;
                s.ambiguous += usize::from(classify(gap, margin) == PositionClass::Ambiguous);
            }
        }
        s.closest = s.closest.min(worst);
        s.divergent += d;
        let cap = allowed_ambiguous(st.checked.gaps[r].len());
        s.over_cap += usize::from(d > cap);
        per_rollout.push((d, cap));
    }
    if !s.closest.is_finite() {
        s.closest = 0.0;
    }
    per_rollout.sort_unstable();
    s.min_divergent = per_rollout.first().map_or(0, |p| p.0);
    s.median_divergent = per_rollout.get(per_rollout.len() / 2).map_or(0, |p| p.0);
    s.divergent_per_rollout = per_rollout;
    s
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Noise streams and sampling limits.
    pub setup: Setup,
    /// Slots (from the first) used for bf16 and the off-policy strategies.
    pub attack_slots: usize,
    /// Candidates per slot for best-of-n.
    pub best_of: usize,
    /// Seed of the private randomness (best-of-n, edit positions, weight noise).
    pub seed: u64,
    /// Largest right-padded batch of the validator's recomputation in the measurements
    /// that are not about batching.
    pub batch: usize,
    /// Measure bf16 sampling (needs `load`).
    pub bf16: bool,
    /// Also the honest conditions that vary only the validator's batching (4 rows) and
    /// thread count; without them a long run keeps the reference, batches of 16 and the
    /// miner's path.
    pub all_conditions: bool,
}

/// Runs every honest condition, bf16 and each off-policy strategy on `corpus`.
/// `reference` is the fp32 model the corpus was sampled with; `load` gives the same
/// checkpoint in another dtype.
pub fn run(
    reference: &Model,
    load: &dyn Fn(Kind, Device) -> Result<Model, InferError>,
    corpus: &Corpus,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, InferError> {
    let setup = &plan.setup;
    let all = &corpus.completions;
    progress("reference: fp32, one sequence per forward");
    let mut honest = vec![Condition {
        name: "fp32, one sequence per forward (reference)".into(),
        checked: recompute(reference, corpus, setup, all, 1, 1.0)?,
    }];
    let batches: &[usize] = if plan.all_conditions { &[4, 16] } else { &[16] };
    for &batch in batches {
        let name = format!("fp32, batches of {batch} right-padded");
        progress(&name);
        honest.push(Condition {
            checked: recompute(reference, corpus, setup, all, batch, 1.0)?,
            name,
        });
    }
    if plan.all_conditions {
        let threads = tch::get_num_threads();
        let other = if threads == 1 { 2 } else { 1 };
        progress("fp32, other thread count");
        tch::set_num_threads(other);
        let result = recompute(reference, corpus, setup, all, 1, 1.0);
        tch::set_num_threads(threads);
        honest.push(Condition {
            name: format!("fp32, {other} thread(s) instead of {threads}, one sequence per forward"),
            checked: result?,
        });
    }
    progress("fp32, miner's path replayed (prefill + KV-cache decode)");
    honest.push(Condition {
        name: "fp32, prompt prefill + KV-cache decode of the group (miner's path)".into(),
        checked: recompute_incremental(reference, corpus, setup, 1.0)?,
    });
    progress("alternatives (most likely other token at every position)");
    let alts = alternatives(reference, corpus, setup, plan.batch, 1.0)?;
    let edits = alts
        .iter()
        .flat_map(|a| a.iter().map(|&(_, gap)| gap))
        .collect();

    let m = setup.rollouts_per_prompt.max(1);
    let attack_prompts = plan.attack_slots.div_ceil(m).min(corpus.prompts.len());
    let prompts = &corpus.prompts[..attack_prompts];
    let slots = attack_prompts * m;
    let honest_part = &all[..slots.min(all.len())];
    let check = |name: String, completions: Vec<Vec<u32>>| -> Result<Strategy, InferError> {
        let checked = recompute(reference, corpus, setup, &completions, plan.batch, 1.0)?;
        Ok(Strategy {
            name,
            differs: completions
                .iter()
                .zip(honest_part)
                .map(|(a, b)| a != b)
                .collect(),
            checked,
        })
    };
    let bf16 = if plan.bf16 {
        progress("bf16 sampling with the public noise");
        let model = load(Kind::BFloat16, reference.device())?;
        let completions = sample_public(&model, prompts, setup, 1.0)?;
        drop(model);
        Some(check(
            "bf16 weights and activations, same noise".into(),
            completions,
        )?)
    } else {
        None
    };
    let mut strategies = Vec::new();
    let config = reference.config().clone();
    let device = reference.device();
    let build = |weights: Vec<(String, Tensor)>| {
        Model::from_hf_weights(
            config.clone(),
            weights.into_iter().collect(),
            Kind::Float,
            device,
        )
    };
    progress("another model: weights + 1 % noise, same noise");
    let noisy = build(crate::perturbed_weights(reference, |n, w| {
        crate::add_noise(n, w, 0.01, plan.seed)
    }))?;
    let completions = sample_public(&noisy, prompts, setup, 1.0)?;
    drop(noisy);
    strategies.push(check(
        "weights + Gaussian noise at 1 % of RMS, same noise".into(),
        completions,
    )?);
    progress("another model: int8 weights, same noise");
    let int8 = build(crate::perturbed_weights(reference, |_, w| {
        crate::int8_roundtrip(w)
    }))?;
    let completions = sample_public(&int8, prompts, setup, 1.0)?;
    drop(int8);
    strategies.push(check(
        "int8 weights (per-row absmax), same noise".into(),
        completions,
    )?);
    for t in [0.7, 0.9] {
        progress(&format!("temperature {t}, same noise"));
        let completions = sample_public(reference, prompts, setup, t)?;
        strategies.push(check(
            format!("temperature {t} instead of 1, same noise"),
            completions,
        )?);
    }
    let mut rng =
        grail_proto::prf::stream(b"grail-rs/audit-sampling/v1", &[&plan.seed.to_le_bytes()]);
    progress(&format!("best-of-{}", plan.best_of));
    let completions = sample_best_of(reference, prompts, setup, plan.best_of, &mut rng)?;
    strategies.push(check(
        format!(
            "best-of-{} (private randomness, T = 1, most likely submitted)",
            plan.best_of
        ),
        completions,
    )?);
    progress("one edited token");
    let completions = edit_one_token(
        honest_part,
        &alts[..honest_part.len()],
        &setup.eos,
        &mut rng,
    );
    strategies.push(check(
        "one token replaced by the most likely other token, rest kept".into(),
        completions,
    )?);
    Ok(Report {
        honest,
        bf16,
        strategies,
        edits,
    })
}

/// The margin to choose: `factor` × the largest honest drift, rounded up to 1, 2 or 5 ×
/// a power of ten (the smallest such value when no drift was seen at all).
pub fn recommended_margin(largest_honest_drift: f64, factor: f64) -> f64 {
    let target = (largest_honest_drift * factor).max(1e-12);
    let decade = 10f64.powf(target.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|k| k * decade)
        .find(|&v| v >= target * (1.0 - 1e-12))
        .unwrap_or(10.0 * decade)
}
