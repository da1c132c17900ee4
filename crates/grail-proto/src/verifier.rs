//! The window verifier: every check a validator runs on one window's bundles, in the
//! normative order of docs/protocol.md §12, as two sans-I/O state machines in the style of
//! `quinn-proto`'s `Connection`. They never read a bucket, run a model or render a
//! prompt: they ask for what only I/O or a model can give through typed requests, take
//! typed answers, and return verdicts, credit and the sealed archive.
//!
//! 1. [`BundleCheck`], one per miner (open it from the pinned bytes with
//!    [`BundleCheck::open`]): stages 1–5 without a forward pass. It asks for canonical
//!    prompts ([`BundleRequest::Prompt`]) and for signature verification of a batch of
//!    groups ([`BundleRequest::Signatures`]; a driver may spread them over its cores, and
//!    a verifier without the `sr25519` feature brings its own implementation), then
//!    [`BundleCheck::finish`] voids replays and draws the spot checks. Bundle checks of
//!    different miners are independent and can run on different threads.
//! 2. [`WindowVerifier`], fed every miner's [`PendingBundle`]: stages 6–7. It asks for
//!    the forward-pass values and rewards of each spot-checked group
//!    ([`ForwardRequest`]), judges them ([`judge_group`]), resolves shared work by whose
//!    noise it follows, credits each miner, and [`WindowVerifier::finish`] gives the
//!    reports and the [`SealedWindow`].
//!
//! Every answer separates the validator's own failure ([`ValidatorFault`]: its dataset,
//! tokenizer, model or environment) from the miner's fault. A fault is asked again up to
//! [`OWN_FAILURE_RETRIES`] times; then that miner's window ends with
//! [`OWN_FAILURE_STATUS`] (no credit, nothing recorded against it) and the other miners
//! are checked as usual.
//!
//! ```
//! use grail_proto::verifier::{BundleCheck, BundleRequest, WindowParams, WindowRequest, WindowVerifier};
//! use grail_proto::rules::{bundle::ReplaySet, WindowPlan};
//! use grail_proto::*;
//!
//! let plan = WindowPlan {
//!     window: 300, window_randomness: [3; 32], checkpoint: [7; 32],
//!     environment: EnvironmentId { name: "toy".into(), params: "v1".into() },
//!     generation: GenerationParams { max_new_tokens: 4, temperature_milli: 1000 },
//!     group_size: 1,
//! };
//! let params = WindowParams::new(plan, [9; 32], 4, Hotkey([5; 32]), 8, 64, vec![0]);
//! // A miner uploaded a bundle with no groups: nothing to ask, nothing to credit.
//! let bytes = encode_bundle(&WindowBundle { hotkey: Hotkey([1; 32]), window: 300, groups: vec![] })?;
//! let mut check = BundleCheck::open(&params, Hotkey([1; 32]), 1, &bytes, |_| true)
//!     .expect("the bundle decodes");
//! assert!(matches!(check.poll(), BundleRequest::Signatures { groups } if groups.is_empty()));
//! check.answer_signatures(Vec::new());
//! assert!(matches!(check.poll(), BundleRequest::Done));
//! let pending = check.finish(&ReplaySet::default());
//!
//! let mut window = WindowVerifier::new(&params, vec![pending]);
//! assert!(matches!(window.poll(), WindowRequest::Done));
//! let outcome = window.finish();
//! assert_eq!(outcome.reports[0].credited, 0.0);
//! assert_eq!(outcome.sealed.credits.len(), 1);
//! # Ok::<(), WireError>(())
//! ```

use std::collections::{BTreeMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::archive::{ArchiveEntry, MinerCredit, SealedWindow, Verdict};
use crate::binding::work_digest;
use crate::params::MAX_ARCHIVED_VOIDS;
use crate::rules::bundle::{
    credited_work, duplicates, judge_copy, sample_groups, shared_work, CheckedOutcome, ReplaySet,
};
use crate::rules::evidence::record_evidence;
use crate::rules::group::{
    bad_signature, challenged_positions, check_binding, check_forward, check_sample_ambiguity,
    check_structure, credited_in_zone, NoSuchPrompt, RolloutEvidence, SamplingTally, TokenRules,
};
use crate::rules::{Consequence, Reason, Rejection, WindowPlan};
use crate::sketch::SketchCoefficients;
use crate::wire::{decode_bundle, Group, Hotkey};

/// How often a request the validator failed to answer (its own fault) is asked again
/// before that miner's window is given up ([`OWN_FAILURE_STATUS`]).
pub const OWN_FAILURE_RETRIES: usize = 2;

/// The bundle status of a miner whose window the validator could not check because of its
/// own failure, after [`OWN_FAILURE_RETRIES`]: not a verdict on the miner (nothing is
/// recorded against it) and no credit, which is also what a miner that made the validator
/// fail on purpose gets.
pub const OWN_FAILURE_STATUS: &str = "validator_failure";

/// The validator's own failure to answer a request (its dataset, tokenizer, model or
/// environment), never the miner's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidatorFault(pub String);

/// What a window's checks need besides the bundles: the window's plan and randomness,
/// the validator's identity (it keys the evidence it archives) and what the model and
/// tokenizer say about token sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowParams {
    /// What every group must say.
    pub plan: WindowPlan,
    /// The challenge randomness (spot checks, proof positions, evidence positions).
    pub challenge_randomness: [u8; 32],
    /// The window's sketch coefficients for the model's hidden size.
    pub coefficients: SketchCoefficients,
    /// The validator checking the window.
    pub validator: Hotkey,
    /// The model's vocabulary size (`config.json` `vocab_size`).
    pub vocab_size: usize,
    /// The longest sequence the model runs (`max_position_embeddings`).
    pub max_sequence: usize,
    /// Token ids that end a completion.
    pub eos_ids: Vec<u32>,
    /// Groups spot-checked per miner with a forward pass
    /// ([`crate::params::GROUPS_CHECKED`] unless configured otherwise).
    pub groups_checked: usize,
}

