//! What the three binaries share: role flags (each with an environment variable, over a
//! TOML configuration file), logging, Ctrl-C handling and the start-up every role loop needs.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tracing::info;

use crate::config::NodeConfig;
use crate::network::{stop_signal, Stop};
use crate::wiring::Wiring;
use crate::{NodeError, Role};

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The configuration file and the flags that override it: what every command that acts
/// as a participant needs (`mine`, `validate`, `train`, `reverify`, `export`).
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "GRAIL_CONFIG")]
    pub config: PathBuf,
    /// Network: local, test, finney or a ws:// / wss:// URL.
    #[arg(long, env = "GRAIL_NETWORK")]
    pub network: Option<String>,
    /// Subnet id.
    #[arg(long, env = "GRAIL_NETUID")]
    pub netuid: Option<u16>,
    /// Hotkey file (overrides --wallet/--hotkey).
    #[arg(long, env = "GRAIL_HOTKEY_FILE")]
    pub hotkey_file: Option<PathBuf>,
    /// Bittensor wallet name (with --hotkey: ~/.bittensor/wallets/WALLET/hotkeys/HOTKEY).
    #[arg(long, env = "GRAIL_WALLET", requires = "hotkey")]
    pub wallet: Option<String>,
    /// Bittensor hotkey name.
    #[arg(long, env = "GRAIL_HOTKEY", requires = "wallet")]
    pub hotkey: Option<String>,
    /// This participant's bucket: local:DIR, s3:BUCKET or r2:BUCKET.
    #[arg(long, env = "GRAIL_STORE")]
    pub store: Option<String>,
    /// Base model folder.
    #[arg(long, env = "GRAIL_MODEL")]
    pub model: Option<PathBuf>,
    /// State folder.
    #[arg(long, env = "GRAIL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// libtorch threads.
    #[arg(long, env = "GRAIL_THREADS")]
    pub threads: Option<usize>,
    /// Model device: auto (CUDA when libtorch sees a GPU), cpu, cuda or cuda:N.
    #[arg(long, env = "GRAIL_DEVICE")]
    pub device: Option<grail_infer::DeviceChoice>,
}

impl ConfigArgs {
    /// The configuration file with the flags applied.
    ///
    /// # Errors
    /// The file cannot be read or is not a valid configuration.
    pub fn node_config(&self) -> Result<NodeConfig, NodeError> {
        let mut c = NodeConfig::load(&self.config)?;
        if let Some(v) = &self.network {
            c.network = v.clone();
        }
        if let Some(v) = self.netuid {
            c.netuid = v;
        }
        if let (Some(wallet), Some(hotkey)) = (&self.wallet, &self.hotkey) {
            c.hotkey_file = grail_chain::keys::hotkey_path(
                &grail_chain::keys::default_wallets_dir(),
                wallet,
                hotkey,
            );
        }
        if let Some(v) = &self.hotkey_file {
            c.hotkey_file = v.clone();
        }
        if let Some(v) = &self.store {
            c.store = v.clone();
        }
        if let Some(v) = &self.model {
            c.model = v.clone();
        }
        if let Some(v) = &self.state_dir {
            c.state_dir = v.clone();
        }
        if let Some(v) = self.threads {
            c.threads = v;
        }
        if let Some(v) = self.device {
            c.device = v;
        }
        Ok(c)
    }

    /// Opens the participant the configuration describes: configuration, hotkey (its
    /// password from the environment or asked on the terminal), chain, stores.
    ///
    /// # Errors
    /// Configuration, key, chain or store failures.
    pub async fn wiring(&self) -> Result<Wiring, NodeError> {
        let config = self.node_config()?;
        let password = password_for(&config.hotkey_file)?;
        Wiring::open_with_password(config, password).await
    }
}

