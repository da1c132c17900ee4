//! The validator's driver for the rules in `grail_proto::rules`: it renders prompts,
//! runs the forward pass and the environment, and hands the evidence to the pure checks,
//! which decide. The order (docs/protocol.md §12):
//!
//! on every group — binding (schema, hotkey, window, randomness, environment, sampling
//! parameters, checkpoint) → structure (group size, token limits, canonical prompt,
//! termination) → signature, batched over the cores → duplicates within the bundle;
//! across windows — replays (void); on a sample of groups — one forward pass for proof,
//! log-probs, sampling, reward and advantages; work also in another miner's bundle is
//! judged by whose noise it follows (a copy is `copycat`). Any failure but a void zeroes
//! the miner's window; its credit is estimated from the sample.
//!
//! Memory: [`precheck_bundle`] keeps of a bundle only what the rest of the window needs
//! (its work digests, the sampled groups, the failing group and at most
//! `MAX_ARCHIVED_VOIDS` void ones), so a window holds a few decoded bundles at a time,
//! not every miner's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use grail_env::Environment;
use grail_infer::{SamplingCheck, Scored};
use grail_proto::archive::{ArchiveEntry, MinerCredit, Verdict};
use grail_proto::rules::bundle::{
    credited_work, first_failure, judge_copy, sample_groups, shared_work, CheckedOutcome, ReplaySet,
};
use grail_proto::rules::evidence::record_evidence;
use grail_proto::rules::group::{
    challenged_positions, check_binding, check_forward, check_sample_ambiguity, check_structure,
    credited_in_zone, NoSuchPrompt, RolloutEvidence, SamplingTally, TokenRules,
};
use grail_proto::rules::{Consequence, Reason, Rejection};
use grail_proto::sampling::{temperature, RolloutNoise};
use grail_proto::{Group, Hotkey, SketchCoefficients};

use crate::context::ModelContext;
use crate::mining::WindowPlan;
use crate::NodeError;

/// The outcome of checking one group.
#[derive(Debug, Clone)]
pub struct GroupOutcome {
    /// The decision.
    pub verdict: Verdict,
    /// The validator's raw log-probs of each completion (empty if no forward pass ran).
    pub recomputed_logprobs: Vec<Vec<f32>>,
    /// Recomputed rewards (empty if no forward pass ran).
    pub rewards: Vec<f64>,
    /// The validator's own sampling gaps at its evidence positions, per rollout
    /// (`grail_proto::rules::evidence::record_evidence`; empty if no forward pass ran):
    /// what the archive entry carries as evidence of the check.
    pub evidence: Vec<Vec<f64>>,
    /// Whether the group counts as learning-zone work: the reward spread is in the zone
    /// and no position needed the sampling margin (`rules::group::credited_in_zone`).
    pub in_zone: bool,
    /// Completion positions and ambiguous positions of the sampling check (zero when no
    /// forward pass ran).
    pub sampling: SamplingTally,
}

impl GroupOutcome {
    /// A rejected group.
    pub fn rejected(r: Rejection) -> Self {
        GroupOutcome {
            verdict: Verdict {
                accepted: false,
                reason: r.reason.as_str().into(),
                detail: r.detail,
            },
            recomputed_logprobs: Vec::new(),
            rewards: Vec::new(),
            evidence: Vec::new(),
            in_zone: false,
            sampling: SamplingTally::default(),
        }
    }

    /// The typed reason (unknown strings, from other versions, count as schema failures).
    pub fn reason(&self) -> Reason {
        self.verdict.reason.parse().unwrap_or(Reason::Schema)
    }
}

/// Everything needed to check groups of one window.
pub struct WindowCheck<'a> {
    /// The model of the checkpoint in effect.
    pub context: &'a ModelContext,
    /// The subnet's environment.
    pub env: &'a dyn Environment,
    /// What headers must say.
    pub plan: WindowPlan,
    /// Sketch coefficients of the window.
    pub coefficients: &'a SketchCoefficients,
    /// Challenge randomness of the window.
    pub challenge_randomness: [u8; 32],
    /// The validator's own hotkey: it keys the positions of the evidence it archives.
    pub validator: Hotkey,
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

/// How often a validator retries its own failed check of one group (a forward pass, a
/// prompt rendering, a reward) before giving up on that miner's window.
pub const OWN_FAILURE_RETRIES: usize = 2;

