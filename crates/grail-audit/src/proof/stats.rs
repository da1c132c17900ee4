//! Statistics over sketches: honest drift, forgery acceptance and the rollout acceptance
//! probability.

use super::corpus::Corpus;
use super::rules::SketchRule;

/// Honest drift of one rule between a reference and another computation.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// Positions compared.
    pub positions: usize,
    /// Largest modular distance.
    pub max: u32,
    /// 99.99th percentile distance.
    pub p9999: u32,
    /// Positions that would fail.
    pub failures: usize,
}

/// Compares every position (prompt and completion).
pub fn drift(rule: &dyn SketchRule, reference: &[Vec<u32>], other: &[Vec<u32>]) -> Drift {
    let w = rule.width();
    let mut distances = Vec::new();
    let mut failures = 0;
    for (a, b) in reference.iter().zip(other) {
        for (p, (x, y)) in a.chunks(w).zip(b.chunks(w)).enumerate() {
            distances.push(rule.distance(x, y));
            failures += usize::from(!rule.passes(x, y, p));
        }
    }
    distances.sort_unstable();
    let at = |q: f64| {
        distances
            .get(((distances.len() as f64 * q) as usize).min(distances.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Drift {
        positions: distances.len(),
        max: distances.last().copied().unwrap_or(0),
        p9999: at(0.9999),
        failures,
    }
}

/// How often a substitute's sketches pass against the honest ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Forgery {
    /// Completion positions compared.
    pub positions: usize,
    /// Positions that passed.
    pub passed: usize,
    /// 1st percentile of the distance (how close the nearest forgeries come).
    pub p01: u32,
    /// The largest tolerance that keeps this substitute's rollout acceptance ≤ 2^-40 (the
    /// distance quantile at the per-position pass rate that gives 2^-40 at K and misses).
    pub largest_safe_tolerance: u32,
    /// log2 of the probability that a rollout passes (K positions, allowed misses),
    /// treating positions as independent, with the pass rate's 95 % upper bound
    /// (rule of three when no position passed).
    pub log2_rollout_acceptance: f64,
}

impl Forgery {
    /// Per-position pass rate.
    pub fn rate(&self) -> f64 {
        self.passed as f64 / self.positions.max(1) as f64
    }
}

/// Compares completion positions only (the challenged range).
pub fn forgery(
    rule: &dyn SketchRule,
    corpus: &Corpus,
    honest: &[Vec<u32>],
    forged: &[Vec<u32>],
) -> Forgery {
    let w = rule.width();
    let (mut positions, mut passed) = (0, 0);
    let mut distances = Vec::new();
    for ((a, b), &prompt_len) in honest.iter().zip(forged).zip(&corpus.prompt_lens) {
        for (p, (x, y)) in a.chunks(w).zip(b.chunks(w)).enumerate().skip(prompt_len) {
            positions += 1;
            passed += usize::from(rule.passes(x, y, p));
            distances.push(rule.distance(x, y));
        }
    }
    distances.sort_unstable();
    let p01 = distances.get(distances.len() / 100).copied().unwrap_or(0);
    // Per-position pass rate at which a rollout is accepted with probability 2^-40.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if log2_acceptance(mid, rule.k(), rule.max_misses()) <= -40.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let safe_index = (distances.len() as f64 * lo) as usize;
    let largest_safe_tolerance = distances.get(safe_index).map_or(0, |d| d.saturating_sub(1));
    let n = positions.max(1) as f64;
    let rate = passed as f64 / n;
    // 95 % upper bound on the per-position rate: rule of three at 0, else a normal bound.
    let upper = if passed == 0 {
        3.0 / n
    } else {
        (rate + 1.96 * (rate * (1.0 - rate) / n).sqrt()).min(1.0)
    };
    Forgery {
        positions,
        passed,
        p01,
        largest_safe_tolerance,
        log2_rollout_acceptance: log2_acceptance(upper, rule.k(), rule.max_misses()),
    }
}

/// log2 P(at most `misses` of `k` independent positions fail | each passes with `p`).
pub fn log2_acceptance(p: f64, k: usize, misses: usize) -> f64 {
    if p >= 1.0 {
        return 0.0;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let ln_choose = |n: usize, r: usize| -> f64 {
        (0..r)
            .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
            .sum()
    };
    let terms: Vec<f64> = (0..=misses.min(k))
        .map(|m| ln_choose(k, m) + (k - m) as f64 * p.ln() + m as f64 * (1.0 - p).ln())
        .collect();
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()) / std::f64::consts::LN_2
}