impl WindowParams {
    /// Parameters with the window's sketch coefficients derived for `hidden_size` and
    /// [`crate::params::GROUPS_CHECKED`] spot checks per miner.
    pub fn new(
        plan: WindowPlan,
        challenge_randomness: [u8; 32],
        hidden_size: usize,
        validator: Hotkey,
        vocab_size: usize,
        max_sequence: usize,
        eos_ids: Vec<u32>,
    ) -> Self {
        let coefficients = SketchCoefficients::derive(&plan.window_randomness, hidden_size);
        Self {
            plan,
            challenge_randomness,
            coefficients,
            validator,
            vocab_size,
            max_sequence,
            eos_ids,
            groups_checked: crate::params::GROUPS_CHECKED,
        }
    }

    /// The token rules of stage 2.
    pub fn token_rules(&self) -> TokenRules<'_> {
        TokenRules {
            vocab_size: self.vocab_size,
            max_sequence: self.max_sequence,
            eos_ids: &self.eos_ids,
        }
    }
}

/// The outcome of checking one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOutcome {
    /// The decision.
    pub verdict: Verdict,
    /// The validator's log-probs (temperature 1) of each completion (empty if no forward
    /// pass ran).
    pub recomputed_logprobs: Vec<Vec<f32>>,
    /// The group's rewards, equal to the recomputed ones (empty unless accepted).
    pub rewards: Vec<f64>,
    /// The validator's own sampling gaps at its evidence positions, per rollout
    /// ([`record_evidence`]; empty if no forward pass ran): what the archive entry
    /// carries as evidence of the check.
    pub evidence: Vec<Vec<f64>>,
    /// Whether the group counts as learning-zone work ([`credited_in_zone`]).
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

/// One group a verdict was reached on.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedGroup {
    /// Index in the bundle.
    pub index: u32,
    /// The group.
    pub group: Group,
    /// The outcome.
    pub outcome: GroupOutcome,
}

/// A miner's bundle after checking.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerReport {
    /// The miner.
    pub hotkey: Hotkey,
    /// Its uid.
    pub uid: u16,
    /// `accepted` when the bundle was read and decoded, else the bundle-level reason (or
    /// [`OWN_FAILURE_STATUS`]).
    pub bundle_status: String,
    /// Detail for the bundle status.
    pub detail: String,
    /// SHA-256 of the bundle bytes.
    pub bundle_sha256: [u8; 32],
    /// Groups in the bundle.
    pub groups_submitted: usize,
    /// The work digest of every group in the bundle.
    pub works: Vec<[u8; 32]>,
    /// The work digests of the eligible groups (recorded for replay detection).
    pub eligible_works: Vec<[u8; 32]>,
    /// Groups that passed every check on all groups and were not void.
    pub eligible: usize,
    /// Groups with a verdict: the first failing group when a check on all groups failed,
    /// the first [`MAX_ARCHIVED_VOIDS`] void groups, and the sampled groups that had a
    /// forward pass, in index order.
    pub checked: Vec<CheckedGroup>,
    /// Replays beyond the first [`MAX_ARCHIVED_VOIDS`]: counted, not kept (a miner
    /// replaying thousands of groups cannot make the validator hold them).
    pub replays_not_kept: u64,
    /// The work credited for the window (0 when any verdict zeroes it).
    pub credited: f64,
}

impl MinerReport {
    /// A report for a bundle that has not been read yet.
    pub fn new(hotkey: Hotkey, uid: u16) -> Self {
        MinerReport {
            hotkey,
            uid,
            bundle_status: Reason::Accepted.as_str().into(),
            detail: String::new(),
            bundle_sha256: [0; 32],
            groups_submitted: 0,
            works: Vec::new(),
            eligible_works: Vec::new(),
            eligible: 0,
            checked: Vec::new(),
            replays_not_kept: 0,
            credited: 0.0,
        }
    }

    /// The report of a bundle refused as a whole (`reason`: a bundle-level reason such as
    /// `missing` or `late_upload`).
    pub fn refused(hotkey: Hotkey, uid: u16, reason: Reason, detail: impl Into<String>) -> Self {
        let mut report = Self::new(hotkey, uid);
        report.bundle_status = reason.as_str().into();
        report.detail = detail.into();
        report
    }

    /// Whether the bundle was read (its status is `accepted`), whatever its groups' fate.
    pub fn read(&self) -> bool {
        self.bundle_status == Reason::Accepted.as_str()
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

    fn give_up(&mut self, detail: String) {
        self.bundle_status = OWN_FAILURE_STATUS.into();
        self.detail = detail;
        self.credited = 0.0;
    }
}

/// What the forward-pass stage needs of a bundle after [`BundleCheck`]: its report (with
/// every work digest and the void groups) and the groups sampled for a forward pass, by
/// index. The rest of the decoded bundle is dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBundle {
    /// The report so far.
    pub report: MinerReport,
    /// The spot-checked groups, in ascending index order.
    pub sampled: Vec<(u32, Group)>,
}

