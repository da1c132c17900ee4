//! Node configuration: a TOML file (every field has a default or is required by the role
//! that needs it), overridden by command-line flags and environment variables in the
//! binaries.

use std::net::SocketAddr;
use std::path::PathBuf;

use grail_chain::ChainInfo;
use grail_proto::GenerationParams;
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// What every participant of a subnet must agree on (a validator rejects groups made
/// under other settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubnetSettings {
    /// Blocks per window.
    pub window_length: u64,
    /// Environment spec (grail-env registry): a name (`math`, `sat`, `gsm8k`, …), a tier
    /// (`math:1`), or a weighted mix (`3*math:0 + 2*math:1 + math:2`).
    pub environment: String,
    /// JSONL file of the dataset environments (`gsm8k`, `hendrycks-math`); every
    /// participant needs the same bytes (its SHA-256 is part of the environment id).
    pub dataset: Option<PathBuf>,
    /// Rollouts per group (M).
    pub group_size: usize,
    /// Sampling parameters.
    pub max_new_tokens: u32,
    /// Temperature × 1000 (sampling is plain inverse-CDF: no top-k or top-p in protocol v3).
    pub temperature_milli: u32,
}

impl Default for SubnetSettings {
    fn default() -> Self {
        Self {
            window_length: 30,
            environment: "math".into(),
            dataset: None,
            group_size: 4,
            max_new_tokens: 48,
            temperature_milli: 900,
        }
    }
}

impl SubnetSettings {
    /// The environment of [`Self::environment`] and [`Self::dataset`].
    pub fn environment(&self) -> Result<Box<dyn grail_env::Environment>, NodeError> {
        Ok(grail_env::by_name(
            &self.environment,
            self.dataset.as_deref(),
        )?)
    }

    /// The sampling parameters as bound into group headers.
    pub fn generation(&self) -> GenerationParams {
        GenerationParams {
            max_new_tokens: self.max_new_tokens,
            temperature_milli: self.temperature_milli,
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |m: &str| Err(NodeError::Config(m.to_string()));
        if self.window_length < 2 {
            return bad("subnet.window_length must be at least 2 blocks");
        }
        if self.group_size < 2 || self.group_size > grail_proto::params::MAX_GROUP_SIZE {
            return bad("subnet.group_size must be in 2..=64");
        }
        if self.max_new_tokens == 0
            || self.max_new_tokens as usize > grail_proto::params::MAX_ROLLOUT_TOKENS / 2
        {
            return bad("subnet.max_new_tokens must be in 1..=4096");
        }
        if self.temperature_milli == 0 {
            return bad("subnet.temperature_milli must be positive");
        }
        Ok(())
    }
}

/// Default of `validator.retention_windows` and `trainer.retention_windows`: a week of
/// 30-block windows of 12-second blocks (240 windows a day).
pub const DEFAULT_RETENTION_WINDOWS: u64 = 1680;

/// How a miner chooses prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PromptChoice {
    /// Pseudo-random prompt ids (`mining::PseudoRandomPrompts`).
    Random,
    /// Toward the strata validators report in the learning zone
    /// (`mining::ZoneTargetingPrompts`, fed from `validator_api`, or from the validators'
    /// endpoints on chain when that is empty).
    Zone,
}

/// Miner settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerSettings {
    /// Most groups generated per window.
    pub max_groups: usize,
    /// Stop generating this many seconds before the deadline (upload margin).
    pub upload_margin_secs: f64,
    /// How prompts are chosen (default `random`).
    pub prompts: PromptChoice,
    /// Validators' HTTP APIs (`http://host:port`) whose window state `zone` reads. Empty:
    /// the APIs validators publish on chain (validator-permit holders' endpoints), looked
    /// up every window; URLs given here win.
    pub validator_api: Vec<String>,
    /// Address of the Prometheus `/metrics` server (`127.0.0.1:0` picks a port; empty:
    /// off).
    pub http: String,
    /// Most groups sampled together as one batch (their prompts left-padded to the
    /// longest): wider batches use the CPU or GPU better; 1 samples one group at a time.
    /// The miner starts narrower batches when its measured throughput says a wider one
    /// would not finish before the upload margin (`miner::pace`).
    pub batch_groups: usize,
    /// Groups mined per open client job and window, in the job's lane (0: no job work).
    /// A validator checks and credits at most its `jobs.lane_groups_checked` of them.
    pub job_groups: usize,
    /// Job gateways read for open jobs (`http://host:port` of validators' APIs). Empty:
    /// `validator_api`, else the validators' APIs published on chain.
    pub job_gateways: Vec<String>,
}

