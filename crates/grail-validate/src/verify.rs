//! The validator's answers to the window verifier of `grail_proto::verifier`, which holds
//! every rule and its order (docs/protocol.md §12): this module renders canonical prompts,
//! verifies signatures on every core, runs the forward pass and the environment, and
//! feeds the answers back. It decides nothing.
//!
//! Memory: a [`BundleCheck`] keeps of a bundle only what the rest of the window needs
//! (its work digests, the sampled groups, the failing group and at most
//! `MAX_ARCHIVED_VOIDS` void ones), so a window holds a few decoded bundles at a time,
//! not every miner's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use grail_env::Environment;
use grail_infer::{SamplingCheck, Scored};
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::rules::group::{NoSuchPrompt, RolloutEvidence};
use grail_proto::rules::{Rejection, WindowPlan};
use grail_proto::sampling::{temperature, RolloutNoise};
use grail_proto::verifier::{
    judge_group, BundleCheck, BundleRequest, ValidatorFault, WindowOutcome, WindowParams,
    WindowRequest, WindowVerifier,
};
use grail_proto::{Group, Hotkey};

pub use grail_proto::verifier::{
    archive_credits, archive_entries, CheckedGroup, GroupOutcome, MinerReport, PendingBundle,
    OWN_FAILURE_RETRIES, OWN_FAILURE_STATUS,
};

use grail_node::context::ModelContext;
use grail_node::NodeError;

/// The window parameters of `plan` for `context`'s model: its hidden size, vocabulary,
/// sequence limit and EOS ids; evidence archived at `validator`'s positions.
pub fn window_params(
    context: &ModelContext,
    plan: WindowPlan,
    challenge_randomness: [u8; 32],
    validator: Hotkey,
    groups_checked: usize,
) -> WindowParams {
    let config = &context.files.config;
    let mut params = WindowParams::new(
        plan,
        challenge_randomness,
        context.model.config().hidden_size,
        validator,
        config.vocab_size,
        config.max_position_embeddings,
        context.eos_ids.clone(),
    );
    params.groups_checked = groups_checked;
    params
}

/// A validator's own failure as the verifier's typed answer.
fn fault(e: NodeError) -> ValidatorFault {
    ValidatorFault(e.to_string())
}

/// Canonical prompt renderings by prompt id, shared across a window's groups and the
/// threads checking them (or, for ids the environment does not have, why: the miner's
/// fault). The validator's own failures are not cached.
#[derive(Default)]
pub struct PromptCache(Mutex<HashMap<u64, Result<Vec<u32>, NoSuchPrompt>>>);

impl PromptCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rendering of prompt `id`, rendered with `render` (outside the lock) when it is
    /// not cached yet.
    fn get_or_render(
        &self,
        id: u64,
        render: impl FnOnce() -> Result<Result<Vec<u32>, NoSuchPrompt>, NodeError>,
    ) -> Result<Result<Vec<u32>, NoSuchPrompt>, NodeError> {
        let known = |cache: &Self| {
            cache
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&id)
                .cloned()
        };
        if let Some(hit) = known(self) {
            return Ok(hit);
        }
        let rendered = render()?;
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, rendered.clone());
        Ok(rendered)
    }
}

/// Whether a failure to render a prompt is the miner's (a prompt id outside the
/// environment's prompt space) or the validator's own (dataset, template, tokenizer),
/// which must never become the miner's `prompt_mismatch`.
///
/// # Errors
/// `e` itself when it is the validator's own failure.
pub fn miner_fault_of_prompt(e: NodeError) -> Result<NoSuchPrompt, NodeError> {
    match e {
        NodeError::Env(grail_env::EnvError::PromptOutOfRange { .. }) => {
            Ok(NoSuchPrompt(e.to_string()))
        }
        own => Err(own),
    }
}

pub use grail_node::OwnFailure;

/// What a bundle check asks of the validator without a model: canonical prompts and
/// signatures. Shared by threads, so bundles are checked on every core.
#[derive(Clone, Copy)]
pub struct Prechecks<'a> {
    /// Renders canonical prompts.
    pub prompter: grail_node::context::Prompter<'a>,
    /// The subnet's environment.
    pub env: &'a dyn Environment,
}

