//! The tiny seeded model end to end: load, prefill vs KV-cache decode, batching and
//! padding, sampling, log-probs, proofs, and error paths.

use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{
    no_progress, Architecture, Model, ModelDir, ProofModel, SamplingCheck, SamplingParams,
};
use grail_proto::params::CHALLENGE_K;
use grail_proto::sampling::RolloutNoise;
use grail_proto::{
    challenge_positions, verify_proof, PositionSketch, SketchCoefficients, SketchDigest,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tch::{Device, Kind, Tensor};

fn tiny(spec: &TinySpec) -> (tempfile::TempDir, ModelDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny");
    write_tiny_model(spec, &path).unwrap();
    let files = ModelDir::open(&path).unwrap();
    let model = files
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap();
    (dir, files, model)
}

fn prompt(files: &ModelDir) -> Vec<u32> {
    files
        .tokenizer
        .encode(
            "<|im_start|>user\nWhat is the sum of 12 and 30?<|im_end|>\n<|im_start|>assistant\n",
        )
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tiny_model_loads_with_its_tokenizer_and_template() {
    let (_dir, files, model) = tiny(&TinySpec::default());
    assert_eq!(files.eos_ids, vec![2]);
    assert!(files.chat_template().unwrap().contains("<|im_start|>"));
    let ids = prompt(&files);
    assert_eq!(ids[0], 1, "<|im_start|> is one special token");
    assert!(ids.contains(&2));
    let text = files.tokenizer.decode(&ids, false).unwrap();
    assert!(
        text.starts_with("<|im_start|>user\nWhat is the sum"),
        "{text}"
    );
    assert_eq!(model.config().vocab_size, files.tokenizer.vocab_size());
}

#[test]
fn kv_cache_decode_matches_one_prefill() {
    let (_dir, files, model) = tiny(&TinySpec::default());
    let ids = prompt(&files);
    let t: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    tch::no_grad(|| {
        let full = model.hidden_states(&Tensor::from_slice(&t).view([1, -1]), None);
        // Prefill half, then one token at a time, then a chunk of three with a mask.
        let mut cache = model.new_cache(1, t.len());
        let half = t.len() / 2;
        let mut parts = vec![model.hidden_states(
            &Tensor::from_slice(&t[..half]).view([1, -1]),
            Some(&mut cache),
        )];
        let mut at = half;
        while at < t.len() {
            let n = if at + 3 < t.len() && at.is_multiple_of(2) {
                3
            } else {
                1
            };
            parts.push(model.hidden_states(
                &Tensor::from_slice(&t[at..at + n]).view([1, -1]),
                Some(&mut cache),
            ));
            at += n;
        }
        assert_eq!(cache.len(), t.len());
        let stitched = Tensor::cat(&parts, 1);
        let diff = f64::try_from((full - stitched).abs().max()).unwrap();
        assert!(diff < 1e-4, "incremental decode drifts by {diff}");
    });
}

#[test]
fn batching_and_padding_do_not_change_hidden_states_beyond_tolerance() {
    let (_dir, files, model) = tiny(&TinySpec::default());
    let base = prompt(&files);
    let seqs: Vec<Vec<u32>> = (0..8)
        .map(|i| base[..base.len() - i * 2].to_vec())
        .collect();
    let alone: Vec<_> = seqs
        .iter()
        .map(|s| model.score(&[s], &[2]).unwrap().remove(0))
        .collect();
    let coefficients = SketchCoefficients::derive(&[7u8; 32], model.config().hidden_size);
    for batch in [1usize, 4, 8] {
        let refs: Vec<&[u32]> = seqs.iter().take(batch).map(Vec::as_slice).collect();
        let scored = model.score(&refs, &[2]).unwrap();
        let mut worst_hidden = 0f32;
        let mut worst_sketch = 0u32;
        for (s, a) in scored.iter().zip(&alone) {
            for p in 0..s.tokens.len() {
                let (x, y) = (s.hidden(p).unwrap(), a.hidden(p).unwrap());
                worst_hidden = worst_hidden.max(max_abs_diff(x, y));
                let (sx, sy): (PositionSketch, PositionSketch) =
                    (coefficients.sketch(x), coefficients.sketch(y));
                for k in 0..sx.0.len() {
                    worst_sketch =
                        worst_sketch.max(grail_proto::sketch::modular_distance(sx.0[k], sy.0[k]));
                }
            }
            assert!(max_abs_diff(&s.logprobs, &a.logprobs) < 1e-4);
        }
        println!(
            "batch {batch}: max |Δhidden| {worst_hidden:.2e}, max sketch distance {worst_sketch}"
        );
        assert!(
            worst_hidden < 1e-4,
            "batch {batch}: hidden drift {worst_hidden}"
        );
        assert!(
            worst_sketch < grail_proto::sketch::tolerance(0) / 16,
            "batch {batch}: sketch drift {worst_sketch}"
        );
    }
}

#[test]
fn scoring_from_a_position_gives_the_same_values_there_and_nothing_before() {
    let (_dir, files, model) = tiny(&TinySpec::default());
    let base = prompt(&files);
    let seqs: Vec<Vec<u32>> = (0..3)
        .map(|i| base[..base.len() - i * 3].to_vec())
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let from = [5usize, 1, seqs[2].len()];
    // Noise position 0 is the first scored token: the partial pass skips `from` positions.
    let noise = |i: usize, skip: usize| {
        let mut n = RolloutNoise::new(&[5; 32], &grail_proto::Hotkey([6; 32]), &seqs[i], 0);
        n.by_ref().take(skip).for_each(drop);
        n
    };
    let check = |skip: &dyn Fn(usize) -> usize| SamplingCheck {
        temperature: 0.7,
        noise: (0..3).map(|i| noise(i, skip(i))).collect(),
    };
    let full = model
        .score_from(&refs, &[0; 3], &[2], Some(&check(&|_| 0)))
        .unwrap();
    let part = model
        .score_from(&refs, &from, &[2], Some(&check(&|i| from[i])))
        .unwrap();
    for ((f, p), &start) in full.iter().zip(&part).zip(&from) {
        let n = f.tokens.len();
        for t in 0..n {
            assert_eq!(
                f.hidden(t),
                p.hidden(t),
                "hidden states cover every position"
            );
        }
        assert!(max_abs_diff(&f.logprobs[start..], &p.logprobs[start..]) < 1e-5);
        for t in start..n {
            assert!((f.gaps[t] - p.gaps[t]).abs() < 1e-4, "gap at {t}");
        }
        assert!(max_abs_diff(&f.eos_probs[start - 1..], &p.eos_probs[start - 1..]) < 1e-6);
        // Before `from`: nothing computed.
        assert!(p.logprobs[..start].iter().all(|&x| x == 0.0));
        assert!(p.gaps[..start].iter().all(|g| g.is_nan()));
        assert!(p.eos_probs[..start - 1].iter().all(|&x| x == 0.0));
        // The full pass did compute them (the test can fail).
        assert!(f.logprobs[1..start].iter().all(|&x| x < 0.0));
        assert!(f.gaps[1..start].iter().all(|g| !g.is_nan()));
    }
    assert!(model.score_from(&refs, &[0], &[2], None).is_err());
}

#[test]
fn a_shared_prompt_pass_matches_scoring_each_sequence() {
    let (_dir, files, model) = tiny(&TinySpec::default());
    let prompt = prompt(&files);
    let completions: Vec<Vec<u32>> = vec![vec![40, 41, 42, 2], vec![], vec![7; 9], vec![99]];
    let refs: Vec<&[u32]> = completions.iter().map(Vec::as_slice).collect();
    let noise =
        |i: usize| RolloutNoise::new(&[8; 32], &grail_proto::Hotkey([1; 32]), &prompt, i as u32);
    let check = SamplingCheck {
        temperature: 0.9,
        noise: (0..refs.len()).map(noise).collect(),
    };
    let shared = model
        .score_shared_prompt(&prompt, &refs, &[2], Some(&check))
        .unwrap();
    let p = prompt.len();
    let coefficients = SketchCoefficients::derive(&[3u8; 32], model.config().hidden_size);
    for (i, (c, s)) in completions.iter().zip(&shared).enumerate() {
        let full = [prompt.as_slice(), c].concat();
        let one = SamplingCheck {
            temperature: 0.9,
            noise: vec![noise(i)],
        };
        let alone = model
            .score_from(&[&full], &[p], &[2], Some(&one))
            .unwrap()
            .remove(0);
        assert_eq!(s.tokens, full);
        for t in 0..full.len() {
            let (x, y) = (s.hidden(t).unwrap(), alone.hidden(t).unwrap());
            assert!(max_abs_diff(x, y) < 1e-4, "position {t}");
            let (sx, sy) = (coefficients.sketch(x), coefficients.sketch(y));
            for k in 0..sx.0.len() {
                let d = grail_proto::sketch::modular_distance(sx.0[k], sy.0[k]);
                assert!(
                    d < grail_proto::sketch::tolerance(0) / 16,
                    "sketch drift {d}"
                );
            }
        }
        assert!(max_abs_diff(&s.logprobs, &alone.logprobs) < 1e-4);
        assert_eq!(s.gaps.len(), full.len());
        for (a, b) in s.gaps[p..].iter().zip(&alone.gaps[p..]) {
            assert!((a - b).abs() < 1e-4, "gaps {a} and {b}");
        }
        assert!(s.logprobs[..p].iter().all(|&x| x == 0.0));
        assert!(s.logprobs[p..].iter().all(|&x| x < 0.0));
    }
    // Another prompt gives other hidden states (the comparison above can fail).
    let other = model
        .score_shared_prompt(&prompt[1..], &refs[..1], &[2], None)
        .unwrap();
    assert!(
        max_abs_diff(
            other[0].hidden(p - 2).unwrap(),
            shared[0].hidden(p - 1).unwrap()
        ) > 1e-3
    );
    assert!(model.score_shared_prompt(&[], &refs, &[2], None).is_err());
}

#[test]
fn public_noise_sampling_passes_the_check_and_another_temperature_does_not() {
    use grail_proto::sampling::{check_sampling, sample_token};
    let (_dir, files, model) = tiny(&TinySpec::default());
    let ids = prompt(&files);
    let uniforms = |i: u32| RolloutNoise::new(&[9; 32], &grail_proto::Hotkey([4; 32]), &ids, i);
    let generate = |temperature: f64| {
        let params = SamplingParams {
            max_new_tokens: 32,
            temperature,
            ..Default::default()
        };
        let mut rows: Vec<RolloutNoise> = (0..6).map(uniforms).collect();
        model
            .generate_rows(&ids, &mut rows, &params, &files.eos_ids, &mut no_progress)
            .unwrap()
    };
    let check = |completions: &[grail_infer::Completion]| -> Vec<usize> {
        completions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let full: Vec<u32> = ids.iter().chain(&c.tokens).copied().collect();
                let check = SamplingCheck {
                    temperature: 1.0,
                    noise: vec![uniforms(i as u32)],
                };
                let scored = model
                    .score_from(&[&full], &[ids.len()], &[], Some(&check))
                    .unwrap()
                    .remove(0);
                check_sampling(&scored.gaps[ids.len()..]).misses.len()
            })
            .collect()
    };
    let honest = generate(1.0);
    assert_eq!(
        check(&honest),
        vec![0; 6],
        "honest rollouts pass with no miss"
    );
    // The first token is the reference sampler's pick on the prompt's logits.
    let ids_t = Tensor::from_slice(&ids.iter().map(|&t| t as i64).collect::<Vec<_>>());
    let logits = model.logits(&model.hidden_states(&ids_t.view([1, -1]), None));
    let last = Vec::<f32>::try_from(logits.get(0).get(ids.len() as i64 - 1)).unwrap();
    for (i, c) in honest.iter().enumerate() {
        let u = uniforms(i as u32).next().unwrap();
        assert_eq!(
            sample_token(&last, 1.0, u).unwrap(),
            c.tokens[0],
            "rollout {i}"
        );
    }
    assert_eq!(honest, generate(1.0), "the uniforms fix every rollout");
    let cold = generate(0.5);
    let caught: usize = check(&cold)
        .iter()
        .zip(cold.iter().zip(&honest))
        .filter(|(misses, (c, h))| c.tokens != h.tokens && **misses > 0)
        .count();
    let differing = cold
        .iter()
        .zip(&honest)
        .filter(|(c, h)| c.tokens != h.tokens)
        .count();
    assert!(differing > 0, "temperature 0.5 changes some rollouts");
    assert_eq!(caught, differing, "every changed rollout has a miss");
}

