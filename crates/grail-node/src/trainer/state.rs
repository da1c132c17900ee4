//! What the trainer persists between runs (`trainer-state.json`).

use std::path::Path;

use grail_grpo::StepReport;
use serde::{Deserialize, Serialize};

use crate::{read_json, write_json, NodeError};

/// One published checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Number.
    pub number: u64,
    /// Manifest digest (hex).
    pub digest: String,
    /// Last window trained on.
    pub trained_through: Option<u64>,
    /// First window that must use it.
    pub effective_window: u64,
}

/// One optimizer step, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedStep {
    /// The window whose archives it used.
    pub window: u64,
    /// The report.
    pub report: StepReport,
}

/// What the trainer persists (`trainer-state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Last window read.
    pub last_window: Option<u64>,
    /// Published checkpoints, oldest first.
    pub published: Vec<Published>,
    /// Steps taken.
    pub steps: Vec<LoggedStep>,
}

const STATE_FILE: &str = "trainer-state.json";

impl TrainerState {
    /// Loads from `dir`.
    pub fn load(dir: &Path) -> Result<Self, NodeError> {
        Ok(read_json(&dir.join(STATE_FILE))?.unwrap_or_default())
    }

    /// Saves atomically.
    pub fn save(&self, dir: &Path) -> Result<(), NodeError> {
        write_json(&dir.join(STATE_FILE), self)
    }
}
