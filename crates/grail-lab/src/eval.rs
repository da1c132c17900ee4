//! Held-out evaluation: greedy pass@1 and mean reward of a model on prompts that training
//! never sees.
//!
//! The held-out set is drawn from its own PRF stream (`grail/eval-prompts`, a seed) and
//! is disjoint from training by *problem statement*: an experiment's miners skip any
//! prompt whose statement is in the set ([`HeldOut::contains`]), so two ids that render
//! the same problem cannot leak an evaluation problem into training.

use std::collections::{BTreeMap, BTreeSet};

use grail_env::{Environment, PromptSpace};
use grail_infer::{no_progress, GroupRequest, SamplingParams};
use grail_proto::prf::{stream, uniform_below};
use grail_proto::sampling::PositionNoise;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use grail_node::context::ModelContext;
use grail_node::NodeError;

/// A held-out prompt set.
#[derive(Debug, Clone)]
pub struct HeldOut {
    /// Prompt ids, in evaluation order.
    pub prompts: Vec<u64>,
    statements: BTreeSet<String>,
}

impl HeldOut {
    /// `count` prompts of `env` with distinct statements, drawn from the stream of `seed`.
    /// A finite prompt space gives at most all of its prompts.
    ///
    /// # Errors
    /// An environment that cannot make a problem for a drawn id.
    pub fn draw(env: &dyn Environment, count: usize, seed: u64) -> Result<Self, NodeError> {
        let mut rng = stream(b"grail/eval-prompts", &[&seed.to_be_bytes()]);
        let (mut prompts, mut statements) = (Vec::new(), BTreeSet::new());
        let limit = match env.prompt_space() {
            PromptSpace::Unbounded => count,
            PromptSpace::Finite(n) => count.min(usize::try_from(n).unwrap_or(usize::MAX)),
        };
        // Small problem spaces repeat statements; give up after many fruitless draws.
        let mut misses = 0usize;
        while prompts.len() < limit && misses < 100 * count.max(1) {
            let id = match env.prompt_space() {
                PromptSpace::Unbounded => rng.next_u64(),
                PromptSpace::Finite(n) => uniform_below(&mut rng, n),
            };
            if statements.insert(env.problem(id)?.statement) {
                prompts.push(id);
            } else {
                misses += 1;
            }
        }
        Ok(Self {
            prompts,
            statements,
        })
    }

    /// Whether `statement` is one of the held-out problems.
    pub fn contains(&self, statement: &str) -> bool {
        self.statements.contains(statement)
    }
}

/// Per-stratum results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StratumScore {
    /// Prompts evaluated.
    pub prompts: usize,
    /// Greedy completions that were correct.
    pub solved: usize,
}

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Prompts evaluated.
    pub prompts: usize,
    /// Fraction solved by the greedy completion.
    pub pass_at_1: f64,
    /// Mean total reward of the greedy completions.
    pub mean_reward: f64,
    /// Mean completion length in tokens.
    pub mean_tokens: f64,
    /// Results per stratum (tier or mix part).
    pub by_stratum: BTreeMap<String, StratumScore>,
    /// Every prompt's result, in evaluation order (what intervals over prompts need).
    /// Not serialized: the experiment writes them once, to `eval_prompts.csv`.
    #[serde(skip, default)]
    pub per_prompt: Vec<PromptOutcome>,
}

/// One held-out prompt's greedy result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptOutcome {
    /// The prompt id.
    pub prompt_id: u64,
    /// Its stratum (tier or mix part).
    pub stratum: String,
    /// Whether the greedy completion was correct.
    pub success: bool,
    /// Its total reward.
    pub reward: f64,
    /// Its length in tokens.
    pub tokens: usize,
}

/// Held-out prompts greedy-decoded together, one row each: a decode step of 16 rows costs
/// little more than one of a single row on CPU, so evaluation is several times faster
/// than one prompt at a time. Batching changes the floating-point summation order of
/// the matrix products, so a completion may differ from its one-at-a-time decode where
/// two tokens' logits are nearly tied.
pub const EVAL_BATCH: usize = 16;

