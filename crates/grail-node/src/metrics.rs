//! Prometheus metrics: the one place that writes the text exposition format
//! ([`Exposition`]) and a small server for roles that have no other HTTP API
//! ([`serve_metrics`]: `/metrics` and `/health`). The validator serves its metrics from its
//! API (`validator::api`), the miner and the trainer from `[miner] http` / `[trainer] http`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::NodeError;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (from the start of the process).
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// Builds a Prometheus text exposition: each metric once, with its `# HELP` and `# TYPE`
/// lines, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// A sample value as the format writes it (`NaN`, `+Inf`, `-Inf`, integers without a
/// fraction).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: Kind) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One metric with a single unlabelled sample.
    pub fn metric(&mut self, name: &str, help: &str, kind: Kind, v: f64) -> &mut Self {
        self.header(name, help, kind);
        let _ = writeln!(self.out, "{name} {}", value(v));
        self
    }

    /// A gauge with a single sample.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) -> &mut Self {
        self.metric(name, help, Kind::Gauge, v)
    }

    /// A counter with a single sample.
    pub fn counter(&mut self, name: &str, help: &str, v: f64) -> &mut Self {
        self.metric(name, help, Kind::Counter, v)
    }

    /// One metric with a sample per value of the label `label` (the header is written
    /// even when there are no samples).
    pub fn labelled<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> &mut Self {
        self.header(name, help, kind);
        for (l, v) in samples {
            let _ = writeln!(self.out, "{name}{{{label}=\"{}\"}} {}", escape(l), value(v));
        }
        self
    }

    /// The text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

/// What a metrics server renders on each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The router of a metrics-only server: `/metrics` (the text `render` gives) and
/// `/health` (`ok`).
pub fn router(render: Render) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move { ([("content-type", CONTENT_TYPE)], render()) }
            }),
        )
}

/// Serves [`router`] on `addr` (`127.0.0.1:0` picks a port); returns the bound address.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve_metrics(addr: &str, render: Render) -> Result<SocketAddr, NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::io(format!("binding the metrics server to {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| NodeError::io("metrics server address", e))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(render)).await {
            tracing::warn!("metrics server stopped: {e}");
        }
    });
    Ok(bound)
}

/// Starts the metrics server of a role when `addr` is not empty and records the bound
/// address in `state_dir/metrics-address` (what scripts and tests read when the port was
/// picked).
///
/// # Errors
/// The address cannot be bound or the file cannot be written.
pub async fn start(
    addr: &str,
    state_dir: &std::path::Path,
    render: Render,
) -> Result<Option<SocketAddr>, NodeError> {
    if addr.is_empty() {
        return Ok(None);
    }
    let bound = serve_metrics(addr, render).await?;
    tracing::info!(addr = %bound, "metrics listening");
    crate::write_atomic(
        &state_dir.join("metrics-address"),
        bound.to_string().as_bytes(),
    )?;
    Ok(Some(bound))
}

/// Reads `http://{addr}{path}` and returns the status and body (for tests and tools).
///
/// # Errors
/// The request fails.
#[cfg(any(test, feature = "sim"))]
pub async fn scrape(addr: SocketAddr, path: &str) -> Result<(u16, String), reqwest::Error> {
    let response = reqwest::get(format!("http://{addr}{path}")).await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_headers_escaped_labels_and_special_values() {
        let text = Exposition::new()
            .gauge("x_last", "Last window.", 48.0)
            .counter("x_total", "Things.", 3.5)
            .labelled(
                "x_by",
                "By reason.",
                Kind::Counter,
                "reason",
                [
                    ("a\"b\\c\nd", 1.0),
                    ("nan", f64::NAN),
                    ("inf", f64::INFINITY),
                ],
            )
            .finish();
        let expected = "# HELP x_last Last window.\n# TYPE x_last gauge\nx_last 48\n\
                        # HELP x_total Things.\n# TYPE x_total counter\nx_total 3.5\n\
                        # HELP x_by By reason.\n# TYPE x_by counter\n\
                        x_by{reason=\"a\\\"b\\\\c\\nd\"} 1\nx_by{reason=\"nan\"} NaN\n\
                        x_by{reason=\"inf\"} +Inf\n";
        assert_eq!(text, expected);
        assert_eq!(value(-f64::INFINITY), "-Inf");
        assert_eq!(value(-0.25), "-0.25");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_server_renders_on_every_scrape_and_records_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = n.clone();
        let render: Render = Arc::new(move || {
            let v = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Exposition::new()
                .counter("scrapes_total", "Scrapes.", v as f64)
                .finish()
        });
        assert_eq!(start("", dir.path(), render.clone()).await.unwrap(), None);
        let addr = start("127.0.0.1:0", dir.path(), render)
            .await
            .unwrap()
            .unwrap();
        let recorded = std::fs::read_to_string(dir.path().join("metrics-address")).unwrap();
        assert_eq!(recorded, addr.to_string());
        assert_eq!(scrape(addr, "/health").await.unwrap(), (200, "ok".into()));
        let (status, first) = scrape(addr, "/metrics").await.unwrap();
        assert_eq!(status, 200);
        assert!(first.ends_with("scrapes_total 0\n"), "{first}");
        let (_, second) = scrape(addr, "/metrics").await.unwrap();
        assert!(second.ends_with("scrapes_total 1\n"), "{second}");
        assert_eq!(scrape(addr, "/nope").await.unwrap().0, 404);
    }
}
