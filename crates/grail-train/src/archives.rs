//! Reading the validators' sealed archives of a window, in bounded memory: one archive per
//! validator (its newest within `trainer.max_archive_bytes`), only validators holding at
//! least `trainer.min_validator_stake_share` of the permitted stake, each archive read
//! once for its votes and credits, and read again only for the entries a stake majority
//! agreed on.

use std::collections::{BTreeMap, BTreeSet};

use grail_proto::archive::{ArchiveEntry, SealedWindow};
use grail_proto::binding::group_digest;
use grail_proto::params::PIN_SECONDS;
use grail_proto::rules::evidence::{copied_votes, VoteEvidence};
use grail_proto::rules::training::{
    agreed_credits, agreed_digests, majority_published, stake_of, vote_evidence,
};
use grail_proto::signing::verify_group;
use grail_proto::Hotkey;
use grail_store::{ArchiveObject, Store};
use tracing::warn;

use grail_node::config::TrainerSettings;
use grail_node::network::{Network, Stop};
use grail_node::NodeError;

/// What the trainer keeps of one validator's archive after reading it: which object it
/// was, the group digests it votes for with their evidence, and its credits (entries
/// dropped).
#[derive(Debug, Clone)]
pub struct ArchiveVotes {
    /// The archive object read.
    pub object: ArchiveObject,
    /// `grail_proto::rules::training::archive_votes` of it, less the votes the copy rule
    /// dropped ([`WindowArchives::drop_copies`]).
    pub votes: BTreeSet<[u8; 32]>,
    /// The evidence of each vote (the copy rule's input), by group digest.
    pub evidence: BTreeMap<[u8; 32], VoteEvidence>,
    /// The archive without its entries (window, validator, checkpoint, credits).
    pub header: SealedWindow,
}

/// A window's archives as the trainer uses them.
#[derive(Debug, Clone, Default)]
pub struct WindowArchives {
    /// The validators considered (hotkey → stake): permit holders above the stake floor.
    pub stakes: BTreeMap<Hotkey, u64>,
    /// The archive read per validator that published one.
    pub read: BTreeMap<Hotkey, ArchiveVotes>,
}

impl WindowArchives {
    /// The groups validators holding a majority of `voters`' stake agreed on
    /// ([`Liveness::voters`]; `self.stakes` when every validator is live).
    pub fn agreed(&self, voters: &BTreeMap<Hotkey, u64>) -> BTreeSet<[u8; 32]> {
        agreed_digests(self.read.iter().map(|(v, a)| (v, &a.votes)), voters)
    }

    /// The copy rule (`grail_proto::rules::evidence::copied_votes`): drops every vote whose
    /// evidence repeats, at other positions, the evidence of an archive earlier in
    /// priority order — the earlier published (store modification time), then the larger
    /// stake, then the smaller hotkey. Returns the number of votes dropped per validator
    /// (each logged with a warning).
    pub fn drop_copies(&mut self, challenge_randomness: &[u8; 32]) -> BTreeMap<Hotkey, usize> {
        let mut order: Vec<(&Hotkey, &ArchiveVotes)> = self.read.iter().collect();
        order.sort_by_key(|(h, a)| {
            let stake = self.stakes.get(*h).copied().unwrap_or(0);
            (a.object.last_modified, std::cmp::Reverse(stake), **h)
        });
        let copied = copied_votes(
            challenge_randomness,
            order.into_iter().map(|(h, a)| (h, &a.evidence)),
        );
        let mut dropped = BTreeMap::new();
        for (validator, digests) in copied {
            if let Some(a) = self.read.get_mut(&validator) {
                for d in &digests {
                    a.votes.remove(d);
                    a.evidence.remove(d);
                }
                warn!(
                    window = a.header.window,
                    copies = digests.len(),
                    "{}'s archive repeats another validator's evidence: those votes do not count",
                    validator.to_ss58()
                );
            }
            dropped.insert(validator, digests.len());
        }
        dropped
    }

    /// Each miner's agreed credited work among `voters`.
    pub fn credits(&self, window: u64, voters: &BTreeMap<Hotkey, u64>) -> BTreeMap<Hotkey, f64> {
        let headers: Vec<&SealedWindow> = self.read.values().map(|a| &a.header).collect();
        agreed_credits(window, &headers, voters)
    }
}

