//! GRPO on the tiny model, CPU: the policy learns a toy reward, zero-σ groups carry no
//! gradient, health gates hold the optimizer back, and export + saved state resume exactly.

use std::path::Path;

use grail_grpo::checkpoint::export_model;
use grail_grpo::config::AdvantageMode;
use grail_grpo::{GrpoConfig, GrpoError, RolloutGroup, Trainer, TrainingRollout};
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{no_progress, Model, ModelDir, SamplingParams};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tch::{Device, Kind, Tensor};

fn tiny(dir: &Path) -> ModelDir {
    write_tiny_model(&TinySpec::default(), dir).unwrap();
    ModelDir::open(dir).unwrap()
}

fn load(dir: &ModelDir) -> Model {
    dir.load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap()
}

/// Toy reward: the share of completion tokens from the lower half of the vocabulary.
fn reward(tokens: &[u32], vocab: usize) -> f64 {
    tokens.iter().filter(|&&t| (t as usize) < vocab / 2).count() as f64 / tokens.len() as f64
}

/// On-policy groups: `prompts` prompts × `m` samples from the current model.
fn rollouts(
    model: &Model,
    prompts: &[Vec<u32>],
    m: usize,
    rng: &mut ChaCha20Rng,
) -> Vec<RolloutGroup> {
    let vocab = model.config().vocab_size;
    let params = SamplingParams {
        max_new_tokens: 8,
        ..SamplingParams::default()
    };
    prompts
        .iter()
        .map(|prompt| RolloutGroup {
            prompt: prompt.clone(),
            rollouts: model
                .generate_group(prompt, m, &params, &[], rng, &mut no_progress)
                .unwrap()
                .into_iter()
                .map(|c| TrainingRollout {
                    reward: reward(&c.tokens, vocab),
                    behaviour_logprobs: c.logprobs,
                    completion: c.tokens,
                })
                .collect(),
        })
        .collect()
}

fn prompts(dir: &ModelDir) -> Vec<Vec<u32>> {
    [
        "the cat sat",
        "a dog ran far",
        "one two",
        "grail proves rollouts",
    ]
    .iter()
    .map(|p| dir.tokenizer.encode(p).unwrap())
    .collect()
}

#[test]
fn mean_reward_rises_on_a_toy_task() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny(&tmp.path().join("tiny"));
    let config = GrpoConfig {
        learning_rate: 1e-3,
        warmup_steps: 2,
        total_steps: 30,
        ..GrpoConfig::default()
    };
    let mut trainer = Trainer::new(load(&dir), None, config).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let prompts = prompts(&dir);
    let mut curve = Vec::new();
    for _ in 0..30 {
        let groups = rollouts(trainer.model(), &prompts, 8, &mut rng);
        let report = trainer.step(&groups).unwrap();
        match &report.skipped {
            // Every group saturated (all rewards 1): nothing left to learn.
            Some(reason) => assert!(reason.contains("no learning signal"), "{report:?}"),
            None => assert!(report.grad_norm.is_finite() && report.tokens > 0),
        }
        curve.push(report.mean_reward);
    }
    let first = curve[..5].iter().sum::<f64>() / 5.0;
    let last = curve[25..].iter().sum::<f64>() / 5.0;
    eprintln!("mean reward: first 5 steps {first:.3}, last 5 steps {last:.3}; {curve:.2?}");
    assert!(
        last > first + 0.15,
        "reward did not rise: {first:.3} → {last:.3}"
    );
}

fn grads(trainer: &Trainer) -> Vec<Tensor> {
    trainer
        .parameters()
        .iter()
        .map(|p| {
            let g = p.grad();
            if g.defined() {
                g.copy()
            } else {
                p.zeros_like()
            }
        })
        .collect()
}

