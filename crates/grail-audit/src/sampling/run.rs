//! The sampling audit's run: what to run ([`Plan`]), every honest condition, bf16 and each
//! off-policy strategy on a corpus, and the [`Report`] of what was measured.

use tch::{Device, Kind, Tensor};

use grail_infer::model::Model;
use grail_infer::InferError;

use super::corpus::{sample_public, Corpus, Setup};
use super::recompute::{alternatives, recompute, recompute_incremental, Checked};
use super::strategies::{edit_one_token, sample_best_of};
use crate::substitutes::{add_noise, int8_roundtrip, perturbed_weights};

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
    let noisy = build(perturbed_weights(reference, |n, w| {
        add_noise(n, w, 0.01, plan.seed)
    }))?;
    let completions = sample_public(&noisy, prompts, setup, 1.0)?;
    drop(noisy);
    strategies.push(check(
        "weights + Gaussian noise at 1 % of RMS, same noise".into(),
        completions,
    )?);
    progress("another model: int8 weights, same noise");
    let int8 = build(perturbed_weights(reference, |_, w| int8_roundtrip(w)))?;
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