/// Most groups a miner samples in one batch.
pub const MAX_BATCH_GROUPS: usize = 64;

impl MinerSettings {
    /// Checks the settings.
    ///
    /// # Errors
    /// `batch_groups` outside 1..=[`MAX_BATCH_GROUPS`].
    pub fn validate(&self) -> Result<(), NodeError> {
        if !(1..=MAX_BATCH_GROUPS).contains(&self.batch_groups) {
            return Err(NodeError::Config(format!(
                "miner.batch_groups = {} is not in 1..={MAX_BATCH_GROUPS}",
                self.batch_groups
            )));
        }
        Ok(())
    }

    /// Whether the miner looks validators' APIs up on chain: zone targeting without
    /// hand-configured URLs.
    pub fn discovers_validators(&self) -> bool {
        self.prompts == PromptChoice::Zone && self.validator_api.is_empty()
    }
}

impl Default for MinerSettings {
    fn default() -> Self {
        Self {
            max_groups: 64,
            upload_margin_secs: 5.0,
            prompts: PromptChoice::Random,
            validator_api: Vec::new(),
            http: String::new(),
            batch_groups: 4,
            job_groups: 4,
            job_gateways: Vec::new(),
        }
    }
}

/// Validator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorSettings {
    /// Groups checked per miner and window (sampled from the challenge randomness).
    pub groups_checked: usize,
    /// Largest bundle fetched.
    pub max_bundle_bytes: u64,
    /// Set weights every this many windows.
    pub weights_interval: u64,
    /// Windows in the rolling score.
    pub rolling_windows: usize,
    /// Exponent on credited work: 1 by default (linear, so neither splitting work across
    /// hotkeys nor pooling it pays), never below 1 (splitting would pay) and below
    /// `groups_checked` (so cheating on some groups has a negative expected gain;
    /// docs/protocol.md §12). Every validator must use the same value.
    pub exponent: f64,
    /// Share of the weight burned to uid 0.
    pub burn_fraction: f64,
    /// Address of the read-only HTTP API (`127.0.0.1:0` picks a port; empty: off).
    pub http: String,
    /// Miners' buckets read at once.
    pub fetch_concurrency: usize,
    /// Seconds one miner's bundle may take to arrive (a slow or stalling bucket is
    /// `store_unreachable` after that, and cannot hold up the window).
    pub fetch_timeout_secs: f64,
    /// The API's address as miners reach it (`IP:PORT`), published on chain (Subtensor: the
    /// axon). Empty: the address the API is bound to, unless that is `0.0.0.0`/`::`, which
    /// nobody can connect to (then nothing is published).
    pub public_address: String,
    /// Windows of per-miner verdicts kept and served (`GET /verdicts/{hotkey}`).
    pub verdict_windows: u64,
    /// Windows of summaries, work history and sealed archives (in this validator's
    /// bucket) kept; older ones are deleted after each window. 0 keeps everything;
    /// otherwise at least `rolling_windows`.
    pub retention_windows: u64,
}

impl Default for ValidatorSettings {
    fn default() -> Self {
        Self {
            groups_checked: grail_proto::params::GROUPS_CHECKED,
            max_bundle_bytes: grail_proto::params::DEFAULT_MAX_BUNDLE_BYTES as u64,
            weights_interval: 1,
            rolling_windows: 12,
            exponent: grail_proto::params::SCORE_EXPONENT,
            burn_fraction: 0.0,
            http: "127.0.0.1:0".into(),
            fetch_concurrency: 16,
            fetch_timeout_secs: 30.0,
            public_address: String::new(),
            verdict_windows: 12,
            retention_windows: DEFAULT_RETENTION_WINDOWS,
        }
    }
}

