//! The learning-efficacy experiment driver on the tiny model: every step goes through the
//! miners', validator's and trainer's code; honest groups are all accepted; evaluation rows
//! and the summary are written; an existing run is never overwritten.

use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_node::config::PromptChoice;
use grail_node::experiment::{run, ExperimentArgs, Summary};

fn args(
    model: std::path::PathBuf,
    out: std::path::PathBuf,
    strategy: PromptChoice,
) -> ExperimentArgs {
    ExperimentArgs {
        model,
        environment: "math:0 + math:1".into(),
        dataset: None,
        strategy,
        steps: 2,
        miners: 2,
        groups_per_miner: 2,
        group_size: 2,
        max_new_tokens: 4,
        temperature_milli: 1000,
        eval_prompts: 3,
        eval_every: 1,
        seed: 7,
        grpo: None,
        all_groups: true,
        threads: 1,
        device: Default::default(),
        out,
    }
}

#[test]
fn experiment_runs_every_role_and_keeps_held_out_prompts_out() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    write_tiny_model(&TinySpec::default(), &model).unwrap();
    for strategy in [PromptChoice::Zone, PromptChoice::Random] {
        let out = tmp.path().join(format!("{strategy:?}"));
        let mut lines = Vec::new();
        let summary = run(&args(model.clone(), out.clone(), strategy), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert_eq!(summary.evals.len(), 3, "step 0, 1 and 2");
        assert!(summary.evals.iter().all(|e| e.report.prompts == 3));
        let steps = std::fs::read_to_string(out.join("steps.csv")).unwrap();
        let rows: Vec<Vec<&str>> = steps
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            // submitted = 2 miners × 2 groups, every honest group accepted.
            assert_eq!((r[1], r[2]), ("4", "4"), "{steps}");
        }
        assert_eq!(
            std::fs::read_to_string(out.join("eval.csv"))
                .unwrap()
                .lines()
                .count(),
            4
        );
        let saved: Summary =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(saved.held_out, summary.held_out);
        assert!(lines.iter().any(|l| l.contains("held-out pass@1")));
        // The same folder again is refused rather than overwritten.
        let again = run(&args(model.clone(), out.clone(), strategy), &mut |_| {});
        assert!(again
            .unwrap_err()
            .to_string()
            .contains("already holds a run"));
    }
}
