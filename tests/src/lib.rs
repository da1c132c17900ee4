//! Harness for the end-to-end tests in `tests/tests/`: a local network on the tiny model
//! (created with the production `localnet::init`), its beacon served over HTTP, and a toy
//! environment whose rewards vary on the tiny model's random text.
//!
//! Tests of the role loops run on simulated time: [`paused_runtime`] and
//! [`open_clocked_wiring`] put the chain, the beacon and every deadline on tokio's paused
//! clock, which advances only when every role waits — deterministic, and as fast as the
//! work itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use grail_chain::local::LocalChain;
use grail_chain::Clock;

use grail_env::math::ProceduralMath;
use grail_env::{EnvError, Environment, EnvironmentId, Problem, PromptSpace, RewardVector};
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_lab::localnet::{self, LocalnetInfo, LocalnetOptions};
use grail_node::config::{NodeConfig, SubnetSettings};
use grail_node::wiring::Wiring;

/// Rewards the share of letters a–m in the completion text: random text from the tiny
/// model spreads it, so groups land in the learning zone.
#[derive(Debug, Default)]
pub struct ToyEnv(ProceduralMath);

impl Environment for ToyEnv {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: "toy".into(),
            params: "letters=a-m;v1".into(),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Unbounded
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        self.0.problem(prompt_id)
    }

    fn score(&self, _problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        let text = grail_env::answer::strip_eos(completion, eos_markers);
        let letters: Vec<char> = text.chars().filter(char::is_ascii_alphabetic).collect();
        let low = letters
            .iter()
            .filter(|c| ('a'..='m').contains(&c.to_ascii_lowercase()))
            .count();
        let share = if letters.is_empty() {
            0.0
        } else {
            low as f64 / letters.len() as f64
        };
        RewardVector::weighted(&[("letters", 1.0, share)], share > 0.5)
    }
}

/// A WebAssembly job reward (text format) for the tiny model's random text: reward =
/// (completion length in bytes mod 3) / 2, so a group's rewards differ and only the
/// module knows them.
pub const LENGTH_REWARD: &str = r#"(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 1024))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (local.get $n)))
    (local.get $p))
  (func (export "reward") (param i32 i32 i32 i32 i32 i32) (result f64)
    (f64.div (f64.convert_i32_u (i32.rem_u (local.get 1) (i32.const 3))) (f64.const 2))))"#;

/// A local network in a temporary folder, its beacon running on its own thread.
pub struct TestNet {
    /// Keeps the folder alive.
    pub tmp: tempfile::TempDir,
    /// The network folder.
    pub root: PathBuf,
    /// What init set up.
    pub info: LocalnetInfo,
}

