//! `grail-trainer`: command-line front-end of the grail trainer role (logic lives in
//! grail-node and grail-grpo).

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => tokio::runtime::Runtime::new()?
            .block_on(grail_node::cli::run_role(grail_node::Role::Trainer, args))
            .map_err(|e| anyhow::anyhow!("trainer: {e}")),
    }
}
