//! Prompt strategies: which prompt ids a miner tries in a window — pseudo-random from its
//! hotkey, or targeting the learning zone from the validators' per-stratum reports.

use std::collections::BTreeMap;

use grail_env::{Environment, PromptSpace};
use grail_node::zone::ZoneCount;
use grail_proto::prf::{stream, uniform_below};
use grail_proto::signing::Keypair;
use rand_core::RngCore;

pub use grail_node::zone::job_stratum;

/// Chooses a miner's prompt ids for a window.
pub trait PromptStrategy: Send {
    /// The next prompt id of `env` to try in `window`.
    fn next(&mut self, window: u64, env: &dyn Environment) -> u64;
}

/// Pseudo-random prompt ids from the miner's hotkey and the window: different miners try
/// different prompts, the same miner is reproducible.
pub struct PseudoRandomPrompts {
    hotkey: [u8; 32],
    window: u64,
    stream: Option<rand_chacha::ChaCha20Rng>,
}

impl PseudoRandomPrompts {
    /// For `key`.
    pub fn new(key: &Keypair) -> Self {
        Self {
            hotkey: key.public().0,
            window: u64::MAX,
            stream: None,
        }
    }

    fn rng(&mut self, window: u64) -> &mut rand_chacha::ChaCha20Rng {
        if self.window != window || self.stream.is_none() {
            self.window = window;
            self.stream = None;
        }
        let hotkey = self.hotkey;
        self.stream.get_or_insert_with(|| {
            stream(b"grail/miner-prompts", &[&hotkey, &window.to_be_bytes()])
        })
    }
}

impl PromptStrategy for PseudoRandomPrompts {
    fn next(&mut self, window: u64, env: &dyn Environment) -> u64 {
        let rng = self.rng(window);
        match env.prompt_space() {
            PromptSpace::Unbounded => rng.next_u64(),
            PromptSpace::Finite(n) => uniform_below(rng, n.max(1)),
        }
    }
}

/// Targets the learning zone: draws a stratum (tier or mix part) with probability
/// proportional to its smoothed in-zone rate `(in_zone + 1) / (groups + 2)` over the
/// validators' recent reports, then a pseudo-random prompt of that stratum. Strata never
/// reported get rate 1/2, so they are tried. Groups that land in the zone earn credit
/// (docs/protocol.md §12) and are the ones the trainer learns from.
pub struct ZoneTargetingPrompts {
    random: PseudoRandomPrompts,
    counts: BTreeMap<String, ZoneCount>,
    strata: Vec<String>,
    /// The open client jobs' strata (`job:{id}`), counted beside the environment's.
    jobs: Vec<String>,
    decay: f64,
}

/// How much of a stratum's earlier in-zone counts a new validator report keeps (miners and
/// the experiment use it).
pub const ZONE_DECAY: f64 = 0.7;

/// Most groups per stratum one validator's report of one window counts for.
pub const MAX_REPORTED_GROUPS: f64 = 256.0;

/// The lower weighted median of `(value, weight)` pairs (weights positive; 0 when empty):
/// the smallest value at which the cumulative weight reaches half of the total.
fn weighted_median(items: impl Iterator<Item = (f64, f64)>) -> f64 {
    let mut items: Vec<(f64, f64)> = items.collect();
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut seen = 0.0;
    for (value, weight) in &items {
        seen += weight;
        if 2.0 * seen >= total {
            return *value;
        }
    }
    0.0
}

/// Draws of prompt ids to find one of the wanted stratum before taking any.
const STRATUM_SEARCH: usize = 512;

impl ZoneTargetingPrompts {
    /// For `key`, over the strata of `env`, forgetting old reports by `decay` (0..1) per
    /// update.
    pub fn new(key: &Keypair, env: &dyn Environment, decay: f64) -> Self {
        Self {
            random: PseudoRandomPrompts::new(key),
            counts: BTreeMap::new(),
            strata: env.strata(),
            jobs: Vec::new(),
            decay: decay.clamp(0.0, 1.0),
        }
    }

