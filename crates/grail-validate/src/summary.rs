//! The per-window summary a validator keeps, serves and persists.

use std::collections::BTreeMap;

use grail_env::Environment;
use serde::{Deserialize, Serialize};

use crate::verify::{verdict_counts, MinerReport};
use grail_node::zone::ZoneCount;

/// Bins of the σ histogram (0.05 wide, last bin open).
const SIGMA_BINS: usize = 10;

/// What happened in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// The window.
    pub window: u64,
    /// Checkpoint number in effect.
    pub checkpoint: Option<u64>,
    /// Bundle outcomes by reason (`accepted` = read and decoded).
    pub bundles: BTreeMap<String, u64>,
    /// Groups in the bundles read.
    pub groups_submitted: u64,
    /// Groups checked.
    pub groups_checked: u64,
    /// Checked groups by reason.
    pub verdicts: BTreeMap<String, u64>,
    /// Accepted groups in the learning zone.
    pub in_zone: u64,
    /// Miners whose window a failed check zeroed.
    #[serde(default)]
    pub zeroed: u64,
    /// Work credited to miners (estimated in-zone groups, summed).
    #[serde(default)]
    pub credited_work: f64,
    /// Credit for client job groups delivered (own and followed jobs), after the
    /// `jobs.max_share` cap; part of the window's work beside `credited_work`.
    #[serde(default)]
    pub job_credit: f64,
    /// Mean reward of accepted rollouts.
    pub mean_reward: f64,
    /// σ histogram of accepted groups (bins of 0.05, last bin open).
    pub sigma_histogram: Vec<u64>,
    /// Checked groups per prompt id.
    pub prompts: BTreeMap<u64, u64>,
    /// Accepted groups and in-zone groups per stratum of the environment (tier or mix
    /// part): where miners find the learning zone.
    #[serde(default)]
    pub strata: BTreeMap<String, ZoneCount>,
    /// Weights set after this window, as `(uid, u16)`.
    pub weights: Vec<(u16, u16)>,
    /// SHA-256 of the sealed archive (hex).
    pub archive: String,
    /// Why the window could not be validated, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts over every window sealed since the state began: what the Prometheus counters
/// show, kept when retention forgets the windows themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Windows counted.
    pub windows: u64,
    /// Bundle outcomes by reason.
    pub bundles: BTreeMap<String, u64>,
    /// Checked groups by reason.
    pub verdicts: BTreeMap<String, u64>,
    /// Accepted groups in the learning zone.
    pub in_zone: u64,
}

impl Totals {
    /// Counts one window's summary.
    pub fn add(&mut self, s: &WindowSummary) {
        self.windows += 1;
        for (r, n) in &s.bundles {
            *self.bundles.entry(r.clone()).or_default() += n;
        }
        for (r, n) in &s.verdicts {
            *self.verdicts.entry(r.clone()).or_default() += n;
        }
        self.in_zone += s.in_zone;
    }
}

/// Summarises reports (`env` names the stratum of each group).
pub fn summarize(
    window: u64,
    checkpoint: Option<u64>,
    reports: &[MinerReport],
    env: &dyn Environment,
) -> WindowSummary {
    let mut s = WindowSummary {
        window,
        checkpoint,
        sigma_histogram: vec![0; SIGMA_BINS],
        ..Default::default()
    };
    let (mut reward_sum, mut rollouts) = (0.0, 0u64);
    for r in reports {
        *s.bundles.entry(r.bundle_status.clone()).or_default() += 1;
        s.groups_submitted += r.groups_submitted as u64;
        s.zeroed += u64::from(r.zeroed());
        s.credited_work += r.credited;
        s.groups_checked += r.replays_not_kept;
        for c in &r.checked {
            s.groups_checked += 1;
            *s.prompts.entry(c.group.header.prompt_id).or_default() += 1;
            if c.outcome.verdict.accepted {
                s.in_zone += u64::from(c.outcome.in_zone);
                let stratum = s
                    .strata
                    .entry(env.stratum(c.group.header.prompt_id))
                    .or_default();
                stratum.groups += 1.0;
                stratum.in_zone += f64::from(u8::from(c.outcome.in_zone));
                reward_sum += c.outcome.rewards.iter().sum::<f64>();
                rollouts += c.outcome.rewards.len() as u64;
                let sigma = grail_proto::grpo::population_sigma(&c.outcome.rewards);
                let bin = ((sigma / 0.05) as usize).min(SIGMA_BINS - 1);
                s.sigma_histogram[bin] += 1;
            }
        }
    }
    s.verdicts = verdict_counts(reports);
    s.mean_reward = if rollouts > 0 {
        reward_sum / rollouts as f64
    } else {
        0.0
    };
    s
}