/// The bundle status of a miner whose window the validator could not check because of its
/// own failure, after [`OWN_FAILURE_RETRIES`]: not a verdict on the miner (nothing is
/// recorded against it) and no credit, which is also what a miner that made the validator
/// fail on purpose gets. Other miners' windows are checked as usual.
pub const OWN_FAILURE_STATUS: &str = "validator_failure";

/// The validator's own forward pass gave unusable evidence (never the miner's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OwnFailure {
    /// The proof pass returned no hidden state for a challenged position.
    #[error("a challenged position has no hidden state")]
    MissingHiddenState,
    /// The model's logits do not define a distribution (non-finite values).
    #[error("the model's logits do not define a distribution (non-finite values)")]
    NonFiniteLogits,
}

/// The checks of a window that need no forward pass: binding, structure and signatures.
/// Unlike [`WindowCheck`] (whose model is not `Sync`), it can be shared by threads, so
/// bundles are checked on every core.
#[derive(Clone, Copy)]
pub struct Prechecks<'a> {
    /// Renders canonical prompts.
    pub prompter: crate::context::Prompter<'a>,
    /// The subnet's environment.
    pub env: &'a dyn Environment,
    /// What headers must say.
    pub plan: &'a WindowPlan,
    /// Token ids that end a completion.
    pub eos_ids: &'a [u32],
    /// Challenge randomness of the window (it draws the spot checks).
    pub challenge_randomness: [u8; 32],
}

impl Prechecks<'_> {
    /// The cheap checks that run on every group: binding and structure (the signature
    /// comes after them, batched: [`precheck_bundle`], [`Self::precheck`]). The outer
    /// error is the validator's own failure to render the canonical prompt (never the
    /// miner's); the inner one is the group's rejection.
    pub fn cheap_checks(
        &self,
        bundle_hotkey: &Hotkey,
        group: &Group,
        prompts: &PromptCache,
    ) -> Result<Result<(), Rejection>, NodeError> {
        if let Err(r) = check_binding(self.plan, bundle_hotkey, group) {
            return Ok(Err(r));
        }
        let id = group.header.prompt_id;
        let rendered = prompts.get_or_render(id, || {
            Ok(match self.prompter.prompt(self.env, id) {
                Ok((_, tokens)) => Ok(tokens),
                Err(e) => Err(miner_fault_of_prompt(e)?),
            })
        })?;
        let prompt = rendered.as_deref().map_err(Clone::clone);
        let config = &self.prompter.files.config;
        Ok(check_structure(
            self.plan,
            group,
            prompt,
            TokenRules {
                vocab_size: config.vocab_size,
                max_sequence: config.max_position_embeddings,
                eos_ids: self.eos_ids,
            },
        ))
    }

    /// Every check on one group without a forward pass, in the normative order: binding,
    /// structure, signature (the offline re-verifier's path; a bundle goes through
    /// [`precheck_bundle`]). Errors as [`Self::cheap_checks`].
    pub fn precheck(
        &self,
        bundle_hotkey: &Hotkey,
        group: &Group,
        prompts: &PromptCache,
    ) -> Result<Result<(), Rejection>, NodeError> {
        Ok(self
            .cheap_checks(bundle_hotkey, group, prompts)?
            .and_then(|()| {
                grail_proto::rules::group::check_signature(
                    group,
                    grail_proto::signing::verify_group,
                )
            }))
    }
}

