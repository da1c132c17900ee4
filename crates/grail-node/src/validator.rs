//! The validator loop: after each window's deadline, fetch every miner's bundle, check a
//! sample of groups, mark copycats, seal the window (archive), score, set weights, persist.
//! A read-only HTTP API serves the state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use grail_chain::subtensor::emit_weights;
use grail_env::Environment;
use grail_proto::archive::SealedWindow;
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::rules::Reason;
use grail_proto::scoring::{weights, ScoreRule, WorkHistory};
use grail_proto::{decode_bundle, Hotkey, SketchCoefficients};
use grail_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::checkpoints::{CheckpointId, CurrentModel};
use crate::context::ModelContext;
use crate::mining::{WindowPlan, ZoneCount};
use crate::network::Stop;
use crate::verify::{
    archive_entries, finish_window, precheck_bundle, verdict_counts, GroupOutcome, MinerReport,
    PendingBundle, PromptCache, WindowCheck,
};
use crate::wiring::Wiring;
use crate::{read_json, write_atomic, NodeError};

/// What happened in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// The window.
    pub window: u64,
    /// Checkpoint number in effect.
    pub checkpoint: Option<u64>,
    /// Bundle outcomes by reason (`accepted` = read and decoded).
    pub bundles: BTreeMap<String, u64>,
    /// Groups in the bundles read.
    pub groups_submitted: u64,
    /// Groups checked.
    pub groups_checked: u64,
    /// Checked groups by reason.
    pub verdicts: BTreeMap<String, u64>,
    /// Accepted groups in the learning zone.
    pub in_zone: u64,
    /// Miners whose window a failed check zeroed.
    #[serde(default)]
    pub zeroed: u64,
    /// Work credited to miners (estimated in-zone groups, summed).
    #[serde(default)]
    pub credited_work: f64,
    /// Mean reward of accepted rollouts.
    pub mean_reward: f64,
    /// σ histogram of accepted groups (bins of 0.05, last bin open).
    pub sigma_histogram: Vec<u64>,
    /// Checked groups per prompt id.
    pub prompts: BTreeMap<u64, u64>,
    /// Accepted groups and in-zone groups per stratum of the environment (tier or mix
    /// part): where miners find the learning zone.
    #[serde(default)]
    pub strata: BTreeMap<String, ZoneCount>,
    /// Weights set after this window, as `(uid, u16)`.
    pub weights: Vec<(u16, u16)>,
    /// SHA-256 of the sealed archive (hex).
    pub archive: String,
    /// Why the window could not be validated, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything the validator persists (`validator-state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidatorState {
    /// Last window processed.
    pub last_window: Option<u64>,
    /// Credited work per window and uid.
    pub work: WorkHistory,
    /// Work digests of earlier windows of the checkpoint in effect (replay detection).
    #[serde(default)]
    pub replay: ReplaySet,
    /// Summaries by window.
    pub windows: BTreeMap<u64, WindowSummary>,
}

const STATE_FILE: &str = "validator-state.json";
const SIGMA_BINS: usize = 10;

impl ValidatorState {
    /// Loads the state from `dir` (empty when none).
    pub fn load(dir: &std::path::Path) -> Result<Self, NodeError> {
        Ok(read_json(&dir.join(STATE_FILE))?.unwrap_or_default())
    }

    /// Saves atomically.
    pub fn save(&self, dir: &std::path::Path) -> Result<(), NodeError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| NodeError::Config(e.to_string()))?;
        write_atomic(&dir.join(STATE_FILE), &json)
    }
}

/// A registered miner and where its bucket is.
pub struct MinerSource {
    /// Hotkey.
    pub hotkey: Hotkey,
    /// Uid.
    pub uid: u16,
    /// Its bucket.
    pub store: Store,
}

/// Inputs of one window's validation, independent of the chain and beacon.
pub struct WindowInputs<'a> {
    /// The model of the checkpoint in effect.
    pub context: &'a ModelContext,
    /// The environment.
    pub env: &'a dyn Environment,
    /// Expected header values.
    pub plan: WindowPlan,
    /// Challenge randomness.
    pub challenge_randomness: [u8; 32],
    /// Upload deadline.
    pub deadline: chrono::DateTime<chrono::Utc>,
    /// Registered hotkeys (to name unregistered ones).
    pub registered: Vec<Hotkey>,
    /// Groups checked per miner.
    pub groups_checked: usize,
    /// Largest bundle read.
    pub max_bundle_bytes: u64,
}