impl Prechecks<'_> {
    /// The answer to a prompt request: the rendering, [`NoSuchPrompt`] for an id outside
    /// the environment's prompt space (the miner's fault), or the validator's own failure.
    fn prompt(
        &self,
        prompt_id: u64,
        prompts: &PromptCache,
    ) -> Result<Result<Vec<u32>, NoSuchPrompt>, ValidatorFault> {
        prompts
            .get_or_render(prompt_id, || {
                Ok(match self.prompter.prompt(self.env, prompt_id) {
                    Ok((_, tokens)) => Ok(tokens),
                    Err(e) => Err(miner_fault_of_prompt(e)?),
                })
            })
            .map_err(|e| {
                tracing::warn!(prompt_id, "own failure rendering a prompt: {e}");
                fault(e)
            })
    }

    /// Answers `check`'s requests until it is done, then finishes it against `replay`
    /// (stages 1–5 of one bundle).
    pub fn run(
        &self,
        mut check: BundleCheck<'_>,
        prompts: &PromptCache,
        replay: &ReplaySet,
    ) -> PendingBundle {
        loop {
            match check.poll() {
                BundleRequest::Prompt { prompt_id } => {
                    let answer = self.prompt(prompt_id, prompts);
                    check.answer_prompt(answer);
                }
                BundleRequest::Signatures { groups } => {
                    let valid = verify_signatures(groups);
                    check.answer_signatures(valid);
                }
                BundleRequest::Done => return check.finish(replay),
            }
        }
    }

    /// Every check on one group without a forward pass, in the normative order (binding,
    /// structure, signature): the offline re-verifier's path.
    ///
    /// # Errors
    /// The validator's own failure to render the canonical prompt.
    pub fn precheck(
        &self,
        params: &WindowParams,
        bundle_hotkey: &Hotkey,
        group: &Group,
        prompts: &PromptCache,
    ) -> Result<Result<(), Rejection>, NodeError> {
        let report = MinerReport::new(*bundle_hotkey, 0);
        let pending = self.run(
            BundleCheck::new(params, report, vec![group.clone()]),
            prompts,
            &ReplaySet::default(),
        );
        if pending.report.bundle_status == OWN_FAILURE_STATUS {
            return Err(ValidatorFault(pending.report.detail).into());
        }
        Ok(match pending.report.checked.first() {
            Some(c) => Err(Rejection::new(
                c.outcome.reason(),
                c.outcome.verdict.detail.clone(),
            )),
            None => Ok(()),
        })
    }
}

/// The validator's model and environment answering a window's forward-pass requests.
pub struct WindowCheck<'a> {
    /// The model of the checkpoint in effect.
    pub context: &'a ModelContext,
    /// The subnet's environment.
    pub env: &'a dyn Environment,
    /// The window's parameters.
    pub params: &'a WindowParams,
}