/// Groups of different prompt lengths and sizes sampled as one left-padded batch give
/// each group what sampling it alone gives, and pass the sampling check.
#[test]
fn groups_batched_with_padding_equal_groups_sampled_alone() {
    use grail_infer::GroupRequest;
    use grail_proto::sampling::check_sampling;
    let (_dir, files, model) = tiny(&TinySpec::default());
    let base = prompt(&files);
    let prompts: Vec<Vec<u32>> = vec![
        base.clone(),
        base[..base.len() - 7].to_vec(),
        base.iter().chain(&base[3..]).copied().collect(),
        base[..4].to_vec(),
    ];
    let sizes = [3usize, 1, 4, 0];
    let streams = |p: usize| -> Vec<RolloutNoise> {
        (0..sizes[p] as u32)
            .map(|i| {
                RolloutNoise::new(
                    &[5; 32],
                    &grail_proto::Hotkey([p as u8; 32]),
                    &prompts[p],
                    i,
                )
            })
            .collect()
    };
    for penalty in [1.0, 1.3] {
        let params = SamplingParams {
            max_new_tokens: 24,
            temperature: 0.9,
            repetition_penalty: penalty,
            ..Default::default()
        };
        let mut requests: Vec<GroupRequest<'_, RolloutNoise>> = (0..prompts.len())
            .map(|p| GroupRequest {
                prompt: &prompts[p],
                noise: streams(p),
            })
            .collect();
        let batched = model
            .generate_groups(&mut requests, &params, &files.eos_ids, &mut no_progress)
            .unwrap();
        assert_eq!(batched.iter().map(Vec::len).collect::<Vec<_>>(), sizes);
        for (p, group) in batched.iter().enumerate() {
            let alone = model
                .generate_rows(
                    &prompts[p],
                    &mut streams(p),
                    &params,
                    &files.eos_ids,
                    &mut no_progress,
                )
                .unwrap();
            for (b, a) in group.iter().zip(&alone) {
                assert_eq!(b.tokens, a.tokens, "group {p}, penalty {penalty}");
                assert!(max_abs_diff(&b.logprobs, &a.logprobs) < 1e-4, "group {p}");
            }
            if penalty != 1.0 {
                continue;
            }
            for (i, c) in group.iter().enumerate() {
                let full: Vec<u32> = prompts[p].iter().chain(&c.tokens).copied().collect();
                let check = SamplingCheck {
                    temperature: 0.9,
                    noise: vec![streams(p)[i].clone()],
                };
                let scored = model
                    .score_from(&[&full], &[prompts[p].len()], &[], Some(&check))
                    .unwrap()
                    .remove(0);
                let misses = check_sampling(&scored.gaps[prompts[p].len()..]).misses;
                assert!(misses.is_empty(), "group {p} row {i}: {misses:?}");
            }
        }
    }
}

