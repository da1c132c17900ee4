//! Miners' bundles and validators' archives through the validator's real checks on a
//! tiny model.

use std::collections::BTreeMap;

use grail_env::Environment;
use grail_node::context::ModelContext;
use grail_proto::archive::{decode_archive, encode_archive};
use grail_proto::params::GROUPS_CHECKED;
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::rules::training::agreed_entries;
use grail_proto::rules::WindowPlan;
use grail_proto::signing::{verify_group, Keypair};
use grail_proto::verifier::{BundleCheck, WindowOutcome, WindowParams};
use grail_proto::{
    decode_bundle, encode_bundle, GenerationParams, SketchCoefficients, WindowBundle,
};
use grail_validate::verify::{finish_window, window_params, MinerReport, PromptCache, WindowCheck};

use super::Target;
use crate::engine::Rng;

/// A tiny model, an environment, one window's plan and a miner key: what the validator
/// checks bundles against.
struct Fixture {
    context: ModelContext,
    env: Box<dyn Environment>,
    plan: WindowPlan,
    coefficients: SketchCoefficients,
    challenge: [u8; 32],
    key: Keypair,
}

const WINDOW: u64 = 360;

/// Bytes bincode gives meaning to: all-ones and zero runs, the varint markers of u32/u64
/// lengths (0xfc, 0xfd), a huge claimed length.
const BINCODE_WORDS: &[&[u8]] = &[
    &[0xff; 8],
    &[0; 8],
    &[0xfc, 0xff, 0xff, 0xff, 0xff],
    &[0xfd],
    &[0xfb],
];

fn fixture() -> &'static Fixture {
    // Tensors are not `Sync`: one leaked fixture per thread (campaigns run on one thread).
    thread_local! {
        static FIXTURE: &'static Fixture = Box::leak(Box::new(build_fixture()));
    }
    FIXTURE.with(|f| *f)
}

fn build_fixture() -> Fixture {
    {
        let dir = super::infer::tiny_model_dir();
        let context = ModelContext::load(&dir, tch::Device::Cpu).expect("the tiny model loads");
        let env = grail_env::by_name("math", None).expect("the math environment exists");
        let window_randomness = [0x5a; 32];
        let plan = WindowPlan {
            window: WINDOW,
            window_randomness,
            checkpoint: [0x11; 32],
            environment: env.id(),
            generation: GenerationParams {
                max_new_tokens: 6,
                temperature_milli: 1000,
            },
            group_size: 2,
        };
        let coefficients =
            SketchCoefficients::derive(&window_randomness, context.model.config().hidden_size);
        Fixture {
            context,
            env,
            plan,
            coefficients,
            challenge: [0xc3; 32],
            key: Keypair::from_seed(&[7; 32]),
        }
    }
}

/// Real bundles: groups mined on the tiny model and signed.
fn bundle_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let groups: Vec<_> = (0..3u64)
        .map(|prompt_id| {
            grail_mine::groups::make_group(
                &f.context,
                f.env.as_ref(),
                &f.plan,
                &f.coefficients,
                &f.key,
                prompt_id,
            )
            .expect("the tiny model mines a group")
        })
        .collect();
    let bundle = |groups: Vec<_>| WindowBundle {
        hotkey: f.key.public(),
        window: WINDOW,
        groups,
    };
    vec![
        encode_bundle(&bundle(groups.clone())).expect("encodes"),
        encode_bundle(&bundle(groups[..1].to_vec())).expect("encodes"),
    ]
}

/// The window's parameters the fuzzed validator checks against.
fn params(f: &Fixture) -> WindowParams {
    let validator = Keypair::from_seed(&[9; 32]).public();
    window_params(
        &f.context,
        f.plan.clone(),
        f.challenge,
        validator,
        GROUPS_CHECKED,
    )
}

/// The validator's window check of one miner's groups (checks on every group, then the
/// forward-pass checks of the sampled ones), as `grail_validate` runs it.
fn validate(groups: Vec<grail_proto::Group>) -> WindowOutcome {
    let f = fixture();
    let params = params(f);
    let check = WindowCheck {
        context: &f.context,
        env: f.env.as_ref(),
        params: &params,
    };
    let bundle = BundleCheck::new(&params, MinerReport::new(f.key.public(), 0), groups);
    let pending = check
        .prechecks()
        .run(bundle, &PromptCache::new(), &ReplaySet::default());
    finish_window(&check, vec![pending])
}

/// What the validator's window check says about one miner's bundle bytes.
fn check_bundle(bytes: &[u8], resign: bool) -> &'static str {
    let f = fixture();
    if let Err(refused) = BundleCheck::open(&params(f), f.key.public(), 0, bytes, |_| true) {
        return refused
            .bundle_status
            .parse::<grail_proto::rules::Reason>()
            .map_or("unknown_bundle_status", |r| r.as_str());
    }
    let Ok(mut bundle) = decode_bundle(bytes) else {
        return "opened_but_does_not_decode";
    };
    if resign {
        // A miner signs whatever it uploads: every group carries a valid signature.
        for g in &mut bundle.groups {
            f.key.sign_group(g);
        }
    }
    let outcome = validate(bundle.groups);
    let report = &outcome.reports[0];
    if report.bundle_status == grail_proto::verifier::OWN_FAILURE_STATUS {
        return "validator_error";
    }
    match report.checked.iter().find(|c| !c.outcome.verdict.accepted) {
        Some(c) => c.outcome.reason().as_str(),
        None if report.checked.is_empty() => "no_groups_checked",
        None => "accepted",
    }
}

