//! Group advantages and reward shaping.

use crate::config::{AdvantageMode, OverlongPenalty};

/// Advantages of one group's rewards under `mode`. Groups whose rewards are all equal get
/// exactly zero advantages in every mode (no learning signal).
pub fn advantages(rewards: &[f64], mode: AdvantageMode) -> Vec<f64> {
    match mode {
        AdvantageMode::Grpo => grail_proto::grpo::advantages(rewards),
        AdvantageMode::DrGrpo => {
            if grail_proto::grpo::advantages(rewards)
                .iter()
                .all(|a| *a == 0.0)
            {
                return vec![0.0; rewards.len()];
            }
            let mu = grail_proto::grpo::mean(rewards);
            rewards.iter().map(|r| r - mu).collect()
        }
        AdvantageMode::Rank => grail_proto::grpo::advantages(&ranks(rewards)),
    }
}

/// 1-based ranks; tied rewards share the mean of their ranks.
fn ranks(rewards: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..rewards.len()).collect();
    order.sort_by(|&a, &b| rewards[a].total_cmp(&rewards[b]));
    let mut out = vec![0.0; rewards.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && rewards[order[j + 1]] == rewards[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// The reward after the soft overlong penalty for a completion of `len` tokens.
pub fn shaped_reward(reward: f64, len: usize, overlong: Option<&OverlongPenalty>) -> f64 {
    let Some(o) = overlong else { return reward };
    let start = o.max_tokens - o.buffer;
    if len <= start {
        return reward;
    }
    let over = (len.min(o.max_tokens) - start) as f64 / o.buffer as f64;
    reward - o.penalty * over
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_agree_on_sign_and_zero_spread() {
        let r = [0.0, 1.0, 1.0, 5.0];
        for mode in [
            AdvantageMode::Grpo,
            AdvantageMode::DrGrpo,
            AdvantageMode::Rank,
        ] {
            let a = advantages(&r, mode);
            assert!(a[0] < 0.0 && a[3] > 0.0, "{mode:?}: {a:?}");
            assert_eq!(a[1], a[2], "ties get equal advantages");
            assert!(a.iter().sum::<f64>().abs() < 1e-9);
            assert!(advantages(&[0.3; 4], mode).iter().all(|x| *x == 0.0));
        }
        assert_eq!(
            advantages(&r, AdvantageMode::DrGrpo),
            vec![-1.75, -0.75, -0.75, 3.25]
        );
        // Ranks ignore the outlier's size.
        assert_eq!(
            advantages(&[0.0, 1.0, 2.0, 100.0], AdvantageMode::Rank),
            advantages(&[0.0, 1.0, 2.0, 3.0], AdvantageMode::Rank)
        );
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
    }

    #[test]
    fn overlong_penalty_ramps_to_the_cap() {
        let o = OverlongPenalty {
            max_tokens: 100,
            buffer: 20,
            penalty: 1.0,
        };
        assert_eq!(shaped_reward(1.0, 80, Some(&o)), 1.0);
        assert_eq!(shaped_reward(1.0, 90, Some(&o)), 0.5);
        assert_eq!(shaped_reward(1.0, 100, Some(&o)), 0.0);
        assert_eq!(shaped_reward(1.0, 150, Some(&o)), 0.0);
        assert_eq!(shaped_reward(1.0, 150, None), 1.0);
    }
}