impl ValidatorSettings {
    /// Checks the scoring and spot-check parameters against the economics of
    /// docs/protocol.md §12.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |m: String| Err(NodeError::Config(m));
        if !(self.exponent.is_finite() && self.exponent >= 1.0) {
            return bad(format!(
                "validator.exponent {} must be at least 1 (below 1, splitting work across hotkeys pays)",
                self.exponent
            ));
        }
        if (self.groups_checked as f64) <= self.exponent {
            return bad(format!(
                "validator.groups_checked {} must exceed validator.exponent {} (otherwise cheating on some groups pays)",
                self.groups_checked, self.exponent
            ));
        }
        if !(0.0..=1.0).contains(&self.burn_fraction) {
            return bad("validator.burn_fraction must be in 0..=1".into());
        }
        if self.fetch_concurrency == 0 {
            return bad("validator.fetch_concurrency must be at least 1".into());
        }
        if !(self.fetch_timeout_secs.is_finite() && self.fetch_timeout_secs > 0.0) {
            return bad("validator.fetch_timeout_secs must be a positive number".into());
        }
        if !self.public_address.is_empty() {
            let endpoint = self
                .public_address
                .parse::<SocketAddr>()
                .map(grail_chain::Endpoint::new)
                .map_err(|e| {
                    NodeError::Config(format!(
                        "validator.public_address `{}` is not IP:PORT: {e}",
                        self.public_address
                    ))
                })?;
            endpoint
                .check_connectable()
                .map_err(|e| NodeError::Config(format!("validator.public_address: {e}")))?;
        }
        if self.retention_windows != 0 && self.retention_windows < self.rolling_windows as u64 {
            return bad(format!(
                "validator.retention_windows {} must be 0 (keep everything) or at least validator.rolling_windows {} (the score needs that much work history)",
                self.retention_windows, self.rolling_windows
            ));
        }
        Ok(())
    }

    /// The address to publish for an API bound to `bound`: [`Self::public_address`] when
    /// set, else `bound` unless it is unspecified (`0.0.0.0`, `::`). `None`: nothing
    /// connectable to publish.
    pub fn public_endpoint(&self, bound: SocketAddr) -> Option<grail_chain::Endpoint> {
        let addr = match self.public_address.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) if self.public_address.is_empty() => bound,
            Err(_) => return None,
        };
        let endpoint = grail_chain::Endpoint::new(addr);
        endpoint.check_connectable().ok().map(|()| endpoint)
    }
}

/// Default `trainer.max_archive_bytes`: 1 GiB. An honest archive holds at most
/// `groups_checked + 1 + MAX_ARCHIVED_VOIDS` groups per miner with the validator's
/// log-probs; 256 miners × 17 groups of 8 rollouts of ~1 200 tokens is about 0.7 GB.
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// Trainer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerSettings {
    /// Optimizer steps per sealed window with accepted groups.
    pub steps_per_window: usize,
    /// Publish a checkpoint after this many windows with at least one update.
    pub publish_every: u64,
    /// Retention: every checkpoint not yet in effect, the one in effect now and the
    /// `keep_checkpoints − 1` before it stay in the store.
    pub keep_checkpoints: usize,
    /// Train only on groups in the learning zone.
    pub in_zone_only: bool,
    /// Every GRPO coefficient (`[trainer.grpo]`; defaults in `grail_grpo::GrpoConfig`,
    /// listed in docs/training.md). With `kl_coef > 0` the base model (`model`) is loaded
    /// a second time as the frozen KL reference.
    pub grpo: grail_grpo::GrpoConfig,
    /// Address of the Prometheus `/metrics` server (`127.0.0.1:0` picks a port; empty:
    /// off).
    pub http: String,
    /// Windows of logged steps and published-checkpoint records kept in the trainer's
    /// state (the last `keep_checkpoints` records always stay). 0 keeps everything.
    pub retention_windows: u64,
    /// Validators holding less than this share of the permitted stake are ignored (neither
    /// read nor counted in the majority), so cheap permits cannot make the trainer read
    /// archives. No effect when every stake is 0 (one vote each).
    pub min_validator_stake_share: f64,
    /// Largest archive read per validator and window; a validator's newest archive within
    /// it is the one read, larger ones are ignored with a warning.
    pub max_archive_bytes: u64,
    /// Liveness: a validator that published no archive in this many windows counts
    /// neither as a voter nor in the stake total, so silent permit holders cannot stall
    /// training forever.
    pub liveness_windows: u64,
    /// Liveness: nothing is agreed while the validators still active hold less than this
    /// share of the stake (a minority cannot take over when most fall silent).
    pub min_active_stake_share: f64,
    /// Entries of each validator's archive re-verified per window (random, among those a
    /// stake majority agreed on): a forward pass of the window's checkpoint checks the
    /// archived evidence, and a validator with wrong evidence loses its votes and credits
    /// for the window. 0 disables it (the copy rule still runs).
    pub reverify_entries: usize,
}

