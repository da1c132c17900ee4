//! Dishonest miners in one window, next to an honest one (tiny model, CPU). Each attack is
//! rejected with its named reason and earns no credit; the honest miner's groups are all
//! accepted and credited. The tests run on paused time: chain, beacon and deadlines follow
//! tokio's clock, so waiting for a window costs no wall-clock time. (Upload timestamps
//! are the files' real times: only the v4 rule reads them, against a deadline the
//! simulated clock puts ahead of the wall clock.)

use std::collections::BTreeMap;
use std::sync::Arc;

use grail_chain::{CheckpointAnnouncement, Clock, TokioClock};
use grail_e2e::{open_clocked_wiring, paused_runtime, publish_base_on, TestNet, ToyEnv};
use grail_env::Environment;
use grail_mine::groups::{assemble_group, make_group, sample_completions, WindowPlan};
use grail_node::context::ModelContext;
use grail_node::network::Stop;
use grail_node::wiring::store_of_commitment;
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::signing::Keypair;
use grail_proto::{encode_bundle, Group, SketchCoefficients, WindowBundle};
use grail_validate::verify::OWN_FAILURE_STATUS;
use grail_validate::{check_window, pin_window, MinerSource, WindowInputs};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Attacks, in miner order (miner-2 onwards); miner-1 is honest.
const ATTACKS: [(&str, &str); 37] = [
    ("substitution", "proof_failed"),
    ("tampered_token", "proof_failed"),
    ("wrong_prompt", "prompt_mismatch"),
    ("stale", "stale_checkpoint"),
    ("wrong_randomness", "randomness_mismatch"),
    ("forged_signature", "signature"),
    ("unregistered", "unregistered_hotkey"),
    ("split_tokens", "prompt_mismatch"),
    ("eos_padding", "bad_termination"),
    ("missing_eos", "bad_termination"),
    ("reward", "reward_mismatch"),
    ("logprobs", "logprobs_mismatch"),
    ("copycat", "copycat"),
    // Protocol v5: a rival that computes an honest miner's groups and uploads them first
    // (earlier timestamp) voided all of the honest miner's credit under v4's upload-order
    // rule; now the copy fails the rival's own noise and the owner keeps its work.
    ("copy_uploaded_first", "copycat"),
    ("oversized", "oversized"),
    ("malformed", "malformed"),
    ("late", "late_upload"),
    // Protocol v5: what is checked is pinned at the deadline, not read by timestamp. A
    // bundle uploaded once the challenge is public and backdated (as an S3 multipart
    // upload started before the deadline is), and an honest bundle replaced after the
    // deadline by a backdated one, both credited under v4.
    ("backdated_after_challenge", "late_upload"),
    ("replaced_after_pin", "late_upload"),
    // Protocol v3: tokens must be the ones the public noise samples from the checkpoint.
    ("cheaper_model", "sampling_mismatch"),
    ("temperature", "sampling_mismatch"),
    ("best_of_n", "sampling_mismatch"),
    ("edited_token", "sampling_mismatch"),
    // Work counted once.
    ("duplicate_group", "duplicate_group"),
    ("duplicate_prompt", "duplicate_prompt"),
    ("replay", "replay"),
    ("group_size", "group_size"),
    // One bad group among good ones zeroes the whole window.
    ("one_bad_group", "reward_mismatch"),
    // The remaining binding and bundle reasons.
    ("missing", "missing"),
    ("integrity", "integrity"),
    ("bundle_for_another_miner", "hotkey_mismatch"),
    ("wrong_window", "window_mismatch"),
    ("wrong_environment", "environment_mismatch"),
    ("declared_temperature", "generation_mismatch"),
    ("token_outside_vocabulary", "token_limits"),
    ("advantages", "advantages_mismatch"),
    ("overlong_completion", "token_limits"),
];

/// Where a validator reads `miner`'s bundles, as the chain says.
fn source(
    metagraph: &grail_chain::Metagraph,
    commitments: &BTreeMap<grail_proto::Hotkey, grail_chain::Commitment>,
    miner: &grail_node::wiring::Wiring,
) -> MinerSource {
    let hotkey = miner.key.public();
    MinerSource {
        hotkey,
        uid: metagraph.by_hotkey(&hotkey).unwrap().uid,
        store: store_of_commitment(&commitments[&hotkey], true).unwrap(),
    }
}