/// The liveness rule: a validator that has published no archive in the last
/// `windows` windows the trainer read is *inactive* and counts neither as a voter nor in
/// the total, so permit holders that publish nothing cannot stall training forever. To
/// keep a minority from taking over when most validators fall silent, nothing is agreed
/// while the active validators hold less than `min_active_share` of the considered stake.
/// A validator is active again as soon as it publishes. The trainer keeps this in memory:
/// after a restart every validator counts as active for the first `windows` windows.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    /// Windows of silence after which a validator is inactive (at least 1).
    pub windows: u64,
    /// Smallest share of the considered stake the active validators must hold.
    pub min_active_share: f64,
    /// First window read since the trainer started.
    first: Option<u64>,
    /// The last window each validator published an archive of.
    last_published: BTreeMap<Hotkey, u64>,
}

impl Liveness {
    /// A rule with these parameters and no history.
    pub fn new(windows: u64, min_active_share: f64) -> Self {
        Self {
            windows: windows.max(1),
            min_active_share,
            ..Self::default()
        }
    }

    /// Records who published archives of `window` (of `window_length` blocks) and returns
    /// the validators whose stake counts for its agreement, or an empty map when the
    /// active ones hold too little of the stake.
    pub fn voters(
        &mut self,
        window: u64,
        window_length: u64,
        archives: &WindowArchives,
    ) -> BTreeMap<Hotkey, u64> {
        let first = *self.first.get_or_insert(window);
        for v in archives.read.keys() {
            self.last_published.insert(*v, window);
        }
        let span = self.windows.saturating_mul(window_length.max(1));
        let active = |v: &Hotkey| match self.last_published.get(v) {
            Some(&last) => last.saturating_add(span) > window,
            None => first.saturating_add(span) > window,
        };
        let voters: BTreeMap<Hotkey, u64> = archives
            .stakes
            .iter()
            .filter(|(v, _)| active(v))
            .map(|(v, s)| (*v, *s))
            .collect();
        let total = stake_of(&archives.stakes, archives.stakes.keys()) as f64;
        let active = stake_of(&archives.stakes, voters.keys()) as f64;
        if total > 0.0 && active >= self.min_active_share * total {
            voters
        } else {
            BTreeMap::new()
        }
    }
}

/// The validators whose archives count: permit holders (`neurons`: hotkey, stake) holding
/// at least `min_share` of the permitted stake. When every stake is 0 (one vote each),
/// all count. A validator below the floor counts neither as a voter nor in the total.
pub fn considered_validators(
    permitted: &BTreeMap<Hotkey, u64>,
    min_share: f64,
) -> BTreeMap<Hotkey, u64> {
    let total: u128 = permitted.values().map(|&s| u128::from(s)).sum();
    if total == 0 || min_share.is_nan() || min_share <= 0.0 {
        return permitted.clone();
    }
    permitted
        .iter()
        .filter(|(_, &s)| s as f64 >= min_share * total as f64)
        .map(|(h, s)| (*h, *s))
        .collect()
}

/// The archive of a window the trainer reads from one validator: the newest object (by
/// modification time, then digest) of at most `max_bytes`; larger ones are ignored.
pub fn chosen_archive(objects: &[ArchiveObject], max_bytes: u64) -> Option<&ArchiveObject> {
    objects
        .iter()
        .filter(|o| o.size <= max_bytes)
        .max_by_key(|o| (o.last_modified, o.digest))
}

