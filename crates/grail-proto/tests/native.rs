//! The native protocol end to end on synthetic hidden states: a miner commits, signs and
//! encodes a bundle; a validator decodes, checks the signature, picks positions and
//! verifies the proof; tampering with any signed field is caught.
//!
//! Needs the `sr25519` feature (on by default) for signing.

#![cfg(feature = "sr25519")]

use grail_proto::binding::{group_digest, rollout_digest};
use grail_proto::params::{CHALLENGE_K, CHALLENGE_MAX_MISSES, PROTOCOL_VERSION};
use grail_proto::signing::{verify_group, Keypair};
use grail_proto::*;

const HIDDEN: usize = 96;

/// An edit applied to a copy of a value in a tampering test.
type Edit<T> = Box<dyn Fn(&mut T)>;

/// A deterministic stand-in for a model: hidden state of position `p` depends on the token
/// prefix `tokens[..=p]` and on the "weights" seed.
struct ToyModel {
    seed: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("toy model error")]
struct ToyError;

impl ToyModel {
    fn hidden(&self, tokens: &[u32], p: usize) -> Vec<f32> {
        let mut acc = self.seed;
        for &t in &tokens[..=p] {
            acc = acc
                .wrapping_mul(6364136223846793005)
                .wrapping_add(u64::from(t) + 1);
        }
        (0..HIDDEN)
            .map(|i| {
                let x =
                    acc.rotate_left(i as u32 % 64) ^ (i as u64).wrapping_mul(0x9e3779b97f4a7c15);
                // Mostly small values, a few large activations.
                let u = (x % 10_000) as f32 / 10_000.0 - 0.5;
                if x.is_multiple_of(13) {
                    u * 200.0
                } else {
                    u * 2.0
                }
            })
            .collect()
    }
}

impl HiddenStates for ToyModel {
    type Error = ToyError;
    fn last_hidden_states(
        &mut self,
        tokens: &[u32],
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>, ToyError> {
        Ok(positions.iter().map(|&p| self.hidden(tokens, p)).collect())
    }
}

fn header(key: &Keypair, window_randomness: [u8; 32]) -> GroupHeader {
    GroupHeader {
        protocol_version: PROTOCOL_VERSION,
        hotkey: key.public(),
        window: 300,
        environment: EnvironmentId {
            name: "sat".into(),
            params: "v1".into(),
        },
        prompt_id: 42,
        checkpoint: [7; 32],
        window_randomness,
        generation: GenerationParams {
            max_new_tokens: 64,
            temperature_milli: 700,
        },
    }
}

fn make_group(key: &Keypair, model: &ToyModel, wr: [u8; 32], m: usize) -> Group {
    let coeffs = SketchCoefficients::derive(&wr, HIDDEN);
    let prompt: Vec<u32> = vec![1, 2, 3, 4, 5];
    let rewards: Vec<f64> = (0..m).map(|i| (i % 2) as f64).collect();
    let adv = grpo::advantages(&rewards);
    let rollouts = (0..m)
        .map(|i| {
            let mut tokens = prompt.clone();
            tokens.extend((0..60).map(|t| 10 + ((t * 7 + i * 13) % 50) as u32));
            let sketches = (0..tokens.len())
                .map(|p| coeffs.sketch(&model.hidden(&tokens, p)).digest())
                .collect();
            Rollout {
                logprobs: vec![-0.5; tokens.len() - prompt.len()],
                tokens,
                prompt_len: prompt.len() as u32,
                sketches,
                reward: rewards[i],
                advantage: adv[i],
                success: rewards[i] > 0.5,
            }
        })
        .collect();
    let mut g = Group {
        header: header(key, wr),
        rollouts,
        signature: Signature([0; 64]),
    };
    key.sign_group(&mut g);
    g
}

fn verify_all(g: &Group, challenge: &[u8; 32], model: &mut ToyModel) -> Vec<ProofReport> {
    let coeffs = SketchCoefficients::derive(&g.header.window_randomness, HIDDEN);
    g.rollouts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let d = rollout_digest(i as u32, r);
            let pos = challenge_positions(
                challenge,
                &d,
                r.prompt_len as usize,
                r.tokens.len(),
                CHALLENGE_K,
            );
            verify_proof(r, &pos, &coeffs, model).unwrap()
        })
        .collect()
}

#[test]
fn honest_bundle_round_trips_and_verifies() {
    let key = Keypair::from_uri("//Alice").unwrap();
    let mut model = ToyModel { seed: 1 };
    let g = make_group(&key, &model, [3; 32], 4);
    let bundle = WindowBundle {
        hotkey: key.public(),
        window: 300,
        groups: vec![g],
    };
    let bytes = encode_bundle(&bundle).unwrap();
    let back = decode_bundle(&bytes).unwrap();
    assert_eq!(back, bundle);
    let g = &back.groups[0];
    assert!(verify_group(g));
    for report in verify_all(g, &[9; 32], &mut model) {
        assert_eq!(report.positions.len(), CHALLENGE_K);
        assert!(report.accepted());
        // The same model: only the wire's rounding separates claim and recomputation.
        assert!(report.max_distance() <= grail_proto::params::SKETCH_DIGEST_ROUNDING);
    }
}

#[test]
fn substituted_model_is_rejected_with_per_position_distances() {
    let key = Keypair::from_uri("//Bob").unwrap();
    let g = make_group(&key, &ToyModel { seed: 1 }, [3; 32], 2);
    let mut other = ToyModel { seed: 2 };
    for report in verify_all(&g, &[9; 32], &mut other) {
        assert!(!report.accepted());
        assert!(report.misses() > CHALLENGE_MAX_MISSES);
        assert!(report.positions.iter().any(|p| p.distance[0] > p.tolerance));
    }
}

