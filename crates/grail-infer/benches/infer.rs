//! Inference throughput against Hugging Face `transformers` in the same run.
//!
//! `cargo xtask bench infer` runs it on SmolLM2-135M-Instruct (CPU, fp32): prefill
//! tokens/s for one prompt, and decode tokens/s for M = 1, 8, 16 completions of that
//! prompt (a fixed number of new tokens, no early stop), ours next to `generate` of
//! transformers (sampling, top-k/top-p off); then a miner's batched groups: GROUPS prompts
//! of 128, 112, 96, 80 tokens with ROWS completions each in one left-padded batch
//! (`Model::generate_groups`), against transformers at the same total batch, and our
//! groups one after another. Last, the protocol's Gumbel-max sampler alone
//! (`generate::sample` with public noise) on the model's logits widened to 49 152 and
//! 151 936 tokens, per generated token against the decode step of the same run.
//! Environment: `GRAIL_BENCH_MODEL` (model dir),
//! `GRAIL_REFERENCE_PYTHON` (optional: python with torch + transformers),
//! `GRAIL_BENCH_OUT` (optional: file for the markdown table).

use std::time::Instant;

use grail_infer::{no_progress, GroupRequest, Model, ModelDir, SamplingParams};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tch::{Device, Kind, Tensor};

const PROMPT_TOKENS: usize = 128;
const NEW_TOKENS: usize = 64;
const ROWS: [usize; 3] = [1, 8, 16];
/// Groups in the batched-groups measurement, and completions per group.
const GROUPS: (usize, usize) = (4, 8);
const SCRIPT: &str = include_str!("../python/hf_reference.py");

fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Our numbers for one dtype.
struct Ours {
    /// Prefill tokens/s.
    prefill: f64,
    /// Decode tokens/s per entry of ROWS.
    decode: Vec<f64>,
    /// Tokens/s of GROUPS as one batch, and as one group after another.
    groups: (f64, f64),
    /// Sampler seconds per token: (vocabulary, rows, seconds).
    sampler: Vec<(usize, usize, f64)>,
}

/// Seconds per sampled token of `generate::sample` with public noise on the prompt's
/// last-position logits, tiled to `vocab` columns and repeated over `rows` rows.
fn sampler_cost(model: &Model, input: &Tensor, vocab: usize, rows: usize) -> f64 {
    let logits = tch::no_grad(|| {
        let h = model.hidden_states(input, None);
        model.logits(&h.narrow(1, PROMPT_TOKENS as i64 - 1, 1).squeeze_dim(1))
    });
    let own = logits.size()[1];
    let copies = (vocab as i64 + own - 1) / own;
    let parts: Vec<Tensor> = (0..copies).map(|_| logits.shallow_clone()).collect();
    let wide = Tensor::cat(&parts, 1)
        .narrow(1, 0, vocab as i64)
        .expand([rows as i64, vocab as i64], false)
        .contiguous();
    let params = SamplingParams {
        temperature: 1.0,
        ..Default::default()
    };
    let mut noise =
        grail_proto::sampling::RolloutNoise::new(&[3; 32], &grail_proto::Hotkey([4; 32]), &[5], 0);
    best_of(5, || {
        for _ in 0..4 {
            let step: Vec<_> = noise.by_ref().take(rows).collect();
            let picked = grail_infer::generate::sample(&wide, &params, &step).expect("sample");
            assert_eq!(picked.len(), rows);
        }
    }) / (4 * rows) as f64
}

