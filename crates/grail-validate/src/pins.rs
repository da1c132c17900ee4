//! What a validator checks is fixed before the challenge randomness exists
//! (docs/protocol.md §11): at each window's deadline a background task reads every miner's
//! published bundle SHA-256 and bundle size (the pin), within the
//! `grail_proto::params::PIN_SECONDS` before the challenge's drand round; the window's
//! check later reads exactly those bytes. Object timestamps are not trusted: an S3 multipart object's
//! `LastModified` is when its upload *started*, so a miner could start an upload before
//! the deadline and complete it once the challenge (which groups are spot-checked) is
//! public. A pin taken after the challenge randomness was published proves nothing; the
//! window then falls back to timestamps, with a warning.
//!
//! Client jobs' lanes (`lanes/{window}/{job}/`) are pinned the same way, after the
//! subnet's bundles (so that many open jobs cannot make the subnet's pins late), each with
//! its own time; a lane whose pins came too late, or a job opened after the deadline, is
//! checked by timestamps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use grail_chain::Clock;
use grail_proto::Hotkey;
use grail_store::{BundlePin, Store};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::window::{FetchPolicy, MinerSource};
use grail_node::network::{Network, Stop};
use grail_node::{read_json, write_json, NodeError};

/// What the pin found of one miner's bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinOutcome {
    /// A finished upload: its SHA-256 and size.
    Pinned(BundlePin),
    /// No finished upload at the deadline.
    Absent,
    /// The miner's bucket could not be read within the fetch budget (the detail).
    Unreachable(String),
}

/// Every miner's pin of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPins {
    /// The window.
    pub window: u64,
    /// When the last pin was read, Unix milliseconds (what is compared with the
    /// challenge's publication).
    pub pinned_at_ms: i64,
    /// Pins by miner hotkey (SS58).
    pub miners: BTreeMap<String, PinOutcome>,
    /// The pins of each open job's lane (by job id), taken after the subnet's.
    #[serde(default)]
    pub lanes: BTreeMap<String, WindowPins>,
}

impl WindowPins {
    /// The pin of `hotkey` (`None`: the miner was not registered at the deadline).
    pub fn of(&self, hotkey: &Hotkey) -> Option<&PinOutcome> {
        self.miners.get(&hotkey.to_ss58())
    }

    /// Whether every pin was read before `published` (when the challenge became public).
    pub fn taken_before(&self, published: DateTime<Utc>) -> bool {
        self.pinned_at_ms < published.timestamp_millis()
    }
}

/// Pins every miner's bundle of `window` now: `policy.concurrency` buckets at a time, each
/// within the per-miner budget; the pins are stamped by `clock` when the last is read.
pub async fn pin_window(
    window: u64,
    miners: &[MinerSource],
    policy: FetchPolicy,
    clock: &dyn Clock,
) -> WindowPins {
    pin_lane(window, None, miners, policy, clock).await
}

/// [`pin_window`] for the subnet's lane (`None`) or a job's lane.
pub async fn pin_lane(
    window: u64,
    lane: Option<&str>,
    miners: &[MinerSource],
    policy: FetchPolicy,
    clock: &dyn Clock,
) -> WindowPins {
    use futures::StreamExt;
    let budget = policy.per_miner;
    let pin = |m: &MinerSource| {
        let store: Store = m.store.clone();
        let hotkey = m.hotkey;
        async move {
            let pinned = store.pin_bundle_in(window, lane, &hotkey);
            let outcome = match tokio::time::timeout(budget, pinned).await {
                Ok(Ok(Some(pin))) => PinOutcome::Pinned(pin),
                Ok(Ok(None)) => PinOutcome::Absent,
                Ok(Err(e)) => PinOutcome::Unreachable(e.to_string()),
                Err(_) => PinOutcome::Unreachable(format!(
                    "no answer within the {:.0} s budget",
                    budget.as_secs_f64()
                )),
            };
            (hotkey.to_ss58(), outcome)
        }
    };
    let miners = futures::stream::iter(miners)
        .map(pin)
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;
    WindowPins {
        window,
        pinned_at_ms: clock.now_ms() as i64,
        miners,
        lanes: BTreeMap::new(),
    }
}

/// Windows of pins kept (the validator checks a window a block after its deadline; a
/// restart or a slow window may take a few).
const KEPT_WINDOWS: usize = 8;

const PINS_FILE: &str = "pins.json";

/// The pins of the last windows, shared by the pinning task and the validator loop, and
/// saved in the state folder so that a restart between a deadline and its check keeps them.
#[derive(Debug, Default)]
pub struct PinBook {
    path: Option<PathBuf>,
    windows: BTreeMap<u64, WindowPins>,
}

impl PinBook {
    /// The book saved in `dir` (empty when none or unreadable: pins are re-taken).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(PINS_FILE);
        let windows = read_json(&path).ok().flatten().unwrap_or_default();
        Self {
            path: Some(path),
            windows,
        }
    }

    /// The pins of `window`.
    pub fn get(&self, window: u64) -> Option<&WindowPins> {
        self.windows.get(&window)
    }

    /// Adds a window's pins (keeping the last eight windows) and saves the book.
    pub fn insert(&mut self, pins: WindowPins) -> Result<(), NodeError> {
        self.windows.insert(pins.window, pins);
        while self.windows.len() > KEPT_WINDOWS {
            self.windows.pop_first();
        }
        match &self.path {
            Some(path) => write_json(path, &self.windows),
            None => Ok(()),
        }
    }
}

