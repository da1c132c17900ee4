//! A third-party verifier of grail window bundles, on a toy model.
//!
//! grail-proto holds every protocol rule; a verifier supplies what it cannot compute:
//!
//! - the public randomness: the hashes of the window's first block and of its deadline
//!   block (from the chain) and the drand beacons pinned to them (after checking their BLS
//!   signatures), which give `window_randomness` and `challenge_randomness`;
//! - the window's parameters ([`WindowPlan`]: the checkpoint in effect, environment,
//!   sampling parameters, group size) and the miner's hotkey (the bucket's owner);
//! - the checkpoint's forward pass: last-layer hidden states at the challenged positions
//!   (an implementation of [`HiddenStates`]), and from its logits the log-probs and each
//!   completion token's sampling gap under the public noise ([`sampling::claimed_gap`]);
//! - the tokenizer's canonical prompt of a prompt id and the environment's reward.
//!
//! A deterministic toy model stands in for all of them here. The example mines a signed
//! bundle as a miner would and encodes it; then, as a third party, feeds the bytes to
//! grail-proto's window verifier (`grail_proto::verifier`: every rule, in order) and only
//! answers its requests — canonical prompts, signatures, forward passes — and prints each
//! checked group's verdict and the credited work; then it tampers with the bundle and
//! shows each rejection and its reason.
//!
//! Run it with `cargo run -p grail-proto --example verify_bundle` (it needs the default
//! `sr25519` feature). `cargo test -p grail-proto` runs it as a test.

use grail_proto::rules::bundle::ReplaySet;
use grail_proto::rules::group::RolloutEvidence;
use grail_proto::rules::WindowPlan;
use grail_proto::sampling::{claimed_gap, sample_token, temperature, RolloutNoise};
use grail_proto::signing::Keypair;
use grail_proto::verifier::{
    BundleCheck, BundleRequest, MinerReport, WindowParams, WindowRequest, WindowVerifier,
};
use grail_proto::*;

const VOCAB: usize = 16;
const HIDDEN: usize = 32;
const EOS: u32 = 0;

/// The toy checkpoint: the hidden state at position `p` depends on `tokens[..=p]`, and the
/// logits of the next token are a projection of it.
struct ToyModel;

impl ToyModel {
    fn hidden(&self, tokens: &[u32], p: usize) -> Vec<f32> {
        let state = tokens[..=p]
            .iter()
            .fold(0x9e37_79b9_7f4a_7c15u64, |acc, &t| {
                acc.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(u64::from(t) + 1)
            });
        (0..HIDDEN as u32)
            .map(|i| ((state.rotate_left(2 * i) % 2001) as f32 - 1000.0) / 400.0)
            .collect()
    }

    /// Logits of the token after `tokens[..=p]`.
    fn logits(&self, tokens: &[u32], p: usize) -> Vec<f32> {
        let h = self.hidden(tokens, p);
        (0..VOCAB).map(|j| h[j] + h[j + VOCAB] / 2.0).collect()
    }
}

impl HiddenStates for ToyModel {
    type Error = std::convert::Infallible;

    fn last_hidden_states(
        &mut self,
        tokens: &[u32],
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>, Self::Error> {
        Ok(positions.iter().map(|&p| self.hidden(tokens, p)).collect())
    }
}

/// Log-probability of `token` under `logits` at temperature 1.
fn logprob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z));
    let total: f64 = logits.iter().map(|&z| f64::from(z - max).exp()).sum();
    (f64::from(logits[token as usize] - max) - total.ln()) as f32
}

/// The canonical prompt of a prompt id (a real verifier renders it with the tokenizer).
fn prompt(prompt_id: u64) -> Vec<u32> {
    vec![1, 2 + (prompt_id % 10) as u32, 3, 4]
}

/// The toy environment: reward 1 when the completion contains token 7.
fn reward(completion: &[u32]) -> (f64, bool) {
    let success = completion.contains(&7);
    (f64::from(u8::from(success)), success)
}

