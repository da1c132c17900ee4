//! Per-miner feedback: what the validator decided about each miner in its last windows
//! (bundle status, groups submitted and checked, every checked group's reason, credited
//! work, whether the window was zeroed), persisted with the state and served as
//! `GET /verdicts/{hotkey}`. Bounded: `validator.verdict_windows` windows, at most
//! [`MAX_GROUPS_PER_WINDOW`] group verdicts per miner and window, details cut at
//! [`MAX_DETAIL_CHARS`].

use std::collections::BTreeMap;

use grail_proto::rules::{Consequence, Reason};
use serde::{Deserialize, Serialize};

use crate::verify::MinerReport;

/// Most group verdicts kept per miner and window (the counts by reason cover them all).
pub const MAX_GROUPS_PER_WINDOW: usize = 16;

/// Longest detail kept (characters).
pub const MAX_DETAIL_CHARS: usize = 200;

/// `text` cut to [`MAX_DETAIL_CHARS`] characters (an ellipsis marks a cut).
fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    out.push('…');
    out
}

/// One checked group's verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupVerdict {
    /// Index of the group in the bundle.
    pub index: u32,
    /// Its prompt id.
    pub prompt_id: u64,
    /// Whether it counts.
    pub accepted: bool,
    /// The reason (`accepted`, or the first failed check: docs/running.md, Verdicts).
    pub reason: String,
    /// Detail of the reason (distances, counts), cut to [`MAX_DETAIL_CHARS`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Whether its reward spread is in the learning zone (accepted groups).
    #[serde(default)]
    pub in_zone: bool,
}

/// What the validator decided about one miner in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinerWindow {
    /// The window.
    pub window: u64,
    /// The miner's uid then.
    pub uid: u16,
    /// Checkpoint number in effect.
    pub checkpoint: Option<u64>,
    /// `accepted` when the bundle was read and decoded, else the bundle-level reason.
    pub bundle_status: String,
    /// Detail of the bundle status (cut to [`MAX_DETAIL_CHARS`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bundle_detail: String,
    /// Groups in the bundle.
    pub groups_submitted: u64,
    /// Groups that passed every check run on all groups and were not void.
    pub groups_eligible: u64,
    /// Groups with a verdict (a failed check on all groups, void groups, the spot checks).
    pub groups_checked: u64,
    /// Verdicts by reason, over every checked group.
    pub verdicts: BTreeMap<String, u64>,
    /// The checked groups' verdicts in bundle order, at most [`MAX_GROUPS_PER_WINDOW`]
    /// (verdicts that zero the window or come from a forward pass first, then voids).
    pub groups: Vec<GroupVerdict>,
    /// Checked groups left out of `groups` by the cap.
    #[serde(default)]
    pub groups_omitted: u64,
    /// Work credited for the window (0 when zeroed).
    pub credited: f64,
    /// Whether a failed check zeroed the window.
    pub zeroed: bool,
}

impl MinerWindow {
    /// The record of `report` in `window` under checkpoint `checkpoint`.
    pub fn from_report(window: u64, checkpoint: Option<u64>, report: &MinerReport) -> Self {
        let verdicts = report.verdict_counts();
        // Void groups (replays) can be many; the verdicts that decide the window
        // are kept first.
        let void = |reason: &str| {
            reason
                .parse::<Reason>()
                .is_ok_and(|r| r.consequence() == Consequence::Void)
        };
        let mut kept: Vec<&crate::verify::CheckedGroup> = report.checked.iter().collect();
        kept.sort_by_key(|c| (void(&c.outcome.verdict.reason), c.index));
        kept.truncate(MAX_GROUPS_PER_WINDOW);
        kept.sort_by_key(|c| c.index);
        MinerWindow {
            window,
            uid: report.uid,
            checkpoint,
            bundle_status: report.bundle_status.clone(),
            bundle_detail: clip(&report.detail),
            groups_submitted: report.groups_submitted as u64,
            groups_eligible: report.eligible as u64,
            groups_checked: report.groups_with_verdict(),
            verdicts,
            groups: kept
                .iter()
                .map(|c| GroupVerdict {
                    index: c.index,
                    prompt_id: c.group.header.prompt_id,
                    accepted: c.outcome.verdict.accepted,
                    reason: c.outcome.verdict.reason.clone(),
                    detail: clip(&c.outcome.verdict.detail),
                    in_zone: c.outcome.in_zone,
                })
                .collect(),
            groups_omitted: report.groups_with_verdict() - kept.len() as u64,
            credited: report.credited,
            zeroed: report.zeroed(),
        }
    }
}

