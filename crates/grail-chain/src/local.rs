//! The local clock chain: the embedded default.
//!
//! Block `n` starts at `genesis + n · block_time`; its hash is
//! `SHA-256("grail-rs/local-chain/v1" ‖ chain id ‖ u64be(n))`. Registrations,
//! commitments, endpoints and weights live in `state.json` in the chain's directory, which several
//! processes share: every change holds an exclusive lock on `state.lock` and replaces the
//! file atomically (write a temporary file, fsync, rename), so readers never see a partial
//! state and concurrent writers never lose each other's changes.
//!
//! The subnet's weights rules are modelled where they matter to grail: a weights version
//! key (weights below [`State::weights_version_key`] are refused) and commit-reveal as
//! delayed visibility ([`LocalChain::set_commit_reveal`]: weights set at block `b` become
//! the validator's weights at `b + N`, as a commit the chain reveals itself would).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use grail_proto::signing::Keypair;
use grail_proto::Hotkey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock};
use crate::{Chain, ChainError, Commitment, Endpoint, Metagraph, Neuron};

const GENESIS_FILE: &str = "genesis.json";
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";
/// How many weight-setting events the state keeps.
const WEIGHT_HISTORY: usize = 1000;

/// The fixed parameters of a local chain (`genesis.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Random chain id (hex), mixed into every block hash.
    pub chain_id: String,
    /// Unix time of block 0, milliseconds.
    pub genesis_ms: u64,
    /// Milliseconds per block.
    pub block_time_ms: u64,
    /// The subnet id the chain hosts.
    pub netuid: u16,
}

/// One `set_weights` call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsEvent {
    /// Block at which they were set.
    pub block: u64,
    /// The validator's uid.
    pub validator: u16,
    /// `(uid, weight)` pairs.
    pub weights: Vec<(u16, u16)>,
    /// The version key they were set with.
    #[serde(default)]
    pub version_key: u64,
}

/// Weights committed under commit-reveal, not visible yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWeights {
    /// The block from which they are the validator's weights.
    pub reveal_block: u64,
    /// The weights as set.
    pub event: WeightsEvent,
}

/// Everything that changes (`state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Registered neurons, uid order.
    pub neurons: Vec<Neuron>,
    /// Commitments by hotkey (hex).
    pub commitments: BTreeMap<String, Commitment>,
    /// Latest weights by validator uid.
    pub weights: BTreeMap<u16, Vec<(u16, u16)>>,
    /// Recent weight-setting events, oldest first (committed weights enter at their
    /// reveal).
    pub weight_history: Vec<WeightsEvent>,
    /// Published API endpoints by hotkey (hex).
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The subnet's weights version key: weights set with a lower one are refused.
    #[serde(default)]
    pub weights_version_key: u64,
    /// Commit-reveal: weights become visible this many blocks after they are set
    /// (`None`: set weights are visible at once).
    #[serde(default)]
    pub commit_reveal_blocks: Option<u64>,
    /// Committed weights waiting for their reveal block, oldest first.
    #[serde(default)]
    pub pending_weights: Vec<PendingWeights>,
}

impl State {
    /// Moves committed weights whose reveal block is at or before `block` into the
    /// validators' weights and the history.
    fn reveal_due(&mut self, block: u64) {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_weights)
            .into_iter()
            .partition(|p| p.reveal_block <= block);
        self.pending_weights = waiting;
        for p in due {
            self.record_weights(p.event);
        }
    }

    fn record_weights(&mut self, event: WeightsEvent) {
        self.weights.insert(event.validator, event.weights.clone());
        self.weight_history.push(event);
        let excess = self.weight_history.len().saturating_sub(WEIGHT_HISTORY);
        self.weight_history.drain(..excess);
    }
}

/// A handle on a local chain directory.
#[derive(Debug, Clone)]
pub struct LocalChain {
    dir: PathBuf,
    genesis: Genesis,
    lock_timeout: Duration,
    clock: Arc<dyn Clock>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ChainError> {
    grail_fs::write_atomic(path, bytes)
        .map_err(|e| ChainError::io(format!("writing {}", path.display()), e))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ChainError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ChainError::StateJson {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ChainError::io(format!("reading {}", path.display()), e)),
    }
}

impl LocalChain {
    /// Opens the chain in `dir`, creating it (genesis now) when it does not exist yet.
    pub fn open_or_create(dir: &Path, netuid: u16, block_time_ms: u64) -> Result<Self, ChainError> {
        if block_time_ms == 0 {
            return Err(ChainError::ZeroBlockTime);
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| ChainError::io(format!("creating {}", dir.display()), e))?;
        let chain = Self {
            dir: dir.to_path_buf(),
            genesis: Genesis {
                chain_id: String::new(),
                genesis_ms: 0,
                block_time_ms,
                netuid,
            },
            lock_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        };
        // Genesis is created under the state lock so that two processes starting together
        // agree on one.
        let genesis = chain.locked(|| {
            let path = dir.join(GENESIS_FILE);
            if let Some(existing) = read_json::<Genesis>(&path)? {
                return Ok(existing);
            }
            let mut id = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
            let genesis = Genesis {
                chain_id: hex::encode(id),
                genesis_ms: chain.clock.now_ms(),
                block_time_ms,
                netuid,
            };
            let json =
                serde_json::to_vec_pretty(&genesis).map_err(|source| ChainError::Serialize {
                    what: "genesis",
                    source,
                })?;
            write_atomic(&path, &json)?;
            Ok(genesis)
        })?;
        Self::check_genesis(dir, &genesis)?;
        Ok(Self { genesis, ..chain })
    }

