//! Checks across the groups of a bundle, across miners and across windows, and the
//! credit a miner's window earns from its checked sample.
//!
//! ```
//! use grail_proto::rules::bundle::{credited_work, sample_groups, shared_work, CheckedOutcome};
//! use grail_proto::rules::Reason;
//! use grail_proto::Hotkey;
//!
//! // Stage 4a: work in more than one miner's bundle (judged when checked, stage 6).
//! let (miner, copier) = (Hotkey([1; 32]), Hotkey([2; 32]));
//! let works: [&[[u8; 32]]; 2] = [&[[1; 32]], &[[1; 32], [2; 32]]];
//! assert_eq!(shared_work(&works), [([1; 32], vec![0, 1])].into());
//!
//! // Stage 5: 8 spot checks among 100 groups, of which group 5 is not eligible (void).
//! let checked = sample_groups(&[9; 32], &miner, 100, |g| g != 5, 8);
//! assert_eq!(checked.len(), 8);
//! assert!(!checked.contains(&5) && checked.windows(2).all(|w| w[0] < w[1]));
//!
//! // Stage 7: 7 of 8 checked groups accepted in the learning zone, 1 accepted but flat.
//! let ok = CheckedOutcome { reason: Reason::Accepted, in_zone: true };
//! let flat = CheckedOutcome { reason: Reason::Accepted, in_zone: false };
//! assert_eq!(credited_work(99, &[ok, ok, ok, flat, ok, ok, ok, ok]), 99.0 * 7.0 / 8.0);
//! // One failed check zeroes the whole window.
//! let forged = CheckedOutcome { reason: Reason::ProofFailed, in_zone: true };
//! assert_eq!(credited_work(99, &[ok, ok, forged]), 0.0);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::binding::work_digest;
use crate::params::REPLAY_WINDOWS;
use crate::prf::{stream, uniform_below};
use crate::rules::{Consequence, Reason, Rejection};
use crate::sampling::prompt_digest;
use crate::wire::{Group, Hotkey};

/// Stage 3, on every group of a bundle before any forward pass: the first group that
/// repeats an earlier group's work ([`work_digest`]) is `duplicate_group`, the first that
/// repeats an earlier group's prompt tokens is `duplicate_prompt`. Returns the index and
/// rejection of the first offence. A prompt's noise is fixed per miner and window, so
/// a second group for a prompt is either a copy or off-policy resampling.
pub fn duplicates(groups: &[Group]) -> Option<(usize, Rejection)> {
    let mut works = BTreeMap::new();
    let mut prompts = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        if let Some(first) = works.insert(work_digest(g), i) {
            return Some((
                i,
                Rejection::new(Reason::DuplicateGroup, format!("repeats group {first}")),
            ));
        }
        let prompt = g.rollouts.first().map(|r| prompt_digest(r.prompt()));
        if let Some(first) = prompt.and_then(|p| prompts.insert(p, i)) {
            return Some((
                i,
                Rejection::new(
                    Reason::DuplicatePrompt,
                    format!(
                        "prompt {} already used by group {first}",
                        g.header.prompt_id
                    ),
                ),
            ));
        }
    }
    None
}

/// Which work (by [`work_digest`]) is in the bundles of more than one miner: for each such
/// digest, the indices into `bundles` (each miner's work digests) that hold it, ascending.
/// Protocol v5 resolves such copies by who sampled them ([`judge_copy`]), never by upload
/// order, so nothing here voids a group.
pub fn shared_work(bundles: &[&[[u8; 32]]]) -> BTreeMap<[u8; 32], Vec<usize>> {
    let mut holders: BTreeMap<[u8; 32], Vec<usize>> = BTreeMap::new();
    for (m, works) in bundles.iter().enumerate() {
        for w in *works {
            let list = holders.entry(*w).or_default();
            if list.last() != Some(&m) {
                list.push(m);
            }
        }
    }
    holders.retain(|_, list| list.len() > 1);
    holders
}

/// Stage 6, on a checked group whose work is also in `others`' bundles
/// ([`shared_work`]): the work belongs to every hotkey whose public noise it follows.
/// A group that fails the sampling check under its own miner's noise while the same
/// work is in another bundle is a `copycat`, which zeroes the copier's window like any
/// sampling failure; the owner's copy passes its own check, so a copy never costs the
/// owner anything, whoever uploaded first. Other outcomes pass through unchanged.
///
/// # Errors
///
/// The [`Reason::Copycat`] rejection described above, or `outcome`'s own rejection.
///
/// ```
/// use grail_proto::rules::bundle::judge_copy;
/// use grail_proto::rules::{Consequence, Reason, Rejection};
/// use grail_proto::Hotkey;
///
/// let owner = [Hotkey([1; 32])];
/// let copy = Err(Rejection::new(Reason::SamplingMismatch, "rollout 0: 3 of 9 tokens"));
/// let judged = judge_copy(copy, &owner).unwrap_err();
/// assert_eq!(judged.reason, Reason::Copycat);
/// assert_eq!(judged.reason.consequence(), Consequence::ZeroWindow);
/// // The owner's own check passed: nothing changes for it.
/// assert!(judge_copy(Ok(()), &owner).is_ok());
/// ```
pub fn judge_copy(outcome: Result<(), Rejection>, others: &[Hotkey]) -> Result<(), Rejection> {
    match outcome {
        Err(r) if r.reason == Reason::SamplingMismatch && !others.is_empty() => {
            let names: Vec<String> = others.iter().map(|h| hex::encode(h.0)).collect();
            Err(Rejection::new(
                Reason::Copycat,
                format!(
                    "not sampled with this miner's noise; the same work is in the bundle of hotkey {} ({})",
                    names.join(", "),
                    r.detail
                ),
            ))
        }
        other => other,
    }
}