impl From<MinerReport> for PendingBundle {
    /// A bundle with nothing left to check (refused as a whole, or zeroed).
    fn from(report: MinerReport) -> Self {
        PendingBundle {
            report,
            sampled: Vec::new(),
        }
    }
}

/// What a [`BundleCheck`] needs next.
#[derive(Debug)]
pub enum BundleRequest<'a> {
    /// The canonical prompt tokens of `prompt_id` ([`BundleCheck::answer_prompt`]).
    Prompt {
        /// The header's prompt id.
        prompt_id: u64,
    },
    /// Whether each of these groups' sr25519 signatures verifies, one flag per group in
    /// order ([`BundleCheck::answer_signatures`]; e.g.
    /// `grail_proto::signing::verify_group`).
    Signatures {
        /// The groups before the first failure of a cheap check.
        groups: &'a [Group],
    },
    /// Nothing more: call [`BundleCheck::finish`].
    Done,
}

#[derive(Debug)]
enum BundleStage {
    /// Stages 1–2 on group `next` (binding checked, its prompt asked for).
    Cheap { next: usize },
    /// Stage 3: the signatures of the groups before the first cheap failure.
    Signatures {
        cheap_failure: Option<(usize, Rejection)>,
    },
    /// Stages 1–3 over: the bundle's first failure, if any.
    Done { failure: Option<(usize, Rejection)> },
    /// The validator gave up on its own failure.
    GaveUp,
}

/// Stages 1–5 of one miner's bundle, without a forward pass: on every group binding and
/// structure (fields, then the canonical prompt it asks for), then the signatures of the
/// groups before the first failure in one batch, then duplicates; the first failure
/// zeroes the window. Then replays of earlier windows are void and the spot checks are
/// drawn ([`Self::finish`]).
///
/// The answer equals checking each group in full one after another (binding, structure,
/// signature), but a bundle whose early group fails a field check costs no signature
/// verification.
#[derive(Debug)]
pub struct BundleCheck<'p> {
    params: &'p WindowParams,
    report: MinerReport,
    groups: Vec<Group>,
    stage: BundleStage,
    faults: usize,
}

impl<'p> BundleCheck<'p> {
    /// A check of `groups`, the decoded bundle of `report.hotkey`.
    pub fn new(params: &'p WindowParams, mut report: MinerReport, groups: Vec<Group>) -> Self {
        report.groups_submitted = groups.len();
        report.works = groups.iter().map(work_digest).collect();
        BundleCheck {
            params,
            report,
            groups,
            stage: BundleStage::Cheap { next: 0 },
            faults: 0,
        }
    }

    /// The check of the bundle bytes pinned for `miner`: decoded (docs/protocol.md §7),
    /// made by `miner` (`registered` tells another registered miner from an unknown key)
    /// for this window.
    ///
    /// # Errors
    /// The report of a bundle refused as a whole: `malformed`, `hotkey_mismatch`,
    /// `unregistered_hotkey` or `window_mismatch`.
    pub fn open(
        params: &'p WindowParams,
        miner: Hotkey,
        uid: u16,
        bytes: &[u8],
        registered: impl Fn(&Hotkey) -> bool,
    ) -> Result<Self, Box<MinerReport>> {
        let mut report = MinerReport::new(miner, uid);
        report.bundle_sha256 = Sha256::digest(bytes).into();
        let refuse = |mut report: MinerReport, reason: Reason, detail: String| {
            report.bundle_status = reason.as_str().into();
            report.detail = detail;
            Box::new(report)
        };
        let bundle = match decode_bundle(bytes) {
            Ok(bundle) => bundle,
            Err(e) => return Err(refuse(report, Reason::Malformed, e.to_string())),
        };
        report.groups_submitted = bundle.groups.len();
        if bundle.hotkey != miner {
            return Err(if registered(&bundle.hotkey) {
                let detail = "the bundle names another miner".into();
                refuse(report, Reason::HotkeyMismatch, detail)
            } else {
                let detail = format!("hotkey {} is not registered", hex::encode(bundle.hotkey.0));
                refuse(report, Reason::UnregisteredHotkey, detail)
            });
        }
        if bundle.window != params.plan.window {
            let detail = format!("bundle for window {}", bundle.window);
            return Err(refuse(report, Reason::WindowMismatch, detail));
        }
        Ok(Self::new(params, report, bundle.groups))
    }

