//! Weights from credited work: over a rolling span of windows, each miner's credited
//! work `w` (estimated in-zone groups, [`crate::rules::bundle::credited_work`]) scores
//! `w^exponent`; shares are proportional to scores; `burn_fraction` of the total goes to
//! uid 0 (all of it when nobody earned anything).
//!
//! The default exponent is 1 ([`crate::params::SCORE_EXPONENT`]): shares are linear in
//! work, so neither splitting one miner's work across hotkeys nor pooling several miners'
//! work into one hotkey changes the total share. Above 1 splitting loses
//! (`a^p + b^p < (a + b)^p`) but pooling pays by the same inequality, which rewards
//! concentration. There is no per-hotkey cap, because any cap pays whoever splits across
//! hotkeys to stay under it.
//!
//! ```
//! use grail_proto::scoring::{weights, ScoreRule, WorkHistory};
//!
//! // Credited work (`rules::bundle::credited_work`) per window and uid.
//! let mut history = WorkHistory::new();
//! history.entry(300).or_default().extend([(1, 4.0), (2, 1.0)]);
//! history.entry(330).or_default().extend([(1, 4.0), (2, 3.0)]);
//! let rule = ScoreRule { rolling_windows: 2, burn_fraction: 0.1, ..ScoreRule::default() };
//! let shares = weights(&history, 330, &rule);
//!
//! // Work over the span: 8 and 4, so 2/3 and 1/3 of what is not burned to uid 0.
//! assert!((shares[&1] - 0.9 * 8.0 / 12.0).abs() < 1e-12);
//! assert!((shares[&0] - 0.1).abs() < 1e-12);
//! assert!((shares.values().sum::<f64>() - 1.0).abs() < 1e-12);
//! // With no credited work everything goes to uid 0.
//! assert_eq!(weights(&WorkHistory::new(), 330, &rule), [(0, 1.0)].into());
//! ```

use std::collections::BTreeMap;

/// Credited work per window and uid.
pub type WorkHistory = BTreeMap<u64, BTreeMap<u16, f64>>;

/// Scoring parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRule {
    /// Windows in the rolling span.
    pub rolling_windows: usize,
    /// Exponent on work (≥ 1; [`crate::params::SCORE_EXPONENT`] by default).
    pub exponent: f64,
    /// Share burned to uid 0.
    pub burn_fraction: f64,
}

impl Default for ScoreRule {
    fn default() -> Self {
        Self {
            rolling_windows: 3,
            exponent: crate::params::SCORE_EXPONENT,
            burn_fraction: 0.0,
        }
    }
}

/// Credited work per uid over the span ending at `window`.
pub fn rolling_work(
    history: &WorkHistory,
    window: u64,
    rolling_windows: usize,
) -> BTreeMap<u16, f64> {
    let mut work: BTreeMap<u16, f64> = BTreeMap::new();
    for counts in history
        .range(..=window)
        .rev()
        .take(rolling_windows.max(1))
        .map(|(_, c)| c)
    {
        for (&uid, &w) in counts {
            if w.is_finite() && w > 0.0 {
                *work.entry(uid).or_default() += w;
            }
        }
    }
    work
}

