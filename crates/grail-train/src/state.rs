//! What the trainer persists between runs (`trainer-state.json`).

use std::path::Path;

use grail_grpo::StepReport;
use serde::{Deserialize, Serialize};

use grail_node::{read_json, write_json, NodeError};

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
    /// Retention: forgets the steps of windows before `first_kept` and the records of
    /// checkpoints in effect before it, always keeping the last `keep` records.
    pub fn prune_before(&mut self, first_kept: u64, keep: usize) {
        self.steps.retain(|s| s.window >= first_kept);
        let recent = self.published.len().saturating_sub(keep);
        let mut i = 0;
        self.published.retain(|p| {
            i += 1;
            i > recent || p.effective_window >= first_kept
        });
    }

    /// Loads from `dir`.
    ///
    /// # Errors
    /// The file cannot be read or is not a state this code wrote.
    pub fn load(dir: &Path) -> Result<Self, NodeError> {
        Ok(read_json(&dir.join(STATE_FILE))?.unwrap_or_default())
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
    fn retention_forgets_old_steps_and_records_but_keeps_the_last_checkpoints() {
        let step = |window| LoggedStep {
            window,
            report: StepReport {
                step: window,
                updates: window,
                learning_rate: 0.0,
                skipped: None,
                loss: 0.0,
                policy_loss: 0.0,
                kl: 0.0,
                entropy: 0.0,
                grad_norm: 0.0,
                clip_fraction: 0.0,
                drift_fraction: 0.0,
                mean_reward: 0.0,
                mean_abs_advantage: 0.0,
                tokens: 0,
                sequences: 0,
            },
        };
        let published = |number, effective_window| Published {
            number,
            digest: String::new(),
            trained_through: None,
            effective_window,
        };
        let mut state = TrainerState {
            last_window: Some(100),
            published: vec![
                published(0, 0),
                published(1, 40),
                published(2, 60),
                published(3, 120),
            ],
            steps: [20, 40, 60, 80, 100].map(step).to_vec(),
        };
        let dir = tempfile::tempdir().unwrap();
        state.save(dir.path()).unwrap();
        state.prune_before(60, 3);
        let windows: Vec<u64> = state.steps.iter().map(|s| s.window).collect();
        assert_eq!(windows, [60, 80, 100]);
        let numbers: Vec<u64> = state.published.iter().map(|p| p.number).collect();
        assert_eq!(
            numbers,
            [1, 2, 3],
            "the last three records stay, in effect or not"
        );
        state.prune_before(200, 1);
        assert!(state.steps.is_empty());
        assert_eq!(state.published.len(), 1);
        assert_eq!(state.published[0].number, 3);
        // What was saved before is untouched until the next save.
        assert_eq!(TrainerState::load(dir.path()).unwrap().steps.len(), 5);
    }
}
