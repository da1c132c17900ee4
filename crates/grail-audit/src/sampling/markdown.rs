//! A sampling [`Report`] rendered as Markdown tables at a margin, with a margin sweep
//! and the simulated search over choice positions.

use super::run::Report;
use super::stats::{quantile, upper_95, DriftSummary, StrategySummary, WINDOW_ROLLOUTS};

/// A log2 probability for a table: one decimal, −∞ for zero.
fn log2_text(x: f64) -> String {
    if x == f64::NEG_INFINITY {
        "−∞".into()
    } else {
        format!("{x:.1}")
    }
}

impl Report {
    /// The simulated search over choice positions (`choice_search::simulate`) at the
    /// reference's measured choice share at `margin`, next to v4's share and caps.
    fn search_markdown(&self, margin: f64) -> String {
        use crate::choice_search::{simulate, SearchParams};
        use grail_proto::params::{
            GROUPS_CHECKED, SAMPLING_SAMPLE_AMBIGUOUS_BASE, SAMPLING_SAMPLE_AMBIGUOUS_PER,
        };
        let Some(reference) = self.drift(margin).into_iter().next() else {
            return String::new();
        };
        let rollouts = self.honest[0].checked.len().max(1);
        let len = (reference.positions / rollouts).max(1);
        let share = reference.choices as f64 / reference.positions.max(1) as f64;
        let sample_positions = GROUPS_CHECKED * 8 * len;
        let v5 = SearchParams {
            group_size: 8,
            rollout_len: len,
            success: 0.0,
            choice_share: share,
            per_group_budget: 1,
            groups_checked: GROUPS_CHECKED,
            sample_cap: SAMPLING_SAMPLE_AMBIGUOUS_BASE
                + sample_positions / SAMPLING_SAMPLE_AMBIGUOUS_PER,
            ambiguous_credited: false,
        };
        // The same share if groups that needed the margin were credited as zone work.
        let v5_credited = SearchParams {
            ambiguous_credited: true,
            ..v5
        };
        let v4 = SearchParams {
            choice_share: 0.116,
            per_group_budget: usize::MAX,
            sample_cap: usize::MAX,
            ambiguous_credited: true,
            ..v5
        };
        let mut s = format!("\n### Searching over choice positions (simulated, `choice_search::simulate`)\n\nA miner claims the other token at a choice position of a flat group (all rollouts failed or all succeeded), which re-rolls the rest of that rollout, until the group lands in the learning zone (the only credited groups); 200 windows of 32 groups of 8 rollouts of {len} tokens (the corpus mean), a re-rolled rollout succeeding with probability p, every choice usable. v5: the reference's choice share at margin {margin:e} ({share:.2e}), one choice kept per group, a group that needed the margin not credited as zone work (`rules::group::credited_in_zone`), windows zeroed when the {GROUPS_CHECKED} checked groups hold more than {} ambiguous positions (the sample cap). v4: a choice at 11.6 % of positions (the v4 audit), no sample cap. One flip puts a flat group in the zone, so the per-rollout caps do not bind.\n\n| p | honest in-zone share | rule | attacker in-zone share | windows zeroed | compute | credit per compute vs honest |\n|---|---|---|---|---|---|---|\n", v5.sample_cap);
        for p in [0.1, 0.3, 0.5, 0.7, 0.9] {
            for (rule, params) in [
                ("v5", v5),
                ("v5 if ambiguous groups were credited", v5_credited),
                ("v4", v4),
            ] {
                let g = simulate(
                    &SearchParams {
                        success: p,
                        ..params
                    },
                    200,
                    32,
                    11,
                );
                s += &format!(
                    "| {p} | {:.3} | {rule} | {:.3} | {:.1} % | {:.3}× | {:.3}× |\n",
                    g.honest_in_zone,
                    g.attacker_in_zone,
                    100.0 * g.zeroed,
                    g.compute_ratio,
                    g.credit_per_compute
                );
            }
        }
        s
    }

