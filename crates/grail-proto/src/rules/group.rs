//! Per-group checks, in the normative order. Each stage returns the first failure as a
//! [`Rejection`]. `examples/verify_bundle.rs` runs them all on a toy model.

use crate::binding::rollout_digest;
use crate::challenge::{challenge_positions, check_positions};
use crate::params::{CHALLENGE_K, LOGPROB_TOLERANCE};
use crate::rules::{Reason, Rejection, WindowPlan};
use crate::sampling::{allowed_ambiguous_in_sample, check_sampling};
use crate::sketch::SketchCoefficients;
use crate::wire::{Group, Hotkey};

/// Stage 1, field comparisons only: schema, the bundle's hotkey, window, randomness,
/// environment, sampling parameters and checkpoint. The signature, the one costly check
/// of stages 1–3, comes last ([`check_signature`], stage 3 of a group), so a bundle of
/// groups that fail cheap checks costs no signature verification.
///
/// # Errors
///
/// The first failed check, in that order: [`Reason::Schema`] ([`Group::validate`]),
/// [`Reason::HotkeyMismatch`] (the group names another hotkey than `bundle_hotkey`),
/// then [`Reason::WindowMismatch`], [`Reason::RandomnessMismatch`],
/// [`Reason::EnvironmentMismatch`], [`Reason::GenerationMismatch`] or
/// [`Reason::StaleCheckpoint`] when the header differs from `plan`.
///
/// # Examples
///
/// ```
/// use grail_proto::rules::group::{check_binding, check_signature, check_structure, TokenRules};
/// use grail_proto::rules::{Reason, WindowPlan};
/// # use grail_proto::*;
/// # let header = GroupHeader {
/// #     protocol_version: params::PROTOCOL_VERSION, hotkey: Hotkey([1; 32]), window: 300,
/// #     environment: EnvironmentId { name: "toy".into(), params: "v1".into() }, prompt_id: 42,
/// #     checkpoint: [7; 32], window_randomness: [3; 32],
/// #     generation: GenerationParams { max_new_tokens: 4, temperature_milli: 1000 },
/// # };
/// # let rollout = |c: &[u32]| Rollout { tokens: [&[1, 2][..], c].concat(), prompt_len: 2,
/// #     sketches: vec![SketchDigest([0, 0]); 2 + c.len()], logprobs: vec![-1.0; c.len()],
/// #     reward: 0.0, advantage: 0.0, success: false };
/// # let group = Group { header, rollouts: vec![rollout(&[5, 0]), rollout(&[6, 6, 6, 6])], signature: Signature([0; 64]) };
/// let plan = WindowPlan {
///     window: 300, window_randomness: [3; 32], checkpoint: [7; 32],
///     environment: EnvironmentId { name: "toy".into(), params: "v1".into() },
///     generation: GenerationParams { max_new_tokens: 4, temperature_milli: 1000 },
///     group_size: 2,
/// };
/// let miner = Hotkey([1; 32]); // the owner of the bucket the bundle came from
/// assert_eq!(check_binding(&plan, &miner, &group), Ok(()));
/// let next = WindowPlan { checkpoint: [8; 32], ..plan.clone() };
/// let rejection = check_binding(&next, &miner, &group).unwrap_err();
/// assert_eq!(rejection.reason, Reason::StaleCheckpoint);
///
/// // Stage 2: the canonical prompt is [1, 2]; EOS is 0 (or the completion fills max_new_tokens).
/// let tokens = TokenRules { vocab_size: 8, max_sequence: 64, eos_ids: &[0] };
/// assert_eq!(check_structure(&plan, &group, Ok(&[1, 2]), tokens), Ok(()));
/// let rejection = check_structure(&plan, &group, Ok(&[1, 3]), tokens).unwrap_err();
/// assert_eq!(rejection.reason, Reason::PromptMismatch);
///
/// // Stage 3: the signature (with sr25519: grail_proto::signing::verify_group).
/// let unsigned = |_: &Group| false;
/// assert_eq!(check_signature(&group, unsigned).unwrap_err().reason, Reason::Signature);
/// ```
pub fn check_binding(
    plan: &WindowPlan,
    bundle_hotkey: &Hotkey,
    group: &Group,
) -> Result<(), Rejection> {
    group
        .validate()
        .map_err(|e| Rejection::new(Reason::Schema, e.to_string()))?;
    let h = &group.header;
    if &h.hotkey != bundle_hotkey {
        return Err(Rejection::new(
            Reason::HotkeyMismatch,
            "group signed for another hotkey than the bundle's",
        ));
    }
    if h.window != plan.window {
        return Err(Rejection::new(
            Reason::WindowMismatch,
            format!("made for window {}", h.window),
        ));
    }
    if h.window_randomness != plan.window_randomness {
        return Err(Rejection::new(
            Reason::RandomnessMismatch,
            "not this window's randomness",
        ));
    }
    if h.environment != plan.environment {
        return Err(Rejection::new(
            Reason::EnvironmentMismatch,
            format!("{}/{}", h.environment.name, h.environment.params),
        ));
    }
    if h.generation != plan.generation {
        return Err(Rejection::new(
            Reason::GenerationMismatch,
            format!(
                "max_new_tokens {}, temperature_milli {}",
                h.generation.max_new_tokens, h.generation.temperature_milli
            ),
        ));
    }
    if h.checkpoint != plan.checkpoint {
        return Err(Rejection::new(
            Reason::StaleCheckpoint,
            format!("checkpoint {}", hex::encode(&h.checkpoint[..8])),
        ));
    }
    Ok(())
}

