//! The gateway's book of jobs: which client submitted what, how much of it has been
//! delivered, and the per-client limits. Pure state: the gateway feeds it the time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use grail_jobs::{Job, JobId};

/// Per-client and overall caps on submissions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BookLimits {
    /// New jobs one client may submit per hour.
    pub jobs_per_hour: u32,
    /// Jobs one client may have open (deadline not passed) at once.
    pub open_per_client: u32,
    /// Jobs open at once on this gateway, all clients together.
    pub open_total: u32,
}

impl Default for BookLimits {
    fn default() -> Self {
        Self::of(&grail_node::config::JobsSettings::default())
    }
}

/// What the book knows of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id (hex).
    pub id: String,
    /// Label of the client that submitted it first.
    pub client: String,
    /// When it was accepted (unix seconds).
    pub submitted_unix: u64,
    /// Its deadline (unix seconds).
    pub deadline_unix: u64,
    /// Rollouts per group.
    pub group_size: u32,
    /// Groups wanted per prompt.
    pub groups_per_prompt: u32,
    /// Verified groups delivered, per prompt.
    pub delivered: Vec<u32>,
    /// Rejected job groups by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Accepted groups in the learning zone (their rewards not all equal).
    pub in_zone: u64,
    /// Accepted groups (delivered or not).
    #[serde(default)]
    pub accepted: u64,
    /// Rollouts in the job's stream.
    #[serde(default)]
    pub rollouts: u64,
    /// Digests of the groups delivered (a group is never delivered twice).
    #[serde(default)]
    pub digests: std::collections::BTreeSet<String>,
    /// Completion tokens of the rollouts delivered.
    #[serde(default)]
    pub completion_tokens: u64,
}

impl JobRecord {
    /// `open` until the deadline or until every prompt has its groups, then `complete`
    /// or `expired`.
    pub fn state(&self, now: u64) -> &'static str {
        if self.delivered.iter().all(|&d| d >= self.groups_per_prompt) {
            "complete"
        } else if now >= self.deadline_unix {
            "expired"
        } else {
            "open"
        }
    }

    /// Groups each prompt still wants.
    pub fn remaining(&self) -> Vec<u32> {
        self.delivered
            .iter()
            .map(|&d| self.groups_per_prompt.saturating_sub(d))
            .collect()
    }

    /// Groups delivered in all.
    pub fn groups_delivered(&self) -> u64 {
        self.delivered.iter().map(|&d| u64::from(d)).sum()
    }
}

/// Why a submission is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client's hourly quota is used.
    #[error("{client} submitted {limit} jobs in the last hour; try again in {retry_after} s")]
    RateLimited {
        /// The client.
        client: String,
        /// The quota.
        limit: u32,
        /// Seconds until a slot frees.
        retry_after: u64,
    },
    /// The client has too many open jobs.
    #[error("{client} has {limit} open jobs; wait for one to complete or expire")]
    TooManyOpen {
        /// The client.
        client: String,
        /// The cap.
        limit: u32,
    },
    /// The gateway is full.
    #[error("this gateway has {limit} open jobs, its limit; try later or another validator")]
    GatewayFull {
        /// The cap.
        limit: u32,
    },
}

/// Whether a submission made a new job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A new job.
    New,
    /// The same job (same id) was already in the book: nothing changes.
    Known,
}

/// Every job this gateway accepted, and each client's recent submissions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobBook {
    /// By id (hex).
    pub jobs: BTreeMap<String, JobRecord>,
    /// Unix times of each client's new jobs in the last hour.
    pub recent: BTreeMap<String, Vec<u64>>,
}

impl JobBook {
    /// Whether `client` may add `job` at `now` (nothing changes).
    pub fn check(
        &self,
        client: &str,
        job: &Job,
        now: u64,
        limits: &BookLimits,
    ) -> Result<Admission, Refusal> {
        if self.jobs.contains_key(&job.id().to_string()) {
            return Ok(Admission::Known);
        }
        let recent: Vec<u64> = self
            .recent
            .get(client)
            .map(|t| t.iter().copied().filter(|&t| t + 3_600 > now).collect())
            .unwrap_or_default();
        if recent.len() >= limits.jobs_per_hour as usize {
            let oldest = recent.iter().copied().min().unwrap_or(now);
            return Err(Refusal::RateLimited {
                client: client.into(),
                limit: limits.jobs_per_hour,
                retry_after: (oldest + 3_600).saturating_sub(now).max(1),
            });
        }
        let open = |r: &&JobRecord| r.state(now) == "open";
        let mine = self
            .jobs
            .values()
            .filter(open)
            .filter(|r| r.client == client)
            .count();
        if mine >= limits.open_per_client as usize {
            return Err(Refusal::TooManyOpen {
                client: client.into(),
                limit: limits.open_per_client,
            });
        }
        if self.jobs.values().filter(open).count() >= limits.open_total as usize {
            return Err(Refusal::GatewayFull {
                limit: limits.open_total,
            });
        }
        Ok(Admission::New)
    }

    /// Records a job [`Self::check`] admitted as new.
    pub fn record(&mut self, client: &str, job: &Job, now: u64) {
        let id = job.id().to_string();
        let recent = self.recent.entry(client.into()).or_default();
        recent.retain(|&t| t + 3_600 > now);
        recent.push(now);
        self.jobs.entry(id.clone()).or_insert_with(|| JobRecord {
            id,
            client: client.into(),
            submitted_unix: now,
            deadline_unix: job.deadline_unix,
            group_size: job.group_size,
            groups_per_prompt: job.groups_per_prompt,
            delivered: vec![0; job.prompts.len()],
            rejected: BTreeMap::new(),
            in_zone: 0,
            accepted: 0,
            rollouts: 0,
            digests: Default::default(),
            completion_tokens: 0,
        });
    }

    /// The open jobs at `now`, by id.
    pub fn open(&self, now: u64) -> Vec<JobId> {
        self.jobs
            .values()
            .filter(|r| r.state(now) == "open")
            .filter_map(|r| r.id.parse().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::job;

    #[test]
    fn clients_are_held_to_their_quotas() {
        let limits = BookLimits {
            jobs_per_hour: 2,
            open_per_client: 3,
            open_total: 4,
        };
        let mut book = JobBook::default();
        for n in 0..2 {
            assert_eq!(book.check("a", &job(n), 1_000, &limits), Ok(Admission::New));
            book.record("a", &job(n), 1_000);
        }
        // Resubmitting a known job is free; a third new one within the hour is not.
        assert_eq!(
            book.check("a", &job(0), 1_001, &limits),
            Ok(Admission::Known)
        );
        match book.check("a", &job(2), 1_500, &limits) {
            Err(Refusal::RateLimited { retry_after, .. }) => assert_eq!(retry_after, 3_100),
            other => panic!("{other:?}"),
        }
        // An hour later the quota is back, but the open-job cap holds.
        book.record("a", &job(2), 4_700);
        assert!(matches!(
            book.check("a", &job(3), 4_700, &limits),
            Err(Refusal::TooManyOpen { .. })
        ));
        book.record("b", &job(3), 4_700);
        assert!(matches!(
            book.check("c", &job(4), 4_700, &limits),
            Err(Refusal::GatewayFull { .. })
        ));
        // After the deadline the jobs are expired and no longer count as open.
        assert_eq!(book.jobs[&job(0).id().to_string()].state(10_000), "expired");
        assert!(book.open(10_000).is_empty());
        assert_eq!(
            book.check("c", &job(4), 10_000, &limits),
            Ok(Admission::New)
        );
        assert_eq!(book.open(4_700).len(), 4);
    }
}