    /// Opens an existing chain directory.
    pub fn open(dir: &Path) -> Result<Self, ChainError> {
        let path = dir.join(GENESIS_FILE);
        let genesis: Genesis =
            read_json(&path)?.ok_or(ChainError::NoLocalChain { genesis: path })?;
        Self::check_genesis(dir, &genesis)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            genesis,
            lock_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        })
    }

    fn check_genesis(dir: &Path, genesis: &Genesis) -> Result<(), ChainError> {
        if genesis.block_time_ms == 0 || hex::decode(&genesis.chain_id).map(|b| b.len()) != Ok(32) {
            return Err(ChainError::CorruptState {
                path: dir.join(GENESIS_FILE).display().to_string(),
                detail: "chain_id must be 32 hex bytes and block_time_ms positive".into(),
            });
        }
        Ok(())
    }

    /// How long a change waits for another process's lock before failing (default 10 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Reads block numbers and times from `clock` instead of the wall clock (every
    /// process of a network must use the same clock; tests pass tokio's paused one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The chain's fixed parameters.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The chain's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` holding the exclusive state lock.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, ChainError>) -> Result<T, ChainError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ChainError::io(format!("opening {}", path.display()), e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < self.lock_timeout => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(ChainError::Locked {
                        path: path.display().to_string(),
                        waited_ms: start.elapsed().as_millis() as u64,
                    })
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(ChainError::io(format!("locking {}", path.display()), e))
                }
            }
        }
        let result = f();
        // Closing the file below releases the lock even if this explicit unlock fails.
        let _ = file.unlock();
        result
    }

    /// The current state.
    pub fn state(&self) -> Result<State, ChainError> {
        Ok(read_json(&self.dir.join(STATE_FILE))?.unwrap_or_default())
    }

    /// Applies `change` to the state under the lock and writes it back atomically.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, ChainError>,
    ) -> Result<T, ChainError> {
        let block = self.current_block();
        self.locked(|| {
            let mut state = self.state()?;
            state.reveal_due(block);
            let out = change(&mut state)?;
            let json =
                serde_json::to_vec_pretty(&state).map_err(|source| ChainError::Serialize {
                    what: "local chain state",
                    source,
                })?;
            write_atomic(&self.dir.join(STATE_FILE), &json)?;
            Ok(out)
        })
    }

    /// Registers `hotkey` (idempotent); returns its uid.
    pub fn register(
        &self,
        hotkey: Hotkey,
        stake: u64,
        validator_permit: bool,
    ) -> Result<u16, ChainError> {
        self.update(|state| {
            if let Some(n) = state.neurons.iter().find(|n| n.hotkey == hotkey) {
                return Ok(n.uid);
            }
            let uid = u16::try_from(state.neurons.len()).map_err(|_| ChainError::SubnetFull {
                netuid: self.genesis.netuid,
            })?;
            state.neurons.push(Neuron {
                uid,
                hotkey,
                stake,
                validator_permit,
            });
            Ok(uid)
        })
    }

    /// Sets the subnet's weights version key (the `WeightsVersionKey` hyperparameter):
    /// weights set with a lower key are refused.
    pub fn set_weights_version_key(&self, key: u64) -> Result<(), ChainError> {
        self.update(|state| {
            state.weights_version_key = key;
            Ok(())
        })
    }

    /// Turns commit-reveal on (weights become visible `blocks` blocks after they are set)
    /// or off (`None`; weights already committed are still revealed at their block).
    pub fn set_commit_reveal(&self, blocks: Option<u64>) -> Result<(), ChainError> {
        self.update(|state| {
            state.commit_reveal_blocks = blocks;
            Ok(())
        })
    }

    /// The current block number (synchronous form).
    pub fn current_block(&self) -> u64 {
        self.clock.now_ms().saturating_sub(self.genesis.genesis_ms) / self.genesis.block_time_ms
    }

    /// Hash of block `number` (no check that it exists).
    pub fn hash_of(&self, number: u64) -> [u8; 32] {
        let id = hex::decode(&self.genesis.chain_id).unwrap_or_default();
        Sha256::new()
            .chain_update(b"grail-rs/local-chain/v1")
            .chain_update(id)
            .chain_update(number.to_be_bytes())
            .finalize()
            .into()
    }

    fn registered(&self, state: &State, key: &Keypair) -> Result<Neuron, ChainError> {
        state
            .neurons
            .iter()
            .find(|n| n.hotkey == key.public())
            .cloned()
            .ok_or_else(|| ChainError::NotRegistered {
                hotkey: key.public(),
                netuid: self.genesis.netuid,
            })
    }

    /// The hotkey a state map key (hex) names.
    fn hotkey_of(&self, hex_key: &str, what: &str) -> Result<Hotkey, ChainError> {
        hex::decode(hex_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Hotkey)
            .ok_or_else(|| ChainError::CorruptState {
                path: self.dir.join(STATE_FILE).display().to_string(),
                detail: format!("{what} key `{hex_key}` is not a hotkey"),
            })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalChain) -> Result<T, ChainError> + Send + 'static,
    ) -> Result<T, ChainError> {
        let chain = self.clone();
        tokio::task::spawn_blocking(move || f(chain))
            .await
            .map_err(ChainError::Task)?
    }
}

