//! Summaries of a [`Report`] at a margin: honest drift, off-policy acceptance and their
//! bounds, and the recommended margin.

use grail_proto::sampling::{
    allowed_ambiguous, allowed_ambiguous_in_sample, classify, excess, PositionClass,
};

use super::run::{Report, Strategy};

/// Honest drift of one condition at a margin.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSummary {
    /// The condition.
    pub condition: String,
    /// Completion positions.
    pub positions: usize,
    /// Largest |Δ gap| against the reference.
    pub max_shift: f64,
    /// 99.99th percentile of that shift.
    pub p9999_shift: f64,
    /// Largest distance of a gap below zero.
    pub max_excess: f64,
    /// Positions whose gap is not positive (the validator's sampler gives another token).
    pub outside: usize,
    /// Positions with a gap in `[−margin, 0]` (ambiguous, tolerated up to
    /// `allowed_ambiguous` per rollout).
    pub ambiguous: usize,
    /// Most ambiguous positions in one rollout.
    pub max_ambiguous_in_rollout: usize,
    /// Positions where another token would also pass: |gap| ≤ margin, the sampled token
    /// ahead or behind (an attacker's choices).
    pub choices: usize,
    /// Positions with a gap below the margin (must be 0).
    pub misses: usize,
    /// Rollouts rejected (honest false rejects; must be 0).
    pub rejected: usize,
    /// Windows of [`WINDOW_ROLLOUTS`] consecutive rollouts (a miner's checked sample).
    pub windows: usize,
    /// Of those, windows over `allowed_ambiguous_in_sample` (honest windows drift alone
    /// would zero; must be 0).
    pub windows_over_cap: usize,
}

/// Rollouts in a miner's checked sample: `GROUPS_CHECKED` groups of 8.
pub const WINDOW_ROLLOUTS: usize = grail_proto::params::GROUPS_CHECKED * 8;

/// An off-policy strategy at a margin.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategySummary {
    /// The strategy.
    pub name: String,
    /// Rollouts produced.
    pub rollouts: usize,
    /// Rollouts that differ from the honest rollout of the same slot.
    pub differing: usize,
    /// Differing rollouts accepted.
    pub accepted: usize,
    /// Identical rollouts rejected (honest work rejected; must be 0).
    pub identical_rejected: usize,
    /// Divergent positions of differing rollouts: the uniform lies outside the claimed
    /// token's interval (the validator's sampler would have drawn another token).
    pub divergent: usize,
    /// Divergent positions within the margin (Ambiguous).
    pub ambiguous: usize,
    /// Fewest divergent positions in a differing rollout.
    pub min_divergent: usize,
    /// Median divergent positions per differing rollout.
    pub median_divergent: usize,
    /// Divergent positions of each differing rollout and the ambiguous positions its
    /// length allows (`allowed_ambiguous`), ascending.
    pub divergent_per_rollout: Vec<(usize, usize)>,
    /// Differing rollouts with more divergent positions than their length allows as
    /// ambiguous: rejected whatever the margin.
    pub over_cap: usize,
    /// The smallest largest-excess of a differing rollout: how close the best one came
    /// (accepted when within the margin).
    pub closest: f64,
}

impl StrategySummary {
    /// q: the share of divergent positions that were ambiguous.
    pub fn q(&self) -> f64 {
        self.ambiguous as f64 / self.divergent.max(1) as f64
    }

    /// 95 % upper bound of q.
    pub fn q_upper(&self) -> f64 {
        upper_95(self.ambiguous, self.divergent)
    }

    /// log2 of the 95 % upper bound of the per-rollout acceptance rate (Clopper-Pearson;
    /// the rule of three when none was accepted).
    pub fn log2_empirical(&self) -> f64 {
        upper_95(self.accepted, self.differing).log2()
    }

    /// log2 q_upper^d for a rollout with `d` divergent positions (independent positions).
    pub fn log2_q_pow(&self, d: usize) -> f64 {
        if d == 0 {
            return 0.0;
        }
        d as f64 * self.q_upper().log2()
    }