impl Default for TrainerSettings {
    fn default() -> Self {
        Self {
            steps_per_window: 1,
            publish_every: 1,
            keep_checkpoints: 3,
            in_zone_only: true,
            grpo: grail_grpo::GrpoConfig::default(),
            http: String::new(),
            retention_windows: DEFAULT_RETENTION_WINDOWS,
            min_validator_stake_share: 0.01,
            max_archive_bytes: DEFAULT_MAX_ARCHIVE_BYTES,
            liveness_windows: 3,
            min_active_stake_share: 1.0 / 3.0,
            reverify_entries: 1,
        }
    }
}

impl TrainerSettings {
    /// Checks the archive-reading limits.
    ///
    /// # Errors
    /// `min_validator_stake_share` outside `[0, 0.5)`, or `max_archive_bytes` outside 1 MiB
    /// to the protocol's `MAX_ARCHIVE_BYTES`.
    pub fn validate(&self) -> Result<(), NodeError> {
        let share = self.min_validator_stake_share;
        if !(0.0..0.5).contains(&share) {
            return Err(NodeError::Config(format!(
                "trainer.min_validator_stake_share = {share} is not in [0, 0.5)"
            )));
        }
        if self.liveness_windows == 0 || !(0.0..=1.0).contains(&self.min_active_stake_share) {
            return Err(NodeError::Config(format!(
                "trainer.liveness_windows = {} must be at least 1 and trainer.min_active_stake_share = {} in [0, 1]",
                self.liveness_windows, self.min_active_stake_share
            )));
        }
        let max = grail_proto::params::MAX_ARCHIVE_BYTES as u64;
        if !(1 << 20..=max).contains(&self.max_archive_bytes) {
            return Err(NodeError::Config(format!(
                "trainer.max_archive_bytes = {} is not between 1 MiB and {max}",
                self.max_archive_bytes
            )));
        }
        Ok(())
    }
}

/// A participant's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `local`, `test`, `finney` or a `ws://`/`wss://` URL.
    #[serde(default = "default_network")]
    pub network: String,
    /// Subnet id.
    #[serde(default = "default_netuid")]
    pub netuid: u16,
    /// Local chain directory (network `local`).
    #[serde(default)]
    pub local_chain: Option<PathBuf>,
    /// drand relays (default: the League of Entropy relays for quicknet).
    #[serde(default)]
    pub drand_relays: Vec<String>,
    /// drand chain parameters (default quicknet; the local beacon's on a local network).
    #[serde(default)]
    pub drand_chain: Option<ChainInfo>,
    /// Hotkey file (plain or NaCl-encrypted Bittensor keyfile).
    pub hotkey_file: PathBuf,
    /// This participant's bucket (`local:DIR`, `s3:BUCKET`, `r2:BUCKET`).
    pub store: String,
    /// The trainer's hotkey (SS58): checkpoints are trusted only when it signed them.
    pub trainer_hotkey: String,
    /// The trainer's bucket (read).
    pub trainer_store: String,
    /// Base model directory (Hugging Face layout).
    pub model: PathBuf,
    /// Where this participant keeps state and caches.
    pub state_dir: PathBuf,
    /// libtorch threads (0: libtorch's default).
    #[serde(default)]
    pub threads: usize,
    /// Model device: `auto` (CUDA when libtorch sees a GPU), `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: grail_infer::DeviceChoice,
    /// Subnet settings.
    #[serde(default)]
    pub subnet: SubnetSettings,
    /// Miner settings.
    #[serde(default)]
    pub miner: MinerSettings,
    /// Validator settings.
    #[serde(default)]
    pub validator: ValidatorSettings,
    /// Trainer settings.
    #[serde(default)]
    pub trainer: TrainerSettings,
    /// The validator's v2 job gateway (off by default).
    #[serde(default)]
    pub jobs: JobsSettings,
}