impl WindowCheck<'_> {
    /// The checks of this window that need no forward pass.
    pub fn prechecks(&self) -> Prechecks<'_> {
        Prechecks {
            prompter: self.context.prompter(),
            env: self.env,
        }
    }

    /// The forward-pass checks of one group that passed its prechecks, judged by
    /// `grail_proto::verifier::judge_group` (alone: without the sample-wide rules).
    ///
    /// # Errors
    /// The validator's own failure (its forward pass or environment), never the miner's.
    pub fn check_forward(&self, group: &Group) -> Result<GroupOutcome, NodeError> {
        let evidence = self.evidence(group)?;
        Ok(judge_group(self.params, group, &evidence)?)
    }

    /// The validator's evidence for a group: one batched proof pass gives hidden states
    /// at the challenged positions, log-probs and sampling gaps; the environment gives
    /// rewards.
    ///
    /// # Errors
    /// The validator's own failure (its forward pass or environment).
    pub fn evidence(&self, group: &Group) -> Result<Vec<RolloutEvidence>, NodeError> {
        let scored = score_group(
            self.context,
            self.params.plan.generation.temperature_milli,
            group,
        )?;
        let refs: Vec<&Scored> = scored.iter().collect();
        let all_gaps = completion_gaps(group, &refs)?;
        let positions = grail_proto::rules::group::challenged_positions(
            &self.params.challenge_randomness,
            group,
        );
        let problem = self.env.problem(group.header.prompt_id)?;
        let mut evidence = Vec::with_capacity(group.rollouts.len());
        for (((r, s), pos), gaps) in group
            .rollouts
            .iter()
            .zip(&scored)
            .zip(&positions)
            .zip(all_gaps)
        {
            let hidden = pos
                .iter()
                .map(|&q| s.hidden(q).map(<[f32]>::to_vec))
                .collect::<Option<Vec<_>>>()
                .ok_or(OwnFailure::MissingHiddenState)?;
            evidence.push(RolloutEvidence {
                hidden,
                logprobs: s.logprobs[r.prompt_len as usize..].to_vec(),
                gaps,
                reward: self
                    .context
                    .reward(self.env, &problem, r.completion())
                    .map(|v| (v.total, v.success))?,
            });
        }
        Ok(evidence)
    }
}

/// Answers a window's forward-pass requests with `check`'s model and environment (off
/// the async runtime) until every spot check is judged: stages 6–7 over every bundle.
pub fn finish_window(check: &WindowCheck<'_>, pending: Vec<PendingBundle>) -> WindowOutcome {
    let mut window = WindowVerifier::new(check.params, pending);
    loop {
        let answer = match window.poll() {
            WindowRequest::Done => return window.finish(),
            WindowRequest::Forward(ask) => {
                if ask.attempt > 0 {
                    tracing::warn!(
                        miner = %ask.miner.to_ss58(),
                        group = ask.index,
                        attempt = ask.attempt,
                        "own failure checking a group, retrying"
                    );
                }
                grail_node::blocking(|| check.evidence(ask.group)).map_err(fault)
            }
        };
        window.answer_forward(answer);
    }
}

/// A forward pass of `context`'s model over a group's rollouts (completion positions
/// only), with the sampling gaps of every completion token under temperature
/// `temperature_milli` and each rollout's public noise.
///
/// # Errors
/// The model's own failure (never the miner's).
pub fn score_group(
    context: &ModelContext,
    temperature_milli: u32,
    group: &Group,
) -> Result<Vec<Scored>, NodeError> {
    let header = &group.header;
    let noise = group.rollouts.iter().enumerate().map(|(i, r)| {
        RolloutNoise::new(
            &header.window_randomness,
            &header.hotkey,
            r.prompt(),
            i as u32,
        )
    });
    let sampling = SamplingCheck {
        temperature: temperature(temperature_milli),
        noise: noise.collect(),
    };
    // Only completion tokens are checked: no vocabulary-wide work for the prompts, and
    // the prompt every rollout shares (check_structure made sure) runs once.
    let eos = &context.eos_ids;
    let model = &context.model;
    let first = group.rollouts.first().map(|r| r.prompt());
    let scored = match first {
        Some(prompt) if group.rollouts.iter().all(|r| r.prompt() == prompt) => {
            let completions: Vec<&[u32]> = group.rollouts.iter().map(|r| r.completion()).collect();
            model.score_shared_prompt(prompt, &completions, eos, Some(&sampling))?
        }
        _ => {
            let refs: Vec<&[u32]> = group.rollouts.iter().map(|r| r.tokens.as_slice()).collect();
            let from: Vec<usize> = group
                .rollouts
                .iter()
                .map(|r| r.prompt_len as usize)
                .collect();
            model.score_from(&refs, &from, eos, Some(&sampling))?
        }
    };
    Ok(scored)
}

