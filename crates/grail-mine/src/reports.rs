//! What zone-targeting miners read from validators: their learning-zone reports, from the
//! APIs configured by hand or those validators publish on chain ([`discover_validators`]).

use std::collections::{BTreeMap, BTreeSet};

use grail_chain::endpoint::ENDPOINT_VERSION;
use grail_chain::{Chain, ChainError};
use grail_proto::Hotkey;
use tracing::{debug, info, warn};

use crate::prompts::ZoneTargetingPrompts;
use grail_node::zone::ZoneCount;
use grail_node::NodeError;

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

/// A validator's API and how much its reports weigh.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatorApi {
    /// Base URL (`http://host:port`, no trailing slash).
    pub url: String,
    /// The validator's stake (at least 1, so zero-stake networks weigh validators alike);
    /// 1 for APIs configured by hand.
    pub weight: f64,
}

/// The APIs of the subnet's validators as published on chain, weighted by stake: the
/// endpoints of validator-permit holders other than `me` that publish grail's endpoint
/// version ([`ENDPOINT_VERSION`]; others, such as the Python validators' axons, serve no
/// grail API), in uid order.
///
/// # Errors
/// The metagraph or the endpoints cannot be read.
pub async fn discover_validators(
    chain: &dyn Chain,
    me: &Hotkey,
) -> Result<Vec<ValidatorApi>, ChainError> {
    let metagraph = chain.metagraph().await?;
    let endpoints = chain.endpoints().await?;
    let mut apis = Vec::new();
    for n in metagraph
        .neurons
        .iter()
        .filter(|n| n.validator_permit && n.hotkey != *me)
    {
        match endpoints.get(&n.hotkey) {
            Some(e) if e.version == ENDPOINT_VERSION => apis.push(ValidatorApi {
                url: e.url(),
                weight: (n.stake as f64).max(1.0),
            }),
            Some(e) => debug!(
                uid = n.uid,
                version = e.version,
                "validator endpoint of another version; skipped"
            ),
            None => {}
        }
    }
    Ok(apis)
}

/// One window's fresh reports: per validator its weight and per-stratum counts.
pub type ReportBatch = Vec<(f64, BTreeMap<String, ZoneCount>)>;