/// The validators of the subnet above the stake floor
/// (`settings.min_validator_stake_share`) and their archives of `window` (each within
/// `settings.max_archive_bytes`), their buckets those their commitments on `net`'s chain
/// name (`local`: a local network, where `local:` buckets are allowed). Waits until
/// validators holding a stake majority have sealed the window (earlier, no group can have
/// a majority's agreement) or two windows have passed since its challenge could be drawn
/// (the deadline plus `PIN_SECONDS`); `None` when stopped meanwhile.
///
/// # Errors
/// The chain or a validator's bucket listing cannot be read (an unreadable archive is
/// skipped with a warning).
pub async fn window_archives(
    net: &Network,
    local: bool,
    settings: &TrainerSettings,
    window: u64,
    stop: &mut Stop,
) -> Result<Option<(WindowArchives, Vec<(Hotkey, Store)>)>, NodeError> {
    // Who the validators are is read once per window; their buckets are polled.
    let (metagraph, stores) =
        grail_node::wiring::registered_stores(net, local, |n| n.validator_permit).await?;
    let permitted: BTreeMap<Hotkey, u64> = metagraph
        .neurons
        .iter()
        .filter(|n| n.validator_permit)
        .map(|n| (n.hotkey, n.stake))
        .collect();
    let stakes = considered_validators(&permitted, settings.min_validator_stake_share);
    let validators: Vec<(Hotkey, Store)> = stores
        .into_iter()
        .filter(|(n, _)| stakes.contains_key(&n.hotkey))
        .map(|(n, store)| (n.hotkey, store))
        .collect();
    let wl = net.window_length;
    // Validators check a window once its challenge is public, `PIN_SECONDS` after the
    // deadline; the two windows of patience count from then.
    let pin_blocks = (PIN_SECONDS * 1000).div_ceil(net.block_time_ms.max(1)) + 1;
    let give_up = window + 3 * wl + pin_blocks;
    let mut archives = WindowArchives {
        stakes,
        read: BTreeMap::new(),
    };
    let max_bytes = settings.max_archive_bytes;
    loop {
        read_votes(&validators, window, max_bytes, &mut archives.read).await?;
        let head = net.chain.block_number().await?;
        if majority_published(&archives.stakes, archives.read.keys()) || head > give_up {
            return Ok(Some((archives, validators)));
        }
        if stop.sleep(std::time::Duration::from_millis(500)).await {
            return Ok(None);
        }
    }
}

/// Reads, for each validator whose chosen archive of `window` ([`chosen_archive`]) is not
/// in `read` yet, that archive once and keeps its votes and credits. An archive that
/// cannot be read or names another validator is skipped with a warning.
///
/// # Errors
/// A bucket cannot be listed.
pub async fn read_votes(
    validators: &[(Hotkey, Store)],
    window: u64,
    max_bytes: u64,
    read: &mut BTreeMap<Hotkey, ArchiveVotes>,
) -> Result<(), NodeError> {
    for (hotkey, store) in validators {
        let objects = store.archive_objects(window).await?;
        let Some(object) = chosen_archive(&objects, max_bytes) else {
            if let Some(big) = objects.iter().find(|o| o.size > max_bytes) {
                warn!(
                    window,
                    size = big.size,
                    max_bytes,
                    "ignoring an archive of {} over trainer.max_archive_bytes",
                    hotkey.to_ss58()
                );
            }
            continue;
        };
        if read
            .get(hotkey)
            .is_some_and(|r| r.object.digest == object.digest)
        {
            continue;
        }
        if objects.len() > 1 {
            warn!(
                window,
                archives = objects.len(),
                "{} published several archives of the window; reading its newest",
                hotkey.to_ss58()
            );
        }
        if let Some(a) = own_archive(store, hotkey, window, &object.digest).await {
            let evidence = vote_evidence(window, &a);
            let header = SealedWindow {
                entries: Vec::new(),
                ..a
            };
            read.insert(
                *hotkey,
                ArchiveVotes {
                    object: object.clone(),
                    votes: evidence.keys().copied().collect(),
                    evidence,
                    header,
                },
            );
        }
    }
    Ok(())
}

/// `validator`'s archive `digest` of `window` from its bucket; `None`, with a warning, when
/// it cannot be read or names another validator.
pub(crate) async fn own_archive(
    store: &Store,
    validator: &Hotkey,
    window: u64,
    digest: &[u8; 32],
) -> Option<SealedWindow> {
    match store.get_archive(window, digest).await {
        Ok((a, _)) if a.validator == *validator => Some(a),
        Ok(_) => {
            warn!(
                window,
                "an archive in {} names another validator",
                validator.to_ss58()
            );
            None
        }
        Err(e) => {
            warn!(window, "unreadable archive: {e}");
            None
        }
    }
}

