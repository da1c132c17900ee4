//! The validator's check of a group against the Python reference validator, same run.
//!
//! `cargo xtask bench verify` runs it on SmolLM2-135M-Instruct (CPU, fp32): groups of 8
//! rollouts are mined honestly on the math environment, then the validator's whole
//! forward-pass check (`WindowCheck::check_forward`: one proof pass, sketches at the
//! challenged positions, log-probs, the sampling check of protocol v3, rewards,
//! advantages) is timed next to the reference's per-group work (one Hugging Face forward,
//! the v5 sketch check at the challenged positions, the log-prob check;
//! `python/verify_reference.py`) on the same token sequences. Also the proof pass alone:
//! each rollout run whole with logits for every position (`Model::score`), for the
//! completions only (`Model::score_from`), and the group's shared prompt run once
//! (`Model::score_shared_prompt`, what the validator runs). Tokens/s count every token
//! of every rollout (prompt + completion), as the reference's forward runs them.
//! Environment: `GRAIL_BENCH_MODEL`, `GRAIL_REFERENCE_PYTHON` (optional),
//! `GRAIL_BENCH_OUT` (optional: the table).

use std::time::Instant;

use grail_mine::groups::make_group;
use grail_node::context::ModelContext;
use grail_proto::params::CHALLENGE_K;
use grail_proto::rules::WindowPlan;
use grail_proto::sampling::temperature;
use grail_proto::signing::Keypair;
use grail_proto::{GenerationParams, Group, SketchCoefficients};
use grail_validate::verify::WindowCheck;

const GROUPS: u64 = 2;
const GROUP_SIZE: usize = 8;
const NEW_TOKENS: u32 = 64;
const REPEATS: usize = 3;
const SCRIPT: &str = include_str!("../python/verify_reference.py");

fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The reference's best time over the same groups, if a python is configured.
fn reference(model: &str, groups: &[Group]) -> Option<(f64, u64)> {
    let python = std::env::var("GRAIL_REFERENCE_PYTHON").ok()?;
    let work = tempfile::tempdir().ok()?;
    let (script, request, out) = (
        work.path().join("ref.py"),
        work.path().join("request.json"),
        work.path().join("out.json"),
    );
    std::fs::write(&script, SCRIPT).ok()?;
    let groups: Vec<Vec<serde_json::Value>> = groups
        .iter()
        .map(|g| {
            g.rollouts
                .iter()
                .map(|r| serde_json::json!({"tokens": r.tokens, "prompt_len": r.prompt_len}))
                .collect()
        })
        .collect();
    let body = serde_json::json!({
        "model": model, "groups": groups, "challenge_k": 32, "repeats": REPEATS,
    });
    std::fs::write(&request, body.to_string()).ok()?;
    let status = std::process::Command::new(python)
        .arg(&script)
        .arg(&request)
        .arg(&out)
        .status()
        .ok()?;
    if !status.success() {
        eprintln!("reference run failed");
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok()?;
    Some((v["seconds"].as_f64()?, v["tokens"].as_u64()?))
}

fn main() {
    let Ok(dir) = std::env::var("GRAIL_BENCH_MODEL") else {
        eprintln!("verify bench: GRAIL_BENCH_MODEL is not set; run `cargo xtask bench verify`");
        return;
    };
    let context = ModelContext::load(dir.as_ref(), tch::Device::Cpu).expect("model");
    let env = grail_env::by_name("math", None).expect("math environment");
    let window_randomness = [0x42; 32];
    let plan = WindowPlan {
        window: 7200,
        window_randomness,
        checkpoint: [1; 32],
        environment: env.id(),
        generation: GenerationParams {
            max_new_tokens: NEW_TOKENS,
            temperature_milli: 1000,
        },
        group_size: GROUP_SIZE,
    };
    let coefficients =
        SketchCoefficients::derive(&window_randomness, context.model.config().hidden_size);
    let key = Keypair::from_seed(&[5; 32]);
    eprintln!("mining {GROUPS} groups of {GROUP_SIZE} rollouts …");
    let groups: Vec<Group> = (0..GROUPS)
        .map(|id| make_group(&context, env.as_ref(), &plan, &coefficients, &key, id).expect("mine"))
        .collect();
    let params = grail_validate::verify::window_params(
        &context,
        plan.clone(),
        [0x24; 32],
        grail_proto::Hotkey([0x56; 32]),
        grail_proto::params::GROUPS_CHECKED,
    );
    let check = WindowCheck {
        context: &context,
        env: env.as_ref(),
        params: &params,
    };
    let tokens: usize = groups
        .iter()
        .flat_map(|g| &g.rollouts)
        .map(|r| r.tokens.len())
        .sum();
    let completion: usize = groups
        .iter()
        .flat_map(|g| &g.rollouts)
        .map(|r| r.completion().len())
        .sum();
    let whole = best_of(REPEATS, || {
        for g in &groups {
            let outcome = check.check_forward(g).expect("check");
            assert!(outcome.verdict.accepted, "{:?}", outcome.verdict);
        }
    });
    let t = temperature(plan.generation.temperature_milli);
    let sampling = |g: &grail_proto::Group| {
        let h = &g.header;
        grail_infer::SamplingCheck {
            temperature: t,
            noise: (0..g.rollouts.len() as u32)
                .map(|i| {
                    let prompt = g.rollouts[i as usize].prompt();
                    grail_proto::sampling::RolloutNoise::new(
                        &h.window_randomness,
                        &h.hotkey,
                        prompt,
                        i,
                    )
                })
                .collect(),
        }
    };
    let eos = &context.eos_ids;
    let pass = |from_prompt: bool| {
        best_of(REPEATS, || {
            for g in &groups {
                let refs: Vec<&[u32]> = g.rollouts.iter().map(|r| r.tokens.as_slice()).collect();
                let from: Vec<usize> = g
                    .rollouts
                    .iter()
                    .map(|r| {
                        if from_prompt {
                            r.prompt_len as usize
                        } else {
                            0
                        }
                    })
                    .collect();
                let scored = context
                    .model
                    .score_from(&refs, &from, eos, Some(&sampling(g)));
                assert!(scored.is_ok());
            }
        })
    };
    let (all_positions, completions_only) = (pass(false), pass(true));
    let shared = best_of(REPEATS, || {
        for g in &groups {
            let completions: Vec<&[u32]> = g.rollouts.iter().map(|r| r.completion()).collect();
            let prompt = g.rollouts[0].prompt();
            let scored =
                context
                    .model
                    .score_shared_prompt(prompt, &completions, eos, Some(&sampling(g)));
            assert!(scored.is_ok());
        }
    });
    let reference = reference(&dir, &groups);
    if let Some((_, theirs)) = reference {
        assert_eq!(theirs as usize, tokens, "the reference ran other sequences");
    }
    let rate = |seconds: f64| tokens as f64 / seconds;
    let (cell, ratio) = match reference {
        Some((s, _)) => (format!("{:.0}", rate(s)), format!("{:.2}×", s / whole)),
        None => ("n/a".into(), "n/a".into()),
    };
    let mut table = format!(
        "{GROUPS} groups × {GROUP_SIZE} rollouts, {tokens} tokens ({completion} completion tokens), challenge K = {CHALLENGE_K} (reference: 32); SmolLM2-135M-Instruct, CPU, fp32, {} threads\n\n\
         | measure | grail-rs tokens/s | Python reference tokens/s | ratio |\n|---|---|---|---|\n",
        tch::get_num_threads()
    );
    table += &format!(
        "| whole check of a group: grail-rs proof pass + sketches + log-probs + sampling check + reward + advantages; reference: HF forward + v5 sketches + log-probs | {:.0} | {cell} | {ratio} |\n",
        rate(whole)
    );
    table += &format!(
        "| grail-rs proof pass, logits of every position (`score`) | {:.0} | | |\n",
        rate(all_positions)
    );
    table += &format!(
        "| grail-rs proof pass, logits of the completions only (`score_from`) | {:.0} | | |\n",
        rate(completions_only)
    );
    table += &format!(
        "| grail-rs proof pass, the shared prompt run once and logits of the completions only (`score_shared_prompt`, what the validator runs) | {:.0} | | |\n",
        rate(shared)
    );
    print!("{table}");
    if let Ok(path) = std::env::var("GRAIL_BENCH_OUT") {
        std::fs::write(&path, &table).expect("write GRAIL_BENCH_OUT");
    }
}
