//! Building a signed group: render the prompt, sample M completions with the public
//! uniforms, run the proof pass, sketch every position, score with the environment,
//! compute advantages, sign.

use grail_env::{Environment, Problem, PromptSpace};
use grail_infer::{no_progress, SamplingParams};
use grail_proto::params::PROTOCOL_VERSION;
use grail_proto::prf::{stream, uniform_below};
use grail_proto::sampling::Uniforms;
use grail_proto::signing::Keypair;
use grail_proto::{Group, GroupHeader, Rollout, Signature, SketchCoefficients};
use rand_core::RngCore;

use crate::context::ModelContext;
use crate::NodeError;

pub use grail_proto::rules::WindowPlan;

/// Sketches of every position and raw log-probs of the completion of one sequence.
pub type ProofMaterial = (Vec<grail_proto::PositionSketch>, Vec<f32>);

/// Sketches of every position and raw log-probs of the completion, from one proof pass
/// over `sequences` (`prompt_len` tokens of prompt each).
pub fn proof_material(
    context: &ModelContext,
    coefficients: &SketchCoefficients,
    sequences: &[Vec<u32>],
    prompt_len: usize,
) -> Result<Vec<ProofMaterial>, NodeError> {
    let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
    let scored = context.model.score(&refs, &context.eos_ids, None)?;
    Ok(scored
        .iter()
        .map(|s| {
            let sketches = (0..s.tokens.len())
                .map(|p| coefficients.sketch(s.hidden(p).unwrap_or(&[])))
                .collect();
            (sketches, s.logprobs[prompt_len..].to_vec())
        })
        .collect())
}

/// The completions of a group as the protocol fixes them: rollout `i` is sampled with
/// the public uniforms of (window randomness, the miner's hotkey, the prompt's tokens,
/// `i`), so each rollout has exactly one honest value and no resampling is possible.
pub fn sample_completions(
    context: &ModelContext,
    plan: &WindowPlan,
    hotkey: &grail_proto::Hotkey,
    prompt: &[u32],
) -> Result<Vec<Vec<u32>>, NodeError> {
    let params = SamplingParams::from(&plan.generation);
    let mut uniforms: Vec<Uniforms> = (0..plan.group_size as u32)
        .map(|i| Uniforms::new(&plan.window_randomness, hotkey, prompt, i))
        .collect();
    Ok(context
        .model
        .generate_rows(
            prompt,
            &mut uniforms,
            &params,
            &context.eos_ids,
            &mut no_progress,
        )?
        .into_iter()
        .map(|c| c.tokens)
        .collect())
}

/// Builds and signs a group from completions: proof pass (sketches of every position,
/// log-probs), rewards, advantages. [`make_group`] passes the honest completions.
#[allow(clippy::too_many_arguments)]
pub fn assemble_group(
    context: &ModelContext,
    env: &dyn Environment,
    plan: &WindowPlan,
    coefficients: &SketchCoefficients,
    key: &Keypair,
    prompt_id: u64,
    (problem, prompt): (&Problem, &[u32]),
    completions: &[Vec<u32>],
) -> Result<Group, NodeError> {
    let sequences: Vec<Vec<u32>> = completions
        .iter()
        .map(|c| prompt.iter().chain(c).copied().collect())
        .collect();
    let material = proof_material(context, coefficients, &sequences, prompt.len())?;
    let mut rewards = Vec::with_capacity(completions.len());
    let mut successes = Vec::with_capacity(completions.len());
    for c in completions {
        let r = context.reward(env, problem, c)?;
        rewards.push(r.total);
        successes.push(r.success);
    }
    let advantages = grail_proto::grpo::advantages(&rewards);
    let rollouts = sequences
        .into_iter()
        .zip(material)
        .enumerate()
        .map(|(i, (tokens, (sketches, logprobs)))| Rollout {
            tokens,
            prompt_len: prompt.len() as u32,
            sketches,
            logprobs,
            reward: rewards[i],
            advantage: advantages[i],
            success: successes[i],
        })
        .collect();
    let mut group = Group {
        header: GroupHeader {
            protocol_version: PROTOCOL_VERSION,
            hotkey: key.public(),
            window: plan.window,
            environment: plan.environment.clone(),
            prompt_id,
            checkpoint: plan.checkpoint,
            window_randomness: plan.window_randomness,
            generation: plan.generation,
        },
        rollouts,
        signature: Signature([0; 64]),
    };
    key.sign_group(&mut group);
    Ok(group)
}

/// Makes one signed group for `prompt_id`, sampled with the public uniforms.
pub fn make_group(
    context: &ModelContext,
    env: &dyn Environment,
    plan: &WindowPlan,
    coefficients: &SketchCoefficients,
    key: &Keypair,
    prompt_id: u64,
) -> Result<Group, NodeError> {
    let (problem, prompt) = context.prompt(env, prompt_id)?;
    let completions = sample_completions(context, plan, &key.public(), &prompt)?;
    assemble_group(
        context,
        env,
        plan,
        coefficients,
        key,
        prompt_id,
        (&problem, &prompt),
        &completions,
    )
}

/// Chooses a miner's prompt ids for a window. Miners may target the learning zone (the
/// validator's `/window/{n}/state` histogram shows where groups land); the default picks
/// pseudo-randomly.
pub trait PromptStrategy: Send {
    /// The next prompt id to try in `window`.
    fn next(&mut self, window: u64, space: PromptSpace) -> u64;
}

/// Pseudo-random prompt ids from the miner's hotkey and the window: different miners try
/// different prompts, the same miner is reproducible.
pub struct PseudoRandomPrompts {
    hotkey: [u8; 32],
    window: u64,
    stream: Option<rand_chacha::ChaCha20Rng>,
}

impl PseudoRandomPrompts {
    /// For `key`.
    pub fn new(key: &Keypair) -> Self {
        Self {
            hotkey: key.public().0,
            window: u64::MAX,
            stream: None,
        }
    }
}

impl PromptStrategy for PseudoRandomPrompts {
    fn next(&mut self, window: u64, space: PromptSpace) -> u64 {
        if self.window != window || self.stream.is_none() {
            self.window = window;
            self.stream = Some(stream(
                b"grail/miner-prompts",
                &[&self.hotkey, &window.to_be_bytes()],
            ));
        }
        let rng = self.stream.as_mut().expect("set above");
        match space {
            PromptSpace::Unbounded => rng.next_u64(),
            PromptSpace::Finite(n) => uniform_below(rng, n.max(1)),
        }
    }
}