/// Weight shares (summing to 1) per uid, for the span ending at `window`.
pub fn weights(history: &WorkHistory, window: u64, rule: &ScoreRule) -> BTreeMap<u16, f64> {
    let exponent = if rule.exponent.is_finite() {
        rule.exponent.max(1.0)
    } else {
        1.0
    };
    let scores: BTreeMap<u16, f64> = rolling_work(history, window, rule.rolling_windows)
        .into_iter()
        .map(|(uid, w)| (uid, w.powf(exponent)))
        .collect();
    let total: f64 = scores.values().sum();
    let mut out = BTreeMap::new();
    if !(total > 0.0 && total.is_finite()) {
        out.insert(0, 1.0);
        return out;
    }
    let burn = if rule.burn_fraction.is_finite() {
        rule.burn_fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    for (uid, s) in scores {
        *out.entry(uid).or_default() += s / total * (1.0 - burn);
    }
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
        }
    }

    fn history(entries: &[(u64, u16, f64)]) -> WorkHistory {
        let mut h = WorkHistory::new();
        for &(w, uid, n) in entries {
            h.entry(w).or_default().insert(uid, n);
        }
        h
    }

    #[test]
    fn superlinear_rolling_and_burned() {
        let h = history(&[
            (0, 1, 100.0),
            (30, 1, 1.0),
            (30, 2, 1.0),
            (60, 1, 1.0),
            (60, 2, 2.0),
        ]);
        // Window 0 has left the span: work 2 vs 3 → 4 vs 9.
        let w = weights(&h, 60, &rule());
        assert!((w[&1] - 4.0 / 13.0).abs() < 1e-12 && (w[&2] - 9.0 / 13.0).abs() < 1e-12);
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
        assert_eq!(
            weights(&WorkHistory::new(), 0, &rule()),
            BTreeMap::from([(0, 1.0)])
        );
        // Non-finite work is ignored rather than poisoning every share.
        let odd = history(&[(0, 1, f64::NAN), (0, 2, 1.0)]);
        assert_eq!(weights(&odd, 0, &rule()), BTreeMap::from([(2, 1.0)]));
    }

    /// Total share of `uids` when `work[i]` is credited to uid `i + 1` and uid 100 has
    /// `others`.
    fn share_of(work: &[f64], others: f64, rule: &ScoreRule) -> f64 {
        let mut h = history(&[]);
        let counts = h.entry(0).or_default();
        for (i, &w) in work.iter().enumerate() {
            counts.insert(i as u16 + 1, w);
        }
        if others > 0.0 {
            counts.insert(100, others);
        }
        weights(&h, 0, rule)
            .iter()
            .filter(|(u, _)| (1..=work.len() as u16).contains(*u))
            .map(|(_, s)| s)
            .sum()
    }

    #[test]
    fn the_default_score_makes_splitting_and_pooling_neutral() {
        let rule = ScoreRule {
            burn_fraction: 0.1,
            ..ScoreRule::default()
        };
        for parts in [
            vec![1.0, 1.0],
            vec![0.5, 7.0, 3.0],
            vec![40.0, 0.25, 1.0, 9.0],
        ] {
            for others in [0.0, 3.0, 50.0] {
                let total: f64 = parts.iter().sum();
                let apart = share_of(&parts, others, &rule);
                let pooled = share_of(&[total], others, &rule);
                assert!(
                    (apart - pooled).abs() < 1e-12,
                    "{parts:?} against {others}: apart {apart}, pooled {pooled}"
                );
            }
        }
    }

    #[test]
    fn a_superlinear_score_pays_pools() {
        // The v4 rule (exponent 1.5): a pool with 25 % of the work against 75 miners with
        // 1 % each earns 62.5 % of the emission; the same miners apart earn 25 %.
        let rule = ScoreRule {
            rolling_windows: 1,
            exponent: 1.5,
            burn_fraction: 0.0,
        };
        let small = |from: u16, h: &mut WorkHistory| {
            for uid in from..from + 75 {
                h.entry(0).or_default().insert(uid, 1.0);
            }
        };
        let mut pooled = history(&[(0, 1, 25.0)]);
        small(2, &mut pooled);
        let pooled = weights(&pooled, 0, &rule)[&1];
        let mut apart = history(&[]);
        small(1, &mut apart);
        for uid in 200..225u16 {
            apart.get_mut(&0).unwrap().insert(uid, 1.0);
        }
        let apart: f64 = weights(&apart, 0, &rule)
            .iter()
            .filter(|(u, _)| **u >= 200)
            .map(|(_, s)| s)
            .sum();
        assert!((pooled - 0.625).abs() < 1e-12, "pooled {pooled}");
        assert!((apart - 0.25).abs() < 1e-12, "apart {apart}");
    }

    #[test]
    fn splitting_work_across_hotkeys_never_pays() {
        // A miner with work w (uid 1) against others; the same work split over uids 1..=k.
        for exponent in [1.0, 1.1, 1.5, 2.0] {
            let rule = ScoreRule {
                rolling_windows: 1,
                exponent,
                burn_fraction: 0.1,
            };
            for w in [1.0, 7.5, 40.0] {
                for others in [0.0, 3.0, 50.0] {
                    for k in 2..=5u16 {
                        let mut one = history(&[(0, 1, w)]);
                        let mut split = history(&[]);
                        for uid in 1..=k {
                            split.entry(0).or_default().insert(uid, w / k as f64);
                        }
                        if others > 0.0 {
                            one.get_mut(&0).unwrap().insert(100, others);
                            split.get_mut(&0).unwrap().insert(100, others);
                        }
                        let alone = weights(&one, 0, &rule)[&1];
                        let sum: f64 = weights(&split, 0, &rule)
                            .iter()
                            .filter(|(u, _)| (1..=k).contains(*u))
                            .map(|(_, s)| s)
                            .sum();
                        assert!(
                            sum <= alone + 1e-12,
                            "p {exponent} w {w} others {others} k {k}: split {sum} > {alone}"
                        );
                        if others > 0.0 && exponent > 1.0 {
                            assert!(sum < alone, "splitting must cost when others work");
                        }
                    }
                }
            }
        }
    }
}
