//! Client jobs for a miner: the open jobs of the validators' gateways (`GET /v2/jobs`),
//! each job's canonical bytes (`GET /v2/jobs/{id}/job`, checked against its id), and the
//! job groups of a window, mined in the job's lane and uploaded under `lanes/`.

use std::collections::HashMap;

use grail_jobs::JobEnvironment;
use grail_proto::signing::Keypair;
use grail_proto::{Group, SketchCoefficients};
use rand_core::{RngCore, SeedableRng};
use tracing::{info, warn};

use crate::groups::{assemble_group, sample_completions_batch_until, WindowPlan};
use grail_jobs::api::IndexEntry;
use grail_node::context::ModelContext;
use grail_node::NodeError;

/// Largest `GET /v2/jobs` answer read.
const MAX_INDEX_BYTES: usize = 4 << 20;

/// The open jobs a miner knows of.
pub struct JobFeed {
    client: reqwest::Client,
    gateways: Vec<String>,
    loaded: HashMap<String, JobEnvironment>,
    open: Vec<IndexEntry>,
}

/// One job's work for a window: its environment and the prompts still wanting groups.
pub struct JobWork {
    /// The job.
    pub env: JobEnvironment,
    /// Prompt indices with groups still wanted.
    pub prompts: Vec<u64>,
    /// Groups to mine for it this window (`miner.job_groups`, or fewer when the zone
    /// market says its groups land in the learning zone less often than the subnet's).
    pub groups: usize,
}

impl JobFeed {
    /// For the gateways at `urls` (`http://host:port`), 3 s per request.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(urls: &[String]) -> Result<Self, NodeError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(NodeError::HttpClient)?;
        Ok(Self {
            client,
            gateways: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            loaded: HashMap::new(),
            open: Vec::new(),
        })
    }

    /// Whether it knows no gateway (the miner looks them up again).
    pub fn has_no_gateway(&self) -> bool {
        self.gateways.is_empty()
    }

    /// Reads these gateways from now on.
    pub fn set_gateways(&mut self, urls: &[String]) {
        self.gateways = urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
    }

    /// Reads the gateways' open jobs and loads the new ones; a gateway or job that cannot
    /// be read is logged and skipped (the miner mines what it knows).
    pub async fn refresh(&mut self) {
        let mut open: Vec<IndexEntry> = Vec::new();
        for url in &self.gateways {
            match self.index(url).await {
                Ok(entries) => {
                    for e in entries {
                        if !open.iter().any(|o| o.id == e.id) {
                            open.push(e.clone());
                        }
                        if !self.loaded.contains_key(&e.id) {
                            match self.load(url, &e.id).await {
                                Ok(env) => {
                                    info!(job = %e.id, prompts = env.job().prompts.len(), gateway = %url, "loaded a client job");
                                    self.loaded.insert(e.id.clone(), env);
                                }
                                Err(err) => {
                                    warn!(job = %e.id, gateway = %url, "cannot load the job: {err}")
                                }
                            }
                        }
                    }
                }
                Err(e) => warn!(gateway = %url, "cannot read the open jobs: {e}"),
            }
        }
        self.open = open;
    }

    async fn index(&self, url: &str) -> Result<Vec<IndexEntry>, String> {
        let resp = self
            .client
            .get(format!("{url}/v2/jobs"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            // A validator that serves no gateway: no jobs there.
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let bytes = capped_body(resp, MAX_INDEX_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    async fn load(&self, url: &str, id: &str) -> Result<JobEnvironment, String> {
        let resp = self
            .client
            .get(format!("{url}/v2/jobs/{id}/job"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let bytes = capped_body(resp, grail_jobs::limits::MAX_JOB_BYTES).await?;
        // Checking a WebAssembly reward runs it: off the async threads.
        let env =
            grail_node::blocking(|| JobEnvironment::load(&bytes)).map_err(|e| e.to_string())?;
        // Content-addressed: a gateway cannot hand out other bytes under a job's name.
        if env.job_id().to_string() != id {
            return Err(format!("the bytes served are job {}", env.job_id()));
        }
        Ok(env)
    }

    /// The work of the jobs open at unix time `at` (the window's deadline), `groups` each.
    pub fn work(&self, at: u64, groups: usize) -> Vec<JobWork> {
        self.open
            .iter()
            .filter(|e| e.deadline_unix > at)
            .filter_map(|e| {
                let env = self.loaded.get(&e.id)?.clone();
                let size = env.job().prompts.len();
                let prompts: Vec<u64> = e
                    .remaining
                    .iter()
                    .take(size)
                    .enumerate()
                    .filter(|(_, &r)| r > 0)
                    .map(|(i, _)| i as u64)
                    .collect();
                (!prompts.is_empty()).then_some(JobWork {
                    env,
                    prompts,
                    groups,
                })
            })
            .collect()
    }
}

/// A response body of at most `max` bytes, read chunk by chunk (a gateway cannot make a
/// miner buffer more, whatever length it announces or does not).
async fn capped_body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("the answer is over {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is over {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Up to `n` of `prompts`, in an order drawn from the miner's hotkey and the window (so
/// miners spread over a job's prompts instead of all taking the first).
pub fn choose_prompts(prompts: &[u64], n: usize, key: &Keypair, window: u64) -> Vec<u64> {
    let mut seed = [0u8; 32];
    seed[..24].copy_from_slice(&key.public().0[..24]);
    seed[24..].copy_from_slice(&window.to_le_bytes());
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let mut order = prompts.to_vec();
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order.truncate(n);
    order
}

/// One batch of job groups for `prompts` of `job`, sampled and proved in the job's lane
/// of `plan` (the subnet's plan of the window); stops when `cancel` says so.
pub fn mine_job_groups(
    context: &ModelContext,
    job: &JobEnvironment,
    plan: &WindowPlan,
    coefficients: &SketchCoefficients,
    key: &Keypair,
    prompts: &[u64],
    cancel: &dyn Fn() -> bool,
) -> Result<Vec<Group>, NodeError> {
    let lane = job.lane_plan(plan);
    let rendered = prompts
        .iter()
        .map(|&p| {
            context
                .prompt(job, p)
                .map(|(problem, tokens)| (p, problem, tokens))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[u32]> = rendered.iter().map(|(_, _, t)| t.as_slice()).collect();
    let sampled = sample_completions_batch_until(context, &lane, &key.public(), &refs, cancel)?;
    rendered
        .iter()
        .zip(&sampled)
        .map(|((p, problem, tokens), completions)| {
            assemble_group(
                context,
                job,
                &lane,
                coefficients,
                key,
                *p,
                (problem, tokens),
                completions,
            )
        })
        .collect()
}
