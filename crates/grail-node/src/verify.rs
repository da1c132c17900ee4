//! The validator's pipeline. Each group runs the checks in order and stops at the first
//! failure with a named reason (the constants in [`reason`]):
//!
//! schema → hotkey → signature → window / randomness / environment / sampling binding →
//! checkpoint → token limits → canonical prompt → termination → GRAIL proof at the
//! challenged positions (one forward pass for the whole group) → claimed log-probs →
//! token distribution → reward recomputed → group shape, distinct rollouts, advantages →
//! (across miners) copycat → learning zone.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use grail_env::Environment;
use grail_proto::archive::{ArchiveEntry, Verdict};
use grail_proto::binding::{rollout_digest, token_digest};
use grail_proto::params::CHALLENGE_K;
use grail_proto::prf::{stream, uniform_below};
use grail_proto::signing::verify_group;
use grail_proto::{challenge_positions, check_positions, Group, Hotkey, SketchCoefficients};

use crate::context::ModelContext;
use crate::mining::WindowPlan;

/// Named reasons (stable strings: they appear in archives, metrics and summaries).
pub mod reason {
    /// Every check passed.
    pub const ACCEPTED: &str = "accepted";
    /// No bundle for the window.
    pub const MISSING: &str = "missing";
    /// Uploaded (or its digest published) after the deadline.
    pub const LATE: &str = "late_upload";
    /// Over the bundle size limit.
    pub const OVERSIZED: &str = "oversized";
    /// Bundle bytes do not match the published SHA-256, or no digest was published.
    pub const INTEGRITY: &str = "integrity";
    /// The storage backend failed.
    pub const UNREACHABLE: &str = "store_unreachable";
    /// Not a bundle.
    pub const MALFORMED: &str = "malformed";
    /// Structure or limits of the bundle or group.
    pub const SCHEMA: &str = "schema";
    /// The bundle or group names a hotkey that is not registered.
    pub const UNREGISTERED: &str = "unregistered_hotkey";
    /// The bundle names another registered hotkey than the bucket's owner.
    pub const HOTKEY_MISMATCH: &str = "hotkey_mismatch";
    /// The group signature does not verify.
    pub const SIGNATURE: &str = "signature";
    /// Made for another window.
    pub const WINDOW: &str = "window_mismatch";
    /// Made with other window randomness.
    pub const RANDOMNESS: &str = "randomness_mismatch";
    /// Another environment or environment version.
    pub const ENVIRONMENT: &str = "environment_mismatch";
    /// Other sampling parameters than the subnet's.
    pub const GENERATION: &str = "generation_mismatch";
    /// Made with another checkpoint than the one in effect.
    pub const STALE_CHECKPOINT: &str = "stale_checkpoint";
    /// Token ids outside the vocabulary or lengths over the caps.
    pub const TOKEN_LIMITS: &str = "token_limits";
    /// Prompt tokens are not the canonical rendering of the prompt id.
    pub const PROMPT: &str = "prompt_mismatch";
    /// Not exactly one EOS at the end (or none at the length cap).
    pub const TERMINATION: &str = "bad_termination";
    /// GRAIL proof rejected.
    pub const PROOF: &str = "proof_failed";
    /// Claimed log-probs differ from the recomputed ones.
    pub const LOGPROBS: &str = "logprobs_mismatch";
    /// Tokens implausible under the model's sampling distribution.
    pub const DISTRIBUTION: &str = "token_distribution";
    /// Claimed reward or success differs from the environment's.
    pub const REWARD: &str = "reward_mismatch";
    /// Not the subnet's group size.
    pub const GROUP_SIZE: &str = "group_size";
    /// Two rollouts of the group are identical.
    pub const DUPLICATE_ROLLOUTS: &str = "duplicate_rollouts";
    /// Claimed advantages differ from the recomputation.
    pub const ADVANTAGES: &str = "advantages_mismatch";
    /// Rollouts another miner uploaded earlier.
    pub const COPYCAT: &str = "copycat";
}

/// Largest |claimed − recomputed| log-prob accepted (fp32 on different hardware differs
/// by ~1e-5; a forged value by far more).
pub const LOGPROB_TOLERANCE: f32 = 1e-2;
/// A completion token is implausible when its probability under the group's sampling
/// temperature is below this.
pub const IMPLAUSIBLE_TOKEN_PROB: f64 = 1e-6;
/// A group fails the distribution check when more than this share of its completion
/// tokens are implausible.
pub const MAX_IMPLAUSIBLE_SHARE: f64 = 0.2;