    /// log2 of the acceptance bound of a rollout with `d` divergent positions of which
    /// `cap` may be ambiguous: −∞ above the cap, else q_upper^d.
    pub fn log2_bound(&self, d: usize, cap: usize) -> f64 {
        if d > cap {
            f64::NEG_INFINITY
        } else {
            self.log2_q_pow(d)
        }
    }

    /// log2 of the bound of the differing rollout with the fewest divergent positions.
    pub fn log2_bound_min(&self) -> f64 {
        self.divergent_per_rollout
            .first()
            .map_or(0.0, |&(d, cap)| self.log2_bound(d, cap))
    }

    /// log2 of the mean bound over the differing rollouts: the acceptance probability of
    /// one such rollout predicted from q and the cap (≥ the typical rollout's when short
    /// rollouts are common).
    pub fn log2_expected(&self) -> f64 {
        let n = self.divergent_per_rollout.len();
        if n == 0 {
            return 0.0;
        }
        let sum: f64 = self
            .divergent_per_rollout
            .iter()
            .map(|&(d, cap)| self.log2_bound(d, cap).exp2())
            .sum();
        (sum / n as f64).log2()
    }

    /// Differing rollouts whose bound exceeds 2^`log2_goal`.
    pub fn above(&self, log2_goal: f64) -> usize {
        self.divergent_per_rollout
            .iter()
            .filter(|&&(d, cap)| self.log2_bound(d, cap) > log2_goal)
            .count()
    }
}

