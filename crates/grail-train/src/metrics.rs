//! The trainer's Prometheus metrics (`[trainer] http`): optimizer steps taken and skipped,
//! the last step's loss and reward, checkpoints published, the last window read.
//! Counters start at 0 with the process.

use std::sync::{Arc, RwLock};

use grail_grpo::StepReport;

use grail_node::metrics::{Exposition, Render};

/// What the trainer has done since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainerMetrics {
    /// Optimizer steps attempted.
    pub steps: u64,
    /// Steps that left the weights unchanged (a health gate skipped them).
    pub skipped_steps: u64,
    /// Loss of the last step.
    pub last_loss: Option<f64>,
    /// Mean reward of the last step's rollouts.
    pub last_reward: Option<f64>,
    /// Checkpoints published.
    pub checkpoints_published: u64,
    /// Number of the latest checkpoint (published or resumed from).
    pub checkpoint: Option<u64>,
    /// Last window read.
    pub last_window: Option<u64>,
    /// Archives whose re-verified evidence was wrong (their validator lost the window).
    pub evidence_failures: u64,
}

impl TrainerMetrics {
    /// Counts a step.
    pub fn step(&mut self, report: &StepReport) {
        self.steps += 1;
        self.skipped_steps += u64::from(report.skipped.is_some());
        self.last_loss = Some(report.loss);
        self.last_reward = Some(report.mean_reward);
    }

    /// Counts a published checkpoint.
    pub fn published(&mut self, number: u64) {
        self.checkpoints_published += 1;
        self.checkpoint = Some(number);
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Exposition::new()
            .counter(
                "grail_trainer_steps_total",
                "Optimizer steps attempted.",
                self.steps as f64,
            )
            .counter(
                "grail_trainer_skipped_steps_total",
                "Steps a health gate skipped (weights unchanged).",
                self.skipped_steps as f64,
            )
            .gauge(
                "grail_trainer_last_loss",
                "Loss of the last step (NaN: none yet).",
                or_nan(self.last_loss),
            )
            .gauge(
                "grail_trainer_last_reward",
                "Mean reward of the last step's rollouts (NaN: none yet).",
                or_nan(self.last_reward),
            )
            .counter(
                "grail_trainer_checkpoints_published_total",
                "Checkpoints published.",
                self.checkpoints_published as f64,
            )
            .gauge(
                "grail_trainer_checkpoint",
                "Number of the latest checkpoint (-1: none yet).",
                self.checkpoint.map_or(-1.0, |c| c as f64),
            )
            .gauge(
                "grail_trainer_last_window",
                "Last window read (-1: none yet).",
                self.last_window.map_or(-1.0, |w| w as f64),
            )
            .counter(
                "grail_trainer_evidence_failures_total",
                "Archives whose re-verified evidence was wrong (votes and credits dropped).",
                self.evidence_failures as f64,
            )
            .finish()
    }

    /// A renderer of the shared metrics for [`grail_node::metrics::serve_metrics`].
    pub fn render_shared(shared: Arc<RwLock<TrainerMetrics>>) -> Render {
        Arc::new(move || shared.read().map(|m| m.render()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grail_node::metrics::{scrape, start};

    fn report(loss: f64, skipped: bool) -> StepReport {
        StepReport {
            step: 1,
            updates: 1,
            learning_rate: 1e-6,
            skipped: skipped.then(|| "non-finite gradient".to_string()),
            loss,
            policy_loss: loss,
            kl: 0.0,
            entropy: 0.0,
            grad_norm: 1.0,
            clip_fraction: 0.0,
            drift_fraction: 0.0,
            mean_reward: 0.25,
            mean_abs_advantage: 0.5,
            tokens: 10,
            sequences: 2,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scrape_shows_steps_losses_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(RwLock::new(TrainerMetrics::default()));
        let addr = start(
            "127.0.0.1:0",
            dir.path(),
            TrainerMetrics::render_shared(shared.clone()),
        )
        .await
        .unwrap()
        .unwrap();
        let (_, before) = scrape(addr, "/metrics").await.unwrap();
        assert!(before.contains("grail_trainer_last_loss NaN\n"), "{before}");
        {
            let mut m = shared.write().unwrap();
            m.step(&report(0.5, false));
            m.step(&report(-0.125, true));
            m.published(3);
            m.last_window = Some(96);
            m.evidence_failures = 1;
        }
        let (status, after) = scrape(addr, "/metrics").await.unwrap();
        assert_eq!(status, 200);
        for line in [
            "grail_trainer_steps_total 2\n",
            "grail_trainer_skipped_steps_total 1\n",
            "grail_trainer_last_loss -0.125\n",
            "grail_trainer_last_reward 0.25\n",
            "grail_trainer_checkpoints_published_total 1\n",
            "grail_trainer_checkpoint 3\n",
            "grail_trainer_last_window 96\n",
            "grail_trainer_evidence_failures_total 1\n",
        ] {
            assert!(after.contains(line), "{line:?} missing from\n{after}");
        }
    }
}