impl TestNet {
    /// Creates the network: tiny model (seed 0), `miners` miners, blocks of `block_ms`,
    /// windows of `window_length` blocks, completions of at most `max_new_tokens`.
    pub fn new(
        miners: usize,
        block_ms: u64,
        window_length: u64,
        max_new_tokens: u32,
        lead_secs: u64,
    ) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let model = tmp.path().join("tiny");
        write_tiny_model(&TinySpec::default(), &model).expect("tiny model");
        let root = tmp.path().join("net");
        let options = LocalnetOptions {
            model,
            miners,
            block_time_ms: block_ms,
            subnet: SubnetSettings {
                window_length,
                environment: "toy".into(),
                group_size: 4,
                max_new_tokens,
                ..SubnetSettings::default()
            },
            lead_secs,
            threads: 1,
            device: Default::default(),
            trainer: Default::default(),
            prompts: grail_node::config::PromptChoice::Random,
            jobs: false,
        };
        let info = localnet::init(&root, &options).expect("localnet init");
        let beacon_root = root.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let _ = rt.block_on(localnet::serve_beacon(&beacon_root));
        });
        Self { tmp, root, info }
    }

    /// The configuration of a participant.
    pub fn config(&self, name: &str) -> NodeConfig {
        NodeConfig::load(&self.root.join(format!("{name}.toml"))).expect("config")
    }

    /// Opens a participant's handles (with `edit` applied to its configuration).
    pub async fn wiring(&self, name: &str, edit: impl FnOnce(&mut NodeConfig)) -> Wiring {
        open_wiring(&self.root, name, edit).await
    }

    /// Registers another validator `name` (with a validator permit and the first
    /// validator's stake) and writes its configuration: the first validator's, with its
    /// own hotkey, bucket and state folder, no HTTP API and no job gateway.
    pub fn add_validator(&self, name: &str, seed: u8) -> PathBuf {
        let mut c = self.config("validator");
        let hotkey = grail_chain::keys::hotkey_path(&self.root.join("wallets"), "localnet", name);
        let key = grail_chain::keys::write_plain_hotkey(&hotkey, &[seed; 32]).expect("hotkey");
        let chain = grail_chain::local::LocalChain::open(&self.root.join("chain")).expect("chain");
        chain
            .register(key.public(), 1_000_000, true)
            .expect("register");
        c.hotkey_file = hotkey;
        let bucket = self.root.join("stores").join(name);
        std::fs::create_dir_all(&bucket).expect("bucket");
        c.store = format!("local:{}", bucket.display());
        c.state_dir = self.root.join("state").join(name);
        c.validator.http = String::new();
        c.jobs = Default::default();
        let file = self.root.join(format!("{name}.toml"));
        std::fs::write(&file, c.to_toml()).expect("config");
        file
    }

    /// A second tiny model with other weights (seed 1) and the same tokenizer.
    pub fn other_model(&self) -> PathBuf {
        let dir = self.tmp.path().join("tiny-other");
        let spec = TinySpec {
            seed: 1,
            ..TinySpec::default()
        };
        write_tiny_model(&spec, &dir).expect("other tiny model");
        dir
    }
}

/// Runs `f` on its own thread with its own multi-threaded runtime (like its own process).
pub fn spawn_role<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f())
        })
        .expect("thread")
}

/// A multi-threaded runtime (the roles use `block_in_place`).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// What the trainer does at start: publish the base model as checkpoint 0 and announce it.
pub async fn publish_base(root: &Path, env: &dyn Environment) -> Wiring {
    publish_checkpoint_zero(open_wiring(root, "trainer", |_| {}).await, env).await
}

/// Runs the trainer for no window: it publishes and announces checkpoint 0.
async fn publish_checkpoint_zero(trainer: Wiring, env: &dyn Environment) -> Wiring {
    grail_train::run(
        &trainer,
        env,
        None,
        Some(0),
        grail_node::network::Stop::never(),
    )
    .await
    .expect("checkpoint 0");
    trainer
}

/// A current-thread runtime on paused time (`start_paused`): the clock of
/// [`open_clocked_wiring`] advances only when every task waits. Role loops run as local
/// tasks on it ([`tokio::task::LocalSet`]); their forward passes run in place.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// [`open_wiring`] on `clock`: the local chain, an in-process beacon with the served
/// beacon's key and the role's deadlines all read it. Every participant of one test must
/// share the clock (made inside the paused runtime).
pub async fn open_clocked_wiring(
    root: &Path,
    info: &LocalnetInfo,
    clock: Arc<dyn Clock>,
    name: &str,
    edit: impl FnOnce(&mut NodeConfig),
) -> Wiring {
    let mut w = open_wiring(root, name, edit).await;
    let chain = LocalChain::open(&root.join("chain")).expect("local chain");
    w.net.chain = Arc::new(chain.with_clock(clock.clone()));
    let beacon = localnet::beacon_of(info).expect("the network's beacon");
    w.net.beacon = Arc::new(beacon.with_clock(clock.clone()));
    w.net.clock = clock;
    w
}

/// [`publish_base`] on `clock` (see [`open_clocked_wiring`]).
pub async fn publish_base_on(
    net: &TestNet,
    clock: Arc<dyn Clock>,
    env: &dyn Environment,
) -> Wiring {
    let trainer = open_clocked_wiring(&net.root, &net.info, clock, "trainer", |_| {}).await;
    publish_checkpoint_zero(trainer, env).await
}

