//! The proof audit's [`Report`] rendered as Markdown tables.

use super::run::Report;

impl Report {
    /// The report as markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = String::from("### Honest drift (against fp32, one sequence per forward)\n\n| condition | rule | positions | max distance | p99.99 distance | failed positions |\n|---|---|---|---|---|---|\n");
        for row in &self.drift {
            for (rule, d) in self.rules.iter().zip(&row.drift) {
                s += &format!(
                    "| {} | {rule} | {} | {} | {} | {} |\n",
                    row.condition, d.positions, d.max, d.p9999, d.failures
                );
            }
        }
        s += "\n### Forgery acceptance (completion positions)\n\n| substitute | rule (K, misses allowed) | positions | p1 distance | largest tolerance keeping ≤ 2^-40 | per-position pass rate | log2 P(rollout accepted) |\n|---|---|---|---|---|---|---|\n";
        for row in &self.forgery {
            for ((rule, (k, m)), f) in self.rules.iter().zip(&self.challenge).zip(&row.forgery) {
                let acc = if f.log2_rollout_acceptance.is_finite() {
                    format!("{:.1}", f.log2_rollout_acceptance)
                } else {
                    "−∞".into()
                };
                s += &format!(
                    "| {} | {rule} ({k}, {m}) | {} | {} | {} | {:.4} | {acc} |\n",
                    row.substitute,
                    f.positions,
                    f.p01,
                    f.largest_safe_tolerance,
                    f.rate()
                );
            }
        }
        s
    }
}
