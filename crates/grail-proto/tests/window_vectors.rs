//! End-to-end conformance vectors for the window verifier (`grail_proto::verifier`):
//! `tests/vectors/window_v5.json`.
//!
//! Each case is a whole window as a validator meets it: the window's parameters, the
//! miners' encoded bundles (real sr25519 signatures), the canonical prompts and the
//! forward-pass values a validator's model computes (so no model is needed), and what the
//! verifier must decide: every miner's bundle status, each checked group's verdict with
//! its reason and detail string, the credited work, the weights and the exact bytes of
//! the sealed archive. There is one case per reason and per precedence between reasons.
//! A third party reaches the same bytes from docs/protocol.md and this file alone.
//!
//! # Layout
//!
//! `{ "meta": {...}, "cases": [case, ...] }`; a case is
//! `{ "name", "what", "inputs": {...}, "expect": {...} }`:
//!
//! - `inputs.params`: the window plan (`window`, `window_randomness_hex`,
//!   `checkpoint_hex`, `environment` `{name, params}`, `generation` `{max_new_tokens,
//!   temperature_milli}`, `group_size`), `challenge_randomness_hex`, `validator_hex`,
//!   `hidden_size`, `vocab_size`, `max_sequence`, `eos_ids`, `groups_checked`;
//! - `inputs.registered_hex`: the registered hotkeys (for `unregistered_hotkey`);
//! - `inputs.earlier`: work recorded in earlier windows of the same checkpoint
//!   (`[{window, works_hex}]`), what makes a group a `replay`;
//! - `inputs.miners`: `[{hotkey_hex, uid, bundle_hex}]`, the bundle bytes pinned for each
//!   miner, in the order they are fed;
//! - `inputs.prompts`: `[{prompt_id, tokens}]` or `[{prompt_id, no_such_prompt}]`, the
//!   answers to every prompt request;
//! - `inputs.forward`: `[{miner_hex, group_index, rollouts: [{hidden_f32le_hex: [one hex
//!   string per challenged position: the hidden vector as little-endian f32],
//!   logprobs_f32le_hex, gaps_f64le_hex, reward_bits, success}]}]`, the answers to every
//!   forward request (`gaps` may contain IEEE infinities);
//! - `expect.reports`: one per miner sorted by hotkey: `hotkey_hex`, `uid`,
//!   `bundle_status`, `detail`, `bundle_sha256_hex`, `groups_submitted`, `eligible`,
//!   `eligible_works_hex`, `replays_not_kept`, `credited` and `credited_bits`, `checked`
//!   (`[{index, reason, detail, in_zone}]`, by index);
//! - `expect.archive_hex` / `archive_sha256_hex`: `encode_archive` of the sealed window;
//! - `expect.weights`: `[{uid, weight_bits}]`, `scoring::weights` of this window's
//!   credited work alone under the default rule.
//!
//! Signature verification (stage 3) is the consumer's own sr25519.
//!
//! # Regenerating
//!
//! `cargo xtask vectors` (`GRAIL_WRITE_VECTORS=1`) mines fresh bundles with the toy model
//! of `examples/toy` and rewrites the file (signatures differ on every run: sr25519 is
//! randomised). Without the variable the test reads the inputs from the file, runs the
//! verifier on them and compares every expected field.

#![cfg(feature = "sr25519")]

#[path = "../examples/toy/mod.rs"]
mod toy;

use std::collections::BTreeMap;
use std::path::PathBuf;

use grail_proto::archive::encode_archive;
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::rules::group::{NoSuchPrompt, RolloutEvidence};
use grail_proto::rules::WindowPlan;
use grail_proto::scoring::{weights, ScoreRule, WorkHistory};
use grail_proto::signing::{verify_group, Keypair};
use grail_proto::verifier::{
    BundleCheck, BundleRequest, WindowOutcome, WindowParams, WindowRequest, WindowVerifier,
};
use grail_proto::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const FILE: &str = "tests/vectors/window_v5.json";
const WRITE_ENV: &str = "GRAIL_WRITE_VECTORS";
const WINDOW: u64 = 300;

/// What a case feeds the verifier.
#[derive(Clone)]
struct Inputs {
    params: WindowParams,
    registered: Vec<Hotkey>,
    earlier: Vec<(u64, Vec<[u8; 32]>)>,
    miners: Vec<(Hotkey, u16, Vec<u8>)>,
    prompts: BTreeMap<u64, Result<Vec<u32>, String>>,
    forward: BTreeMap<(Hotkey, u32), Vec<RolloutEvidence>>,
}

