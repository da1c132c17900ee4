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
use grail_proto::rules::WindowPlan;
use grail_proto::signing::Keypair;
use grail_proto::verifier::{
    BundleCheck, BundleRequest, MinerReport, WindowParams, WindowRequest, WindowVerifier,
};
use grail_proto::*;

mod toy;

use toy::{forward, mine, prompt, EOS, HIDDEN, VOCAB};

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