impl PinBook {
    /// Adds a job lane's pins to the window's (which must be in the book) and saves it.
    pub fn insert_lane(
        &mut self,
        window: u64,
        job: &str,
        pins: WindowPins,
    ) -> Result<(), NodeError> {
        let Some(entry) = self.windows.get_mut(&window) else {
            return Ok(());
        };
        entry.lanes.insert(job.to_string(), pins);
        match &self.path {
            Some(path) => write_json(path, &self.windows),
            None => Ok(()),
        }
    }

    /// The pins of a job's lane in `window` if they were all read before `published`.
    pub fn lane_in_time(
        &self,
        window: u64,
        job: &str,
        published: DateTime<Utc>,
    ) -> Option<WindowPins> {
        let lane = self.windows.get(&window)?.lanes.get(job)?;
        lane.taken_before(published).then(|| lane.clone())
    }
}

/// The open jobs whose lanes are pinned at a deadline (Unix seconds): their ids.
pub type LaneList =
    Arc<dyn Fn(u64) -> futures::future::BoxFuture<'static, Vec<String>> + Send + Sync>;

/// Who the pinning task reads: the miners of the metagraph and their buckets.
pub type MinerList = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<Vec<MinerSource>, NodeError>>
        + Send
        + Sync,
>;

/// Pins every window from `from` on at its deadline until stopped: sleeps until the
/// deadline's time, lists the miners, pins them, records the pins in `book`. Windows
/// whose deadline passed before the task got to them are skipped (their pin would come
/// too late to prove anything).
pub async fn run_pinner(
    net: Network,
    miners: MinerList,
    lanes: Option<LaneList>,
    policy: FetchPolicy,
    book: Arc<Mutex<PinBook>>,
    from: u64,
    mut stop: Stop,
) {
    let mut window = from;
    while !stop.requested() {
        let (deadline, published) = match (
            net.deadline(window).await,
            net.challenge_published_at(window).await,
        ) {
            (Ok(d), Ok(p)) => (d, p),
            (Err(e), _) | (_, Err(e)) => {
                warn!(window, "pins: cannot read the deadline: {e}");
                if stop.sleep(std::time::Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let now = net.now();
        if now >= published {
            // Too late to pin this window: go on from the current one, a block later.
            let current = net.current_window().await.unwrap_or(window);
            window = current.max(window + net.window_length);
            if stop
                .sleep(std::time::Duration::from_millis(net.block_time_ms.max(1)))
                .await
            {
                return;
            }
            continue;
        }
        if let Ok(wait) = (deadline - now).to_std() {
            if stop.sleep(wait).await {
                return;
            }
        }
        match miners().await {
            Ok(list) => {
                let pins = pin_window(window, &list, policy, net.clock.as_ref()).await;
                let pinned = pins
                    .miners
                    .values()
                    .filter(|p| matches!(p, PinOutcome::Pinned(_)))
                    .count();
                let in_time = pins.taken_before(published);
                if in_time {
                    info!(
                        window,
                        miners = list.len(),
                        pinned,
                        "bundles pinned at the deadline"
                    );
                } else {
                    warn!(window, "pins read after the challenge randomness was published; the window falls back to upload timestamps");
                }
                if let Ok(mut book) = book.lock() {
                    if let Err(e) = book.insert(pins) {
                        warn!(window, "pins: cannot save: {e}");
                    }
                }
                if let Some(lanes) = &lanes {
                    let at = deadline.timestamp().max(0) as u64;
                    pin_job_lanes(
                        window,
                        lanes(at).await,
                        &list,
                        policy,
                        &book,
                        net.clock.as_ref(),
                    )
                    .await;
                }
            }
            Err(e) => warn!(window, "pins: cannot list the miners: {e}"),
        }
        window += net.window_length;
    }
}

/// Pins each open job's lane of `window` after the subnet's bundles, one lane at a time,
/// adding each to the window's pins as it is taken.
async fn pin_job_lanes(
    window: u64,
    jobs: Vec<String>,
    miners: &[MinerSource],
    policy: FetchPolicy,
    book: &Mutex<PinBook>,
    clock: &dyn Clock,
) {
    for job in jobs {
        let pins = pin_lane(window, Some(&job), miners, policy, clock).await;
        let pinned = pins
            .miners
            .values()
            .filter(|p| matches!(p, PinOutcome::Pinned(_)))
            .count();
        if pinned > 0 {
            info!(window, %job, pinned, "job lane pinned at the deadline");
        }
        if let Ok(mut book) = book.lock() {
            if let Err(e) = book.insert_lane(window, &job, pins) {
                warn!(window, %job, "pins: cannot save: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins(window: u64, at_ms: i64) -> WindowPins {
        WindowPins {
            window,
            pinned_at_ms: at_ms,
            miners: BTreeMap::new(),
            lanes: BTreeMap::new(),
        }
    }

    #[test]
    fn lane_pins_count_only_when_taken_before_the_challenge() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = PinBook::load(dir.path());
        let published = DateTime::from_timestamp_millis(10_000).unwrap();
        // No window entry yet: a lane has nowhere to go.
        book.insert_lane(4, "job", pins(4, 9_000)).unwrap();
        assert_eq!(book.lane_in_time(4, "job", published), None);
        book.insert(pins(4, 8_000)).unwrap();
        book.insert_lane(4, "early", pins(4, 9_000)).unwrap();
        book.insert_lane(4, "late", pins(4, 10_000)).unwrap();
        assert_eq!(
            book.lane_in_time(4, "early", published)
                .map(|p| p.pinned_at_ms),
            Some(9_000)
        );
        assert_eq!(book.lane_in_time(4, "late", published), None);
        assert_eq!(book.lane_in_time(4, "unknown", published), None);
        // Saved with the window: a restart keeps them.
        let reloaded = PinBook::load(dir.path());
        assert!(reloaded.lane_in_time(4, "early", published).is_some());
    }
}