/// Greedy-decodes every held-out prompt (at most `max_new_tokens` tokens), [`EVAL_BATCH`]
/// at a time, and scores it. `progress` sees `(done, total)` after each batch.
///
/// # Errors
/// Rendering, generation or scoring failures of the model or environment.
pub fn evaluate(
    context: &ModelContext,
    env: &dyn Environment,
    held_out: &HeldOut,
    max_new_tokens: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, NodeError> {
    evaluate_batched(context, env, held_out, max_new_tokens, EVAL_BATCH, progress)
}

/// [`evaluate`] with `batch` prompts decoded together (1: one at a time).
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_batched(
    context: &ModelContext,
    env: &dyn Environment,
    held_out: &HeldOut,
    max_new_tokens: usize,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, NodeError> {
    let params = SamplingParams {
        max_new_tokens,
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let total = held_out.prompts.len();
    let (mut solved, mut reward, mut tokens, mut done) = (0usize, 0.0, 0usize, 0usize);
    let mut by_stratum: BTreeMap<String, StratumScore> = BTreeMap::new();
    let mut per_prompt = Vec::with_capacity(total);
    for ids in held_out.prompts.chunks(batch.max(1)) {
        let rendered = ids
            .iter()
            .map(|&id| context.prompt(env, id))
            .collect::<Result<Vec<_>, _>>()?;
        // Greedy decoding draws no randomness; the generator's noise is ignored.
        let mut requests: Vec<GroupRequest<'_, _>> = rendered
            .iter()
            .map(|(_, prompt)| GroupRequest {
                prompt,
                noise: vec![std::iter::repeat(PositionNoise(0))],
            })
            .collect();
        let completions = context.model.generate_groups(
            &mut requests,
            &params,
            &context.eos_ids,
            &mut no_progress,
        )?;
        for ((&id, (problem, _)), group) in ids.iter().zip(&rendered).zip(completions) {
            let completion = group
                .into_iter()
                .next()
                .map(|c| c.tokens)
                .unwrap_or_default();
            let score = context.reward(env, problem, &completion)?;
            let stratum = env.stratum(id);
            let s = by_stratum.entry(stratum.clone()).or_default();
            s.prompts += 1;
            if score.success {
                solved += 1;
                s.solved += 1;
            }
            reward += score.total;
            tokens += completion.len();
            per_prompt.push(PromptOutcome {
                prompt_id: id,
                stratum,
                success: score.success,
                reward: score.total,
                tokens: completion.len(),
            });
        }
        done += ids.len();
        progress(done, total);
    }
    let n = total.max(1) as f64;
    Ok(EvalReport {
        prompts: total,
        pass_at_1: solved as f64 / n,
        mean_reward: reward / n,
        mean_tokens: tokens as f64 / n,
        by_stratum,
        per_prompt,
    })
}

/// Options of `grail-trainer eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Model directory (a base model or an exported checkpoint).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Environment spec (as in the subnet configuration).
    #[arg(long, default_value = crate::DEFAULT_ENVIRONMENT)]
    pub environment: String,
    /// JSONL file for the dataset environments.
    #[arg(long)]
    pub dataset: Option<std::path::PathBuf>,
    /// Held-out prompts.
    #[arg(long, default_value_t = 64)]
    pub prompts: usize,
    /// Seed of the held-out set (the experiment uses its own `--seed`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Most tokens per completion.
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: usize,
    /// Model device: auto (CUDA when libtorch sees a GPU), cpu, cuda or cuda:N.
    #[arg(long, env = "GRAIL_DEVICE", default_value_t = grail_infer::DeviceChoice::Auto)]
    pub device: grail_infer::DeviceChoice,
}

/// Loads the model and environment of `args` and evaluates; `progress` as in [`evaluate`].
///
/// # Errors
/// An unreadable model or dataset, an unknown environment, or a generation failure.
pub fn run(
    args: &EvalArgs,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, NodeError> {
    let env = grail_env::by_name(&args.environment, args.dataset.as_deref())?;
    let device = grail_node::context::device(args.device)?;
    let context = ModelContext::load(&args.model, device)?;
    let held_out = HeldOut::draw(env.as_ref(), args.prompts, args.seed)?;
    evaluate(
        &context,
        env.as_ref(),
        &held_out,
        args.max_new_tokens,
        progress,
    )
}
