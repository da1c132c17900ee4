//! Weights from verified work: over a rolling span of windows, each miner's accepted
//! in-zone groups `w` score `w^exponent` (superlinear: sustained work beats bursts of
//! sybils), shares are capped at `max_share` (excess goes to the others, or is burned when
//! everyone is capped), and `burn_fraction` of the total goes to uid 0. With no work at all,
//! everything is burned to uid 0.

use std::collections::BTreeMap;

/// Accepted in-zone groups per window and uid.
pub type WorkHistory = BTreeMap<u64, BTreeMap<u16, u64>>;

/// Scoring parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRule {
    /// Windows in the rolling span.
    pub rolling_windows: usize,
    /// Exponent on work.
    pub exponent: f64,
    /// Share burned to uid 0.
    pub burn_fraction: f64,
    /// Largest share of one miner.
    pub max_share: f64,
}

/// Weight shares (summing to 1) per uid, for the span ending at `window`.
pub fn weights(history: &WorkHistory, window: u64, rule: &ScoreRule) -> BTreeMap<u16, f64> {
    let mut work: BTreeMap<u16, f64> = BTreeMap::new();
    for counts in history
        .range(..=window)
        .rev()
        .take(rule.rolling_windows.max(1))
        .map(|(_, c)| c)
    {
        for (&uid, &n) in counts {
            *work.entry(uid).or_default() += n as f64;
        }
    }
    let scores: BTreeMap<u16, f64> = work
        .into_iter()
        .filter(|(_, w)| *w > 0.0)
        .map(|(uid, w)| (uid, w.powf(rule.exponent)))
        .collect();
    let total: f64 = scores.values().sum();
    let mut out = BTreeMap::new();
    if total <= 0.0 {
        out.insert(0, 1.0);
        return out;
    }
    let mut shares: BTreeMap<u16, f64> = scores.iter().map(|(&u, &s)| (u, s / total)).collect();
    let cap = rule.max_share.clamp(0.0, 1.0);
    let mut burned_excess = 0.0;
    loop {
        let excess: f64 = shares.values().map(|s| (s - cap).max(0.0)).sum();
        if excess <= 1e-12 {
            break;
        }
        let free: f64 = shares.values().filter(|s| **s < cap).sum();
        for s in shares.values_mut() {
            *s = s.min(cap);
        }
        if free <= 1e-12 {
            burned_excess += excess;
            break;
        }
        for s in shares.values_mut() {
            if *s < cap {
                *s += excess * *s / free;
            }
        }
    }
    let keep = 1.0 - rule.burn_fraction.clamp(0.0, 1.0);
    for (uid, s) in shares {
        *out.entry(uid).or_default() += s * keep;
    }
    let burn = rule.burn_fraction.clamp(0.0, 1.0) + burned_excess * keep;
    if burn > 0.0 {
        *out.entry(0).or_default() += burn;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> ScoreRule {
        ScoreRule {
            rolling_windows: 2,
            exponent: 2.0,
            burn_fraction: 0.0,
            max_share: 1.0,
        }
    }

    fn history(entries: &[(u64, u16, u64)]) -> WorkHistory {
        let mut h = WorkHistory::new();
        for &(w, uid, n) in entries {
            h.entry(w).or_default().insert(uid, n);
        }
        h
    }

    #[test]
    fn superlinear_rolling_capped_and_burned() {
        let h = history(&[(0, 1, 100), (30, 1, 1), (30, 2, 1), (60, 1, 1), (60, 2, 2)]);
        // Window 0 has left the span: work 2 vs 3 → 4 vs 9.
        let w = weights(&h, 60, &rule());
        assert!((w[&1] - 4.0 / 13.0).abs() < 1e-12 && (w[&2] - 9.0 / 13.0).abs() < 1e-12);
        let capped = weights(
            &h,
            60,
            &ScoreRule {
                max_share: 0.6,
                ..rule()
            },
        );
        assert!((capped[&2] - 0.6).abs() < 1e-12 && (capped[&1] - 0.4).abs() < 1e-12);
        let burned = weights(
            &h,
            60,
            &ScoreRule {
                burn_fraction: 0.5,
                ..rule()
            },
        );
        assert!((burned[&0] - 0.5).abs() < 1e-12);
        assert!((burned.values().sum::<f64>() - 1.0).abs() < 1e-12);
        // One miner capped at 0.3: the rest is burned.
        let alone = weights(
            &history(&[(0, 3, 5)]),
            0,
            &ScoreRule {
                max_share: 0.3,
                ..rule()
            },
        );
        assert!((alone[&3] - 0.3).abs() < 1e-12 && (alone[&0] - 0.7).abs() < 1e-12);
        assert_eq!(
            weights(&WorkHistory::new(), 0, &rule()),
            BTreeMap::from([(0, 1.0)])
        );
    }
}
