//! What a trainer may learn from: it does not trust one validator's archive. A group is
//! trained on only when validators holding more than half of the validator stake
//! accepted that exact signed group in their sealed archives of the window (and did not
//! zero its miner's window), and the group still verifies on its own (signature, window,
//! checkpoint of the archive). The behaviour log-probs are the miner's signed ones, which
//! every accepting validator checked against its own recomputation.
//!
//! A validator that lies (accepts forged work, or makes up groups) therefore cannot steer
//! training without a stake majority; an honest majority's archives agree, because
//! verdicts are deterministic given the window's public inputs. How often an agreed group
//! trains follows its miner's agreed credited work ([`agreed_credits`],
//! [`training_slots`]).
//!
//! A vote must be independent: an archive votes only when every accepted entry carries
//! evidence of its forward pass (`crate::rules::evidence`, archive format 5), and a vote
//! whose evidence repeats another validator's at other positions is a copy and does not
//! count ([`independent_votes`]). A trainer with the checkpoint re-verifies a random
//! agreed entry of each archive (`crate::rules::evidence::check_evidence`).
//!
//! ```
//! use std::collections::{BTreeMap, BTreeSet};
//! use grail_proto::archive::{MinerCredit, SealedWindow};
//! use grail_proto::rules::training::{agreed_credits, agreed_digests};
//! use grail_proto::Hotkey;
//!
//! let (a, b, c) = (Hotkey([1; 32]), Hotkey([2; 32]), Hotkey([3; 32]));
//! let stakes = BTreeMap::from([(a, 50), (b, 30), (c, 20)]);
//! // Votes are group digests (`archive_votes` of each validator's archive).
//! let (x, y) = ([9; 32], [8; 32]);
//! let votes = BTreeMap::from([
//!     (a, BTreeSet::from([x, y])),
//!     (b, BTreeSet::from([x])),
//!     (c, BTreeSet::from([y])),
//! ]);
//! // x has 80 of 100, y only 70 counting a: both pass; without a, neither would.
//! assert_eq!(agreed_digests(&votes, &stakes), BTreeSet::from([x, y]));
//! let without_a: BTreeMap<_, _> = votes.iter().filter(|(v, _)| **v != a).map(|(v, d)| (*v, d.clone())).collect();
//! assert!(agreed_digests(&without_a, &stakes).is_empty());
//!
//! // A miner's credit is the stake-weighted median of what the validators report.
//! let miner = Hotkey([5; 32]);
//! let report = |validator, credited| SealedWindow {
//!     window: 300, validator, checkpoint: [0; 32], entries: Vec::new(),
//!     credits: vec![MinerCredit { miner, credited }],
//! };
//! let (ra, rb, rc) = (report(a, 10.0), report(b, 10.0), report(c, 1e9));
//! assert_eq!(agreed_credits(300, &[&ra, &rb, &rc], &stakes)[&miner], 10.0);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::archive::{ArchiveEntry, SealedWindow};
use crate::binding::group_digest;
use crate::rules::evidence::{copied_votes, well_formed, VoteEvidence};
use crate::rules::{Consequence, Reason};
use crate::wire::{Group, Hotkey};

/// The accepted entries of `window` in `archives` that validators holding more than half
/// of `validators` (hotkey → stake of every validator with a permit, whether or not it
/// published) agree on ([`agreed_digests`] of the archives' [`independent_votes`]), once
/// per signed group, in first-archive order. When every validator has zero stake, each
/// counts as one. `archives` are in priority order for the copy rule (earliest published
/// first): a vote whose evidence repeats an earlier archive's at other positions is a
/// copy and does not count ([`crate::rules::evidence::copied_votes`];
/// `challenge_randomness` is the window's, from the chain, never from an archive).
/// `signature_valid` checks a group's signature (e.g. `crate::signing::verify_group`); a
/// group whose first agreed entry fails it is dropped.
pub fn agreed_entries<'a>(
    window: u64,
    challenge_randomness: &[u8; 32],
    archives: &[&'a SealedWindow],
    validators: &BTreeMap<Hotkey, u64>,
    signature_valid: impl Fn(&Group) -> bool,
) -> Vec<&'a ArchiveEntry> {
    let votes = independent_votes(window, challenge_randomness, archives);
    let agreed = agreed_digests(&votes, validators);
    let mut seen = BTreeSet::new();
    archives
        .iter()
        .flat_map(|a| {
            let own = votes.get(&a.validator);
            voting_entries(window, a)
                .filter(move |e| own.is_some_and(|v| v.contains(&group_digest(&e.group))))
        })
        .filter(|e| {
            let d = group_digest(&e.group);
            agreed.contains(&d) && seen.insert(d)
        })
        .filter(|e| signature_valid(&e.group))
        .collect()
}