#[test]
fn sketches_with_other_window_randomness_are_rejected() {
    let key = Keypair::from_uri("//Carol").unwrap();
    let mut model = ToyModel { seed: 1 };
    let mut g = make_group(&key, &model, [3; 32], 2);
    // Claim the sketches were made for another window randomness (re-signed, so only
    // the proof can catch it).
    g.header.window_randomness = [4; 32];
    key.sign_group(&mut g);
    assert!(verify_group(&g));
    assert!(verify_all(&g, &[9; 32], &mut model)
        .iter()
        .all(|r| !r.accepted()));
}

#[test]
fn every_signed_field_is_bound() {
    let key = Keypair::from_uri("//Dave").unwrap();
    let g = make_group(&key, &ToyModel { seed: 1 }, [3; 32], 2);
    assert!(verify_group(&g));
    let edits: Vec<Edit<Group>> = vec![
        Box::new(|g| g.header.window += 1),
        Box::new(|g| g.header.prompt_id += 1),
        Box::new(|g| g.header.checkpoint[0] ^= 1),
        Box::new(|g| g.header.window_randomness[0] ^= 1),
        Box::new(|g| g.header.environment.name = "math".into()),
        Box::new(|g| g.header.environment.params.push('x')),
        Box::new(|g| g.header.generation.max_new_tokens += 1),
        Box::new(|g| g.header.protocol_version += 1),
        Box::new(|g| g.rollouts[0].tokens[7] += 1),
        Box::new(|g| g.rollouts[0].prompt_len += 1),
        Box::new(|g| g.rollouts[0].sketches[3].0[1] ^= 1),
        Box::new(|g| g.rollouts[0].logprobs[0] = -0.25),
        Box::new(|g| g.rollouts[0].reward = 0.75),
        Box::new(|g| g.rollouts[0].advantage = 0.5),
        Box::new(|g| g.rollouts[0].success = !g.rollouts[0].success),
        Box::new(|g| g.rollouts.swap(0, 1)),
        Box::new(|g| {
            g.rollouts.pop();
        }),
        Box::new(|g| g.header.hotkey = Keypair::from_uri("//Eve").unwrap().public()),
    ];
    let base = group_digest(&g);
    for (i, edit) in edits.iter().enumerate() {
        let mut t = g.clone();
        edit(&mut t);
        assert_ne!(group_digest(&t), base, "edit {i} not bound");
        assert!(!verify_group(&t), "edit {i} still verifies");
    }
}

#[test]
fn signature_by_another_key_fails() {
    let alice = Keypair::from_uri("//Alice").unwrap();
    let mallory = Keypair::from_uri("//Mallory").unwrap();
    let mut g = make_group(&alice, &ToyModel { seed: 1 }, [3; 32], 2);
    mallory.sign_group(&mut g); // header still names Alice
    assert!(!verify_group(&g));
}

#[test]
fn ss58_round_trip_and_known_dev_address() {
    let alice = Keypair::from_uri("//Alice").unwrap().public();
    // Alice's well-known dev address on the generic Substrate prefix.
    assert_eq!(
        alice.to_ss58(),
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
    assert_eq!(Hotkey::from_ss58(&alice.to_ss58()).unwrap(), alice);
    assert!(Hotkey::from_ss58("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ").is_err());
}

#[test]
fn decoding_rejects_structural_errors_with_reasons() {
    let key = Keypair::from_uri("//Alice").unwrap();
    let g = make_group(&key, &ToyModel { seed: 1 }, [3; 32], 2);
    let ok = WindowBundle {
        hotkey: key.public(),
        window: 300,
        groups: vec![g],
    };
    let cases: Vec<(Edit<WindowBundle>, &str)> = vec![
        (
            Box::new(|b| {
                b.groups[0].rollouts[0]
                    .sketches
                    .pop()
                    .map(drop)
                    .unwrap_or(())
            }),
            "sketches",
        ),
        (
            Box::new(|b| b.groups[0].rollouts[0].logprobs.push(-1.0)),
            "log-probs",
        ),
        (
            Box::new(|b| b.groups[0].rollouts[0].logprobs[0] = f32::NAN),
            "log-prob",
        ),
        (
            Box::new(|b| b.groups[0].rollouts[0].prompt_len = 0),
            "prompt_len",
        ),
        (
            Box::new(|b| b.groups[0].rollouts[0].sketches[0].0[0] = u16::MAX),
            "15 bits",
        ),
        (Box::new(|b| b.groups[0].rollouts.clear()), "0 rollouts"),
        (Box::new(|b| b.groups[0].header.window = 330), "differs"),
        (
            Box::new(|b| b.groups[0].header.protocol_version = 99),
            "protocol version",
        ),
        (
            Box::new(|b| b.groups[0].rollouts[1].reward = f64::INFINITY),
            "not finite",
        ),
    ];
    for (edit, want) in cases {
        let mut b = ok.clone();
        edit(&mut b);
        let bytes = encode_bundle(&b).unwrap();
        let err = decode_bundle(&bytes).unwrap_err().to_string();
        assert!(err.contains(want), "`{err}` should mention `{want}`");
    }
    let mut bytes = encode_bundle(&ok).unwrap();
    bytes.push(0);
    assert_eq!(
        decode_bundle(&bytes).unwrap_err(),
        WireError::TrailingBytes(1)
    );
    assert_eq!(decode_bundle(b"nope").unwrap_err(), WireError::BadMagic);
    let mut v1 = encode_bundle(&ok).unwrap();
    v1[8] = 1;
    assert_eq!(
        decode_bundle(&v1).unwrap_err(),
        WireError::UnsupportedFormat(1)
    );
}
