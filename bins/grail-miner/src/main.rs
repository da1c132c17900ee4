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
    Mine,
    /// Model files: import a GGUF, write the tiny test model, try a model.
    #[command(subcommand)]
    Model(model::ModelCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mine => {
            let role = grail_node::Role::Miner;
            anyhow::bail!(
                "the {} role loop is not built yet (see the grail-node issue)",
                role.name()
            )
        }
        Command::Model(command) => model::run(command),
    }
}