    /// What the check needs next. Runs every check that needs nothing from outside
    /// before asking.
    pub fn poll(&mut self) -> BundleRequest<'_> {
        loop {
            match &self.stage {
                BundleStage::Cheap { next } => {
                    let next = *next;
                    let Some(group) = self.groups.get(next) else {
                        self.stage = BundleStage::Signatures {
                            cheap_failure: None,
                        };
                        continue;
                    };
                    match check_binding(&self.params.plan, &self.report.hotkey, group) {
                        Ok(()) => {
                            return BundleRequest::Prompt {
                                prompt_id: group.header.prompt_id,
                            }
                        }
                        Err(r) => {
                            self.stage = BundleStage::Signatures {
                                cheap_failure: Some((next, r)),
                            }
                        }
                    }
                }
                BundleStage::Signatures { cheap_failure } => {
                    let signed = cheap_failure.as_ref().map_or(self.groups.len(), |f| f.0);
                    return BundleRequest::Signatures {
                        groups: &self.groups[..signed],
                    };
                }
                BundleStage::Done { .. } | BundleStage::GaveUp => return BundleRequest::Done,
            }
        }
    }

    /// The answer to [`BundleRequest::Prompt`]: the canonical prompt tokens, or
    /// [`NoSuchPrompt`] when the id names no prompt of the environment (the miner's
    /// fault); the outer error is the validator's own failure (asked again, then the
    /// window is given up). An answer nobody asked for is ignored.
    pub fn answer_prompt(
        &mut self,
        answer: Result<Result<Vec<u32>, NoSuchPrompt>, ValidatorFault>,
    ) {
        let BundleStage::Cheap { next } = self.stage else {
            return;
        };
        let Some(group) = self.groups.get(next) else {
            return;
        };
        let prompt = match answer {
            Ok(prompt) => prompt,
            Err(fault) => {
                self.faults += 1;
                if self.faults > OWN_FAILURE_RETRIES {
                    self.report.give_up(format!(
                        "the validator could not check the bundle: prompt {}: {fault}",
                        group.header.prompt_id
                    ));
                    self.stage = BundleStage::GaveUp;
                }
                return;
            }
        };
        self.faults = 0;
        let rules = self.params.token_rules();
        let prompt = prompt.as_deref().map_err(Clone::clone);
        self.stage = match check_structure(&self.params.plan, group, prompt, rules) {
            Ok(()) => BundleStage::Cheap { next: next + 1 },
            Err(r) => BundleStage::Signatures {
                cheap_failure: Some((next, r)),
            },
        };
    }

    /// The answer to [`BundleRequest::Signatures`]: one flag per group asked about (a
    /// missing flag reads as a bad signature). An answer nobody asked for is ignored.
    pub fn answer_signatures(&mut self, valid: Vec<bool>) {
        let BundleStage::Signatures { cheap_failure } = &mut self.stage else {
            return;
        };
        let signed = cheap_failure.as_ref().map_or(self.groups.len(), |f| f.0);
        let bad = (0..signed).find(|&i| !valid.get(i).copied().unwrap_or(false));
        let failure = match bad {
            Some(i) => Some((i, bad_signature())),
            None => cheap_failure.take().or_else(|| duplicates(&self.groups)),
        };
        self.stage = BundleStage::Done { failure };
    }

    /// What the window needs of the bundle: a bundle whose check failed on some group
    /// keeps that group's verdict and nothing is sampled; otherwise replays of earlier
    /// windows (`replay`) are void (the first [`MAX_ARCHIVED_VOIDS`] kept with a verdict)
    /// and the spot checks are drawn from the eligible groups
    /// ([`crate::rules::bundle::sample_groups`]). Finishing before [`BundleRequest::Done`]
    /// gives the validator's own failure status.
    pub fn finish(self, replay: &ReplaySet) -> PendingBundle {
        let BundleCheck {
            params,
            mut report,
            mut groups,
            stage,
            ..
        } = self;
        let failure = match stage {
            BundleStage::Done { failure } => failure,
            BundleStage::GaveUp => return report.into(),
            BundleStage::Cheap { .. } | BundleStage::Signatures { .. } => {
                report.give_up("the bundle check was finished before it was complete".into());
                return report.into();
            }
        };
        if let Some((i, r)) = failure {
            report.checked.push(CheckedGroup {
                index: i as u32,
                group: groups.swap_remove(i),
                outcome: GroupOutcome::rejected(r),
            });
            return report.into();
        }
        let window = params.plan.window;
        let eligible: Vec<bool> = report
            .works
            .iter()
            .map(|w| !replay.is_replay(window, w))
            .collect();
        for (i, g) in groups.iter().enumerate().filter(|(i, _)| !eligible[*i]) {
            if report.checked.len() < MAX_ARCHIVED_VOIDS {
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
            &params.challenge_randomness,
            &report.hotkey,
            groups.len(),
            |i| eligible[i],
            params.groups_checked,
        );
        let mut groups: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
        let sampled = sampled
            .into_iter()
            .filter_map(|i| groups[i].take().map(|g| (i as u32, g)))
            .collect();
        PendingBundle { report, sampled }
    }
}