/// Opens the handles of participant `name` of the network at `root`.
pub async fn open_wiring(root: &Path, name: &str, edit: impl FnOnce(&mut NodeConfig)) -> Wiring {
    let mut c = NodeConfig::load(&root.join(format!("{name}.toml"))).expect("config");
    edit(&mut c);
    Wiring::open(c).await.expect("wiring")
}

/// How a [`FaultyChain`] fails the `at`-th call (1-based) of one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainFault {
    /// The call is made, then the caller dies (a process killed right after the chain
    /// accepted the call, before it recorded anything).
    KillAfter,
    /// The call is not made and returns an RPC error (the node is unreachable).
    Unreachable,
}

/// A real chain with one injected fault: the `at`-th call of `method` (`"commit"` or
/// `"set_weights"`) fails as `fault` says. Every call is forwarded otherwise, and calls of
/// `method` are counted across restarts (share the handle).
pub struct FaultyChain {
    inner: std::sync::Arc<dyn grail_chain::Chain>,
    method: &'static str,
    at: usize,
    fault: ChainFault,
    /// Calls of `method` so far, including the failed one.
    pub calls: std::sync::atomic::AtomicUsize,
}

impl FaultyChain {
    /// Wraps `inner`.
    pub fn new(
        inner: std::sync::Arc<dyn grail_chain::Chain>,
        method: &'static str,
        at: usize,
        fault: ChainFault,
    ) -> Self {
        Self {
            inner,
            method,
            at,
            fault,
            calls: Default::default(),
        }
    }

    /// Counts a call of `method`; the fault to inject now, if any.
    fn count(&self, method: &str) -> Option<ChainFault> {
        if method != self.method {
            return None;
        }
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        (n == self.at).then_some(self.fault)
    }

    /// Runs `call` under the fault injected for `method`.
    async fn guarded<T>(
        &self,
        method: &str,
        call: impl std::future::Future<Output = Result<T, grail_chain::ChainError>>,
    ) -> Result<T, grail_chain::ChainError> {
        match self.count(method) {
            None => call.await,
            Some(ChainFault::Unreachable) => Err(grail_chain::ChainError::Rejected(format!(
                "injected fault: the node is unreachable ({method})"
            ))),
            Some(ChainFault::KillAfter) => {
                let result = call.await;
                panic!(
                    "injected fault: killed right after {method} ({:?})",
                    result.is_ok()
                );
            }
        }
    }
}

#[async_trait::async_trait]
impl grail_chain::Chain for FaultyChain {
    fn netuid(&self) -> u16 {
        self.inner.netuid()
    }
    async fn block_number(&self) -> Result<u64, grail_chain::ChainError> {
        self.inner.block_number().await
    }
    async fn block_hash(&self, number: u64) -> Result<[u8; 32], grail_chain::ChainError> {
        self.inner.block_hash(number).await
    }
    async fn block_timestamp_ms(&self, number: u64) -> Result<u64, grail_chain::ChainError> {
        self.inner.block_timestamp_ms(number).await
    }
    async fn metagraph(&self) -> Result<grail_chain::Metagraph, grail_chain::ChainError> {
        self.inner.metagraph().await
    }
    async fn commitments(
        &self,
    ) -> Result<
        std::collections::BTreeMap<grail_proto::Hotkey, grail_chain::Commitment>,
        grail_chain::ChainError,
    > {
        self.inner.commitments().await
    }
    async fn commit(
        &self,
        key: &grail_proto::signing::Keypair,
        commitment: &grail_chain::Commitment,
    ) -> Result<(), grail_chain::ChainError> {
        self.guarded("commit", self.inner.commit(key, commitment))
            .await
    }
    async fn set_weights(
        &self,
        key: &grail_proto::signing::Keypair,
        weights: &[(u16, u16)],
        version_key: u64,
    ) -> Result<(), grail_chain::ChainError> {
        self.guarded(
            "set_weights",
            self.inner.set_weights(key, weights, version_key),
        )
        .await
    }
    async fn weights(&self, validator: u16) -> Result<Vec<(u16, u16)>, grail_chain::ChainError> {
        self.inner.weights(validator).await
    }
}
