//! The miner loop: per window, the checkpoint in effect, the window randomness, as many
//! signed groups as fit before the deadline (minus a margin), one upload.

use std::time::Instant;

use grail_env::Environment;
use grail_proto::sampling::prompt_digest;
use grail_proto::{encode_bundle, SketchCoefficients, WindowBundle};
use tracing::{info, warn};

use crate::checkpoints::CurrentModel;
use crate::config::PromptChoice;
use crate::mining::{
    assemble_group, sample_completions, PromptStrategy, Prompts, WindowPlan, ZoneTargetingPrompts,
};
use crate::network::Stop;
use crate::wiring::Wiring;
use crate::NodeError;

/// Prompts in a row that the strategy may propose again before the window is closed
/// early (a finite prompt space can run out).
const MAX_PROMPT_REPEATS: usize = 1000;

/// What a miner did in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct MinedWindow {
    /// The window.
    pub window: u64,
    /// Groups uploaded.
    pub groups: usize,
    /// Checkpoint number used.
    pub checkpoint: u64,
}

/// Runs the miner from `from_window` (default: the current one) for `windows` windows
/// (default: until stopped).
pub async fn run(
    w: &Wiring,
    env: &dyn Environment,
    from_window: Option<u64>,
    windows: Option<u64>,
    mut stop: Stop,
) -> Result<Vec<MinedWindow>, NodeError> {
    w.publish_store().await?;
    let mut prompts = Prompts::new(w.config.miner.prompts, &w.key, env);
    let mut reports = ValidatorReports::new(&w.config.miner.validator_api)?;
    if w.config.miner.prompts == PromptChoice::Zone && w.config.miner.validator_api.is_empty() {
        warn!("miner.prompts = \"zone\" without miner.validator_api: no reports to target with, every stratum is drawn alike");
    }
    let mut current: Option<CurrentModel> = None;
    let wl = w.net.window_length;
    let mut window = match from_window {
        Some(f) => f,
        None => w.net.current_window().await?,
    };
    let mut done = Vec::new();
    let mut attempted = 0u64;
    while windows.is_none_or(|n| attempted < n) {
        if !w.net.wait_for_block(window, &mut stop).await? {
            break;
        }
        let head_window = w.net.current_window().await?;
        if head_window > window {
            warn!(window, "window already over; skipping to {head_window}");
            attempted += (head_window - window) / w.net.window_length;
            window = head_window;
            continue;
        }
        if let Prompts::Zone(z) = &mut prompts {
            reports.feed(z).await;
        }
        match mine_window(w, env, window, &mut current, &mut prompts, &mut stop).await {
            Ok(Some(mined)) => done.push(mined),
            Ok(None) if stop.requested() => break,
            Ok(None) => {}
            // One window's failure (chain, beacon, store) does not end the miner.
            Err(e) => warn!(window, "window failed: {e}"),
        }
        attempted += 1;
        window += wl;
    }
    Ok(done)
}

/// Largest window-state response read from a validator.
const MAX_REPORT_BYTES: usize = 1 << 20;

/// Reads validators' window states (`GET /state`, then `/window/{last}/state`) for a
/// zone-targeting miner; each window of each validator is used once. An unreachable
/// validator is logged and skipped: prompts are then chosen from what is known.
pub struct ValidatorReports {
    client: reqwest::Client,
    urls: Vec<String>,
    used: std::collections::BTreeSet<(String, u64)>,
}

