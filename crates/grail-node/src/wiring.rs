//! From a [`NodeConfig`] to live handles: key, chain, beacon, stores, checkpoints, device.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use grail_chain::drand::LOE_RELAYS;
use grail_chain::local::LocalChain;
use grail_chain::subtensor::SubtensorChain;
use grail_chain::{Chain, ChainInfo, Commitment, DrandClient, Endpoint};
use grail_proto::signing::Keypair;
use grail_proto::Hotkey;
use grail_store::{ReadCredentials, Store, StoreConfig, StoreError};
use tch::Device;

use crate::checkpoints::CheckpointSource;
use crate::config::NodeConfig;
use crate::network::Network;
use crate::NodeError;

/// Everything a role needs, opened.
pub struct Wiring {
    /// The configuration.
    pub config: NodeConfig,
    /// This participant's hotkey.
    pub key: Keypair,
    /// Chain and beacon.
    pub net: Network,
    /// This participant's bucket.
    pub store: Store,
    /// The trainer's checkpoints.
    pub checkpoints: CheckpointSource,
    /// Where models run.
    pub device: Device,
}

/// Opens a `GRAIL_STORE`-style spec, reading secrets from the environment.
pub fn open_store(spec: &str) -> Result<Store, NodeError> {
    let var = |k: &str| std::env::var(k).map_err(|_| StoreError::Config(format!("{k} is not set")));
    Ok(StoreConfig::parse(spec, &var)?.open()?)
}

/// The store a commitment names: `local:DIR` (local networks only) or the 128-character
/// R2 read credentials.
///
/// # Errors
/// The commitment is not text, names a local directory outside a local network, holds
/// malformed credentials, or the store cannot be opened.
pub fn store_of_commitment(
    commitment: &Commitment,
    local_network: bool,
) -> Result<Store, NodeError> {
    let text = commitment
        .as_text()
        .ok_or_else(|| NodeError::Config("the bucket commitment is not UTF-8 text".into()))?;
    if let Some(dir) = text.strip_prefix("local:") {
        if !local_network {
            return Err(NodeError::Config(
                "a local: bucket commitment outside a local network".into(),
            ));
        }
        return Ok(StoreConfig::Local { dir: dir.into() }.open()?);
    }
    Ok(ReadCredentials::from_commitment(text)?.to_config().open()?)
}

/// The password of an encrypted hotkey file: `GRAIL_HOTKEY_PASSWORD`, else the Bittensor
/// SDK's `BT_PW_…` variable for that path.
pub fn hotkey_password(path: &Path) -> Option<String> {
    std::env::var("GRAIL_HOTKEY_PASSWORD")
        .ok()
        .or_else(|| std::env::var(grail_chain::keys::password_env_var(path)).ok())
}

impl Wiring {
    /// Registered participants that `keep` selects, with the bucket their commitment names
    /// (participants without a commitment, or with one that names no usable bucket, are
    /// left out; the latter with a warning), and the metagraph read.
    pub async fn registered_stores(
        &self,
        keep: impl Fn(&grail_chain::Neuron) -> bool,
    ) -> Result<(grail_chain::Metagraph, Vec<(grail_chain::Neuron, Store)>), NodeError> {
        registered_stores(&self.net, self.config.is_local_network(), keep).await
    }
    /// Opens everything the configuration names (an encrypted hotkey's password from the
    /// environment, see [`hotkey_password`]).
    pub async fn open(config: NodeConfig) -> Result<Self, NodeError> {
        let password = hotkey_password(&config.hotkey_file);
        Self::open_with_password(config, password).await
    }