/// The outcome of checking one group.
#[derive(Debug, Clone)]
pub struct GroupOutcome {
    /// The decision.
    pub verdict: Verdict,
    /// The validator's raw log-probs of each completion (empty if rejected before the
    /// proof pass).
    pub recomputed_logprobs: Vec<Vec<f32>>,
    /// Recomputed rewards (empty if rejected before scoring).
    pub rewards: Vec<f64>,
    /// Whether the reward spread is in the learning zone.
    pub in_zone: bool,
}

fn reject(reason: &str, detail: impl Into<String>) -> GroupOutcome {
    GroupOutcome {
        verdict: Verdict {
            accepted: false,
            reason: reason.into(),
            detail: detail.into(),
        },
        recomputed_logprobs: Vec::new(),
        rewards: Vec::new(),
        in_zone: false,
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

impl WindowCheck<'_> {
    /// Runs the per-group pipeline.
    pub fn check_group(&self, bundle_hotkey: &Hotkey, group: &Group) -> GroupOutcome {
        use reason::*;
        if let Err(e) = group.validate() {
            return reject(SCHEMA, e.to_string());
        }
        let h = &group.header;
        if &h.hotkey != bundle_hotkey {
            return reject(
                HOTKEY_MISMATCH,
                "group signed for another hotkey than the bundle's",
            );
        }
        if !verify_group(group) {
            return reject(SIGNATURE, "sr25519 signature does not verify");
        }
        let plan = &self.plan;
        if h.window != plan.window {
            return reject(WINDOW, format!("made for window {}", h.window));
        }
        if h.window_randomness != plan.window_randomness {
            return reject(RANDOMNESS, "not this window's randomness");
        }
        if h.environment != plan.environment {
            return reject(
                ENVIRONMENT,
                format!("{}/{}", h.environment.name, h.environment.params),
            );
        }
        if h.generation != plan.generation {
            return reject(GENERATION, format!("{:?}", h.generation));
        }
        if h.checkpoint != plan.checkpoint {
            return reject(
                STALE_CHECKPOINT,
                format!("checkpoint {}", hex::encode(&h.checkpoint[..8])),
            );
        }
        let max_new = plan.generation.max_new_tokens as usize;
        for (i, r) in group.rollouts.iter().enumerate() {
            if let Err(e) = self.context.model.check_tokens(&r.tokens, 0) {
                return reject(TOKEN_LIMITS, format!("rollout {i}: {e}"));
            }
            if r.completion().len() > max_new {
                return reject(
                    TOKEN_LIMITS,
                    format!("rollout {i}: completion over {max_new} tokens"),
                );
            }
        }
        let (problem, prompt) = match self.context.prompt(self.env, h.prompt_id) {
            Ok(p) => p,
            Err(e) => return reject(PROMPT, e.to_string()),
        };
        if let Some(i) = group
            .rollouts
            .iter()
            .position(|r| r.prompt() != prompt.as_slice())
        {
            return reject(
                PROMPT,
                format!("rollout {i}: prompt tokens are not the canonical rendering"),
            );
        }
        let eos = &self.context.eos_ids;
        for (i, r) in group.rollouts.iter().enumerate() {
            let c = r.completion();
            let eos_count = c.iter().filter(|t| eos.contains(t)).count();
            let ends = c.last().is_some_and(|t| eos.contains(t));
            let ok = (eos_count == 1 && ends) || (eos_count == 0 && c.len() == max_new);
            if !ok {
                return reject(
                    TERMINATION,
                    format!(
                        "rollout {i}: {eos_count} EOS tokens in {} completion tokens",
                        c.len()
                    ),
                );
            }
        }
        // One forward pass for the whole group: proof, log-probs and distribution.
        let refs: Vec<&[u32]> = group.rollouts.iter().map(|r| r.tokens.as_slice()).collect();
        let temperature = plan.generation.temperature_milli as f32 / 1000.0;
        let scored = match self.context.model.score(&refs, eos, temperature) {
            Ok(s) => s,
            Err(e) => return reject(TOKEN_LIMITS, e.to_string()),
        };
        let mut recomputed = Vec::with_capacity(scored.len());
        for (i, (r, s)) in group.rollouts.iter().zip(&scored).enumerate() {
            let p = r.prompt_len as usize;
            let digest = rollout_digest(i as u32, r);
            let positions = challenge_positions(
                &self.challenge_randomness,
                &digest,
                p,
                r.tokens.len(),
                CHALLENGE_K,
            );
            let hidden: Vec<Vec<f32>> = positions
                .iter()
                .map(|&q| s.hidden(q).map(<[f32]>::to_vec).unwrap_or_default())
                .collect();
            match check_positions(&r.sketches, &positions, &hidden, self.coefficients) {
                Ok(report) if report.accepted() => {}
                Ok(report) => {
                    return reject(
                        PROOF,
                        format!(
                            "rollout {i}: {} of {} positions off (max distance {})",
                            report.misses(),
                            positions.len(),
                            report.max_distance()
                        ),
                    )
                }
                Err(e) => return reject(PROOF, format!("rollout {i}: {e}")),
            }
            let ours = &s.logprobs[p..];
            let worst = ours
                .iter()
                .zip(&r.logprobs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            if worst.is_nan() || worst > LOGPROB_TOLERANCE {
                return reject(
                    LOGPROBS,
                    format!("rollout {i}: max |Δ log-prob| {worst:.4}"),
                );
            }
            let floor = IMPLAUSIBLE_TOKEN_PROB.ln() as f32;
            let implausible = s.tempered_logprobs[p..]
                .iter()
                .filter(|&&l| l < floor)
                .count();
            let share = implausible as f64 / (r.tokens.len() - p) as f64;
            if share > MAX_IMPLAUSIBLE_SHARE {
                return reject(
                    DISTRIBUTION,
                    format!(
                        "rollout {i}: {:.0}% of tokens below p = {IMPLAUSIBLE_TOKEN_PROB}",
                        100.0 * share
                    ),
                );
            }
            recomputed.push(ours.to_vec());
        }
        let mut rewards = Vec::with_capacity(group.rollouts.len());
        for (i, r) in group.rollouts.iter().enumerate() {
            let v = match self.context.reward(self.env, &problem, r.completion()) {
                Ok(v) => v,
                Err(e) => return reject(REWARD, format!("rollout {i}: {e}")),
            };
            if v.total != r.reward || v.success != r.success {
                return reject(
                    REWARD,
                    format!(
                        "rollout {i}: claimed {} ({}), recomputed {} ({})",
                        r.reward, r.success, v.total, v.success
                    ),
                );
            }
            rewards.push(v.total);
        }
        if group.rollouts.len() != plan.group_size {
            return reject(
                GROUP_SIZE,
                format!(
                    "{} rollouts, the subnet uses {}",
                    group.rollouts.len(),
                    plan.group_size
                ),
            );
        }
        let distinct: BTreeSet<&[u32]> = group.rollouts.iter().map(|r| r.completion()).collect();
        if distinct.len() != group.rollouts.len() {
            return reject(
                DUPLICATE_ROLLOUTS,
                format!(
                    "{} distinct completions of {}",
                    distinct.len(),
                    group.rollouts.len()
                ),
            );
        }
        let claimed: Vec<f64> = group.rollouts.iter().map(|r| r.advantage).collect();
        if !grail_proto::grpo::advantages_consistent(&rewards, &claimed) {
            return reject(
                ADVANTAGES,
                "advantages are not the group-normalised rewards",
            );
        }
        GroupOutcome {
            verdict: Verdict {
                accepted: true,
                reason: ACCEPTED.into(),
                detail: String::new(),
            },
            recomputed_logprobs: recomputed,
            in_zone: grail_proto::grpo::in_learning_zone(&rewards),
            rewards,
        }
    }
}

/// Which groups of a bundle the validator checks: up to `n` distinct indices drawn from
/// the challenge randomness and the miner's hotkey (the miner cannot know them in advance).
pub fn sample_groups(
    challenge_randomness: &[u8; 32],
    miner: &Hotkey,
    groups: usize,
    n: usize,
) -> Vec<usize> {
    if n >= groups {
        return (0..groups).collect();
    }
    let mut rng = stream(b"grail/validator-sample", &[challenge_randomness, &miner.0]);
    let mut chosen = BTreeSet::new();
    while chosen.len() < n {
        chosen.insert(uniform_below(&mut rng, groups as u64) as usize);
    }
    chosen.into_iter().collect()
}

/// One checked group of a miner, before cross-miner checks.
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
    /// The checked groups.
    pub checked: Vec<CheckedGroup>,
}

/// Cross-miner duplicates: rollouts already accepted from an earlier upload make a later
/// group a copycat. Miners are taken in upload order (ties by hotkey).
pub fn mark_copycats(reports: &mut [MinerReport]) {
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by_key(|&i| (reports[i].uploaded, reports[i].hotkey));
    let mut seen: HashMap<[u8; 32], Hotkey> = HashMap::new();
    for i in order {
        let hotkey = reports[i].hotkey;
        for checked in &mut reports[i].checked {
            if !checked.outcome.verdict.accepted {
                continue;
            }
            let digests: Vec<[u8; 32]> = checked
                .group
                .rollouts
                .iter()
                .map(|r| token_digest(&r.tokens))
                .collect();
            if let Some(first) = digests
                .iter()
                .find_map(|d| seen.get(d).filter(|h| **h != hotkey))
            {
                checked.outcome = reject(
                    reason::COPYCAT,
                    format!("rollouts first uploaded by {}", first.to_ss58()),
                );
                continue;
            }
            for d in digests {
                seen.entry(d).or_insert(hotkey);
            }
        }
    }
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
