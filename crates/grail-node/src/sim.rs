//! Simulated time for role-loop tests: a chain whose blocks follow tokio's clock, which a
//! paused runtime (`#[tokio::test(start_paused = true)]`) advances instantly whenever
//! every task waits. Loops that wait for blocks then run in milliseconds of wall-clock
//! time and never race a real clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use grail_chain::beacon::LocalBeacon;
use grail_chain::{BeaconSource, Chain, ChainError, ChainInfo, Commitment, DrandError, Metagraph};
use grail_proto::randomness::Beacon;
use grail_proto::signing::Keypair;
use grail_proto::Hotkey;
use grail_store::StoreConfig;
use tokio::time::Instant;

use crate::checkpoints::CheckpointSource;
use crate::config::NodeConfig;
use crate::network::Network;
use crate::wiring::Wiring;

/// Milliseconds per simulated block.
pub const BLOCK_MS: u64 = 100;
/// Blocks per simulated window.
pub const WINDOW_LENGTH: u64 = 4;

/// Block `n` starts `n · BLOCK_MS` after the chain was made, on tokio's clock.
/// Commitments and weights are kept in memory.
pub struct SimChain {
    genesis: Instant,
    commitments: Mutex<BTreeMap<Hotkey, Commitment>>,
    weights: Mutex<Vec<(u16, u16)>>,
    /// `set_weights` calls so far.
    pub weight_calls: AtomicUsize,
    /// The next this many `block_hash` calls fail as if the node were unreachable.
    pub hash_failures: AtomicUsize,
}

impl SimChain {
    /// A chain at block 0 now.
    pub fn new() -> Self {
        Self {
            genesis: Instant::now(),
            commitments: Mutex::default(),
            weights: Mutex::default(),
            weight_calls: AtomicUsize::new(0),
            hash_failures: AtomicUsize::new(0),
        }
    }
}

impl Default for SimChain {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Chain for SimChain {
    fn netuid(&self) -> u16 {
        1
    }
    async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.genesis.elapsed().as_millis() as u64 / BLOCK_MS)
    }
    async fn block_hash(&self, number: u64) -> Result<[u8; 32], ChainError> {
        if take_one(&self.hash_failures) {
            return Err(ChainError::Rejected(
                "injected fault: the node is unreachable".into(),
            ));
        }
        Ok([number as u8; 32])
    }
    async fn block_timestamp_ms(&self, number: u64) -> Result<u64, ChainError> {
        Ok(number * BLOCK_MS)
    }
    async fn metagraph(&self) -> Result<Metagraph, ChainError> {
        Ok(Metagraph::default())
    }
    async fn commitments(&self) -> Result<BTreeMap<Hotkey, Commitment>, ChainError> {
        Ok(self.commitments.lock().expect("not poisoned").clone())
    }
    async fn commit(&self, key: &Keypair, commitment: &Commitment) -> Result<(), ChainError> {
        let mut all = self.commitments.lock().expect("not poisoned");
        all.insert(key.public(), commitment.clone());
        Ok(())
    }
    async fn set_weights(&self, _: &Keypair, w: &[(u16, u16)], _: u64) -> Result<(), ChainError> {
        self.weight_calls.fetch_add(1, Ordering::SeqCst);
        *self.weights.lock().expect("not poisoned") = w.to_vec();
        Ok(())
    }
    async fn weights(&self, _: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        Ok(self.weights.lock().expect("not poisoned").clone())
    }
}

/// Takes one from `counter` when it is positive.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A local beacon whose next `failures` requests fail as if every relay were down.
pub struct FlakyBeacon {
    inner: LocalBeacon,
    /// Requests that still fail.
    pub failures: AtomicUsize,
}

#[async_trait::async_trait]
impl BeaconSource for FlakyBeacon {
    fn info(&self) -> &ChainInfo {
        self.inner.info()
    }
    async fn beacon(&self, round: u64) -> Result<Beacon, DrandError> {
        if take_one(&self.failures) {
            return Err(DrandError::Http {
                relay: "http://127.0.0.1:9".into(),
                detail: "injected fault: connection refused".into(),
            });
        }
        self.inner.beacon(round).await
    }
}

/// A network on a fresh [`SimChain`] with a local beacon.
pub fn network() -> Network {
    flaky_network().0
}

/// [`network`] with handles on its chain and beacon, to inject faults.
pub fn flaky_network() -> (Network, Arc<SimChain>, Arc<FlakyBeacon>) {
    let chain = Arc::new(SimChain::new());
    let beacon = Arc::new(FlakyBeacon {
        inner: LocalBeacon::from_seed(&[7; 32], 0, 1),
        failures: AtomicUsize::new(0),
    });
    let net = Network {
        chain: chain.clone(),
        beacon: beacon.clone(),
        window_length: WINDOW_LENGTH,
        block_time_ms: BLOCK_MS,
        // Block n is at n · BLOCK_MS ms of Unix time on tokio's clock, as SimChain says.
        clock: Arc::new(grail_chain::TokioClock::from_origin(0)),
    };
    (net, chain, beacon)
}

/// A participant wired to `net`, with its bucket and state under `dir` and no trainer
/// announcement on chain (so no checkpoint is ever in effect), on the CPU.
pub fn wiring(dir: &Path, net: Network, seed: u8) -> Wiring {
    let config = NodeConfig::from_toml(&format!(
        r#"
hotkey_file = "{dir}/hotkey"
store = "local:{dir}/bucket"
trainer_hotkey = "{trainer}"
trainer_store = "local:{dir}/trainer"
model = "{dir}/model"
state_dir = "{dir}/state"
[subnet]
window_length = {WINDOW_LENGTH}
[validator]
http = ""
"#,
        dir = dir.display(),
        trainer = Keypair::from_seed(&[200; 32]).public().to_ss58(),
    ))
    .expect("valid configuration");
    let open = |sub: &str| {
        StoreConfig::Local { dir: dir.join(sub) }
            .open()
            .expect("local store")
    };
    Wiring {
        key: Keypair::from_seed(&[seed; 32]),
        net,
        store: open("bucket"),
        checkpoints: CheckpointSource {
            store: open("trainer"),
            trainer: Keypair::from_seed(&[200; 32]).public(),
            cache: dir.join("state/checkpoints"),
            base: None,
        },
        device: tch::Device::Cpu,
        config,
    }
}

/// Publishes the tiny model as the trainer's checkpoint 0 (in `dir/tiny`) and announces
/// it on `w`'s chain, in effect from window 0.
pub async fn announce_tiny_checkpoint(w: &Wiring, dir: &Path) {
    let model = dir.join("tiny");
    grail_infer::tiny::write_tiny_model(&grail_infer::tiny::TinySpec::default(), &model)
        .expect("tiny model");
    let trainer = Keypair::from_seed(&[200; 32]);
    let signed = w
        .checkpoints
        .store
        .publish_checkpoint(&model, 0, None, (0, 0), 0, &trainer)
        .await
        .expect("checkpoint 0");
    let announcement = grail_chain::CheckpointAnnouncement {
        number: 0,
        digest: signed.manifest.digest(),
        effective_window: 0,
    };
    w.net
        .chain
        .commit(&trainer, &announcement.to_commitment())
        .await
        .expect("announcement");
}