impl WindowInputs<'_> {
    /// The window's sketch coefficients for the model's hidden size.
    pub fn coefficients(&self) -> SketchCoefficients {
        SketchCoefficients::derive(
            &self.plan.window_randomness,
            self.context.model.config().hidden_size,
        )
    }

    /// The per-group pipeline for these inputs.
    pub fn check<'c>(&'c self, coefficients: &'c SketchCoefficients) -> WindowCheck<'c> {
        WindowCheck {
            context: self.context,
            env: self.env,
            plan: self.plan.clone(),
            coefficients,
            challenge_randomness: self.challenge_randomness,
        }
    }
}

fn bundle_reason(e: &StoreError) -> Reason {
    match e {
        StoreError::NotFound { .. } => Reason::Missing,
        StoreError::Late { .. } => Reason::LateUpload,
        StoreError::TooLarge { .. } => Reason::Oversized,
        StoreError::HashMismatch { .. } | StoreError::Incomplete { .. } => Reason::Integrity,
        StoreError::Wire(_) => Reason::Malformed,
        _ => Reason::StoreUnreachable,
    }
}

/// Fetches and checks every miner's bundle of a window; returns the reports (in upload
/// order, with credited work) and the sealed window. `replay` holds the work of earlier
/// windows of the checkpoint. An error is the validator's own failure (its forward pass).
pub async fn check_window(
    inputs: &WindowInputs<'_>,
    miners: &[MinerSource],
    validator: Hotkey,
    replay: &ReplaySet,
) -> Result<(Vec<MinerReport>, SealedWindow), NodeError> {
    let coefficients = inputs.coefficients();
    let check = inputs.check(&coefficients);
    let window = inputs.plan.window;
    let mut failed = Vec::new();
    let mut pending = Vec::new();
    let mut prompts = PromptCache::new();
    for m in miners {
        let mut report = MinerReport::new(m.hotkey, m.uid);
        let fetched = m
            .store
            .fetch_bundle_capped(
                window,
                &m.hotkey,
                Some(inputs.deadline),
                inputs.max_bundle_bytes,
            )
            .await;
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                report.bundle_status = bundle_reason(&e).as_str().into();
                report.detail = e.to_string();
                failed.push(report);
                continue;
            }
        };
        report.bundle_sha256 = fetched.sha256;
        report.uploaded = Some(fetched.last_modified);
        let bundle = match decode_bundle(&fetched.bytes) {
            Ok(b) => b,
            Err(e) => {
                report.bundle_status = Reason::Malformed.as_str().into();
                report.detail = e.to_string();
                failed.push(report);
                continue;
            }
        };
        report.groups_submitted = bundle.groups.len();
        let status = if bundle.hotkey != m.hotkey {
            if inputs.registered.contains(&bundle.hotkey) {
                Some((
                    Reason::HotkeyMismatch,
                    "the bundle names another miner".to_string(),
                ))
            } else {
                Some((
                    Reason::UnregisteredHotkey,
                    format!("{} is not registered", bundle.hotkey.to_ss58()),
                ))
            }
        } else if bundle.window != window {
            Some((
                Reason::WindowMismatch,
                format!("bundle for window {}", bundle.window),
            ))
        } else {
            None
        };
        if let Some((r, detail)) = status {
            report.bundle_status = r.as_str().into();
            report.detail = detail;
            failed.push(report);
            continue;
        }
        let mut p = PendingBundle {
            report,
            groups: bundle.groups,
        };
        tokio::task::block_in_place(|| precheck_bundle(&check, &mut p, &mut prompts));
        pending.push(p);
    }
    let mut reports = finish_window(&check, pending, replay, inputs.groups_checked)?;
    reports.extend(failed);
    reports.sort_by_key(|r| (r.uploaded, r.hotkey));
    let sealed = SealedWindow {
        window,
        validator,
        checkpoint: inputs.plan.checkpoint,
        entries: archive_entries(&reports),
    };
    Ok((reports, sealed))
}

