//! Evidence of the check in archives (archive format 5): for every group it ran a forward
//! pass on, a validator records its own sampling gaps (`crate::sampling::claimed_gap`,
//! which need the model's full logits) at a few completion positions chosen by
//! [`evidence_positions`] from the window's challenge randomness, **its own hotkey** and
//! the group's work. Nothing the miner uploads determines them, so a validator that ran
//! no forward pass has to make them up, and a re-verifier with the checkpoint catches it
//! ([`check_evidence`]). Because the positions depend on the archiving validator, another
//! validator's evidence is at other positions: an archive copied and re-published under
//! another hotkey fails the check, and is recognised without a model when the original
//! is also read ([`copied_votes`]).
//!
//! ```
//! use grail_proto::rules::evidence::{evidence_positions, EVIDENCE_LABEL};
//! use grail_proto::Hotkey;
//!
//! let (cr, work) = ([1; 32], [2; 32]);
//! let mine = evidence_positions(&cr, &Hotkey([7; 32]), &work, 0, 100);
//! assert_eq!(mine.len(), grail_proto::params::EVIDENCE_POSITIONS);
//! assert!(mine.windows(2).all(|p| p[0] < p[1]) && mine.iter().all(|&p| p < 100));
//! // Another validator records other positions of the same rollout.
//! assert_ne!(mine, evidence_positions(&cr, &Hotkey([8; 32]), &work, 0, 100));
//! // A short completion is recorded entirely, by everyone.
//! assert_eq!(evidence_positions(&cr, &Hotkey([7; 32]), &work, 0, 3), vec![0, 1, 2]);
//! assert_eq!(EVIDENCE_LABEL, b"grail/archive-evidence");
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::archive::ArchiveEntry;
use crate::binding::work_digest;
use crate::params::EVIDENCE_POSITIONS;
use crate::prf::{stream, uniform_below};
use crate::wire::{Group, Hotkey};

/// PRF label of [`evidence_positions`].
pub const EVIDENCE_LABEL: &[u8] = b"grail/archive-evidence";

/// The completion positions (0-based within the completion, ascending) at which
/// `validator` records its gaps for rollout `rollout` of the group with work digest
/// `work`, whose completion has `completion_len` tokens: all of them when there are at
/// most [`EVIDENCE_POSITIONS`], else [`EVIDENCE_POSITIONS`] distinct ones drawn with
/// `uniform_below(completion_len)` from `stream(EVIDENCE_LABEL, [challenge_randomness,
/// validator, work, u32le(rollout)])`, repeats skipped.
pub fn evidence_positions(
    challenge_randomness: &[u8; 32],
    validator: &Hotkey,
    work: &[u8; 32],
    rollout: u32,
    completion_len: usize,
) -> Vec<usize> {
    if completion_len <= EVIDENCE_POSITIONS {
        return (0..completion_len).collect();
    }
    let mut rng = stream(
        EVIDENCE_LABEL,
        &[
            challenge_randomness,
            &validator.0,
            work,
            &rollout.to_le_bytes(),
        ],
    );
    let mut chosen = BTreeSet::new();
    while chosen.len() < EVIDENCE_POSITIONS {
        chosen.insert(uniform_below(&mut rng, completion_len as u64) as usize);
    }
    chosen.into_iter().collect()
}

/// Completion lengths of a group's rollouts (0 for a prompt longer than the rollout).
fn completion_lens(group: &Group) -> Vec<usize> {
    group
        .rollouts
        .iter()
        .map(|r| r.tokens.len().saturating_sub(r.prompt_len as usize))
        .collect()
}

/// [`evidence_positions`] of every rollout of `group`, in rollout order.
pub fn group_evidence_positions(
    challenge_randomness: &[u8; 32],
    validator: &Hotkey,
    group: &Group,
) -> Vec<Vec<usize>> {
    positions_of(
        challenge_randomness,
        validator,
        &work_digest(group),
        &completion_lens(group),
    )
}

fn positions_of(
    challenge_randomness: &[u8; 32],
    validator: &Hotkey,
    work: &[u8; 32],
    lens: &[usize],
) -> Vec<Vec<usize>> {
    lens.iter()
        .enumerate()
        .map(|(i, &n)| evidence_positions(challenge_randomness, validator, work, i as u32, n))
        .collect()
}