/// The archive entries of the `agreed` groups, read again from the voters' archives (the
/// largest stake first, stopping once every agreed group is found), one per group, with
/// a valid signature. Unreadable archives are skipped with a warning.
pub async fn agreed_entries(
    validators: &[(Hotkey, Store)],
    window: u64,
    archives: &WindowArchives,
    agreed: &BTreeSet<[u8; 32]>,
) -> Vec<ArchiveEntry> {
    let mut voters: Vec<(&Hotkey, &ArchiveVotes)> = archives
        .read
        .iter()
        .filter(|(_, a)| !a.votes.is_disjoint(agreed))
        .collect();
    voters.sort_by_key(|(h, _)| std::cmp::Reverse(archives.stakes.get(*h).copied().unwrap_or(0)));
    let mut found: BTreeMap<[u8; 32], ArchiveEntry> = BTreeMap::new();
    for (hotkey, votes) in voters {
        if found.len() == agreed.len() {
            break;
        }
        let Some((_, store)) = validators.iter().find(|(h, _)| h == hotkey) else {
            continue;
        };
        let Some(archive) = own_archive(store, hotkey, window, &votes.object.digest).await else {
            continue;
        };
        for e in archive.entries {
            let d = group_digest(&e.group);
            let wanted = votes.votes.contains(&d) && agreed.contains(&d);
            if wanted && !found.contains_key(&d) && verify_group(&e.group) {
                found.insert(d, e);
            }
        }
    }
    found.into_values().collect()
}