/// Each validator's [`archive_votes`] in `window` (several archives of one validator
/// merged) less the votes that copy an earlier archive's evidence
/// ([`crate::rules::evidence::copied_votes`], `archives` in priority order).
pub fn independent_votes(
    window: u64,
    challenge_randomness: &[u8; 32],
    archives: &[&SealedWindow],
) -> BTreeMap<Hotkey, BTreeSet<[u8; 32]>> {
    let evidence: Vec<(Hotkey, BTreeMap<[u8; 32], VoteEvidence>)> = archives
        .iter()
        .map(|a| (a.validator, vote_evidence(window, a)))
        .collect();
    let copied = copied_votes(challenge_randomness, evidence.iter().map(|(v, e)| (v, e)));
    let mut votes: BTreeMap<Hotkey, BTreeSet<[u8; 32]>> = BTreeMap::new();
    for (validator, ev) in &evidence {
        let own = votes.entry(*validator).or_default();
        let dropped = copied.get(validator);
        own.extend(
            ev.keys()
                .filter(|d| !dropped.is_some_and(|c| c.contains(*d)))
                .copied(),
        );
    }
    votes
}

/// The copy rule's view of `archive`'s votes in `window`, by group digest.
pub fn vote_evidence(window: u64, archive: &SealedWindow) -> BTreeMap<[u8; 32], VoteEvidence> {
    voting_entries(window, archive)
        .map(|e| (group_digest(&e.group), VoteEvidence::of(e)))
        .collect()
}

/// The entries of `archive` that are votes in `window` (see [`archive_votes`]).
fn voting_entries(window: u64, archive: &SealedWindow) -> impl Iterator<Item = &ArchiveEntry> {
    let zeroed: BTreeSet<Hotkey> = archive
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
    let counts = archive.window == window && archive.accepted().all(well_formed);
    archive.accepted().filter(move |e| {
        let h = &e.group.header;
        counts
            && !zeroed.contains(&e.miner)
            && h.window == window
            && h.checkpoint == archive.checkpoint
    })
}

/// The group digests `archive` votes for in `window`: its accepted entries whose miner's
/// window it did not zero (no entry of that miner with a reason whose consequence zeroes
/// the window, or a reason this version does not know) and whose header names `window`
/// and the archive's checkpoint. Empty for an archive of another window, and for an
/// archive with an accepted entry whose evidence is not well formed
/// ([`crate::rules::evidence::well_formed`]: every accepted group had a forward pass, so
/// an archive that lacks its evidence anywhere is not trusted anywhere).
pub fn archive_votes(window: u64, archive: &SealedWindow) -> BTreeSet<[u8; 32]> {
    voting_entries(window, archive)
        .map(|e| group_digest(&e.group))
        .collect()
}

/// The group digests that validators holding more than half of the weight of
/// `validators` (hotkey → stake of every validator considered, whether or not it voted;
/// one vote each when every stake is 0) voted for. `votes` holds each validator's
/// [`archive_votes`]; hotkeys outside `validators` count nothing.
pub fn agreed_digests<'a>(
    votes: impl IntoIterator<Item = (&'a Hotkey, &'a BTreeSet<[u8; 32]>)>,
    validators: &BTreeMap<Hotkey, u64>,
) -> BTreeSet<[u8; 32]> {
    let total = stake_of(validators, validators.keys());
    let mut voters: BTreeMap<[u8; 32], BTreeSet<Hotkey>> = BTreeMap::new();
    for (validator, digests) in votes {
        for d in digests {
            voters.entry(*d).or_default().insert(*validator);
        }
    }
    voters
        .into_iter()
        .filter(|(_, who)| total > 0 && 2 * stake_of(validators, who) > total)
        .map(|(d, _)| d)
        .collect()
}