/// Stage 3 of a group, after [`check_binding`] and [`check_structure`]: the miner's
/// signature over the group (`signature_valid`, e.g. [`crate::signing::verify_group`]).
/// [`crate::verifier::BundleCheck`] runs stages 1–3 over a bundle with the signatures
/// batched.
///
/// # Errors
///
/// [`Reason::Signature`] when `signature_valid` is false.
pub fn check_signature(
    group: &Group,
    signature_valid: impl FnOnce(&Group) -> bool,
) -> Result<(), Rejection> {
    if signature_valid(group) {
        Ok(())
    } else {
        Err(bad_signature())
    }
}

/// The rejection of a group whose signature does not verify.
pub(crate) fn bad_signature() -> Rejection {
    Rejection::new(Reason::Signature, "sr25519 signature does not verify")
}

/// What the model and tokenizer say about token sequences, for [`check_structure`].
#[derive(Debug, Clone, Copy)]
pub struct TokenRules<'a> {
    /// Vocabulary size: every id must be below it.
    pub vocab_size: usize,
    /// Most tokens (prompt + completion) the model can run.
    pub max_sequence: usize,
    /// Ids that end a completion.
    pub eos_ids: &'a [u32],
}

/// Why the header's prompt id has no canonical prompt, when that is the miner's doing (a
/// prompt id outside the environment's prompt space). The validator's own failures (an
/// unreadable dataset, a tokenizer error) are not this: its driver reports them as its
/// own errors and reaches no verdict, so they can never become a miner's
/// [`Reason::PromptMismatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchPrompt(pub String);