#[async_trait]
impl Chain for LocalChain {
    fn netuid(&self) -> u16 {
        self.genesis.netuid
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.current_block())
    }

    async fn block_hash(&self, number: u64) -> Result<[u8; 32], ChainError> {
        let head = self.current_block();
        if number > head {
            return Err(ChainError::FutureBlock {
                requested: number,
                head,
            });
        }
        Ok(self.hash_of(number))
    }

    async fn block_timestamp_ms(&self, number: u64) -> Result<u64, ChainError> {
        Ok(self.genesis.genesis_ms + number * self.genesis.block_time_ms)
    }

    async fn metagraph(&self) -> Result<Metagraph, ChainError> {
        let netuid = self.genesis.netuid;
        self.blocking(move |c| {
            Ok(Metagraph {
                netuid,
                neurons: c.state()?.neurons,
            })
        })
        .await
    }

    async fn commitments(&self) -> Result<BTreeMap<Hotkey, Commitment>, ChainError> {
        self.blocking(|c| {
            let state = c.state()?;
            state
                .commitments
                .into_iter()
                .map(|(hex_key, commitment)| Ok((c.hotkey_of(&hex_key, "commitment")?, commitment)))
                .collect()
        })
        .await
    }

    async fn commit(&self, key: &Keypair, commitment: &Commitment) -> Result<(), ChainError> {
        let (key, commitment) = (key.clone(), commitment.clone());
        self.blocking(move |c| {
            c.update(|state| {
                c.registered(state, &key)?;
                state
                    .commitments
                    .insert(hex::encode(key.public().0), commitment);
                Ok(())
            })
        })
        .await
    }

    async fn set_weights(
        &self,
        key: &Keypair,
        weights: &[(u16, u16)],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let (key, weights) = (key.clone(), weights.to_vec());
        self.blocking(move |c| {
            let block = c.current_block();
            c.update(|state| {
                let me = c.registered(state, &key)?;
                if !me.validator_permit {
                    return Err(ChainError::NoValidatorPermit { uid: me.uid });
                }
                if version_key < state.weights_version_key {
                    return Err(ChainError::VersionKeyTooOld {
                        ours: version_key,
                        required: state.weights_version_key,
                    });
                }
                let mut seen = std::collections::BTreeSet::new();
                for &(uid, _) in &weights {
                    if usize::from(uid) >= state.neurons.len() {
                        return Err(ChainError::UnknownWeightUid {
                            uid,
                            registered: state.neurons.len(),
                        });
                    }
                    if !seen.insert(uid) {
                        return Err(ChainError::DuplicateWeightUid { uid });
                    }
                }
                let event = WeightsEvent {
                    block,
                    validator: me.uid,
                    weights,
                    version_key,
                };
                match state.commit_reveal_blocks {
                    Some(delay) => state.pending_weights.push(PendingWeights {
                        reveal_block: block.saturating_add(delay),
                        event,
                    }),
                    None => state.record_weights(event),
                }
                Ok(())
            })
        })
        .await
    }

    async fn weights(&self, validator: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        self.blocking(move |c| {
            let mut state = c.state()?;
            state.reveal_due(c.current_block());
            Ok(state.weights.get(&validator).cloned().unwrap_or_default())
        })
        .await
    }

    async fn serve_endpoint(&self, key: &Keypair, endpoint: &Endpoint) -> Result<(), ChainError> {
        endpoint.check_connectable()?;
        let (key, endpoint) = (key.clone(), *endpoint);
        self.blocking(move |c| {
            c.update(|state| {
                c.registered(state, &key)?;
                state
                    .endpoints
                    .insert(hex::encode(key.public().0), endpoint);
                Ok(())
            })
        })
        .await
    }

    async fn endpoints(&self) -> Result<BTreeMap<Hotkey, Endpoint>, ChainError> {
        self.blocking(|c| {
            let state = c.state()?;
            state
                .endpoints
                .into_iter()
                .map(|(hex_key, endpoint)| Ok((c.hotkey_of(&hex_key, "endpoint")?, endpoint)))
                .collect()
        })
        .await
    }
}