    /// The report as markdown at `margin`, with a sweep over `sweep` margins.
    pub fn markdown(&self, margin: f64, sweep: &[f64]) -> String {
        let mut s = format!("### Honest drift (completion positions; margin {margin:e})\n\nEach claimed token's gap (its Gumbel-perturbed score minus the best other token's, in logit/T units) recomputed by the validator with the public noise. Shift: largest |Δ gap| against the reference. Excess: how far a gap lies below 0. Ambiguous: gap in [−margin, 0], tolerated up to `allowed_ambiguous(n)` per rollout of n tokens and `allowed_ambiguous_in_sample` per window of {WINDOW_ROLLOUTS} rollouts. Choices: positions where a token other than the claimed one would also pass (|gap| ≤ margin).\n\n| condition | positions | max shift | p99.99 shift | max excess | positions with gap ≤ 0 | ambiguous (most in one rollout) | choices | misses | rollouts rejected | windows over the sample cap |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for d in self.drift(margin) {
            s += &format!(
                "| {} | {} | {:.2e} | {:.2e} | {:.2e} | {} | {} ({}) | {} ({:.3} %) | {} | {} | {} of {} |\n",
                d.condition,
                d.positions,
                d.max_shift,
                d.p9999_shift,
                d.max_excess,
                d.outside,
                d.ambiguous,
                d.max_ambiguous_in_rollout,
                d.choices,
                100.0 * d.choices as f64 / d.positions.max(1) as f64,
                d.misses,
                d.rejected,
                d.windows_over_cap,
                d.windows
            );
        }
        if self.bf16.is_some() {
            let v = self.bf16_rollout_excess();
            s += &format!(
                "\n### bf16 sampling with the public noise, checked in fp32\n\nPer-rollout largest excess (the margin needed to admit that rollout): median {:.2e}, 90th percentile {:.2e}, max {:.2e} over {} rollouts.\n",
                quantile(&v, 0.5),
                quantile(&v, 0.9),
                v.last().copied().unwrap_or(0.0),
                v.len()
            );
        }
        s += &format!("\n### Off-policy rollouts (margin {margin:e})\n\nDivergent position: the claimed token's recomputed gap is not positive (the validator's sampler draws another token there). q: share of divergent positions within the margin (ambiguous), 95 % upper bound in brackets. A differing rollout passes only if every divergent position is ambiguous and there are at most `allowed_ambiguous(n)` of them. Bounds on P(accept) per differing rollout: empirical (95 % Clopper-Pearson / rule of three on accepted ÷ differing), and q_up^d for a rollout with d divergent positions (positions taken as independent; 0 above the cap): for the rollout with the fewest (d_min), the mean over the differing rollouts, and how many differing rollouts stay above 2^-40.\n\n| strategy | rollouts | differing | accepted | identical rejected | divergent positions | ambiguous (q [95 % up]) | d_min / median d | over the cap | log2 P(accept) empirical | log2 bound at d_min | log2 mean bound | rollouts with bound > 2^-40 | closest rollout (its max excess) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for st in self.strategies(margin) {
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} ({:.2e} [{:.2e}]) | {} / {} | {} | {} | {} | {} | {} | {:.2e} |\n",
                st.name,
                st.rollouts,
                st.differing,
                st.accepted,
                st.identical_rejected,
                st.divergent,
                st.ambiguous,
                st.q(),
                st.q_upper(),
                st.min_divergent,
                st.median_divergent,
                st.over_cap,
                log2_text(st.log2_empirical()),
                log2_text(st.log2_bound_min()),
                log2_text(st.log2_expected()),
                st.above(-40.0),
                st.closest
            );
        }
        s += &self.search_markdown(margin);
        let (accepted, positions) = self.edit_acceptance(margin);
        s += &format!("\n### One edited token with an honest continuation (every honest position)\n\nThe token replaced by the most likely other (non-EOS) token and the rest resampled honestly, so that the edit is the rollout's only divergent position: accepted at {accepted} of {positions} positions (rate {:.2e}, 95 % upper {:.2e}, log2 {:.1}).\n", accepted as f64 / positions.max(1) as f64, upper_95(accepted, positions), upper_95(accepted, positions).log2());
        s += "\n### Margin sweep: honest rollouts (all conditions)\n\n| margin | misses | rollouts rejected | ambiguous positions | most ambiguous in one rollout | windows over the sample cap | choices (reference) | single-edit acceptance (per position) |\n|---|---|---|---|---|---|---|---|\n";
        for &m in sweep {
            let drift = self.drift(m);
            let sum = |f: fn(&DriftSummary) -> usize| drift.iter().map(f).sum::<usize>();
            let most = drift
                .iter()
                .map(|d| d.max_ambiguous_in_rollout)
                .max()
                .unwrap_or(0);
            let choices = drift
                .first()
                .map_or(0.0, |d| d.choices as f64 / d.positions.max(1) as f64);
            let (ea, ep) = self.edit_acceptance(m);
            s += &format!(
                "| {m:e} | {} | {} | {} | {most} | {} | {:.3} % | {:.2e} |\n",
                sum(|d| d.misses),
                sum(|d| d.rejected),
                sum(|d| d.ambiguous),
                sum(|d| d.windows_over_cap),
                100.0 * choices,
                ea as f64 / ep.max(1) as f64
            );
        }
        s += "\n### Margin sweep: off-policy rollouts\n\nPer margin: differing rollouts accepted / differing; q; log2 mean bound.\n\n| strategy |";
        for &m in sweep {
            s += &format!(" {m:e} |");
        }
        s += "\n|---|";
        s += &"---|".repeat(sweep.len());
        s += "\n";
        let per_margin: Vec<Vec<StrategySummary>> =
            sweep.iter().map(|&m| self.strategies(m)).collect();
        for (i, st) in self.strategies(margin).iter().enumerate() {
            s += &format!("| {} |", st.name);
            for at in &per_margin {
                let x = &at[i];
                s += &format!(
                    " {} / {}; {:.1e}; {} |",
                    x.accepted,
                    x.differing,
                    x.q(),
                    log2_text(x.log2_expected())
                );
            }
            s += "\n";
        }
        s
    }
}
