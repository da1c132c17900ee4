//! `grail-miner`: command-line front-end of the grail miner role. Argument parsing only:
//! the logic lives in grail-node (`miner`, `model_tools`).

use anyhow::Context;
use clap::{Parser, Subcommand};

/// grail miner.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mine: generate, prove and upload rollouts every window.
    Mine(grail_node::cli::RoleArgs),
    /// Model files: import a GGUF, write the tiny test model, try a model.
    #[command(subcommand)]
    Model(grail_lab::model_tools::ModelCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mine(args) => tokio::runtime::Runtime::new()?
            .block_on(grail_mine::run_cli(args))
            .context("miner"),
        Command::Model(command) => grail_lab::model_tools::run(command).context("model"),
    }
}