/// A miner's group: M completions drawn with the public noise, sketched and signed.
fn mine(key: &Keypair, plan: &WindowPlan, prompt_id: u64) -> Group {
    let coefficients = SketchCoefficients::derive(&plan.window_randomness, HIDDEN);
    let t = temperature(plan.generation.temperature_milli);
    let prompt = prompt(prompt_id);
    let max_new = plan.generation.max_new_tokens as usize;
    let mut rollouts: Vec<Rollout> = (0..plan.group_size as u32)
        .map(|i| {
            let (mut tokens, mut logprobs) = (prompt.clone(), Vec::new());
            let noise = RolloutNoise::new(&plan.window_randomness, &key.public(), &prompt, i);
            for n in noise.take(max_new) {
                let z = ToyModel.logits(&tokens, tokens.len() - 1);
                let token = sample_token(&z, t, n).expect("finite logits");
                logprobs.push(logprob(&z, token));
                tokens.push(token);
                if token == EOS {
                    break;
                }
            }
            let (reward, success) = reward(&tokens[prompt.len()..]);
            let hidden = (0..tokens.len()).map(|p| ToyModel.hidden(&tokens, p));
            let sketches = hidden.map(|h| coefficients.sketch(&h).digest()).collect();
            let prompt_len = prompt.len() as u32;
            Rollout {
                tokens,
                prompt_len,
                sketches,
                logprobs,
                reward,
                advantage: 0.0,
                success,
            }
        })
        .collect();
    let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward).collect();
    for (r, a) in rollouts.iter_mut().zip(grpo::advantages(&rewards)) {
        r.advantage = a;
    }
    let header = plan.header(key.public(), prompt_id);
    let mut group = Group {
        header,
        rollouts,
        signature: Signature([0; 64]),
    };
    key.sign_group(&mut group);
    group
}

/// The verifier's forward pass and environment for a spot-checked group: the evidence
/// grail-proto judges ([`RolloutEvidence`], one per rollout).
fn forward(group: &Group, positions: &[Vec<usize>]) -> Vec<RolloutEvidence> {
    let t = temperature(group.header.generation.temperature_milli);
    let h = &group.header;
    group
        .rollouts
        .iter()
        .zip(positions)
        .enumerate()
        .map(|(i, (r, pos))| {
            let Ok(hidden) = ToyModel.last_hidden_states(&r.tokens, pos);
            let noise = RolloutNoise::new(&h.window_randomness, &h.hotkey, r.prompt(), i as u32);
            // The logits that predicted each completion token.
            let logits: Vec<Vec<f32>> = (r.prompt_len as usize - 1..r.tokens.len() - 1)
                .map(|p| ToyModel.logits(&r.tokens, p))
                .collect();
            let claimed = || logits.iter().zip(r.completion());
            RolloutEvidence {
                hidden,
                logprobs: claimed().map(|(z, &token)| logprob(z, token)).collect(),
                // The bundle check kept every id below VOCAB.
                gaps: claimed()
                    .zip(noise)
                    .map(|((z, &token), n)| claimed_gap(z, t, token, n).unwrap())
                    .collect(),
                reward: reward(r.completion()),
            }
        })
        .collect()
}

/// What a third party does with a miner's pinned bundle bytes: every rule is
/// grail-proto's window verifier; this function only answers its requests (canonical
/// prompts, signatures, forward passes) and returns the miner's report.
fn verify(bytes: &[u8], miner: &Hotkey, params: &WindowParams) -> MinerReport {
    let registered = |h: &Hotkey| h == miner;
    let mut check = match BundleCheck::open(params, *miner, 1, bytes, registered) {
        Ok(check) => check,
        Err(refused) => return *refused,
    };
    loop {
        match check.poll() {
            BundleRequest::Prompt { prompt_id } => check.answer_prompt(Ok(Ok(prompt(prompt_id)))),
            BundleRequest::Signatures { groups } => {
                let valid = groups
                    .iter()
                    .map(grail_proto::signing::verify_group)
                    .collect();
                check.answer_signatures(valid);
            }
            BundleRequest::Done => break,
        }
    }
    let pending = check.finish(&ReplaySet::default());
    let mut window = WindowVerifier::new(params, vec![pending]);
    while let WindowRequest::Forward(ask) = window.poll() {
        let evidence = forward(ask.group, ask.positions);
        window.answer_forward(Ok(evidence));
    }
    let mut outcome = window.finish();
    outcome.reports.remove(0)
}

