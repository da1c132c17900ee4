//! grail-audit: the soundness audits behind `cargo xtask audit-proof` and
//! `cargo xtask audit-sampling`. Not part of any role: no runtime crate depends on it.
//!
//! Proof soundness audit (this module): how far honest recomputations drift under each sketch rule,
//! and how often substitutes (other weights, noise, quantization, a missing layer, another
//! prompt) pass. Used by `cargo xtask audit-proof` (SmolLM2) and by CI on the tiny model.

use grail_proto::compat::{grail_v5, reliquary_v7, TOPK};
use grail_proto::params::{CHALLENGE_K, CHALLENGE_MAX_MISSES, SKETCHES_PER_POSITION};
use grail_proto::sketch::{digest_passes, modular_distance};
use grail_proto::{PositionSketch, SketchCoefficients};
use rand_core::RngCore;
use tch::{Kind, Tensor};

use grail_infer::model::Model;
use grail_infer::{InferError, Progress, SamplingParams};

pub mod choice_search;
pub mod sampling;

/// A sketch rule under audit: how a hidden vector becomes residues and when a claimed
/// residue passes against a recomputed one.
pub trait SketchRule {
    /// Name for tables.
    fn name(&self) -> &str;
    /// Residues per position.
    fn width(&self) -> usize;
    /// Appends the residues of `hidden` to `out`.
    fn sketch(&self, hidden: &[f32], out: &mut Vec<u32>);
    /// Largest modular distance over the position's residues.
    fn distance(&self, claimed: &[u32], recomputed: &[u32]) -> u32 {
        claimed
            .iter()
            .zip(recomputed)
            .map(|(&a, &b)| modular_distance(a, b))
            .max()
            .unwrap_or(0)
    }
    /// Whether the position passes.
    fn passes(&self, claimed: &[u32], recomputed: &[u32], position: usize) -> bool;
    /// Positions challenged per rollout.
    fn k(&self) -> usize;
    /// Failed positions a rollout may have and still be accepted.
    fn max_misses(&self) -> usize;
}

/// The native rule of grail-proto (its current parameters).
pub struct Native(pub SketchCoefficients);

impl SketchRule for Native {
    fn name(&self) -> &str {
        "native (grail-proto)"
    }
    fn width(&self) -> usize {
        SKETCHES_PER_POSITION
    }
    fn sketch(&self, hidden: &[f32], out: &mut Vec<u32>) {
        out.extend(self.0.sketch(hidden).0);
    }
    /// Protocol v4: the claimed residues travel as their digests (rounded to 2^16), the
    /// check adds the rounding to the tolerance.
    fn passes(&self, claimed: &[u32], recomputed: &[u32], position: usize) -> bool {
        let residues = |v: &[u32]| PositionSketch(std::array::from_fn(|s| v[s]));
        digest_passes(residues(claimed).digest(), residues(recomputed), position)
    }
    fn k(&self) -> usize {
        CHALLENGE_K
    }
    fn max_misses(&self) -> usize {
        CHALLENGE_MAX_MISSES
    }
}

/// A reference rule (grail v5 or Reliquary v7): one top-16 sketch, every position must pass.
pub struct Reference {
    name: &'static str,
    coefficients: [i8; TOPK],
    passes: fn(u32, u32, usize) -> bool,
}

impl Reference {
    /// grail v5 with coefficients from `randomness_hex`.
    pub fn grail_v5(randomness_hex: &str) -> Self {
        Self {
            name: "compat grail v5",
            coefficients: grail_v5::coefficients(randomness_hex).unwrap_or([1; TOPK]),
            passes: grail_v5::position_passes,
        }
    }

    /// Reliquary v7 with coefficients from `randomness_hex`.
    pub fn reliquary_v7(randomness_hex: &str) -> Self {
        Self {
            name: "compat reliquary v7",
            coefficients: reliquary_v7::coefficients(randomness_hex).unwrap_or([1; TOPK]),
            passes: reliquary_v7::position_passes,
        }
    }
}

impl SketchRule for Reference {
    fn name(&self) -> &str {
        self.name
    }
    fn width(&self) -> usize {
        1
    }
    fn sketch(&self, hidden: &[f32], out: &mut Vec<u32>) {
        out.push(grail_v5::sketch(hidden, &self.coefficients));
    }
    fn passes(&self, claimed: &[u32], recomputed: &[u32], position: usize) -> bool {
        (self.passes)(claimed[0], recomputed[0], position)
    }
    fn k(&self) -> usize {
        grail_v5::CHALLENGE_K
    }
    fn max_misses(&self) -> usize {
        0
    }
}

