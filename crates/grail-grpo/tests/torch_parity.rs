//! Loss and gradient parity with a plain PyTorch implementation of the same formulas
//! (python/grpo_reference.py, on transformers). Opt-in: needs a Python with torch and
//! transformers in `GRAIL_REFERENCE_PYTHON` (`cargo xtask parity` sets it).

use std::process::Command;

use grail_grpo::{GrpoConfig, RolloutGroup, Trainer, TrainingRollout};
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{no_progress, ModelDir, SamplingParams};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;
use tch::{Device, Kind, Tensor};

const SCRIPT: &str = include_str!("../python/grpo_reference.py");

#[test]
#[ignore = "needs GRAIL_REFERENCE_PYTHON with torch and transformers (cargo xtask parity)"]
fn loss_and_gradients_match_pytorch() {
    let python = std::env::var("GRAIL_REFERENCE_PYTHON").expect("GRAIL_REFERENCE_PYTHON");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny");
    write_tiny_model(&TinySpec::default(), &path).unwrap();
    let dir = ModelDir::open(&path).unwrap();
    let load = || {
        dir.load_model(Kind::Float, Device::Cpu, &mut no_progress)
            .unwrap()
    };
    let config = GrpoConfig {
        kl_coef: 0.05,
        entropy_coef: 0.01,
        ..GrpoConfig::default()
    };
    let model = load();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let params = SamplingParams {
        max_new_tokens: 6,
        ..SamplingParams::default()
    };
    let mut groups = Vec::new();
    for (g, text) in ["the cat sat", "a dog ran far"].iter().enumerate() {
        let prompt = dir.tokenizer.encode(text).unwrap();
        let completions = model
            .generate_group(&prompt, 4, &params, &[], &mut rng, &mut no_progress)
            .unwrap();
        groups.push(RolloutGroup {
            prompt,
            rollouts: completions
                .into_iter()
                .enumerate()
                .map(|(i, c)| TrainingRollout {
                    reward: ((i * 7 + g) % 4) as f64,
                    // Off-policy by ±0.4 so that clipping and the dual clip are exercised.
                    behaviour_logprobs: c
                        .logprobs
                        .iter()
                        .enumerate()
                        .map(|(j, l)| l + if (i + j) % 2 == 0 { 0.4 } else { -0.4 })
                        .collect(),
                    completion: c.tokens,
                })
                .collect(),
        });
    }
    let trainer = Trainer::new(load(), Some(load()), config.clone()).unwrap();
    let grads = trainer.accumulate_gradients(&groups).unwrap();
    assert!(
        grads.stats.clipped_tokens > 0.0,
        "the batch exercises clipping"
    );
    let per_param: Vec<Tensor> = trainer.parameters().iter().map(Tensor::grad).collect();
    let named = trainer.model().hf_named(&per_param);
    let wanted = [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
    ];
    let batch = json!({
        "model": path,
        "config": config,
        "groups": groups,
        "gradients": wanted,
    });
    let batch_path = tmp.path().join("batch.json");
    std::fs::write(&batch_path, batch.to_string()).unwrap();
    let script = tmp.path().join("grpo_reference.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .arg(&batch_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ref_loss = reference["loss"].as_f64().unwrap();
    eprintln!("loss: grail-grpo {:.9}, PyTorch {ref_loss:.9}", grads.loss);
    assert!(
        (grads.loss - ref_loss).abs() <= 1e-5,
        "loss {} vs {ref_loss}",
        grads.loss
    );
    for name in wanted {
        let ours: Vec<f32> = named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, g)| g.contiguous().view([-1]).try_into().unwrap())
            .unwrap();
        let theirs: Vec<f64> = reference["grads"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{name}");
        let max_diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        let max_abs = theirs.iter().map(|b| b.abs()).fold(0.0, f64::max);
        eprintln!("{name}: max |Δgrad| = {max_diff:.3e} (max |grad| {max_abs:.3e})");
        assert!(max_diff <= 1e-5, "{name}: max |Δgrad| {max_diff}");
        assert!(max_abs > 0.0, "{name}: gradient is zero");
    }
}
