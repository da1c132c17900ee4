//! GRPO group math that miner, validator and trainer must agree on.
//!
//! For rewards `r_1..r_M`: `μ = Σr/M` and the population `σ = sqrt(Σ(r−μ)²/M)`, summed in
//! index order in f64. Advantages are `(r_i − μ) / σ`, and exactly zero when
//! `σ < ADVANTAGE_SIGMA_EPSILON`. A group is in the **learning zone** when
//! `σ ≥ LEARNING_ZONE_SIGMA_FLOOR`.
//!
//! ```
//! use grail_proto::grpo::{advantages, advantages_consistent, in_learning_zone, population_sigma};
//!
//! // Two of four rollouts solved the problem: μ = 0.5, σ = 0.5.
//! let rewards = [1.0, 0.0, 0.0, 1.0];
//! assert_eq!(population_sigma(&rewards), 0.5);
//! assert_eq!(advantages(&rewards), vec![1.0, -1.0, -1.0, 1.0]);
//! assert!(in_learning_zone(&rewards));
//! // A validator checks the miner's claimed advantages against its recomputation.
//! assert!(advantages_consistent(&rewards, &[1.0, -1.0, -1.0, 1.0]));
//! assert!(!advantages_consistent(&rewards, &[1.0, 1.0, -1.0, -1.0]));
//! // Every rollout alike: no signal, advantages exactly 0, out of the zone.
//! assert_eq!(advantages(&[0.3; 4]), vec![0.0; 4]);
//! assert!(!in_learning_zone(&[0.3; 4]));
//! ```

use crate::params::{ADVANTAGE_SIGMA_EPSILON, ADVANTAGE_SUM_TOLERANCE, LEARNING_ZONE_SIGMA_FLOOR};

/// Mean of the rewards (0 for none).
pub fn mean(rewards: &[f64]) -> f64 {
    if rewards.is_empty() {
        return 0.0;
    }
    rewards.iter().sum::<f64>() / rewards.len() as f64
}

/// Population standard deviation of the rewards (0 for none).
pub fn population_sigma(rewards: &[f64]) -> f64 {
    if rewards.is_empty() {
        return 0.0;
    }
    let mu = mean(rewards);
    (rewards.iter().map(|r| (r - mu) * (r - mu)).sum::<f64>() / rewards.len() as f64).sqrt()
}

/// GRPO advantages: rewards normalised by the group's mean and population σ.
pub fn advantages(rewards: &[f64]) -> Vec<f64> {
    let mu = mean(rewards);
    let sigma = population_sigma(rewards);
    if sigma < ADVANTAGE_SIGMA_EPSILON {
        // Equal rewards (up to rounding of the mean): no signal, exactly zero.
        return vec![0.0; rewards.len()];
    }
    rewards.iter().map(|r| (r - mu) / sigma).collect()
}

/// Whether a group's reward spread makes it worth training on.
pub fn in_learning_zone(rewards: &[f64]) -> bool {
    population_sigma(rewards) >= LEARNING_ZONE_SIGMA_FLOOR
}

/// Whether claimed advantages equal the recomputation (within `1e-6` each) and sum to ~0.
pub fn advantages_consistent(rewards: &[f64], claimed: &[f64]) -> bool {
    if rewards.len() != claimed.len() {
        return false;
    }
    let want = advantages(rewards);
    let close = want.iter().zip(claimed).all(|(w, c)| (w - c).abs() <= 1e-6);
    close && claimed.iter().sum::<f64>().abs() <= ADVANTAGE_SUM_TOLERANCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_of_a_binary_group() {
        let r = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(population_sigma(&r), 0.5);
        assert_eq!(advantages(&r), vec![1.0, -1.0, -1.0, 1.0]);
        assert!(in_learning_zone(&r));
        assert!(advantages_consistent(&r, &[1.0, -1.0, -1.0, 1.0]));
        assert!(!advantages_consistent(&r, &[1.0, -1.0, 1.0, -1.0]));
    }

    #[test]
    fn zero_sigma_group_has_zero_advantages_and_is_out_of_zone() {
        let r = [0.7; 8];
        assert!(advantages(&r).iter().all(|&a| a == 0.0));
        assert!(!in_learning_zone(&r));
        assert_eq!(population_sigma(&[]), 0.0);
    }
}