/// Stage 6 on one group from the validator's evidence (forward pass and environment, in
/// rollout order, [`RolloutEvidence`]): the verdict of [`check_forward`], the evidence
/// the archive carries ([`record_evidence`]) and whether it is credited as learning-zone
/// work ([`credited_in_zone`]). Judges the group alone: a verifier also applies the
/// sample-wide ambiguity cap and the copy rule ([`WindowVerifier`] does).
///
/// # Errors
/// [`ValidatorFault`] when the evidence does not have the shape of a forward pass over the
/// group (a rollout without evidence, hidden states missing at a challenged position,
/// log-probs or gaps not covering every completion token, a NaN gap): the validator's own
/// failure, never the miner's.
pub fn judge_group(
    params: &WindowParams,
    group: &Group,
    evidence: &[RolloutEvidence],
) -> Result<GroupOutcome, ValidatorFault> {
    let positions = challenged_positions(&params.challenge_randomness, group);
    if evidence.len() != group.rollouts.len() {
        return Err(ValidatorFault(format!(
            "evidence for {} of {} rollouts",
            evidence.len(),
            group.rollouts.len()
        )));
    }
    for (i, ((r, e), pos)) in group
        .rollouts
        .iter()
        .zip(evidence)
        .zip(&positions)
        .enumerate()
    {
        let n = r.completion().len();
        if e.hidden.len() != pos.len() {
            return Err(ValidatorFault(format!(
                "rollout {i}: {} hidden states for {} challenged positions",
                e.hidden.len(),
                pos.len()
            )));
        }
        if e.logprobs.len() != n || e.gaps.len() != n || e.gaps.iter().any(|g| g.is_nan()) {
            return Err(ValidatorFault(format!(
                "rollout {i}: the forward pass gave {} log-probs and {} gaps (NaN: {}) for {n} completion tokens",
                e.logprobs.len(),
                e.gaps.len(),
                e.gaps.iter().any(|g| g.is_nan())
            )));
        }
    }
    let gaps: Vec<Vec<f64>> = evidence.iter().map(|e| e.gaps.clone()).collect();
    let recorded = record_evidence(
        &params.challenge_randomness,
        &params.validator,
        group,
        &gaps,
    )
    .ok_or_else(|| ValidatorFault("the gaps do not cover the evidence positions".into()))?;
    let sampling = match check_forward(&params.coefficients, group, &positions, evidence) {
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
        recomputed_logprobs: evidence.iter().map(|e| e.logprobs.clone()).collect(),
        in_zone: credited_in_zone(&rewards, sampling),
        rewards,
        evidence: recorded,
        sampling,
    })
}

/// What a [`WindowVerifier`] needs next.
#[derive(Debug)]
pub enum WindowRequest<'a> {
    /// The forward pass and rewards of a spot-checked group
    /// ([`WindowVerifier::answer_forward`]).
    Forward(ForwardRequest<'a>),
    /// Nothing more: call [`WindowVerifier::finish`].
    Done,
}

/// A spot-checked group whose evidence the verifier needs: per rollout, in order, the
/// checkpoint's last-layer hidden states at `positions[i]`, the log-probs (temperature 1,
/// raw logits at position t − 1) and sampling gaps (`crate::sampling::claimed_gap` under
/// the group's temperature and the rollout's public noise) of every completion token, and
/// the environment's reward and success flag ([`RolloutEvidence`]).
#[derive(Debug)]
pub struct ForwardRequest<'a> {
    /// The miner whose bundle holds the group.
    pub miner: &'a Hotkey,
    /// The group's index in the bundle.
    pub index: u32,
    /// The group.
    pub group: &'a Group,
    /// The challenged positions of each rollout ([`challenged_positions`]).
    pub positions: &'a [Vec<usize>],
    /// How many times this request was answered with a [`ValidatorFault`] already.
    pub attempt: usize,
}

/// One miner in the forward-pass stage.
#[derive(Debug)]
struct MinerState {
    report: MinerReport,
    sampled: VecDeque<(u32, Group)>,
    outcomes: Vec<CheckedOutcome>,
    tally: SamplingTally,
    /// The challenged positions of the front sampled group, once asked for.
    positions: Option<Vec<Vec<usize>>>,
}

/// Stages 6–7 of a window over every miner's [`PendingBundle`]: a forward pass per
/// spot-checked group (asked for with [`WindowRequest::Forward`]), judged by
/// [`judge_group`], the sample-wide ambiguity cap, work also in another miner's bundle
/// judged by whose noise it follows ([`judge_copy`]), a miner's checks stopping at the
/// first verdict that zeroes its window; then each miner's credited work
/// ([`credited_work`]). Bundles refused as a whole or zeroed by a check on all groups
/// earn nothing and take no part in copies.
#[derive(Debug)]
pub struct WindowVerifier<'p> {
    params: &'p WindowParams,
    miners: Vec<MinerState>,
    /// Work in more than one taking-part bundle: indices into `miners`.
    shared: BTreeMap<[u8; 32], Vec<usize>>,
    current: usize,
    faults: usize,
}

impl<'p> WindowVerifier<'p> {
    /// The forward-pass stage of a window over `bundles` (one per miner).
    pub fn new(params: &'p WindowParams, bundles: Vec<PendingBundle>) -> Self {
        let mut miners: Vec<MinerState> = bundles
            .into_iter()
            .map(|p| MinerState {
                report: p.report,
                sampled: p.sampled.into(),
                outcomes: Vec::new(),
                tally: SamplingTally::default(),
                positions: None,
            })
            .collect();
        for m in &mut miners {
            if !m.report.read() || m.report.zeroed() {
                m.sampled.clear();
            }
        }
        let taking_part: Vec<usize> = (0..miners.len())
            .filter(|&i| miners[i].report.read() && !miners[i].report.zeroed())
            .collect();
        let works: Vec<&[[u8; 32]]> = taking_part
            .iter()
            .map(|&i| miners[i].report.works.as_slice())
            .collect();
        let shared = shared_work(&works)
            .into_iter()
            .map(|(w, holders)| (w, holders.into_iter().map(|h| taking_part[h]).collect()))
            .collect();
        WindowVerifier {
            params,
            miners,
            shared,
            current: 0,
            faults: 0,
        }
    }

