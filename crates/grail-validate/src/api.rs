//! The validator's read-only HTTP API: `/health`, `/state`, `/window/{n}/state`,
//! per-miner feedback `/verdicts/{hotkey}` and Prometheus `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use grail_proto::Hotkey;

use super::{Totals, ValidatorState, VerdictHistory, WindowSummary};
use grail_node::metrics::{Exposition, Kind, CONTENT_TYPE};
use grail_node::NodeError;

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
    /// Every miner's verdicts of the last windows.
    pub verdicts: VerdictHistory,
    /// Counts over every window sealed.
    pub totals: Totals,
    /// The last window whose weights are visible on chain (revealed, under commit-reveal);
    /// the weights and per-miner credit of later windows are held back ([`withhold`]), so
    /// the API does not hand a lazy validator what commit-reveal hides. `None`: nothing
    /// revealed yet.
    pub revealed_through: Option<u64>,
}

/// Removes from `window`'s JSON (a window summary or a miner's window record) what would
/// let someone copy this validator's weights before they are revealed — weights, credited
/// work, eligible counts and per-group learning-zone flags — and marks it `"withheld":
/// true`, unless `window ≤ revealed_through`. Verdicts and reasons stay: miners need them
/// (and know their own groups' rewards).
pub fn withhold(value: &mut serde_json::Value, window: u64, revealed_through: Option<u64>) {
    if revealed_through.is_some_and(|r| window <= r) {
        return;
    }
    let Some(fields) = value.as_object_mut() else {
        return;
    };
    for key in ["weights", "credited_work", "credited", "groups_eligible"] {
        if let Some(v) = fields.get_mut(key) {
            *v = serde_json::Value::Null;
        }
    }
    if let Some(groups) = fields.get_mut("groups").and_then(|g| g.as_array_mut()) {
        for g in groups.iter_mut().filter_map(|g| g.as_object_mut()) {
            g.insert("in_zone".into(), serde_json::Value::Null);
        }
    }
    fields.insert("withheld".into(), serde_json::Value::Bool(true));
}

/// The last of `windows` whose weights are the ones `on_chain` shows for this validator
/// (compared as sets of non-zero `(uid, weight)` pairs): every window up to it is public.
pub fn revealed_window(
    windows: &BTreeMap<u64, WindowSummary>,
    on_chain: &[(u16, u16)],
) -> Option<u64> {
    let set = |w: &[(u16, u16)]| -> std::collections::BTreeSet<(u16, u16)> {
        w.iter().copied().filter(|(_, v)| *v > 0).collect()
    };
    let chain = set(on_chain);
    if chain.is_empty() {
        return None;
    }
    windows
        .iter()
        .rev()
        .find(|(_, s)| !s.weights.is_empty() && set(&s.weights) == chain)
        .map(|(w, _)| *w)
}

impl ApiState {
    /// What the API serves for `hotkey` (SS58) with the persisted `state`; the current
    /// window and checkpoint stay unset until the validator refreshes them.
    pub fn from_state(hotkey: String, state: &ValidatorState) -> Self {
        let mut api = ApiState {
            hotkey,
            ..Default::default()
        };
        api.update(state);
        api
    }

    /// Takes the windows, verdicts, totals and last window of `state`.
    pub fn update(&mut self, state: &ValidatorState) {
        self.windows = state.windows.clone();
        self.verdicts = state.verdicts.clone();
        self.totals = state.totals.clone();
        self.last_window = state.last_window;
    }
}

type Shared = Arc<RwLock<ApiState>>;

async fn health() -> &'static str {
    "ok"
}

async fn api_state(State(s): State<Shared>) -> impl IntoResponse {
    let head = s.read().map(|s| {
        serde_json::json!({
            "hotkey": s.hotkey,
            "current_window": s.current_window,
            "current_deadline": s.current_deadline,
            "checkpoint": s.checkpoint,
            "last_window": s.last_window,
        })
    });
    match head {
        Ok(head) => Json(head).into_response(),
        Err(_) => unavailable(),
    }
}

/// The answer when a panic elsewhere poisoned the state lock.
fn unavailable() -> axum::response::Response {
    (StatusCode::SERVICE_UNAVAILABLE, "state unavailable").into_response()
}

/// Longest part of a rejected path echoed back.
const MAX_ECHO: usize = 64;