/// Summarises reports (`env` names the stratum of each group).
pub fn summarize(
    window: u64,
    checkpoint: Option<u64>,
    reports: &[MinerReport],
    env: &dyn Environment,
) -> WindowSummary {
    let mut s = WindowSummary {
        window,
        checkpoint,
        sigma_histogram: vec![0; SIGMA_BINS],
        ..Default::default()
    };
    let (mut reward_sum, mut rollouts) = (0.0, 0u64);
    for r in reports {
        *s.bundles.entry(r.bundle_status.clone()).or_default() += 1;
        s.groups_submitted += r.groups_submitted as u64;
        s.zeroed += u64::from(r.zeroed());
        s.credited_work += r.credited;
        for c in &r.checked {
            s.groups_checked += 1;
            *s.prompts.entry(c.group.header.prompt_id).or_default() += 1;
            if c.outcome.verdict.accepted {
                s.in_zone += u64::from(c.outcome.in_zone);
                let stratum = s
                    .strata
                    .entry(env.stratum(c.group.header.prompt_id))
                    .or_default();
                stratum.groups += 1.0;
                stratum.in_zone += f64::from(u8::from(c.outcome.in_zone));
                reward_sum += c.outcome.rewards.iter().sum::<f64>();
                rollouts += c.outcome.rewards.len() as u64;
                let sigma = grail_proto::grpo::population_sigma(&c.outcome.rewards);
                let bin = ((sigma / 0.05) as usize).min(SIGMA_BINS - 1);
                s.sigma_histogram[bin] += 1;
            }
        }
    }
    s.verdicts = verdict_counts(reports);
    s.mean_reward = if rollouts > 0 {
        reward_sum / rollouts as f64
    } else {
        0.0
    };
    s
}

/// Re-checks a sealed window offline: every archived group runs the per-group checks
/// again (binding, structure and, for groups that had one, the forward pass); verdicts
/// that depend on groups outside the archive (duplicates within the full bundle, copies,
/// replays of earlier windows) are confirmed when the group passes its own binding and
/// structure checks. Returns the verdicts in entry order; an error is the re-verifier's
/// own failure (its forward pass).
pub fn reverify_archive(
    archive: &SealedWindow,
    inputs: &WindowInputs<'_>,
) -> Result<Vec<grail_proto::archive::Verdict>, NodeError> {
    let coefficients = inputs.coefficients();
    let check = inputs.check(&coefficients);
    let mut prompts = PromptCache::new();
    archive
        .entries
        .iter()
        .map(|e| {
            let archived: Option<Reason> = e.verdict.reason.parse().ok();
            let cross_group = matches!(
                archived,
                Some(
                    Reason::DuplicateGroup
                        | Reason::DuplicatePrompt
                        | Reason::Copycat
                        | Reason::Replay
                )
            );
            let outcome = match check.precheck(&e.miner, &e.group, &mut prompts) {
                Err(r) => GroupOutcome::rejected(r),
                Ok(()) if cross_group => return Ok(e.verdict.clone()),
                Ok(()) => check.check_forward(&e.group)?,
            };
            Ok(outcome.verdict)
        })
        .collect()
}

/// Shared state behind the HTTP API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiState {
    /// The validator's hotkey.
    pub hotkey: String,
    /// Current window.
    pub current_window: u64,
    /// Checkpoint in effect for the last processed window.
    pub checkpoint: Option<u64>,
    /// Last window processed.
    pub last_window: Option<u64>,
    /// Upload deadline of the current window (RFC 3339).
    pub current_deadline: String,
    /// Summaries by window.
    pub windows: BTreeMap<u64, WindowSummary>,
}

type Shared = Arc<RwLock<ApiState>>;

async fn health() -> &'static str {
    "ok"
}

async fn api_state(State(s): State<Shared>) -> impl IntoResponse {
    let s = s.read().map(|s| s.clone()).unwrap_or_default();
    Json(serde_json::json!({
        "hotkey": s.hotkey,
        "current_window": s.current_window,
        "current_deadline": s.current_deadline,
        "checkpoint": s.checkpoint,
        "last_window": s.last_window,
    }))
}

async fn window_state(State(s): State<Shared>, UrlPath(n): UrlPath<u64>) -> impl IntoResponse {
    let summary = s.read().ok().and_then(|s| s.windows.get(&n).cloned());
    match summary {
        Some(w) => Json(serde_json::to_value(w).unwrap_or_default()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("window {n} has not been processed"),
        )
            .into_response(),
    }
}