/// Stage 2, tokenizer only: group size and one prompt, token limits, the canonical
/// prompt (`canonical_prompt`: the tokenized chat-template rendering of the header's
/// prompt id, or [`NoSuchPrompt`] when the id names none) and termination (exactly one EOS, last;
/// or none at `max_new_tokens`). See [`check_binding`] for an example.
///
/// # Errors
///
/// The first failed check, in that order: [`Reason::GroupSize`] (not
/// `plan.group_size` rollouts), [`Reason::TokenLimits`] (a token id `≥ vocab_size`, more
/// than `max_sequence` tokens, or a completion over `max_new_tokens`),
/// [`Reason::PromptMismatch`] (`canonical_prompt` is `Err`, or a rollout's prompt differs
/// from it), [`Reason::BadTermination`].
pub fn check_structure(
    plan: &WindowPlan,
    group: &Group,
    canonical_prompt: Result<&[u32], NoSuchPrompt>,
    tokens: TokenRules<'_>,
) -> Result<(), Rejection> {
    if group.rollouts.len() != plan.group_size {
        return Err(Rejection::new(
            Reason::GroupSize,
            format!(
                "{} rollouts, the subnet uses {}",
                group.rollouts.len(),
                plan.group_size
            ),
        ));
    }
    let max_new = plan.generation.max_new_tokens as usize;
    for (i, r) in group.rollouts.iter().enumerate() {
        if let Some(bad) = r.tokens.iter().find(|&&t| t as usize >= tokens.vocab_size) {
            return Err(Rejection::new(
                Reason::TokenLimits,
                format!(
                    "rollout {i}: token id {bad} outside the vocabulary ({})",
                    tokens.vocab_size
                ),
            ));
        }
        if r.tokens.len() > tokens.max_sequence {
            return Err(Rejection::new(
                Reason::TokenLimits,
                format!(
                    "rollout {i}: {} tokens, the model runs {}",
                    r.tokens.len(),
                    tokens.max_sequence
                ),
            ));
        }
        if r.completion().len() > max_new {
            return Err(Rejection::new(
                Reason::TokenLimits,
                format!("rollout {i}: completion over {max_new} tokens"),
            ));
        }
    }
    // The environment's own words about an unknown id are informative (logged by the
    // validator); the archived detail is fixed, so archives are reproducible.
    let prompt = canonical_prompt.map_err(|_| {
        Rejection::new(
            Reason::PromptMismatch,
            format!(
                "prompt {} names no prompt of the environment",
                group.header.prompt_id
            ),
        )
    })?;
    if let Some(i) = group.rollouts.iter().position(|r| r.prompt() != prompt) {
        return Err(Rejection::new(
            Reason::PromptMismatch,
            format!("rollout {i}: prompt tokens are not the canonical rendering"),
        ));
    }
    for (i, r) in group.rollouts.iter().enumerate() {
        let c = r.completion();
        let eos_count = c.iter().filter(|t| tokens.eos_ids.contains(t)).count();
        let ends = c.last().is_some_and(|t| tokens.eos_ids.contains(t));
        let ok = (eos_count == 1 && ends) || (eos_count == 0 && c.len() == max_new);
        if !ok {
            return Err(Rejection::new(
                Reason::BadTermination,
                format!(
                    "rollout {i}: {eos_count} EOS tokens in {} completion tokens",
                    c.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The completion positions whose hidden states the proof needs, per rollout (absolute
/// token positions, from the challenge randomness and the rollout digest).
pub fn challenged_positions(challenge_randomness: &[u8; 32], group: &Group) -> Vec<Vec<usize>> {
    group
        .rollouts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            challenge_positions(
                challenge_randomness,
                &rollout_digest(i as u32, r),
                r.prompt_len as usize,
                r.tokens.len(),
                CHALLENGE_K,
            )
        })
        .collect()
}

/// What the validator's forward pass and environment computed for one rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutEvidence {
    /// Last-layer hidden states at the rollout's [`challenged_positions`], in order.
    pub hidden: Vec<Vec<f32>>,
    /// Log-probabilities (temperature 1) of each completion token.
    pub logprobs: Vec<f32>,
    /// The sampling gap of each completion token under the group's temperature and the
    /// rollout's public noise (`crate::sampling::claimed_gap`, with
    /// `RolloutNoise::new(window_randomness, hotkey, prompt, rollout index)`).
    pub gaps: Vec<f64>,
    /// The environment's reward and success flag. A validator that cannot compute them
    /// (its own tokenizer or environment failing) has no evidence and reaches no verdict:
    /// there is no way to blame the miner for it.
    pub reward: (f64, bool),
}

/// Stage 6, from one forward pass: per rollout the GRAIL proof at the challenged
/// positions, the claimed log-probs, the sampling check with the public noise and the
/// reward; then the group's advantages. Returns the group's [`SamplingTally`], which the
/// caller adds up over a miner's checked sample ([`check_sample_ambiguity`]). `evidence[i]` belongs to rollout `i` and
/// `positions` is [`challenged_positions`].
///
/// # Errors
///
/// The first failed check, rollout by rollout: [`Reason::ProofFailed`] (evidence or
/// positions missing for a rollout, hidden vectors that cannot be compared, or more
/// sketches off than [`crate::challenge::allowed_misses`]), [`Reason::LogprobsMismatch`]
/// ([`check_logprobs`]), [`Reason::SamplingMismatch`] (the tokens are not the ones the
/// public noise gives, [`crate::sampling::check_sampling`]); then
/// [`Reason::RewardMismatch`] (claimed reward or success differs from the environment's,
/// or the environment could not score) and [`Reason::AdvantagesMismatch`].
///
/// # Examples
///
/// ```
/// use grail_proto::rules::group::{challenged_positions, check_forward, RolloutEvidence};
/// use grail_proto::rules::Reason;
/// # use grail_proto::*;
/// # let header = GroupHeader {
/// #     protocol_version: params::PROTOCOL_VERSION, hotkey: Hotkey([1; 32]), window: 300,
/// #     environment: EnvironmentId { name: "toy".into(), params: "v1".into() }, prompt_id: 42,
/// #     checkpoint: [7; 32], window_randomness: [3; 32],
/// #     generation: GenerationParams { max_new_tokens: 4, temperature_milli: 1000 },
/// # };
/// let coefficients = SketchCoefficients::derive(&header.window_randomness, 4);
/// let model = |p: usize| vec![p as f32, 1.0, -2.0, 0.5]; // the checkpoint's hidden state at p
/// let rollout = |reward: f64, advantage: f64| Rollout {
///     tokens: vec![1, 2, 3, 0], prompt_len: 2, logprobs: vec![-0.1, -0.2],
///     sketches: (0..4).map(|p| coefficients.sketch(&model(p)).digest()).collect(),
///     reward, advantage, success: reward > 0.5,
/// };
/// let group = Group { header, rollouts: vec![rollout(1.0, 1.0), rollout(0.0, -1.0)], signature: Signature([0; 64]) };
///
/// // What the validator's forward pass and environment give for each rollout.
/// let positions = challenged_positions(&[9; 32], &group);
/// let evidence: Vec<RolloutEvidence> = group.rollouts.iter().zip(&positions).map(|(r, pos)| RolloutEvidence {
///     hidden: pos.iter().map(|&p| model(p)).collect(),
///     logprobs: vec![-0.1, -0.2],
///     gaps: vec![f64::INFINITY; 2], // a one-token vocabulary
///     reward: (r.reward, r.success),
/// }).collect();
/// let tally = check_forward(&coefficients, &group, &positions, &evidence).unwrap();
/// assert_eq!((tally.positions, tally.ambiguous), (4, 0));
///
/// let mut other_model = evidence.clone();
/// other_model[0].hidden[1][0] += 3.0;
/// let rejection = check_forward(&coefficients, &group, &positions, &other_model).unwrap_err();
/// assert_eq!(rejection.reason, Reason::ProofFailed);
/// let mut env = evidence.clone();
/// env[1].reward = (1.0, true); // the environment disagrees with the claimed 0.0
/// let rejection = check_forward(&coefficients, &group, &positions, &env).unwrap_err();
/// assert_eq!(rejection.reason, Reason::RewardMismatch);
/// ```
pub fn check_forward(
    coefficients: &SketchCoefficients,
    group: &Group,
    positions: &[Vec<usize>],
    evidence: &[RolloutEvidence],
) -> Result<SamplingTally, Rejection> {
    let mut tally = SamplingTally::default();
    if evidence.len() != group.rollouts.len() || positions.len() != group.rollouts.len() {
        return Err(Rejection::new(
            Reason::ProofFailed,
            format!(
                "evidence for {} of {} rollouts",
                evidence.len().min(positions.len()),
                group.rollouts.len()
            ),
        ));
    }
    for (i, ((r, e), pos)) in group
        .rollouts
        .iter()
        .zip(evidence)
        .zip(positions)
        .enumerate()
    {
        match check_positions(&r.sketches, pos, &e.hidden, coefficients) {
            Ok(report) if report.accepted() => {}
            Ok(report) => {
                return Err(Rejection::new(
                    Reason::ProofFailed,
                    format!(
                        "rollout {i}: {} of {} positions off (max distance {})",
                        report.misses(),
                        pos.len(),
                        report.max_distance()
                    ),
                ))
            }
            Err(err) => {
                return Err(Rejection::new(
                    Reason::ProofFailed,
                    format!("rollout {i}: {err}"),
                ))
            }
        }
        check_logprobs(i, &r.logprobs, &e.logprobs)?;
        if e.gaps.len() != r.completion().len() {
            return Err(Rejection::new(
                Reason::SamplingMismatch,
                format!(
                    "rollout {i}: {} sampling gaps for {} completion tokens",
                    e.gaps.len(),
                    r.completion().len()
                ),
            ));
        }
        let report = check_sampling(&e.gaps);
        if !report.accepted() {
            return Err(Rejection::new(
                Reason::SamplingMismatch,
                format!(
                    "rollout {i}: {} of {} tokens not sampled with the public noise (first at completion position {}, off by {:.2e}); {} within the margin, {} allowed",
                    report.misses.len(),
                    report.positions,
                    report.misses.first().copied().unwrap_or(0),
                    report.max_excess,
                    report.ambiguous,
                    crate::sampling::allowed_ambiguous(report.positions)
                ),
            ));
        }
        tally.positions += report.positions;
        tally.ambiguous += report.ambiguous;
    }
    let mut rewards = Vec::with_capacity(evidence.len());
    for (i, (r, e)) in group.rollouts.iter().zip(evidence).enumerate() {
        let (total, success) = e.reward;
        if total != r.reward || success != r.success {
            return Err(Rejection::new(
                Reason::RewardMismatch,
                format!(
                    "rollout {i}: claimed {} ({}), recomputed {total} ({success})",
                    r.reward, r.success
                ),
            ));
        }
        rewards.push(total);
    }
    let claimed: Vec<f64> = group.rollouts.iter().map(|r| r.advantage).collect();
    if !crate::grpo::advantages_consistent(&rewards, &claimed) {
        return Err(Rejection::new(
            Reason::AdvantagesMismatch,
            "advantages are not the group-normalised rewards",
        ));
    }
    Ok(tally)
}

/// Completion positions and ambiguous positions of the sampling check, added up over a
/// group or a miner's checked sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SamplingTally {
    /// Completion positions checked.
    pub positions: usize,
    /// Of those, positions with a gap within the margin below zero.
    pub ambiguous: usize,
}

impl std::ops::AddAssign for SamplingTally {
    fn add_assign(&mut self, other: Self) {
        self.positions += other.positions;
        self.ambiguous += other.ambiguous;
    }
}

/// Whether a checked, accepted group counts as learning-zone work for credit: its rewards
/// are in the learning zone **and** no completion position needed the sampling margin.
/// A position within the margin is tolerated (drift between machines), but it is also the
/// only place where a miner could have claimed another token than the sampled one and
/// re-rolled the rest of a rollout, which turns a flat group into a zone group
/// (docs/soundness.md, "6. Sampling"). Crediting such groups as flat leaves that search
/// nothing to gain; honest drift needed the margin at none of 3 × 100 007 audited positions.
///
/// ```
/// use grail_proto::rules::group::{credited_in_zone, SamplingTally};
/// let clean = SamplingTally { positions: 64, ambiguous: 0 };
/// assert!(credited_in_zone(&[1.0, 0.0], clean));
/// assert!(!credited_in_zone(&[1.0, 1.0], clean)); // flat
/// assert!(!credited_in_zone(&[1.0, 0.0], SamplingTally { positions: 64, ambiguous: 1 }));
/// ```
pub fn credited_in_zone(rewards: &[f64], sampling: SamplingTally) -> bool {
    sampling.ambiguous == 0 && crate::grpo::in_learning_zone(rewards)
}

/// The sampling cap over a miner's whole checked sample in a window: every group passed
/// its own check, and together they hold at most
/// [`crate::sampling::allowed_ambiguous_in_sample`] ambiguous positions. Without it, each
/// rollout's allowance would be a choice an attacker could spend on every rollout.
///
/// # Errors
///
/// [`Reason::SamplingMismatch`] (which zeroes the window) when the sample holds more.
///
/// ```
/// use grail_proto::rules::group::{check_sample_ambiguity, SamplingTally};
/// assert!(check_sample_ambiguity(SamplingTally { positions: 2048, ambiguous: 2 }).is_ok());
/// assert!(check_sample_ambiguity(SamplingTally { positions: 2048, ambiguous: 3 }).is_err());
/// ```
pub fn check_sample_ambiguity(sample: SamplingTally) -> Result<(), Rejection> {
    let allowed = allowed_ambiguous_in_sample(sample.positions);
    if sample.ambiguous > allowed {
        return Err(Rejection::new(
            Reason::SamplingMismatch,
            format!(
                "{} ambiguous positions in {} checked completion positions, {allowed} allowed",
                sample.ambiguous, sample.positions
            ),
        ));
    }
    Ok(())
}

/// The claimed log-probs of rollout `i` against the recomputed ones
/// ([`LOGPROB_TOLERANCE`]).
///
/// # Errors
///
/// [`Reason::LogprobsMismatch`] when the lengths differ, a value is NaN, or a claimed
/// log-prob is more than [`LOGPROB_TOLERANCE`] from the recomputed one.
pub fn check_logprobs(i: usize, claimed: &[f32], recomputed: &[f32]) -> Result<(), Rejection> {
    if claimed.len() != recomputed.len() {
        return Err(Rejection::new(
            Reason::LogprobsMismatch,
            format!(
                "rollout {i}: {} log-probs for {} tokens",
                claimed.len(),
                recomputed.len()
            ),
        ));
    }
    let worst = claimed
        .iter()
        .zip(recomputed)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, |m, d| {
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        });
    if worst.is_nan() || worst > LOGPROB_TOLERANCE {
        return Err(Rejection::new(
            Reason::LogprobsMismatch,
            format!("rollout {i}: max |Δ log-prob| {worst:.4}"),
        ));
    }
    Ok(())
}

#[cfg(all(test, feature = "sr25519"))]
pub(crate) mod tests {
    use super::*;
    use crate::signing::Keypair;
    use crate::wire::{EnvironmentId, GenerationParams, GroupHeader, Rollout, Signature};
    use crate::SketchDigest;

    pub(crate) fn plan() -> WindowPlan {
        WindowPlan {
            window: 40,
            window_randomness: [3; 32],
            checkpoint: [7; 32],
            environment: EnvironmentId {
                name: "toy".into(),
                params: "v1".into(),
            },
            generation: GenerationParams {
                max_new_tokens: 4,
                temperature_milli: 1000,
            },
            group_size: 2,
        }
    }

    pub(crate) fn signed(key: &Keypair, edit: impl FnOnce(&mut Group)) -> Group {
        let p = plan();
        let rollout = |c: &[u32]| Rollout {
            tokens: [&[1, 2, 3][..], c].concat(),
            prompt_len: 3,
            sketches: vec![SketchDigest([0, 0]); 3 + c.len()],
            logprobs: vec![-1.0; c.len()],
            reward: 0.0,
            advantage: 0.0,
            success: false,
        };
        let mut g = Group {
            header: GroupHeader {
                protocol_version: crate::params::PROTOCOL_VERSION,
                hotkey: key.public(),
                window: p.window,
                environment: p.environment,
                prompt_id: 5,
                checkpoint: p.checkpoint,
                window_randomness: p.window_randomness,
                generation: p.generation,
            },
            rollouts: vec![rollout(&[8, 0]), rollout(&[9, 9, 9, 9])],
            signature: Signature([0; 64]),
        };
        edit(&mut g);
        key.sign_group(&mut g);
        g
    }

    /// Stage 1, then the signature (stage 3; structure is tested apart).
    fn binding(g: &Group, key: &Keypair) -> Option<Reason> {
        check_binding(&plan(), &key.public(), g)
            .and_then(|()| check_signature(g, crate::signing::verify_group))
            .err()
            .map(|r| r.reason)
    }

    fn structure(g: &Group, prompt: Result<&[u32], NoSuchPrompt>) -> Option<Reason> {
        let tokens = TokenRules {
            vocab_size: 10,
            max_sequence: 16,
            eos_ids: &[0],
        };
        check_structure(&plan(), g, prompt, tokens)
            .err()
            .map(|r| r.reason)
    }

    #[test]
    fn binding_reasons_in_order() {
        let key = Keypair::from_seed(&[1; 32]);
        let ok = signed(&key, |_| {});
        assert_eq!(binding(&ok, &key), None);
        type Edit = fn(&mut Group);
        let cases: [(Edit, Reason); 7] = [
            (|g| g.header.protocol_version = 2, Reason::Schema),
            (|g| g.rollouts.clear(), Reason::Schema),
            (|g| g.header.window = 80, Reason::WindowMismatch),
            (
                |g| g.header.window_randomness = [4; 32],
                Reason::RandomnessMismatch,
            ),
            (
                |g| g.header.environment.params = "v2".into(),
                Reason::EnvironmentMismatch,
            ),
            (
                |g| g.header.generation.temperature_milli = 700,
                Reason::GenerationMismatch,
            ),
            (|g| g.header.checkpoint = [8; 32], Reason::StaleCheckpoint),
        ];
        for (edit, want) in cases {
            assert_eq!(binding(&signed(&key, edit), &key), Some(want));
        }
        let other = Keypair::from_seed(&[2; 32]);
        assert_eq!(binding(&ok, &other), Some(Reason::HotkeyMismatch));
        let mut forged = ok.clone();
        forged.rollouts[0].reward = 1.0;
        assert_eq!(binding(&forged, &key), Some(Reason::Signature));
    }

    #[test]
    fn structure_reasons_in_order() {
        let key = Keypair::from_seed(&[1; 32]);
        let prompt: &[u32] = &[1, 2, 3];
        let ok = signed(&key, |_| {});
        assert_eq!(structure(&ok, Ok(prompt)), None);
        let one = signed(&key, |g| {
            g.rollouts.pop();
        });
        assert_eq!(structure(&one, Ok(prompt)), Some(Reason::GroupSize));
        let big = signed(&key, |g| g.rollouts[0].tokens[3] = 10);
        assert_eq!(structure(&big, Ok(prompt)), Some(Reason::TokenLimits));
        assert_eq!(structure(&ok, Ok(&[1, 2, 4])), Some(Reason::PromptMismatch));
        assert_eq!(
            structure(&ok, Err(NoSuchPrompt("no problem".into()))),
            Some(Reason::PromptMismatch)
        );
        let padded = signed(&key, |g| g.rollouts[0].tokens[3] = 0);
        assert_eq!(structure(&padded, Ok(prompt)), Some(Reason::BadTermination));
    }

    #[test]
    fn logprob_check_catches_forgeries_and_nan() {
        assert!(check_logprobs(0, &[-1.0, -2.0], &[-1.001, -2.0]).is_ok());
        assert!(check_logprobs(0, &[-1.0, -2.0], &[-1.5, -2.0]).is_err());
        assert!(check_logprobs(0, &[f32::NAN, -2.0], &[-1.0, -2.0]).is_err());
        assert!(check_logprobs(0, &[-1.0], &[-1.0, -2.0]).is_err());
    }
}
