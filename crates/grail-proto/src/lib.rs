//! grail-proto: the GRAIL protocol core.
//!
//! Pure protocol math with no I/O, no async runtime and no tensor library, so a third
//! party can verify grail rollouts in their own verifier by depending on this crate alone.
//! `docs/protocol.md` is the normative specification; this crate implements it.
//!
//! - [`params`] — every protocol constant, with what breaks if it changes.
//! - [`prf`] — the domain-separated PRF (SHAKE256) and ChaCha20 streams seeded from it.
//! - [`randomness`] — window and challenge randomness from block hashes and drand.
//! - [`sketch`] — per-position sketch commitments mod 2^31 − 1.
//! - [`challenge`] — challenged positions and verification against any [`HiddenStates`].
//! - [`wire`] — rollouts, groups and bundles, and their size-limited byte format.
//! - [`binding`] — the canonical binary binding a miner signs.
//! - [`signing`] — sr25519 hotkeys and SS58 addresses (feature `sr25519`, on by default:
//!   sp-core). The pure core never verifies a signature itself — the verifier asks for
//!   it — so a verifier built with `default-features = false` brings its own sr25519.
//! - [`sampling`] — public sampling noise, the Gumbel-max sampler and its check.
//! - [`rules`] — the validator's checks, typed [`rules::Reason`]s, duplicates, copies,
//!   replays, spot-check sampling and credited work.
//! - [`verifier`] — the whole window check as sans-I/O state machines: every rule in
//!   order, asking for prompts, signatures and forward-pass evidence through typed
//!   requests; reports, credit and the sealed archive.
//! - [`scoring`] — weights from credited work (superlinear, rolling, burn).
//! - [`grpo`] — group advantages and the learning-zone predicate.
//! - [`archive`] — a validator's sealed verdicts of a window, as the trainer reads them.
//! - [`compat`] — bit-exact reproductions of the Python reference proofs (grail v5,
//!   Reliquary v7) and of CPython's `random.Random`.
//!
//! Everything here is deterministic and sans-I/O: the node crates fetch chain data,
//! beacons and hidden states and pass them in.
//!
//! # Verifying rollouts as a third party
//!
//! A verifier supplies what this crate cannot compute: the public randomness (block
//! hashes from the chain, drand beacons whose BLS signature it checked) and the
//! checkpoint's forward pass (hidden states through [`HiddenStates`], log-probs and the
//! sampling gaps of [`sampling`]). Everything else — decoding, challenged positions, the
//! proof and sampling checks, verdicts, credit and the archive — is here, run in order by
//! [`verifier`]. The example `examples/verify_bundle.rs` answers the verifier's requests
//! with a toy model
//! (`cargo run -p grail-proto --example verify_bundle`); in short:
//!
//! ```
//! # #[cfg(feature = "sr25519")] {
//! use grail_proto::binding::rollout_digest;
//! use grail_proto::rules::{group::{check_binding, check_signature}, WindowPlan};
//! use grail_proto::signing::Keypair;
//! use grail_proto::*;
//!
//! // The checkpoint's last hidden state at position p of `tokens` (a toy here).
//! let model = |tokens: &[u32], p: usize| -> Vec<f32> {
//!     let s: u32 = tokens[..=p].iter().sum();
//!     (0..16).map(|i| ((s * 7 + i) % 11) as f32 - 5.0).collect()
//! };
//! let plan = WindowPlan {
//!     window: 300,
//!     window_randomness: window_randomness(300, &[0x11; 32], &Beacon { round: 7, randomness: [0x22; 32] }),
//!     checkpoint: [7; 32],
//!     environment: EnvironmentId { name: "toy".into(), params: "v1".into() },
//!     generation: GenerationParams { max_new_tokens: 36, temperature_milli: 1000 },
//!     group_size: 1,
//! };
//! let coefficients = SketchCoefficients::derive(&plan.window_randomness, 16);
//!
//! // Miner: a sketch of every position, a signed group, an encoded bundle.
//! let key = Keypair::from_seed(&[1; 32]);
//! let tokens: Vec<u32> = (1..=40).collect();
//! let sketches = (0..40).map(|p| coefficients.sketch(&model(&tokens, p)).digest()).collect();
//! let rollout = Rollout { tokens, prompt_len: 4, sketches, logprobs: vec![-1.0; 36], reward: 0.0, advantage: 0.0, success: false };
//! let header = GroupHeader {
//!     protocol_version: params::PROTOCOL_VERSION, hotkey: key.public(), window: plan.window,
//!     environment: plan.environment.clone(), prompt_id: 1, checkpoint: plan.checkpoint,
//!     window_randomness: plan.window_randomness, generation: plan.generation,
//! };
//! let mut group = Group { header, rollouts: vec![rollout], signature: Signature([0; 64]) };
//! key.sign_group(&mut group);
//! let bytes = encode_bundle(&WindowBundle { hotkey: key.public(), window: 300, groups: vec![group] })?;
//!
//! // Validator: decode, check the binding, then the proof at the challenged positions.
//! let bundle = decode_bundle(&bytes)?;
//! let group = &bundle.groups[0];
//! assert_eq!(check_binding(&plan, &key.public(), group), Ok(()));
//! assert_eq!(check_signature(group, signing::verify_group), Ok(()));
//! let challenge = challenge_randomness(300, &[0x33; 32], &Beacon { round: 17, randomness: [0x44; 32] });
//! let r = &group.rollouts[0];
//! let positions = challenge_positions(&challenge, &rollout_digest(0, r), 4, 40, params::CHALLENGE_K);
//! let hidden: Vec<Vec<f32>> = positions.iter().map(|&p| model(&r.tokens, p)).collect();
//! let report = check_positions(&r.sketches, &positions, &hidden, &coefficients)?;
//! assert!(report.accepted() && report.positions.len() == params::CHALLENGE_K);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

pub mod archive;
pub mod binding;
pub mod challenge;
pub mod compat;
pub mod grpo;
pub mod params;
pub mod prf;
pub mod randomness;
pub mod rules;
pub mod sampling;
pub mod scoring;
#[cfg(feature = "sr25519")]
pub mod signing;
pub mod sketch;
pub mod verifier;
pub mod wire;

pub use challenge::{
    challenge_positions, check_positions, verify_proof, HiddenStates, ProofError, ProofReport,
};
pub use randomness::{challenge_randomness, window_randomness, Beacon};
pub use sketch::{PositionSketch, SketchCoefficients, SketchDigest};
pub use wire::{
    decode_bundle, encode_bundle, EnvironmentId, GenerationParams, Group, GroupHeader, Hotkey,
    Rollout, RolloutError, Signature, WindowBundle, WireError,
};