    /// [`Wiring::open`] with the hotkey password given.
    pub async fn open_with_password(
        config: NodeConfig,
        password: Option<String>,
    ) -> Result<Self, NodeError> {
        config.subnet.validate()?;
        if config.threads > 0 {
            tch::set_num_threads(config.threads as i32);
        }
        let key = grail_chain::keys::load_hotkey(&config.hotkey_file, password.as_deref())?;
        let (chain, block_time_ms): (Arc<dyn Chain>, u64) = if config.is_local_network() {
            let dir = config.local_chain.as_ref().ok_or_else(|| {
                NodeError::Config("network `local` needs `local_chain` (a directory)".into())
            })?;
            let chain = LocalChain::open(dir)?;
            let block_time = chain.genesis().block_time_ms;
            (Arc::new(chain), block_time)
        } else {
            (
                Arc::new(SubtensorChain::connect(&config.network, config.netuid).await?),
                12_000,
            )
        };
        let info = config
            .drand_chain
            .clone()
            .unwrap_or_else(ChainInfo::quicknet);
        let relays = if config.drand_relays.is_empty() {
            LOE_RELAYS.iter().map(|s| s.to_string()).collect()
        } else {
            config.drand_relays.clone()
        };
        let beacon = Arc::new(DrandClient::new(info, relays, Duration::from_secs(10))?);
        let net = Network {
            chain,
            beacon,
            window_length: config.subnet.window_length,
            block_time_ms,
            clock: Arc::new(grail_chain::SystemClock),
        };
        let store = open_store(&config.store)?;
        let trainer =
            Hotkey::from_ss58(&config.trainer_hotkey).map_err(|source| NodeError::Address {
                field: "trainer_hotkey",
                source,
            })?;
        let checkpoints = CheckpointSource {
            store: open_store(&config.trainer_store)?,
            trainer,
            cache: config.state_dir.join("checkpoints"),
            base: Some(config.model.clone()),
        };
        let device = crate::context::device(config.device)?;
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| NodeError::io(format!("creating {}", config.state_dir.display()), e))?;
        Ok(Self {
            config,
            key,
            net,
            store,
            checkpoints,
            device,
        })
    }

    /// Publishes where others read this participant's bucket (local networks: the
    /// directory; otherwise the read credentials given in `GRAIL_READ_CREDENTIALS`).
    pub async fn publish_store(&self) -> Result<(), NodeError> {
        let text = if let Some(dir) = self.config.store.strip_prefix("local:") {
            let dir = std::fs::canonicalize(dir)
                .map_err(|e| NodeError::io(format!("resolving {dir}"), e))?;
            format!("local:{}", dir.display())
        } else {
            let creds = std::env::var("GRAIL_READ_CREDENTIALS").map_err(|_| {
                NodeError::Config(
                    "set GRAIL_READ_CREDENTIALS to your bucket's 128-character read credentials"
                        .into(),
                )
            })?;
            ReadCredentials::from_commitment(&creds)?.to_commitment()
        };
        let commitment = Commitment::new(text.into_bytes())?;
        let current = self.net.chain.commitments().await?;
        if current.get(&self.key.public()) != Some(&commitment) {
            self.net.chain.commit(&self.key, &commitment).await?;
        }
        Ok(())
    }

    /// Publishes where this participant's API is reached (Subtensor: `serve_axon`) unless
    /// the chain already holds exactly that endpoint for it (each publication is a
    /// transaction, and Subtensor rate-limits them). Returns whether it published.
    pub async fn publish_endpoint(&self, endpoint: Endpoint) -> Result<bool, NodeError> {
        let current = self.net.chain.endpoints().await?;
        if current.get(&self.key.public()) == Some(&endpoint) {
            return Ok(false);
        }
        self.net.chain.serve_endpoint(&self.key, &endpoint).await?;
        Ok(true)
    }
}

/// The neurons of `net`'s metagraph that `keep` selects, with the buckets their
/// commitments name (`local`: plain-HTTP endpoints allowed); unusable commitments are
/// logged and left out.
pub async fn registered_stores(
    net: &crate::network::Network,
    local: bool,
    keep: impl Fn(&grail_chain::Neuron) -> bool,
) -> Result<(grail_chain::Metagraph, Vec<(grail_chain::Neuron, Store)>), NodeError> {
    let metagraph = net.chain.metagraph().await?;
    let commitments = net.chain.commitments().await?;
    let stores = metagraph
        .neurons
        .iter()
        .filter(|n| keep(n))
        .filter_map(|n| match store_of_commitment(commitments.get(&n.hotkey)?, local) {
            Ok(store) => Some((n.clone(), store)),
            Err(e) => {
                tracing::warn!(uid = n.uid, hotkey = %n.hotkey.to_ss58(), "unusable bucket commitment: {e}");
                None
            }
        })
        .collect();
    Ok((metagraph, stores))
}