fn zero(trainer: &Trainer) {
    for p in trainer.parameters() {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

fn fixed_groups(dir: &ModelDir, model: &Model) -> Vec<RolloutGroup> {
    rollouts(
        model,
        &prompts(dir)[..2],
        4,
        &mut ChaCha20Rng::seed_from_u64(1),
    )
}

#[test]
fn zero_sigma_groups_contribute_no_gradient() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny(&tmp.path().join("tiny"));
    let mut trainer = Trainer::new(load(&dir), None, GrpoConfig::default()).unwrap();
    let mut signal = fixed_groups(&dir, trainer.model());
    signal.truncate(1);
    let mut flat = fixed_groups(&dir, trainer.model())[1].clone();
    for r in &mut flat.rollouts {
        r.reward = 0.5;
    }
    for mode in [
        AdvantageMode::Grpo,
        AdvantageMode::DrGrpo,
        AdvantageMode::Rank,
    ] {
        let t = &mut trainer;
        zero(t);
        let _ = t.accumulate_gradients(&signal).unwrap();
        let alone = grads(t);
        zero(t);
        let mut mixed = signal.clone();
        mixed.push(flat.clone());
        let _ = t.accumulate_gradients(&mixed).unwrap();
        let with_flat = grads(t);
        zero(t);
        assert!(
            alone.iter().any(|g| g.abs().max().double_value(&[]) > 0.0),
            "{mode:?}: signal has gradient"
        );
        for (a, b) in alone.iter().zip(&with_flat) {
            assert!(a.equal(b), "{mode:?}: the flat group changed the gradient");
        }
    }
    // A batch of only flat groups is skipped and leaves the weights alone.
    let before: Vec<Tensor> = trainer
        .parameters()
        .iter()
        .map(|p| p.detach().copy())
        .collect();
    let report = trainer.step(&[flat]).unwrap();
    assert!(
        report
            .skipped
            .as_deref()
            .unwrap()
            .contains("no learning signal"),
        "{report:?}"
    );
    assert_eq!(report.updates, 0);
    for (b, p) in before.iter().zip(trainer.parameters()) {
        assert!(b.equal(&p.detach()));
    }
}

#[test]
fn health_gates_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny(&tmp.path().join("tiny"));
    let mut trainer = Trainer::new(load(&dir), None, GrpoConfig::default()).unwrap();
    let mut groups = fixed_groups(&dir, trainer.model());
    // Behaviour log-probs from some other policy: ratios far outside the band.
    let mut drifted = groups.clone();
    for g in &mut drifted {
        for r in &mut g.rollouts {
            for l in &mut r.behaviour_logprobs {
                *l -= 3.0;
            }
        }
    }
    let before: Vec<Tensor> = trainer
        .parameters()
        .iter()
        .map(|p| p.detach().copy())
        .collect();
    let report = trainer.step(&drifted).unwrap();
    assert!(
        report.skipped.as_deref().unwrap().contains("clip band"),
        "{report:?}"
    );
    assert!(report.drift_fraction > 0.9);
    for (b, p) in before.iter().zip(trainer.parameters()) {
        assert!(
            b.equal(&p.detach()),
            "a skipped step must not move the weights"
        );
    }
    // The honest batch trains.
    let report = trainer.step(&groups).unwrap();
    assert!(
        report.skipped.is_none() && report.updates == 1,
        "{report:?}"
    );
    assert!(
        report.drift_fraction < 0.01,
        "on-policy ratios are 1: {report:?}"
    );

    groups[0].rollouts[0].reward = f64::NAN;
    assert!(matches!(
        trainer.step(&groups),
        Err(GrpoError::NonFiniteReward {
            group: 0,
            rollout: 0,
            ..
        })
    ));
    groups[0].rollouts[0].reward = 1.0;
    groups[0].rollouts[1].behaviour_logprobs.pop();
    let tokens = groups[0].rollouts[1].completion.len();
    match trainer.step(&groups) {
        Err(GrpoError::LogprobCount {
            group: 0,
            rollout: 1,
            tokens: t,
            logprobs,
        }) => assert_eq!((t, logprobs), (tokens, tokens - 1)),
        other => panic!("{other:?}"),
    }
    let vocab = trainer.model().config().vocab_size as u32;
    groups[0].rollouts[1].behaviour_logprobs.push(-1.0);
    groups[0].rollouts[1].completion[0] = vocab + 5;
    assert!(
        trainer.step(&groups).is_err(),
        "out-of-vocabulary ids are refused, not run"
    );
}

#[test]
fn export_and_resume_continue_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny(&tmp.path().join("tiny"));
    let config = GrpoConfig {
        learning_rate: 1e-3,
        warmup_steps: 1,
        kl_coef: 0.01,
        entropy_coef: 0.001,
        ..GrpoConfig::default()
    };
    let batches: Vec<Vec<RolloutGroup>> = {
        let model = load(&dir);
        (0..3)
            .map(|i| {
                rollouts(
                    &model,
                    &prompts(&dir)[..2],
                    4,
                    // Seeds whose sampled groups all carry a gradient (a flat batch skips the
                    // optimizer step, and the test counts steps).
                    &mut ChaCha20Rng::seed_from_u64(i + 100),
                )
            })
            .collect()
    };
    let mut straight = Trainer::new(load(&dir), Some(load(&dir)), config.clone()).unwrap();
    for b in &batches {
        straight.step(b).unwrap();
    }

    let mut first = Trainer::new(load(&dir), Some(load(&dir)), config).unwrap();
    for b in &batches[..2] {
        first.step(b).unwrap();
    }
    let ckpt = tmp.path().join("ckpt-2");
    let state = tmp.path().join("state-2");
    export_model(first.model(), &dir, &ckpt).unwrap();
    first.save_state(&state).unwrap();
    // Saving again replaces both folders in place; no staging folders are left behind.
    export_model(first.model(), &dir, &ckpt).unwrap();
    first.save_state(&state).unwrap();
    let hidden: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // The export is a model directory grail-infer (and transformers) loads.
    let exported = ModelDir::open(&ckpt).unwrap();
    let reloaded = load(&exported);
    let ids = Tensor::from_slice(&[5i64, 9, 20, 7]).view([1, 4]);
    let a = first
        .model()
        .logits(&first.model().hidden_states(&ids, None))
        .detach();
    let b = reloaded.logits(&reloaded.hidden_states(&ids, None));
    assert!(a.equal(&b), "exported weights differ");

    let mut resumed = Trainer::resume(reloaded, Some(load(&dir)), &state).unwrap();
    assert_eq!(resumed.progress(), (2, 2));
    resumed.step(&batches[2]).unwrap();
    for (x, y) in straight.parameters().iter().zip(resumed.parameters()) {
        assert!(x.detach().equal(&y.detach()), "resumed training diverged");
    }
    assert!(Trainer::resume(load(&dir), None, &tmp.path().join("missing")).is_err());
    // The saved run had a KL term; resuming with it switched off needs no reference, and
    // the new coefficients replace the saved ones while the step counts stay.
    assert!(matches!(
        Trainer::resume(load(&exported), None, &state),
        Err(GrpoError::NoReference { .. })
    ));
    let edited = GrpoConfig {
        kl_coef: 0.0,
        learning_rate: 5e-4,
        ..GrpoConfig::default()
    };
    let resumed =
        Trainer::resume_with(load(&exported), None, &state, Some(edited.clone())).unwrap();
    assert_eq!((resumed.config(), resumed.progress()), (&edited, (2, 2)));
}