/// Answers to the verifier's requests.
trait Oracle {
    fn prompt(&mut self, prompt_id: u64) -> Result<Vec<u32>, String>;
    fn forward(
        &mut self,
        miner: &Hotkey,
        index: u32,
        group: &Group,
        positions: &[Vec<usize>],
    ) -> Vec<RolloutEvidence>;
}

/// The recorded answers of a case.
struct Recorded<'a>(&'a Inputs);

impl Oracle for Recorded<'_> {
    fn prompt(&mut self, prompt_id: u64) -> Result<Vec<u32>, String> {
        self.0
            .prompts
            .get(&prompt_id)
            .cloned()
            .unwrap_or_else(|| panic!("the vectors answer no prompt request for {prompt_id}"))
    }

    fn forward(
        &mut self,
        miner: &Hotkey,
        index: u32,
        _: &Group,
        _: &[Vec<usize>],
    ) -> Vec<RolloutEvidence> {
        self.0
            .forward
            .get(&(*miner, index))
            .cloned()
            .unwrap_or_else(|| {
                panic!("the vectors answer no forward request for group {index} of {miner:?}")
            })
    }
}

/// The toy model's answers (prompt ids ≥ 100 name no prompt), edited by `tweak`, and
/// recorded for the file.
struct Toy<'a> {
    tweak: &'a dyn Fn(&Hotkey, u32, &mut Vec<RolloutEvidence>),
    prompts: BTreeMap<u64, Result<Vec<u32>, String>>,
    forward: BTreeMap<(Hotkey, u32), Vec<RolloutEvidence>>,
}

impl Oracle for Toy<'_> {
    fn prompt(&mut self, prompt_id: u64) -> Result<Vec<u32>, String> {
        let answer = if prompt_id < 100 {
            Ok(toy::prompt(prompt_id))
        } else {
            Err(format!(
                "prompt {prompt_id} is outside the prompt space (100 prompts)"
            ))
        };
        self.prompts.insert(prompt_id, answer.clone());
        answer
    }

    fn forward(
        &mut self,
        miner: &Hotkey,
        index: u32,
        group: &Group,
        positions: &[Vec<usize>],
    ) -> Vec<RolloutEvidence> {
        let mut evidence = toy::forward(group, positions);
        (self.tweak)(miner, index, &mut evidence);
        self.forward.insert((*miner, index), evidence.clone());
        evidence
    }
}

/// The whole window check of `inputs`, its requests answered by `oracle`.
fn run(inputs: &Inputs, oracle: &mut dyn Oracle) -> WindowOutcome {
    let params = &inputs.params;
    let mut replay = ReplaySet::default();
    for (window, works) in &inputs.earlier {
        replay.begin(params.plan.checkpoint, *window);
        replay.record(*window, works.iter().copied());
    }
    replay.begin(params.plan.checkpoint, params.plan.window);
    let mut pending = Vec::new();
    for (hotkey, uid, bytes) in &inputs.miners {
        let registered = |h: &Hotkey| inputs.registered.contains(h);
        let mut check = match BundleCheck::open(params, *hotkey, *uid, bytes, registered) {
            Ok(check) => check,
            Err(refused) => {
                pending.push((*refused).into());
                continue;
            }
        };
        loop {
            match check.poll() {
                BundleRequest::Prompt { prompt_id } => {
                    let answer = oracle.prompt(prompt_id).map_err(NoSuchPrompt);
                    check.answer_prompt(Ok(answer));
                }
                BundleRequest::Signatures { groups } => {
                    let valid = groups.iter().map(verify_group).collect();
                    check.answer_signatures(valid);
                }
                BundleRequest::Done => break,
            }
        }
        pending.push(check.finish(&replay));
    }
    let mut window = WindowVerifier::new(params, pending);
    while let WindowRequest::Forward(ask) = window.poll() {
        let evidence = oracle.forward(ask.miner, ask.index, ask.group, ask.positions);
        window.answer_forward(Ok(evidence));
    }
    window.finish()
}

// ---------------------------------------------------------------------------------------
// JSON

fn hx(bytes: impl AsRef<[u8]>) -> Value {
    Value::String(hex::encode(bytes))
}

fn bits64(x: f64) -> Value {
    Value::String(format!("0x{:016x}", x.to_bits()))
}