/// The voting weight of `hotkeys` among `validators` (hotkey → stake): the sum of their
/// stakes, or their number when every validator has zero stake; hotkeys outside
/// `validators` count nothing. The one stake rule of agreement, of the trainer's wait for
/// a published majority and of its liveness rule.
pub fn stake_of<'a>(
    validators: &BTreeMap<Hotkey, u64>,
    hotkeys: impl IntoIterator<Item = &'a Hotkey>,
) -> u128 {
    let distinct: BTreeSet<&Hotkey> = hotkeys.into_iter().collect();
    distinct
        .into_iter()
        .map(|h| vote_weight(validators, h))
        .sum()
}

/// Whether `published` (validators whose archive of a window was read) hold more than half
/// of the voting weight of `validators` ([`stake_of`]): before that, no group can have a
/// majority, so a trainer waits for more archives.
///
/// ```
/// use std::collections::BTreeMap;
/// use grail_proto::rules::training::majority_published;
/// use grail_proto::Hotkey;
///
/// let validators = BTreeMap::from([(Hotkey([1; 32]), 60), (Hotkey([2; 32]), 40)]);
/// assert!(majority_published(&validators, [&Hotkey([1; 32])]));
/// assert!(!majority_published(&validators, [&Hotkey([2; 32])]));
/// ```
pub fn majority_published<'a>(
    validators: &BTreeMap<Hotkey, u64>,
    published: impl IntoIterator<Item = &'a Hotkey>,
) -> bool {
    let total = stake_of(validators, validators.keys());
    total > 0 && 2 * stake_of(validators, published) > total
}

/// Whether an agreed archive entry can be trained on: in the learning zone when
/// `in_zone_only`, and well formed for a trainer whose model has `vocab` tokens (archives
/// come from other machines: every rollout with the group's prompt, a non-empty
/// completion, one finite log-prob `≤ 0` per completion token, a finite reward, ids below
/// `vocab`). An entry that fails is left out of the step rather than failing it.
pub fn trainable(entry: &ArchiveEntry, in_zone_only: bool, vocab: usize) -> bool {
    let rollouts = &entry.group.rollouts;
    let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward).collect();
    if in_zone_only && !crate::grpo::in_learning_zone(&rewards) {
        return false;
    }
    let Some(first) = rollouts.first() else {
        return false;
    };
    rollouts.iter().all(|r| {
        r.prompt() == first.prompt()
            && !r.completion().is_empty()
            && r.logprobs.len() == r.completion().len()
            && r.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0)
            && r.reward.is_finite()
            && r.tokens.iter().all(|&t| (t as usize) < vocab)
    })
}

/// A validator's vote: its stake, or 1 each when every validator has zero stake; 0 for a
/// hotkey without a permit.
fn vote_weight(validators: &BTreeMap<Hotkey, u64>, hotkey: &Hotkey) -> u128 {
    let by_count = validators.values().all(|&s| s == 0);
    match validators.get(hotkey) {
        Some(_) if by_count => 1,
        Some(&s) => u128::from(s),
        None => 0,
    }
}

/// Each miner's credited work for `window` as the validators that published archives of it
/// report it ([`crate::archive::MinerCredit`]): the stake-weighted lower median over those
/// validators (weights as in [`agreed_entries`]; a validator that published no credit for
/// a miner reports 0; non-finite or negative values count as 0). Validators holding less
/// than half of the publishing stake cannot move a miner's value outside the range the
/// others report. One archive per validator counts (its first).
pub fn agreed_credits(
    window: u64,
    archives: &[&SealedWindow],
    validators: &BTreeMap<Hotkey, u64>,
) -> BTreeMap<Hotkey, f64> {
    let mut voters: BTreeMap<Hotkey, &SealedWindow> = BTreeMap::new();
    for a in archives {
        if a.window == window && vote_weight(validators, &a.validator) > 0 {
            voters.entry(a.validator).or_insert(a);
        }
    }
    let miners: BTreeSet<Hotkey> = voters
        .values()
        .flat_map(|a| a.credits.iter().map(|c| c.miner))
        .collect();
    let total = stake_of(validators, voters.keys());
    miners
        .into_iter()
        .map(|miner| {
            let mut reports: Vec<(f64, u128)> = voters
                .iter()
                .map(|(v, a)| {
                    let credited = a
                        .credits
                        .iter()
                        .find(|c| c.miner == miner)
                        .map_or(0.0, |c| c.credited);
                    let credited = if credited.is_finite() && credited > 0.0 {
                        credited
                    } else {
                        0.0
                    };
                    (credited, vote_weight(validators, v))
                })
                .collect();
            reports.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut seen = 0u128;
            let median = reports
                .iter()
                .find(|(_, w)| {
                    seen += w;
                    2 * seen >= total
                })
                .map_or(0.0, |(c, _)| *c);
            (miner, median)
        })
        .collect()
}