    /// What the verifier needs next.
    pub fn poll(&mut self) -> WindowRequest<'_> {
        while self
            .miners
            .get(self.current)
            .is_some_and(|m| m.sampled.is_empty())
        {
            self.current += 1;
            self.faults = 0;
        }
        let Some(m) = self.miners.get_mut(self.current) else {
            return WindowRequest::Done;
        };
        let Some((index, group)) = m.sampled.front() else {
            return WindowRequest::Done;
        };
        let positions = m
            .positions
            .get_or_insert_with(|| challenged_positions(&self.params.challenge_randomness, group));
        WindowRequest::Forward(ForwardRequest {
            miner: &m.report.hotkey,
            index: *index,
            group,
            positions,
            attempt: self.faults,
        })
    }

    /// The answer to the current [`ForwardRequest`]: the evidence of each rollout, in
    /// order, or the validator's own failure (asked again up to [`OWN_FAILURE_RETRIES`]
    /// times, then this miner's window is given up with [`OWN_FAILURE_STATUS`]). An
    /// answer when nothing was asked is ignored.
    pub fn answer_forward(&mut self, answer: Result<Vec<RolloutEvidence>, ValidatorFault>) {
        let params = self.params;
        let current = self.current;
        let Some(m) = self.miners.get_mut(current) else {
            return;
        };
        let Some((index, group)) = m.sampled.front() else {
            return;
        };
        let judged = answer.and_then(|evidence| judge_group(params, group, &evidence));
        let mut outcome = match judged {
            Ok(outcome) => outcome,
            Err(fault) => {
                self.faults += 1;
                if self.faults > OWN_FAILURE_RETRIES {
                    let detail = format!("the validator could not check group {index}: {fault}");
                    m.report.give_up(detail);
                    m.sampled.clear();
                }
                return;
            }
        };
        self.faults = 0;
        m.positions = None;
        let Some((index, group)) = m.sampled.pop_front() else {
            return;
        };
        m.tally += outcome.sampling;
        if let (true, Err(r)) = (outcome.verdict.accepted, check_sample_ambiguity(m.tally)) {
            let evidence = std::mem::take(&mut outcome.evidence);
            outcome = GroupOutcome::rejected(r);
            outcome.evidence = evidence;
        }
        if !outcome.verdict.accepted {
            let mut others: Vec<Hotkey> = self
                .shared
                .get(&work_digest(&group))
                .map(|holders| {
                    let others = holders.iter().filter(|&&h| h != current);
                    others.map(|&h| self.miners[h].report.hotkey).collect()
                })
                .unwrap_or_default();
            // By hotkey, not by the order bundles were fed: archives are reproducible.
            others.sort_unstable();
            let failed = Rejection::new(outcome.reason(), outcome.verdict.detail.clone());
            if let Err(r) = judge_copy(Err(failed), &others) {
                outcome.verdict.reason = r.reason.as_str().into();
                outcome.verdict.detail = r.detail;
            }
        }
        let m = &mut self.miners[current];
        if outcome.reason().consequence() == Consequence::ZeroWindow {
            m.sampled.clear();
        }
        m.outcomes.push(CheckedOutcome {
            reason: outcome.reason(),
            in_zone: outcome.in_zone,
        });
        m.report.checked.push(CheckedGroup {
            index,
            group,
            outcome,
        });
    }

    /// Every miner's report (sorted by hotkey, checked groups by index) with its credited
    /// work, and the sealed archive. A miner whose checks were not all answered is given
    /// up with [`OWN_FAILURE_STATUS`].
    pub fn finish(self) -> WindowOutcome {
        let mut reports: Vec<MinerReport> = self
            .miners
            .into_iter()
            .map(|mut m| {
                if let Some((index, _)) = m.sampled.front() {
                    let detail =
                        format!("the window was finished before group {index} was checked");
                    m.report.give_up(detail);
                }
                m.report.checked.sort_by_key(|c| c.index);
                if m.report.read() {
                    m.report.credited = credited_work(m.report.eligible, &m.outcomes);
                }
                m.report
            })
            .collect();
        reports.sort_by_key(|r| r.hotkey);
        let plan = &self.params.plan;
        let sealed = SealedWindow {
            window: plan.window,
            validator: self.params.validator,
            checkpoint: plan.checkpoint,
            entries: archive_entries(&reports),
            credits: archive_credits(&reports),
        };
        WindowOutcome { reports, sealed }
    }
}

/// What a window's check decided.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowOutcome {
    /// Every miner's report, sorted by hotkey.
    pub reports: Vec<MinerReport>,
    /// The archive the validator seals and publishes.
    pub sealed: SealedWindow,
}

