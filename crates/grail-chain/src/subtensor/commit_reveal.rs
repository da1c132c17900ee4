//! Hash-based commit-reveal of weights, as Subtensor runs it where a subnet enables it
//! (`CommitRevealWeightsEnabled`): `commit_weights(netuid, hash)` now, and
//! `reveal_weights(netuid, uids, values, salt, version_key)` in the reveal window, the
//! hash being [`super::weights_commit_hash`] of exactly those values. The pure part — which
//! commit is due, whether a new one is allowed — lives here; [`super::SubtensorChain`]
//! reads the chain and submits.
//!
//! Two runtimes time reveals differently:
//! - 2024 (the recorded metadata): one commit per hotkey (`WeightCommits` =
//!   `(hash, block)`), revealed in the `WeightCommitRevealInterval`-block interval after
//!   the one it was made in; a new commit is allowed once per interval.
//! - since 2025: a queue of up to 10 commits (`(hash, epoch, block, _)`), each revealed in
//!   epoch `commit epoch + RevealPeriodEpochs` (`SubnetEpochIndex` counts epochs);
//!   revealing one drops every older one.
//!
//! The SDK's default since 2025 is a *timelocked* commit (`commit_timelocked_weights`,
//! drand timelock encryption, revealed by the chain itself). grail does not implement that
//! encryption; where a runtime offers only timelocked commits, committing is a typed
//! [`crate::ChainError::CommitReveal`] error ([`CommitRevealError::TimelockOnly`]).

/// Why weights cannot be committed on a commit-reveal subnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitRevealError {
    /// The runtime offers no hash commits, only timelocked ones grail does not implement.
    #[error(
        "the subnet has commit-reveal enabled and this runtime offers no hash commits (commit_weights/reveal_weights); it offers {timelocked:?}, which need drand timelock encryption that grail does not implement"
    )]
    TimelockOnly {
        /// The timelocked commit calls the runtime offers.
        timelocked: Vec<String>,
    },
    /// The runtime has none of the storage items that time reveals.
    #[error(
        "the runtime has neither WeightCommitRevealInterval nor SubnetEpochIndex/RevealPeriodEpochs: unknown reveal schedule"
    )]
    UnknownSchedule,
    /// A commit was already made in this interval (2024 runtime): retry from `next_block`.
    #[error(
        "a commit was already made in this {interval}-block interval (block {committed_at}); the next is allowed from block {next_block}"
    )]
    IntervalUsed {
        /// `WeightCommitRevealInterval` (blocks).
        interval: u64,
        /// The block of the commit on chain.
        committed_at: u64,
        /// The first block a new commit is allowed at.
        next_block: u64,
    },
    /// The hotkey has as many unrevealed commits on chain as the runtime allows.
    #[error("{live} unrevealed commits on chain (the runtime allows {max})")]
    TooManyUnrevealed {
        /// Unexpired commits on chain.
        live: usize,
        /// The runtime's limit ([`MAX_UNREVEALED`]).
        max: usize,
    },
}

/// How the runtime times reveals, read at one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevealSchedule {
    /// 2024: a commit made at block `b` is revealed in `[s + interval, s + 2·interval)`,
    /// `s = b − b mod interval`.
    Interval {
        /// `WeightCommitRevealInterval` (blocks; 0: never revealable).
        interval: u64,
        /// The current block.
        block: u64,
    },
    /// Since 2025: a commit made in epoch `e` is revealed in epoch `e + reveal_period`.
    Epochs {
        /// `SubnetEpochIndex`.
        epoch: u64,
        /// `RevealPeriodEpochs`.
        reveal_period: u64,
    },
}

/// Where a commit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevealTiming {
    /// Its reveal window has not come.
    Early,
    /// It can be revealed now.
    Due,
    /// Its window is over; the chain has dropped or will drop it.
    Expired,
}

impl RevealSchedule {
    /// Where a commit made at `at` (a block, or an epoch) stands now.
    pub fn timing(&self, at: u64) -> RevealTiming {
        match *self {
            RevealSchedule::Interval { interval: 0, .. } => RevealTiming::Early,
            RevealSchedule::Interval { interval, block } => {
                let start = (at - at % interval).saturating_add(interval);
                if block < start {
                    RevealTiming::Early
                } else if block < start.saturating_add(interval) {
                    RevealTiming::Due
                } else {
                    RevealTiming::Expired
                }
            }
            RevealSchedule::Epochs {
                epoch,
                reveal_period,
            } => {
                let target = at.saturating_add(reveal_period);
                match epoch.cmp(&target) {
                    std::cmp::Ordering::Less => RevealTiming::Early,
                    std::cmp::Ordering::Equal => RevealTiming::Due,
                    std::cmp::Ordering::Greater => RevealTiming::Expired,
                }
            }
        }
    }

    /// Whether the chain takes a new commit given the hotkey's commits on chain
    /// (`(hash, at)`), and if not, why ([`CommitRevealError::IntervalUsed`] or
    /// [`CommitRevealError::TooManyUnrevealed`]).
    pub fn can_commit(&self, on_chain: &[([u8; 32], u64)]) -> Result<(), CommitRevealError> {
        match *self {
            RevealSchedule::Interval { interval, block } => {
                let Some(&(_, at)) = on_chain.last() else {
                    return Ok(());
                };
                if interval == 0 || block - block % interval > at - at % interval {
                    Ok(())
                } else {
                    Err(CommitRevealError::IntervalUsed {
                        interval,
                        committed_at: at,
                        next_block: at - at % interval + interval,
                    })
                }
            }
            RevealSchedule::Epochs { .. } => {
                let live = on_chain
                    .iter()
                    .filter(|(_, at)| self.timing(*at) != RevealTiming::Expired)
                    .count();
                if live < MAX_UNREVEALED {
                    Ok(())
                } else {
                    Err(CommitRevealError::TooManyUnrevealed {
                        live,
                        max: MAX_UNREVEALED,
                    })
                }
            }
        }
    }
}