#[test]
fn a_cancelled_batch_stops_at_the_next_step() {
    use grail_infer::{GroupRequest, InferError};
    use std::cell::Cell;
    let (_dir, files, model) = tiny(&TinySpec::default());
    let base = prompt(&files);
    let params = SamplingParams {
        max_new_tokens: 24,
        temperature: 0.9,
        ..Default::default()
    };
    let request = || {
        vec![GroupRequest {
            prompt: base.as_slice(),
            noise: vec![std::iter::repeat(grail_proto::sampling::PositionNoise(5)); 2],
        }]
    };
    // Asked before every step: true at the third question stops the batch there.
    let asked = Cell::new(0);
    let cancel = || {
        asked.set(asked.get() + 1);
        asked.get() >= 3
    };
    let err = model
        .generate_groups_until(
            &mut request(),
            &params,
            &files.eos_ids,
            &mut no_progress,
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(err, InferError::Cancelled), "{err}");
    assert_eq!(asked.get(), 3);
    // Never cancelled: what generate_groups gives.
    let whole = model
        .generate_groups_until(
            &mut request(),
            &params,
            &files.eos_ids,
            &mut no_progress,
            &|| false,
        )
        .unwrap();
    let plain = model
        .generate_groups(&mut request(), &params, &files.eos_ids, &mut no_progress)
        .unwrap();
    assert_eq!(whole[0][0].tokens, plain[0][0].tokens);
    assert!(!whole[0][0].tokens.is_empty());
}

