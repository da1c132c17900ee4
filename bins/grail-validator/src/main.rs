//! `grail-validator`: command-line front-end of the grail validator role (logic lives in
//! grail-node), and the local-network commands.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use grail_node::config::SubnetSettings;
use grail_node::localnet::{self, LocalnetOptions};

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
    /// A whole network on this machine.
    #[command(subcommand)]
    Localnet(LocalnetCommand),
}

#[derive(Debug, Subcommand)]
enum LocalnetCommand {
    /// Create chain, beacon key, hotkeys, buckets and one config per participant; print
    /// the first window.
    Init {
        /// Folder of the network (must not hold one).
        #[arg(long, env = "GRAIL_LOCALNET")]
        root: PathBuf,
        /// Base model folder.
        #[arg(long, env = "GRAIL_MODEL")]
        model: PathBuf,
        /// Number of miners.
        #[arg(long, default_value_t = 2)]
        miners: usize,
        /// Milliseconds per block.
        #[arg(long, default_value_t = 1000)]
        block_ms: u64,
        /// Blocks per window.
        #[arg(long, default_value_t = 24)]
        window_length: u64,
        /// Completion tokens per rollout.
        #[arg(long, default_value_t = 32)]
        max_new_tokens: u32,
        /// Rollouts per group.
        #[arg(long, default_value_t = 4)]
        group_size: usize,
        /// Environment spec (default: math tiers 0–3, the experiment's task).
        #[arg(long, default_value = grail_node::experiment::DEFAULT_ENVIRONMENT)]
        environment: String,
        /// Seconds before the first window may start (model loading).
        #[arg(long, default_value_t = 20)]
        lead_secs: u64,
        /// libtorch threads per process.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Serve the local drand beacon (until Ctrl-C).
    Beacon {
        /// Folder of the network.
        #[arg(long, env = "GRAIL_LOCALNET")]
        root: PathBuf,
    },
    /// Print the per-window summary table.
    Summary {
        /// Folder of the network.
        #[arg(long, env = "GRAIL_LOCALNET")]
        root: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Validate(args) => runtime
            .block_on(grail_node::cli::run_role(grail_node::Role::Validator, args))
            .map_err(|e| anyhow::anyhow!("validator: {e}")),
        Command::Localnet(LocalnetCommand::Init {
            root,
            model,
            miners,
            block_ms,
            window_length,
            max_new_tokens,
            group_size,
            environment,
            lead_secs,
            threads,
        }) => {
            let options = LocalnetOptions {
                model,
                miners,
                block_time_ms: block_ms,
                subnet: SubnetSettings {
                    window_length,
                    environment,
                    group_size,
                    max_new_tokens,
                    ..SubnetSettings::default()
                },
                lead_secs,
                threads,
                // The experiment's coefficients: a short run must move the model.
                trainer: grail_node::config::TrainerSettings {
                    grpo: grail_node::experiment::default_grpo(),
                    ..Default::default()
                },
                prompts: grail_node::config::PromptChoice::Zone,
            };
            let info = localnet::init(&root, &options)
                .with_context(|| format!("creating a local network in {}", root.display()))?;
            println!("{}", info.start_window);
            Ok(())
        }
        Command::Localnet(LocalnetCommand::Beacon { root }) => runtime
            .block_on(localnet::serve_beacon(&root))
            .with_context(|| format!("local beacon of {}", root.display())),
        Command::Localnet(LocalnetCommand::Summary { root }) => {
            print!(
                "{}",
                localnet::summary(&root)
                    .with_context(|| format!("summary of {}", root.display()))?
            );
            Ok(())
        }
    }
}