fn default_network() -> String {
    "local".into()
}

fn default_netuid() -> u16 {
    81
}

impl NodeConfig {
    /// Whether this is a local network (`network = "local"`: the local chain, whose
    /// commitments may name local buckets).
    pub fn is_local_network(&self) -> bool {
        self.network == "local"
    }

    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, NodeError> {
        let config: Self = toml::from_str(text).map_err(|source| NodeError::Toml {
            path: PathBuf::new(),
            source,
        })?;
        config.subnet.validate()?;
        config.miner.validate()?;
        config.validator.validate()?;
        config.trainer.validate()?;
        config.jobs.validate()?;
        config
            .trainer
            .grpo
            .validate()
            .map_err(NodeError::TrainerCoefficients)?;
        Ok(config)
    }

    /// Reads a TOML configuration file.
    pub fn load(path: &std::path::Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
        Self::from_toml(&text).map_err(|e| match e {
            NodeError::Config(m) => NodeError::Config(format!("{}: {m}", path.display())),
            NodeError::Toml { source, .. } => NodeError::Toml {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// As TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// The smallest valid configuration (every optional key left out), for tests.
/// `[jobs]`: the validator's job gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSettings {
    /// Serve the gateway on the validator's HTTP API.
    pub enabled: bool,
    /// The API key file (`label key` per line); required when enabled.
    pub api_keys_file: Option<PathBuf>,
    /// New jobs one client may submit per hour.
    pub jobs_per_hour: u32,
    /// Jobs one client may have open at once.
    pub open_per_client: u32,
    /// Jobs open at once on this gateway.
    pub open_total: u32,
    /// Job groups of one miner checked with a forward pass per job and window (every
    /// delivered group is one of them; more groups earn nothing).
    pub lane_groups_checked: usize,
    /// Most of a window's credit that job work may take, all jobs together (the rest is
    /// the subnet's training work): job credits are scaled down to fit.
    pub max_share: f64,
    /// Verify and credit the open jobs of other validators' gateways too (read from their
    /// buckets), so that job work counts in every validator's weights.
    pub follow_others: bool,
    /// Open jobs of one other validator followed (its first by id).
    pub followed_per_validator: usize,
    /// Open jobs of other validators followed in all.
    pub followed_total: usize,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            api_keys_file: None,
            jobs_per_hour: 20,
            open_per_client: 8,
            open_total: 64,
            lane_groups_checked: 16,
            max_share: 0.25,
            follow_others: true,
            followed_per_validator: 8,
            followed_total: 32,
        }
    }
}

impl JobsSettings {
    /// Rejects an enabled gateway without keys.
    pub fn validate(&self) -> Result<(), NodeError> {
        if !(0.0..=0.9).contains(&self.max_share) {
            return Err(NodeError::Config(format!(
                "jobs.max_share = {} must be in [0, 0.9] (training work keeps at least a tenth)",
                self.max_share
            )));
        }
        if self.lane_groups_checked == 0 {
            return Err(NodeError::Config(
                "jobs.lane_groups_checked must be at least 1".into(),
            ));
        }
        if self.enabled && self.api_keys_file.is_none() {
            return Err(NodeError::Config(
                "jobs.enabled needs jobs.api_keys_file (a file of `label key` lines)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) const MINIMAL: &str = r#"
hotkey_file = "/keys/hotkey"
store = "local:/data/bucket"
trainer_hotkey = "5H9VZgwXSKKMGQiYcmVM2sFBwdUQZX8yEG3ybw3nuuCQx3v1"
trainer_store = "local:/data/trainer"
model = "/models/base"
state_dir = "/data/state"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults_and_bad_ones_are_refused() {
        let c = NodeConfig::from_toml(MINIMAL).unwrap();
        assert_eq!((c.network.as_str(), c.netuid), ("local", 81));
        assert_eq!(c.subnet, SubnetSettings::default());
        assert_eq!(
            NodeConfig::from_toml(&c.to_toml()).unwrap(),
            c,
            "round trip"
        );
        assert!(NodeConfig::from_toml(&format!("{MINIMAL}\nnetwrok = \"finney\"")).is_err());
        assert!(NodeConfig::from_toml(&format!("{MINIMAL}\n[subnet]\ngroup_size = 1")).is_err());
        assert_eq!(c.miner.batch_groups, 4);
        let err = NodeConfig::from_toml(&format!("{MINIMAL}\n[miner]\nbatch_groups = 0"));
        assert!(err.unwrap_err().to_string().contains("batch_groups"));
        assert!(NodeConfig::from_toml("store = 3").is_err());
        assert_eq!(c.validator.retention_windows, DEFAULT_RETENTION_WINDOWS);
        assert_eq!((c.miner.http.as_str(), c.trainer.http.as_str()), ("", ""));
        let short = NodeConfig::from_toml(&format!(
            "{MINIMAL}\n[validator]\nrolling_windows = 12\nretention_windows = 5"
        ));
        assert!(short.unwrap_err().to_string().contains("retention_windows"));
        let all = NodeConfig::from_toml(&format!("{MINIMAL}\n[validator]\nretention_windows = 0"));
        assert_eq!(all.unwrap().validator.retention_windows, 0);
    }

    #[test]
    fn published_api_address_and_validator_discovery() {
        let c = NodeConfig::from_toml(MINIMAL).unwrap();
        let v = &c.validator;
        let bound: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        assert_eq!(v.public_endpoint(bound).map(|e| e.addr), Some(bound));
        assert_eq!(v.public_endpoint("0.0.0.0:8080".parse().unwrap()), None);
        let public = NodeConfig::from_toml(&format!(
            "{MINIMAL}\n[validator]\nhttp = \"0.0.0.0:8080\"\npublic_address = \"203.0.113.7:8080\"\n"
        ))
        .unwrap();
        assert_eq!(
            public
                .validator
                .public_endpoint("0.0.0.0:8080".parse().unwrap())
                .map(|e| e.addr.to_string()),
            Some("203.0.113.7:8080".into())
        );
        for bad in ["validator.example:8080", "0.0.0.0:8080", "203.0.113.7:0"] {
            let err = NodeConfig::from_toml(&format!(
                "{MINIMAL}\n[validator]\npublic_address = \"{bad}\"\n"
            ))
            .unwrap_err();
            assert!(err.to_string().contains("public_address"), "{bad}: {err}");
        }
        // Zone miners look validators up on chain unless URLs are configured.
        let mut m = MinerSettings::default();
        assert!(!m.discovers_validators());
        m.prompts = PromptChoice::Zone;
        assert!(m.discovers_validators());
        m.validator_api = vec!["http://10.0.0.1:8080".into()];
        assert!(!m.discovers_validators());
    }

    #[test]
    fn trainer_coefficients_and_environment_specs_are_read() {
        let c = NodeConfig::from_toml(&format!(
            "{MINIMAL}\n[subnet]\nenvironment = \"2*math:0 + math:1\"\n[trainer.grpo]\nkl_coef = 0.05\nlearning_rate = 3e-6\nadvantage = \"dr_grpo\"\n"
        ))
        .unwrap();
        assert_eq!(c.trainer.grpo.kl_coef, 0.05);
        assert_eq!(c.trainer.grpo.learning_rate, 3e-6);
        assert_eq!(c.trainer.grpo.advantage, grail_grpo::AdvantageMode::DrGrpo);
        assert_eq!(
            c.trainer.grpo.clip_high, 0.28,
            "unset fields keep their defaults"
        );
        assert_eq!(c.subnet.environment().unwrap().id().name, "mix");
        let typo = NodeConfig::from_toml(&format!("{MINIMAL}\n[trainer.grpo]\nkl_coeff = 0.05\n"));
        assert!(typo.is_err());
        let bad = NodeConfig::from_toml(&format!("{MINIMAL}\n[trainer.grpo]\nclip_low = 2.0\n"));
        assert!(bad.unwrap_err().to_string().contains("trainer.grpo"));
        let dataset = NodeConfig::from_toml(&format!(
            "{MINIMAL}\n[subnet]\nenvironment = \"gsm8k\"\ndataset = \"/nonexistent.jsonl\"\n"
        ))
        .unwrap();
        let err = dataset
            .subnet
            .environment()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent.jsonl"), "{err}");
    }
}