#[test]
fn sampling_is_reproducible_and_logprobs_match_the_proof_pass() {
    let (_dir, files, model) = tiny(&TinySpec::default());
    let ids = prompt(&files);
    let params = SamplingParams {
        max_new_tokens: 24,
        temperature: 1.0,
        top_k: Some(50),
        top_p: 0.95,
        ..Default::default()
    };
    let run = |seed: u64| {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        model
            .generate_group(&ids, 4, &params, &files.eos_ids, &mut rng, &mut no_progress)
            .unwrap()
    };
    let a = run(1);
    assert_eq!(a, run(1), "same seed, same completions");
    assert_ne!(a, run(2), "another seed samples differently");
    assert_eq!(a.len(), 4);
    for c in &a {
        assert!(!c.tokens.is_empty() && c.tokens.len() <= 24);
        assert_eq!(
            c.stopped_on_eos,
            files.eos_ids.contains(c.tokens.last().unwrap())
        );
        assert!(c.stopped_on_eos || c.tokens.len() == 24);
        assert_eq!(
            c.tokens
                .iter()
                .filter(|t| files.eos_ids.contains(t))
                .count(),
            usize::from(c.stopped_on_eos)
        );
        let full: Vec<u32> = ids.iter().chain(&c.tokens).copied().collect();
        let scored = model.score(&[&full], &files.eos_ids).unwrap().remove(0);
        let diff = max_abs_diff(&c.logprobs, &scored.logprobs[ids.len()..]);
        assert!(
            diff < 1e-3,
            "sampling log-probs differ from the proof pass by {diff}"
        );
    }
}

