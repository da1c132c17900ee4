//! `grail-validator`: command-line front-end of the grail validator role and the
//! local-network commands. Argument parsing only: the logic lives in grail-node.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use grail_lab::localnet;

/// grail validator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify bundles every window, seal archives, set weights, serve the HTTP API.
    Validate(grail_node::cli::RoleArgs),
    /// Re-verify a sealed window offline and compare every verdict with the archive
    /// (exits non-zero on a disagreement).
    Reverify(grail_validate::reverify_cli::ReverifyArgs),
    /// A whole network on this machine.
    #[command(subcommand)]
    Localnet(LocalnetCommand),
}

#[derive(Debug, Subcommand)]
enum LocalnetCommand {
    /// Create chain, beacon key, hotkeys, buckets and one config per participant; print
    /// the first window.
    Init(localnet::InitArgs),
    /// Serve the local drand beacon (until Ctrl-C).
    Beacon {
        /// Folder of the network.
        #[arg(long, env = "GRAIL_LOCALNET")]
        root: PathBuf,
    },
    /// Print the per-window summary table; with `--expect`, exit non-zero when the run
    /// fell short of it.
    Summary {
        /// Folder of the network.
        #[arg(long, env = "GRAIL_LOCALNET")]
        root: PathBuf,
        /// `most-windows`: most windows have accepted groups and a training step was
        /// taken; `every-window`: every miner in every window after the first.
        #[arg(long, value_enum)]
        expect: Option<localnet::Expect>,
    },
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Validate(args) => runtime
            .block_on(grail_validate::run_cli(args))
            .context("validator"),
        Command::Reverify(args) => runtime
            .block_on(grail_validate::reverify_cli::run(
                &args,
                &mut std::io::stdout(),
            ))
            .with_context(|| format!("re-verifying window {}", args.window)),
        Command::Localnet(LocalnetCommand::Init(args)) => {
            let info = localnet::init(&args.root, &args.options())
                .with_context(|| format!("creating a local network in {}", args.root.display()))?;
            println!("{}", info.start_window);
            Ok(())
        }
        Command::Localnet(LocalnetCommand::Beacon { root }) => runtime
            .block_on(localnet::serve_beacon(&root))
            .with_context(|| format!("local beacon of {}", root.display())),
        Command::Localnet(LocalnetCommand::Summary { root, expect }) => {
            print!(
                "{}",
                localnet::summary(&root)
                    .with_context(|| format!("summary of {}", root.display()))?
            );
            let Some(expect) = expect else {
                return Ok(());
            };
            let problems = localnet::Outcome::read(&root)
                .with_context(|| format!("outcome of {}", root.display()))?
                .problems(expect);
            anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
            Ok(())
        }
    }
}