/// Every miner's last windows, by hotkey (SS58), then window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VerdictHistory {
    miners: BTreeMap<String, BTreeMap<u64, MinerWindow>>,
}

impl VerdictHistory {
    /// Records the reports of `window` (replacing what an earlier run recorded for it).
    pub fn record(&mut self, window: u64, checkpoint: Option<u64>, reports: &[MinerReport]) {
        for r in reports {
            self.miners
                .entry(r.hotkey.to_ss58())
                .or_default()
                .insert(window, MinerWindow::from_report(window, checkpoint, r));
        }
    }

    /// Forgets the windows before `first_kept` (and miners with none left).
    pub fn prune_before(&mut self, first_kept: u64) {
        self.miners.retain(|_, windows| {
            windows.retain(|&w, _| w >= first_kept);
            !windows.is_empty()
        });
    }

    /// A miner's windows, oldest first; `None` when none is recorded.
    pub fn miner(&self, ss58: &str) -> Option<Vec<MinerWindow>> {
        self.miners
            .get(ss58)
            .map(|windows| windows.values().cloned().collect())
    }

    /// Miners with at least one recorded window.
    pub fn len(&self) -> usize {
        self.miners.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.miners.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use grail_proto::Hotkey;

    use super::*;
    use crate::testing::report;

    #[test]
    fn a_window_record_keeps_reasons_caps_groups_and_clips_details() {
        let miner = Hotkey([1; 32]);
        // 20 void replays before the one failure that zeroes the window.
        let mut reasons = vec!["replay"; 20];
        reasons.push("proof_failed");
        let r = report(miner, 3, &reasons);
        let w = MinerWindow::from_report(40, Some(2), &r);
        assert!(w.zeroed);
        assert_eq!(w.credited, 0.0);
        assert_eq!((w.window, w.uid, w.checkpoint), (40, 3, Some(2)));
        assert_eq!(w.groups_checked, 21);
        assert_eq!(w.verdicts["replay"], 20);
        assert_eq!(w.verdicts["proof_failed"], 1);
        assert_eq!(w.groups.len(), MAX_GROUPS_PER_WINDOW);
        assert_eq!(w.groups_omitted, 21 - MAX_GROUPS_PER_WINDOW as u64);
        // The zeroing verdict survives the cap; the list stays in bundle order.
        assert_eq!(w.groups.last().unwrap().reason, "proof_failed");
        assert_eq!(w.groups.last().unwrap().prompt_id, 120);
        assert!(w.groups.windows(2).all(|p| p[0].index < p[1].index));
        assert_eq!(w.groups[0].detail.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(w.groups[0].detail.ends_with('…'));

        let ok = MinerWindow::from_report(40, Some(2), &report(miner, 3, &["accepted"; 2]));
        assert!(!ok.zeroed);
        assert_eq!(ok.credited, 1.5);
        assert!(ok.groups.iter().all(|g| g.accepted && g.in_zone));
        assert_eq!(ok.groups_omitted, 0);
    }

    #[test]
    fn the_history_replaces_a_rerun_window_and_prunes_old_ones() {
        let (a, b) = (Hotkey([1; 32]), Hotkey([2; 32]));
        let mut h = VerdictHistory::default();
        h.record(10, Some(0), &[report(a, 1, &["accepted"])]);
        h.record(
            20,
            Some(0),
            &[report(a, 1, &["accepted"]), report(b, 2, &[])],
        );
        h.record(20, Some(0), &[report(a, 1, &["replay"]), report(b, 2, &[])]);
        let windows = h.miner(&a.to_ss58()).unwrap();
        assert_eq!(
            windows.iter().map(|w| w.window).collect::<Vec<_>>(),
            [10, 20]
        );
        assert_eq!(windows[1].groups[0].reason, "replay");
        assert_eq!(h.len(), 2);
        h.prune_before(20);
        assert_eq!(h.miner(&a.to_ss58()).unwrap().len(), 1);
        h.prune_before(30);
        assert!(h.is_empty());
        assert_eq!(h.miner(&a.to_ss58()), None);
        // It round-trips through the state file's JSON.
        h.record(30, None, &[report(b, 2, &["accepted"])]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<VerdictHistory>(&json).unwrap(), h);
    }
}