/// Stage 4b, across windows: the work digests of eligible groups (those that passed every
/// check run on all groups, of bundles not zeroed, not void) seen in earlier windows of
/// the checkpoint in effect, at most the last [`REPLAY_WINDOWS`] windows. A validator
/// clears it when the checkpoint changes (work made with another checkpoint already fails
/// `stale_checkpoint`).
/// Serialised (e.g. in a validator's JSON state) with hex digests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplaySet {
    /// The checkpoint the digests belong to.
    #[serde(with = "hex_digest")]
    pub checkpoint: [u8; 32],
    /// Work digests by window.
    #[serde(with = "hex_digest_sets")]
    pub windows: BTreeMap<u64, BTreeSet<[u8; 32]>>,
}

fn digest_from_hex<E: serde::de::Error>(text: &str) -> Result<[u8; 32], E> {
    let bytes = hex::decode(text).map_err(E::custom)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| E::custom("a digest is 32 bytes"))
}

mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        super::digest_from_hex(&String::deserialize(d)?)
    }
}

mod hex_digest_sets {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Sets = BTreeMap<u64, BTreeSet<[u8; 32]>>;

    pub fn serialize<S: Serializer>(sets: &Sets, s: S) -> Result<S::Ok, S::Error> {
        let hex: BTreeMap<u64, Vec<String>> = sets
            .iter()
            .map(|(w, set)| (*w, set.iter().map(hex::encode).collect()))
            .collect();
        hex.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sets, D::Error> {
        BTreeMap::<u64, Vec<String>>::deserialize(d)?
            .into_iter()
            .map(|(w, list)| {
                let set = list
                    .iter()
                    .map(|h| super::digest_from_hex(h))
                    .collect::<Result<_, _>>()?;
                Ok((w, set))
            })
            .collect()
    }
}

impl ReplaySet {
    /// Prepares the set for `window` under `checkpoint`: forgets everything when the
    /// checkpoint changed, and the window itself (a re-run of a window must not see its
    /// own groups as replays).
    pub fn begin(&mut self, checkpoint: [u8; 32], window: u64) {
        if self.checkpoint != checkpoint {
            *self = ReplaySet {
                checkpoint,
                windows: BTreeMap::new(),
            };
        }
        self.windows.remove(&window);
    }

    /// Whether `work` was submitted in a window before `window`.
    pub fn is_replay(&self, window: u64, work: &[u8; 32]) -> bool {
        self.windows
            .range(..window)
            .any(|(_, seen)| seen.contains(work))
    }

    /// Records the work of `window`, keeping the last [`REPLAY_WINDOWS`] windows.
    pub fn record(&mut self, window: u64, works: impl IntoIterator<Item = [u8; 32]>) {
        self.windows.entry(window).or_default().extend(works);
        while self.windows.len() > REPLAY_WINDOWS {
            self.windows.pop_first();
        }
    }
}

/// Stage 5: which groups of a miner's bundle of `total` groups get a forward pass: a
/// permutation of `0..total` drawn with `stream("grail/validator-sample",
/// [challenge_randomness, hotkey])` (Fisher–Yates from the front: position `i` swaps with
/// `i + uniform_below(total − i)`), of which the first `n` indices that are `eligible`
/// are taken, in ascending order. The miner cannot know them before uploading, and
/// validators that disagree about a few void groups still check the same others.
pub fn sample_groups(
    challenge_randomness: &[u8; 32],
    miner: &Hotkey,
    total: usize,
    eligible: impl Fn(usize) -> bool,
    n: usize,
) -> Vec<usize> {
    let mut rng = stream(b"grail/validator-sample", &[challenge_randomness, &miner.0]);
    let mut order: Vec<usize> = (0..total).collect();
    let mut chosen = Vec::with_capacity(n.min(total));
    for i in 0..total {
        if chosen.len() == n {
            break;
        }
        let j = i + uniform_below(&mut rng, (total - i) as u64) as usize;
        order.swap(i, j);
        if eligible(order[i]) {
            chosen.push(order[i]);
        }
    }
    chosen.sort_unstable();
    chosen
}

/// One checked group's outcome, for [`credited_work`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedOutcome {
    /// The verdict.
    pub reason: Reason,
    /// Whether its recomputed rewards are in the learning zone.
    pub in_zone: bool,
}

