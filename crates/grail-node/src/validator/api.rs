//! The validator's read-only HTTP API: `/health`, `/state`, `/window/{n}/state` and
//! Prometheus `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::WindowSummary;
use crate::NodeError;

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
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::warn!("HTTP API stopped: {e}");
        }
    });
    Ok(bound)
}
