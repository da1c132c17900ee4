//! The validator's driver for the rules in `grail_proto::rules`: it renders prompts,
//! runs the forward pass and the environment, and hands the evidence to the pure checks,
//! which decide. The order (docs/protocol.md §12):
//!
//! on every group — binding (schema, hotkey, signature, window, randomness, environment,
//! sampling parameters, checkpoint) → structure (group size, token limits, canonical
//! prompt, termination) → duplicates within the bundle; across miners and windows —
//! copies and replays (void); on a sample of groups — one forward pass for proof,
//! log-probs, sampling, reward and advantages. Any failure but a void zeroes the miner's
//! window; its credit is estimated from the sample.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use grail_env::Environment;
use grail_proto::archive::{ArchiveEntry, Verdict};
use grail_proto::rules::bundle::{
    copies, credited_work, duplicates, sample_groups, CheckedOutcome, ReplaySet, Upload,
};
use grail_proto::rules::group::{
    challenged_positions, check_forward, check_header, check_structure, RolloutEvidence, TokenRules,
};
use grail_proto::rules::{Consequence, Reason, Rejection};
use grail_proto::sampling::temperature;
use grail_proto::{Group, Hotkey, SketchCoefficients};

use crate::context::ModelContext;
use crate::mining::WindowPlan;

/// The outcome of checking one group.
#[derive(Debug, Clone)]
pub struct GroupOutcome {
    /// The decision.
    pub verdict: Verdict,
    /// The validator's raw log-probs of each completion (empty if no forward pass ran).
    pub recomputed_logprobs: Vec<Vec<f32>>,
    /// Recomputed rewards (empty if no forward pass ran).
    pub rewards: Vec<f64>,
    /// Whether the reward spread is in the learning zone.
    pub in_zone: bool,
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
            in_zone: false,
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
}

/// Canonical prompt renderings by prompt id, shared across a window's groups.
pub type PromptCache = HashMap<u64, Result<Vec<u32>, String>>;

impl WindowCheck<'_> {
    /// The checks that run on every group, without a forward pass: binding and structure.
    pub fn precheck(
        &self,
        bundle_hotkey: &Hotkey,
        group: &Group,
        prompts: &mut PromptCache,
    ) -> Result<(), Rejection> {
        check_header(&self.plan, bundle_hotkey, group)?;
        let prompt = prompts
            .entry(group.header.prompt_id)
            .or_insert_with(|| {
                self.context
                    .prompt(self.env, group.header.prompt_id)
                    .map(|(_, tokens)| tokens)
                    .map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(Clone::clone);
        let config = self.context.model.config();
        check_structure(
            &self.plan,
            group,
            prompt,
            TokenRules {
                vocab_size: config.vocab_size,
                max_sequence: config.max_position_embeddings,
                eos_ids: &self.context.eos_ids,
            },
        )
    }

    /// The forward-pass checks of a group that passed [`Self::precheck`]: one batched
    /// proof pass gives hidden states, log-probs and CDF intervals; the environment gives
    /// rewards; `grail_proto::rules::group::check_forward` decides.
    pub fn check_forward(&self, group: &Group) -> GroupOutcome {
        let refs: Vec<&[u32]> = group.rollouts.iter().map(|r| r.tokens.as_slice()).collect();
        let t = temperature(self.plan.generation.temperature_milli);
        let scored = match self
            .context
            .model
            .score(&refs, &self.context.eos_ids, Some(t))
        {
            Ok(s) => s,
            Err(e) => {
                return GroupOutcome::rejected(Rejection::new(Reason::TokenLimits, e.to_string()))
            }
        };
        let problem = self.env.problem(group.header.prompt_id);
        let positions = challenged_positions(&self.challenge_randomness, group);
        let evidence: Vec<RolloutEvidence> = group
            .rollouts
            .iter()
            .zip(&scored)
            .zip(&positions)
            .map(|((r, s), pos)| {
                let p = r.prompt_len as usize;
                RolloutEvidence {
                    hidden: pos
                        .iter()
                        .map(|&q| s.hidden(q).map(<[f32]>::to_vec).unwrap_or_default())
                        .collect(),
                    logprobs: s.logprobs[p..].to_vec(),
                    intervals: s.intervals[p..].to_vec(),
                    reward: match &problem {
                        Ok(problem) => self
                            .context
                            .reward(self.env, problem, r.completion())
                            .map(|v| (v.total, v.success))
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                }
            })
            .collect();
        if let Err(r) = check_forward(self.coefficients, group, &positions, &evidence) {
            return GroupOutcome::rejected(r);
        }
        let rewards: Vec<f64> = group.rollouts.iter().map(|r| r.reward).collect();
        GroupOutcome {
            verdict: Verdict {
                accepted: true,
                reason: Reason::Accepted.as_str().into(),
                detail: String::new(),
            },
            recomputed_logprobs: evidence.into_iter().map(|e| e.logprobs).collect(),
            in_zone: grail_proto::grpo::in_learning_zone(&rewards),
            rewards,
        }
    }

    /// Every per-group check: [`Self::precheck`], then [`Self::check_forward`].
    pub fn check_group(&self, bundle_hotkey: &Hotkey, group: &Group) -> GroupOutcome {
        match self.precheck(bundle_hotkey, group, &mut PromptCache::new()) {
            Ok(()) => self.check_forward(group),
            Err(r) => GroupOutcome::rejected(r),
        }
    }
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
    /// The work digest of every group in the bundle (for replay detection).
    pub works: Vec<[u8; 32]>,
    /// Groups that passed every check on all groups and were not void.
    pub eligible: usize,
    /// Groups with a verdict: the first failing group when a check on all groups failed,
    /// void groups, and the sampled groups that had a forward pass.
    pub checked: Vec<CheckedGroup>,
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
            eligible: 0,
            checked: Vec::new(),
            credited: 0.0,
        }
    }

    /// Whether a verdict zeroed the window.
    pub fn zeroed(&self) -> bool {
        self.checked
            .iter()
            .any(|c| c.outcome.reason().consequence() == Consequence::ZeroWindow)
    }
}

