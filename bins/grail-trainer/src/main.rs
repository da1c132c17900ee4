//! `grail-trainer`: command-line front-end of the grail trainer role. Argument parsing
//! only: the logic lives in grail-node (`trainer`, `eval`, `experiment`) and grail-grpo.

use anyhow::Context;
use clap::{Parser, Subcommand};

/// grail trainer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train on verified rollouts every window and publish checkpoints.
    Train(grail_node::cli::RoleArgs),
    /// Evaluate a model on held-out prompts: greedy pass@1 and mean reward (JSON).
    Eval(grail_lab::eval::EvalArgs),
    /// Export the accepted rollouts of sealed windows as a Parquet dataset.
    Export(grail_train::export::ExportArgs),
    /// Run one arm of the learning-efficacy experiment (docs/experiments.md).
    Experiment(grail_lab::experiment::ExperimentArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => tokio::runtime::Runtime::new()?
            .block_on(grail_train::run_cli(args))
            .context("trainer"),
        Command::Eval(args) => {
            let mut line = grail_node::progress::ProgressLine::stderr();
            let report = grail_lab::eval::run(&args, &mut |done, total| {
                line.update(grail_node::progress::Progress::new(
                    "evaluating",
                    done as u64,
                    total as u64,
                ))
            })
            .context("eval")?;
            line.finish();
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Export(args) => {
            tokio::runtime::Runtime::new()?
                .block_on(grail_train::export::run(&args))
                .with_context(|| format!("exporting to {}", args.out.display()))?;
            Ok(())
        }
        Command::Experiment(args) => {
            grail_lab::experiment::run(&args, &mut |line| eprintln!("experiment: {line}"))
                .context("experiment")?;
            Ok(())
        }
    }
}
