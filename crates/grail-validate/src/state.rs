//! What the validator persists between runs (`validator-state.json`).

use std::collections::BTreeMap;
use std::path::Path;

use grail_proto::rules::bundle::ReplaySet;
use grail_proto::scoring::WorkHistory;
use serde::{Deserialize, Serialize};

use super::{Totals, VerdictHistory, WindowSummary};
use grail_node::{read_json, write_json, NodeError};

/// Everything the validator persists (`validator-state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidatorState {
    /// Last window processed.
    pub last_window: Option<u64>,
    /// Credited work per window and uid.
    pub work: WorkHistory,
    /// Work digests of earlier windows of the checkpoint in effect (replay detection).
    #[serde(default)]
    pub replay: ReplaySet,
    /// Summaries by window.
    pub windows: BTreeMap<u64, WindowSummary>,
    /// Every miner's verdicts of the last `validator.verdict_windows` windows.
    #[serde(default)]
    pub verdicts: VerdictHistory,
    /// Counts over every window sealed (the summaries of old windows go with retention).
    #[serde(default)]
    pub totals: Totals,
}

const STATE_FILE: &str = "validator-state.json";

impl ValidatorState {
    /// Loads the state from `dir` (empty when none).
    ///
    /// # Errors
    /// The file cannot be read or is not a state this code wrote.
    pub fn load(dir: &Path) -> Result<Self, NodeError> {
        let mut state: Self = read_json(&dir.join(STATE_FILE))?.unwrap_or_default();
        // A state written before the totals were kept: count the windows it has.
        if state.totals.windows == 0 {
            for s in state.windows.values() {
                state.totals.add(s);
            }
        }
        Ok(state)
    }

    /// Saves atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), NodeError> {
        write_json(&dir.join(STATE_FILE), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_from_before_the_totals_counts_its_windows_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = ValidatorState {
            last_window: Some(8),
            ..Default::default()
        };
        for window in [4, 8] {
            let mut s = WindowSummary {
                window,
                in_zone: 1,
                ..Default::default()
            };
            s.verdicts.insert("accepted".into(), 3);
            old.windows.insert(window, s);
        }
        let mut json = serde_json::to_value(&old).unwrap();
        let fields = json.as_object_mut().unwrap();
        fields.remove("totals");
        fields.remove("verdicts");
        write_json(&dir.path().join(STATE_FILE), &json).unwrap();
        let loaded = ValidatorState::load(dir.path()).unwrap();
        assert_eq!(loaded.totals.windows, 2);
        assert_eq!(loaded.totals.verdicts["accepted"], 6);
        assert_eq!(loaded.totals.in_zone, 2);
        assert!(loaded.verdicts.is_empty());
        // Saved with its totals, it loads the same again.
        loaded.save(dir.path()).unwrap();
        assert_eq!(
            ValidatorState::load(dir.path()).unwrap().totals,
            loaded.totals
        );
    }
}
