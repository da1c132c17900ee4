//! The v2 job gateway a validator serves: clients submit jobs (`POST /v2/jobs`) with an
//! API key, read their status (`GET /v2/jobs/{id}`) and anyone reads a job's canonical
//! bytes (`GET /v2/jobs/{id}/job`, also in the validator's bucket at `jobs/{id}.job`).
//!
//! - [`keys`] — API keys from a key file, kept as digests, never logged.
//! - [`book`] — the jobs accepted, delivery accounting, per-client limits (pure state).
//! - [`gateway`] — the HTTP handlers and their store writes.
//! - [`delivery`] — what one window of a job's lane delivers and credits (pure).
//! - [`watch`] — other validators' jobs, verified and credited here too.
//!
//! The job format, reward sandbox and caps are grail-jobs'; docs/jobs.md is the reference.

pub mod book;
pub mod delivery;
pub mod gateway;
pub mod keys;
pub mod watch;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use book::{BookLimits, JobBook};
pub use gateway::Gateway;
pub use keys::ApiKeys;
pub use watch::{JobWatch, WatchLimits};

/// `[jobs]`: the validator's job gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSettings {
    /// Serve the gateway on the validator's HTTP API.
    pub enabled: bool,
    /// The API key file (`label key` per line); required when enabled.
    pub api_keys_file: Option<PathBuf>,
    /// New jobs one client may submit per hour.
    pub jobs_per_hour: u32,
    /// Jobs one client may have open at once.
    pub open_per_client: u32,
    /// Jobs open at once on this gateway.
    pub open_total: u32,
    /// Job groups of one miner checked with a forward pass per job and window (every
    /// delivered group is one of them; more groups earn nothing).
    pub lane_groups_checked: usize,
    /// Most of a window's credit that job work may take, all jobs together (the rest is
    /// the subnet's training work): job credits are scaled down to fit.
    pub max_share: f64,
    /// Verify and credit the open jobs of other validators' gateways too (read from their
    /// buckets), so that job work counts in every validator's weights.
    pub follow_others: bool,
    /// Open jobs of one other validator followed (its first by id).
    pub followed_per_validator: usize,
    /// Open jobs of other validators followed in all.
    pub followed_total: usize,
}

impl Default for JobsSettings {
    fn default() -> Self {
        let l = BookLimits::default();
        Self {
            enabled: false,
            api_keys_file: None,
            jobs_per_hour: l.jobs_per_hour,
            open_per_client: l.open_per_client,
            open_total: l.open_total,
            lane_groups_checked: 16,
            max_share: 0.25,
            follow_others: true,
            followed_per_validator: 8,
            followed_total: 32,
        }
    }
}

impl JobsSettings {
    /// The caps as the book applies them.
    pub fn limits(&self) -> BookLimits {
        BookLimits {
            jobs_per_hour: self.jobs_per_hour,
            open_per_client: self.open_per_client,
            open_total: self.open_total,
        }
    }

    /// The caps on other validators' jobs followed.
    pub fn watch_limits(&self) -> WatchLimits {
        WatchLimits {
            per_validator: self.followed_per_validator,
            total: self.followed_total,
        }
    }

    /// Rejects an enabled gateway without keys.
    pub fn validate(&self) -> Result<(), crate::NodeError> {
        if !(0.0..=0.9).contains(&self.max_share) {
            return Err(crate::NodeError::Config(format!(
                "jobs.max_share = {} must be in [0, 0.9] (training work keeps at least a tenth)",
                self.max_share
            )));
        }
        if self.lane_groups_checked == 0 {
            return Err(crate::NodeError::Config(
                "jobs.lane_groups_checked must be at least 1".into(),
            ));
        }
        if self.enabled && self.api_keys_file.is_none() {
            return Err(crate::NodeError::Config(
                "jobs.enabled needs jobs.api_keys_file (a file of `label key` lines)".into(),
            ));
        }
        Ok(())
    }
}