/// The part of a window summary a miner reads.
#[derive(serde::Deserialize)]
struct ZoneReport {
    window: u64,
    #[serde(default)]
    strata: std::collections::BTreeMap<String, crate::mining::ZoneCount>,
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
            .map_err(|e| NodeError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            used: Default::default(),
        })
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

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_REPORT_BYTES {
                return Err(format!("{url}: response over {MAX_REPORT_BYTES} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }

    async fn latest(&self, url: &str) -> Result<Option<ZoneReport>, String> {
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

async fn mine_window(
    w: &Wiring,
    env: &dyn Environment,
    window: u64,
    current: &mut Option<CurrentModel>,
    strategy: &mut dyn PromptStrategy,
    stop: &mut Stop,
) -> Result<Option<MinedWindow>, NodeError> {
    let Some(id) = w
        .checkpoints
        .in_effect(w.net.chain.as_ref(), window)
        .await?
    else {
        warn!(
            window,
            "no checkpoint announced by the trainer yet; skipping the window"
        );
        return Ok(None);
    };
    if CurrentModel::ensure(current, &w.checkpoints, id, w.device).await? {
        info!(window, checkpoint = id.number, "loaded checkpoint");
    }
    let model = current.as_ref().expect("ensured above");
    let deadline = w.net.deadline(window).await?;
    let window_randomness = w.net.window_randomness(window).await?;
    let coefficients =
        SketchCoefficients::derive(&window_randomness, model.context.model.config().hidden_size);
    let plan = WindowPlan {
        window,
        window_randomness,
        checkpoint: id.digest,
        environment: env.id(),
        generation: w.config.subnet.generation(),
        group_size: w.config.subnet.group_size,
    };
    let margin =
        chrono::Duration::milliseconds((w.config.miner.upload_margin_secs * 1000.0) as i64);
    let mut groups = Vec::new();
    let mut used_prompts = std::collections::BTreeSet::new();
    let mut repeats = 0usize;
    let mut slowest = chrono::Duration::zero();
    let (mut tokens, started) = (0usize, Instant::now());
    while groups.len() < w.config.miner.max_groups {
        if stop.requested() {
            info!(
                window,
                "stopping: nothing is uploaded for an unfinished window"
            );
            return Ok(None);
        }
        if chrono::Utc::now() + slowest + margin > deadline {
            break;
        }
        let t0 = chrono::Utc::now();
        let prompt_id = strategy.next(window, env);
        let (problem, prompt) = model.context.prompt(env, prompt_id)?;
        // One group per prompt and window: the uniforms fix it, a second is a duplicate.
        if !used_prompts.insert(prompt_digest(&prompt)) {
            repeats += 1;
            if repeats > MAX_PROMPT_REPEATS {
                warn!(
                    window,
                    "the prompt strategy keeps repeating prompts; stopping early"
                );
                break;
            }
            continue;
        }
        let group = tokio::task::block_in_place(|| {
            let completions = sample_completions(&model.context, &plan, &w.key.public(), &prompt)?;
            assemble_group(
                &model.context,
                env,
                &plan,
                &coefficients,
                &w.key,
                prompt_id,
                (&problem, &prompt),
                &completions,
            )
        })?;
        tokens += group
            .rollouts
            .iter()
            .map(|r| r.completion().len())
            .sum::<usize>();
        groups.push(group);
        slowest = slowest.max(chrono::Utc::now() - t0);
        info!(
            window,
            groups = groups.len(),
            tokens_per_s = format!("{:.1}", tokens as f64 / started.elapsed().as_secs_f64()),
            "group ready"
        );
    }
    if groups.is_empty() {
        warn!(window, "no group fitted before the deadline");
        return Ok(None);
    }
    let count = groups.len();
    let bundle = WindowBundle {
        hotkey: w.key.public(),
        window,
        groups,
    };
    let bytes = encode_bundle(&bundle)?;
    if chrono::Utc::now() > deadline {
        warn!(
            window,
            "finished after the deadline; not uploading a late bundle"
        );
        return Ok(None);
    }
    w.store
        .upload_bundle(window, &w.key.public(), bytes)
        .await?;
    info!(
        window,
        groups = count,
        checkpoint = id.number,
        "bundle uploaded"
    );
    Ok(Some(MinedWindow {
        window,
        groups: count,
        checkpoint: id.number,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, RwLock};

    use grail_proto::signing::Keypair;

    use super::*;
    use crate::mining::ZoneCount;
    use crate::validator::{serve_api, ApiState, WindowSummary};

    #[tokio::test(flavor = "multi_thread")]
    async fn zone_reports_come_from_the_validator_api_once() {
        let summary = WindowSummary {
            window: 48,
            strata: BTreeMap::from([(
                "math:1".to_string(),
                ZoneCount {
                    groups: 10.0,
                    in_zone: 9.0,
                },
            )]),
            ..Default::default()
        };
        let state = ApiState {
            last_window: Some(48),
            windows: BTreeMap::from([(48, summary)]),
            ..Default::default()
        };
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
