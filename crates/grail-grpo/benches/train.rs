//! Training throughput against a PyTorch reference loop in the same run.
//!
//! `cargo xtask bench grpo` runs it on SmolLM2-135M-Instruct (CPU, fp32): one GRPO step
//! (forward, token-mean clipped loss, backward, clipping, AdamW) on 2 groups × 4 rollouts
//! of a 64-token prompt and 64-token completions, ours next to python/grpo_bench.py
//! (transformers + torch.optim.AdamW) on the same batch. Environment: `GRAIL_BENCH_MODEL`,
//! `GRAIL_REFERENCE_PYTHON` (optional), `GRAIL_BENCH_OUT` (optional markdown file).

use std::time::Instant;

use grail_grpo::{GrpoConfig, RolloutGroup, Trainer, TrainingRollout};
use grail_infer::{no_progress, ModelDir};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::json;
use tch::{Device, Kind, Tensor};

const PROMPT: usize = 64;
const COMPLETION: usize = 64;
const GROUPS: usize = 2;
const ROWS: usize = 4;
const REPEATS: usize = 3;
const SCRIPT: &str = include_str!("../python/grpo_bench.py");

fn main() {
    let Ok(dir) = std::env::var("GRAIL_BENCH_MODEL") else {
        eprintln!("grpo bench: GRAIL_BENCH_MODEL is not set; run `cargo xtask bench grpo`");
        return;
    };
    let files = ModelDir::open(dir.as_ref()).expect("model dir");
    let load = || {
        files
            .load_model(Kind::Float, Device::Cpu, &mut no_progress)
            .expect("model")
    };
    let model = load();
    let vocab = model.config().vocab_size as u32;
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let mut groups = Vec::new();
    for g in 0..GROUPS {
        let prompt: Vec<u32> = (0..PROMPT)
            .map(|_| 3 + rng.next_u32() % (vocab - 3))
            .collect();
        let mut rollouts = Vec::new();
        for i in 0..ROWS {
            let completion: Vec<u32> = (0..COMPLETION)
                .map(|_| 3 + rng.next_u32() % (vocab - 3))
                .collect();
            // On-policy behaviour log-probs: the step's ratios start at 1, as in training.
            let ids: Vec<i64> = prompt
                .iter()
                .chain(&completion)
                .map(|&t| t as i64)
                .collect();
            let input = Tensor::from_slice(&ids).view([1, -1]);
            let logprobs: Vec<f32> = tch::no_grad(|| {
                let h = model.hidden_states(&input, None);
                let lp = model.logits(&h).log_softmax(-1, Kind::Float);
                let targets = input.narrow(1, 1, ids.len() as i64 - 1).unsqueeze(-1);
                let all = lp
                    .narrow(1, 0, ids.len() as i64 - 1)
                    .gather(-1, &targets, false);
                all.view([-1])
                    .narrow(0, PROMPT as i64 - 1, COMPLETION as i64)
                    .try_into()
                    .unwrap()
            });
            rollouts.push(TrainingRollout {
                completion,
                behaviour_logprobs: logprobs,
                reward: ((i + g) % 3) as f64,
            });
        }
        groups.push(RolloutGroup { prompt, rollouts });
    }
    drop(model);
    let config = GrpoConfig {
        learning_rate: 1e-6,
        warmup_steps: 0,
        micro_batch_tokens: GROUPS * ROWS * (PROMPT + COMPLETION),
        max_drift_fraction: 1.0,
        ..GrpoConfig::default()
    };
    let mut trainer = Trainer::new(load(), None, config.clone()).expect("trainer");
    trainer.step(&groups).expect("warm-up step");
    let ours = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            let report = trainer.step(&groups).expect("step");
            assert!(report.skipped.is_none(), "{report:?}");
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let tokens = (GROUPS * ROWS * (PROMPT + COMPLETION)) as f64;

    let reference = std::env::var("GRAIL_REFERENCE_PYTHON")
        .ok()
        .and_then(|python| {
            let work = tempfile::tempdir().ok()?;
            let (script, batch, out) = (
                work.path().join("bench.py"),
                work.path().join("batch.json"),
                work.path().join("out.json"),
            );
            std::fs::write(&script, SCRIPT).ok()?;
            let spec =
                json!({"model": dir, "config": config, "groups": groups, "repeats": REPEATS});
            std::fs::write(&batch, spec.to_string()).ok()?;
            let ok = std::process::Command::new(python)
                .arg(&script)
                .arg(&batch)
                .arg(&out)
                .status()
                .ok()?
                .success();
            if !ok {
                eprintln!("reference run failed");
                return None;
            }
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok()?;
            v["seconds"].as_f64()
        });
    let theirs = reference.map_or("n/a".to_string(), |s| {
        format!("{:.0} ({s:.2} s)", tokens / s)
    });
    let ratio = reference.map_or("n/a".to_string(), |s| format!("{:.2}×", s / ours));
    let table = format!(
        "| measure (SmolLM2-135M-Instruct, CPU, {} threads, fp32) | grail-grpo tokens/s | PyTorch loop tokens/s | ratio |\n|---|---|---|---|\n\
         | GRPO step: {GROUPS} groups × {ROWS} rollouts × ({PROMPT} prompt + {COMPLETION} completion) tokens, forward + backward + AdamW | {:.0} ({ours:.2} s) | {theirs} | {ratio} |\n",
        tch::get_num_threads(),
        tokens / ours,
    );
    print!("{table}");
    if let Ok(path) = std::env::var("GRAIL_BENCH_OUT") {
        std::fs::write(&path, &table).expect("write GRAIL_BENCH_OUT");
    }
}
