//! `grail-trainer`: command-line front-end of the grail trainer role (logic lives in grail-node).

use clap::Parser;

/// grail trainer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    let role = grail_node::Role::Trainer;
    anyhow::bail!(
        "the {} role loop is not built yet (see the grail-node issue)",
        role.name()
    )
}