/// The sampling gap of every completion token of every rollout (`gaps[i][t]`: rollout
/// `i`, completion token `t`) from a forward pass in rollout order.
///
/// # Errors
/// [`OwnFailure::NonFiniteLogits`] when a pass gives no gap or a NaN for a completion
/// token (the validator's own failure).
pub fn completion_gaps(group: &Group, scored: &[&Scored]) -> Result<Vec<Vec<f64>>, NodeError> {
    if scored.len() != group.rollouts.len() {
        return Err(OwnFailure::NonFiniteLogits.into());
    }
    group
        .rollouts
        .iter()
        .zip(scored)
        .map(|(r, s)| {
            let gaps = s.gaps.get(r.prompt_len as usize..).unwrap_or_default();
            if gaps.len() != r.completion().len() || gaps.iter().any(|g| g.is_nan()) {
                return Err(OwnFailure::NonFiniteLogits.into());
            }
            Ok(gaps.to_vec())
        })
        .collect()
}

/// Recomputes a group's sampling gaps with `context`'s model, under the group's own
/// declared temperature (what a re-verifier compares an archive's evidence with,
/// `grail_proto::rules::evidence::check_evidence`).
///
/// # Errors
/// The model's own failure ([`score_group`], [`completion_gaps`]).
pub fn recompute_gaps(context: &ModelContext, group: &Group) -> Result<Vec<Vec<f64>>, NodeError> {
    let scored = score_group(context, group.header.generation.temperature_milli, group)?;
    let refs: Vec<&Scored> = scored.iter().collect();
    completion_gaps(group, &refs)
}

/// Whether each group's sr25519 signature verifies, spread over the cores for large
/// bundles (the costly part of checking a bundle without a forward pass).
fn verify_signatures(groups: &[Group]) -> Vec<bool> {
    const PER_THREAD: usize = 64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || groups.len() <= PER_THREAD {
        return groups
            .iter()
            .map(grail_proto::signing::verify_group)
            .collect();
    }
    let chunk = groups.len().div_ceil(threads).max(PER_THREAD);
    std::thread::scope(|scope| {
        let workers: Vec<_> = groups
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(grail_proto::signing::verify_group)
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        // A panicking verification is a bug of the validator, never the miner's fault:
        // it propagates instead of reading as a bad signature.
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Verdict counts by reason string.
pub fn verdict_counts(reports: &[MinerReport]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (reason, n) in reports.iter().flat_map(MinerReport::verdict_counts) {
        *out.entry(reason).or_default() += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use grail_env::EnvError;

    use super::*;

    #[test]
    fn only_a_prompt_id_outside_the_prompt_space_is_the_miners_fault() {
        let outside = NodeError::Env(EnvError::PromptOutOfRange {
            env: "math".into(),
            id: 9,
            size: 3,
        });
        let fault = miner_fault_of_prompt(outside).expect("the miner asked for no prompt");
        assert!(fault.0.contains("outside the prompt space"), "{}", fault.0);
        // The validator's dataset, template or tokenizer failing is its own failure.
        let unreadable = NodeError::Env(EnvError::Io {
            path: "problems.jsonl".into(),
            source: std::io::Error::other("disk gone"),
        });
        assert!(matches!(
            miner_fault_of_prompt(unreadable),
            Err(NodeError::Env(EnvError::Io { .. }))
        ));
        let tokenizer = NodeError::Infer(grail_infer::InferError::Input("bad merges".into()));
        assert!(miner_fault_of_prompt(tokenizer).is_err());
    }

    #[test]
    fn a_miner_replaying_thousands_of_groups_does_not_grow_the_archive() {
        use crate::testing::report;
        let mut reasons = vec!["replay"; 3_000];
        reasons.extend(["accepted"; 8]);
        let flood = report(Hotkey([1; 32]), 1, &reasons);
        let honest = report(Hotkey([2; 32]), 2, &["replay", "accepted", "accepted"]);
        let entries = archive_entries(&[flood, honest]);
        let count = |miner: u8, reason: &str| {
            entries
                .iter()
                .filter(|e| e.miner == Hotkey([miner; 32]) && e.verdict.reason == reason)
                .count()
        };
        let cap = grail_proto::params::MAX_ARCHIVED_VOIDS;
        assert_eq!((count(1, "replay"), count(1, "accepted")), (cap, 8));
        assert_eq!((count(2, "replay"), count(2, "accepted")), (1, 2));
    }
}
