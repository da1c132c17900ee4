//! The miner's Prometheus metrics (`[miner] http`): windows mined, skipped and failed,
//! groups uploaded, tokens per second of the last window, the last window and the
//! checkpoint in use. Counters start at 0 with the process.

use std::sync::{Arc, RwLock};

use super::MinedWindow;
use grail_node::metrics::{Exposition, Render};

/// What the miner has done since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinerMetrics {
    /// Windows with an uploaded bundle.
    pub windows_mined: u64,
    /// Windows left without an upload (no checkpoint yet, nothing fitted, too late).
    pub windows_skipped: u64,
    /// Windows that failed (chain, beacon, store, model).
    pub failures: u64,
    /// Groups uploaded.
    pub groups_uploaded: u64,
    /// Completion tokens per second of generation in the last mined window.
    pub tokens_per_second: f64,
    /// The last window mined.
    pub last_window: Option<u64>,
    /// The number of the checkpoint the last mined window used.
    pub checkpoint: Option<u64>,
}

impl MinerMetrics {
    /// Counts an uploaded window.
    pub fn mined(&mut self, m: &MinedWindow) {
        self.windows_mined += 1;
        self.groups_uploaded += m.groups as u64;
        self.tokens_per_second = m.tokens_per_second;
        self.last_window = Some(m.window);
        self.checkpoint = Some(m.checkpoint);
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        Exposition::new()
            .counter(
                "grail_miner_windows_mined_total",
                "Windows with an uploaded bundle.",
                self.windows_mined as f64,
            )
            .counter(
                "grail_miner_windows_skipped_total",
                "Windows left without an upload (no checkpoint, nothing fitted, too late).",
                self.windows_skipped as f64,
            )
            .counter(
                "grail_miner_failures_total",
                "Windows that failed (chain, beacon, store, model).",
                self.failures as f64,
            )
            .counter(
                "grail_miner_groups_uploaded_total",
                "Groups uploaded.",
                self.groups_uploaded as f64,
            )
            .gauge(
                "grail_miner_tokens_per_second",
                "Completion tokens generated per second in the last mined window.",
                self.tokens_per_second,
            )
            .gauge(
                "grail_miner_last_window",
                "Last window mined (-1: none yet).",
                self.last_window.map_or(-1.0, |w| w as f64),
            )
            .gauge(
                "grail_miner_checkpoint",
                "Number of the checkpoint in use (-1: none yet).",
                self.checkpoint.map_or(-1.0, |c| c as f64),
            )
            .finish()
    }

    /// A renderer of the shared metrics for [`grail_node::metrics::serve_metrics`].
    pub fn render_shared(shared: Arc<RwLock<MinerMetrics>>) -> Render {
        Arc::new(move || shared.read().map(|m| m.render()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grail_node::metrics::{scrape, start};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scrape_shows_the_windows_mined_so_far() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(RwLock::new(MinerMetrics::default()));
        let addr = start(
            "127.0.0.1:0",
            dir.path(),
            MinerMetrics::render_shared(shared.clone()),
        )
        .await
        .unwrap()
        .unwrap();
        let (_, before) = scrape(addr, "/metrics").await.unwrap();
        assert!(before.contains("grail_miner_last_window -1\n"), "{before}");
        assert!(before.contains("grail_miner_windows_mined_total 0\n"));
        for (window, groups) in [(24, 3), (48, 5)] {
            shared.write().unwrap().mined(&MinedWindow {
                window,
                groups,
                checkpoint: 2,
                tokens_per_second: 37.5,
                job_groups: 0,
            });
        }
        shared.write().unwrap().failures += 1;
        let (status, after) = scrape(addr, "/metrics").await.unwrap();
        assert_eq!(status, 200);
        for line in [
            "grail_miner_windows_mined_total 2\n",
            "grail_miner_groups_uploaded_total 8\n",
            "grail_miner_tokens_per_second 37.5\n",
            "grail_miner_last_window 48\n",
            "grail_miner_checkpoint 2\n",
            "grail_miner_failures_total 1\n",
            "# TYPE grail_miner_groups_uploaded_total counter\n",
        ] {
            assert!(after.contains(line), "{line:?} missing from\n{after}");
        }
    }
}
