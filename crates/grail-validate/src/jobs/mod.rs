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

pub use book::{BookLimits, JobBook};
pub use gateway::Gateway;
pub use keys::ApiKeys;
pub use watch::{JobWatch, WatchLimits};

use grail_node::config::JobsSettings;

impl BookLimits {
    /// The caps of `[jobs]` as the book applies them.
    pub fn of(settings: &JobsSettings) -> Self {
        Self {
            jobs_per_hour: settings.jobs_per_hour,
            open_per_client: settings.open_per_client,
            open_total: settings.open_total,
        }
    }
}

impl WatchLimits {
    /// The caps of `[jobs]` on other validators' jobs followed.
    pub fn of(settings: &JobsSettings) -> Self {
        Self {
            per_validator: settings.followed_per_validator,
            total: settings.followed_total,
        }
    }
}