    /// The open client jobs (ids) whose lanes' reports are counted from now on; the
    /// counts of jobs no longer open are dropped.
    pub fn set_jobs<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        self.jobs = ids.into_iter().map(job_stratum).collect();
        let (strata, jobs) = (&self.strata, &self.jobs);
        self.counts
            .retain(|s, _| strata.contains(s) || jobs.contains(s));
    }

    /// [`Self::update_weighted`] with every report weighing the same.
    pub fn update<'a>(
        &mut self,
        reports: impl IntoIterator<Item = &'a BTreeMap<String, ZoneCount>>,
    ) {
        self.update_weighted(reports.into_iter().map(|r| (1.0, r)));
    }

    /// Adds the per-stratum reports of one window, one per validator with its weight (its
    /// stake; older windows fade by `decay`). Per stratum the window counts the
    /// weight-median in-zone rate over the validators that report it, for the
    /// weight-median number of groups, so validators holding less than half of the weight
    /// cannot move what a miner targets, however they lie. Counts that cannot be true
    /// (negative, non-finite, more in zone than groups), strata the environment does not
    /// have and reports without a positive weight are ignored, and one report counts at
    /// most [`MAX_REPORTED_GROUPS`] groups per stratum: reports come over the network.
    pub fn update_weighted<'a>(
        &mut self,
        reports: impl IntoIterator<Item = (f64, &'a BTreeMap<String, ZoneCount>)>,
    ) {
        for c in self.counts.values_mut() {
            c.groups *= self.decay;
            c.in_zone *= self.decay;
        }
        // Per stratum: (in-zone rate, groups, weight) of each report.
        let mut seen: BTreeMap<&String, Vec<(f64, f64, f64)>> = BTreeMap::new();
        for (weight, report) in reports {
            if !(weight.is_finite() && weight > 0.0) {
                continue;
            }
            for (stratum, c) in report {
                let plausible = c.groups.is_finite() && (0.0..=c.groups).contains(&c.in_zone);
                let known = self.strata.contains(stratum) || self.jobs.contains(stratum);
                if !plausible || c.groups == 0.0 || !known {
                    continue;
                }
                let groups = c.groups.min(MAX_REPORTED_GROUPS);
                seen.entry(stratum)
                    .or_default()
                    .push((c.in_zone / c.groups, groups, weight));
            }
        }
        for (stratum, reports) in seen {
            let rate = weighted_median(reports.iter().map(|&(r, _, w)| (r, w)));
            let groups = weighted_median(reports.iter().map(|&(_, g, w)| (g, w)));
            let mine = self.counts.entry(stratum.clone()).or_default();
            mine.groups += groups;
            mine.in_zone += rate * groups;
        }
    }

    /// The smoothed in-zone rate of a stratum: `(in_zone + 1) / (groups + 2)`.
    fn rate(&self, stratum: &str) -> f64 {
        let c = self.counts.get(stratum).copied().unwrap_or_default();
        (c.in_zone + 1.0) / (c.groups + 2.0)
    }

    /// The probability of drawing each stratum next.
    pub fn preferences(&self) -> Vec<(String, f64)> {
        let total: f64 = self.strata.iter().map(|s| self.rate(s)).sum();
        self.strata
            .iter()
            .map(|s| (s.clone(), self.rate(s) / total))
            .collect()
    }

    /// The in-zone rate a subnet group drawn by [`Self::preferences`] has in expectation:
    /// the credit one subnet group earns.
    pub fn subnet_rate(&self) -> f64 {
        self.preferences()
            .iter()
            .map(|(s, p)| p * self.rate(s))
            .sum()
    }

    /// Of `budget` groups for a client job's lane this window, how many to mine: a job is
    /// one more stratum of the market. A delivered job group earns what an in-zone subnet
    /// group earns, and only in-zone groups are delivered, so the job gets
    /// `budget × min(1, rate(job) / subnet_rate)` (rounded), at least one so that its rate
    /// keeps being measured. A job never reported has rate 1/2, like a new stratum.
    pub fn job_groups(&self, job: &str, budget: usize) -> usize {
        if budget == 0 {
            return 0;
        }
        let share = (self.rate(&job_stratum(job)) / self.subnet_rate().max(1e-9)).min(1.0);
        ((budget as f64 * share).round() as usize).clamp(1, budget)
    }
}

