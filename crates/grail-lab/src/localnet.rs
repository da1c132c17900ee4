//! A whole network on one machine: the local clock chain, the local drand beacon, a local
//! bucket per participant, dev hotkeys, one configuration file per participant, and a
//! summary table of what happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use grail_chain::beacon::{serve, LocalBeacon};
use grail_chain::drand::unix_now;
use grail_chain::keys::write_plain_hotkey;
use grail_chain::local::LocalChain;
use grail_proto::signing::Keypair;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use grail_node::config::{NodeConfig, SubnetSettings};
use grail_node::{read_json, write_atomic, write_json, NodeError};
use grail_train::TrainerState;
use grail_validate::ValidatorState;

/// One participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Name (`validator`, `trainer`, `miner-1`, …).
    pub name: String,
    /// Its uid.
    pub uid: u16,
    /// SS58 hotkey.
    pub hotkey: String,
    /// Its configuration file.
    pub config: PathBuf,
}

/// What `init` set up (`localnet.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalnetInfo {
    /// The first window the roles should work on.
    pub start_window: u64,
    /// Beacon secret seed (hex; a local network only).
    pub beacon_seed: String,
    /// Beacon genesis (Unix seconds).
    pub beacon_genesis: u64,
    /// Beacon relay port on 127.0.0.1.
    pub beacon_port: u16,
    /// Participants.
    pub participants: Vec<Participant>,
}

const INFO_FILE: &str = "localnet.json";

/// Options of `init`.
#[derive(Debug, Clone)]
pub struct LocalnetOptions {
    /// Base model directory.
    pub model: PathBuf,
    /// Number of miners.
    pub miners: usize,
    /// Milliseconds per block.
    pub block_time_ms: u64,
    /// Subnet settings.
    pub subnet: SubnetSettings,
    /// Seconds between `init` and the first window's start, at least.
    pub lead_secs: u64,
    /// libtorch threads per process.
    pub threads: usize,
    /// Model device of every process.
    pub device: grail_infer::DeviceChoice,
    /// The trainer's settings.
    pub trainer: grail_node::config::TrainerSettings,
    /// How miners choose prompts (`zone` reads the validator's API on a port chosen here).
    pub prompts: grail_node::config::PromptChoice,
    /// Open the validator's job gateway (`[jobs]`, with an API key written to
    /// `api-key` in the network folder) and have miners mine client jobs from it.
    pub jobs: bool,
}

/// Flags of `grail-validator localnet init`.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Folder of the network (must not hold one).
    #[arg(long, env = "GRAIL_LOCALNET")]
    pub root: PathBuf,
    /// Base model folder.
    #[arg(long, env = "GRAIL_MODEL")]
    pub model: PathBuf,
    /// Number of miners.
    #[arg(long, default_value_t = 2)]
    pub miners: usize,
    /// Milliseconds per block.
    #[arg(long, default_value_t = 1000)]
    pub block_ms: u64,
    /// Blocks per window.
    #[arg(long, default_value_t = 24)]
    pub window_length: u64,
    /// Completion tokens per rollout.
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: u32,
    /// Rollouts per group.
    #[arg(long, default_value_t = 4)]
    pub group_size: usize,
    /// Environment spec (default: math tiers 0–3, the experiment's task).
    #[arg(long, default_value = crate::DEFAULT_ENVIRONMENT)]
    pub environment: String,
    /// Seconds before the first window may start (model loading).
    #[arg(long, default_value_t = 20)]
    pub lead_secs: u64,
    /// libtorch threads per process.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Model device of every process: auto (CUDA when libtorch sees a GPU), cpu, cuda or
    /// cuda:N.
    #[arg(long, env = "GRAIL_DEVICE", default_value_t = grail_infer::DeviceChoice::Auto)]
    pub device: grail_infer::DeviceChoice,
    /// Open the validator's v2 job gateway (API key in `<root>/api-key`); miners mine the
    /// jobs submitted to it.
    #[arg(long)]
    pub jobs: bool,
}

