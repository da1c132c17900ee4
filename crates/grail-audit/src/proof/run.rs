//! The proof audit's run: every honest condition and substitute on a corpus, and the
//! [`Report`] it fills.

use tch::{Kind, Tensor};

use grail_infer::model::Model;
use grail_infer::{InferError, Progress};

use super::corpus::Corpus;
use super::rules::SketchRule;
use super::sketch::{sketch_corpus, Pass, Sketches};
use super::stats::{drift, forgery, Drift, Forgery};
use crate::substitutes::{add_noise, int8_roundtrip, perturbed_weights, without_last_layer};

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