/// The Prometheus text exposition of the state.
pub fn prometheus(s: &ApiState) -> String {
    let mut out = String::new();
    out += "# HELP grail_validator_current_window First block of the current window.\n# TYPE grail_validator_current_window gauge\n";
    out += &format!("grail_validator_current_window {}\n", s.current_window);
    out += "# HELP grail_validator_last_window Last window processed.\n# TYPE grail_validator_last_window gauge\n";
    out += &format!(
        "grail_validator_last_window {}\n",
        s.last_window.map_or(-1, |w| w as i64)
    );
    let mut verdicts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bundles: BTreeMap<&str, u64> = BTreeMap::new();
    let mut in_zone = 0;
    for w in s.windows.values() {
        for (r, n) in &w.verdicts {
            *verdicts.entry(r).or_default() += n;
        }
        for (r, n) in &w.bundles {
            *bundles.entry(r).or_default() += n;
        }
        in_zone += w.in_zone;
    }
    out += "# HELP grail_validator_groups_total Checked groups by verdict.\n# TYPE grail_validator_groups_total counter\n";
    for (r, n) in verdicts {
        out += &format!("grail_validator_groups_total{{reason=\"{r}\"}} {n}\n");
    }
    out += "# HELP grail_validator_bundles_total Bundles by outcome.\n# TYPE grail_validator_bundles_total counter\n";
    for (r, n) in bundles {
        out += &format!("grail_validator_bundles_total{{reason=\"{r}\"}} {n}\n");
    }
    out += "# HELP grail_validator_in_zone_total Accepted groups in the learning zone.\n# TYPE grail_validator_in_zone_total counter\n";
    out += &format!("grail_validator_in_zone_total {in_zone}\n");
    out
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let s = s.read().map(|s| s.clone()).unwrap_or_default();
    (
        [("content-type", "text/plain; version=0.0.4")],
        prometheus(&s),
    )
}

