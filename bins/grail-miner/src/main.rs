//! `grail-miner`: command-line front-end of the grail miner role (logic lives in grail-node
//! and grail-infer; this file parses arguments and wires them).

mod model;

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
    Model(model::ModelCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mine(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime
                .block_on(grail_node::cli::run_role(grail_node::Role::Miner, args))
                .map_err(|e| anyhow::anyhow!("miner: {e}"))
        }
        Command::Model(command) => model::run(command),
    }
}