/// Reads validators' window states (`GET /state`, then `/window/{last}/state`) for a
/// zone-targeting miner, every validator at once; each window of each validator is used
/// once. An unreachable or slow validator (3 s per request) is logged and skipped:
/// prompts are then chosen from what is known.
pub struct ValidatorReports {
    client: reqwest::Client,
    apis: Vec<ValidatorApi>,
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
    /// For the APIs at `urls` (`http://host:port`), weighing alike, 3 s per request.
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
            apis: Vec::new(),
            used: Default::default(),
        };
        reports.set_apis(
            urls.iter()
                .map(|u| ValidatorApi {
                    url: u.clone(),
                    weight: 1.0,
                })
                .collect(),
        );
        Ok(reports)
    }

    /// Reads these APIs from now on (validators found on chain change).
    pub fn set_apis(&mut self, apis: Vec<ValidatorApi>) {
        self.apis = apis
            .into_iter()
            .map(|a| ValidatorApi {
                url: a.url.trim_end_matches('/').to_string(),
                ..a
            })
            .collect();
    }

    /// The APIs read.
    pub fn apis(&self) -> &[ValidatorApi] {
        &self.apis
    }

    /// The reports not used yet, every validator asked at once.
    pub async fn fetch(&mut self) -> ReportBatch {
        let this = &*self;
        let answers = futures::future::join_all(
            this.apis
                .iter()
                .map(|api| async move { (api, this.latest(&api.url).await) }),
        )
        .await;
        let mut fresh = Vec::new();
        let mut used = Vec::new();
        for (api, answer) in answers {
            match answer {
                Ok(Some(report)) if !self.used.contains(&(api.url.clone(), report.window)) => {
                    info!(
                        window = report.window,
                        validator = %api.url,
                        strata = report.strata.len(),
                        "read the validator's learning-zone report"
                    );
                    used.push((api.url.clone(), report.window));
                    fresh.push((api.weight, report.strata));
                }
                Ok(_) => {}
                Err(e) => warn!(validator = %api.url, "cannot read the window state: {e}"),
            }
        }
        self.used.extend(used);
        fresh
    }

    /// Feeds `zone` the reports not used yet, all validators' at once (one decay step),
    /// weighted by stake.
    pub async fn feed(&mut self, zone: &mut ZoneTargetingPrompts) {
        let fresh = self.fetch().await;
        if !fresh.is_empty() {
            zone.update_weighted(fresh.iter().map(|(w, s)| (*w, s)));
        }
    }

    /// Reads reports in the background every `period` (first at once), finding the
    /// validators on `chain` first when `discover` is set, and sends each batch of fresh
    /// reports: the miner's loop never waits on a validator. The task ends when the
    /// receiver is dropped (or abort the returned handle).
    pub fn spawn(
        mut self,
        discover: Option<(std::sync::Arc<dyn Chain>, Hotkey)>,
        period: std::time::Duration,
    ) -> (
        tokio::sync::mpsc::Receiver<ReportBatch>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let task = tokio::spawn(async move {
            loop {
                if let Some((chain, me)) = &discover {
                    match discover_validators(chain.as_ref(), me).await {
                        Ok(apis) => {
                            if apis.is_empty() {
                                warn!("no validator has published its API on chain; every stratum is drawn alike");
                            }
                            self.set_apis(apis);
                        }
                        // Keep the validators found before.
                        Err(e) => warn!("cannot read validators' endpoints from the chain: {e}"),
                    }
                }
                let fresh = self.fetch().await;
                if !fresh.is_empty() && tx.send(fresh).await.is_err() {
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(period).await;
            }
        });
        (rx, task)
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
    use grail_validate::{serve_api, ApiState, WindowSummary};

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
        let net = grail_node::network::Network {
            chain: std::sync::Arc::new(chain),
            beacon: std::sync::Arc::new(grail_chain::beacon::LocalBeacon::from_seed(
                &[7; 32], 0, 1,
            )),
            window_length: 4,
            block_time_ms: 1000,
            clock: std::sync::Arc::new(grail_chain::SystemClock),
        };

        // The validator serves its API and publishes where it listens.
        let addr = serve_api("127.0.0.1:0", Arc::new(RwLock::new(zone_state(48))))
            .await
            .unwrap();
        let w = grail_node::sim::wiring(&dir.path().join("validator"), net, 1);
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

        // The miner finds exactly the validator's API, weighted by its stake, and reads
        // its report.
        let apis = discover_validators(chain, &miner.public()).await.unwrap();
        assert_eq!(
            apis,
            vec![ValidatorApi {
                url: format!("http://{addr}"),
                weight: 1000.0
            }]
        );
        assert!(discover_validators(chain, &validator.public())
            .await
            .unwrap()
            .is_empty());
        let env = grail_env::by_name("math:0 + math:1", None).unwrap();
        let mut zone = ZoneTargetingPrompts::new(&miner, env.as_ref(), 0.7);
        let mut reports = ValidatorReports::new(&[]).unwrap();
        reports.set_apis(apis);
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

    /// A validator that accepts connections and never answers.
    async fn stalling_validator() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn background_reports_skip_a_stalling_validator_and_weigh_by_stake() {
        let honest = |window| {
            let mut s = zone_state(window);
            s.windows.get_mut(&window).unwrap().strata = BTreeMap::from([
                (
                    "math:0".to_string(),
                    ZoneCount {
                        groups: 100.0,
                        in_zone: 10.0,
                    },
                ),
                (
                    "math:1".to_string(),
                    ZoneCount {
                        groups: 100.0,
                        in_zone: 90.0,
                    },
                ),
            ]);
            s
        };
        let mut lying = zone_state(48);
        lying.windows.get_mut(&48).unwrap().strata = BTreeMap::from([
            (
                "math:0".to_string(),
                ZoneCount {
                    groups: 256.0,
                    in_zone: 256.0,
                },
            ),
            (
                "math:1".to_string(),
                ZoneCount {
                    groups: 256.0,
                    in_zone: 0.0,
                },
            ),
        ]);
        let serve = |state| async move {
            let addr = serve_api("127.0.0.1:0", Arc::new(RwLock::new(state)))
                .await
                .unwrap();
            format!("http://{addr}")
        };
        let apis = vec![
            ValidatorApi {
                url: stalling_validator().await,
                weight: 5000.0,
            },
            ValidatorApi {
                url: serve(honest(48)).await,
                weight: 40.0,
            },
            ValidatorApi {
                url: serve(honest(48)).await,
                weight: 35.0,
            },
            ValidatorApi {
                url: serve(lying).await,
                weight: 25.0,
            },
        ];
        let mut reports = ValidatorReports::new(&[]).unwrap();
        reports.set_apis(apis);
        let (mut rx, task) = reports.spawn(None, std::time::Duration::from_secs(60));
        let _task = grail_node::AbortOnDrop(task);
        // Nothing is waited for by whoever reads the channel.
        assert!(
            rx.try_recv().is_err(),
            "no batch before the requests answer"
        );
        let batch = rx
            .recv()
            .await
            .expect("a batch of the validators that answered");
        let mut weights: Vec<f64> = batch.iter().map(|(w, _)| *w).collect();
        weights.sort_by(f64::total_cmp);
        assert_eq!(
            weights,
            vec![25.0, 35.0, 40.0],
            "the stalling validator is skipped"
        );
        let env = grail_env::by_name("math:0 + math:1", None).unwrap();
        let mut zone = ZoneTargetingPrompts::new(&Keypair::from_seed(&[1; 32]), env.as_ref(), 0.7);
        zone.update_weighted(batch.iter().map(|(w, s)| (*w, s)));
        let after: BTreeMap<String, f64> = zone.preferences().into_iter().collect();
        assert!(
            after["math:1"] > after["math:0"],
            "the liar's quarter of the stake does not steer: {after:?}"
        );
    }
}
