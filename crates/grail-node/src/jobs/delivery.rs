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
    let mut wanted: Vec<u32> = record
        .delivered
        .iter()
        .map(|&d| record.groups_per_prompt.saturating_sub(d))
        .collect();
    let mut seen = delivered_before.clone();
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
        if !seen.insert(digest.clone()) {
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