/// Decode tokens/s of the GROUPS measurement: batched, then one group at a time.
fn groups(model: &Model, rng: &mut ChaCha20Rng, params: &SamplingParams) -> (f64, f64) {
    let (count, rows) = GROUPS;
    let vocab = model.config().vocab_size as u32;
    let prompts: Vec<Vec<u32>> = (0..count)
        .map(|i| {
            (0..PROMPT_TOKENS - 16 * i)
                .map(|_| 3 + rng.next_u32() % (vocab - 3))
                .collect()
        })
        .collect();
    // The miner's public noise: one seed stream per completion.
    let streams = |seed: u64| -> Vec<grail_proto::sampling::RolloutNoise> {
        (0..rows as u32)
            .map(|i| {
                let key = grail_proto::Hotkey([seed as u8; 32]);
                grail_proto::sampling::RolloutNoise::new(&[7; 32], &key, &[1, 2, 3], i)
            })
            .collect()
    };
    let tokens = (count * rows * NEW_TOKENS) as f64;
    let mut batched = || {
        let mut requests: Vec<GroupRequest<'_, _>> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| GroupRequest {
                prompt: p,
                noise: streams(i as u64),
            })
            .collect();
        let out = model
            .generate_groups(&mut requests, params, &[], &mut no_progress)
            .expect("generate");
        assert!(out.iter().flatten().all(|c| c.tokens.len() == NEW_TOKENS));
    };
    batched();
    let together = tokens / best_of(2, &mut batched);
    let mut one_by_one = || {
        for (i, p) in prompts.iter().enumerate() {
            let out = model
                .generate_rows(p, &mut streams(i as u64), params, &[], &mut no_progress)
                .expect("generate");
            assert!(out.iter().all(|c| c.tokens.len() == NEW_TOKENS));
        }
    };
    (together, tokens / best_of(2, &mut one_by_one))
}

fn ours(files: &ModelDir, kind: Kind) -> Ours {
    let model = files
        .load_model(kind, Device::Cpu, &mut no_progress)
        .expect("model");
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let vocab = model.config().vocab_size as u32;
    let prompt: Vec<u32> = (0..PROMPT_TOKENS)
        .map(|_| 3 + rng.next_u32() % (vocab - 3))
        .collect();
    let ids: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    let input = Tensor::from_slice(&ids).view([1, -1]);
    let prefill = tch::no_grad(|| {
        let _ = model.hidden_states(&input, None);
        best_of(5, || {
            let mut cache = model.new_cache(1, PROMPT_TOKENS);
            let h = model.hidden_states(&input, Some(&mut cache));
            let _ = model.logits(&h.narrow(1, PROMPT_TOKENS as i64 - 1, 1));
        })
    });
    let params = SamplingParams {
        max_new_tokens: NEW_TOKENS,
        temperature: 1.0,
        ..Default::default()
    };
    let decode = ROWS
        .iter()
        .map(|&rows| {
            let mut run = || {
                let out = model
                    .generate_group(&prompt, rows, &params, &[], &mut rng, &mut no_progress)
                    .expect("generate");
                assert!(out.iter().all(|c| c.tokens.len() == NEW_TOKENS));
            };
            run();
            (rows * NEW_TOKENS) as f64 / best_of(3, run)
        })
        .collect();
    let sampler = if kind == Kind::Float {
        [(49_152, 1), (49_152, 32), (151_936, 1), (151_936, 32)]
            .into_iter()
            .map(|(vocab, rows)| (vocab, rows, sampler_cost(&model, &input, vocab, rows)))
            .collect()
    } else {
        Vec::new()
    };
    Ours {
        prefill: PROMPT_TOKENS as f64 / prefill,
        decode,
        groups: groups(&model, &mut rng, &params),
        sampler,
    }
}