#[test]
fn greedy_and_top_k_one_pick_the_argmax() {
    let (_dir, files, model) = tiny(&TinySpec::default());
    let ids = prompt(&files);
    let greedy = SamplingParams {
        max_new_tokens: 12,
        temperature: 0.0,
        ..Default::default()
    };
    let top1 = SamplingParams {
        max_new_tokens: 12,
        temperature: 0.7,
        top_k: Some(1),
        ..Default::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let g = model
        .generate_group(&ids, 2, &greedy, &[], &mut rng, &mut no_progress)
        .unwrap();
    let k = model
        .generate_group(&ids, 1, &top1, &[], &mut rng, &mut no_progress)
        .unwrap();
    assert_eq!(g[0].tokens, g[1].tokens);
    assert_eq!(g[0].tokens, k[0].tokens);
    // Each greedy token is the argmax of the proof pass's next-token distribution.
    let full: Vec<i64> = ids.iter().chain(&g[0].tokens).map(|&t| t as i64).collect();
    let argmax = tch::no_grad(|| {
        let hidden = model.hidden_states(&Tensor::from_slice(&full).view([1, -1]), None);
        model.logits(&hidden).argmax(-1, false).view([-1])
    });
    let argmax = Vec::<i64>::try_from(argmax).unwrap();
    assert_eq!(&argmax[ids.len() - 1..full.len() - 1], &full[ids.len()..]);
    let distinct: std::collections::HashSet<_> = g[0].tokens.iter().collect();
    assert!(
        distinct.len() > 1,
        "the tiny model should not be degenerate: {:?}",
        g[0].tokens
    );
}

#[test]
fn proofs_verify_for_the_right_model_and_fail_for_another_seed() {
    let (_d1, files, model) = tiny(&TinySpec::default());
    let (_d2, _, other) = tiny(&TinySpec {
        seed: 1,
        ..TinySpec::default()
    });
    let ids = prompt(&files);
    let params = SamplingParams {
        max_new_tokens: 48,
        ..Default::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let completion = model
        .generate_group(&ids, 1, &params, &[], &mut rng, &mut no_progress)
        .unwrap()
        .remove(0);
    let tokens: Vec<u32> = ids.iter().chain(&completion.tokens).copied().collect();
    let window_randomness = [3u8; 32];
    let coefficients = SketchCoefficients::derive(&window_randomness, model.config().hidden_size);
    let scored = model.score(&[&tokens], &[]).unwrap().remove(0);
    let sketches: Vec<SketchDigest> = (0..tokens.len())
        .map(|p| coefficients.sketch(scored.hidden(p).unwrap()).digest())
        .collect();
    let positions =
        challenge_positions(&[9u8; 32], &[1u8; 32], ids.len(), tokens.len(), CHALLENGE_K);
    let rollout = grail_proto::Rollout {
        tokens: tokens.clone(),
        prompt_len: ids.len() as u32,
        sketches,
        logprobs: completion.logprobs.clone(),
        reward: 0.0,
        advantage: 0.0,
        success: false,
    };
    let mut honest = scored.clone();
    let report = verify_proof(&rollout, &positions, &coefficients, &mut honest).unwrap();
    assert!(report.accepted(), "{report:?}");
    let report =
        verify_proof(&rollout, &positions, &coefficients, &mut ProofModel(&model)).unwrap();
    assert!(report.accepted(), "{report:?}");
    let report =
        verify_proof(&rollout, &positions, &coefficients, &mut ProofModel(&other)).unwrap();
    assert!(
        !report.accepted(),
        "a different model must fail: {report:?}"
    );
}

#[test]
fn qwen_variants_run_and_export_round_trips() {
    for arch in [Architecture::Qwen2, Architecture::Qwen3] {
        let spec = TinySpec {
            architecture: arch,
            seed: 4,
            ..TinySpec::default()
        };
        let (dir, files, model) = tiny(&spec);
        let ids = prompt(&files);
        let a = model.score(&[&ids], &[2]).unwrap().remove(0);
        // Export through hf_weights and load again: same numbers.
        let out = dir.path().join("again");
        let weights = model.hf_weights();
        let tokenizer = serde_json::from_str(
            &std::fs::read_to_string(files.path.join("tokenizer.json")).unwrap(),
        )
        .unwrap();
        let new_dir = grail_infer::files::NewModelDir {
            config: model.config(),
            weights: &weights,
            tokenizer: &tokenizer,
            tokenizer_config: &files.tokenizer_config,
            generation_config: &serde_json::json!({"eos_token_id": 2}),
        };
        new_dir.write(&out).unwrap();
        // Writing again replaces the folder; no staging folder is left behind.
        std::fs::write(out.join("stale.bin"), b"x").unwrap();
        new_dir.write(&out).unwrap();
        assert!(!out.join("stale.bin").exists());
        let hidden: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".again."))
            .collect();
        assert!(hidden.is_empty(), "{hidden:?}");
        let again = ModelDir::open(&out)
            .unwrap()
            .load_model(Kind::Float, Device::Cpu, &mut no_progress)
            .unwrap();
        let b = again.score(&[&ids], &[2]).unwrap().remove(0);
        assert_eq!(max_abs_diff(&a.logprobs, &b.logprobs), 0.0, "{arch:?}");
    }
}