/// Mines a bundle, then verifies it and three tampered copies: each case's outcome.
fn run() -> Vec<(&'static str, MinerReport)> {
    let key = Keypair::from_uri("//Alice").expect("a dev key");
    let beacon = |round: u64, byte: u8| Beacon {
        round,
        randomness: [byte; 32],
    };
    let plan = WindowPlan {
        window: 300,
        window_randomness: window_randomness(300, &[0x11; 32], &beacon(1_000, 0x22)),
        checkpoint: [7; 32],
        environment: EnvironmentId {
            name: "toy".into(),
            params: "v1".into(),
        },
        generation: GenerationParams {
            max_new_tokens: 24,
            temperature_milli: 700,
        },
        group_size: 4,
    };
    let groups = (0..3)
        .map(|prompt_id| mine(&key, &plan, prompt_id))
        .collect();
    let bundle = WindowBundle {
        hotkey: key.public(),
        window: plan.window,
        groups,
    };
    let bytes = encode_bundle(&bundle).expect("an honest bundle encodes");
    // Known only after the upload deadline.
    let challenge = challenge_randomness(300, &[0x33; 32], &beacon(1_010, 0x44));
    let validator = Keypair::from_uri("//Bob").expect("a dev key").public();
    let params = WindowParams::new(plan, challenge, HIDDEN, validator, VOCAB, 256, vec![EOS]);
    let check = |bytes: &[u8]| verify(bytes, &key.public(), &params);

    // In transit: the last byte belongs to the last group's signature.
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    // The miner claims a higher reward and re-signs: the signature holds, the evidence not.
    let mut inflated = bundle.clone();
    inflated.groups[1].rollouts[0].reward += 1.0;
    key.sign_group(&mut inflated.groups[1]);
    let inflated = encode_bundle(&inflated).expect("encodes");
    vec![
        ("honest", check(&bytes)),
        ("one byte flipped", check(&flipped)),
        ("reward inflated and re-signed", check(&inflated)),
        ("truncated", check(&bytes[..bytes.len() - 1])),
    ]
}

fn main() {
    for (case, report) in run() {
        if !report.read() {
            println!(
                "{case}: bundle refused: {}: {}",
                report.bundle_status, report.detail
            );
            continue;
        }
        println!("{case}: credited work {}", report.credited);
        for c in &report.checked {
            let v = &c.outcome.verdict;
            println!("  group {}: {} {}", c.index, v.reason, v.detail);
        }
    }
}

#[test]
fn honest_groups_pass_and_every_tampering_is_caught() {
    use grail_proto::rules::Reason::{self, Accepted, Malformed, RewardMismatch, Signature};
    let summary = |report: MinerReport| {
        let status: Reason = report.bundle_status.parse().expect("a reason");
        let verdicts: Vec<(u32, Reason)> = (report.checked.iter())
            .map(|c| (c.index, c.outcome.reason()))
            .collect();
        (status, verdicts, report.credited > 0.0)
    };
    let outcomes: Vec<_> = run().into_iter().map(|(_, r)| summary(r)).collect();
    let expected = [
        (
            Accepted,
            vec![(0, Accepted), (1, Accepted), (2, Accepted)],
            true,
        ),
        // A failure of a check on every group zeroes the window: nothing is spot-checked.
        (Accepted, vec![(2, Signature)], false),
        // So does a failed spot check; checks stop at it.
        (Accepted, vec![(0, Accepted), (1, RewardMismatch)], false),
        (Malformed, vec![], false),
    ];
    assert_eq!(outcomes, expected);
}
