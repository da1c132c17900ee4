//! What the validator persists between runs (`validator-state.json`).

use std::collections::BTreeMap;
use std::path::Path;

use grail_proto::rules::bundle::ReplaySet;
use grail_proto::scoring::WorkHistory;
use serde::{Deserialize, Serialize};

use super::WindowSummary;
use crate::{read_json, write_json, NodeError};

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
}

const STATE_FILE: &str = "validator-state.json";

impl ValidatorState {
    /// Loads the state from `dir` (empty when none).
    pub fn load(dir: &Path) -> Result<Self, NodeError> {
        Ok(read_json(&dir.join(STATE_FILE))?.unwrap_or_default())
    }

    /// Saves atomically.
    pub fn save(&self, dir: &Path) -> Result<(), NodeError> {
        write_json(&dir.join(STATE_FILE), self)
    }
}
