//! The learning-zone counts validators report per stratum and miners read back.

use serde::{Deserialize, Serialize};

/// Accepted groups and how many of them were in the learning zone, for one stratum of
/// the environment (a validator's `/window/{n}/state` reports them per stratum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneCount {
    /// Accepted groups.
    pub groups: f64,
    /// Of which in the learning zone.
    pub in_zone: f64,
}

/// The stratum name validators report a client job's lane under.
pub fn job_stratum(job: &str) -> String {
    format!("job:{job}")
}