impl InitArgs {
    /// The network these flags describe: the experiment's GRPO coefficients (a short run
    /// must move the model) and zone-targeting miners.
    pub fn options(&self) -> LocalnetOptions {
        LocalnetOptions {
            model: self.model.clone(),
            miners: self.miners,
            block_time_ms: self.block_ms,
            subnet: SubnetSettings {
                window_length: self.window_length,
                environment: self.environment.clone(),
                group_size: self.group_size,
                max_new_tokens: self.max_new_tokens,
                ..SubnetSettings::default()
            },
            lead_secs: self.lead_secs,
            threads: self.threads,
            device: self.device,
            trainer: grail_node::config::TrainerSettings {
                grpo: crate::experiment::default_grpo(),
                ..Default::default()
            },
            prompts: grail_node::config::PromptChoice::Zone,
            jobs: self.jobs,
        }
    }
}

/// The network's local beacon, from the seed and genesis time init wrote (what
/// `grail-validator localnet beacon` serves).
pub fn beacon_of(info: &LocalnetInfo) -> Result<LocalBeacon, NodeError> {
    let seed: [u8; 32] = hex::decode(&info.beacon_seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| NodeError::Config("localnet.json: bad beacon seed".into()))?;
    Ok(LocalBeacon::from_seed(&seed, info.beacon_genesis, 1))
}

/// Creates a fresh network under `root` (which must not hold one already).
pub fn init(root: &Path, options: &LocalnetOptions) -> Result<LocalnetInfo, NodeError> {
    if root.join(INFO_FILE).exists() {
        return Err(NodeError::Config(format!(
            "{} already holds a local network",
            root.display()
        )));
    }
    options.subnet.validate()?;
    let root = std::fs::canonicalize({
        std::fs::create_dir_all(root)
            .map_err(|e| NodeError::io(format!("creating {}", root.display()), e))?;
        root
    })
    .map_err(|e| NodeError::io(format!("resolving {}", root.display()), e))?;
    let model = std::fs::canonicalize(&options.model)
        .map_err(|e| NodeError::io(format!("model folder {}", options.model.display()), e))?;
    let chain = LocalChain::open_or_create(&root.join("chain"), 81, options.block_time_ms)?;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let beacon_genesis = unix_now().saturating_sub(10);
    let beacon = LocalBeacon::from_seed(&seed, beacon_genesis, 1);
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| NodeError::io("choosing a port", e))
    };
    let beacon_port = free_port()?;
    let validator_api = format!("127.0.0.1:{}", free_port()?);
    let wallets = root.join("wallets");
    let mut names = vec!["owner".to_string(), "validator".into(), "trainer".into()];
    names.extend((1..=options.miners).map(|i| format!("miner-{i}")));
    let mut keys = Vec::new();
    for name in &names {
        let mut key_seed = [0u8; 32];
        OsRng.fill_bytes(&mut key_seed);
        let path = grail_chain::keys::hotkey_path(&wallets, "localnet", name);
        let key: Keypair = write_plain_hotkey(&path, &key_seed)?;
        let permit = name == "validator";
        let uid = chain.register(key.public(), if permit { 1_000_000 } else { 0 }, permit)?;
        keys.push((name.clone(), key, path, uid));
    }
    let trainer = keys
        .iter()
        .find(|k| k.0 == "trainer")
        .expect("listed")
        .1
        .public()
        .to_ss58();
    let wl = options.subnet.window_length;
    let head = chain.current_block();
    let lead_blocks = (options.lead_secs * 1000).div_ceil(options.block_time_ms);
    let start = head + lead_blocks;
    let start_window = start.div_ceil(wl) * wl;
    let mut jobs = grail_node::config::JobsSettings::default();
    if options.jobs {
        let mut secret = [0u8; 24];
        OsRng.fill_bytes(&mut secret);
        let key = format!("localnet-{}", hex::encode(secret));
        write_atomic(
            &root.join("api-keys"),
            format!("localnet {key}\n").as_bytes(),
        )?;
        write_atomic(&root.join("api-key"), format!("{key}\n").as_bytes())?;
        jobs.enabled = true;
        jobs.api_keys_file = Some(root.join("api-keys"));
    }
    let mut participants = Vec::new();
    for (name, key, path, uid) in &keys {
        if name == "owner" {
            continue;
        }
        let config = NodeConfig {
            network: "local".into(),
            netuid: 81,
            local_chain: Some(root.join("chain")),
            drand_relays: vec![format!("http://127.0.0.1:{beacon_port}")],
            drand_chain: Some(grail_chain::BeaconSource::info(&beacon).clone()),
            hotkey_file: path.clone(),
            store: format!("local:{}", root.join("stores").join(name).display()),
            trainer_hotkey: trainer.clone(),
            trainer_store: format!("local:{}", root.join("stores").join("trainer").display()),
            model: model.clone(),
            state_dir: root.join("state").join(name),
            threads: options.threads,
            device: options.device,
            subnet: options.subnet.clone(),
            miner: grail_node::config::MinerSettings {
                // A fifth of the window, at most the default.
                upload_margin_secs: (wl as f64 * options.block_time_ms as f64 / 5000.0).min(5.0),
                prompts: options.prompts,
                // Zone miners find the validator's API on the local chain, where the
                // validator publishes the address below.
                job_groups: if options.jobs { 2 } else { 0 },
                job_gateways: if options.jobs {
                    vec![format!("http://{validator_api}")]
                } else {
                    Vec::new()
                },
                ..Default::default()
            },
            validator: grail_node::config::ValidatorSettings {
                http: validator_api.clone(),
                // The summary reads every window's per-miner verdicts.
                verdict_windows: 10_000,
                ..Default::default()
            },
            trainer: options.trainer.clone(),
            jobs: if name == "validator" {
                jobs.clone()
            } else {
                Default::default()
            },
        };
        std::fs::create_dir_all(root.join("stores").join(name))
            .map_err(|e| NodeError::io("creating a local bucket", e))?;
        let file = root.join(format!("{name}.toml"));
        write_atomic(&file, config.to_toml().as_bytes())?;
        participants.push(Participant {
            name: name.clone(),
            uid: *uid,
            hotkey: key.public().to_ss58(),
            config: file,
        });
    }
    let info = LocalnetInfo {
        start_window,
        beacon_seed: hex::encode(seed),
        beacon_genesis,
        beacon_port,
        participants,
    };
    write_json(&root.join(INFO_FILE), &info)?;
    Ok(info)
}