/// Bundle bytes as a miner uploads them: decoding, signatures, binding and structure,
/// then the forward-pass checks of the sampled groups.
pub fn bundle() -> Target {
    Target {
        name: "bundle",
        what: "bundle bytes: decode, sr25519 signatures, every group check on a tiny model",
        max_len: 64 << 10,
        seeds: bundle_seeds,
        dictionary: BINCODE_WORDS,
        mutate: None,
        run: |bytes| check_bundle(bytes, false),
    }
}

/// Like `bundle`, but every group is re-signed by the miner's key after decoding, so
/// mutated groups get past the signature into structure, proof, log-prob, sampling,
/// reward and advantage checks.
pub fn group() -> Target {
    Target {
        name: "group",
        what: "signed groups (re-signed after mutation): structure, proof, log-probs, sampling, reward",
        max_len: 64 << 10,
        seeds: bundle_seeds,
        dictionary: &[&[0xff; 4], &[0; 4], &[0x80, 0x3f], &[0x7f, 0x7f, 0x7f, 0x7f], &[0xfb]],
        mutate: Some(edit_bundle),
        run: |bytes| check_bundle(bytes, true),
    }
}

/// Sealed-window archives as a trainer reads them from validators' buckets.
pub fn archive() -> Target {
    Target {
        name: "archive",
        what: "sealed-window archives: decode and the trainer's stake-weighted agreement",
        max_len: 64 << 10,
        seeds: || {
            let groups = decode_bundle(&bundle_seeds()[0])
                .expect("seed decodes")
                .groups;
            let sealed = validate(groups).sealed;
            vec![encode_archive(&sealed).expect("encodes")]
        },
        dictionary: BINCODE_WORDS,
        mutate: None,
        run: |bytes| {
            let Ok(archive) = decode_archive(bytes) else {
                return "malformed";
            };
            let stakes = BTreeMap::from([(archive.validator, 1u64)]);
            let agreed = agreed_entries(WINDOW, &[0; 32], &[&archive], &stakes, verify_group);
            if agreed.is_empty() {
                "nothing_agreed"
            } else {
                "agreed"
            }
        },
    }
}

/// Floats a dishonest miner might claim.
const ODD_FLOATS: [f64; 8] = [0.0, -0.0, 1.0, -1.0, 1e-30, 1e30, f64::NAN, f64::INFINITY];

/// One field of one decoded group changed: token ids and lengths, the prompt length,
/// sketches, log-probs, reward, advantage, success, header fields, or rollouts and groups
/// dropped or repeated; then encoded again.
fn edit_bundle(bytes: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let mut bundle = decode_bundle(bytes).ok()?;
    if bundle.groups.is_empty() {
        return None;
    }
    let odd = |rng: &mut Rng| ODD_FLOATS[rng.below(ODD_FLOATS.len())];
    let g = rng.below(bundle.groups.len());
    let group = &mut bundle.groups[g];
    let r = rng.below(group.rollouts.len().max(1));
    let small =
        |rng: &mut Rng| [0u32, 1, 2, 3, 255, 298, 299, 300, 65_535, u32::MAX][rng.below(10)];
    let op = rng.below(14);
    let n = group.rollouts.len();
    if let (true, Some(x)) = (op < 10, group.rollouts.get_mut(r)) {
        match op {
            0 if !x.tokens.is_empty() => {
                let i = rng.below(x.tokens.len());
                x.tokens[i] = small(rng);
            }
            1 => x.prompt_len = small(rng).min(x.tokens.len() as u32 + 1),
            2 => {
                let keep = rng.below(x.tokens.len() + 1);
                x.tokens.truncate(keep);
            }
            3 => {
                let extra = 1 + rng.below(4);
                x.tokens.extend((0..extra).map(|_| small(rng)));
            }
            4 if !x.sketches.is_empty() => {
                let i = rng.below(x.sketches.len());
                let k = rng.below(x.sketches[i].0.len());
                x.sketches[i].0[k] = x.sketches[i].0[k].wrapping_add(small(rng) as u16);
            }
            5 if !x.logprobs.is_empty() => {
                let i = rng.below(x.logprobs.len());
                x.logprobs[i] = odd(rng) as f32;
            }
            6 => x.reward = odd(rng),
            7 => x.advantage = odd(rng),
            8 => x.success = !x.success,
            _ => {
                let keep = rng.below(x.sketches.len() + 1);
                x.sketches.truncate(keep);
            }
        }
    } else {
        match op {
            10 => {
                let h = &mut group.header;
                match rng.below(5) {
                    0 => h.prompt_id = u64::from(small(rng)),
                    1 => h.generation.max_new_tokens = small(rng),
                    2 => h.generation.temperature_milli = small(rng),
                    3 => h.window = h.window.wrapping_add(1),
                    _ => h.protocol_version = small(rng),
                }
            }
            11 if n > 0 => {
                group.rollouts.remove(r);
            }
            12 if n > 0 => {
                let copy = group.rollouts[r].clone();
                group.rollouts.push(copy);
            }
            _ => {
                let copy = bundle.groups[g].clone();
                bundle.groups.push(copy);
            }
        }
    }
    encode_bundle(&bundle).ok()
}
