//! What a job's lane delivers after a window: the verified, in-zone groups a prompt still
//! wants, as training-ready rollouts, and the credit they earn their miners. Pure: the
//! gateway appends the rollouts to the job's log and folds the counts into its book.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use grail_proto::archive::SealedWindow;
use grail_proto::rules::Consequence;
use grail_proto::verifier::MinerReport;

use super::book::JobRecord;
pub use grail_jobs::api::DeliveredRollout;

/// What one window of a job's lane adds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneWindow {
    /// Rollouts to append (cursors from the job's next one).
    pub rollouts: Vec<DeliveredRollout>,
    /// Groups delivered per prompt index.
    pub delivered: BTreeMap<u64, u32>,
    /// Groups not delivered, by reason (a verdict, or `out_of_zone`, `not_wanted`,
    /// `duplicate`, `miner_window_zeroed`).
    pub rejected: BTreeMap<String, u64>,
    /// Delivered groups per miner uid: its credit for the job.
    pub credits: BTreeMap<u16, f64>,
    /// Digests of the groups delivered.
    pub digests: Vec<String>,
    /// Accepted groups (delivered or not).
    pub accepted: u64,
    /// Accepted groups in the learning zone.
    pub accepted_in_zone: u64,
}

impl LaneWindow {
    /// Folds this window's counts into the job's record (deliveries per prompt, rejections,
    /// accepted and in-zone counts, rollouts, delivered digests).
    pub fn fold_into(&self, r: &mut JobRecord) {
        for (&prompt, &n) in &self.delivered {
            if let Some(d) = usize::try_from(prompt)
                .ok()
                .and_then(|i| r.delivered.get_mut(i))
            {
                *d += n;
            }
        }
        for (why, n) in &self.rejected {
            *r.rejected.entry(why.clone()).or_default() += n;
        }
        r.accepted += self.accepted;
        r.in_zone += self.accepted_in_zone;
        r.rollouts += self.rollouts.len() as u64;
        r.completion_tokens += self
            .rollouts
            .iter()
            .map(|d| d.completion_tokens.len() as u64)
            .sum::<u64>();
        r.digests.extend(self.digests.iter().cloned());
    }
}

/// A group's name: SHA-256 over its rollouts' token sequences (truncated to 16 bytes).
fn group_digest(group: &grail_proto::Group) -> String {
    let mut h = Sha256::new();
    for r in &group.rollouts {
        h.update((r.tokens.len() as u64).to_le_bytes());
        for t in &r.tokens {
            h.update(t.to_le_bytes());
        }
    }
    hex::encode(&h.finalize()[..16])
}

