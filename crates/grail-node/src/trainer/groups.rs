//! Which archived groups the trainer trains on.

use std::collections::BTreeMap;

use grail_grpo::{RolloutGroup, TrainingRollout};
use grail_proto::archive::SealedWindow;
use grail_proto::rules::training::agreed_entries;
use grail_proto::signing::verify_group;
use grail_proto::Hotkey;

/// Training groups of `window` from the validators' sealed windows: groups that
/// validators holding more than half of the stake in `validators` (hotkey → stake of
/// every validator with a permit) accepted, whose signature verifies
/// (`grail_proto::rules::training::agreed_entries`), in the learning zone when
/// `in_zone_only`, with the miner's signed log-probs as behaviour policy (every accepting
/// validator checked them against its own recomputation; no single validator's numbers
/// are trusted). Entries that could not be trained on (archives come from other machines: empty, mismatched
/// log-probs, ids outside a vocabulary of `vocab` tokens) are left out rather than
/// failing the step.
pub fn training_groups(
    window: u64,
    archives: &[SealedWindow],
    validators: &BTreeMap<Hotkey, u64>,
    in_zone_only: bool,
    vocab: usize,
) -> Vec<RolloutGroup> {
    let refs: Vec<&SealedWindow> = archives.iter().collect();
    let mut out = Vec::new();
    for e in agreed_entries(window, &refs, validators, verify_group) {
        let rollouts = &e.group.rollouts;
        let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward).collect();
        if in_zone_only && !grail_proto::grpo::in_learning_zone(&rewards) {
            continue;
        }
        let Some(first) = rollouts.first() else {
            continue;
        };
        let trainable = rollouts.iter().all(|r| {
            r.prompt() == first.prompt()
                && !r.completion().is_empty()
                && r.logprobs.len() == r.completion().len()
                && r.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0)
                && r.reward.is_finite()
                && r.tokens.iter().all(|&t| (t as usize) < vocab)
        });
        if !trainable {
            continue;
        }
        out.push(RolloutGroup {
            prompt: first.prompt().to_vec(),
            rollouts: rollouts
                .iter()
                .map(|r| TrainingRollout {
                    completion: r.completion().to_vec(),
                    behaviour_logprobs: r.logprobs.clone(),
                    reward: r.reward,
                })
                .collect(),
        });
    }
    out
}