/// Reads `localnet.json`.
pub fn info(root: &Path) -> Result<LocalnetInfo, NodeError> {
    read_json(&root.join(INFO_FILE))?.ok_or_else(|| {
        NodeError::Config(format!(
            "{} holds no local network (run init)",
            root.display()
        ))
    })
}

/// Serves the local beacon's relay API until the task is dropped.
pub async fn serve_beacon(root: &Path) -> Result<(), NodeError> {
    let info = info(root)?;
    let beacon = Arc::new(beacon_of(&info)?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", info.beacon_port))
        .await
        .map_err(|e| {
            NodeError::io(
                format!("binding the beacon to port {}", info.beacon_port),
                e,
            )
        })?;
    serve(beacon, listener)
        .await
        .map_err(|e| NodeError::io("beacon server", e))
}

/// A table of every validated window: bundles, groups, verdicts, learning zone, rewards,
/// weights and checkpoints.
pub fn summary(root: &Path) -> Result<String, NodeError> {
    let info = info(root)?;
    let validator = ValidatorState::load(&root.join("state").join("validator"))?;
    let trainer = TrainerState::load(&root.join("state").join("trainer"))?;
    let chain = LocalChain::open(&root.join("chain"))?;
    let outcome = Outcome::read(root)?;
    let by_miner = |window: u64| {
        outcome
            .windows
            .iter()
            .find(|w| w.window == window)
            .map(|w| {
                w.accepted
                    .iter()
                    .map(|(m, n)| format!("{m} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let uid_name = |uid: u16| {
        info.participants
            .iter()
            .find(|p| p.uid == uid)
            .map_or_else(|| format!("uid {uid}"), |p| p.name.clone())
    };
    let mut out = String::from(
        "| window | checkpoint | bundles | groups submitted | checked | accepted | accepted by miner | rejected (reason) | in zone | credited work | mean reward | weights set | checkpoint published |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (w, s) in &validator.windows {
        let accepted = s.verdicts.get("accepted").copied().unwrap_or(0);
        let rejected: Vec<String> = s
            .verdicts
            .iter()
            .filter(|(r, _)| r.as_str() != "accepted")
            .map(|(r, n)| format!("{n} {r}"))
            .chain(
                s.bundles
                    .iter()
                    .filter(|(r, _)| r.as_str() != "accepted")
                    .map(|(r, n)| format!("{n} bundle {r}")),
            )
            .collect();
        let rejected: Vec<String> = match &s.error {
            Some(e) => vec![format!("window not validated: {e}")],
            None => rejected,
        };
        let bundles = s.bundles.get("accepted").copied().unwrap_or(0);
        let total: u32 = s.weights.iter().map(|(_, v)| *v as u32).sum();
        let weights: Vec<String> = s
            .weights
            .iter()
            .map(|(uid, v)| format!("{} {:.2}", uid_name(*uid), *v as f64 / total.max(1) as f64))
            .collect();
        let published: Vec<String> = trainer
            .published
            .iter()
            .filter(|p| p.trained_through == Some(*w))
            .map(|p| format!("#{} (from window {})", p.number, p.effective_window))
            .collect();
        out += &format!(
            "| {w} | {} | {bundles} | {} | {} | {accepted} | {} | {} | {} | {:.1} | {:.3} | {} | {} |\n",
            s.checkpoint.map_or("-".into(), |c| format!("#{c}")),
            s.groups_submitted,
            s.groups_checked,
            by_miner(*w),
            if rejected.is_empty() {
                "-".into()
            } else {
                rejected.join(", ")
            },
            s.in_zone,
            s.credited_work,
            s.mean_reward,
            if weights.is_empty() {
                "-".into()
            } else {
                weights.join(", ")
            },
            if published.is_empty() {
                "-".into()
            } else {
                published.join(", ")
            },
        );
    }
    let steps = outcome.training_steps;
    out += &format!(
        "\n{} windows validated; {} training steps taken ({} skipped); checkpoints published: {}; chain weight events: {}.\n",
        validator.windows.len(),
        steps,
        trainer.steps.len() - steps,
        trainer.published.len(),
        chain.state()?.weight_history.len()
    );
    Ok(out)
}

/// What one validated window of a local network gave each miner.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowOutcome {
    /// The window.
    pub window: u64,
    /// Accepted groups per miner name (every miner of the network; 0 when none, or when a
    /// failed check zeroed the miner's window).
    pub accepted: BTreeMap<String, u64>,
    /// Why the window could not be validated, when it could not.
    pub error: Option<String>,
}

/// How a local network run went: accepted groups per window and miner, training steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The validated windows, in order.
    pub windows: Vec<WindowOutcome>,
    /// Training steps taken (not skipped).
    pub training_steps: usize,
}

/// How demanding [`Outcome::problems`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Expect {
    /// A user's run: most windows have accepted groups and the trainer took a step.
    MostWindows,
    /// CI's run: every miner has accepted groups in every window after the first, and
    /// the trainer took a step.
    EveryWindow,
}

impl Outcome {
    /// Reads the validator's and the trainer's state under `root`.
    ///
    /// # Errors
    /// A missing or unreadable state file.
    pub fn read(root: &Path) -> Result<Self, NodeError> {
        let info = info(root)?;
        let validator = ValidatorState::load(&root.join("state").join("validator"))?;
        let trainer = TrainerState::load(&root.join("state").join("trainer"))?;
        let miners: Vec<&Participant> = info
            .participants
            .iter()
            .filter(|p| p.name.starts_with("miner"))
            .collect();
        // Accepted groups by miner and window; a zeroed window earns nothing, so counts 0.
        let histories: Vec<(String, BTreeMap<u64, u64>)> = miners
            .iter()
            .map(|m| {
                let by_window = validator
                    .verdicts
                    .miner(&m.hotkey)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| {
                        let accepted = w.verdicts.get("accepted").copied().unwrap_or(0);
                        (w.window, if w.zeroed { 0 } else { accepted })
                    })
                    .collect();
                (m.name.clone(), by_window)
            })
            .collect();
        let windows = validator
            .windows
            .iter()
            .map(|(&window, summary)| WindowOutcome {
                window,
                accepted: histories
                    .iter()
                    .map(|(name, h)| (name.clone(), h.get(&window).copied().unwrap_or(0)))
                    .collect(),
                error: summary.error.clone(),
            })
            .collect();
        let training_steps = trainer
            .steps
            .iter()
            .filter(|s| s.report.skipped.is_none())
            .count();
        Ok(Self {
            windows,
            training_steps,
        })
    }

    /// What falls short of `expect`, one sentence each (empty: the run did what a local
    /// network should).
    pub fn problems(&self, expect: Expect) -> Vec<String> {
        let mut problems = Vec::new();
        let empty: Vec<u64> = self
            .windows
            .iter()
            .filter(|w| w.accepted.values().all(|&n| n == 0))
            .map(|w| w.window)
            .collect();
        if self.windows.is_empty() {
            problems.push("the validator validated no window".to_string());
        }
        match expect {
            Expect::MostWindows => {
                if !self.windows.is_empty() && empty.len() * 2 > self.windows.len() {
                    problems.push(format!(
                        "{} of {} windows had no accepted group (windows {empty:?})",
                        empty.len(),
                        self.windows.len()
                    ));
                }
            }
            Expect::EveryWindow => {
                for w in self.windows.iter().skip(1) {
                    let missing: Vec<&str> = w
                        .accepted
                        .iter()
                        .filter(|(_, &n)| n == 0)
                        .map(|(m, _)| m.as_str())
                        .collect();
                    if !missing.is_empty() {
                        problems.push(format!(
                            "window {}: no accepted group from {}{}",
                            w.window,
                            missing.join(", "),
                            w.error
                                .as_ref()
                                .map(|e| format!(" (window not validated: {e})"))
                                .unwrap_or_default()
                        ));
                    }
                }
            }
        }
        if self.training_steps == 0 {
            problems.push("the trainer took no training step".to_string());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(accepted: &[[u64; 2]], training_steps: usize) -> Outcome {
        Outcome {
            windows: accepted
                .iter()
                .enumerate()
                .map(|(i, a)| WindowOutcome {
                    window: 24 * i as u64,
                    accepted: [("miner-1".to_string(), a[0]), ("miner-2".to_string(), a[1])].into(),
                    error: None,
                })
                .collect(),
            training_steps,
        }
    }

    #[test]
    fn a_run_that_mined_nothing_or_trained_nothing_is_a_failure() {
        // The landed code's run: every window empty, no step.
        let nothing = outcome(&[[0, 0]; 10], 0);
        let p = nothing.problems(Expect::MostWindows);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("10 of 10 windows had no accepted group"),
            "{p:?}"
        );
        assert!(p[1].contains("no training step"), "{p:?}");
        // A healthy run: the first window may be empty, one miner may miss one later.
        let healthy = outcome(&[[0, 0], [3, 2], [1, 0], [4, 4]], 2);
        assert!(healthy.problems(Expect::MostWindows).is_empty());
        // CI's run wants every miner in every window after the first.
        let p = healthy.problems(Expect::EveryWindow);
        assert_eq!(p, ["window 48: no accepted group from miner-2"]);
        let full = outcome(&[[0, 0], [3, 2], [1, 1]], 1);
        assert!(full.problems(Expect::EveryWindow).is_empty());
        assert!(!outcome(&[[0, 0], [3, 2], [1, 1]], 0)
            .problems(Expect::EveryWindow)
            .is_empty());
        // Failure means more than half the windows empty.
        assert!(outcome(&[[0, 0], [0, 0], [1, 0], [2, 0]], 1)
            .problems(Expect::MostWindows)
            .is_empty());
        assert!(!outcome(&[[0, 0], [0, 0], [0, 0], [2, 0]], 1)
            .problems(Expect::MostWindows)
            .is_empty());
        assert_eq!(
            outcome(&[], 1).problems(Expect::MostWindows),
            ["the validator validated no window"]
        );
    }
}