/// Which of a window's training groups go into the step, so that each miner's influence
/// is proportional to its credited work rather than to how many groups of it were checked:
/// `miners[i]` is the miner of group `i`. The step keeps `miners.len()` slots; miner `m`
/// gets `slots · credit_m / Σ credit` of them (largest remainders, ties to the earlier
/// miner in hotkey order), filled by cycling through its groups in order, so a group may
/// appear more than once. Miners without credit get no slot; with no credit at all the
/// result is empty. Returns group indices in ascending order.
///
/// ```
/// use std::collections::BTreeMap;
/// use grail_proto::rules::training::training_slots;
/// use grail_proto::Hotkey;
///
/// // One miner credited with 30 groups' work, two sybils with 5 each, 2 groups checked each.
/// let (big, s1, s2) = (Hotkey([1; 32]), Hotkey([2; 32]), Hotkey([3; 32]));
/// let credit = BTreeMap::from([(big, 30.0), (s1, 5.0), (s2, 5.0)]);
/// let slots = training_slots(&[big, big, s1, s1, s2, s2], &credit);
/// // 6 slots: quotas 4.5, 0.75, 0.75; floors 4, 0, 0; the two slots left go to the
/// // largest remainders (.75, .75). The big miner's two groups fill its 4 slots.
/// assert_eq!(slots, vec![0, 0, 1, 1, 2, 4]);
/// ```
pub fn training_slots(miners: &[Hotkey], credit: &BTreeMap<Hotkey, f64>) -> Vec<usize> {
    let mut groups: BTreeMap<Hotkey, Vec<usize>> = BTreeMap::new();
    for (i, m) in miners.iter().enumerate() {
        groups.entry(*m).or_default().push(i);
    }
    let credit_of = |m: &Hotkey| {
        credit
            .get(m)
            .copied()
            .filter(|c| c.is_finite() && *c > 0.0)
            .unwrap_or(0.0)
    };
    let total: f64 = groups.keys().map(credit_of).sum();
    if !(total > 0.0 && total.is_finite()) {
        return Vec::new();
    }
    let slots = miners.len();
    let quotas: Vec<(Hotkey, f64)> = groups
        .keys()
        .map(|m| (*m, slots as f64 * credit_of(m) / total))
        .collect();
    let mut given: BTreeMap<Hotkey, usize> = quotas
        .iter()
        .map(|(m, q)| (*m, q.floor() as usize))
        .collect();
    let mut left = slots.saturating_sub(given.values().sum());
    let mut by_remainder: Vec<&(Hotkey, f64)> =
        quotas.iter().filter(|(m, _)| credit_of(m) > 0.0).collect();
    by_remainder.sort_by(|a, b| (b.1 - b.1.floor()).total_cmp(&(a.1 - a.1.floor())));
    for (m, _) in by_remainder {
        if left == 0 {
            break;
        }
        *given.entry(*m).or_default() += 1;
        left -= 1;
    }
    let mut out: Vec<usize> = given
        .iter()
        .flat_map(|(m, &n)| {
            let own = &groups[m];
            (0..n).map(move |k| own[k % own.len()])
        })
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{MinerCredit, Verdict};
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
                    evidence: vec![vec![0.25]],
                    verdict: Verdict {
                        accepted: true,
                        reason: "accepted".into(),
                        detail: String::new(),
                    },
                })
                .collect(),
            credits: Vec::new(),
        }
    }

    /// The window's challenge randomness in these tests.
    const CR: [u8; 32] = [4; 32];

    /// A group whose rollouts have 20 completion tokens, and the model's gaps of them.
    fn long_group(prompt_id: u64) -> (Group, Vec<Vec<f64>>) {
        let mut g = group(prompt_id);
        for r in &mut g.rollouts {
            r.tokens = (0..22).collect();
            r.sketches = vec![crate::SketchDigest([0, 0]); 22];
            r.logprobs = vec![-0.5; 20];
        }
        let gaps = vec![(0..20).map(|t| 0.5 + 0.31 * f64::from(t)).collect()];
        (g, gaps)
    }

    /// `validator`'s archive accepting `groups` with its honest evidence.
    fn honest_archive(validator: u8, groups: &[(Group, Vec<Vec<f64>>)]) -> SealedWindow {
        let mut a = archive(validator, &[]);
        a.entries = groups
            .iter()
            .map(|(g, gaps)| ArchiveEntry {
                miner: Hotkey([9; 32]),
                bundle_sha256: [0; 32],
                group_index: 0,
                group: g.clone(),
                recomputed_logprobs: vec![vec![-0.5; 20]],
                evidence: crate::rules::evidence::record_evidence(&CR, &a.validator, g, gaps)
                    .unwrap(),
                verdict: Verdict {
                    accepted: true,
                    reason: "accepted".into(),
                    detail: String::new(),
                },
            })
            .collect();
        a
    }

    #[test]
    fn a_copied_archive_re_signed_by_another_validator_is_not_a_second_vote() {
        let groups = [long_group(1), long_group(2)];
        let original = honest_archive(1, &groups);
        // Validator 2 ran nothing: it re-publishes validator 1's archive as its own.
        let copy = SealedWindow {
            validator: Hotkey([2; 32]),
            ..original.clone()
        };
        let stakes = BTreeMap::from([
            (Hotkey([1; 32]), 40),
            (Hotkey([2; 32]), 30),
            (Hotkey([3; 32]), 30),
        ]);
        assert!(
            agreed_entries(10, &CR, &[&original, &copy], &stakes, |_| true).is_empty(),
            "40 of 100 is no majority: the copy's 30 do not count"
        );
        let votes = independent_votes(10, &CR, &[&original, &copy]);
        assert_eq!(votes[&Hotkey([1; 32])].len(), 2);
        assert!(votes[&Hotkey([2; 32])].is_empty());
        // The same validator checking on its own (evidence at its own positions) counts.
        let own = honest_archive(2, &groups);
        assert_eq!(
            agreed_entries(10, &CR, &[&original, &own], &stakes, |_| true).len(),
            2
        );
    }

    #[test]
    fn an_archive_that_accepts_without_evidence_does_not_vote() {
        let mut lazy = honest_archive(1, &[long_group(1), long_group(2)]);
        assert_eq!(archive_votes(10, &lazy).len(), 2);
        // One accepted entry without its forward pass's evidence: no vote at all.
        lazy.entries[1].evidence.clear();
        assert!(archive_votes(10, &lazy).is_empty());
        let stakes = BTreeMap::from([(Hotkey([1; 32]), 0)]);
        assert!(agreed_entries(10, &CR, &[&lazy], &stakes, |_| true).is_empty());
    }

    #[test]
    fn sybils_with_few_checked_groups_do_not_outweigh_credited_work() {
        // The attack on v4: one miner did 4 096 in-zone groups, 8 of them checked; 10
        // hotkeys did 8 groups each, all checked. Unweighted, the sybils supply 80 of the 88
        // training groups (91 %) for 80 / 4 176 of the credited work (1.9 %).
        let big = Hotkey([1; 32]);
        let sybils: Vec<Hotkey> = (10..20).map(|k| Hotkey([k; 32])).collect();
        let mut miners = vec![big; 8];
        let mut credit = BTreeMap::from([(big, 4096.0)]);
        for s in &sybils {
            miners.extend([*s; 8]);
            credit.insert(*s, 8.0);
        }
        let slots = training_slots(&miners, &credit);
        assert_eq!(slots.len(), miners.len(), "the step keeps its size");
        let sybil_slots = slots.iter().filter(|&&i| miners[i] != big).count();
        let share = sybil_slots as f64 / slots.len() as f64;
        let credited = 80.0 / 4176.0;
        assert!(
            (share - credited).abs() <= 1.0 / slots.len() as f64,
            "sybil share {share} vs credited {credited}"
        );
        // Every group of the big miner is used, 10 or 11 times each.
        for i in 0..8 {
            let n = slots.iter().filter(|&&s| s == i).count();
            assert!((10..=11).contains(&n), "group {i} used {n} times");
        }
        // Splitting the same credit across more hotkeys buys no more training influence.
        let mut split = vec![big; 8];
        let mut split_credit = BTreeMap::from([(big, 4096.0)]);
        for k in 0..40u8 {
            let h = Hotkey([100 + k; 32]);
            split.extend([h; 2]);
            split_credit.insert(h, 2.0);
        }
        let slots = training_slots(&split, &split_credit);
        let share = slots.iter().filter(|&&i| split[i] != big).count() as f64 / slots.len() as f64;
        assert!(
            share <= credited + 1.0 / slots.len() as f64,
            "split share {share}"
        );
        // No credit, no slot; nothing credited, nothing trained.
        let none = BTreeMap::from([(big, 0.0)]);
        assert!(training_slots(&[big, big], &none).is_empty());
        assert_eq!(
            training_slots(&[big, sybils[0]], &BTreeMap::from([(big, 1.0)])),
            vec![0, 0]
        );
    }

    #[test]
    fn a_minority_of_validators_cannot_move_a_miners_credit() {
        let miner = Hotkey([9; 32]);
        let with = |validator: u8, credited: f64| {
            let mut a = archive(validator, &[]);
            a.credits = vec![MinerCredit { miner, credited }];
            a
        };
        let stakes = BTreeMap::from([
            (Hotkey([1; 32]), 40),
            (Hotkey([2; 32]), 35),
            (Hotkey([3; 32]), 25),
        ]);
        // Honest validators 1 and 2 report 100; validator 3 claims a billion.
        let (a, b, liar) = (with(1, 100.0), with(2, 100.0), with(3, 1e9));
        assert_eq!(agreed_credits(10, &[&a, &b, &liar], &stakes)[&miner], 100.0);
        // Or zero, or NaN: the median stays with the majority.
        let (zero, nan) = (with(3, 0.0), with(3, f64::NAN));
        assert_eq!(agreed_credits(10, &[&a, &b, &zero], &stakes)[&miner], 100.0);
        assert_eq!(agreed_credits(10, &[&a, &b, &nan], &stakes)[&miner], 100.0);
        // A validator that lists nothing for the miner reports 0; a second archive of the
        // same validator does not vote twice; another window's archives do not vote.
        let silent = archive(2, &[]);
        let again = with(3, 1e9);
        assert_eq!(
            agreed_credits(10, &[&liar, &again, &silent], &stakes)[&miner],
            0.0
        );
        let mut other = with(1, 5.0);
        other.window = 11;
        assert!(agreed_credits(10, &[&other], &stakes).is_empty());
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
            ids(agreed_entries(10, &CR, &staked, &stakes, |_| true)),
            vec![2, 3]
        );
        // A forged signature is dropped even with agreement.
        assert_eq!(
            ids(agreed_entries(10, &CR, &staked, &stakes, |g| g
                .header
                .prompt_id
                != 2)),
            vec![3]
        );
        // A lone validator's archive does not count when a silent validator holds stake.
        let with_silent = BTreeMap::from([(Hotkey([1; 32]), 50), (Hotkey([7; 32]), 60)]);
        assert!(agreed_entries(10, &CR, &staked[..1], &with_silent, |_| true).is_empty());
        // Zero-stake validators count one each; another window's archives are ignored.
        let zero = BTreeMap::from([(Hotkey([1; 32]), 0)]);
        assert_eq!(
            ids(agreed_entries(10, &CR, &staked[..1], &zero, |_| true)),
            vec![1, 2]
        );
        assert!(agreed_entries(11, &CR, &staked, &stakes, |_| true).is_empty());
        // A miner whose window the validator zeroed contributes none of its groups.
        let mut zeroing = archive(1, &[1, 2]);
        let mut failed = zeroing.entries[0].clone();
        failed.verdict = Verdict {
            accepted: false,
            reason: "sampling_mismatch".into(),
            detail: String::new(),
        };
        zeroing.entries.push(failed);
        assert!(agreed_entries(10, &CR, &[&zeroing], &zero, |_| true).is_empty());
    }
}