/// The deliveries of one window of a job's lane. `record` is the job's book entry before
/// the window (what prompts still want, which groups were delivered), `delivered_before`
/// the digests of the groups it already holds, `next_cursor` the stream position of the
/// first new rollout, `archive` where the sealed lane window is, and `decode` turns tokens
/// into text. Only accepted, in-zone groups of miners whose lane window was not zeroed are
/// delivered, each prompt up to its `groups_per_prompt`, in archive order (miners by
/// hotkey), and never the same group twice.
#[allow(clippy::too_many_arguments)]
pub fn lane_window(
    record: &JobRecord,
    delivered_before: &std::collections::BTreeSet<String>,
    next_cursor: u64,
    reports: &[MinerReport],
    sealed: &SealedWindow,
    archive: &str,
    decode: &dyn Fn(&[u32]) -> String,
) -> LaneWindow {
    let mut out = LaneWindow::default();
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut reject = |why: &str| *rejected.entry(why.to_string()).or_default() += 1;
    // A miner with any checked group whose failure zeroes the window delivers nothing:
    // its other groups are not trusted either (the spot-check rule).
    let zeroed: BTreeMap<grail_proto::Hotkey, (u16, bool)> = reports
        .iter()
        .map(|r| {
            let failed = r
                .checked
                .iter()
                .any(|c| c.outcome.reason().consequence() == Consequence::ZeroWindow);
            (r.hotkey, (r.uid, failed || !r.read()))
        })
        .collect();
    let mut wanted = record.remaining();
    // Groups delivered this window (the earlier ones are `delivered_before`, not copied).
    let mut seen_now = std::collections::BTreeSet::new();
    let mut cursor = next_cursor;
    for entry in &sealed.entries {
        if !entry.verdict.accepted {
            reject(&entry.verdict.reason);
            continue;
        }
        let Some(&(uid, zeroed)) = zeroed.get(&entry.miner) else {
            reject("unknown_miner");
            continue;
        };
        if zeroed {
            reject("miner_window_zeroed");
            continue;
        }
        out.accepted += 1;
        let rewards: Vec<f64> = entry.group.rollouts.iter().map(|r| r.reward).collect();
        if grail_proto::grpo::in_learning_zone(&rewards) {
            out.accepted_in_zone += 1;
        } else {
            reject("out_of_zone");
            continue;
        }
        let prompt = entry.group.header.prompt_id;
        let Some(want) = usize::try_from(prompt).ok().and_then(|i| wanted.get_mut(i)) else {
            reject("not_wanted");
            continue;
        };
        if *want == 0 {
            reject("not_wanted");
            continue;
        }
        let digest = group_digest(&entry.group);
        if delivered_before.contains(&digest) || !seen_now.insert(digest.clone()) {
            reject("duplicate");
            continue;
        }
        *want -= 1;
        *out.delivered.entry(prompt).or_default() += 1;
        *out.credits.entry(uid).or_default() += 1.0;
        for (i, r) in entry.group.rollouts.iter().enumerate() {
            let completion = r.completion().to_vec();
            out.rollouts.push(DeliveredRollout {
                cursor,
                job: record.id.clone(),
                window: sealed.window,
                miner: entry.miner.to_ss58(),
                prompt_index: prompt,
                rollout: i as u32,
                group: digest.clone(),
                prompt_tokens: r.prompt().to_vec(),
                completion: decode(&completion),
                completion_tokens: completion,
                logprobs: entry
                    .recomputed_logprobs
                    .get(i)
                    .cloned()
                    .unwrap_or_default(),
                reward: r.reward,
                advantage: r.advantage,
                success: r.success,
                archive: archive.to_string(),
            });
            cursor += 1;
        }
        out.digests.push(digest);
    }
    for r in reports {
        if r.bundle_status != "accepted" && r.bundle_status != "missing" {
            reject(&r.bundle_status);
        }
    }
    out.rejected = rejected;
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use grail_proto::archive::{ArchiveEntry, Verdict};
    use grail_proto::rules::{Reason, Rejection, WindowPlan};
    use grail_proto::verifier::{CheckedGroup, GroupOutcome};
    use grail_proto::{EnvironmentId, GenerationParams, Group, Hotkey, Rollout, Signature};

    use super::*;

    fn group(miner: Hotkey, prompt: u64, rewards: &[f64], salt: u32) -> Group {
        let plan = WindowPlan {
            window: 8,
            window_randomness: [1; 32],
            checkpoint: [2; 32],
            environment: EnvironmentId {
                name: "job".into(),
                params: "ab".repeat(32),
            },
            generation: GenerationParams {
                max_new_tokens: 4,
                temperature_milli: 1000,
            },
            group_size: rewards.len(),
        };
        let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
        Group {
            header: plan.header(miner, prompt),
            rollouts: rewards
                .iter()
                .enumerate()
                .map(|(i, &r)| Rollout {
                    tokens: vec![1, 2, 3, 10 + i as u32, salt],
                    prompt_len: 3,
                    sketches: Vec::new(),
                    logprobs: vec![-1.0, -1.0],
                    reward: r,
                    advantage: r - mean,
                    success: r >= 1.0,
                })
                .collect(),
            signature: Signature([0; 64]),
        }
    }

    fn entry(g: Group, accepted: Reason) -> ArchiveEntry {
        ArchiveEntry {
            miner: g.header.hotkey,
            bundle_sha256: [0; 32],
            group_index: 0,
            recomputed_logprobs: vec![vec![-0.5, -0.5]; g.rollouts.len()],
            evidence: Vec::new(),
            verdict: Verdict {
                accepted: accepted == Reason::Accepted,
                reason: accepted.as_str().into(),
                detail: String::new(),
            },
            group: g,
        }
    }

    fn record(prompts: usize, per_prompt: u32) -> JobRecord {
        JobRecord {
            id: "ab".repeat(32),
            client: "lab".into(),
            submitted_unix: 0,
            deadline_unix: 100,
            group_size: 2,
            groups_per_prompt: per_prompt,
            delivered: vec![0; prompts],
            rejected: Default::default(),
            in_zone: 0,
            accepted: 0,
            rollouts: 0,
            digests: Default::default(),
            completion_tokens: 0,
        }
    }

    #[test]
    fn only_wanted_verified_in_zone_groups_are_delivered_once() {
        let (honest, cheat, other) = (Hotkey([1; 32]), Hotkey([2; 32]), Hotkey([3; 32]));
        let mut cheat_report = MinerReport::new(cheat, 2);
        let forged = group(cheat, 0, &[1.0, 0.0], 9);
        cheat_report.checked.push(CheckedGroup {
            index: 0,
            group: forged.clone(),
            outcome: GroupOutcome::rejected(Rejection::new(Reason::RewardMismatch, "")),
        });
        let reports = vec![
            MinerReport::new(honest, 1),
            cheat_report,
            MinerReport::new(other, 3),
        ];
        let g0 = group(honest, 0, &[1.0, 0.0], 0);
        let sealed = SealedWindow {
            window: 8,
            validator: Hotkey([9; 32]),
            checkpoint: [2; 32],
            entries: vec![
                entry(g0.clone(), Reason::Accepted),
                // The prompt wants one group: a second is not wanted.
                entry(group(honest, 0, &[0.5, 0.0], 1), Reason::Accepted),
                // All rewards equal: no learning signal.
                entry(group(honest, 1, &[1.0, 1.0], 2), Reason::Accepted),
                // The cheater's accepted-looking group in a zeroed window, and its failure.
                entry(group(cheat, 1, &[1.0, 0.0], 3), Reason::Accepted),
                entry(forged, Reason::RewardMismatch),
                // Another miner's copy of a group delivered in an earlier window.
                entry(group(other, 1, &[1.0, 0.5], 7), Reason::Accepted),
                // A prompt the job does not have.
                entry(group(other, 9, &[1.0, 0.0], 8), Reason::Accepted),
            ],
            credits: Vec::new(),
        };
        let earlier: BTreeSet<String> = [group_digest(&group(other, 1, &[1.0, 0.5], 7))].into();
        let decode = |t: &[u32]| format!("{t:?}");
        let out = lane_window(
            &record(2, 1),
            &earlier,
            40,
            &reports,
            &sealed,
            "lanes/x",
            &decode,
        );
        assert_eq!(out.delivered, BTreeMap::from([(0, 1)]));
        assert_eq!(out.credits, BTreeMap::from([(1, 1.0)]));
        assert_eq!(out.rollouts.len(), 2);
        assert_eq!(out.rollouts[0].cursor, 40);
        assert_eq!(out.rollouts[1].cursor, 41);
        assert_eq!(out.rollouts[0].completion_tokens, vec![10, 0]);
        assert_eq!(out.rollouts[0].logprobs, vec![-0.5, -0.5]);
        assert_eq!(out.rollouts[0].miner, honest.to_ss58());
        assert_eq!(out.digests, vec![group_digest(&g0)]);
        let want = BTreeMap::from([
            ("not_wanted".to_string(), 2),
            ("out_of_zone".into(), 1),
            ("miner_window_zeroed".into(), 1),
            ("reward_mismatch".into(), 1),
            ("duplicate".into(), 1),
        ]);
        assert_eq!(out.rejected, want);
        assert_eq!((out.accepted, out.accepted_in_zone), (5, 4));
    }
}
