//! What an attacker gains from *choice positions*: positions where a token other than the
//! sampled one would also pass the sampling check (it lies within the margin). Claiming
//! the other token there re-rolls the rest of the rollout, so choices turn sampling into
//! a search: a miner can turn flat groups (every rollout failed, or every one succeeded)
//! into learning-zone groups, which are the only ones credited (docs/protocol.md §12).
//!
//! [`simulate`] plays that search by Monte Carlo under the check's caps and reports the
//! credit per unit of compute against honest mining. The model favours the attacker: a
//! re-rolled rollout is a fresh Bernoulli(p) draw, every choice is usable, and a failed
//! attempt costs only the regenerated suffix.

use grail_proto::prf::stream;
use rand_core::RngCore;

/// The game's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchParams {
    /// Rollouts per group (M).
    pub group_size: usize,
    /// Completion tokens per rollout.
    pub rollout_len: usize,
    /// Probability that a rollout succeeds.
    pub success: f64,
    /// Probability that a position offers a choice (the measured choice share).
    pub choice_share: f64,
    /// Switches the attacker keeps per group (its own budget, to stay under the sample cap).
    pub per_group_budget: usize,
    /// Groups checked per window.
    pub groups_checked: usize,
    /// Ambiguous positions tolerated over the checked groups (`usize::MAX`: no sample cap).
    pub sample_cap: usize,
    /// Whether a group that used a choice is credited as zone work (v4: yes; v5: no,
    /// `rules::group::credited_in_zone`).
    pub ambiguous_credited: bool,
}

/// Credit and compute of the search against honest mining, per group produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchGain {
    /// Honest share of groups in the learning zone.
    pub honest_in_zone: f64,
    /// The attacker's share of groups in the learning zone.
    pub attacker_in_zone: f64,
    /// Share of the attacker's windows zeroed by the sample cap.
    pub zeroed: f64,
    /// Attacker compute over honest compute (tokens generated).
    pub compute_ratio: f64,
    /// Attacker credit per token over honest credit per token (1 = no gain).
    pub credit_per_compute: f64,
}

/// A uniform in [0, 1) from the stream.
fn uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Plays `windows` windows of `groups_per_window` groups each (seeded, deterministic).
pub fn simulate(
    p: &SearchParams,
    windows: usize,
    groups_per_window: usize,
    seed: u64,
) -> SearchGain {
    let mut rng = stream(b"grail-rs/audit/choice-search/v1", &[&seed.to_le_bytes()]);
    let (mut honest_zone, mut attacker_zone, mut zeroed) = (0usize, 0.0f64, 0usize);
    let (mut honest_tokens, mut attacker_tokens) = (0.0f64, 0.0f64);
    let groups = windows * groups_per_window;
    for _ in 0..windows {
        let mut switched = Vec::with_capacity(groups_per_window);
        let mut zone_in_window = 0usize;
        for _ in 0..groups_per_window {
            let outcomes: Vec<bool> = (0..p.group_size)
                .map(|_| uniform(&mut rng) < p.success)
                .collect();
            let tokens = (p.group_size * p.rollout_len) as f64;
            honest_tokens += tokens;
            attacker_tokens += tokens;
            let flat = outcomes.iter().all(|&s| s) || outcomes.iter().all(|&s| !s);
            honest_zone += usize::from(!flat);
            if !flat {
                zone_in_window += 1;
                switched.push(0);
                continue;
            }
            // Flat: try the choice positions of each rollout, re-rolling the suffix, until
            // one flips its outcome (one flip puts the group in the zone, so the check's
            // per-rollout cap never binds) or the budget is spent.
            let want_success = !outcomes[0];
            let mut kept = 0usize;
            'rollouts: for _ in 0..p.group_size {
                for position in 0..p.rollout_len {
                    if kept >= p.per_group_budget {
                        break 'rollouts;
                    }
                    if uniform(&mut rng) >= p.choice_share {
                        continue;
                    }
                    attacker_tokens += (p.rollout_len - position) as f64;
                    let succeeded = uniform(&mut rng) < p.success;
                    if succeeded == want_success {
                        kept += 1;
                        break 'rollouts;
                    }
                }
            }
            zone_in_window += usize::from(kept > 0 && p.ambiguous_credited);
            switched.push(kept);
        }
        // The validators' checked sample: `groups_checked` distinct groups at random.
        let mut order: Vec<usize> = (0..switched.len()).collect();
        for i in 0..p.groups_checked.min(order.len()) {
            let j = i + (rng.next_u64() % (order.len() - i) as u64) as usize;
            order.swap(i, j);
        }
        let ambiguous: usize = order[..p.groups_checked.min(order.len())]
            .iter()
            .map(|&g| switched[g])
            .sum();
        if ambiguous > p.sample_cap {
            zeroed += 1;
        } else {
            attacker_zone += zone_in_window as f64;
        }
    }
    let honest_in_zone = honest_zone as f64 / groups as f64;
    let attacker_in_zone = attacker_zone / groups as f64;
    let compute_ratio = attacker_tokens / honest_tokens;
    SearchGain {
        honest_in_zone,
        attacker_in_zone,
        zeroed: zeroed as f64 / windows as f64,
        compute_ratio,
        credit_per_compute: attacker_in_zone
            / honest_in_zone.max(f64::MIN_POSITIVE)
            / compute_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(choice_share: f64) -> SearchParams {
        SearchParams {
            group_size: 8,
            rollout_len: 200,
            success: 0.1,
            choice_share,
            per_group_budget: 1,
            groups_checked: 8,
            sample_cap: 5,
            ambiguous_credited: true,
        }
    }

    #[test]
    fn no_choices_is_honest_mining() {
        let g = simulate(&params(0.0), 200, 32, 1);
        assert_eq!(g.compute_ratio, 1.0);
        assert_eq!(g.attacker_in_zone, g.honest_in_zone);
        assert_eq!(g.credit_per_compute, 1.0);
        // 1 − 0.9^8 − 0.1^8 of groups are in the zone.
        assert!((g.honest_in_zone - 0.5695).abs() < 0.03, "{g:?}");
    }

    #[test]
    fn many_choices_pay_and_few_do_not() {
        // v4-like: a choice at 11.6 % of positions, no sample cap.
        let v4 = SearchParams {
            per_group_budget: usize::MAX,
            sample_cap: usize::MAX,
            ..params(0.116)
        };
        let g = simulate(&v4, 200, 32, 2);
        assert!(g.attacker_in_zone > 0.95, "{g:?}");
        assert!(g.credit_per_compute > 1.2, "{g:?}");
        let rare = simulate(&params(1e-4), 200, 32, 3);
        assert!(rare.credit_per_compute < 1.02, "{rare:?}");
        // Groups that needed the margin are not credited: the search only costs.
        let uncredited = SearchParams {
            ambiguous_credited: false,
            ..params(6.4e-4)
        };
        let g = simulate(&uncredited, 200, 32, 4);
        assert!(g.credit_per_compute <= 1.0, "{g:?}");
    }
}