/// Token sequences to audit: prompts with sampled completions.
pub struct Corpus {
    /// Prompt + completion tokens.
    pub sequences: Vec<Vec<u32>>,
    /// Prompt length of each sequence.
    pub prompt_lens: Vec<usize>,
}

impl Corpus {
    /// Samples `per_prompt` completions of up to `max_new` tokens for each prompt.
    pub fn sample(
        model: &Model,
        prompts: &[Vec<u32>],
        per_prompt: usize,
        max_new: usize,
        eos: &[u32],
        rng: &mut impl RngCore,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self, InferError> {
        let params = SamplingParams {
            max_new_tokens: max_new,
            ..SamplingParams::default()
        };
        let mut corpus = Corpus {
            sequences: Vec::new(),
            prompt_lens: Vec::new(),
        };
        for (i, prompt) in prompts.iter().enumerate() {
            progress(Progress::new(
                "sampling corpus",
                i as u64,
                prompts.len() as u64,
            ));
            for c in model.generate_group(
                prompt,
                per_prompt,
                &params,
                eos,
                rng,
                &mut grail_infer::no_progress,
            )? {
                corpus
                    .sequences
                    .push(prompt.iter().chain(&c.tokens).copied().collect());
                corpus.prompt_lens.push(prompt.len());
            }
        }
        progress(Progress::new(
            "sampling corpus",
            prompts.len() as u64,
            prompts.len() as u64,
        ));
        Ok(corpus)
    }

    /// Every position of every sequence.
    pub fn positions(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }
}

/// Residues of every position of every sequence, per rule: `[rule][sequence]` → flat
/// `width` residues per position.
pub type Sketches = Vec<Vec<Vec<u32>>>;

fn sketch_rows(rules: &[&dyn SketchRule], hidden: &Tensor, len: usize, out: &mut [Vec<Vec<u32>>]) {
    let h = hidden.size()[1] as usize;
    let flat = Vec::<f32>::try_from(
        hidden
            .narrow(0, 0, len as i64)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )
    .unwrap_or_default();
    for (r, rule) in rules.iter().enumerate() {
        let mut row = Vec::with_capacity(len * rule.width());
        for p in 0..len {
            rule.sketch(&flat[p * h..(p + 1) * h], &mut row);
        }
        out[r].push(row);
    }
}

/// How the hidden states are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// One forward over `batch` right-padded sequences at a time.
    Batched(usize),
    /// Prompt prefilled, then the completion one token at a time through the KV cache.
    Incremental,
}