/// The API router.
pub fn router(state: Arc<RwLock<ApiState>>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/state", get(api_state))
        .route("/window/{n}/state", get(window_state))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves the API on `addr`; returns the bound address.
pub async fn serve_api(addr: &str, state: Arc<RwLock<ApiState>>) -> Result<SocketAddr, NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::io(format!("binding the HTTP API to {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| NodeError::io("HTTP API address", e))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    Ok(bound)
}

/// Runs the validator from `from_window` (default: the last complete window, or the one
/// after the last processed) for `windows` windows (default: until stopped).
pub async fn run(
    w: &Wiring,
    env: &dyn Environment,
    from_window: Option<u64>,
    windows: Option<u64>,
    mut stop: Stop,
) -> Result<ValidatorState, NodeError> {
    w.publish_store().await?;
    let dir = w.config.state_dir.clone();
    let mut state = ValidatorState::load(&dir)?;
    let api = Arc::new(RwLock::new(ApiState {
        hotkey: w.key.public().to_ss58(),
        windows: state.windows.clone(),
        last_window: state.last_window,
        ..Default::default()
    }));
    if !w.config.validator.http.is_empty() {
        let addr = serve_api(&w.config.validator.http, api.clone()).await?;
        info!(%addr, "HTTP API listening");
        write_atomic(&dir.join("api-address"), addr.to_string().as_bytes())?;
    }
    let wl = w.net.window_length;
    let mut window = match (state.last_window, from_window) {
        (Some(last), _) => last + wl,
        (None, Some(f)) => f,
        (None, None) => w.net.current_window().await?.saturating_sub(wl),
    };
    let mut current: Option<CurrentModel> = None;
    let mut processed = 0u64;
    while windows.is_none_or(|n| processed < n) {
        // Wait for the deadline block and one more, so the deadline block's time is final.
        if !w.net.wait_for_block(window + wl + 1, &mut stop).await? {
            break;
        }
        // Transient failures (chain, beacon, a store) are retried; a window that still
        // fails is recorded with its error and skipped, not fatal.
        let mut attempt = 0;
        let summary = loop {
            match validate_window(w, env, window, &mut current, &mut state).await {
                Ok(s) => break s,
                Err(e) if attempt < 3 && !stop.requested() => {
                    attempt += 1;
                    warn!(window, attempt, "validation failed, retrying: {e}");
                    stop.sleep(std::time::Duration::from_secs(2 * attempt))
                        .await;
                }
                Err(e) => {
                    warn!(window, "giving up on the window: {e}");
                    break WindowSummary {
                        window,
                        error: Some(e.to_string()),
                        ..Default::default()
                    };
                }
            }
        };
        info!(
            window,
            accepted = summary
                .verdicts
                .get(Reason::Accepted.as_str())
                .copied()
                .unwrap_or(0),
            checked = summary.groups_checked,
            in_zone = summary.in_zone,
            "window sealed"
        );
        state.windows.insert(window, summary);
        state.last_window = Some(window);
        state.save(&dir)?;
        let current_window = w.net.current_window().await.unwrap_or(window);
        let current_deadline = w
            .net
            .deadline(current_window)
            .await
            .map(|d| d.to_rfc3339())
            .unwrap_or_default();
        if let Ok(mut a) = api.write() {
            a.windows = state.windows.clone();
            a.last_window = state.last_window;
            a.checkpoint = state.windows.get(&window).and_then(|s| s.checkpoint);
            a.current_window = current_window;
            a.current_deadline = current_deadline;
        }
        processed += 1;
        window += wl;
    }
    Ok(state)
}

async fn validate_window(
    w: &Wiring,
    env: &dyn Environment,
    window: u64,
    current: &mut Option<CurrentModel>,
    state: &mut ValidatorState,
) -> Result<WindowSummary, NodeError> {
    let Some(id): Option<CheckpointId> = w
        .checkpoints
        .in_effect(w.net.chain.as_ref(), window)
        .await?
    else {
        warn!(window, "no checkpoint in effect; nothing to validate");
        return Ok(WindowSummary {
            window,
            ..Default::default()
        });
    };
    CurrentModel::ensure(current, &w.checkpoints, id, w.device).await?;
    let model = current.as_ref().expect("ensured above");
    let me = w.key.public();
    let trainer = w.checkpoints.trainer;
    let (metagraph, stores) = w
        .registered_stores(|n| n.hotkey != me && n.hotkey != trainer && !n.validator_permit)
        .await?;
    let registered: Vec<Hotkey> = metagraph.neurons.iter().map(|n| n.hotkey).collect();
    let miners: Vec<MinerSource> = stores
        .into_iter()
        .map(|(n, store)| MinerSource {
            hotkey: n.hotkey,
            uid: n.uid,
            store,
        })
        .collect();
    let inputs = WindowInputs {
        context: &model.context,
        env,
        plan: WindowPlan {
            window,
            window_randomness: w.net.window_randomness(window).await?,
            checkpoint: id.digest,
            environment: env.id(),
            generation: w.config.subnet.generation(),
            group_size: w.config.subnet.group_size,
        },
        challenge_randomness: w.net.challenge_randomness(window).await?,
        deadline: w.net.deadline(window).await?,
        registered,
        groups_checked: w.config.validator.groups_checked,
        max_bundle_bytes: w.config.validator.max_bundle_bytes,
    };
    state.replay.begin(id.digest, window);
    let (reports, sealed) = check_window(&inputs, &miners, me, &state.replay).await?;
    let digest = w.store.put_archive(&sealed).await?;
    let mut summary = summarize(window, Some(id.number), &reports, env);
    summary.archive = hex::encode(digest);
    state.replay.record(
        window,
        reports
            .iter()
            .flat_map(|r| r.eligible_works.iter().copied()),
    );
    let work = state.work.entry(window).or_default();
    work.clear();
    for r in &reports {
        if r.credited > 0.0 {
            work.insert(r.uid, r.credited);
        }
    }
    let s = &w.config.validator;
    if (window / w.net.window_length).is_multiple_of(s.weights_interval.max(1)) {
        let rule = ScoreRule {
            rolling_windows: s.rolling_windows,
            exponent: s.exponent,
            burn_fraction: s.burn_fraction,
        };
        let shares = weights(&state.work, window, &rule);
        let (uids, values): (Vec<u16>, Vec<f64>) = shares.into_iter().unzip();
        let emitted = emit_weights(&uids, &values)?;
        match w.net.chain.set_weights(&w.key, &emitted, 0).await {
            Ok(()) => summary.weights = emitted,
            Err(e) => warn!(window, "setting weights failed: {e}"),
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_bundle_reasons() {
        let key = || "bundles/x".to_string();
        let now = chrono::Utc::now();
        let cases = [
            (StoreError::NotFound { key: key() }, Reason::Missing),
            (
                StoreError::TooLarge {
                    key: key(),
                    size: 2,
                    limit: 1,
                },
                Reason::Oversized,
            ),
            (
                StoreError::HashMismatch {
                    key: key(),
                    expected: "a".into(),
                    actual: "b".into(),
                },
                Reason::Integrity,
            ),
            (
                StoreError::Incomplete {
                    key: key(),
                    detail: "no digest".into(),
                },
                Reason::Integrity,
            ),
            (
                StoreError::Late {
                    key: key(),
                    written: now,
                    deadline: now,
                },
                Reason::LateUpload,
            ),
            (
                StoreError::Io {
                    context: "reading".into(),
                    source: std::io::Error::other("disk"),
                },
                Reason::StoreUnreachable,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(bundle_reason(&error), want, "{error}");
        }
    }
}