/// The reference's numbers for one dtype, if a python is configured and the run works.
fn reference(dir: &str, dtype: &str) -> Option<serde_json::Value> {
    let python = std::env::var("GRAIL_REFERENCE_PYTHON").ok()?;
    let work = tempfile::tempdir().ok()?;
    let (script, out) = (work.path().join("ref.py"), work.path().join("out.json"));
    std::fs::write(&script, SCRIPT).ok()?;
    let rows: Vec<String> = ROWS.iter().map(usize::to_string).collect();
    let status = std::process::Command::new(python)
        .arg(&script)
        .args([
            "bench",
            dir,
            &PROMPT_TOKENS.to_string(),
            &NEW_TOKENS.to_string(),
            &rows.join(","),
            dtype,
        ])
        .arg(&out)
        .arg(format!("{}x{}", GROUPS.0, GROUPS.1))
        .status()
        .ok()?;
    if !status.success() {
        eprintln!("reference run failed");
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok()
}

fn main() {
    let Ok(dir) = std::env::var("GRAIL_BENCH_MODEL") else {
        eprintln!("infer bench: GRAIL_BENCH_MODEL is not set; run `cargo xtask bench infer`");
        return;
    };
    let files = ModelDir::open(dir.as_ref()).expect("model dir");
    let cell = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    let ratio = |a: f64, b: Option<f64>| b.map_or("n/a".to_string(), |b| format!("{:.2}×", a / b));
    let mut table = format!(
        "| measure (SmolLM2-135M-Instruct, CPU, {} threads) | dtype | grail-infer tokens/s | transformers tokens/s | ratio |\n|---|---|---|---|---|\n",
        tch::get_num_threads()
    );
    let mut sampling = String::new();
    for (kind, dtype) in [(Kind::Float, "f32"), (Kind::BFloat16, "bf16")] {
        let Ours {
            prefill,
            decode,
            groups: (together, one_by_one),
            sampler,
        } = ours(&files, kind);
        for (vocab, rows, seconds) in sampler {
            // The decode step per token of the same run: M = 1, or the 4 × 8 batch.
            let (step, what) = if rows == 1 {
                (1.0 / decode[0], "M = 1".to_string())
            } else {
                (
                    1.0 / together,
                    format!("{} groups × {}", GROUPS.0, GROUPS.1),
                )
            };
            sampling += &format!(
                "| {vocab} | {rows} | {:.1} | {:.0} ({what}) | {:.1} % |\n",
                seconds * 1e6,
                step * 1e6,
                100.0 * seconds / step
            );
        }
        let hf = reference(&dir, dtype);
        let hf_prefill = hf.as_ref().and_then(|r| r["prefill_tokens_per_s"].as_f64());
        table += &format!(
            "| prefill, {PROMPT_TOKENS}-token prompt | {dtype} | {prefill:.0} | {} | {} |\n",
            cell(hf_prefill),
            ratio(prefill, hf_prefill)
        );
        for (rows, tps) in ROWS.iter().zip(&decode) {
            let theirs = hf
                .as_ref()
                .and_then(|r| r["rows"][rows.to_string()].as_f64());
            table += &format!(
                "| generate M = {rows} × {NEW_TOKENS} new tokens (prompt prefill included) | {dtype} | {tps:.0} | {} | {} |\n",
                cell(theirs),
                ratio(*tps, theirs)
            );
        }
        let (count, rows) = GROUPS;
        let theirs = hf.as_ref().and_then(|r| r["groups"].as_f64());
        table += &format!(
            "| generate {count} groups × {rows} × {NEW_TOKENS} new tokens, prompts 128–80 tokens, one padded batch | {dtype} | {together:.0} | {} | {} |\n",
            cell(theirs),
            ratio(together, theirs)
        );
        table += &format!(
            "| the same {count} groups one after another (ours) | {dtype} | {one_by_one:.0} | {} | {} |\n",
            cell(theirs),
            ratio(one_by_one, theirs)
        );
    }
    table += &format!(
        "\nGumbel-max sampling with public noise (`generate::sample`, f64 scores, rows split over the cores) per generated token, against the SmolLM2 f32 decode step per token of this run (logits tiled to the vocabulary):\n\n| vocabulary | rows | sampler µs/token | decode µs/token | sampler share |\n|---|---|---|---|---|\n{sampling}"
    );
    print!("{table}");
    if let Ok(path) = std::env::var("GRAIL_BENCH_OUT") {
        std::fs::write(&path, &table).expect("write GRAIL_BENCH_OUT");
    }
}