async fn miner_verdicts(
    State(s): State<Shared>,
    UrlPath(address): UrlPath<String>,
) -> impl IntoResponse {
    let hotkey = match Hotkey::from_ss58(&address) {
        Ok(h) => h.to_ss58(),
        Err(_) => {
            let shown: String = address.chars().take(MAX_ECHO).collect();
            return (
                StatusCode::BAD_REQUEST,
                format!("`{shown}` is not an SS58 address"),
            )
                .into_response();
        }
    };
    let Ok((windows, revealed)) = s
        .read()
        .map(|s| (s.verdicts.miner(&hotkey), s.revealed_through))
    else {
        return unavailable();
    };
    match windows {
        Some(windows) => {
            let shown: Vec<serde_json::Value> = windows
                .iter()
                .map(|m| {
                    let mut v = serde_json::to_value(m).unwrap_or_default();
                    withhold(&mut v, m.window, revealed);
                    v
                })
                .collect();
            Json(serde_json::json!({
                "hotkey": hotkey,
                "windows": shown,
            }))
            .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("no verdicts for {hotkey} in the windows kept"),
        )
            .into_response(),
    }
}

async fn window_state(State(s): State<Shared>, UrlPath(n): UrlPath<u64>) -> impl IntoResponse {
    let summary = s
        .read()
        .ok()
        .and_then(|s| s.windows.get(&n).cloned().map(|w| (w, s.revealed_through)));
    match summary {
        Some((w, revealed)) => {
            let mut v = serde_json::to_value(w).unwrap_or_default();
            withhold(&mut v, n, revealed);
            Json(v).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("window {n} has not been processed"),
        )
            .into_response(),
    }
}

/// The Prometheus text exposition of the state. The counters count every window sealed
/// since the state began ([`Totals`]), not only the windows retention keeps.
pub fn prometheus(s: &ApiState) -> String {
    let t = &s.totals;
    Exposition::new()
        .gauge(
            "grail_validator_current_window",
            "First block of the current window.",
            s.current_window as f64,
        )
        .gauge(
            "grail_validator_last_window",
            "Last window processed.",
            s.last_window.map_or(-1.0, |w| w as f64),
        )
        .labelled(
            "grail_validator_groups_total",
            "Checked groups by verdict.",
            Kind::Counter,
            "reason",
            t.verdicts.iter().map(|(r, n)| (r.as_str(), *n as f64)),
        )
        .labelled(
            "grail_validator_bundles_total",
            "Bundles by outcome.",
            Kind::Counter,
            "reason",
            t.bundles.iter().map(|(r, n)| (r.as_str(), *n as f64)),
        )
        .counter(
            "grail_validator_in_zone_total",
            "Accepted groups in the learning zone.",
            t.in_zone as f64,
        )
        .counter(
            "grail_validator_windows_total",
            "Windows sealed.",
            t.windows as f64,
        )
        .gauge(
            "grail_validator_miners_tracked",
            "Miners with verdicts in the windows kept.",
            s.verdicts.len() as f64,
        )
        .finish()
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    match s.read().map(|s| prometheus(&s)) {
        Ok(text) => ([("content-type", CONTENT_TYPE)], text).into_response(),
        Err(_) => unavailable(),
    }
}