/// Flags of `mine`, `validate` and `train`. Flags override the configuration file.
#[derive(Debug, Clone, Args)]
pub struct RoleArgs {
    /// The configuration and its overrides.
    #[command(flatten)]
    pub node: ConfigArgs,
    /// First window to work on (default: the current one; restarts resume).
    #[arg(long, env = "GRAIL_FROM_WINDOW")]
    pub from_window: Option<u64>,
    /// Stop after this many windows (default: run until Ctrl-C).
    #[arg(long, env = "GRAIL_WINDOWS")]
    pub windows: Option<u64>,
    /// Log format.
    #[arg(long, env = "GRAIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

impl RoleArgs {
    /// The configuration file with the flags applied.
    ///
    /// # Errors
    /// The file cannot be read or is not a valid configuration.
    pub fn node_config(&self) -> Result<NodeConfig, NodeError> {
        self.node.node_config()
    }
}

/// The hotkey password: from the environment, else asked on the terminal (without echo)
/// when the file is encrypted and a terminal is there.
fn password_for(path: &std::path::Path) -> Result<Option<String>, NodeError> {
    use std::io::{IsTerminal, Read};
    if let Some(p) = crate::wiring::hotkey_password(path) {
        return Ok(Some(p));
    }
    let mut head = [0u8; 5];
    let encrypted = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"$NACL";
    if !encrypted || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    rpassword::prompt_password(format!("Password for hotkey {}: ", path.display()))
        .map(Some)
        .map_err(|e| NodeError::io("reading the hotkey password", e))
}

/// Sets up `tracing` output (`RUST_LOG` filters; default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// What a role needs to start its loop: the wiring, the subnet's environment, the window
/// range from the flags and a stop signal that Ctrl-C raises.
pub struct RoleStart {
    /// The participant's key, network, bucket and checkpoints.
    pub wiring: Wiring,
    /// The subnet's environment.
    pub env: Box<dyn grail_env::Environment>,
    /// `--from-window`.
    pub from_window: Option<u64>,
    /// `--windows`.
    pub windows: Option<u64>,
    /// Raised on Ctrl-C: the loop lets the current step finish its atomic writes and
    /// never uploads a partial bundle.
    pub stop: Stop,
}

/// Sets up logging, opens the wiring and the environment and hooks Ctrl-C: what every role
/// does before its loop (the role crates' `run_cli` call it).
pub async fn start_role(role: Role, args: RoleArgs) -> Result<RoleStart, NodeError> {
    init_logging(args.log_format);
    let wiring = args.node.wiring().await?;
    let env = wiring.config.subnet.environment()?;
    info!(
        role = role.name(),
        hotkey = %wiring.key.public().to_ss58(),
        network = %wiring.config.network,
        "starting"
    );
    let (tx, stop) = stop_signal();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("Ctrl-C: finishing the current step, then stopping");
            let _ = tx.send(true);
        }
    });
    Ok(RoleStart {
        wiring,
        env,
        from_window: args.from_window,
        windows: args.windows,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use grail_infer::DeviceChoice;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        node: ConfigArgs,
    }

    #[test]
    fn device_flag_overrides_the_file_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        let config = format!("{}device = \"cpu\"\n", crate::config::MINIMAL);
        std::fs::write(&file, &config).unwrap();
        let path = file.to_str().unwrap();
        let parse = |extra: &[&str]| {
            let args = ["node", "--config", path]
                .into_iter()
                .chain(extra.iter().copied());
            Flags::try_parse_from(args).map(|f| f.node.node_config().unwrap().device)
        };
        assert_eq!(parse(&[]).unwrap(), DeviceChoice::Cpu, "from the file");
        assert_eq!(
            parse(&["--device", "cuda:1"]).unwrap(),
            DeviceChoice::Cuda(1)
        );
        let err = parse(&["--device", "gpu"]).unwrap_err().to_string();
        assert!(err.contains("not auto, cpu, cuda or cuda:N"), "{err}");

        std::fs::write(&file, config.replace("\"cpu\"", "\"tpu\"")).unwrap();
        let err = Flags::try_parse_from(["node", "--config", path])
            .unwrap()
            .node
            .node_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("tpu"), "{err}");
    }
}
