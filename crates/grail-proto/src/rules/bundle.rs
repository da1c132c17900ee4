//! Checks across the groups of a bundle, across miners and across windows, and the
//! credit a miner's window earns from its checked sample.
//!
//! ```
//! use grail_proto::rules::bundle::{copies, credited_work, sample_groups, CheckedOutcome, Upload};
//! use grail_proto::rules::Reason;
//! use grail_proto::Hotkey;
//!
//! // Stage 4a: the same work uploaded later by another miner is void.
//! let (miner, copier) = (Hotkey([1; 32]), Hotkey([2; 32]));
//! let uploads = [
//!     Upload { hotkey: miner, uploaded: 1_000, works: vec![[1; 32]] },
//!     Upload { hotkey: copier, uploaded: 1_500, works: vec![[1; 32], [2; 32]] },
//! ];
//! assert_eq!(copies(&uploads), vec![vec![false], vec![true, false]]);
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
/// rejection of the first offence. A prompt's uniforms are fixed per miner and window, so
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

/// One miner's upload of one window, for [`copies`].
#[derive(Debug, Clone)]
pub struct Upload {
    /// The miner.
    pub hotkey: Hotkey,
    /// When the store received the bundle (any monotone clock, e.g. Unix milliseconds).
    pub uploaded: i64,
    /// The [`work_digest`] of each group.
    pub works: Vec<[u8; 32]>,
}

/// Stage 4a, across miners: a group whose work another miner uploaded strictly earlier is
/// a `copycat`. Uploads at the same time keep their groups: neither side is favoured, and
/// a copier's groups then fail the sampling check when checked (its hotkey gives other
/// uniforms), while voiding both would let a fast copier void an honest miner's work.
/// Returns `void[u][g]` per upload and group.
pub fn copies(uploads: &[Upload]) -> Vec<Vec<bool>> {
    let mut first: BTreeMap<[u8; 32], i64> = BTreeMap::new();
    for u in uploads {
        for w in &u.works {
            let t = first.entry(*w).or_insert(u.uploaded);
            *t = (*t).min(u.uploaded);
        }
    }
    uploads
        .iter()
        .map(|u| u.works.iter().map(|w| first[w] < u.uploaded).collect())
        .collect()
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

    fn upload(key: u8, time: i64, works: &[u8]) -> Upload {
        Upload {
            hotkey: Hotkey([key; 32]),
            uploaded: time,
            works: works.iter().map(|&w| [w; 32]).collect(),
        }
    }

    #[test]
    fn copies_void_strictly_later_uploads_only() {
        let void = copies(&[
            upload(1, 10, &[1, 2]),
            upload(2, 5, &[2, 3]),
            upload(3, 5, &[3, 4]),
            upload(4, 7, &[4]),
        ]);
        // Work 1: only miner 1. Work 2: miner 2 first. Work 3: tie at 5 → both kept.
        // Work 4: miner 3 first (5 < 7).
        assert_eq!(
            void,
            vec![
                vec![false, true],
                vec![false, false],
                vec![false, false],
                vec![true]
            ]
        );
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