/// Stage 7: the work a miner's window earns. `eligible` groups passed every check that
/// runs on all groups and were not void; `checked` are the outcomes of the sampled ones.
/// Any checked failure whose consequence is [`Consequence::ZeroWindow`] gives 0;
/// otherwise the credit is `eligible × (accepted in-zone checked) / checked`, an unbiased
/// estimate of the in-zone groups among all eligible ones (docs/protocol.md §12).
pub fn credited_work(eligible: usize, checked: &[CheckedOutcome]) -> f64 {
    if checked.is_empty()
        || checked
            .iter()
            .any(|c| c.reason.consequence() == Consequence::ZeroWindow)
    {
        return 0.0;
    }
    let good = checked
        .iter()
        .filter(|c| c.reason == Reason::Accepted && c.in_zone)
        .count();
    eligible as f64 * good as f64 / checked.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_work_lists_every_holder_once_and_nothing_else() {
        let (a, b, c) = (
            [[1; 32], [2; 32], [2; 32]],
            [[2; 32], [3; 32]],
            [[3; 32], [1; 32]],
        );
        let shared = shared_work(&[&a, &b, &c]);
        assert_eq!(
            shared,
            BTreeMap::from([
                ([1; 32], vec![0, 2]),
                ([2; 32], vec![0, 1]),
                ([3; 32], vec![1, 2])
            ])
        );
        assert!(shared_work(&[&a[..1], &b[1..]]).is_empty());
    }

    #[test]
    fn only_a_sampling_failure_on_shared_work_is_a_copy() {
        let others = [Hotkey([5; 32])];
        let fail = |reason| Err(Rejection::new(reason, "x"));
        assert_eq!(
            judge_copy(fail(Reason::SamplingMismatch), &others)
                .unwrap_err()
                .reason,
            Reason::Copycat
        );
        // Work nobody else holds, or another failure, keeps its reason.
        assert_eq!(
            judge_copy(fail(Reason::SamplingMismatch), &[])
                .unwrap_err()
                .reason,
            Reason::SamplingMismatch
        );
        assert_eq!(
            judge_copy(fail(Reason::ProofFailed), &others)
                .unwrap_err()
                .reason,
            Reason::ProofFailed
        );
        assert!(judge_copy(Ok(()), &others).is_ok());
    }

    #[test]
    fn replays_are_per_checkpoint_and_earlier_windows_only() {
        let mut set = ReplaySet::default();
        set.begin([1; 32], 10);
        set.record(10, [[7; 32]]);
        assert!(!set.is_replay(10, &[7; 32]));
        assert!(set.is_replay(20, &[7; 32]));
        set.begin([1; 32], 10);
        assert!(
            !set.is_replay(20, &[7; 32]),
            "a re-run forgets its own window"
        );
        set.record(10, [[7; 32]]);
        set.begin([2; 32], 20);
        assert!(
            !set.is_replay(20, &[7; 32]),
            "a new checkpoint starts empty"
        );
    }

    #[test]
    fn one_failure_zeroes_the_window_and_voids_cost_only_themselves() {
        let ok = CheckedOutcome {
            reason: Reason::Accepted,
            in_zone: true,
        };
        let flat = CheckedOutcome {
            reason: Reason::Accepted,
            in_zone: false,
        };
        assert_eq!(credited_work(100, &[ok, ok, flat, ok]), 75.0);
        let fraud = CheckedOutcome {
            reason: Reason::SamplingMismatch,
            in_zone: false,
        };
        assert_eq!(credited_work(100, &[ok, ok, fraud, ok]), 0.0);
        assert_eq!(credited_work(100, &[]), 0.0);
    }

    #[test]
    fn sampled_groups_are_eligible_distinct_and_deterministic() {
        let key = Hotkey([2; 32]);
        let eligible = |i: usize| !i.is_multiple_of(3);
        let a = sample_groups(&[1; 32], &key, 50, eligible, 8);
        assert_eq!(a, sample_groups(&[1; 32], &key, 50, eligible, 8));
        assert_eq!(a.len(), 8);
        assert!(a.iter().all(|&i| eligible(i)));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_ne!(
            a,
            sample_groups(&[1; 32], &Hotkey([3; 32]), 50, eligible, 8)
        );
        assert_eq!(
            sample_groups(&[1; 32], &key, 10, |i| i == 4 || i == 9, 8),
            vec![4, 9]
        );
        // Voiding one group another validator kept changes at most one pick.
        let all = sample_groups(&[1; 32], &key, 50, |_| true, 8);
        let dropped = all[3];
        let fewer = sample_groups(&[1; 32], &key, 50, |i| i != dropped, 8);
        assert_eq!(all.iter().filter(|i| !fewer.contains(i)).count(), 1);
    }
}