/// The archive entries of checked groups, in report order (of a miner's void groups only
/// the first [`MAX_ARCHIVED_VOIDS`] are archived).
pub fn archive_entries(reports: &[MinerReport]) -> Vec<ArchiveEntry> {
    reports
        .iter()
        .flat_map(|r| {
            let mut voids = 0usize;
            let kept = r.checked.iter().filter(move |c| {
                let void = c.outcome.reason().consequence() == Consequence::Void;
                voids += usize::from(void);
                !void || voids <= MAX_ARCHIVED_VOIDS
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

/// Every miner's credited work, sorted by hotkey, for the archive (what weights its
/// groups in training).
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

#[cfg(all(test, feature = "sr25519"))]
mod tests {
    use super::*;
    use crate::rules::group::tests::{plan, signed};
    use crate::signing::Keypair;

    fn params() -> WindowParams {
        WindowParams::new(plan(), [9; 32], 4, Hotkey([5; 32]), 10, 16, vec![0])
    }

    /// Drives a bundle check with canonical prompt `[1, 2, 3]` for every id (or
    /// `prompt(id)`), counting verified signatures: the first failure of stages 1–3.
    fn first_failure(
        params: &WindowParams,
        key: &Keypair,
        groups: &[Group],
        mut prompt: impl FnMut(u64) -> Result<Result<Vec<u32>, NoSuchPrompt>, ValidatorFault>,
        verified: &mut usize,
    ) -> PendingBundle {
        let report = MinerReport::new(key.public(), 1);
        let mut check = BundleCheck::new(params, report, groups.to_vec());
        loop {
            match check.poll() {
                BundleRequest::Prompt { prompt_id } => check.answer_prompt(prompt(prompt_id)),
                BundleRequest::Signatures { groups } => {
                    *verified += groups.len();
                    let flags = groups.iter().map(crate::signing::verify_group).collect();
                    check.answer_signatures(flags);
                }
                BundleRequest::Done => break,
            }
        }
        check.finish(&ReplaySet::default())
    }

    fn failure_of(p: &PendingBundle) -> Option<(usize, Rejection)> {
        let c = p.report.checked.first()?;
        let r = Rejection::new(c.outcome.reason(), c.outcome.verdict.detail.clone());
        Some((c.index as usize, r))
    }

    fn canonical(_: u64) -> Result<Result<Vec<u32>, NoSuchPrompt>, ValidatorFault> {
        Ok(Ok(vec![1, 2, 3]))
    }

    /// A signed group for prompt `id` (< 7) whose prompt tokens are `[1, 2, 3 + id]`.
    fn distinct(key: &Keypair, id: u64) -> Group {
        signed(key, |g| {
            g.header.prompt_id = id;
            for r in &mut g.rollouts {
                r.tokens[2] = 3 + id as u32;
            }
        })
    }

    fn canonical_distinct(id: u64) -> Result<Result<Vec<u32>, NoSuchPrompt>, ValidatorFault> {
        Ok(Ok(vec![1, 2, 3 + id as u32]))
    }

    #[test]
    fn a_bundle_failing_cheap_checks_costs_no_signature_verification() {
        // A bundle of 64 signed groups whose first is made for another window. v4 checked
        // the signature before the window, so every bundle cost at least one sr25519
        // verification whatever it held; v5 verifies signatures last, in one batch, and
        // only for groups before the first cheap failure.
        let key = Keypair::from_seed(&[1; 32]);
        let mut groups: Vec<Group> = (0..64)
            .map(|i| signed(&key, |g| g.header.prompt_id = i))
            .collect();
        groups[0] = signed(&key, |g| g.header.window = 80);
        let mut verified = 0;
        let pending = first_failure(&params(), &key, &groups, canonical, &mut verified);
        let failure = failure_of(&pending).map(|(i, r)| (i, r.reason));
        assert_eq!(failure, Some((0, Reason::WindowMismatch)));
        assert_eq!(verified, 0, "no signature verified");
        assert!(pending.sampled.is_empty() && pending.report.zeroed());
    }

    #[test]
    fn the_batched_bundle_check_equals_checking_each_group_in_full() {
        // Random bundles of groups with cheap failures, structure failures, forged
        // signatures and combinations: the machine gives the answer of stages 1–3 run
        // group by group (fields, structure, signature), then duplicates.
        let key = Keypair::from_seed(&[1; 32]);
        let params = params();
        type Edit = fn(&mut Group);
        let edits: [Edit; 6] = [
            |_| {},
            |g| g.header.window = 80,
            |g| {
                g.rollouts.pop();
            },
            |g| g.rollouts[0].tokens[3] = 10,
            |g| g.header.checkpoint = [8; 32],
            |_| {},
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) % n
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let len = 1 + next(6) as usize;
            let groups: Vec<Group> = (0..len)
                .map(|i| {
                    let mut g = signed(&key, |g| g.header.prompt_id = 100 + i as u64);
                    edits[next(6) as usize](&mut g);
                    if next(4) == 0 {
                        g.rollouts[0].reward = 1.0; // after signing: a forgery
                    } else {
                        key.sign_group(&mut g);
                    }
                    g
                })
                .collect();
            let one_by_one = groups
                .iter()
                .enumerate()
                .find_map(|(i, g)| {
                    check_binding(&params.plan, &key.public(), g)
                        .and_then(|()| {
                            check_structure(&params.plan, g, Ok(&[1, 2, 3]), params.token_rules())
                        })
                        .and_then(|()| {
                            crate::rules::group::check_signature(g, crate::signing::verify_group)
                        })
                        .err()
                        .map(|r| (i, r))
                })
                .or_else(|| duplicates(&groups));
            let batched = failure_of(&first_failure(&params, &key, &groups, canonical, &mut 0));
            assert_eq!(batched, one_by_one);
            seen.insert(batched.map(|(_, r)| r.reason));
        }
        // The bundles reached every kind of answer.
        for want in [
            None,
            Some(Reason::WindowMismatch),
            Some(Reason::GroupSize),
            Some(Reason::TokenLimits),
            Some(Reason::Signature),
        ] {
            assert!(seen.contains(&want), "{want:?} never came up: {seen:?}");
        }
    }

    #[test]
    fn the_validators_own_prompt_failure_is_retried_and_never_the_miners_fault() {
        let key = Keypair::from_seed(&[1; 32]);
        let groups: Vec<Group> = (0..3).map(|i| distinct(&key, i)).collect();
        // Two transient failures, then the tokenizer works: the bundle passes.
        let mut failures = 0;
        let flaky = |id| {
            failures += 1;
            if failures <= OWN_FAILURE_RETRIES {
                Err(ValidatorFault("tokenizer busy".into()))
            } else {
                canonical_distinct(id)
            }
        };
        let pending = first_failure(&params(), &key, &groups, flaky, &mut 0);
        assert!(pending.report.read() && pending.report.checked.is_empty());
        assert_eq!(pending.report.eligible, 3);
        // A validator whose dataset is gone: its own failure, not `prompt_mismatch`.
        let broken = |_| Err(ValidatorFault("dataset unreadable".into()));
        let pending = first_failure(&params(), &key, &groups, broken, &mut 0);
        assert_eq!(pending.report.bundle_status, OWN_FAILURE_STATUS);
        assert!(pending.report.checked.is_empty() && pending.sampled.is_empty());
        assert!(pending.report.detail.contains("dataset unreadable"));
        // A prompt id the environment does not have is the miner's fault.
        let outside = |_| {
            Ok(Err(NoSuchPrompt(
                "prompt 1 outside the prompt space".into(),
            )))
        };
        let pending = first_failure(&params(), &key, &groups, outside, &mut 0);
        assert_eq!(
            failure_of(&pending).map(|f| f.1.reason),
            Some(Reason::PromptMismatch)
        );
    }

    #[test]
    fn open_refuses_bundles_of_other_keys_and_windows() {
        let key = Keypair::from_seed(&[1; 32]);
        let params = params();
        let bytes = |hotkey, window| {
            let bundle = crate::WindowBundle {
                hotkey,
                window,
                groups: vec![],
            };
            crate::encode_bundle(&bundle).unwrap()
        };
        let status = |bytes: &[u8], registered: bool| match BundleCheck::open(
            &params,
            key.public(),
            3,
            bytes,
            |_| registered,
        ) {
            Ok(_) => "accepted".to_string(),
            Err(r) => r.bundle_status,
        };
        assert_eq!(status(&bytes(key.public(), 40), false), "accepted");
        assert_eq!(status(&bytes(key.public(), 41), false), "window_mismatch");
        assert_eq!(status(&bytes(Hotkey([2; 32]), 40), true), "hotkey_mismatch");
        assert_eq!(
            status(&bytes(Hotkey([2; 32]), 40), false),
            "unregistered_hotkey"
        );
        assert_eq!(status(b"GRAILBND", true), "malformed");
        let refused = BundleCheck::open(&params, key.public(), 3, b"junk", |_| true).unwrap_err();
        assert_eq!(
            refused.bundle_sha256,
            <[u8; 32]>::from(Sha256::digest(b"junk"))
        );
    }

    #[test]
    fn a_forward_fault_costs_only_that_miner_and_malformed_evidence_is_the_validators() {
        let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let params = params();
        let bundle = |key: &Keypair| {
            let groups: Vec<Group> = (0..2).map(|i| distinct(key, i)).collect();
            first_failure(&params, key, &groups, canonical_distinct, &mut 0)
        };
        let mut window = WindowVerifier::new(&params, vec![bundle(&a), bundle(&b)]);
        let mut asked = Vec::new();
        loop {
            let answer = match window.poll() {
                WindowRequest::Done => break,
                WindowRequest::Forward(ask) => {
                    asked.push((*ask.miner, ask.index, ask.attempt));
                    if *ask.miner == a.public() {
                        Err(ValidatorFault("out of memory".into()))
                    } else {
                        // A forward pass that lost a rollout: the validator's own failure.
                        Ok(Vec::new())
                    }
                }
            };
            window.answer_forward(answer);
        }
        // Each miner's first group asked 1 + OWN_FAILURE_RETRIES times, then given up.
        let tries = OWN_FAILURE_RETRIES + 1;
        assert_eq!(asked.len(), 2 * tries, "{asked:?}");
        let outcome = window.finish();
        for r in &outcome.reports {
            assert_eq!(r.bundle_status, OWN_FAILURE_STATUS);
            assert!(r.checked.is_empty(), "nothing recorded against the miner");
            assert_eq!(r.credited, 0.0);
        }
        assert!(outcome.sealed.entries.is_empty());
        assert_eq!(outcome.sealed.credits.len(), 2);
    }

    #[test]
    fn finishing_before_every_check_is_answered_gives_up_instead_of_crediting() {
        let key = Keypair::from_seed(&[1; 32]);
        let params = params();
        let groups = vec![signed(&key, |_| {})];
        let pending = first_failure(&params, &key, &groups, canonical, &mut 0);
        assert_eq!(pending.sampled.len(), 1);
        let outcome = WindowVerifier::new(&params, vec![pending]).finish();
        assert_eq!(outcome.reports[0].bundle_status, OWN_FAILURE_STATUS);
        assert_eq!(outcome.reports[0].credited, 0.0);
        // A bundle check finished early is no verdict on the miner either.
        let check = BundleCheck::new(&params, MinerReport::new(key.public(), 1), groups);
        let pending = check.finish(&ReplaySet::default());
        assert_eq!(pending.report.bundle_status, OWN_FAILURE_STATUS);
    }
}
