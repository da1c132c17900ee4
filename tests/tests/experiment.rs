//! The learning-efficacy experiment driver on the tiny model: every step goes through the
//! miners', validator's and trainer's code; honest groups are all accepted; evaluation rows
//! and the summary are written; an existing run is never overwritten.

use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_lab::experiment::{run, ExperimentArgs, Summary};
use grail_node::config::PromptChoice;

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
        generous_tokens: 8,
        generous_every: 0,
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
        // Steps 0, 1 and 2 at the training budget, 0 and 2 also at the generous one.
        let evaluated: Vec<(u64, u32)> = summary.evals.iter().map(|e| (e.step, e.budget)).collect();
        assert_eq!(evaluated, [(0, 4), (0, 8), (1, 4), (2, 4), (2, 8)]);
        assert!(summary.evals.iter().all(|e| e.report.prompts == 3));
        assert!(summary.evals.iter().all(|e| e.report.per_prompt.len() == 3));
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
            6
        );
        // One row per prompt and evaluation, for intervals over prompts.
        let per_prompt = std::fs::read_to_string(out.join("eval_prompts.csv")).unwrap();
        assert_eq!(per_prompt.lines().count(), 1 + 5 * 3, "{per_prompt}");
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

#[test]
fn batched_evaluation_scores_every_prompt_as_one_at_a_time_does() {
    use grail_lab::eval::{evaluate_batched, HeldOut};
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    write_tiny_model(&TinySpec::default(), &model).unwrap();
    let context = grail_node::context::ModelContext::load(&model, tch::Device::Cpu).unwrap();
    let env = grail_env::by_name("math:0 + math:1", None).unwrap();
    let held_out = HeldOut::draw(env.as_ref(), 20, 3).unwrap();
    let report = |batch| {
        evaluate_batched(&context, env.as_ref(), &held_out, 12, batch, &mut |_, _| {}).unwrap()
    };
    let (one, batched) = (report(1), report(16));
    assert_eq!(one.per_prompt.len(), 20);
    // Same prompts, same order, same completions' lengths and scores.
    assert_eq!(one.per_prompt, batched.per_prompt);
    assert_eq!(one.by_stratum, batched.by_stratum);
}