/// The API router.
pub fn router(state: Arc<RwLock<ApiState>>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/state", get(api_state))
        .route("/window/{n}/state", get(window_state))
        .route("/verdicts/{hotkey}", get(miner_verdicts))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves the API on `addr`; returns the bound address.
pub async fn serve_api(addr: &str, state: Arc<RwLock<ApiState>>) -> Result<SocketAddr, NodeError> {
    serve_router(addr, router(state)).await
}

/// Serves `app` (the API's router, with the job gateway's routes when enabled) on `addr`;
/// returns the bound address.
pub async fn serve_router(addr: &str, app: Router) -> Result<SocketAddr, NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::io(format!("binding the HTTP API to {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| NodeError::io("HTTP API address", e))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("HTTP API stopped: {e}");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use grail_proto::Hotkey;

    use super::*;
    use crate::testing::report;
    use grail_node::metrics::scrape;

    #[test]
    fn windows_are_public_once_their_weights_show_on_chain() {
        let summary = |window, weights: Vec<(u16, u16)>| WindowSummary {
            window,
            weights,
            ..Default::default()
        };
        let windows = BTreeMap::from([
            (10, summary(10, vec![(1, 100), (2, 65535)])),
            (20, summary(20, Vec::new())),
            (30, summary(30, vec![(1, 65535), (2, 0)])),
        ]);
        // Under commit-reveal the chain still shows window 10's weights (any order).
        assert_eq!(revealed_window(&windows, &[(2, 65535), (1, 100)]), Some(10));
        // Window 30's, zero weights left out, once revealed.
        assert_eq!(revealed_window(&windows, &[(1, 65535)]), Some(30));
        assert_eq!(revealed_window(&windows, &[]), None);
        assert_eq!(revealed_window(&windows, &[(7, 1)]), None);

        let mut v = serde_json::to_value(summary(30, vec![(1, 65535)])).unwrap();
        withhold(&mut v, 30, Some(10));
        assert!(v["weights"].is_null() && v["credited_work"].is_null());
        assert_eq!(v["withheld"], true);
        let mut shown = serde_json::to_value(summary(10, vec![(1, 5)])).unwrap();
        withhold(&mut shown, 10, Some(10));
        assert_eq!(shown["weights"][0][1], 5);
        assert!(shown.get("withheld").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn miners_read_their_verdicts_over_http() {
        let (honest, cheat, stranger) = (Hotkey([1; 32]), Hotkey([2; 32]), Hotkey([3; 32]));
        let mut state = ValidatorState {
            last_window: Some(48),
            ..Default::default()
        };
        state.verdicts.record(
            24,
            Some(0),
            &[
                report(honest, 1, &["accepted"; 2]),
                report(cheat, 2, &["accepted"]),
            ],
        );
        state.verdicts.record(
            48,
            Some(1),
            &[
                report(honest, 1, &["accepted"]),
                report(cheat, 2, &["accepted", "sampling_mismatch"]),
            ],
        );
        for window in [24, 48] {
            let mut summary = WindowSummary {
                window,
                in_zone: 1,
                ..Default::default()
            };
            summary.verdicts.insert("accepted".into(), 2);
            summary.bundles.insert("accepted".into(), 2);
            state.totals.add(&summary);
            // Retention keeps only the last window's summary; the counters count both.
            state.windows = BTreeMap::from([(window, summary)]);
        }
        let mut api = ApiState::from_state("5Validator".into(), &state);
        // Weights after window 24 are on chain; those after 48 are not revealed yet.
        api.revealed_through = Some(24);
        let addr = serve_api("127.0.0.1:0", Arc::new(RwLock::new(api)))
            .await
            .unwrap();

        let (status, body) = scrape(addr, &format!("/verdicts/{}", cheat.to_ss58()))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["hotkey"], cheat.to_ss58());
        let windows = json["windows"].as_array().unwrap();
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0]["window"], 24);
        assert_eq!(windows[0]["zeroed"], false);
        assert!(windows[0]["credited"].is_number() && windows[0].get("withheld").is_none());
        let last = &windows[1];
        assert_eq!(
            (last["window"].as_u64(), last["uid"].as_u64()),
            (Some(48), Some(2))
        );
        assert_eq!(last["checkpoint"], 1);
        assert_eq!(last["bundle_status"], "accepted");
        assert_eq!(last["zeroed"], true);
        // Not revealed: what would give the weights away is held back, verdicts are not.
        assert_eq!(last["withheld"], true);
        assert!(last["credited"].is_null() && last["groups_eligible"].is_null());
        assert!(last["groups"][0]["in_zone"].is_null());
        assert_eq!(last["groups_checked"], 2);
        assert_eq!(last["verdicts"]["sampling_mismatch"], 1);
        assert_eq!(last["groups"][1]["reason"], "sampling_mismatch");
        assert_eq!(last["groups"][1]["accepted"], false);
        assert!(last["groups"][1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("ddd"));

        let (status, body) = scrape(addr, &format!("/verdicts/{}", stranger.to_ss58()))
            .await
            .unwrap();
        assert_eq!(status, 404, "{body}");
        for bad in [
            "not-an-address",
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY0",
            "%FF%FE",
        ] {
            let (status, body) = scrape(addr, &format!("/verdicts/{bad}")).await.unwrap();
            assert_eq!(status, 400, "{bad}: {body}");
        }
        let long = "x".repeat(4000);
        let (status, body) = scrape(addr, &format!("/verdicts/{long}")).await.unwrap();
        assert_eq!(status, 400);
        assert!(body.len() < 200, "the echo is capped: {} bytes", body.len());

        let (status, metrics) = scrape(addr, "/metrics").await.unwrap();
        assert_eq!(status, 200);
        assert!(
            metrics.contains("grail_validator_miners_tracked 2\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("grail_validator_last_window 48\n"),
            "{metrics}"
        );
        for line in [
            "grail_validator_groups_total{reason=\"accepted\"} 4\n",
            "grail_validator_bundles_total{reason=\"accepted\"} 4\n",
            "grail_validator_in_zone_total 2\n",
            "grail_validator_windows_total 2\n",
        ] {
            assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
        }
    }
}
