//! What zone-targeting miners read from validators: their learning-zone reports, from the
//! APIs configured by hand or those validators publish on chain ([`discover_validators`]).

use std::collections::{BTreeMap, BTreeSet};

use grail_chain::endpoint::ENDPOINT_VERSION;
use grail_chain::{Chain, ChainError};
use grail_proto::Hotkey;
use tracing::{debug, info, warn};

use crate::mining::{ZoneCount, ZoneTargetingPrompts};
use crate::NodeError;

/// Why a validator's report could not be read (logged; the miner goes on).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The request failed or the validator answered with an error status.
    #[error("{url}: {source}")]
    Http {
        /// The URL asked.
        url: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The response is larger than a window state can be.
    #[error("{url}: response over {MAX_REPORT_BYTES} bytes")]
    TooLarge {
        /// The URL asked.
        url: String,
    },
    /// The response is not the expected JSON.
    #[error("{url}: {source}")]
    Json {
        /// The URL asked.
        url: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// Largest window-state response read from a validator.
const MAX_REPORT_BYTES: usize = 1 << 20;

/// The API URLs of the subnet's validators as published on chain: the endpoints of
/// validator-permit holders other than `me` that publish grail's endpoint version
/// ([`ENDPOINT_VERSION`]; others, such as the Python validators' axons, serve no grail
/// API), in uid order.
///
/// # Errors
/// The metagraph or the endpoints cannot be read.
pub async fn discover_validators(
    chain: &dyn Chain,
    me: &Hotkey,
) -> Result<Vec<String>, ChainError> {
    let metagraph = chain.metagraph().await?;
    let endpoints = chain.endpoints().await?;
    let mut urls = Vec::new();
    for n in metagraph
        .neurons
        .iter()
        .filter(|n| n.validator_permit && n.hotkey != *me)
    {
        match endpoints.get(&n.hotkey) {
            Some(e) if e.version == ENDPOINT_VERSION => urls.push(e.url()),
            Some(e) => debug!(
                uid = n.uid,
                version = e.version,
                "validator endpoint of another version; skipped"
            ),
            None => {}
        }
    }
    Ok(urls)
}

/// Reads validators' window states (`GET /state`, then `/window/{last}/state`) for a
/// zone-targeting miner; each window of each validator is used once. An unreachable
/// validator is logged and skipped: prompts are then chosen from what is known.
pub struct ValidatorReports {
    client: reqwest::Client,
    urls: Vec<String>,
    used: BTreeSet<(String, u64)>,
}

/// The part of a window summary a miner reads.
#[derive(serde::Deserialize)]
struct ZoneReport {
    window: u64,
    #[serde(default)]
    strata: BTreeMap<String, ZoneCount>,
}

impl ValidatorReports {
    /// For the APIs at `urls` (`http://host:port`), 3 s per request.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS backend).
    pub fn new(urls: &[String]) -> Result<Self, NodeError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(NodeError::HttpClient)?;
        let mut reports = Self {
            client,
            urls: Vec::new(),
            used: Default::default(),
        };
        reports.set_urls(urls);
        Ok(reports)
    }

    /// Reads the APIs at `urls` from now on (validators found on chain change).
    pub fn set_urls(&mut self, urls: &[String]) {
        self.urls = urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
    }

    /// The APIs read.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Feeds `zone` the reports not used yet, all validators' at once (one decay step).
    pub async fn feed(&mut self, zone: &mut ZoneTargetingPrompts) {
        let mut fresh = Vec::new();
        for url in &self.urls {
            match self.latest(url).await {
                Ok(Some(report)) if self.used.insert((url.clone(), report.window)) => {
                    info!(
                        window = report.window,
                        validator = %url,
                        strata = report.strata.len(),
                        "read the validator's learning-zone report"
                    );
                    fresh.push(report.strata);
                }
                Ok(_) => {}
                Err(e) => warn!(validator = %url, "cannot read the window state: {e}"),
            }
        }
        if !fresh.is_empty() {
            zone.update(&fresh);
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, ReportError> {
        let http = |source| ReportError::Http {
            url: url.to_string(),
            source,
        };
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http)?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_REPORT_BYTES {
                return Err(ReportError::TooLarge {
                    url: url.to_string(),
                });
            }
        }
        serde_json::from_slice(&body).map_err(|source| ReportError::Json {
            url: url.to_string(),
            source,
        })
    }

    async fn latest(&self, url: &str) -> Result<Option<ZoneReport>, ReportError> {
        #[derive(serde::Deserialize)]
        struct Head {
            last_window: Option<u64>,
        }
        let head: Head = self.get(&format!("{url}/state")).await?;
        match head.last_window {
            None => Ok(None),
            Some(last) => self
                .get(&format!("{url}/window/{last}/state"))
                .await
                .map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, RwLock};

    use grail_chain::local::LocalChain;
    use grail_chain::Endpoint;
    use grail_proto::signing::Keypair;

    use super::*;
    use crate::validator::{serve_api, ApiState, WindowSummary};

    fn zone_state(window: u64) -> ApiState {
        let summary = WindowSummary {
            window,
            strata: BTreeMap::from([(
                "math:1".to_string(),
                ZoneCount {
                    groups: 10.0,
                    in_zone: 9.0,
                },
            )]),
            ..Default::default()
        };
        ApiState {
            last_window: Some(window),
            windows: BTreeMap::from([(window, summary)]),
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_validator_publishes_its_api_and_a_zone_miner_finds_it_on_chain() {
        let dir = tempfile::tempdir().unwrap();
        let chain = LocalChain::open_or_create(&dir.path().join("chain"), 1, 1000).unwrap();
        let (validator, miner) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let (silent, other_version, not_validator) = (
            Keypair::from_seed(&[3; 32]),
            Keypair::from_seed(&[4; 32]),
            Keypair::from_seed(&[5; 32]),
        );
        chain.register(validator.public(), 1000, true).unwrap();
        chain.register(miner.public(), 0, false).unwrap();
        chain.register(silent.public(), 1000, true).unwrap();
        chain.register(other_version.public(), 1000, true).unwrap();
        chain.register(not_validator.public(), 0, false).unwrap();
        let net = crate::network::Network {
            chain: std::sync::Arc::new(chain),
            beacon: std::sync::Arc::new(grail_chain::beacon::LocalBeacon::from_seed(
                &[7; 32], 0, 1,
            )),
            window_length: 4,
            block_time_ms: 1000,
        };

        // The validator serves its API and publishes where it listens.
        let addr = serve_api("127.0.0.1:0", Arc::new(RwLock::new(zone_state(48))))
            .await
            .unwrap();
        let w = crate::sim::wiring(&dir.path().join("validator"), net, 1);
        let endpoint = w.config.validator.public_endpoint(addr).unwrap();
        assert!(w.publish_endpoint(endpoint).await.unwrap());
        assert!(
            !w.publish_endpoint(endpoint).await.unwrap(),
            "an endpoint already on chain is not published again"
        );
        // Endpoints that must not be read: a non-validator's, another protocol's.
        let chain = w.net.chain.as_ref();
        chain
            .serve_endpoint(
                &not_validator,
                &Endpoint::new("127.0.0.1:9".parse().unwrap()),
            )
            .await
            .unwrap();
        let mut old = Endpoint::new("127.0.0.1:10".parse().unwrap());
        old.version = ENDPOINT_VERSION + 1;
        chain.serve_endpoint(&other_version, &old).await.unwrap();

        // The miner finds exactly the validator's API and reads its report.
        let urls = discover_validators(chain, &miner.public()).await.unwrap();
        assert_eq!(urls, vec![format!("http://{addr}")]);
        assert!(discover_validators(chain, &validator.public())
            .await
            .unwrap()
            .is_empty());
        let env = grail_env::by_name("math:0 + math:1", None).unwrap();
        let mut zone = ZoneTargetingPrompts::new(&miner, env.as_ref(), 0.7);
        let mut reports = ValidatorReports::new(&[]).unwrap();
        reports.set_urls(&urls);
        reports.feed(&mut zone).await;
        let after: BTreeMap<String, f64> = zone.preferences().into_iter().collect();
        assert!(after["math:1"] > after["math:0"], "{after:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn zone_reports_come_from_the_validator_api_once() {
        let state = zone_state(48);
        let addr = serve_api("127.0.0.1:0", Arc::new(RwLock::new(state)))
            .await
            .unwrap();
        let env = grail_env::by_name("math:0 + math:1", None).unwrap();
        let mut zone = ZoneTargetingPrompts::new(&Keypair::from_seed(&[1; 32]), env.as_ref(), 0.7);
        let before = zone.preferences();
        assert!(
            before.iter().all(|(_, p)| (p - 0.5).abs() < 1e-9),
            "{before:?}"
        );
        // An unreachable validator is skipped; the reachable one is read.
        let mut reports =
            ValidatorReports::new(&[format!("http://{addr}/"), "http://127.0.0.1:9".into()])
                .unwrap();
        reports.feed(&mut zone).await;
        let after: BTreeMap<String, f64> = zone.preferences().into_iter().collect();
        // (9 + 1) / (10 + 2) against the unreported tier's 1/2.
        let expected = (10.0 / 12.0) / (10.0 / 12.0 + 0.5);
        assert!((after["math:1"] - expected).abs() < 1e-9, "{after:?}");
        // The same window again is not counted twice.
        reports.feed(&mut zone).await;
        let again: BTreeMap<String, f64> = zone.preferences().into_iter().collect();
        assert_eq!(again, after);
    }
}
