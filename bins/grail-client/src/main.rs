//! `grail-client`: command-line front-end of the v2 job API. Argument parsing only: the
//! logic lives in the grail-client library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// grail job client: submit a job to a validator's gateway, follow its verified rollouts.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The gateway (a validator's API), e.g. http://127.0.0.1:8091.
    #[arg(long, env = "GRAIL_GATEWAY")]
    gateway: String,
    /// A file whose first line is the API key (default: the GRAIL_API_KEY variable).
    #[arg(long)]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit a job; prints its id.
    Submit(SubmitArgs),
    /// Print a job's status as JSON.
    Status {
        /// The job id.
        id: String,
    },
    /// Follow a job's verified rollouts into an NDJSON file until the job ends (resumes
    /// after the file's last rollout).
    Follow {
        /// The job id.
        id: String,
        /// The NDJSON file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write every rollout delivered so far to a Parquet file.
    Export {
        /// The job id.
        id: String,
        /// The Parquet file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Download a job's canonical document, checked against its id, to stdout.
    Job {
        /// The job id.
        id: String,
    },
    /// Summarize an NDJSON file of rollouts (as `follow` writes it); needs no gateway.
    Summarize {
        /// The NDJSON file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct SubmitArgs {
    /// Prompts, JSONL: {"prompt": …} or {"messages": […]}, optional "answer" and "meta".
    #[arg(long)]
    prompts: PathBuf,
    /// `exact`, `numeric[:TOLERANCE]`, `regex:PATTERN`, `choice:A,B,C,D` or `wasm:FILE` (.wasm or .wat)
    #[arg(long)]
    reward: String,
    /// Rollouts per group.
    #[arg(long, default_value_t = 8)]
    group_size: u32,
    /// Most tokens per completion.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: u32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Groups wanted per prompt.
    #[arg(long, default_value_t = 1)]
    groups_per_prompt: u32,
    /// Hours until the deadline.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Reward at or above which a rollout counts as solved.
    #[arg(long, default_value_t = 1.0)]
    pass_threshold: f64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Summarize { file } = &cli.command {
        print!("{}", grail_client::summarize_file(file)?);
        return Ok(());
    }
    let key = grail_client::api_key(cli.key_file.as_deref())?;
    let client = grail_client::Client::new(&cli.gateway, &key)?;
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Submit(a) => {
            let options = grail_client::JobOptions {
                group_size: a.group_size,
                max_new_tokens: a.max_new_tokens,
                temperature: a.temperature,
                groups_per_prompt: a.groups_per_prompt,
                deadline_secs: (a.hours * 3600.0).max(0.0) as u64,
                pass_threshold: a.pass_threshold,
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let request = grail_client::build_request(&a.prompts, &a.reward, &options, now)?;
            let accepted = rt.block_on(client.submit(&request)).context("submit")?;
            println!("{}", accepted.id);
        }
        Command::Status { id } => {
            let status = rt.block_on(client.status(&id)).context("status")?;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        Command::Follow { id, out } => {
            let end = rt
                .block_on(grail_client::follow_to_file(&client, &id, &out))
                .context("follow")?;
            eprintln!("{end} rollouts in {}", out.display());
        }
        Command::Export { id, out } => {
            let rows = rt
                .block_on(grail_client::export(&client, &id, &out))
                .context("export")?;
            eprintln!("{rows} rollouts written to {}", out.display());
        }
        Command::Job { id } => {
            let job = rt.block_on(client.job(&id)).context("job")?;
            println!("{}", String::from_utf8_lossy(&job.canonical_bytes()));
        }
        Command::Summarize { .. } => {}
    }
    Ok(())
}
