//! A miner on a CUDA device, a validator on the CPU: honest work must pass.
//!
//! Needs a CUDA device and a CUDA-linked build (`scripts/gpu-check.sh` builds one and runs
//! these with `--ignored`); elsewhere they are ignored. The model is the tiny seeded one,
//! or every model folder listed in `GRAIL_CUDA_MODELS` (comma-separated, e.g. SmolLM2).

use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{no_progress, ModelDir, SamplingCheck, SamplingParams};
use grail_proto::sampling::{check_sampling, RolloutNoise};
use grail_proto::sketch::{modular_distance, tolerance};
use grail_proto::SketchCoefficients;
use tch::{Device, Kind};

/// Model folders to check: `GRAIL_CUDA_MODELS`, or the tiny model written to `scratch`.
fn models(scratch: &std::path::Path) -> Vec<std::path::PathBuf> {
    match std::env::var("GRAIL_CUDA_MODELS") {
        Ok(list) => list.split(',').map(std::path::PathBuf::from).collect(),
        Err(_) => {
            let path = scratch.join("tiny");
            write_tiny_model(&TinySpec::default(), &path).unwrap();
            vec![path]
        }
    }
}

#[test]
#[ignore = "needs a CUDA device; run by scripts/gpu-check.sh"]
fn cpu_validator_accepts_a_cuda_miner() {
    assert!(
        tch::Cuda::is_available(),
        "no CUDA device: this build is not CUDA-linked or the machine has no GPU"
    );
    let scratch = tempfile::tempdir().unwrap();
    for dir in models(scratch.path()) {
        let files = ModelDir::open(&dir).unwrap();
        let load = |device| {
            files
                .load_model(Kind::Float, device, &mut no_progress)
                .unwrap()
        };
        let (gpu, cpu) = (load(Device::Cuda(0)), load(Device::Cpu));
        let prompt = files
            .tokenizer
            .encode("<|im_start|>user\nWhat is 17 + 25? Think step by step.<|im_end|>\n<|im_start|>assistant\n")
            .unwrap();
        let uniforms =
            |i: u32| RolloutNoise::new(&[7; 32], &grail_proto::Hotkey([2; 32]), &prompt, i);
        let params = SamplingParams {
            max_new_tokens: 64,
            temperature: 1.0,
            ..Default::default()
        };
        let mut rows: Vec<RolloutNoise> = (0..8).map(uniforms).collect();
        let completions = gpu
            .generate_rows(
                &prompt,
                &mut rows,
                &params,
                &files.eos_ids,
                &mut no_progress,
            )
            .unwrap();
        let hidden = cpu.config().hidden_size;
        let coefficients = SketchCoefficients::derive(&[5; 32], hidden);
        let (mut worst_sketch, mut worst_logprob, mut misses) = (0u32, 0f32, 0usize);
        for (i, c) in completions.iter().enumerate() {
            let full: Vec<u32> = prompt.iter().chain(&c.tokens).copied().collect();
            let miner = gpu.score(&[&full], &[]).unwrap().remove(0);
            let check = SamplingCheck {
                temperature: 1.0,
                noise: vec![uniforms(i as u32)],
            };
            let validator = cpu
                .score_from(&[&full], &[prompt.len()], &[], Some(&check))
                .unwrap()
                .remove(0);
            for p in 0..full.len() {
                let (a, b) = (
                    coefficients.sketch(miner.hidden(p).unwrap()),
                    coefficients.sketch(validator.hidden(p).unwrap()),
                );
                for k in 0..a.0.len() {
                    worst_sketch = worst_sketch.max(modular_distance(a.0[k], b.0[k]));
                }
            }
            let p = prompt.len();
            for (x, y) in miner.logprobs[p..].iter().zip(&validator.logprobs[p..]) {
                worst_logprob = worst_logprob.max((x - y).abs());
            }
            misses += check_sampling(&validator.gaps[prompt.len()..]).misses.len();
        }
        println!(
            "{}: CPU vs CUDA max sketch distance {worst_sketch} (tolerance {}), max |Δ log-prob| {worst_logprob:.2e}, sampling misses {misses}",
            dir.display(),
            tolerance(0)
        );
        assert!(worst_sketch < tolerance(0), "sketch drift {worst_sketch}");
        assert!(
            worst_logprob < grail_proto::params::LOGPROB_TOLERANCE,
            "log-prob drift {worst_logprob}"
        );
        assert_eq!(
            misses, 0,
            "the CPU validator rejects tokens the CUDA miner sampled"
        );
    }
}
