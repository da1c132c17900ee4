//! Which archived groups the trainer trains on.

use std::collections::BTreeMap;

use grail_grpo::{RolloutGroup, TrainingRollout};
use grail_proto::archive::{ArchiveEntry, SealedWindow};
use grail_proto::rules::training::{agreed_credits, agreed_entries, trainable, training_slots};
use grail_proto::signing::verify_group;
use grail_proto::Hotkey;

/// Training groups of `window` from the validators' sealed windows held in memory: the
/// groups validators holding more than half of the stake in `validators` (hotkey → stake
/// of every validator with a permit) accepted, whose signature verifies
/// (`grail_proto::rules::training::agreed_entries`), weighted by the miners' agreed credit
/// (`agreed_credits`), as [`trainable_groups`] keeps them. `challenge_randomness` is the
/// window's (the copy rule's evidence positions); `archives` are in publication order.
pub fn training_groups(
    window: u64,
    challenge_randomness: &[u8; 32],
    archives: &[SealedWindow],
    validators: &BTreeMap<Hotkey, u64>,
    in_zone_only: bool,
    vocab: usize,
) -> Vec<RolloutGroup> {
    let refs: Vec<&SealedWindow> = archives.iter().collect();
    let agreed = agreed_entries(
        window,
        challenge_randomness,
        &refs,
        validators,
        verify_group,
    );
    let credit = agreed_credits(window, &refs, validators);
    trainable_groups(&agreed, &credit, in_zone_only, vocab)
}

/// The step's groups from agreed archive entries that are
/// `grail_proto::rules::training::trainable` (in the learning zone when `in_zone_only`,
/// well formed for a `vocab`-token model), with the miner's signed log-probs as behaviour
/// policy (every accepting validator checked them against its own recomputation; no
/// single validator's numbers are trusted). The step then holds each miner's groups in proportion to
/// its agreed credited work `credit` (`grail_proto::rules::training::training_slots`), so
/// a group may appear more than once and a miner's influence does not grow with its
/// hotkeys.
pub fn trainable_groups(
    entries: &[impl std::borrow::Borrow<ArchiveEntry>],
    credit: &BTreeMap<Hotkey, f64>,
    in_zone_only: bool,
    vocab: usize,
) -> Vec<RolloutGroup> {
    let mut miners = Vec::new();
    let mut out = Vec::new();
    for e in entries.iter().map(std::borrow::Borrow::borrow) {
        if !trainable(e, in_zone_only, vocab) {
            continue;
        }
        let rollouts = &e.group.rollouts;
        let Some(first) = rollouts.first() else {
            continue;
        };
        miners.push(e.miner);
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
    training_slots(&miners, credit)
        .into_iter()
        .map(|i| out[i].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use grail_proto::archive::MinerCredit;
    use grail_proto::signing::Keypair;

    use super::*;
    use grail_validate::testing::{accepted_entry, group};

    #[test]
    fn sybils_train_in_proportion_to_their_credit_not_their_hotkeys() {
        // One miner credited with 4 096 groups' work and 8 checked; 10 sybil hotkeys with
        // 8 groups each, all checked. Before v5 every accepted group trained once: the
        // sybils supplied 80 of 88 groups for 2 % of the credited work.
        let big = Keypair::from_seed(&[1; 32]);
        let sybils: Vec<Keypair> = (2..12u8).map(|k| Keypair::from_seed(&[k; 32])).collect();
        let mut entries = Vec::new();
        let mut credits = Vec::new();
        for (key, credited, marker) in
            std::iter::once((&big, 4096.0, 1)).chain(sybils.iter().map(|k| (k, 8.0, 5)))
        {
            for p in 0..8u64 {
                let mut g = group(key.public(), p);
                for r in &mut g.rollouts {
                    r.tokens[0] = marker;
                }
                entries.push(accepted_entry(key, g));
            }
            credits.push(MinerCredit {
                miner: key.public(),
                credited,
            });
        }
        let validator = Hotkey([7; 32]);
        let sealed = SealedWindow {
            window: 40,
            validator,
            checkpoint: [9; 32],
            entries,
            credits,
        };
        let stakes = BTreeMap::from([(validator, 0)]);
        let groups = training_groups(
            40,
            &[0; 32],
            std::slice::from_ref(&sealed),
            &stakes,
            true,
            100,
        );
        assert_eq!(
            groups.len(),
            88,
            "the step keeps one slot per accepted group"
        );
        let from_sybils = groups.iter().filter(|g| g.prompt[0] == 5).count();
        // 88 × 80 / 4 176 = 1.7 slots.
        assert!(from_sybils <= 2, "sybils got {from_sybils} of 88 slots");
        // Without credits (an archive that lists none) nothing is trained on.
        let uncredited = SealedWindow {
            credits: Vec::new(),
            ..sealed
        };
        assert!(training_groups(40, &[0; 32], &[uncredited], &stakes, true, 100).is_empty());
    }
}
