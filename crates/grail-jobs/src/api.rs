//! The v2 HTTP API's documents, shared by the validator's gateway, miners and clients
//! (docs/jobs.md is the reference).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The answer to `POST /v2/jobs` (201 for a new job, 200 for one already known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// The job's id.
    pub id: String,
    /// Its status path.
    pub status_url: String,
    /// Its canonical bytes' path.
    pub job_url: String,
    /// Its status now.
    pub status: Option<JobStatus>,
}

/// A job's status as `GET /v2/jobs/{id}` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job's id.
    pub id: String,
    /// `open`, `complete` or `expired`.
    pub state: String,
    /// When it was accepted (unix seconds).
    pub submitted_unix: u64,
    /// Its deadline.
    pub deadline_unix: u64,
    /// Groups asked for in all.
    pub groups_wanted: u64,
    /// Verified groups delivered in all.
    pub groups_delivered: u64,
    /// Rollouts delivered (groups × group size).
    pub rollouts_delivered: u64,
    /// Verified groups delivered per prompt.
    pub delivered_per_prompt: Vec<u32>,
    /// Rejected job groups by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Job groups that passed verification (delivered or not).
    pub accepted: u64,
    /// Share of the accepted groups in the learning zone (only those are delivered).
    pub in_zone_share: Option<f64>,
    /// What the job has consumed so far (docs/jobs.md, "Accounting and price").
    #[serde(default)]
    pub cost: JobCost,
}

/// A job's consumption: what a price would be computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCost {
    /// Credit units its delivered groups earned their miners (one per group, before the
    /// validator's `jobs.max_share` cap on all job work).
    pub credit_units: f64,
    /// Completion tokens sampled and proved in its delivered rollouts.
    pub completion_tokens: u64,
}

/// One open job as `jobs/index.json` and `GET /v2/jobs` list it (what miners read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The job's id.
    pub id: String,
    /// Its deadline.
    pub deadline_unix: u64,
    /// Groups each prompt still wants.
    #[serde(default)]
    pub remaining: Vec<u32>,
}

/// One verified rollout as a client receives it (`GET /v2/jobs/{id}/rollouts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredRollout {
    /// Position in the job's stream (0, 1, …): resume from the last one seen plus one.
    pub cursor: u64,
    /// The job.
    pub job: String,
    /// The window it was mined in.
    pub window: u64,
    /// The miner (SS58).
    pub miner: String,
    /// Index of the prompt in the job.
    pub prompt_index: u64,
    /// Index of the rollout in its group (rollouts of a group share prompt and group id).
    pub rollout: u32,
    /// A name for its group, shared by its rollouts (hex of a digest of the group).
    pub group: String,
    /// The rendered prompt's tokens.
    pub prompt_tokens: Vec<u32>,
    /// The completion's tokens.
    pub completion_tokens: Vec<u32>,
    /// The completion, decoded.
    pub completion: String,
    /// The validator's own log-probs of the completion tokens (temperature 1).
    pub logprobs: Vec<f32>,
    /// The job's reward, recomputed by the validator.
    pub reward: f64,
    /// The group-relative advantage.
    pub advantage: f64,
    /// Whether the reward reaches the job's pass threshold.
    pub success: bool,
    /// The sealed archive (bucket key in the validator's bucket) holding the group.
    pub archive: String,
}