impl PromptStrategy for ZoneTargetingPrompts {
    fn next(&mut self, window: u64, env: &dyn Environment) -> u64 {
        let preferences = self.preferences();
        let rng = self.random.rng(window);
        let mut x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut wanted = preferences.last().map(|p| p.0.clone());
        for (s, p) in preferences {
            if x < p {
                wanted = Some(s);
                break;
            }
            x -= p;
        }
        let mut id = self.random.next(window, env);
        for _ in 0..STRATUM_SEARCH {
            if wanted.as_ref().is_none_or(|w| *w == env.stratum(id)) {
                break;
            }
            id = self.random.next(window, env);
        }
        id
    }
}

/// A miner's prompt strategy as configured (`miner.prompts`).
pub enum Prompts {
    /// [`PseudoRandomPrompts`].
    Random(PseudoRandomPrompts),
    /// [`ZoneTargetingPrompts`], fed with validators' reports.
    Zone(ZoneTargetingPrompts),
}

impl Prompts {
    /// The strategy `choice` for `key` over `env`'s strata.
    pub fn new(
        choice: grail_node::config::PromptChoice,
        key: &Keypair,
        env: &dyn Environment,
    ) -> Self {
        match choice {
            grail_node::config::PromptChoice::Random => Self::Random(PseudoRandomPrompts::new(key)),
            grail_node::config::PromptChoice::Zone => {
                Self::Zone(ZoneTargetingPrompts::new(key, env, ZONE_DECAY))
            }
        }
    }
}