/// Reads the sealed archives of `window` in the validators' buckets that are not in
/// `cache` yet (keyed by validator and archive digest); an archive that cannot be read or
/// names another validator is skipped with a warning.
///
/// # Errors
/// A bucket cannot be listed.
pub(crate) async fn sealed_archives(
    validators: &[(Hotkey, Store)],
    window: u64,
    cache: &mut BTreeMap<(Hotkey, [u8; 32]), SealedWindow>,
) -> Result<(), NodeError> {
    for (hotkey, store) in validators {
        for digest in store.list_archives(window).await? {
            if cache.contains_key(&(*hotkey, digest)) {
                continue;
            }
            if let Some(a) = own_archive(store, hotkey, window, &digest).await {
                cache.insert((*hotkey, digest), a);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use grail_proto::archive::MinerCredit;
    use grail_proto::signing::Keypair;
    use grail_store::StoreConfig;

    use super::*;
    use grail_validate::testing::{accepted_entry, group};

    #[test]
    fn validators_below_the_stake_floor_do_not_count() {
        let stakes = BTreeMap::from([
            (Hotkey([1; 32]), 600),
            (Hotkey([2; 32]), 395),
            (Hotkey([3; 32]), 5),
        ]);
        let kept = considered_validators(&stakes, 0.01);
        assert_eq!(kept.len(), 2, "0.5 % of the stake is below a 1 % floor");
        assert!(!kept.contains_key(&Hotkey([3; 32])));
        assert_eq!(considered_validators(&stakes, 0.0), stakes);
        let free = BTreeMap::from([(Hotkey([1; 32]), 0), (Hotkey([2; 32]), 0)]);
        assert_eq!(considered_validators(&free, 0.01), free, "one vote each");
    }

    #[test]
    fn the_newest_archive_within_the_limit_is_the_one_read() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        let objects = [
            ArchiveObject {
                digest: [1; 32],
                size: 10,
                last_modified: at(100),
            },
            ArchiveObject {
                digest: [2; 32],
                size: 10,
                last_modified: at(300),
            },
            ArchiveObject {
                digest: [3; 32],
                size: 5_000,
                last_modified: at(400),
            },
        ];
        assert_eq!(chosen_archive(&objects, 1_000).unwrap().digest, [2; 32]);
        assert_eq!(chosen_archive(&objects, 10_000).unwrap().digest, [3; 32]);
        assert!(chosen_archive(&objects[2..], 1_000).is_none());
    }

    /// A sealed window of `validator` accepting `prompts` of `miner`, credited `credit`.
    fn sealed(validator: Hotkey, miner: &Keypair, prompts: &[u64], credit: f64) -> SealedWindow {
        SealedWindow {
            window: 40,
            validator,
            checkpoint: [9; 32],
            entries: prompts
                .iter()
                .map(|&p| accepted_entry(miner, group(miner.public(), p)))
                .collect(),
            credits: vec![MinerCredit {
                miner: miner.public(),
                credited: credit,
            }],
        }
    }

    #[tokio::test]
    async fn one_bounded_archive_per_validator_and_only_agreed_entries_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let miner = Keypair::from_seed(&[5; 32]);
        let (a, b, liar) = (Hotkey([1; 32]), Hotkey([2; 32]), Hotkey([3; 32]));
        let mut validators = Vec::new();
        for (i, v) in [a, b, liar].into_iter().enumerate() {
            let store = StoreConfig::Local {
                dir: dir.path().join(format!("v{i}")),
            }
            .open()
            .unwrap();
            validators.push((v, store));
        }
        // The honest validators agree on groups 1 and 2; validator b also published an
        // older archive. The liar lists many archives, the largest far over the limit.
        validators[0]
            .1
            .put_archive(&sealed(a, &miner, &[1, 2], 2.0))
            .await
            .unwrap();
        validators[1]
            .1
            .put_archive(&sealed(b, &miner, &[7], 9.0))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        validators[1]
            .1
            .put_archive(&sealed(b, &miner, &[1, 2], 2.0))
            .await
            .unwrap();
        for k in 0..5u64 {
            let lie = sealed(liar, &miner, &[100 + k, 1], 1e6);
            validators[2].1.put_archive(&lie).await.unwrap();
        }
        let huge: Vec<u64> = (1_000..1_400).collect();
        validators[2]
            .1
            .put_archive(&sealed(liar, &miner, &huge, 1e9))
            .await
            .unwrap();
        let limit = 8_000;
        assert!(validators[2]
            .1
            .archive_objects(40)
            .await
            .unwrap()
            .iter()
            .any(|o| o.size > limit));

        let stakes = BTreeMap::from([(a, 40), (b, 35), (liar, 25)]);
        let mut archives = WindowArchives {
            stakes,
            read: BTreeMap::new(),
        };
        read_votes(&validators, 40, limit, &mut archives.read)
            .await
            .unwrap();
        assert_eq!(archives.read.len(), 3, "one archive per validator");
        assert!(archives.read.values().all(|r| r.object.size <= limit));
        assert!(
            archives.read.values().all(|r| r.header.entries.is_empty()),
            "entries dropped"
        );
        // Validator b's newest archive is the one read.
        assert_eq!(archives.read[&b].votes.len(), 2);
        let all = archives.stakes.clone();
        let agreed = archives.agreed(&all);
        assert_eq!(
            agreed.len(),
            2,
            "groups 1 and 2 (75 % of the stake); the liar's alone fail"
        );
        let entries = agreed_entries(&validators, 40, &archives, &agreed).await;
        let mut prompts: Vec<u64> = entries.iter().map(|e| e.group.header.prompt_id).collect();
        prompts.sort_unstable();
        assert_eq!(prompts, vec![1, 2]);
        assert_eq!(
            archives.credits(40, &all)[&miner.public()],
            2.0,
            "the liar's credit is outvoted"
        );
    }

    #[test]
    fn silent_validators_stop_counting_after_the_liveness_windows() {
        let (big, small, liar) = (Hotkey([1; 32]), Hotkey([2; 32]), Hotkey([3; 32]));
        let votes = |who: &[Hotkey]| WindowArchives {
            stakes: BTreeMap::from([(big, 60), (small, 30), (liar, 10)]),
            read: who
                .iter()
                .map(|v| {
                    let object = ArchiveObject {
                        digest: [0; 32],
                        size: 1,
                        last_modified: chrono::DateTime::UNIX_EPOCH,
                    };
                    let header = SealedWindow {
                        window: 0,
                        validator: *v,
                        checkpoint: [0; 32],
                        entries: Vec::new(),
                        credits: Vec::new(),
                    };
                    (
                        *v,
                        ArchiveVotes {
                            object,
                            votes: BTreeSet::from([[7; 32]]),
                            evidence: BTreeMap::new(),
                            header,
                        },
                    )
                })
                .collect(),
        };
        // 60 % of the stake never publishes; the other 30 % + 10 % vote for one group.
        let mut live = Liveness::new(3, 1.0 / 3.0);
        let quiet = votes(&[small, liar]);
        for window in [30, 60, 90] {
            let voters = live.voters(window, 30, &quiet);
            assert_eq!(
                voters.len(),
                3,
                "window {window}: the silent one still counts"
            );
            assert!(quiet.agreed(&voters).is_empty(), "40 of 100 is no majority");
        }
        let voters = live.voters(120, 30, &quiet);
        assert_eq!(
            voters.len(),
            2,
            "three silent windows: the big validator is inactive"
        );
        assert_eq!(quiet.agreed(&voters).len(), 1, "40 of the 40 active");
        // It counts again as soon as it publishes.
        assert_eq!(live.voters(150, 30, &votes(&[big])).len(), 3);
        // A 10 % minority left alone never reaches the one-third floor.
        let mut alone = Liveness::new(3, 1.0 / 3.0);
        let lonely = votes(&[liar]);
        for window in [30, 60, 90, 120, 150] {
            assert!(lonely.agreed(&alone.voters(window, 30, &lonely)).is_empty());
        }
    }
}
