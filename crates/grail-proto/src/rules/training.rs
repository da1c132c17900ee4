//! What a trainer may learn from: it does not trust one validator's archive. A group is
//! trained on only when validators holding more than half of the validator stake
//! accepted that exact signed group in their sealed archives of the window (and did not
//! zero its miner's window), and the group still verifies on its own (signature, window,
//! checkpoint of the archive). The behaviour log-probs are the miner's signed ones, which
//! every accepting validator checked against its own recomputation.
//!
//! A validator that lies (accepts forged work, or makes up groups) therefore cannot steer
//! training without a stake majority; an honest majority's archives agree, because
//! verdicts are deterministic given the window's public inputs.

use std::collections::{BTreeMap, BTreeSet};

use crate::archive::{ArchiveEntry, SealedWindow};
use crate::binding::group_digest;
use crate::rules::{Consequence, Reason};
use crate::wire::{Group, Hotkey};

/// Who accepted a group, when it was first seen, and its first entry.
type Support<'a> = (BTreeSet<Hotkey>, usize, &'a ArchiveEntry);

/// The accepted entries of `window` in `archives` that validators holding more than half
/// of `validators` (hotkey → stake of every validator with a permit, whether or not it
/// published) agree on, once per signed group, in first-archive order. When every
/// validator has zero stake, each counts as one. `signature_valid` checks a group's
/// signature (e.g. `crate::signing::verify_group`).
pub fn agreed_entries<'a>(
    window: u64,
    archives: &[&'a SealedWindow],
    validators: &BTreeMap<Hotkey, u64>,
    signature_valid: impl Fn(&Group) -> bool,
) -> Vec<&'a ArchiveEntry> {
    let by_count = validators.values().all(|&s| s == 0);
    let weight = |hotkey: &Hotkey| -> u128 {
        match validators.get(hotkey) {
            Some(_) if by_count => 1,
            Some(&s) => u128::from(s),
            None => 0,
        }
    };
    let total: u128 = validators.keys().map(weight).sum();
    // Each validator counts once per group, however many archives it published.
    let mut support: BTreeMap<[u8; 32], Support<'a>> = BTreeMap::new();
    let mut order = 0usize;
    for a in archives {
        if a.window != window {
            continue;
        }
        // A miner whose window this validator zeroed contributes nothing from it.
        let zeroed: BTreeSet<Hotkey> = a
            .entries
            .iter()
            .filter(|e| {
                e.verdict
                    .reason
                    .parse::<Reason>()
                    .map_or(true, |r| r.consequence() == Consequence::ZeroWindow)
            })
            .map(|e| e.miner)
            .collect();
        for e in a.accepted().filter(|e| !zeroed.contains(&e.miner)) {
            let h = &e.group.header;
            if h.window != window || h.checkpoint != a.checkpoint {
                continue;
            }
            let entry = support.entry(group_digest(&e.group)).or_insert_with(|| {
                order += 1;
                (BTreeSet::new(), order, e)
            });
            entry.0.insert(a.validator);
        }
    }
    let mut agreed: Vec<(usize, &'a ArchiveEntry)> = support
        .into_values()
        .filter(|(voters, _, _)| {
            let stake: u128 = voters.iter().map(weight).sum();
            total > 0 && 2 * stake > total
        })
        .map(|(_, order, e)| (order, e))
        .collect();
    agreed.sort_by_key(|(order, _)| *order);
    agreed
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| signature_valid(&e.group))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Verdict;
    use crate::wire::{EnvironmentId, GenerationParams, GroupHeader, Rollout, Signature};

    fn group(prompt_id: u64) -> Group {
        Group {
            header: GroupHeader {
                protocol_version: crate::params::PROTOCOL_VERSION,
                hotkey: Hotkey([9; 32]),
                window: 10,
                environment: EnvironmentId {
                    name: "e".into(),
                    params: "p".into(),
                },
                prompt_id,
                checkpoint: [1; 32],
                window_randomness: [2; 32],
                generation: GenerationParams {
                    max_new_tokens: 4,
                    temperature_milli: 1000,
                },
            },
            rollouts: vec![Rollout {
                tokens: vec![1, 2, 3],
                prompt_len: 2,
                sketches: vec![crate::SketchDigest([0, 0]); 3],
                logprobs: vec![-0.5],
                reward: 1.0,
                advantage: 0.0,
                success: true,
            }],
            signature: Signature([0; 64]),
        }
    }

    fn archive(validator: u8, accepted: &[u64]) -> SealedWindow {
        SealedWindow {
            window: 10,
            validator: Hotkey([validator; 32]),
            checkpoint: [1; 32],
            entries: accepted
                .iter()
                .map(|&p| ArchiveEntry {
                    miner: Hotkey([9; 32]),
                    bundle_sha256: [0; 32],
                    group_index: 0,
                    group: group(p),
                    recomputed_logprobs: vec![vec![-0.5]],
                    verdict: Verdict {
                        accepted: true,
                        reason: "accepted".into(),
                        detail: String::new(),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn only_groups_a_stake_majority_accepted_are_trained_on() {
        let (a, b, c) = (
            archive(1, &[1, 2]),
            archive(2, &[2, 3]),
            archive(3, &[3, 4]),
        );
        let stakes = BTreeMap::from([
            (Hotkey([1; 32]), 50),
            (Hotkey([2; 32]), 30),
            (Hotkey([3; 32]), 25),
        ]);
        let staked = [&a, &b, &c];
        let ids = |v: Vec<&ArchiveEntry>| -> Vec<u64> {
            v.iter().map(|e| e.group.header.prompt_id).collect()
        };
        // Total 105: group 2 has 80, group 3 has 55 (> 52.5); groups 1 and 4 lack a majority.
        assert_eq!(
            ids(agreed_entries(10, &staked, &stakes, |_| true)),
            vec![2, 3]
        );
        // A forged signature is dropped even with agreement.
        assert_eq!(
            ids(agreed_entries(10, &staked, &stakes, |g| g.header.prompt_id != 2)),
            vec![3]
        );
        // A lone validator's archive does not count when a silent validator holds stake.
        let with_silent = BTreeMap::from([(Hotkey([1; 32]), 50), (Hotkey([7; 32]), 60)]);
        assert!(agreed_entries(10, &staked[..1], &with_silent, |_| true).is_empty());
        // Zero-stake validators count one each; another window's archives are ignored.
        let zero = BTreeMap::from([(Hotkey([1; 32]), 0)]);
        assert_eq!(
            ids(agreed_entries(10, &staked[..1], &zero, |_| true)),
            vec![1, 2]
        );
        assert!(agreed_entries(11, &staked, &stakes, |_| true).is_empty());
        // A miner whose window the validator zeroed contributes none of its groups.
        let mut zeroing = archive(1, &[1, 2]);
        let mut failed = zeroing.entries[0].clone();
        failed.verdict = Verdict {
            accepted: false,
            reason: "sampling_mismatch".into(),
            detail: String::new(),
        };
        zeroing.entries.push(failed);
        assert!(agreed_entries(10, &[&zeroing], &zero, |_| true).is_empty());
    }
}
