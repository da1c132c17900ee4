//! Building a signed group: render the prompt, sample M completions with the public
//! noise, run the proof pass, sketch every position, score with the environment,
//! compute advantages, sign.

use grail_env::{Environment, Problem};
use grail_infer::{no_progress, GroupRequest, SamplingParams};
use grail_proto::sampling::RolloutNoise;
use grail_proto::signing::Keypair;
use grail_proto::{Group, Rollout, Signature, SketchCoefficients};

use grail_node::context::ModelContext;
use grail_node::NodeError;

pub use grail_proto::rules::WindowPlan;

/// Sketch digests of every position and raw log-probs of the completion of one sequence.
pub type ProofMaterial = (Vec<grail_proto::SketchDigest>, Vec<f32>);

/// Sketches of every position and raw log-probs of the completion, from one proof pass
/// over `sequences` (`prompt_len` tokens of prompt each).
pub fn proof_material(
    context: &ModelContext,
    coefficients: &SketchCoefficients,
    sequences: &[Vec<u32>],
    prompt_len: usize,
) -> Result<Vec<ProofMaterial>, NodeError> {
    // Sequences continuing one prompt run it once (`Model::score_shared_prompt`).
    let prompt = sequences
        .first()
        .and_then(|s| s.get(..prompt_len))
        .unwrap_or_default();
    let completions: Vec<&[u32]> = sequences
        .iter()
        .map(|s| s.get(prompt_len..).unwrap_or_default())
        .collect();
    let shared = sequences
        .iter()
        .all(|s| s.get(..prompt_len) == Some(prompt));
    let scored = if shared {
        context
            .model
            .score_shared_prompt(prompt, &completions, &context.eos_ids, None)?
    } else {
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let from = vec![prompt_len; refs.len()];
        context
            .model
            .score_from(&refs, &from, &context.eos_ids, None)?
    };
    Ok(scored
        .iter()
        .map(|s| {
            let sketches = (0..s.tokens.len())
                .map(|p| coefficients.sketch(s.hidden(p).unwrap_or(&[])).digest())
                .collect();
            (sketches, s.logprobs[prompt_len..].to_vec())
        })
        .collect())
}

/// The completions of a group as the protocol fixes them: rollout `i` is sampled with
/// the public noise of (window randomness, the miner's hotkey, the prompt's tokens,
/// `i`), so each rollout has exactly one honest value and no resampling is possible.
pub fn sample_completions(
    context: &ModelContext,
    plan: &WindowPlan,
    hotkey: &grail_proto::Hotkey,
    prompt: &[u32],
) -> Result<Vec<Vec<u32>>, NodeError> {
    let mut groups = sample_completions_batch(context, plan, hotkey, &[prompt])?;
    Ok(groups.pop().unwrap_or_default())
}

/// [`sample_completions`] for several prompts in one batch (`Model::generate_groups`):
/// each group's completions are the ones it has alone, up to summation order.
pub fn sample_completions_batch(
    context: &ModelContext,
    plan: &WindowPlan,
    hotkey: &grail_proto::Hotkey,
    prompts: &[&[u32]],
) -> Result<Vec<Vec<Vec<u32>>>, NodeError> {
    sample_completions_batch_until(context, plan, hotkey, prompts, &|| false)
}

/// [`sample_completions_batch`], stopped with `InferError::Cancelled` at the first decode step where
/// `cancel()` is true (the miner's upload cutoff passed).
pub fn sample_completions_batch_until(
    context: &ModelContext,
    plan: &WindowPlan,
    hotkey: &grail_proto::Hotkey,
    prompts: &[&[u32]],
    cancel: &dyn Fn() -> bool,
) -> Result<Vec<Vec<Vec<u32>>>, NodeError> {
    let groups: Vec<(&grail_proto::Hotkey, &[u32])> =
        prompts.iter().map(|p| (hotkey, *p)).collect();
    sample_completions_of(context, plan, &groups, cancel)
}

/// The completions of several miners' groups in one batch, each `(hotkey, prompt)` group
/// sampled with its own miner's public noise (the experiment batches every miner of a
/// window). Cancellation as [`sample_completions_batch_until`].
pub fn sample_completions_of(
    context: &ModelContext,
    plan: &WindowPlan,
    groups: &[(&grail_proto::Hotkey, &[u32])],
    cancel: &dyn Fn() -> bool,
) -> Result<Vec<Vec<Vec<u32>>>, NodeError> {
    let params = SamplingParams::from(&plan.generation);
    let mut requests: Vec<GroupRequest<'_, RolloutNoise>> = groups
        .iter()
        .map(|&(hotkey, prompt)| GroupRequest {
            prompt,
            noise: (0..plan.group_size as u32)
                .map(|i| RolloutNoise::new(&plan.window_randomness, hotkey, prompt, i))
                .collect(),
        })
        .collect();
    let groups = context.model.generate_groups_until(
        &mut requests,
        &params,
        &context.eos_ids,
        &mut no_progress,
        cancel,
    )?;
    Ok(groups
        .into_iter()
        .map(|g| g.into_iter().map(|c| c.tokens).collect())
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
        header: plan.header(key.public(), prompt_id),
        rollouts,
        signature: Signature([0; 64]),
    };
    key.sign_group(&mut group);
    Ok(group)
}

/// Makes one signed group for `prompt_id`, sampled with the public noise.
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