#[test]
fn bad_inputs_are_errors() {
    let (dir, files, model) = tiny(&TinySpec::default());
    let vocab = model.config().vocab_size as u32;
    assert!(model.score(&[&[1, vocab]], &[]).is_err());
    assert!(model.score(&[&[]], &[]).is_err());
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let bad = SamplingParams {
        top_p: 0.0,
        ..Default::default()
    };
    assert!(model
        .generate_group(&[1, 2], 1, &bad, &[], &mut rng, &mut no_progress)
        .is_err());
    let long = SamplingParams {
        max_new_tokens: 5000,
        ..Default::default()
    };
    assert!(model
        .generate_group(&[1, 2], 1, &long, &[], &mut rng, &mut no_progress)
        .is_err());
    // Corrupt weights file and a missing tensor: errors, not panics.
    let path = files.path.clone();
    std::fs::write(path.join("model.safetensors"), b"not safetensors").unwrap();
    let err = ModelDir::open(&path)
        .unwrap()
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .err()
        .unwrap();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let partial: Vec<(String, Tensor)> = model.hf_weights().into_iter().skip(1).collect();
    Tensor::write_safetensors(&partial, path.join("model.safetensors")).unwrap();
    let err = ModelDir::open(&path)
        .unwrap()
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .err()
        .unwrap();
    assert!(err.to_string().contains("missing tensor"), "{err}");
    std::fs::write(path.join("config.json"), "{\"model_type\": \"llama\"}").unwrap();
    assert!(ModelDir::open(&path).is_err());
    drop(dir);
}

