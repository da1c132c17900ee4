//! `grail-validator`: command-line front-end of the grail validator role (logic lives in grail-node).

use clap::Parser;

/// grail validator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    let role = grail_node::Role::Validator;
    anyhow::bail!(
        "the {} role loop is not built yet (see the grail-node issue)",
        role.name()
    )
}