/// Sketches of every position of `corpus` under `rules`, computed by `model` as `pass`
/// says. `prompt_swap[i] = Some(j)` runs sequence i's completion after prompt j instead
/// (the completion positions are then reported at sequence i's own positions).
pub fn sketch_corpus(
    model: &Model,
    corpus: &Corpus,
    rules: &[&dyn SketchRule],
    pass: Pass,
    prompt_swap: Option<&dyn Fn(usize) -> usize>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Sketches, InferError> {
    let mut out: Sketches = vec![Vec::new(); rules.len()];
    let n = corpus.sequences.len();
    let device = model.device();
    let tokens_of = |i: usize| -> (Vec<u32>, usize) {
        match prompt_swap {
            Some(swap) => {
                let j = swap(i);
                let completion = &corpus.sequences[i][corpus.prompt_lens[i]..];
                let prompt = &corpus.sequences[j][..corpus.prompt_lens[j]];
                (
                    prompt.iter().chain(completion).copied().collect(),
                    prompt.len(),
                )
            }
            None => (corpus.sequences[i].clone(), corpus.prompt_lens[i]),
        }
    };
    tch::no_grad(|| -> Result<(), InferError> {
        let mut i = 0;
        while i < n {
            progress(Progress::new("sketching", i as u64, n as u64));
            // Batched: the next `b` sequences. Incremental: the next run of sequences that
            // share a prompt (decoded together after one prefill, as a miner does).
            let end = match pass {
                Pass::Batched(b) => (i + b.max(1)).min(n),
                Pass::Incremental => {
                    let prompt = &corpus.sequences[i][..corpus.prompt_lens[i]];
                    (i + 1..n)
                        .take_while(|&j| {
                            prompt_swap.is_none()
                                && &corpus.sequences[j][..corpus.prompt_lens[j]] == prompt
                        })
                        .last()
                        .map_or(i + 1, |j| j + 1)
                }
            };
            let group: Vec<(Vec<u32>, usize)> = (i..end).map(tokens_of).collect();
            for (seq, _) in &group {
                model.check_tokens(seq, 0)?;
            }
            let longest = group.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
            let hidden = match pass {
                Pass::Batched(_) => {
                    let mut ids = vec![0i64; group.len() * longest];
                    for (r, (s, _)) in group.iter().enumerate() {
                        for (c, &t) in s.iter().enumerate() {
                            ids[r * longest + c] = t as i64;
                        }
                    }
                    let input = Tensor::from_slice(&ids)
                        .to_device(device)
                        .view([group.len() as i64, longest as i64]);
                    model.hidden_states(&input, None)
                }
                Pass::Incremental => {
                    let prompt_len = group[0].1;
                    let prompt: Vec<i64> =
                        group[0].0[..prompt_len].iter().map(|&t| t as i64).collect();
                    let mut cache = model.new_cache(1, longest);
                    let prefill = model.hidden_states(
                        &Tensor::from_slice(&prompt).to_device(device).view([1, -1]),
                        Some(&mut cache),
                    );
                    cache.select_rows(&vec![0i64; group.len()]);
                    let mut parts = vec![prefill.expand([group.len() as i64, -1, -1], false)];
                    for step in prompt_len..longest {
                        // Rows already past their end feed a dummy token; causal attention
                        // keeps it away from their real positions.
                        let column: Vec<i64> = group
                            .iter()
                            .map(|(s, _)| s.get(step).map_or(0, |&t| t as i64))
                            .collect();
                        let input = Tensor::from_slice(&column).to_device(device).view([-1, 1]);
                        parts.push(model.hidden_states(&input, Some(&mut cache)));
                    }
                    Tensor::cat(&parts, 1)
                }
            };
            for (r, (seq, prompt_len)) in group.iter().enumerate() {
                let row = hidden.get(r as i64);
                match prompt_swap {
                    // Re-align: sequence i's positions = its own prompt, then the completion.
                    Some(_) => {
                        let own_prompt = corpus.prompt_lens[i + r];
                        let completion = seq.len() - prompt_len;
                        let zeros = Tensor::zeros(
                            [own_prompt as i64, row.size()[1]],
                            (Kind::Float, row.device()),
                        );
                        let aligned = Tensor::cat(
                            &[
                                zeros,
                                row.narrow(0, *prompt_len as i64, completion as i64)
                                    .to_kind(Kind::Float),
                            ],
                            0,
                        );
                        sketch_rows(rules, &aligned, own_prompt + completion, &mut out);
                    }
                    None => sketch_rows(rules, &row, seq.len(), &mut out),
                }
            }
            i += group.len();
        }
        progress(Progress::new("sketching", n as u64, n as u64));
        Ok(())
    })?;
    Ok(out)
}

/// Honest drift of one rule between a reference and another computation.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// Positions compared.
    pub positions: usize,
    /// Largest modular distance.
    pub max: u32,
    /// 99.99th percentile distance.
    pub p9999: u32,
    /// Positions that would fail.
    pub failures: usize,
}