/// A decoded bundle waiting for the cross-miner checks.
pub struct PendingBundle {
    /// The report so far.
    pub report: MinerReport,
    /// The groups.
    pub groups: Vec<Group>,
}

/// Runs the checks that need no forward pass on every group of a decoded bundle: the
/// first failure is recorded and zeroes the window.
pub fn precheck_bundle(
    check: &WindowCheck<'_>,
    pending: &mut PendingBundle,
    prompts: &mut PromptCache,
) {
    let report = &mut pending.report;
    report.groups_submitted = pending.groups.len();
    report.works = pending
        .groups
        .iter()
        .map(grail_proto::binding::work_digest)
        .collect();
    let failure = pending
        .groups
        .iter()
        .enumerate()
        .find_map(|(i, g)| {
            check
                .precheck(&report.hotkey, g, prompts)
                .err()
                .map(|r| (i, r))
        })
        .or_else(|| duplicates(&pending.groups));
    if let Some((i, r)) = failure {
        report.checked.push(CheckedGroup {
            index: i as u32,
            group: pending.groups[i].clone(),
            outcome: GroupOutcome::rejected(r),
        });
    }
}

/// Marks copies across miners and replays of earlier windows as void, samples the
/// remaining groups of every miner whose window is not zeroed, runs their forward-pass
/// checks and credits the work. Returns the reports in upload order (ties by hotkey).
pub fn finish_window(
    check: &WindowCheck<'_>,
    mut pending: Vec<PendingBundle>,
    replay: &ReplaySet,
    groups_checked: usize,
) -> Vec<MinerReport> {
    let uploads: Vec<Upload> = pending
        .iter()
        .map(|p| Upload {
            hotkey: p.report.hotkey,
            uploaded: p.report.uploaded.map_or(i64::MAX, |t| t.timestamp_millis()),
            works: p.report.works.clone(),
        })
        .collect();
    let copied = copies(&uploads);
    let window = check.plan.window;
    for (p, void) in pending.iter_mut().zip(copied) {
        if p.report.zeroed() {
            continue;
        }
        let mut eligible = Vec::new();
        for (i, g) in p.groups.iter().enumerate() {
            let reason = if void[i] {
                Some(Rejection::new(
                    Reason::Copycat,
                    "the same work was uploaded by another miner first or at the same time",
                ))
            } else if replay.is_replay(window, &p.report.works[i]) {
                Some(Rejection::new(
                    Reason::Replay,
                    "the same work was submitted in an earlier window",
                ))
            } else {
                None
            };
            match reason {
                Some(r) => p.report.checked.push(CheckedGroup {
                    index: i as u32,
                    group: g.clone(),
                    outcome: GroupOutcome::rejected(r),
                }),
                None => eligible.push(i),
            }
        }
        p.report.eligible = eligible.len();
        let mut outcomes = Vec::new();
        for i in sample_groups(
            &check.challenge_randomness,
            &p.report.hotkey,
            &eligible,
            groups_checked,
        ) {
            let group = &p.groups[i];
            let outcome = tokio::task::block_in_place(|| check.check_forward(group));
            outcomes.push(CheckedOutcome {
                reason: outcome.reason(),
                in_zone: outcome.in_zone,
            });
            p.report.checked.push(CheckedGroup {
                index: i as u32,
                group: group.clone(),
                outcome,
            });
        }
        p.report.checked.sort_by_key(|c| c.index);
        p.report.credited = credited_work(p.report.eligible, &outcomes);
    }
    let mut reports: Vec<MinerReport> = pending.into_iter().map(|p| p.report).collect();
    reports.sort_by_key(|r| (r.uploaded, r.hotkey));
    reports
}

/// The archive entries of checked groups.
pub fn archive_entries(reports: &[MinerReport]) -> Vec<ArchiveEntry> {
    reports
        .iter()
        .flat_map(|r| {
            r.checked.iter().map(move |c| ArchiveEntry {
                miner: r.hotkey,
                bundle_sha256: r.bundle_sha256,
                group_index: c.index,
                group: c.group.clone(),
                recomputed_logprobs: c.outcome.recomputed_logprobs.clone(),
                verdict: c.outcome.verdict.clone(),
            })
        })
        .collect()
}

/// Verdict counts by reason string.
pub fn verdict_counts(reports: &[MinerReport]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for c in reports.iter().flat_map(|r| &r.checked) {
        *out.entry(c.outcome.verdict.reason.clone()).or_default() += 1;
    }
    out
}
