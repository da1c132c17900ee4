//! The validator's HTTP API: arbitrary methods, paths and query strings through the real
//! router and handlers.

use std::sync::{Arc, OnceLock, RwLock};

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use grail_proto::signing::Keypair;
use grail_validate::verify::MinerReport;
use grail_validate::{router, ApiState, ValidatorState, WindowSummary};
use tower::ServiceExt;

use super::Target;

fn miner() -> Keypair {
    Keypair::from_seed(&[3; 32])
}

fn api() -> &'static (tokio::runtime::Runtime, Router) {
    static API: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    API.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime");
        let mut state = ValidatorState::default();
        for window in [360u64, 720] {
            state.windows.insert(window, WindowSummary::default());
            let mut report = MinerReport::new(miner().public(), 1);
            report.bundle_status = "accepted".into();
            state.verdicts.record(window, Some(1), &[report]);
        }
        state.last_window = Some(720);
        let api = ApiState::from_state(Keypair::from_seed(&[4; 32]).public().to_ss58(), &state);
        (runtime, router(Arc::new(RwLock::new(api))))
    })
}

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::HEAD,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
];

/// `GET /health`, `/state`, `/window/{n}/state`, `/verdicts/{hotkey}`, `/metrics`.
pub fn validator_api() -> Target {
    Target {
        name: "http",
        what: "the validator's HTTP API: method, path, query, body through the router",
        max_len: 2048,
        seeds: || {
            let hotkey = miner().public().to_ss58();
            [
                "/health".to_string(),
                "/state".into(),
                "/window/360/state".into(),
                "/window/99/state".into(),
                format!(
                    "/verdicts/{}",
                    Keypair::from_seed(&[8; 32]).public().to_ss58()
                ),
                "/window/18446744073709551616/state".into(),
                format!("/verdicts/{hotkey}"),
                "/verdicts/5Grwva".into(),
                "/metrics?x=1".into(),
            ]
            .into_iter()
            .map(|path| [&[0u8][..], path.as_bytes()].concat())
            .collect()
        },
        dictionary: &[
            b"/window/",
            b"/verdicts/",
            b"/state",
            b"%00",
            b"%2F",
            b"?",
            b"&",
            b"..",
            b"//",
            b"5",
        ],
        mutate: None,
        run: |bytes| {
            let (runtime, router) = api();
            let method =
                METHODS[usize::from(bytes.first().copied().unwrap_or(0)) % METHODS.len()].clone();
            let rest = bytes.get(1..).unwrap_or_default();
            let (path, body) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], rest[i + 1..].to_vec()),
                None => (rest, Vec::new()),
            };
            let Ok(request) = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::from(body))
            else {
                return "bad_request_line";
            };
            runtime.block_on(async {
                let Ok(response) = router.clone().oneshot(request).await;
                let status = response.status();
                if axum::body::to_bytes(response.into_body(), 16 << 20)
                    .await
                    .is_err()
                {
                    return "body_error";
                }
                match status.as_u16() {
                    200..=299 => "2xx",
                    400 => "400",
                    404 => "404",
                    405 => "405",
                    401..=403 | 406..=499 => "4xx",
                    _ => "5xx",
                }
            })
        },
    }
}