/// Unrevealed commits a hotkey may have on chain (since 2025; `TooManyUnrevealedCommits`).
pub const MAX_UNREVEALED: usize = 10;

/// Weights committed by this process and not revealed yet: what the reveal must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommit {
    /// The committing hotkey.
    pub hotkey: [u8; 32],
    /// The committed hash.
    pub hash: [u8; 32],
    /// The weights.
    pub weights: Vec<(u16, u16)>,
    /// The salt.
    pub salt: Vec<u16>,
    /// The version key.
    pub version_key: u64,
}

/// What to do with a hotkey's pending commits now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevealPlan {
    /// The pending commit to reveal (index into the pending list): the newest due one.
    pub reveal: Option<usize>,
    /// Pending commits to keep for later (not due yet, and not dropped by the reveal).
    pub keep: Vec<usize>,
}

/// Which of `pending` to reveal now given the hotkey's commits on chain (`(hash, at)`,
/// oldest first) and the schedule. Pending commits the chain no longer holds (revealed,
/// expired, replaced) or that are expired are dropped, and so are those older than the
/// revealed one (the chain drops them with it).
pub fn plan_reveal(
    pending: &[PendingCommit],
    on_chain: &[([u8; 32], u64)],
    schedule: &RevealSchedule,
) -> RevealPlan {
    let mut due: Option<(usize, usize)> = None;
    let mut early = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        let Some(position) = on_chain.iter().position(|(h, _)| *h == p.hash) else {
            continue;
        };
        match schedule.timing(on_chain[position].1) {
            RevealTiming::Due if due.is_none_or(|(_, best)| position > best) => {
                due = Some((i, position))
            }
            RevealTiming::Due | RevealTiming::Expired => {}
            RevealTiming::Early => early.push((i, position)),
        }
    }
    let revealed_position = due.map(|(_, position)| position);
    RevealPlan {
        reveal: due.map(|(i, _)| i),
        keep: early
            .into_iter()
            .filter(|(_, position)| revealed_position.is_none_or(|r| *position > r))
            .map(|(i, _)| i)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(tag: u8) -> PendingCommit {
        PendingCommit {
            hotkey: [1; 32],
            hash: [tag; 32],
            weights: vec![(0, 65535)],
            salt: vec![tag.into()],
            version_key: 3,
        }
    }

    #[test]
    fn interval_schedule_matches_the_2024_runtime() {
        // Interval 100: a commit at block 250 is revealed in [300, 400).
        let at = |block| RevealSchedule::Interval {
            interval: 100,
            block,
        };
        assert_eq!(at(299).timing(250), RevealTiming::Early);
        assert_eq!(at(300).timing(250), RevealTiming::Due);
        assert_eq!(at(399).timing(250), RevealTiming::Due);
        assert_eq!(at(400).timing(250), RevealTiming::Expired);
        let never = RevealSchedule::Interval {
            interval: 0,
            block: 10_000,
        };
        assert_eq!(never.timing(5), RevealTiming::Early);
        // One commit per interval.
        assert_eq!(
            at(299).can_commit(&[([0; 32], 250)]),
            Err(CommitRevealError::IntervalUsed {
                interval: 100,
                committed_at: 250,
                next_block: 300
            })
        );
        assert!(at(300).can_commit(&[([0; 32], 250)]).is_ok());
        assert!(at(299).can_commit(&[]).is_ok());
    }

    #[test]
    fn epoch_schedule_matches_the_current_runtime() {
        let now = |epoch| RevealSchedule::Epochs {
            epoch,
            reveal_period: 2,
        };
        assert_eq!(now(6).timing(5), RevealTiming::Early);
        assert_eq!(now(7).timing(5), RevealTiming::Due);
        assert_eq!(now(8).timing(5), RevealTiming::Expired);
        let full: Vec<([u8; 32], u64)> = (0..10).map(|i| ([i; 32], 7)).collect();
        assert_eq!(
            now(7).can_commit(&full),
            Err(CommitRevealError::TooManyUnrevealed { live: 10, max: 10 })
        );
        // Expired commits do not count (the chain drops them first).
        assert!(now(10).can_commit(&full).is_ok());
    }

    #[test]
    fn the_newest_due_commit_is_revealed_and_older_ones_dropped() {
        let schedule = RevealSchedule::Epochs {
            epoch: 7,
            reveal_period: 1,
        };
        let list = [pending(1), pending(2), pending(3), pending(4), pending(9)];
        // On chain: 1 expired (epoch 5), 2 and 3 due (epoch 6), 4 early (epoch 7); 9 is
        // not on chain (revealed or replaced).
        let on_chain = [([1; 32], 5), ([2; 32], 6), ([3; 32], 6), ([4; 32], 7)];
        let plan = plan_reveal(&list, &on_chain, &schedule);
        assert_eq!(plan.reveal, Some(2));
        assert_eq!(plan.keep, vec![3]);
        // Nothing due: keep the early ones only.
        let later = plan_reveal(&list[3..], &on_chain, &schedule);
        assert_eq!(
            later,
            RevealPlan {
                reveal: None,
                keep: vec![0]
            }
        );
        assert_eq!(
            plan_reveal(&[], &on_chain, &schedule),
            RevealPlan::default()
        );
    }
}