/// Compares every position (prompt and completion).
pub fn drift(rule: &dyn SketchRule, reference: &[Vec<u32>], other: &[Vec<u32>]) -> Drift {
    let w = rule.width();
    let mut distances = Vec::new();
    let mut failures = 0;
    for (a, b) in reference.iter().zip(other) {
        for (p, (x, y)) in a.chunks(w).zip(b.chunks(w)).enumerate() {
            distances.push(rule.distance(x, y));
            failures += usize::from(!rule.passes(x, y, p));
        }
    }
    distances.sort_unstable();
    let at = |q: f64| {
        distances
            .get(((distances.len() as f64 * q) as usize).min(distances.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Drift {
        positions: distances.len(),
        max: distances.last().copied().unwrap_or(0),
        p9999: at(0.9999),
        failures,
    }
}

/// How often a substitute's sketches pass against the honest ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Forgery {
    /// Completion positions compared.
    pub positions: usize,
    /// Positions that passed.
    pub passed: usize,
    /// 1st percentile of the distance (how close the nearest forgeries come).
    pub p01: u32,
    /// The largest tolerance that keeps this substitute's rollout acceptance ≤ 2^-40 (the
    /// distance quantile at the per-position pass rate that gives 2^-40 at K and misses).
    pub largest_safe_tolerance: u32,
    /// log2 of the probability that a rollout passes (K positions, allowed misses),
    /// treating positions as independent, with the pass rate's 95 % upper bound
    /// (rule of three when no position passed).
    pub log2_rollout_acceptance: f64,
}

impl Forgery {
    /// Per-position pass rate.
    pub fn rate(&self) -> f64 {
        self.passed as f64 / self.positions.max(1) as f64
    }
}

/// Compares completion positions only (the challenged range).
pub fn forgery(
    rule: &dyn SketchRule,
    corpus: &Corpus,
    honest: &[Vec<u32>],
    forged: &[Vec<u32>],
) -> Forgery {
    let w = rule.width();
    let (mut positions, mut passed) = (0, 0);
    let mut distances = Vec::new();
    for ((a, b), &prompt_len) in honest.iter().zip(forged).zip(&corpus.prompt_lens) {
        for (p, (x, y)) in a.chunks(w).zip(b.chunks(w)).enumerate().skip(prompt_len) {
            positions += 1;
            passed += usize::from(rule.passes(x, y, p));
            distances.push(rule.distance(x, y));
        }
    }
    distances.sort_unstable();
    let p01 = distances.get(distances.len() / 100).copied().unwrap_or(0);
    // Per-position pass rate at which a rollout is accepted with probability 2^-40.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if log2_acceptance(mid, rule.k(), rule.max_misses()) <= -40.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let safe_index = (distances.len() as f64 * lo) as usize;
    let largest_safe_tolerance = distances.get(safe_index).map_or(0, |d| d.saturating_sub(1));
    let n = positions.max(1) as f64;
    let rate = passed as f64 / n;
    // 95 % upper bound on the per-position rate: rule of three at 0, else a normal bound.
    let upper = if passed == 0 {
        3.0 / n
    } else {
        (rate + 1.96 * (rate * (1.0 - rate) / n).sqrt()).min(1.0)
    };
    Forgery {
        positions,
        passed,
        p01,
        largest_safe_tolerance,
        log2_rollout_acceptance: log2_acceptance(upper, rule.k(), rule.max_misses()),
    }
}

/// log2 P(at most `misses` of `k` independent positions fail | each passes with `p`).
pub fn log2_acceptance(p: f64, k: usize, misses: usize) -> f64 {
    if p >= 1.0 {
        return 0.0;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let ln_choose = |n: usize, r: usize| -> f64 {
        (0..r)
            .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
            .sum()
    };
    let terms: Vec<f64> = (0..=misses.min(k))
        .map(|m| ln_choose(k, m) + (k - m) as f64 * p.ln() + m as f64 * (1.0 - p).ln())
        .collect();
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()) / std::f64::consts::LN_2
}

/// Substitute weights derived from a model's own (Hugging Face names).
pub fn perturbed_weights(
    model: &Model,
    mut change: impl FnMut(&str, &Tensor) -> Tensor,
) -> Vec<(String, Tensor)> {
    tch::no_grad(|| {
        model
            .hf_weights()
            .into_iter()
            .map(|(n, t)| {
                let changed = change(&n, &t.to_kind(Kind::Float));
                (n, changed)
            })
            .collect()
    })
}

/// `w + N(0, (relative · rms(w))²)` with noise from a ChaCha stream.
pub fn add_noise(name: &str, w: &Tensor, relative: f64, seed: u64) -> Tensor {
    let rms = f64::try_from(w.square().mean(Kind::Float).sqrt()).unwrap_or(0.0);
    let n = w.numel();
    let mut rng = grail_proto::prf::stream(
        b"grail-rs/audit-noise/v1",
        &[&seed.to_le_bytes(), name.as_bytes()],
    );
    let mut noise = Vec::with_capacity(n);
    while noise.len() < n {
        let u1 = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        noise.push((r * t.cos()) as f32);
        noise.push((r * t.sin()) as f32);
    }
    noise.truncate(n);
    w + Tensor::from_slice(&noise)
        .view(w.size().as_slice())
        .to_device(w.device())
        * (relative * rms)
}

/// Symmetric per-row int8 quantization of matrices (vectors are kept).
pub fn int8_roundtrip(w: &Tensor) -> Tensor {
    if w.dim() != 2 {
        return w.shallow_clone();
    }
    let scale = w.abs().amax([1], true).clamp_min(1e-12) / 127.0;
    (w / &scale).round().clamp(-127.0, 127.0) * scale
}

/// Drops the last decoder layer (a cheaper, wrong model).
pub fn without_last_layer(model: &Model) -> Result<Model, InferError> {
    let mut config = model.config().clone();
    let last = config.num_hidden_layers - 1;
    if last == 0 {
        return Err(InferError::Input(
            "a one-layer model has no layer to drop".into(),
        ));
    }
    config.num_hidden_layers = last;
    let prefix = format!("model.layers.{last}.");
    let weights = model
        .hf_weights()
        .into_iter()
        .filter(|(n, _)| !n.starts_with(&prefix))
        .collect();
    Model::from_hf_weights(config, weights, Kind::Float, model.device())
}

/// One row of the drift table.
pub struct DriftRow {
    /// What was varied.
    pub condition: String,
    /// Per rule.
    pub drift: Vec<Drift>,
}

/// One row of the forgery table.
pub struct ForgeryRow {
    /// The substitute.
    pub substitute: String,
    /// Per rule.
    pub forgery: Vec<Forgery>,
}

/// What an audit measured.
pub struct Report {
    /// Rule names, in column order.
    pub rules: Vec<String>,
    /// (K, allowed misses) per rule.
    pub challenge: Vec<(usize, usize)>,
    /// Honest drift against the fp32 batch-1 reference.
    pub drift: Vec<DriftRow>,
    /// Substitutes against the honest sketches.
    pub forgery: Vec<ForgeryRow>,
}

/// Runs every honest condition and substitute on `corpus`. `reference` is the fp32 CPU
/// model; `load` gives the same checkpoint in another dtype or on another device (bf16,
/// and CUDA fp32 when libtorch sees a GPU).
pub fn run(
    reference: &Model,
    load: &dyn Fn(Kind, tch::Device) -> Result<Model, InferError>,
    corpus: &Corpus,
    rules: &[&dyn SketchRule],
    progress: &mut dyn FnMut(&str),
) -> Result<Report, InferError> {
    let quiet = &mut grail_infer::no_progress;
    let sketch =
        |model: &Model,
         pass: Pass,
         swap: Option<&dyn Fn(usize) -> usize>,
         q: &mut dyn FnMut(Progress)| sketch_corpus(model, corpus, rules, pass, swap, q);
    progress("reference: fp32, one sequence per forward");
    let honest = sketch(reference, Pass::Batched(1), None, quiet)?;
    let mut drift_rows = Vec::new();
    let mut add_drift = |name: &str, other: Sketches| {
        drift_rows.push(DriftRow {
            condition: name.to_string(),
            drift: rules
                .iter()
                .enumerate()
                .map(|(r, rule)| drift(*rule, &honest[r], &other[r]))
                .collect(),
        });
    };
    for batch in [4usize, 16] {
        let name = format!("fp32, batches of {batch} right-padded");
        progress(&name);
        add_drift(&name, sketch(reference, Pass::Batched(batch), None, quiet)?);
    }
    progress("fp32, prefill prompt + KV-cache decode");
    add_drift(
        "fp32, prompt prefill + token-by-token KV-cache decode",
        sketch(reference, Pass::Incremental, None, quiet)?,
    );
    let threads = tch::get_num_threads();
    let other_threads = if threads == 1 { 2 } else { 1 };
    progress("fp32, other thread count");
    tch::set_num_threads(other_threads);
    let result = sketch(reference, Pass::Batched(1), None, quiet);
    tch::set_num_threads(threads);
    add_drift(
        &format!("fp32, {other_threads} thread(s) instead of {threads}"),
        result?,
    );
    if tch::Cuda::is_available() {
        progress("fp32 on CUDA");
        let cuda = load(Kind::Float, tch::Device::Cuda(0))?;
        add_drift(
            "fp32 on CUDA (TF32 off) instead of CPU",
            sketch(&cuda, Pass::Batched(1), None, quiet)?,
        );
    }
    progress("bf16");
    let bf16 = load(Kind::BFloat16, reference.device())?;
    add_drift(
        "bf16 weights and activations",
        sketch(&bf16, Pass::Batched(1), None, quiet)?,
    );
    drop(bf16);

    let mut forgery_rows = Vec::new();
    let mut add_forgery = |name: &str, forged: Sketches| {
        forgery_rows.push(ForgeryRow {
            substitute: name.to_string(),
            forgery: rules
                .iter()
                .enumerate()
                .map(|(r, rule)| forgery(*rule, corpus, &honest[r], &forged[r]))
                .collect(),
        });
    };
    let config = reference.config().clone();
    let device = reference.device();
    let build = |weights: Vec<(String, Tensor)>, config: grail_infer::ModelConfig| {
        Model::from_hf_weights(config, weights.into_iter().collect(), Kind::Float, device)
    };
    progress("substitute: random weights of the same shape");
    let random = build(
        grail_infer::tiny::tiny_weights(&config, 0x5eed),
        config.clone(),
    )?;
    add_forgery(
        "random weights, same architecture",
        sketch(&random, Pass::Batched(4), None, quiet)?,
    );
    drop(random);
    for relative in [0.001, 0.01, 0.1] {
        let name = format!(
            "real weights + Gaussian noise at {}% of each tensor's RMS",
            relative * 100.0
        );
        progress(&name);
        let noisy = build(
            perturbed_weights(reference, |n, w| add_noise(n, w, relative, 7)),
            config.clone(),
        )?;
        add_forgery(&name, sketch(&noisy, Pass::Batched(4), None, quiet)?);
    }
    progress("substitute: int8 weights");
    let int8 = build(
        perturbed_weights(reference, |_, w| int8_roundtrip(w)),
        config.clone(),
    )?;
    add_forgery(
        "int8-quantized weights (per-row absmax)",
        sketch(&int8, Pass::Batched(4), None, quiet)?,
    );
    drop(int8);
    progress("substitute: last layer removed");
    let shallow = without_last_layer(reference)?;
    add_forgery(
        "last decoder layer removed",
        sketch(&shallow, Pass::Batched(4), None, quiet)?,
    );
    drop(shallow);
    progress("substitute: another prompt");
    // The completion of sequence i after the first prompt that differs from its own.
    let swap = |i: usize| -> usize {
        let n = corpus.sequences.len();
        let own = &corpus.sequences[i][..corpus.prompt_lens[i]];
        (1..n)
            .map(|d| (i + d) % n)
            .find(|&j| &corpus.sequences[j][..corpus.prompt_lens[j]] != own)
            .unwrap_or(i)
    };
    add_forgery(
        "right model, completion after another prompt",
        sketch(reference, Pass::Batched(4), Some(&swap), quiet)?,
    );
    Ok(Report {
        rules: rules.iter().map(|r| r.name().to_string()).collect(),
        challenge: rules.iter().map(|r| (r.k(), r.max_misses())).collect(),
        drift: drift_rows,
        forgery: forgery_rows,
    })
}

impl Report {
    /// The report as markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = String::from("### Honest drift (against fp32, one sequence per forward)\n\n| condition | rule | positions | max distance | p99.99 distance | failed positions |\n|---|---|---|---|---|---|\n");
        for row in &self.drift {
            for (rule, d) in self.rules.iter().zip(&row.drift) {
                s += &format!(
                    "| {} | {rule} | {} | {} | {} | {} |\n",
                    row.condition, d.positions, d.max, d.p9999, d.failures
                );
            }
        }
        s += "\n### Forgery acceptance (completion positions)\n\n| substitute | rule (K, misses allowed) | positions | p1 distance | largest tolerance keeping ≤ 2^-40 | per-position pass rate | log2 P(rollout accepted) |\n|---|---|---|---|---|---|---|\n";
        for row in &self.forgery {
            for ((rule, (k, m)), f) in self.rules.iter().zip(&self.challenge).zip(&row.forgery) {
                let acc = if f.log2_rollout_acceptance.is_finite() {
                    format!("{:.1}", f.log2_rollout_acceptance)
                } else {
                    "−∞".into()
                };
                s += &format!(
                    "| {} | {rule} ({k}, {m}) | {} | {} | {} | {:.4} | {acc} |\n",
                    row.substitute,
                    f.positions,
                    f.p01,
                    f.largest_safe_tolerance,
                    f.rate()
                );
            }
        }
        s
    }
}