#[test]
fn sharded_checkpoints_and_half_dtypes_load() {
    let (dir, files, model) = tiny(&TinySpec::default());
    let ids = prompt(&files);
    let reference = model.score(&[&ids], &[2]).unwrap().remove(0);
    // Split model.safetensors into two shards with an index.
    let weights = model.hf_weights();
    let (first, second) = weights.split_at(weights.len() / 2);
    let cpu = |w: &[(String, Tensor)]| -> Vec<(String, Tensor)> {
        w.iter().map(|(n, t)| (n.clone(), t.contiguous())).collect()
    };
    Tensor::write_safetensors(
        &cpu(first),
        files.path.join("model-00001-of-00002.safetensors"),
    )
    .unwrap();
    Tensor::write_safetensors(
        &cpu(second),
        files.path.join("model-00002-of-00002.safetensors"),
    )
    .unwrap();
    let map: serde_json::Map<String, serde_json::Value> = first
        .iter()
        .map(|(n, _)| (n.clone(), "model-00001-of-00002.safetensors".into()))
        .chain(
            second
                .iter()
                .map(|(n, _)| (n.clone(), "model-00002-of-00002.safetensors".into())),
        )
        .collect();
    std::fs::write(
        files.path.join("model.safetensors.index.json"),
        serde_json::json!({"weight_map": map}).to_string(),
    )
    .unwrap();
    std::fs::remove_file(files.path.join("model.safetensors")).unwrap();
    let sharded = ModelDir::open(&files.path).unwrap();
    assert_eq!(sharded.weight_files().unwrap().len(), 2);
    let again = sharded
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap();
    assert_eq!(
        max_abs_diff(
            &again.score(&[&ids], &[2]).unwrap()[0].logprobs,
            &reference.logprobs
        ),
        0.0
    );
    // bf16 and f16 run and stay close to fp32.
    for kind in [Kind::BFloat16, Kind::Half] {
        let half = sharded
            .load_model(kind, Device::Cpu, &mut no_progress)
            .unwrap();
        let scored = half.score(&[&ids], &[2]).unwrap().remove(0);
        let diff = max_abs_diff(
            scored.hidden(ids.len() - 1).unwrap(),
            reference.hidden(ids.len() - 1).unwrap(),
        );
        assert!(
            diff > 0.0 && diff < 0.2,
            "{kind:?}: hidden differs from fp32 by {diff}"
        );
    }
    // A shard path leaving the folder is refused.
    std::fs::write(
        files.path.join("model.safetensors.index.json"),
        r#"{"weight_map": {"a": "../x.safetensors"}}"#,
    )
    .unwrap();
    assert!(ModelDir::open(&files.path).unwrap().weight_files().is_err());
    drop(dir);
}