fn f32le(xs: &[f32]) -> Value {
    hx(xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn f64le(xs: &[f64]) -> Value {
    hx(xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn inputs_json(i: &Inputs) -> Value {
    let p = &i.params;
    json!({
        "params": {
            "window": p.plan.window,
            "window_randomness_hex": hx(p.plan.window_randomness),
            "checkpoint_hex": hx(p.plan.checkpoint),
            "environment": {"name": p.plan.environment.name, "params": p.plan.environment.params},
            "generation": {
                "max_new_tokens": p.plan.generation.max_new_tokens,
                "temperature_milli": p.plan.generation.temperature_milli,
            },
            "group_size": p.plan.group_size,
            "challenge_randomness_hex": hx(p.challenge_randomness),
            "validator_hex": hx(p.validator.0),
            "hidden_size": toy::HIDDEN,
            "vocab_size": p.vocab_size,
            "max_sequence": p.max_sequence,
            "eos_ids": p.eos_ids,
            "groups_checked": p.groups_checked,
        },
        "registered_hex": i.registered.iter().map(|h| hx(h.0)).collect::<Vec<_>>(),
        "earlier": i.earlier.iter().map(|(w, works)| json!({
            "window": w,
            "works_hex": works.iter().map(hx).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "miners": i.miners.iter().map(|(h, uid, bytes)| json!({
            "hotkey_hex": hx(h.0), "uid": uid, "bundle_hex": hx(bytes),
        })).collect::<Vec<_>>(),
        "prompts": i.prompts.iter().map(|(id, answer)| match answer {
            Ok(tokens) => json!({"prompt_id": id, "tokens": tokens}),
            Err(why) => json!({"prompt_id": id, "no_such_prompt": why}),
        }).collect::<Vec<_>>(),
        "forward": i.forward.iter().map(|((miner, index), rollouts)| json!({
            "miner_hex": hx(miner.0),
            "group_index": index,
            "rollouts": rollouts.iter().map(|e| json!({
                "hidden_f32le_hex": e.hidden.iter().map(|h| f32le(h)).collect::<Vec<_>>(),
                "logprobs_f32le_hex": f32le(&e.logprobs),
                "gaps_f64le_hex": f64le(&e.gaps),
                "reward_bits": bits64(e.reward.0),
                "success": e.reward.1,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn expect_json(outcome: &WindowOutcome) -> Value {
    let reports: Vec<Value> = outcome
        .reports
        .iter()
        .map(|r| {
            json!({
                "hotkey_hex": hx(r.hotkey.0),
                "uid": r.uid,
                "bundle_status": r.bundle_status,
                "detail": r.detail,
                "bundle_sha256_hex": hx(r.bundle_sha256),
                "groups_submitted": r.groups_submitted,
                "eligible": r.eligible,
                "eligible_works_hex": r.eligible_works.iter().map(hx).collect::<Vec<_>>(),
                "replays_not_kept": r.replays_not_kept,
                "credited": r.credited,
                "credited_bits": bits64(r.credited),
                "checked": r.checked.iter().map(|c| json!({
                    "index": c.index,
                    "reason": c.outcome.verdict.reason,
                    "detail": c.outcome.verdict.detail,
                    "in_zone": c.outcome.in_zone,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let archive = encode_archive(&outcome.sealed).expect("the archive encodes");
    let mut history = WorkHistory::new();
    let window = outcome.sealed.window;
    for r in &outcome.reports {
        history.entry(window).or_default().insert(r.uid, r.credited);
    }
    let weights: Vec<Value> = weights(&history, window, &ScoreRule::default())
        .into_iter()
        .map(|(uid, w)| json!({"uid": uid, "weight_bits": bits64(w)}))
        .collect();
    json!({
        "reports": reports,
        "archive_sha256_hex": hx(Sha256::digest(&archive)),
        "archive_hex": hx(&archive),
        "weights": weights,
    })
}

// Parsing a case's inputs back (what a third party does).

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).expect("valid hex")
}

fn h32(v: &Value) -> [u8; 32] {
    unhex(v).try_into().expect("32 bytes")
}

fn num(v: &Value) -> u64 {
    v.as_u64().expect("an integer")
}

fn from_bits64(v: &Value) -> f64 {
    let s = v.as_str().expect("bits");
    f64::from_bits(u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex bits"))
}

fn parse_f32le(v: &Value) -> Vec<f32> {
    unhex(v)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn parse_f64le(v: &Value) -> Vec<f64> {
    unhex(v)
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn parse_inputs(v: &Value) -> Inputs {
    let p = &v["params"];
    let plan = WindowPlan {
        window: num(&p["window"]),
        window_randomness: h32(&p["window_randomness_hex"]),
        checkpoint: h32(&p["checkpoint_hex"]),
        environment: EnvironmentId {
            name: p["environment"]["name"].as_str().unwrap().into(),
            params: p["environment"]["params"].as_str().unwrap().into(),
        },
        generation: GenerationParams {
            max_new_tokens: num(&p["generation"]["max_new_tokens"]) as u32,
            temperature_milli: num(&p["generation"]["temperature_milli"]) as u32,
        },
        group_size: num(&p["group_size"]) as usize,
    };
    let mut params = WindowParams::new(
        plan,
        h32(&p["challenge_randomness_hex"]),
        num(&p["hidden_size"]) as usize,
        Hotkey(h32(&p["validator_hex"])),
        num(&p["vocab_size"]) as usize,
        num(&p["max_sequence"]) as usize,
        p["eos_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| num(t) as u32)
            .collect(),
    );
    params.groups_checked = num(&p["groups_checked"]) as usize;
    let list = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    Inputs {
        params,
        registered: list("registered_hex")
            .iter()
            .map(|h| Hotkey(h32(h)))
            .collect(),
        earlier: list("earlier")
            .iter()
            .map(|e| {
                let works = e["works_hex"].as_array().unwrap().iter().map(h32).collect();
                (num(&e["window"]), works)
            })
            .collect(),
        miners: list("miners")
            .iter()
            .map(|m| {
                let uid = num(&m["uid"]) as u16;
                (Hotkey(h32(&m["hotkey_hex"])), uid, unhex(&m["bundle_hex"]))
            })
            .collect(),
        prompts: list("prompts")
            .iter()
            .map(|a| {
                let answer = match a.get("tokens") {
                    Some(t) => Ok(t
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| num(x) as u32)
                        .collect()),
                    None => Err(a["no_such_prompt"].as_str().unwrap().to_string()),
                };
                (num(&a["prompt_id"]), answer)
            })
            .collect(),
        forward: list("forward")
            .iter()
            .map(|f| {
                let rollouts = f["rollouts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| RolloutEvidence {
                        hidden: r["hidden_f32le_hex"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(parse_f32le)
                            .collect(),
                        logprobs: parse_f32le(&r["logprobs_f32le_hex"]),
                        gaps: parse_f64le(&r["gaps_f64le_hex"]),
                        reward: (
                            from_bits64(&r["reward_bits"]),
                            r["success"].as_bool().unwrap(),
                        ),
                    })
                    .collect();
                (
                    (Hotkey(h32(&f["miner_hex"])), num(&f["group_index"]) as u32),
                    rollouts,
                )
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Cases

fn key(name: &str) -> Keypair {
    Keypair::from_seed(&Sha256::digest(name.as_bytes()).into())
}

fn plan() -> WindowPlan {
    WindowPlan {
        window: WINDOW,
        window_randomness: Sha256::digest(b"window randomness 300").into(),
        checkpoint: Sha256::digest(b"checkpoint 3").into(),
        environment: EnvironmentId {
            name: "toy".into(),
            params: "toy/v1".into(),
        },
        generation: GenerationParams {
            max_new_tokens: 4,
            temperature_milli: 700,
        },
        group_size: 2,
    }
}

fn params() -> WindowParams {
    let validator = key("validator").public();
    let challenge = Sha256::digest(b"challenge randomness 300").into();
    WindowParams::new(
        plan(),
        challenge,
        toy::HIDDEN,
        validator,
        toy::VOCAB,
        64,
        vec![toy::EOS],
    )
}

fn bytes(hotkey: Hotkey, window: u64, groups: Vec<Group>) -> Vec<u8> {
    encode_bundle(&WindowBundle {
        hotkey,
        window,
        groups,
    })
    .expect("the bundle encodes")
}

/// Honest groups of `key` for `ids`.
fn honest(key: &Keypair, ids: &[u64]) -> Vec<Group> {
    ids.iter().map(|&id| toy::mine(key, &plan(), id)).collect()
}

/// `group` edited by `edit` and signed again by `key` (a miner signs what it uploads).
fn resigned(key: &Keypair, mut group: Group, edit: impl FnOnce(&mut Group)) -> Group {
    edit(&mut group);
    key.sign_group(&mut group);
    group
}

/// Replaces rollout `i`'s completion, keeping the group's lengths consistent.
fn set_completion(group: &mut Group, i: usize, completion: &[u32]) {
    let r = &mut group.rollouts[i];
    r.tokens.truncate(r.prompt_len as usize);
    r.tokens.extend_from_slice(completion);
    r.sketches.resize(r.tokens.len(), SketchDigest([0, 0]));
    r.logprobs.resize(completion.len(), -1.0);
}

type Tweak = Box<dyn Fn(&Hotkey, u32, &mut Vec<RolloutEvidence>)>;

struct Case {
    name: &'static str,
    what: &'static str,
    miners: Vec<(Keypair, Vec<u8>)>,
    earlier: Vec<(u64, Vec<[u8; 32]>)>,
    tweak: Tweak,
}

fn case(name: &'static str, what: &'static str, miners: Vec<(Keypair, Vec<u8>)>) -> Case {
    Case {
        name,
        what,
        miners,
        earlier: Vec::new(),
        tweak: Box::new(|_, _, _| {}),
    }
}

/// One miner's bundle of `groups`.
fn one(key: Keypair, groups: Vec<Group>) -> Vec<(Keypair, Vec<u8>)> {
    let b = bytes(key.public(), WINDOW, groups);
    vec![(key, b)]
}

fn cases() -> Vec<Case> {
    let a = || key("miner a");
    let b = || key("miner b");
    let base = || honest(&a(), &[0, 1, 2]);
    let edited = |i: usize, edit: fn(&mut Group)| {
        let mut groups = base();
        groups[i] = resigned(&a(), groups[i].clone(), edit);
        one(a(), groups)
    };
    let mut out = vec![
        case(
            "honest",
            "three honest groups, all spot-checked: accepted; credit = in-zone groups",
            one(a(), base()),
        ),
        case("two_honest_miners", "two miners' honest bundles", {
            let mut m = one(a(), base());
            m.extend(one(b(), honest(&b(), &[3, 4])));
            m
        }),
        case(
            "spot_checks",
            "ten honest groups, eight spot-checked (sample_groups)",
            one(a(), honest(&a(), &(0..10).collect::<Vec<_>>())),
        ),
        case(
            "empty_bundle",
            "a bundle with no groups: nothing checked, no credit",
            one(a(), vec![]),
        ),
        // Bundle level.
        case("malformed", "the bundle bytes truncated by one byte", {
            let mut m = one(a(), base());
            m[0].1.pop();
            m
        }),
        case(
            "hotkey_mismatch",
            "miner a's bucket serves registered miner b's bundle",
            {
                let b_bytes = bytes(b().public(), WINDOW, honest(&b(), &[0]));
                vec![(a(), b_bytes)]
            },
        ),
        case(
            "unregistered_hotkey",
            "miner a's bucket serves a bundle of an unregistered key",
            {
                let c = key("unregistered");
                vec![(a(), bytes(c.public(), WINDOW, honest(&c, &[0])))]
            },
        ),
        case("window_mismatch", "a bundle made for the next window", {
            let mut next = plan();
            next.window = WINDOW + 30;
            let groups = vec![toy::mine(&a(), &next, 0)];
            vec![(a(), bytes(a().public(), WINDOW + 30, groups))]
        }),
        // Stage 1.
        case(
            "randomness_mismatch",
            "group 1 claims other window randomness (re-signed)",
            edited(1, |g| g.header.window_randomness = [9; 32]),
        ),
        case(
            "environment_mismatch",
            "group 1 names another environment version",
            edited(1, |g| g.header.environment.params = "toy/v2".into()),
        ),
        case(
            "generation_mismatch",
            "group 1 claims temperature 1.0",
            edited(1, |g| g.header.generation.temperature_milli = 1000),
        ),
        case(
            "stale_checkpoint",
            "group 1 made with another checkpoint",
            edited(1, |g| g.header.checkpoint = [8; 32]),
        ),
        // Stage 2.
        case(
            "group_size",
            "group 1 has one rollout, the subnet uses two",
            edited(1, |g| {
                g.rollouts.pop();
            }),
        ),
        case(
            "token_limits",
            "group 1's completion holds a token id outside the vocabulary",
            edited(1, |g| {
                let n = g.rollouts[0].tokens.len();
                g.rollouts[0].tokens[n - 1] = 99;
            }),
        ),
        case(
            "prompt_mismatch",
            "group 1's prompt tokens are not the canonical rendering",
            edited(1, |g| {
                for r in &mut g.rollouts {
                    r.tokens[2] = 9;
                }
            }),
        ),
        case(
            "no_such_prompt",
            "group 1 names prompt 150, outside the environment's prompt space",
            edited(1, |g| g.header.prompt_id = 150),
        ),
        case(
            "bad_termination",
            "group 1's first completion has an EOS before its end",
            edited(1, |g| set_completion(g, 0, &[toy::EOS, 5])),
        ),
        // Stage 3.
        case("signature", "group 1's reward changed after signing", {
            let mut groups = base();
            groups[1].rollouts[0].reward += 1.0;
            one(a(), groups)
        }),
        // Stage 4.
        case("duplicate_group", "group 2 repeats group 0", {
            let mut groups = base();
            groups[2] = groups[0].clone();
            one(a(), groups)
        }),
        case(
            "duplicate_prompt",
            "group 2 is another group for group 1's prompt tokens",
            {
                let mut groups = base();
                // Prompt ids 1 and 11 render the same tokens; a changed completion makes it other work.
                groups[2] = resigned(&a(), toy::mine(&a(), &plan(), 11), |g| {
                    let n = g.rollouts[0].tokens.len();
                    g.rollouts[0].tokens[n - 1] =
                        (g.rollouts[0].tokens[n - 1] + 1) % toy::VOCAB as u32;
                });
                one(a(), groups)
            },
        ),
        // Precedence among stages 1–4.
        case(
            "binding_before_signature",
            "group 1 is stale and its signature is bad: stale_checkpoint",
            {
                let mut groups = base();
                groups[1].header.checkpoint = [8; 32];
                one(a(), groups)
            },
        ),
        case(
            "structure_before_signature",
            "group 1 has one rollout and a bad signature: group_size",
            {
                let mut groups = base();
                groups[1].rollouts.pop();
                one(a(), groups)
            },
        ),
        case(
            "earlier_signature_before_later_field",
            "group 0's signature is bad and group 2 is stale: signature at 0",
            {
                let mut groups = base();
                groups[0].rollouts[0].reward += 1.0;
                groups[2] = resigned(&a(), groups[2].clone(), |g| g.header.checkpoint = [8; 32]);
                one(a(), groups)
            },
        ),
        case(
            "signature_before_duplicates",
            "group 2 repeats group 0 and group 1's signature is bad: signature",
            {
                let mut groups = base();
                groups[2] = groups[0].clone();
                groups[1].rollouts[0].reward += 1.0;
                one(a(), groups)
            },
        ),
    ];
    // Replays (void) and their precedence over copies.
    let replayed = toy::mine(&a(), &plan(), 1);
    let mut replay = case(
        "replay",
        "group 1's work was credited in an earlier window: void; the rest checked",
        one(a(), base()),
    );
    replay.earlier = vec![(
        WINDOW - 30,
        vec![grail_proto::binding::work_digest(&replayed)],
    )];
    out.push(replay);
    let mut replay_copy = case(
        "replay_beats_copy",
        "miner b copies a's group 1, which is also a replay: void for both",
        {
            let mut m = one(a(), base());
            let copy = resigned(&b(), replayed.clone(), |g| g.header.hotkey = b().public());
            m.extend(one(b(), vec![copy]));
            m
        },
    );
    replay_copy.earlier = vec![(
        WINDOW - 30,
        vec![grail_proto::binding::work_digest(&replayed)],
    )];
    out.push(replay_copy);
    // Stage 6.
    out.extend([
        case(
            "proof_failed",
            "group 1's sketches are not the model's (re-signed)",
            edited(1, |g| {
                for s in &mut g.rollouts[0].sketches {
                    s.0[0] ^= 0x5555;
                }
            }),
        ),
        case(
            "logprobs_mismatch",
            "group 1 claims a log-prob 0.5 lower",
            edited(1, |g| g.rollouts[0].logprobs[0] -= 0.5),
        ),
        case(
            "sampling_mismatch",
            "group 1's tokens follow miner b's noise, signed by a",
            {
                let mut groups = base();
                groups[1] = resigned(&a(), toy::mine(&b(), &plan(), 1), |g| {
                    g.header.hotkey = a().public()
                });
                one(a(), groups)
            },
        ),
        case(
            "reward_mismatch",
            "group 1 claims the other reward on rollout 0",
            edited(1, |g| {
                let r = &mut g.rollouts[0];
                r.reward = 1.0 - r.reward;
                r.success = !r.success;
            }),
        ),
        case(
            "advantages_mismatch",
            "group 1's advantages are rescaled (2a + 0.5)",
            edited(1, |g| {
                for r in &mut g.rollouts {
                    r.advantage = 2.0 * r.advantage + 0.5;
                }
            }),
        ),
        case(
            "first_failure_stops_the_checks",
            "group 0 fails its proof: the window is zeroed and groups 1, 2 are not checked",
            edited(0, |g| {
                for s in &mut g.rollouts[1].sketches {
                    s.0[1] ^= 0x7777;
                }
            }),
        ),
        case(
            "copycat",
            "miner b uploads a's group 1 re-signed under its own hotkey",
            {
                let mut m = one(a(), base());
                let copy = resigned(&b(), base()[1].clone(), |g| g.header.hotkey = b().public());
                m.extend(one(b(), vec![copy]));
                m
            },
        ),
        case(
            "copy_fed_first",
            "the copier's bundle comes first: the owner is unharmed",
            {
                let copy = resigned(&b(), base()[1].clone(), |g| g.header.hotkey = b().public());
                let mut m = one(b(), vec![copy]);
                m.extend(one(a(), base()));
                m
            },
        ),
    ]);
    // Sampling margin: the validator's gaps put claimed tokens within δ of the best other.
    let ambiguous = |count: usize| -> Tweak {
        Box::new(move |_, index, evidence: &mut Vec<RolloutEvidence>| {
            if index == 0 {
                for e in evidence.iter_mut().take(count) {
                    if let Some(g) = e.gaps.first_mut() {
                        *g = -5e-4;
                    }
                }
            }
        })
    };
    let mut one_ambiguous = case("ambiguous_not_in_zone", "group 0 (in the zone) needed the sampling margin once: accepted, not credited as zone work", one(a(), base()));
    one_ambiguous.tweak = ambiguous(1);
    let mut sample_cap = case(
        "sample_ambiguity_cap",
        "three ambiguous positions over the checked sample (cap 2): sampling_mismatch",
        {
            let mut groups = base();
            groups.push(toy::mine(&a(), &plan(), 3));
            one(a(), groups)
        },
    );
    sample_cap.tweak = Box::new(|_, index, evidence: &mut Vec<RolloutEvidence>| {
        let hits: &[usize] = match index {
            1 => &[0, 1],
            2 => &[0],
            _ => &[],
        };
        for &i in hits {
            if let Some(g) = evidence[i].gaps.first_mut() {
                *g = -5e-4;
            }
        }
    });
    let mut rollout_cap = case(
        "rollout_ambiguity_cap",
        "two ambiguous positions in one rollout (cap 1): sampling_mismatch",
        one(a(), base()),
    );
    rollout_cap.tweak = Box::new(|_, index, evidence: &mut Vec<RolloutEvidence>| {
        if index == 1 {
            let gaps = &mut evidence[0].gaps;
            let n = gaps.len().min(2);
            for g in &mut gaps[..n] {
                *g = -5e-4;
            }
        }
    });
    let mut miss = case(
        "sampling_miss",
        "the validator's gap of one claimed token is below −δ: sampling_mismatch",
        one(a(), base()),
    );
    miss.tweak = Box::new(|_, index, evidence: &mut Vec<RolloutEvidence>| {
        if index == 1 {
            evidence[0].gaps[0] = -2e-3;
        }
    });
    out.extend([one_ambiguous, sample_cap, rollout_cap, miss]);
    out
}

fn registered() -> Vec<Hotkey> {
    vec![key("miner a").public(), key("miner b").public()]
}

/// Mines every case and answers its requests with the toy model: the whole file.
fn build() -> Value {
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|c| {
            let mut inputs = Inputs {
                params: params(),
                registered: registered(),
                earlier: c.earlier,
                miners: c
                    .miners
                    .iter()
                    .enumerate()
                    .map(|(uid, (k, b))| (k.public(), uid as u16 + 1, b.clone()))
                    .collect(),
                prompts: BTreeMap::new(),
                forward: BTreeMap::new(),
            };
            let mut toy = Toy {
                tweak: &*c.tweak,
                prompts: BTreeMap::new(),
                forward: BTreeMap::new(),
            };
            let outcome = run(&inputs, &mut toy);
            inputs.prompts = toy.prompts;
            inputs.forward = toy.forward;
            json!({
                "name": c.name,
                "what": c.what,
                "inputs": inputs_json(&inputs),
                "expect": expect_json(&outcome),
            })
        })
        .collect();
    json!({
        "meta": {
            "format": "grail-rs window verifier vectors",
            "protocol_version": params::PROTOCOL_VERSION,
            "generator": "crates/grail-proto/tests/window_vectors.rs; regenerate with `cargo xtask vectors`",
            "layout": "see the generator's module documentation and docs/protocol.md §14",
        },
        "cases": cases,
    })
}

fn path() -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    root.join(FILE)
}

/// The file (written first, once, under `GRAIL_WRITE_VECTORS=1`).
fn read() -> &'static Value {
    static FILE_VALUE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    FILE_VALUE.get_or_init(|| {
        let path = path();
        if std::env::var(WRITE_ENV).is_ok_and(|v| v == "1") {
            let text = serde_json::to_string_pretty(&build()).expect("renders");
            std::fs::write(&path, text + "\n")
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            eprintln!("wrote {}", path.display());
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}): `cargo xtask vectors`",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("valid JSON")
    })
}

#[test]
fn every_case_gives_the_recorded_verdicts_credit_weights_and_archive_bytes() {
    let file = read();
    let cases = file["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for c in cases {
        let inputs = parse_inputs(&c["inputs"]);
        let got = expect_json(&run(&inputs, &mut Recorded(&inputs)));
        if got != c["expect"] {
            failures.push(format!(
                "{}: expected {}\n   got {}",
                c["name"], c["expect"]["reports"], got["reports"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_cases_reach_every_reason_they_are_named_after() {
    let file = read();
    let reasons = |c: &Value| -> Vec<String> {
        let mut out = Vec::new();
        for r in c["expect"]["reports"].as_array().unwrap() {
            out.push(r["bundle_status"].as_str().unwrap().to_string());
            for g in r["checked"].as_array().unwrap() {
                out.push(g["reason"].as_str().unwrap().to_string());
            }
        }
        out
    };
    let want: &[(&str, &str)] = &[
        ("honest", "accepted"),
        ("malformed", "malformed"),
        ("hotkey_mismatch", "hotkey_mismatch"),
        ("unregistered_hotkey", "unregistered_hotkey"),
        ("window_mismatch", "window_mismatch"),
        ("randomness_mismatch", "randomness_mismatch"),
        ("environment_mismatch", "environment_mismatch"),
        ("generation_mismatch", "generation_mismatch"),
        ("stale_checkpoint", "stale_checkpoint"),
        ("group_size", "group_size"),
        ("token_limits", "token_limits"),
        ("prompt_mismatch", "prompt_mismatch"),
        ("no_such_prompt", "prompt_mismatch"),
        ("bad_termination", "bad_termination"),
        ("signature", "signature"),
        ("duplicate_group", "duplicate_group"),
        ("duplicate_prompt", "duplicate_prompt"),
        ("binding_before_signature", "stale_checkpoint"),
        ("structure_before_signature", "group_size"),
        ("earlier_signature_before_later_field", "signature"),
        ("signature_before_duplicates", "signature"),
        ("replay", "replay"),
        ("replay_beats_copy", "replay"),
        ("proof_failed", "proof_failed"),
        ("logprobs_mismatch", "logprobs_mismatch"),
        ("sampling_mismatch", "sampling_mismatch"),
        ("reward_mismatch", "reward_mismatch"),
        ("advantages_mismatch", "advantages_mismatch"),
        ("first_failure_stops_the_checks", "proof_failed"),
        ("copycat", "copycat"),
        ("copy_fed_first", "copycat"),
        ("sample_ambiguity_cap", "sampling_mismatch"),
        ("rollout_ambiguity_cap", "sampling_mismatch"),
        ("sampling_miss", "sampling_mismatch"),
    ];
    for (name, reason) in want {
        let c = file["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == *name)
            .unwrap_or_else(|| panic!("no case {name}"));
        assert!(
            reasons(c).iter().any(|r| r == reason),
            "{name}: {:?}",
            reasons(c)
        );
    }
    // An owner never loses credit to a copy, whatever the feed order.
    for name in ["copycat", "copy_fed_first"] {
        let c = file["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let owner = &c["expect"]["reports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["hotkey_hex"] == hex::encode(key("miner a").public().0))
            .unwrap()["checked"];
        assert!(
            owner
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["reason"] == "accepted"),
            "{name}: {owner}"
        );
    }
}