impl PromptStrategy for Prompts {
    fn next(&mut self, window: u64, env: &dyn Environment) -> u64 {
        match self {
            Self::Random(r) => r.next(window, env),
            Self::Zone(z) => z.next(window, env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lying_minority_of_validators_does_not_steer_zone_targeting() {
        let env = grail_env::by_name("math:0 + math:1", None).unwrap();
        let key = Keypair::from_seed(&[3; 32]);
        let report = |a: (f64, f64), b: (f64, f64)| -> BTreeMap<String, ZoneCount> {
            let count = |(groups, in_zone)| ZoneCount { groups, in_zone };
            [
                ("math:0".to_string(), count(a)),
                ("math:1".to_string(), count(b)),
            ]
            .into()
        };
        // Two honest validators: math:1 is where the zone is. A liar with a quarter of the
        // stake claims the opposite, with as many groups as a report may count.
        let honest = report((100.0, 10.0), (100.0, 90.0));
        let liar = report((256.0, 256.0), (256.0, 0.0));
        let prefers = |z: &ZoneTargetingPrompts| {
            let p = z.preferences();
            if p[1].1 > p[0].1 {
                "math:1"
            } else {
                "math:0"
            }
        };
        let mut weighted = ZoneTargetingPrompts::new(&key, env.as_ref(), 0.7);
        weighted.update_weighted([(40.0, &honest), (35.0, &honest), (25.0, &liar)]);
        assert_eq!(prefers(&weighted), "math:1");
        let p = weighted.preferences();
        assert!((p[1].1 - (91.0 / 102.0) / (11.0 / 102.0 + 91.0 / 102.0)).abs() < 1e-12);
        // Summing every report alike, as before, the liar won.
        let mut summed = ZoneTargetingPrompts::new(&key, env.as_ref(), 0.7);
        for (stratum, c) in [&honest, &honest, &liar].into_iter().flatten() {
            let mine = summed.counts.entry(stratum.clone()).or_default();
            mine.groups += c.groups;
            mine.in_zone += c.in_zone;
        }
        assert_eq!(prefers(&summed), "math:0");
        // Zero, negative or non-finite weights count for nothing.
        let mut ignored = ZoneTargetingPrompts::new(&key, env.as_ref(), 0.7);
        ignored.update_weighted([(0.0, &liar), (-1.0, &liar), (f64::NAN, &liar)]);
        assert_eq!(ignored.preferences()[0].1, 0.5);
    }

    #[test]
    fn a_client_job_is_one_more_stratum() {
        let env = grail_env::by_name("math:0 + math:1", None).unwrap();
        let mut zone = ZoneTargetingPrompts::new(&Keypair::from_seed(&[3; 32]), env.as_ref(), 1.0);
        let count = |groups: f64, in_zone: f64| ZoneCount { groups, in_zone };
        // Nothing reported: jobs and strata all at 1/2, the whole budget.
        assert_eq!(zone.job_groups("aa", 4), 4);
        assert_eq!(zone.job_groups("aa", 0), 0);
        // Reports of a job the miner does not follow are not counted.
        let report: BTreeMap<String, ZoneCount> = [
            ("math:0".to_string(), count(40.0, 36.0)),
            ("math:1".to_string(), count(40.0, 36.0)),
            (job_stratum("aa"), count(40.0, 4.0)),
            (job_stratum("bb"), count(40.0, 38.0)),
        ]
        .into();
        zone.update([&report]);
        assert_eq!(
            zone.job_groups("aa", 8),
            zone.job_groups("never-reported", 8)
        );
        zone.set_jobs(["aa", "bb"]);
        zone.update([&report]);
        // Subnet groups land in the zone ~9 times in 10, job aa's ~1 in 10: it gets a
        // few of its budget, never none; job bb, as good as the subnet, all of it.
        let aa = zone.job_groups("aa", 8);
        assert!((1..=2).contains(&aa), "{aa}");
        assert_eq!(zone.job_groups("aa", 2), 1);
        assert_eq!(zone.job_groups("bb", 8), 8);
        assert!(
            (zone.subnet_rate() - 0.9).abs() < 0.05,
            "{}",
            zone.subnet_rate()
        );
        // A job no longer open is forgotten.
        zone.set_jobs(["bb"]);
        assert_eq!(
            zone.job_groups("aa", 8),
            zone.job_groups("never-reported", 8)
        );
        // The job strata never change which subnet strata are drawn.
        assert_eq!(zone.preferences().len(), 2);
    }

    #[test]
    fn zone_targeting_draws_the_strata_in_the_zone() {
        let env = grail_env::by_name("math:0 + math:1 + math:2", None).unwrap();
        let key = Keypair::from_seed(&[3; 32]);
        let mut zone = ZoneTargetingPrompts::new(&key, env.as_ref(), 0.5);
        assert_eq!(zone.preferences().len(), 3, "every stratum found");
        let count = |z: &mut ZoneTargetingPrompts| {
            let mut c = BTreeMap::<String, usize>::new();
            for _ in 0..300 {
                *c.entry(env.stratum(z.next(9, env.as_ref()))).or_default() += 1;
            }
            c
        };
        // Before any report every stratum is tried.
        assert!(count(&mut zone).values().all(|&n| n > 50));
        let report: BTreeMap<String, ZoneCount> = [
            (
                "math:0".to_string(),
                ZoneCount {
                    groups: 20.0,
                    in_zone: 0.0,
                },
            ),
            (
                "math:1".to_string(),
                ZoneCount {
                    groups: 20.0,
                    in_zone: 18.0,
                },
            ),
            (
                "math:2".to_string(),
                ZoneCount {
                    groups: 20.0,
                    in_zone: 0.0,
                },
            ),
        ]
        .into();
        zone.update([&report]);
        let after = count(&mut zone);
        // Reports that cannot be true change nothing.
        let before = zone.preferences();
        zone.decay = 1.0;
        let bogus: BTreeMap<String, ZoneCount> = [
            (
                "math:0".to_string(),
                ZoneCount {
                    groups: 1.0,
                    in_zone: 5.0,
                },
            ),
            (
                "math:2".to_string(),
                ZoneCount {
                    groups: -3.0,
                    in_zone: -3.0,
                },
            ),
            (
                "tier-x".to_string(),
                ZoneCount {
                    groups: 9.0,
                    in_zone: 9.0,
                },
            ),
        ]
        .into();
        zone.update([&bogus]);
        assert_eq!(zone.preferences(), before);
        assert!(after["math:1"] > 220, "in-zone stratum drawn {after:?}");
        // The random strategy ignores the zone.
        let mut random = PseudoRandomPrompts::new(&key);
        let mut c = BTreeMap::<String, usize>::new();
        for _ in 0..300 {
            *c.entry(env.stratum(random.next(9, env.as_ref())))
                .or_default() += 1;
        }
        assert!(c.values().all(|&n| n > 60), "{c:?}");
    }
}
