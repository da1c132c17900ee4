//! Bootstrap intervals for the learning experiment (docs/experiments.md): held-out pass@1
//! of an arm, the difference between two arms, and the steps an arm needs to gain 10
//! points, each with a 95 % interval over prompts *and* seeds.
//!
//! The resampling is hierarchical: a replicate draws seeds with replacement, then within
//! each drawn seed its held-out prompts with replacement. A seed's prompts are the same
//! set at every step and in both arms (the held-out set is drawn from the seed), so one
//! draw of prompt indices serves every step and arm of that seed: differences are paired.

use std::collections::BTreeMap;

/// Bootstrap replicates per interval.
pub const REPLICATES: usize = 2000;

/// Per seed, the success of each held-out prompt, in evaluation order.
pub type Outcomes = BTreeMap<u64, Vec<bool>>;

/// A point estimate with its 95 % percentile interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The estimate on the data as observed.
    pub mean: f64,
    /// 2.5th percentile of the replicates.
    pub lo: f64,
    /// 97.5th percentile of the replicates.
    pub hi: f64,
}

impl Interval {
    /// Whether the interval excludes zero (a difference outside the noise).
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// SplitMix64: xtask has no dependencies, and the intervals must be reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One replicate's draw: the seeds (with repeats) and, per drawn seed, prompt indices.
type Draw = Vec<(u64, Vec<usize>)>;

fn draw(rng: &mut Rng, prompts_per_seed: &BTreeMap<u64, usize>) -> Draw {
    let seeds: Vec<u64> = prompts_per_seed.keys().copied().collect();
    (0..seeds.len())
        .map(|_| {
            let seed = seeds[rng.below(seeds.len())];
            let n = prompts_per_seed[&seed];
            (seed, (0..n).map(|_| rng.below(n)).collect())
        })
        .collect()
}

/// The identity draw: every seed once, every prompt once.
fn observed(prompts_per_seed: &BTreeMap<u64, usize>) -> Draw {
    prompts_per_seed
        .iter()
        .map(|(&seed, &n)| (seed, (0..n).collect()))
        .collect()
}

/// Mean over drawn seeds of each seed's pass@1 over its drawn prompts (`None` when a
/// drawn seed has no outcomes here).
fn mean_pass(outcomes: &Outcomes, draw: &Draw) -> Option<f64> {
    let mut total = 0.0;
    for (seed, idx) in draw {
        let o = outcomes.get(seed)?;
        let solved = idx
            .iter()
            .filter(|&&i| o.get(i).copied().unwrap_or(false))
            .count();
        total += solved as f64 / idx.len().max(1) as f64;
    }
    Some(total / draw.len().max(1) as f64)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn interval(mean: f64, mut reps: Vec<f64>) -> Interval {
    reps.retain(|r| r.is_finite());
    reps.sort_by(f64::total_cmp);
    Interval {
        mean,
        lo: percentile(&reps, 0.025),
        hi: percentile(&reps, 0.975),
    }
}

fn sizes(outcomes: &Outcomes) -> BTreeMap<u64, usize> {
    outcomes.iter().map(|(&s, o)| (s, o.len())).collect()
}

/// pass@1 of one arm at one step (mean over seeds) with its interval.
pub fn pass_at_1(outcomes: &Outcomes, rng_seed: u64) -> Interval {
    let n = sizes(outcomes);
    let mut rng = Rng(rng_seed);
    let reps = (0..REPLICATES)
        .filter_map(|_| mean_pass(outcomes, &draw(&mut rng, &n)))
        .collect();
    interval(mean_pass(outcomes, &observed(&n)).unwrap_or(f64::NAN), reps)
}

/// `a − b` at one step, paired by seed and prompt: only seeds both arms have count.
pub fn difference(a: &Outcomes, b: &Outcomes, rng_seed: u64) -> Interval {
    let n: BTreeMap<u64, usize> = sizes(a)
        .into_iter()
        .filter_map(|(s, len)| b.get(&s).map(|o| (s, len.min(o.len()))))
        .collect();
    let diff = |d: &Draw| Some(mean_pass(a, d)? - mean_pass(b, d)?);
    let mut rng = Rng(rng_seed);
    let reps = (0..REPLICATES)
        .filter_map(|_| diff(&draw(&mut rng, &n)))
        .collect();
    interval(diff(&observed(&n)).unwrap_or(f64::NAN), reps)
}

/// The first evaluated step at which an arm's pass@1 is at least `gain` above its step-0
/// value, on the data and over replicates: the observed step (None: never), the 2.5th
/// and 97.5th percentiles over the replicates that reached it, and the share of
/// replicates that reached it at all. `by_step` maps each evaluated step to its outcomes.
pub fn steps_to_gain(
    by_step: &BTreeMap<u64, Outcomes>,
    gain: f64,
    rng_seed: u64,
) -> (Option<u64>, Option<(u64, u64)>, f64) {
    let Some(base) = by_step.get(&0) else {
        return (None, None, 0.0);
    };
    let n = sizes(base);
    let first = |d: &Draw| -> Option<u64> {
        let start = mean_pass(base, d)?;
        by_step
            .iter()
            .filter(|(&step, _)| step > 0)
            .find(|(_, o)| mean_pass(o, d).is_some_and(|p| p >= start + gain))
            .map(|(&step, _)| step)
    };
    let mut rng = Rng(rng_seed);
    let mut reached: Vec<u64> = Vec::new();
    for _ in 0..REPLICATES {
        if let Some(step) = first(&draw(&mut rng, &n)) {
            reached.push(step);
        }
    }
    reached.sort_unstable();
    let share = reached.len() as f64 / REPLICATES as f64;
    let range = (!reached.is_empty()).then(|| {
        let at = |q: f64| reached[((reached.len() - 1) as f64 * q).round() as usize];
        (at(0.025), at(0.975))
    });
    (first(&observed(&n)), range, share)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(rates: &[(u64, f64)], prompts: usize) -> Outcomes {
        rates
            .iter()
            .map(|&(seed, rate)| {
                let solved = (rate * prompts as f64).round() as usize;
                (seed, (0..prompts).map(|i| i < solved).collect())
            })
            .collect()
    }

    #[test]
    fn the_interval_covers_the_mean_and_narrows_with_more_prompts() {
        let small = pass_at_1(&arm(&[(1, 0.3), (2, 0.4)], 32), 7);
        let large = pass_at_1(&arm(&[(1, 0.3), (2, 0.4)], 512), 7);
        for i in [small, large] {
            assert!((i.mean - 0.35).abs() < 0.02, "{i:?}");
            assert!(i.lo <= i.mean && i.mean <= i.hi, "{i:?}");
        }
        assert!(
            large.hi - large.lo < small.hi - small.lo,
            "{small:?} {large:?}"
        );
    }

    #[test]
    fn a_large_paired_difference_excludes_zero_and_none_does_not() {
        let seeds = [(1, 0.2), (2, 0.25), (3, 0.3)];
        let base = arm(&seeds, 256);
        let better = arm(&seeds.map(|(s, r)| (s, r + 0.15)), 256);
        let d = difference(&better, &base, 3);
        assert!(d.excludes_zero() && (d.mean - 0.15).abs() < 0.01, "{d:?}");
        let same = difference(&base, &base, 3);
        assert!(!same.excludes_zero() && same.mean == 0.0, "{same:?}");
    }

    #[test]
    fn steps_to_gain_finds_the_first_step_and_says_when_it_is_never_reached() {
        let seeds = |r: f64| arm(&[(1, r), (2, r)], 256);
        let by_step: BTreeMap<u64, Outcomes> = [
            (0, seeds(0.1)),
            (10, seeds(0.15)),
            (20, seeds(0.3)),
            (30, seeds(0.35)),
        ]
        .into();
        let (step, range, share) = steps_to_gain(&by_step, 0.10, 5);
        assert_eq!(step, Some(20));
        let (lo, hi) = range.expect("reached in replicates");
        assert!(lo <= 20 && hi >= 20 && share > 0.9, "{lo} {hi} {share}");
        let flat: BTreeMap<u64, Outcomes> = [(0, seeds(0.1)), (10, seeds(0.12))].into();
        let (step, _, share) = steps_to_gain(&flat, 0.10, 5);
        assert_eq!(step, None);
        assert!(share < 0.05, "{share}");
    }
}