impl WindowCheck<'_> {
    /// The checks of this window that need no forward pass.
    pub fn prechecks(&self) -> Prechecks<'_> {
        Prechecks {
            prompter: self.context.prompter(),
            env: self.env,
            plan: &self.plan,
            eos_ids: &self.context.eos_ids,
            challenge_randomness: self.challenge_randomness,
        }
    }

    /// The forward-pass checks of a group that passed [`Prechecks::precheck`]: one batched
    /// proof pass gives hidden states, log-probs and sampling gaps; the environment gives
    /// rewards; `grail_proto::rules::group::check_forward` decides. An error is the
    /// validator's own failure (its forward pass or environment), never the miner's.
    pub fn check_forward(&self, group: &Group) -> Result<GroupOutcome, NodeError> {
        let scored = self.forward(group)?;
        let refs: Vec<&Scored> = scored.iter().collect();
        self.judge(group, &refs)
    }

    /// The validator's forward pass over a group's rollouts (completion positions only).
    fn forward(&self, group: &Group) -> Result<Vec<Scored>, NodeError> {
        score_group(self.context, self.plan.generation.temperature_milli, group)
    }

    /// The forward-pass checks of a group given its rollouts' scores, in rollout order.
    fn judge(&self, group: &Group, scored: &[&Scored]) -> Result<GroupOutcome, NodeError> {
        let problem = self.env.problem(group.header.prompt_id)?;
        let positions = challenged_positions(&self.challenge_randomness, group);
        let all_gaps = completion_gaps(group, scored)?;
        let recorded = record_evidence(
            &self.challenge_randomness,
            &self.validator,
            group,
            &all_gaps,
        )
        .ok_or(OwnFailure::NonFiniteLogits)?;
        let mut evidence = Vec::with_capacity(group.rollouts.len());
        for (((r, s), pos), gaps) in group
            .rollouts
            .iter()
            .zip(scored)
            .zip(&positions)
            .zip(all_gaps)
        {
            let p = r.prompt_len as usize;
            let hidden = pos
                .iter()
                .map(|&q| s.hidden(q).map(<[f32]>::to_vec))
                .collect::<Option<Vec<_>>>()
                .ok_or(OwnFailure::MissingHiddenState)?;
            evidence.push(RolloutEvidence {
                hidden,
                logprobs: s.logprobs[p..].to_vec(),
                gaps,
                reward: self
                    .context
                    .reward(self.env, &problem, r.completion())
                    .map(|v| (v.total, v.success))?,
            });
        }
        let sampling = match check_forward(self.coefficients, group, &positions, &evidence) {
            Ok(tally) => tally,
            Err(r) => {
                let mut rejected = GroupOutcome::rejected(r);
                rejected.evidence = recorded;
                return Ok(rejected);
            }
        };
        let rewards: Vec<f64> = group.rollouts.iter().map(|r| r.reward).collect();
        Ok(GroupOutcome {
            verdict: Verdict {
                accepted: true,
                reason: Reason::Accepted.as_str().into(),
                detail: String::new(),
            },
            recomputed_logprobs: evidence.into_iter().map(|e| e.logprobs).collect(),
            in_zone: credited_in_zone(&rewards, sampling),
            rewards,
            evidence: recorded,
            sampling,
        })
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

/// One group a verdict was reached on.
#[derive(Debug, Clone)]
pub struct CheckedGroup {
    /// Index in the bundle.
    pub index: u32,
    /// The group.
    pub group: Group,
    /// The outcome.
    pub outcome: GroupOutcome,
}

/// A miner's bundle after checking.
#[derive(Debug, Clone)]
pub struct MinerReport {
    /// The miner.
    pub hotkey: Hotkey,
    /// Its uid.
    pub uid: u16,
    /// `accepted` when the bundle was read and decoded, else the bundle-level reason.
    pub bundle_status: String,
    /// Detail for the bundle status.
    pub detail: String,
    /// SHA-256 of the bundle bytes.
    pub bundle_sha256: [u8; 32],
    /// When the store received it.
    pub uploaded: Option<DateTime<Utc>>,
    /// Groups in the bundle.
    pub groups_submitted: usize,
    /// The work digest of every group in the bundle.
    pub works: Vec<[u8; 32]>,
    /// The work digests of the eligible groups (recorded for replay detection).
    pub eligible_works: Vec<[u8; 32]>,
    /// Groups that passed every check on all groups and were not void.
    pub eligible: usize,
    /// Groups with a verdict: the first failing group when a check on all groups failed,
    /// the first `MAX_ARCHIVED_VOIDS` void groups, and the sampled groups that had a
    /// forward pass.
    pub checked: Vec<CheckedGroup>,
    /// Replays beyond the first `MAX_ARCHIVED_VOIDS`: counted, not kept (a miner replaying
    /// thousands of groups cannot make the validator hold them).
    pub replays_not_kept: u64,
    /// The work credited for the window (0 when any verdict zeroes it).
    pub credited: f64,
}

impl MinerReport {
    /// A report for a bundle that could not be read (or has not been yet).
    pub fn new(hotkey: Hotkey, uid: u16) -> Self {
        MinerReport {
            hotkey,
            uid,
            bundle_status: Reason::Accepted.as_str().into(),
            detail: String::new(),
            bundle_sha256: [0; 32],
            uploaded: None,
            groups_submitted: 0,
            works: Vec::new(),
            eligible_works: Vec::new(),
            eligible: 0,
            checked: Vec::new(),
            replays_not_kept: 0,
            credited: 0.0,
        }
    }

    /// Groups with a verdict, by reason string (replays not kept included).
    pub fn verdict_counts(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for c in &self.checked {
            *out.entry(c.outcome.verdict.reason.clone()).or_default() += 1;
        }
        if self.replays_not_kept > 0 {
            *out.entry(Reason::Replay.as_str().into()).or_default() += self.replays_not_kept;
        }
        out
    }

    /// Groups with a verdict (replays not kept included).
    pub fn groups_with_verdict(&self) -> u64 {
        self.checked.len() as u64 + self.replays_not_kept
    }

    /// Whether a verdict zeroed the window.
    pub fn zeroed(&self) -> bool {
        self.checked
            .iter()
            .any(|c| c.outcome.reason().consequence() == Consequence::ZeroWindow)
    }
}

/// What the rest of a window needs of a bundle that passed [`precheck_bundle`]: its
/// report (with every work digest and the void groups) and the groups sampled for a
/// forward pass, by index. The rest of the decoded bundle is dropped.
pub struct PendingBundle {
    /// The report so far.
    pub report: MinerReport,
    /// The spot-checked groups, in ascending index order.
    pub sampled: Vec<(u32, Group)>,
}

/// Checks a decoded bundle without a forward pass and keeps only what the window needs
/// ([`PendingBundle`]): stages 1–3 on every group ([`first_failure`]: binding and
/// structure, then the signatures of the groups before the first failure, spread over
/// the cores), whose first failure zeroes the window (the report records that group and
/// nothing is sampled); otherwise replays of earlier windows are void and the spot-check
/// sample is drawn from the remaining groups.
///
/// # Errors
/// The validator's own failure to render a canonical prompt (nothing is recorded against
/// the miner).
pub fn precheck_bundle(
    check: &Prechecks<'_>,
    mut report: MinerReport,
    groups: &[Group],
    replay: &ReplaySet,
    groups_checked: usize,
    prompts: &PromptCache,
) -> Result<PendingBundle, NodeError> {
    report.groups_submitted = groups.len();
    report.works = groups
        .iter()
        .map(grail_proto::binding::work_digest)
        .collect();
    let failure = first_failure(
        groups,
        |g| check.cheap_checks(&report.hotkey, g, prompts),
        verify_signatures,
    )?;
    if let Some((i, r)) = failure {
        report.checked.push(CheckedGroup {
            index: i as u32,
            group: groups[i].clone(),
            outcome: GroupOutcome::rejected(r),
        });
        return Ok(PendingBundle {
            report,
            sampled: Vec::new(),
        });
    }
    let window = check.plan.window;
    let eligible: Vec<bool> = report
        .works
        .iter()
        .map(|w| !replay.is_replay(window, w))
        .collect();
    for (i, g) in groups.iter().enumerate().filter(|(i, _)| !eligible[*i]) {
        if report.checked.len() < grail_proto::params::MAX_ARCHIVED_VOIDS {
            report.checked.push(CheckedGroup {
                index: i as u32,
                group: g.clone(),
                outcome: GroupOutcome::rejected(Rejection::new(
                    Reason::Replay,
                    "the same work was submitted in an earlier window",
                )),
            });
        } else {
            report.replays_not_kept += 1;
        }
    }
    report.eligible = eligible.iter().filter(|e| **e).count();
    report.eligible_works = (0..groups.len())
        .filter(|&i| eligible[i])
        .map(|i| report.works[i])
        .collect();
    let sampled = sample_groups(
        &check.challenge_randomness,
        &report.hotkey,
        groups.len(),
        |i| eligible[i],
        groups_checked,
    )
    .into_iter()
    .map(|i| (i as u32, groups[i].clone()))
    .collect();
    Ok(PendingBundle { report, sampled })
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

/// Runs the forward-pass checks of every prechecked bundle whose window is not zeroed
/// (stopping at the first verdict that zeroes it) and credits the work. The validator's
/// own failure on a group is retried and then costs only that miner's window
/// ([`OWN_FAILURE_STATUS`]). Work in more than one bundle is not voided by upload order:
/// each checked copy is judged by whose noise it follows (`judge_copy`), with its own
/// forward pass.
pub fn finish_window(
    check: &WindowCheck<'_>,
    pending: Vec<PendingBundle>,
) -> Result<Vec<MinerReport>, NodeError> {
    // Bundles zeroed by a check on all groups earn nothing and take no part in copies.
    let (zeroed, mut pending): (Vec<PendingBundle>, Vec<PendingBundle>) =
        pending.into_iter().partition(|p| p.report.zeroed());
    let works: Vec<&[[u8; 32]]> = pending.iter().map(|p| p.report.works.as_slice()).collect();
    let shared = shared_work(&works);
    let hotkeys: Vec<Hotkey> = pending.iter().map(|p| p.report.hotkey).collect();
    for (m, p) in pending.iter_mut().enumerate() {
        let report = &mut p.report;
        let mut outcomes = Vec::new();
        let mut own_failure = None;
        let mut sampled = SamplingTally::default();
        for (i, group) in std::mem::take(&mut p.sampled) {
            let others: Vec<Hotkey> = shared
                .get(&report.works[i as usize])
                .map(|holders| {
                    holders
                        .iter()
                        .filter(|&&h| h != m)
                        .map(|&h| hotkeys[h])
                        .collect()
                })
                .unwrap_or_default();
            let mut attempt = 0;
            let checked = loop {
                match crate::blocking(|| check.check_forward(&group)) {
                    Err(e) if attempt < OWN_FAILURE_RETRIES => {
                        attempt += 1;
                        tracing::warn!(
                            miner = %report.hotkey.to_ss58(),
                            group = i,
                            attempt,
                            "own failure checking a group, retrying: {e}"
                        );
                    }
                    other => break other,
                }
            };
            let mut outcome = match checked {
                Ok(outcome) => outcome,
                Err(e) => {
                    own_failure = Some(format!("the validator could not check group {i}: {e}"));
                    break;
                }
            };
            sampled += outcome.sampling;
            if let (true, Err(r)) = (outcome.verdict.accepted, check_sample_ambiguity(sampled)) {
                let evidence = std::mem::take(&mut outcome.evidence);
                outcome = GroupOutcome::rejected(r);
                outcome.evidence = evidence;
            }
            if !outcome.verdict.accepted {
                let failed = Rejection::new(outcome.reason(), outcome.verdict.detail.clone());
                if let Err(r) = judge_copy(Err(failed), &others) {
                    outcome.verdict.reason = r.reason.as_str().into();
                    outcome.verdict.detail = r.detail;
                }
            }
            let zeroes = outcome.reason().consequence() == Consequence::ZeroWindow;
            outcomes.push(CheckedOutcome {
                reason: outcome.reason(),
                in_zone: outcome.in_zone,
            });
            report.checked.push(CheckedGroup {
                index: i,
                group,
                outcome,
            });
            if zeroes {
                break;
            }
        }
        report.checked.sort_by_key(|c| c.index);
        report.credited = credited_work(report.eligible, &outcomes);
        if let Some(detail) = own_failure {
            tracing::warn!(miner = %report.hotkey.to_ss58(), "{detail}; the miner's window is not credited");
            report.bundle_status = OWN_FAILURE_STATUS.into();
            report.detail = detail;
            report.credited = 0.0;
        }
    }
    Ok(pending
        .into_iter()
        .chain(zeroed)
        .map(|p| p.report)
        .collect())
}

/// The archive entries of checked groups.
/// Of a miner's void groups only the first `MAX_ARCHIVED_VOIDS` are archived.
pub fn archive_entries(reports: &[MinerReport]) -> Vec<ArchiveEntry> {
    reports
        .iter()
        .flat_map(|r| {
            let mut voids = 0usize;
            let kept = r.checked.iter().filter(move |c| {
                let void = c.outcome.reason().consequence() == Consequence::Void;
                voids += usize::from(void);
                !void || voids <= grail_proto::params::MAX_ARCHIVED_VOIDS
            });
            kept.map(move |c| ArchiveEntry {
                miner: r.hotkey,
                bundle_sha256: r.bundle_sha256,
                group_index: c.index,
                group: c.group.clone(),
                recomputed_logprobs: c.outcome.recomputed_logprobs.clone(),
                evidence: c.outcome.evidence.clone(),
                verdict: c.outcome.verdict.clone(),
            })
        })
        .collect()
}

/// Every miner's credited work, by hotkey, for the archive (what weights its groups in
/// training).
pub fn archive_credits(reports: &[MinerReport]) -> Vec<MinerCredit> {
    let mut credits: Vec<MinerCredit> = reports
        .iter()
        .map(|r| MinerCredit {
            miner: r.hotkey,
            credited: r.credited,
        })
        .collect();
    credits.sort_by_key(|c| c.miner);
    credits
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
        use crate::validator::verdicts::tests::report;
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