/// The evidence `validator` archives for `group` from its own gaps of each rollout's
/// completion tokens (`gaps[i][t]`: rollout `i`, completion token `t`): the gaps at its
/// [`group_evidence_positions`]. `None` when `gaps` does not cover every completion.
pub fn record_evidence(
    challenge_randomness: &[u8; 32],
    validator: &Hotkey,
    group: &Group,
    gaps: &[Vec<f64>],
) -> Option<Vec<Vec<f64>>> {
    let positions = group_evidence_positions(challenge_randomness, validator, group);
    if gaps.len() != positions.len() {
        return None;
    }
    positions
        .iter()
        .zip(gaps)
        .map(|(pos, g)| pos.iter().map(|&p| g.get(p).copied()).collect())
        .collect()
}

/// Whether an entry's evidence has the shape every forward-pass entry has, whoever
/// archived it: one list per rollout with `min(EVIDENCE_POSITIONS, completion length)`
/// values, none NaN. Needs no model and no randomness; the trainer counts no vote of an
/// archive with an accepted entry that fails it (`crate::rules::training::archive_votes`).
pub fn well_formed(entry: &ArchiveEntry) -> bool {
    let lens = completion_lens(&entry.group);
    entry.evidence.len() == lens.len()
        && entry
            .evidence
            .iter()
            .zip(&lens)
            .all(|(v, &n)| v.len() == n.min(EVIDENCE_POSITIONS) && !v.iter().any(|x| x.is_nan()))
}

/// Why an archive entry's evidence does not stand.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvidenceError {
    /// Not one list of values per rollout.
    #[error("evidence for {found} rollouts, the group has {expected}")]
    Rollouts {
        /// Rollouts in the group.
        expected: usize,
        /// Lists in the evidence.
        found: usize,
    },
    /// A rollout's list does not have one value per evidence position.
    #[error("rollout {rollout}: {found} evidence values, {expected} positions")]
    Shape {
        /// The rollout.
        rollout: usize,
        /// Its evidence positions.
        expected: usize,
        /// Values archived.
        found: usize,
    },
    /// The re-verifier's gaps do not cover the rollout's completion (its own failure).
    #[error("rollout {rollout}: the recomputed gaps do not cover the completion")]
    Recomputed {
        /// The rollout.
        rollout: usize,
    },
    /// An archived gap is not the re-verifier's within the tolerance (or is NaN).
    #[error(
        "rollout {rollout}, completion position {position}: archived gap {archived}, recomputed {recomputed}"
    )]
    Mismatch {
        /// The rollout.
        rollout: usize,
        /// Completion position (0-based).
        position: usize,
        /// The archived value.
        archived: f64,
        /// The re-verifier's value.
        recomputed: f64,
    },
}

/// Checks `entry`'s evidence as archived by `validator` in the window of
/// `challenge_randomness` against a re-verifier's own gaps of the group (`recomputed[i][t]`:
/// rollout `i`, completion token `t`, from a forward pass of the archive's checkpoint):
/// at `validator`'s [`group_evidence_positions`], every archived value must be within
/// `tolerance` of the recomputed one (equal infinities match; NaN never does). Pure: the
/// caller runs the forward pass and takes the challenge randomness from the chain, never
/// from the archive.
///
/// # Errors
///
/// [`EvidenceError::Rollouts`] or [`EvidenceError::Shape`] when the evidence does not have
/// one value per position; [`EvidenceError::Recomputed`] when `recomputed` does not cover
/// a completion; [`EvidenceError::Mismatch`] at the first value off by more than
/// `tolerance`.
pub fn check_evidence(
    entry: &ArchiveEntry,
    validator: &Hotkey,
    challenge_randomness: &[u8; 32],
    recomputed: &[Vec<f64>],
    tolerance: f64,
) -> Result<(), EvidenceError> {
    let positions = group_evidence_positions(challenge_randomness, validator, &entry.group);
    if entry.evidence.len() != positions.len() {
        return Err(EvidenceError::Rollouts {
            expected: positions.len(),
            found: entry.evidence.len(),
        });
    }
    let lens = completion_lens(&entry.group);
    for (rollout, (pos, values)) in positions.iter().zip(&entry.evidence).enumerate() {
        if values.len() != pos.len() {
            return Err(EvidenceError::Shape {
                rollout,
                expected: pos.len(),
                found: values.len(),
            });
        }
        let gaps = recomputed
            .get(rollout)
            .filter(|g| g.len() >= lens[rollout])
            .ok_or(EvidenceError::Recomputed { rollout })?;
        for (&position, &archived) in pos.iter().zip(values) {
            let recomputed = gaps[position];
            let matches = archived == recomputed || (archived - recomputed).abs() <= tolerance;
            if !matches {
                return Err(EvidenceError::Mismatch {
                    rollout,
                    position,
                    archived,
                    recomputed,
                });
            }
        }
    }
    Ok(())
}