/// One-sided 95 % Clopper-Pearson upper bound of a binomial rate (`k` of `n`); 3/n-like
/// at k = 0, 1 when `n` is 0 or every trial succeeded.
pub fn upper_95(k: usize, n: usize) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    // P(X ≤ k | n, p) decreases in p; find where it equals 0.05.
    let log_cdf = |p: f64| -> f64 {
        let (lp, lq) = (p.ln(), (1.0 - p).ln());
        let mut ln_choose = 0.0;
        let mut terms = Vec::with_capacity(k + 1);
        for i in 0..=k {
            if i > 0 {
                ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
            }
            terms.push(ln_choose + i as f64 * lp + (n - i) as f64 * lq);
        }
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
    };
    let target = 0.05f64.ln();
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0);
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        if log_cdf(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The `q` quantile of `sorted` (0 when empty).
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

impl Report {
    /// Honest drift of every condition at `margin`.
    pub fn drift(&self, margin: f64) -> Vec<DriftSummary> {
        let Some(reference) = self.honest.first() else {
            return Vec::new();
        };
        self.honest
            .iter()
            .map(|c| {
                let mut shifts = Vec::with_capacity(c.checked.positions());
                let mut s = DriftSummary {
                    condition: c.name.clone(),
                    positions: 0,
                    max_shift: 0.0,
                    p9999_shift: 0.0,
                    max_excess: 0.0,
                    outside: 0,
                    ambiguous: 0,
                    max_ambiguous_in_rollout: 0,
                    choices: 0,
                    misses: 0,
                    rejected: 0,
                    windows: 0,
                    windows_over_cap: 0,
                };
                let (mut window_positions, mut window_ambiguous) = (0, 0);
                for r in 0..c.checked.len() {
                    let mut ambiguous = 0;
                    for (gap, ref_gap) in c.checked.rollout(r).zip(reference.checked.rollout(r)) {
                        s.positions += 1;
                        shifts.push((gap - ref_gap).abs());
                        let e = excess(gap);
                        s.max_excess = s.max_excess.max(e);
                        s.outside += usize::from(gap <= 0.0);
                        s.choices += usize::from(gap.abs() <= margin);
                        match classify(gap, margin) {
                            PositionClass::Inside => {}
                            PositionClass::Ambiguous => ambiguous += 1,
                            PositionClass::Miss => s.misses += 1,
                        }
                    }
                    s.ambiguous += ambiguous;
                    s.max_ambiguous_in_rollout = s.max_ambiguous_in_rollout.max(ambiguous);
                    s.rejected += usize::from(!c.checked.accepted(r, margin));
                    window_positions += c.checked.gaps[r].len();
                    window_ambiguous += ambiguous;
                    if (r + 1) % WINDOW_ROLLOUTS == 0 || r + 1 == c.checked.len() {
                        s.windows += 1;
                        s.windows_over_cap += usize::from(
                            window_ambiguous > allowed_ambiguous_in_sample(window_positions),
                        );
                        (window_positions, window_ambiguous) = (0, 0);
                    }
                }
                shifts.sort_unstable_by(f64::total_cmp);
                s.max_shift = shifts.last().copied().unwrap_or(0.0);
                s.p9999_shift = quantile(&shifts, 0.9999);
                s
            })
            .collect()
    }

    /// Every off-policy strategy (bf16 first when measured) at `margin`.
    pub fn strategies(&self, margin: f64) -> Vec<StrategySummary> {
        self.bf16
            .iter()
            .chain(&self.strategies)
            .map(|st| strategy_summary(st, margin))
            .collect()
    }

    /// The largest honest drift seen: gap shift or excess, over every condition.
    pub fn largest_honest_drift(&self) -> f64 {
        self.drift(0.0)
            .iter()
            .map(|d| d.max_shift.max(d.max_excess))
            .fold(0.0, f64::max)
    }

    /// Share of honest positions where editing the token to the most likely other one
    /// still passes at `margin` (the edit's probability when the rest is resampled
    /// honestly, so that it is the rollout's only divergent position).
    pub fn edit_acceptance(&self, margin: f64) -> (usize, usize) {
        let accepted = self
            .edits
            .iter()
            .filter(|&&gap| classify(gap, margin) != PositionClass::Miss)
            .count();
        (accepted, self.edits.len())
    }

    /// bf16 per-rollout largest excess, sorted (the margin that would admit a share of
    /// bf16 rollouts is its quantile).
    pub fn bf16_rollout_excess(&self) -> Vec<f64> {
        let Some(b) = &self.bf16 else {
            return Vec::new();
        };
        let mut v: Vec<f64> = (0..b.checked.len())
            .map(|r| b.checked.rollout(r).map(excess).fold(0.0, f64::max))
            .collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    }
}

fn strategy_summary(st: &Strategy, margin: f64) -> StrategySummary {
    let mut s = StrategySummary {
        name: st.name.clone(),
        rollouts: st.checked.len(),
        differing: 0,
        accepted: 0,
        identical_rejected: 0,
        divergent: 0,
        ambiguous: 0,
        min_divergent: 0,
        median_divergent: 0,
        divergent_per_rollout: Vec::new(),
        over_cap: 0,
        closest: f64::INFINITY,
    };
    let mut per_rollout = Vec::new();
    for r in 0..st.checked.len() {
        let accepted = st.checked.accepted(r, margin);
        if !st.differs.get(r).copied().unwrap_or(true) {
            s.identical_rejected += usize::from(!accepted);
            continue;
        }
        s.differing += 1;
        s.accepted += usize::from(accepted);
        let mut d = 0;
        let mut worst = 0.0f64;
        for gap in st.checked.rollout(r) {
            worst = worst.max(excess(gap));
            if gap <= 0.0 {
                d += 1;
                s.ambiguous += usize::from(classify(gap, margin) == PositionClass::Ambiguous);
            }
        }
        s.closest = s.closest.min(worst);
        s.divergent += d;
        let cap = allowed_ambiguous(st.checked.gaps[r].len());
        s.over_cap += usize::from(d > cap);
        per_rollout.push((d, cap));
    }
    if !s.closest.is_finite() {
        s.closest = 0.0;
    }
    per_rollout.sort_unstable();
    s.min_divergent = per_rollout.first().map_or(0, |p| p.0);
    s.median_divergent = per_rollout.get(per_rollout.len() / 2).map_or(0, |p| p.0);
    s.divergent_per_rollout = per_rollout;
    s
}

/// The margin to choose: `factor` × the largest honest drift, rounded up to 1, 2 or 5 ×
/// a power of ten (the smallest such value when no drift was seen at all).
pub fn recommended_margin(largest_honest_drift: f64, factor: f64) -> f64 {
    let target = (largest_honest_drift * factor).max(1e-12);
    let decade = 10f64.powf(target.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|k| k * decade)
        .find(|&v| v >= target * (1.0 - 1e-12))
        .unwrap_or(10.0 * decade)
}