/// Sets the modification time of a miner's bundle and its digest (in its local bucket)
/// to `when`: what the store then reports as `LastModified`.
fn backdate(w: &grail_node::wiring::Wiring, window: u64, when: chrono::DateTime<chrono::Utc>) {
    let dir = w
        .config
        .store
        .strip_prefix("local:")
        .expect("a local bucket");
    let hotkey = w.key.public();
    for key in [
        grail_store::layout::bundle(window, &hotkey),
        grail_store::layout::bundle_digest(window, &hotkey),
    ] {
        let file = std::fs::File::options()
            .write(true)
            .open(std::path::Path::new(dir).join(&key))
            .unwrap();
        file.set_modified(when.into()).unwrap();
    }
}

/// Re-signs after a mutation, as a real attacker would.
fn resign(key: &Keypair, mut g: Group) -> Group {
    key.sign_group(&mut g);
    g
}

fn truncate(g: &mut Group, keep_completion: usize) {
    let r = &mut g.rollouts[0];
    let p = r.prompt_len as usize;
    r.tokens.truncate(p + keep_completion);
    r.sketches.truncate(p + keep_completion);
    r.logprobs.truncate(keep_completion);
}

#[test]
fn every_attack_is_rejected_with_its_reason_and_the_honest_miner_is_untouched() {
    let net = TestNet::new(1 + ATTACKS.len(), 250, 40, 12, 2);
    let env = ToyEnv::default();
    // One task on paused time: the chain, beacon and deadlines follow tokio's clock.
    let rt = paused_runtime();
    rt.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_now());
        // Checkpoint 0 (the tiny model) as the trainer publishes it at start.
        let trainer = publish_base_on(&net, clock.clone(), &env).await;
        let window = trainer.net.current_window().await.unwrap() + 40;
        // Checkpoint 1 (other weights) in effect from `window`: the stale miner keeps 0.
        let other = net.other_model();
        let signed = trainer
            .store
            .publish_checkpoint(&other, 1, Some(0), (0, 0), window, &trainer.key)
            .await
            .unwrap();
        let ckpt1 = signed.manifest.digest();
        let ckpt0 = trainer
            .checkpoints
            .in_effect(trainer.net.chain.as_ref(), 0)
            .await
            .unwrap();
        let a = CheckpointAnnouncement {
            number: 1,
            digest: ckpt1,
            effective_window: window,
        };
        trainer
            .net
            .chain
            .commit(&trainer.key, &a.to_commitment())
            .await
            .unwrap();
        let ckpt0 = ckpt0.unwrap().digest;
        assert_ne!(ckpt0, ckpt1);

        let current = ModelContext::load(&other, tch::Device::Cpu).unwrap();
        let stale = ModelContext::load(&net.config("trainer").model, tch::Device::Cpu).unwrap();
        let mut miners = Vec::new();
        for i in 1..=1 + ATTACKS.len() {
            let w = open_clocked_wiring(
                &net.root,
                &net.info,
                clock.clone(),
                &format!("miner-{i}"),
                |_| {},
            )
            .await;
            w.publish_store().await.unwrap();
            miners.push(w);
        }
        let validator =
            open_clocked_wiring(&net.root, &net.info, clock.clone(), "validator", |_| {}).await;
        let mut stop = Stop::never();
        assert!(validator
            .net
            .wait_for_block(window, &mut stop)
            .await
            .unwrap());
        let wr = validator.net.window_randomness(window).await.unwrap();
        let hidden = current.model.config().hidden_size;
        let coefficients = SketchCoefficients::derive(&wr, hidden);
        let plan = WindowPlan {
            window,
            window_randomness: wr,
            checkpoint: ckpt1,
            environment: env.id(),
            generation: validator.config.subnet.generation(),
            group_size: 4,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let group = |ctx: &ModelContext,
                     plan: &WindowPlan,
                     coeffs: &SketchCoefficients,
                     key: &Keypair,
                     prompt: u64,
                     _rng: &mut ChaCha20Rng| {
            make_group(ctx, &env, plan, coeffs, key, prompt).unwrap()
        };
        // A group of `completions` for `prompt`, with honest proof material from the
        // current model: only the tokens are off-policy.
        let forged = |key: &Keypair, prompt: u64, completions: &[Vec<u32>]| {
            let (problem, tokens) = current.prompt(&env, prompt).unwrap();
            assemble_group(
                &current,
                &env,
                &plan,
                &coefficients,
                key,
                prompt,
                (&problem, &tokens),
                completions,
            )
            .unwrap()
        };
        let completions = |g: &Group| -> Vec<Vec<u32>> {
            g.rollouts.iter().map(|r| r.completion().to_vec()).collect()
        };
        // Samples drawn with the miner's own randomness instead of the public noise.
        let private_samples = |tokens: &[u32], rows: usize, rng: &mut ChaCha20Rng| {
            let params = grail_infer::SamplingParams::from(&plan.generation);
            current
                .model
                .generate_group(
                    tokens,
                    rows,
                    &params,
                    &current.eos_ids,
                    rng,
                    &mut grail_infer::no_progress,
                )
                .unwrap()
        };
        let mut replay = ReplaySet::default();
        replay.begin(ckpt1, window);
        let upload = |w: &grail_node::wiring::Wiring, groups: Vec<Group>| {
            encode_bundle(&WindowBundle {
                hotkey: w.key.public(),
                window,
                groups,
            })
            .unwrap()
        };
        let honest = &miners[0];
        let honest_groups: Vec<Group> = (0..2)
            .map(|p| group(&current, &plan, &coefficients, &honest.key, p, &mut rng))
            .collect();
        honest
            .store
            .upload_bundle(
                window,
                &honest.key.public(),
                upload(honest, honest_groups.clone()),
            )
            .await
            .unwrap();
        let eos = current.eos_ids[0];
        let mut after_challenge = Vec::new();
        for (i, (attack, _)) in ATTACKS.iter().enumerate() {
            let w = &miners[i + 1];
            let key = &w.key;
            let prompt = 100 + i as u64;
            let g = group(&current, &plan, &coefficients, key, prompt, &mut rng);
            let bytes = match *attack {
                "substitution" => upload(
                    w,
                    vec![group(&stale, &plan, &coefficients, key, prompt, &mut rng)],
                ),
                "tampered_token" => {
                    let mut g = g;
                    let r = &mut g.rollouts[0];
                    let p = r.prompt_len as usize;
                    let mut t = (r.tokens[p] + 1) % 400 + 3;
                    if current.eos_ids.contains(&t) {
                        t += 1;
                    }
                    r.tokens[p] = t;
                    upload(w, vec![resign(key, g)])
                }
                "wrong_prompt" => {
                    let mut g = g;
                    g.header.prompt_id += 1;
                    upload(w, vec![resign(key, g)])
                }
                "stale" => {
                    let old = WindowPlan {
                        checkpoint: ckpt0,
                        ..plan.clone()
                    };
                    upload(
                        w,
                        vec![group(&stale, &old, &coefficients, key, prompt, &mut rng)],
                    )
                }
                "wrong_randomness" => {
                    let made_up = WindowPlan {
                        window_randomness: [7; 32],
                        ..plan.clone()
                    };
                    let coeffs = SketchCoefficients::derive(&[7; 32], hidden);
                    upload(
                        w,
                        vec![group(&current, &made_up, &coeffs, key, prompt, &mut rng)],
                    )
                }
                "forged_signature" => {
                    let mut g = g;
                    g.signature.0[0] ^= 1;
                    upload(w, vec![g])
                }
                "unregistered" => {
                    let stranger = Keypair::from_seed(&[99; 32]);
                    let sg = group(&current, &plan, &coefficients, &stranger, prompt, &mut rng);
                    encode_bundle(&WindowBundle {
                        hotkey: stranger.public(),
                        window,
                        groups: vec![sg],
                    })
                    .unwrap()
                }
                "split_tokens" => {
                    let mut g = g;
                    let r = &mut g.rollouts[0];
                    r.prompt_len += 1;
                    r.logprobs.remove(0);
                    upload(w, vec![resign(key, g)])
                }
                "eos_padding" => {
                    let mut g = g;
                    let r = &mut g.rollouts[0];
                    let p = r.prompt_len as usize;
                    r.tokens[p] = eos;
                    upload(w, vec![resign(key, g)])
                }
                "missing_eos" => {
                    let mut g = g;
                    truncate(&mut g, 2);
                    let r = &mut g.rollouts[0];
                    let p = r.prompt_len as usize;
                    for t in &mut r.tokens[p..] {
                        if current.eos_ids.contains(t) {
                            *t += 1;
                        }
                    }
                    upload(w, vec![resign(key, g)])
                }
                "reward" => {
                    let mut g = g;
                    g.rollouts[0].reward += 0.5;
                    upload(w, vec![resign(key, g)])
                }
                "logprobs" => {
                    let mut g = g;
                    g.rollouts[0].logprobs[0] -= 1.0;
                    upload(w, vec![resign(key, g)])
                }
                "copycat" | "copy_uploaded_first" => {
                    let copied: Vec<Group> = honest_groups
                        .iter()
                        .map(|h| {
                            let mut c = h.clone();
                            c.header.hotkey = key.public();
                            resign(key, c)
                        })
                        .collect();
                    upload(w, copied)
                }
                "cheaper_model" => {
                    // Tokens from another model with the same public noise.
                    let (_, tokens) = stale.prompt(&env, prompt).unwrap();
                    let cheap = sample_completions(&stale, &plan, &key.public(), &tokens).unwrap();
                    assert_ne!(cheap, completions(&g));
                    upload(w, vec![forged(key, prompt, &cheap)])
                }
                "temperature" => {
                    let cold = WindowPlan {
                        generation: grail_proto::GenerationParams {
                            temperature_milli: 500,
                            ..plan.generation
                        },
                        ..plan.clone()
                    };
                    let (_, tokens) = current.prompt(&env, prompt).unwrap();
                    let c = sample_completions(&current, &cold, &key.public(), &tokens).unwrap();
                    assert_ne!(c, completions(&g));
                    upload(w, vec![forged(key, prompt, &c)])
                }
                "best_of_n" => {
                    // Four private samples per slot; keep the best-scoring one.
                    let (problem, tokens) = current.prompt(&env, prompt).unwrap();
                    let candidates = private_samples(&tokens, 4 * plan.group_size, &mut rng);
                    let best: Vec<Vec<u32>> = candidates
                        .chunks(4)
                        .map(|c| {
                            c.iter()
                                .max_by(|a, b| {
                                    let r = |x: &grail_infer::Completion| {
                                        current.reward(&env, &problem, &x.tokens).unwrap().total
                                    };
                                    r(a).total_cmp(&r(b))
                                })
                                .unwrap()
                                .tokens
                                .clone()
                        })
                        .collect();
                    upload(w, vec![forged(key, prompt, &best)])
                }
                "edited_token" => {
                    let mut c = completions(&g);
                    let t = &mut c[0][0];
                    *t = (*t + 1) % 400 + 3;
                    if current.eos_ids.contains(t) {
                        *t += 1;
                    }
                    upload(w, vec![forged(key, prompt, &c)])
                }
                "duplicate_group" => upload(w, vec![g.clone(), g]),
                "duplicate_prompt" => {
                    // A second group for the same prompt: resampled with private randomness.
                    let (_, tokens) = current.prompt(&env, prompt).unwrap();
                    let again: Vec<Vec<u32>> = private_samples(&tokens, plan.group_size, &mut rng)
                        .into_iter()
                        .map(|c| c.tokens)
                        .collect();
                    upload(w, vec![g, forged(key, prompt, &again)])
                }
                "replay" => {
                    // The work of an earlier window, re-signed for this one.
                    replay.record(window - 40, [grail_proto::binding::work_digest(&g)]);
                    upload(w, vec![g])
                }
                "group_size" => {
                    let mut g = g;
                    g.rollouts.pop();
                    upload(w, vec![resign(key, g)])
                }
                "missing" => continue,
                "integrity" => {
                    // A published digest, then other bytes under the bundle's key.
                    w.store
                        .upload_bundle(window, &key.public(), upload(w, vec![g.clone()]))
                        .await
                        .unwrap();
                    let other = upload(w, vec![g, honest_groups[0].clone()]);
                    w.store
                        .put(
                            &grail_store::layout::bundle(window, &key.public()),
                            other.into(),
                        )
                        .await
                        .unwrap();
                    continue;
                }
                "bundle_for_another_miner" => encode_bundle(&WindowBundle {
                    hotkey: honest.key.public(),
                    window,
                    groups: honest_groups.clone(),
                })
                .unwrap(),
                "wrong_window" => {
                    let earlier = WindowPlan {
                        window: window - 40,
                        ..plan.clone()
                    };
                    let old = group(&current, &earlier, &coefficients, key, prompt, &mut rng);
                    encode_bundle(&WindowBundle {
                        hotkey: key.public(),
                        window: window - 40,
                        groups: vec![old],
                    })
                    .unwrap()
                }
                "wrong_environment" => {
                    let mut g = g;
                    g.header.environment.params.push_str(";v0");
                    upload(w, vec![resign(key, g)])
                }
                "declared_temperature" => {
                    let mut g = g;
                    g.header.generation.temperature_milli = 500;
                    upload(w, vec![resign(key, g)])
                }
                "token_outside_vocabulary" => {
                    let mut g = g;
                    let vocab = current.model.config().vocab_size as u32;
                    let r = &mut g.rollouts[0];
                    let p = r.prompt_len as usize;
                    r.tokens[p] = vocab;
                    upload(w, vec![resign(key, g)])
                }
                "advantages" => {
                    // Still summing to zero, but not the group-normalised rewards.
                    let mut g = g;
                    g.rollouts[0].advantage += 0.25;
                    g.rollouts[1].advantage -= 0.25;
                    upload(w, vec![resign(key, g)])
                }
                "overlong_completion" => {
                    let mut g = g;
                    let r = &mut g.rollouts[0];
                    let extra = plan.generation.max_new_tokens as usize + 1 - r.completion().len();
                    let filler = if current.eos_ids.contains(&5) { 6 } else { 5 };
                    let at = r.tokens.len() - 1;
                    for _ in 0..extra {
                        r.tokens.insert(at, filler);
                        r.sketches.insert(at, r.sketches[at]);
                        r.logprobs.insert(r.logprobs.len() - 1, -1.0);
                    }
                    upload(w, vec![resign(key, g)])
                }
                "one_bad_group" => {
                    let mut bad =
                        group(&current, &plan, &coefficients, key, prompt + 1000, &mut rng);
                    bad.rollouts[0].reward += 0.5;
                    upload(w, vec![g, resign(key, bad)])
                }
                "oversized" => upload(w, vec![g; 40]),
                "malformed" => b"GRAILBDL definitely not a bundle".to_vec(),
                "late" | "backdated_after_challenge" => {
                    after_challenge.push((i + 1, upload(w, vec![g])));
                    continue;
                }
                "replaced_after_pin" => {
                    // Two groups where one was pinned: what knowing the challenge buys.
                    let more = group(&current, &plan, &coefficients, key, prompt + 500, &mut rng);
                    after_challenge.push((i + 1, upload(w, vec![g.clone(), more])));
                    upload(w, vec![g])
                }
                other => unreachable!("{other}"),
            };
            w.store
                .upload_bundle(window, &key.public(), bytes)
                .await
                .unwrap();
            if *attack == "copy_uploaded_first" {
                // As if uploaded well before the honest miner.
                backdate(
                    w,
                    window,
                    chrono::Utc::now() - chrono::Duration::minutes(10),
                );
            }
        }
        let metagraph = validator.net.chain.metagraph().await.unwrap();
        let commitments = validator.net.chain.commitments().await.unwrap();
        let sources: Vec<MinerSource> = miners
            .iter()
            .map(|m| source(&metagraph, &commitments, m))
            .collect();
        // At the deadline the validator pins every bundle.
        let deadline = validator.net.deadline(window).await.unwrap();
        assert!(validator
            .net
            .wait_for_block(window + 40, &mut stop)
            .await
            .unwrap());
        let pins = pin_window(
            window,
            &sources,
            Default::default(),
            &grail_chain::SystemClock,
        )
        .await;
        // After the deadline, once the challenge is public: the late miners upload, the
        // backdating ones set their objects' timestamps to before the deadline.
        assert!(validator
            .net
            .wait_for_block(window + 40 + 1, &mut stop)
            .await
            .unwrap());
        let challenge_randomness = validator.net.challenge_randomness(window).await.unwrap();
        for (m, bytes) in after_challenge {
            let w = &miners[m];
            w.store
                .upload_bundle(window, &w.key.public(), bytes)
                .await
                .unwrap();
            if ATTACKS[m - 1].0 != "late" {
                backdate(w, window, deadline - chrono::Duration::seconds(5));
            }
        }
        let inputs = WindowInputs {
            context: &current,
            env: &env,
            plan: plan.clone(),
            challenge_randomness,
            deadline,
            registered: metagraph.neurons.iter().map(|n| n.hotkey).collect(),
            groups_checked: 8,
            max_bundle_bytes: 48 * 1024,
            fetch: Default::default(),
            pins: Some(pins),
            lane: None,
        };
        let (reports, sealed) =
            check_window(&inputs, &sources, validator.key.public(), &replay).await;
        let by_key: BTreeMap<_, _> = reports.iter().map(|r| (r.hotkey, r)).collect();

        let h = by_key[&honest.key.public()];
        assert_eq!(h.bundle_status, "accepted", "{}", h.detail);
        assert_eq!(h.checked.len(), 2);
        assert!(h.credited > 0.0, "the honest miner earns credit");
        for c in &h.checked {
            assert!(
                c.outcome.verdict.accepted,
                "honest group rejected: {:?}",
                c.outcome.verdict
            );
        }
        let mut failures = Vec::new();
        for (i, (attack, want)) in ATTACKS.iter().enumerate() {
            let r = by_key[&miners[i + 1].key.public()];
            let got: Vec<String> = if r.bundle_status != "accepted" {
                vec![r.bundle_status.clone()]
            } else {
                r.checked
                    .iter()
                    .map(|c| c.outcome.verdict.reason.clone())
                    .filter(|v| *attack != "one_bad_group" || v != "accepted")
                    .collect()
            };
            if r.credited != 0.0 {
                failures.push(format!("{attack}: credited {}", r.credited));
            }
            if got.is_empty() || got.iter().any(|g| g != want) {
                failures.push(format!(
                    "{attack}: expected {want}, got {got:?} ({})",
                    r.detail
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // The sealed window holds every checked group with its verdict.
        let checked: usize = reports.iter().map(|r| r.checked.len()).sum();
        assert_eq!(sealed.entries.len(), checked);
        // The honest miner's two groups and the good group next to the bad one.
        assert_eq!(sealed.accepted().count(), 3);

        // Under the v4 rule (no pins: upload timestamps) both backdated bundles were
        // accepted, every group eligible for credit: the attacks the pins close.
        let backdating = ["backdated_after_challenge", "replaced_after_pin"];
        let sources: Vec<MinerSource> = backdating
            .iter()
            .map(|attack| {
                let m = &miners[ATTACKS.iter().position(|(a, _)| a == attack).unwrap() + 1];
                source(&metagraph, &commitments, m)
            })
            .collect();
        let v4 = WindowInputs {
            pins: None,
            ..inputs
        };
        let (reports, _) = check_window(&v4, &sources, validator.key.public(), &replay).await;
        for (attack, source) in backdating.iter().zip(&sources) {
            let r = reports.iter().find(|r| r.hotkey == source.hotkey).unwrap();
            assert_eq!(r.bundle_status, "accepted", "{attack}: {}", r.detail);
            // Every group counts: credited whenever it lands in the learning zone (whether
            // it does depends on the window's randomness, so the credit itself is not
            // asserted).
            let accepted = r
                .checked
                .iter()
                .filter(|c| c.outcome.verdict.accepted)
                .count();
            assert!(
                accepted == r.checked.len() && accepted > 0 && r.eligible == r.groups_submitted,
                "{attack} under v4: {accepted} of {} checked accepted, {} of {} eligible",
                r.checked.len(),
                r.eligible,
                r.groups_submitted
            );
        }
    });
}

/// The toy environment with one prompt it cannot read, as a dataset file gone missing
/// would leave a validator.
struct BrokenPrompt {
    inner: ToyEnv,
    broken: u64,
}

impl Environment for BrokenPrompt {
    fn id(&self) -> grail_proto::EnvironmentId {
        self.inner.id()
    }

    fn prompt_space(&self) -> grail_env::PromptSpace {
        self.inner.prompt_space()
    }

    fn problem(&self, prompt_id: u64) -> Result<grail_env::Problem, grail_env::EnvError> {
        if prompt_id == self.broken {
            return Err(grail_env::EnvError::Io {
                path: "problems.jsonl".into(),
                source: std::io::Error::other("the disk went away"),
            });
        }
        self.inner.problem(prompt_id)
    }

    fn score(
        &self,
        problem: &grail_env::Problem,
        completion: &str,
        eos_markers: &[&str],
    ) -> grail_env::RewardVector {
        self.inner.score(problem, completion, eos_markers)
    }
}

#[test]
fn a_validator_failure_on_one_miner_costs_that_miner_only() {
    let net = TestNet::new(2, 250, 40, 12, 2);
    let env = ToyEnv::default();
    // One task on paused time: the chain, beacon and deadlines follow tokio's clock.
    let rt = paused_runtime();
    rt.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_now());
        let trainer = publish_base_on(&net, clock.clone(), &env).await;
        let ckpt = trainer
            .checkpoints
            .in_effect(trainer.net.chain.as_ref(), 0)
            .await
            .unwrap()
            .unwrap()
            .digest;
        let window = trainer.net.current_window().await.unwrap() + 40;
        let context = ModelContext::load(&net.config("trainer").model, tch::Device::Cpu).unwrap();
        let mut miners = Vec::new();
        for i in 1..=2 {
            let w = open_clocked_wiring(
                &net.root,
                &net.info,
                clock.clone(),
                &format!("miner-{i}"),
                |_| {},
            )
            .await;
            w.publish_store().await.unwrap();
            miners.push(w);
        }
        let validator =
            open_clocked_wiring(&net.root, &net.info, clock.clone(), "validator", |_| {}).await;
        let mut stop = Stop::never();
        assert!(validator
            .net
            .wait_for_block(window, &mut stop)
            .await
            .unwrap());
        let wr = validator.net.window_randomness(window).await.unwrap();
        let coefficients = SketchCoefficients::derive(&wr, context.model.config().hidden_size);
        let plan = WindowPlan {
            window,
            window_randomness: wr,
            checkpoint: ckpt,
            environment: env.id(),
            generation: validator.config.subnet.generation(),
            group_size: 4,
        };
        // Miner 1 samples prompts 0 and 1; miner 2 prompt 7, which the validator's
        // environment cannot read.
        for (w, prompts) in miners.iter().zip([vec![0, 1], vec![7]]) {
            let groups: Vec<Group> = prompts
                .into_iter()
                .map(|p| make_group(&context, &env, &plan, &coefficients, &w.key, p).unwrap())
                .collect();
            let bytes = encode_bundle(&WindowBundle {
                hotkey: w.key.public(),
                window,
                groups,
            })
            .unwrap();
            w.store
                .upload_bundle(window, &w.key.public(), bytes)
                .await
                .unwrap();
        }
        let metagraph = validator.net.chain.metagraph().await.unwrap();
        let commitments = validator.net.chain.commitments().await.unwrap();
        let sources: Vec<MinerSource> = miners
            .iter()
            .map(|m| source(&metagraph, &commitments, m))
            .collect();
        let deadline = validator.net.deadline(window).await.unwrap();
        assert!(validator
            .net
            .wait_for_block(window + 41, &mut stop)
            .await
            .unwrap());
        let challenge_randomness = validator.net.challenge_randomness(window).await.unwrap();
        let broken = BrokenPrompt {
            inner: ToyEnv::default(),
            broken: 7,
        };
        let inputs = WindowInputs {
            context: &context,
            env: &broken,
            plan,
            challenge_randomness,
            deadline,
            registered: metagraph.neurons.iter().map(|n| n.hotkey).collect(),
            groups_checked: 8,
            max_bundle_bytes: 48 * 1024,
            fetch: Default::default(),
            pins: None,
            lane: None,
        };
        let mut replay = ReplaySet::default();
        replay.begin(ckpt, window);
        // The window is checked: the validator's failure does not fail it.
        let (reports, sealed) =
            check_window(&inputs, &sources, validator.key.public(), &replay).await;
        let by_key: BTreeMap<_, _> = reports.iter().map(|r| (r.hotkey, r)).collect();
        let fine = by_key[&miners[0].key.public()];
        assert_eq!(fine.bundle_status, "accepted", "{}", fine.detail);
        assert_eq!(fine.checked.len(), 2);
        assert!(fine.checked.iter().all(|c| c.outcome.verdict.accepted));
        let hit = by_key[&miners[1].key.public()];
        assert_eq!(hit.bundle_status, OWN_FAILURE_STATUS, "{}", hit.detail);
        assert!(hit.detail.contains("the disk went away"), "{}", hit.detail);
        assert_eq!(hit.credited, 0.0);
        assert!(
            hit.checked.is_empty(),
            "nothing is recorded against the miner: {:?}",
            hit.checked
                .iter()
                .map(|c| &c.outcome.verdict.reason)
                .collect::<Vec<_>>()
        );
        assert!(sealed
            .entries
            .iter()
            .all(|e| e.miner != miners[1].key.public()));
    });
}