/// What the copy rule needs of one voting entry: its work digest, its rollouts'
/// completion lengths and its archived evidence (small: the group itself is not kept).
#[derive(Debug, Clone, PartialEq)]
pub struct VoteEvidence {
    /// `work_digest` of the group.
    pub work: [u8; 32],
    /// Completion length of each rollout.
    pub completion_lens: Vec<usize>,
    /// The archived evidence.
    pub values: Vec<Vec<f64>>,
}

impl VoteEvidence {
    /// The copy rule's view of `entry`.
    pub fn of(entry: &ArchiveEntry) -> Self {
        VoteEvidence {
            work: work_digest(&entry.group),
            completion_lens: completion_lens(&entry.group),
            values: entry.evidence.clone(),
        }
    }
}

/// Whether evidence `b` at positions `b_pos` repeats evidence `a` recorded at other
/// positions: some rollout whose positions differ has the same values, bit for bit, at
/// least one finite. Honest validators' gaps at different positions are equal only by a
/// coincidence of continuous values.
fn repeats(a_pos: &[Vec<usize>], a: &[Vec<f64>], b_pos: &[Vec<usize>], b: &[Vec<f64>]) -> bool {
    a_pos
        .iter()
        .zip(a)
        .zip(b_pos.iter().zip(b))
        .any(|((ap, av), (bp, bv))| {
            ap != bp
                && !av.is_empty()
                && av.len() == bv.len()
                && av.iter().zip(bv).all(|(x, y)| x.to_bits() == y.to_bits())
                && av.iter().any(|x| x.is_finite())
        })
}

/// An independent vote seen by the copy rule: its validator, positions and evidence.
type Independent<'a> = (Hotkey, Vec<Vec<usize>>, &'a VoteEvidence);

/// The copy rule: the votes that are copies of another validator's evidence. `archives`
/// holds, in priority order (the trainer: earliest published first, then larger stake,
/// then hotkey), each validator's voting entries by group digest. A validator's vote for
/// a group is a copy when, for some rollout, its evidence has exactly the values an
/// earlier validator's independent vote for the same group has, although its own
/// [`evidence_positions`] differ from that validator's: the values cannot be its own
/// gaps. A copy is not an independent vote and is dropped (the earlier vote keeps
/// counting); a copier that alters the values escapes this rule but not
/// [`check_evidence`]. Returns the copied group digests by validator.
///
/// ```
/// use std::collections::BTreeMap;
/// use grail_proto::rules::evidence::{copied_votes, evidence_positions, VoteEvidence};
/// use grail_proto::Hotkey;
///
/// let (cr, a, b) = ([1; 32], Hotkey([1; 32]), Hotkey([2; 32]));
/// let honest = VoteEvidence { work: [5; 32], completion_lens: vec![50], values: vec![vec![0.5, 1.5, 2.5, 3.5]] };
/// let a_votes = BTreeMap::from([([9; 32], honest.clone())]);
/// // b re-publishes a's evidence: its own positions are others, the values a's.
/// assert_ne!(evidence_positions(&cr, &a, &[5; 32], 0, 50), evidence_positions(&cr, &b, &[5; 32], 0, 50));
/// let copied = copied_votes(&cr, [(&a, &a_votes), (&b, &a_votes)]);
/// assert!(copied[&b].contains(&[9; 32]) && !copied.contains_key(&a));
/// ```
pub fn copied_votes<'a>(
    challenge_randomness: &[u8; 32],
    archives: impl IntoIterator<Item = (&'a Hotkey, &'a BTreeMap<[u8; 32], VoteEvidence>)>,
) -> BTreeMap<Hotkey, BTreeSet<[u8; 32]>> {
    let mut independent: BTreeMap<[u8; 32], Vec<Independent<'_>>> = BTreeMap::new();
    let mut copied: BTreeMap<Hotkey, BTreeSet<[u8; 32]>> = BTreeMap::new();
    for (validator, votes) in archives {
        for (digest, ev) in votes {
            let pos = positions_of(
                challenge_randomness,
                validator,
                &ev.work,
                &ev.completion_lens,
            );
            let earlier = independent.entry(*digest).or_default();
            let copy = earlier.iter().any(|(other, other_pos, other_ev)| {
                other != validator && repeats(other_pos, &other_ev.values, &pos, &ev.values)
            });
            if copy {
                copied.entry(*validator).or_default().insert(*digest);
            } else {
                earlier.push((*validator, pos, ev));
            }
        }
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Verdict;
    use crate::wire::{EnvironmentId, GenerationParams, GroupHeader, Rollout, Signature};

    /// A group of two rollouts with 20-token completions (positions differ by validator).
    fn group() -> Group {
        Group {
            header: GroupHeader {
                protocol_version: crate::params::PROTOCOL_VERSION,
                hotkey: Hotkey([9; 32]),
                window: 10,
                environment: EnvironmentId {
                    name: "e".into(),
                    params: "p".into(),
                },
                prompt_id: 1,
                checkpoint: [1; 32],
                window_randomness: [2; 32],
                generation: GenerationParams {
                    max_new_tokens: 20,
                    temperature_milli: 1000,
                },
            },
            rollouts: (0..2u32)
                .map(|i| Rollout {
                    tokens: (0..23).map(|t| t + i).collect(),
                    prompt_len: 3,
                    sketches: vec![crate::SketchDigest([0, 0]); 23],
                    logprobs: (0..20).map(|t| -0.1 * f64::from(t) as f32).collect(),
                    reward: f64::from(i),
                    advantage: f64::from(i) - 0.5,
                    success: i == 1,
                })
                .collect(),
            signature: Signature([0; 64]),
        }
    }

    /// The model's gaps of the group (what a forward pass gives): distinct per position.
    fn true_gaps() -> Vec<Vec<f64>> {
        (0..2)
            .map(|i| {
                (0..20)
                    .map(|t| 0.37 * f64::from(t) + 1.3 + f64::from(i))
                    .collect()
            })
            .collect()
    }

    fn entry(evidence: Vec<Vec<f64>>) -> ArchiveEntry {
        ArchiveEntry {
            miner: Hotkey([9; 32]),
            bundle_sha256: [0; 32],
            group_index: 0,
            group: group(),
            recomputed_logprobs: Vec::new(),
            evidence,
            verdict: Verdict {
                accepted: true,
                reason: "accepted".into(),
                detail: String::new(),
            },
        }
    }

    const CR: [u8; 32] = [4; 32];
    const TOL: f64 = crate::params::EVIDENCE_TOLERANCE;

    #[test]
    fn honest_evidence_passes_and_survives_drift() {
        let me = Hotkey([1; 32]);
        let honest = record_evidence(&CR, &me, &group(), &true_gaps()).unwrap();
        assert_eq!(honest.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
        let e = entry(honest);
        assert!(well_formed(&e));
        assert_eq!(check_evidence(&e, &me, &CR, &true_gaps(), TOL), Ok(()));
        // Another machine's gaps drift by 1e-4: still the same evidence.
        let drifted: Vec<Vec<f64>> = true_gaps()
            .iter()
            .map(|g| g.iter().map(|x| x + 1e-4).collect())
            .collect();
        assert_eq!(check_evidence(&e, &me, &CR, &drifted, TOL), Ok(()));
    }

    #[test]
    fn a_lazy_validator_that_writes_zeros_or_the_miners_values_fails_the_check() {
        let me = Hotkey([1; 32]);
        let g = group();
        // Zeros: the right shape, so the cheap check lets it vote until re-verified.
        let zeros = entry(vec![vec![0.0; 4]; 2]);
        assert!(well_formed(&zeros));
        assert!(matches!(
            check_evidence(&zeros, &me, &CR, &true_gaps(), TOL),
            Err(EvidenceError::Mismatch { rollout: 0, .. })
        ));
        // The miner's claimed log-probs at the validator's positions: all the miner sent.
        let positions = group_evidence_positions(&CR, &me, &g);
        let claimed: Vec<Vec<f64>> = positions
            .iter()
            .zip(&g.rollouts)
            .map(|(pos, r)| pos.iter().map(|&p| f64::from(r.logprobs[p])).collect())
            .collect();
        assert!(matches!(
            check_evidence(&entry(claimed), &me, &CR, &true_gaps(), TOL),
            Err(EvidenceError::Mismatch { .. })
        ));
        // No evidence at all, or a value short: not even well formed.
        assert!(!well_formed(&entry(Vec::new())));
        assert!(matches!(
            check_evidence(&entry(Vec::new()), &me, &CR, &true_gaps(), TOL),
            Err(EvidenceError::Rollouts {
                expected: 2,
                found: 0
            })
        ));
        assert!(!well_formed(&entry(vec![vec![0.0; 4], vec![0.0; 3]])));
        assert!(!well_formed(&entry(vec![vec![f64::NAN; 4]; 2])));
        // The re-verifier's own short recomputation is its failure, not a mismatch.
        let honest = entry(record_evidence(&CR, &me, &g, &true_gaps()).unwrap());
        assert!(matches!(
            check_evidence(&honest, &me, &CR, &[vec![1.0; 3], vec![1.0; 3]], TOL),
            Err(EvidenceError::Recomputed { rollout: 0 })
        ));
    }

    #[test]
    fn evidence_re_signed_under_another_hotkey_fails_at_its_positions() {
        let (original, copier) = (Hotkey([1; 32]), Hotkey([2; 32]));
        let copied = entry(record_evidence(&CR, &original, &group(), &true_gaps()).unwrap());
        assert_eq!(
            check_evidence(&copied, &original, &CR, &true_gaps(), TOL),
            Ok(())
        );
        assert!(matches!(
            check_evidence(&copied, &copier, &CR, &true_gaps(), TOL),
            Err(EvidenceError::Mismatch { .. })
        ));
        // Evidence of another window's challenge is at other positions too.
        assert!(check_evidence(&copied, &original, &[5; 32], &true_gaps(), TOL).is_err());
    }

    #[test]
    fn a_copied_vote_is_dropped_and_honest_votes_on_short_completions_are_not() {
        let (a, b, c) = (Hotkey([1; 32]), Hotkey([2; 32]), Hotkey([3; 32]));
        let d = [7; 32];
        let honest = |v: &Hotkey| {
            let e = entry(record_evidence(&CR, v, &group(), &true_gaps()).unwrap());
            BTreeMap::from([(d, VoteEvidence::of(&e))])
        };
        let (va, vc) = (honest(&a), honest(&c));
        // b re-publishes a's entries: dropped; c checked on its own: kept.
        let copied = copied_votes(&CR, [(&a, &va), (&b, &va), (&c, &vc)]);
        assert_eq!(copied, BTreeMap::from([(b, BTreeSet::from([d]))]));
        // The copy rule keeps the earlier vote: listing the copier first drops a instead.
        let reversed = copied_votes(&CR, [(&b, &va), (&a, &va)]);
        assert_eq!(reversed, BTreeMap::from([(a, BTreeSet::from([d]))]));
        // Completions of at most EVIDENCE_POSITIONS tokens are recorded whole by everyone:
        // equal honest evidence there is no copy.
        let short = VoteEvidence {
            work: [5; 32],
            completion_lens: vec![3],
            values: vec![vec![0.5, 1.0, 2.0]],
        };
        let s = BTreeMap::from([(d, short)]);
        assert!(copied_votes(&CR, [(&a, &s), (&b, &s)]).is_empty());
    }
}
