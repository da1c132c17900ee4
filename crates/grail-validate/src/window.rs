//! One window's check: fetch every miner's bundle, run the group pipeline of
//! [`crate::verify`], seal the archive.

use grail_env::Environment;
use grail_proto::archive::SealedWindow;
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::rules::Reason;
use grail_proto::Hotkey;
use grail_store::{Fetched, Store, StoreError};

use super::pins::{PinOutcome, WindowPins};
use crate::verify::{
    finish_window, window_params, MinerReport, PendingBundle, Prechecks, PromptCache, WindowCheck,
};
use grail_node::context::ModelContext;
use grail_node::NodeError;
use grail_proto::rules::WindowPlan;
use grail_proto::verifier::{BundleCheck, WindowParams};

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
    /// How bundles are fetched.
    pub fetch: FetchPolicy,
    /// Every miner's bundle as pinned at the deadline, before the challenge randomness was
    /// published ([`super::pins`]); `None`: no such pins, upload timestamps are checked.
    pub pins: Option<WindowPins>,
    /// The lane checked: `None` for the subnet's, a job id (hex) for a client job's
    /// (bundles under `lanes/`).
    pub lane: Option<String>,
}

/// How a validator reads the miners' buckets: several at once, each within a time budget,
/// so slow or stalling buckets cannot hold up the window. Memory is bounded by
/// `concurrency` × `max_bundle_bytes`: a batch is checked before the next is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FetchPolicy {
    /// Buckets read at once (at least 1).
    pub concurrency: usize,
    /// Time one miner's bundle may take.
    pub per_miner: std::time::Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            concurrency: 16,
            per_miner: std::time::Duration::from_secs(30),
        }
    }
}

impl FetchPolicy {
    /// The policy of `[validator]` settings.
    pub fn of(settings: &grail_node::config::ValidatorSettings) -> Self {
        Self {
            concurrency: settings.fetch_concurrency.max(1),
            per_miner: std::time::Duration::from_secs_f64(settings.fetch_timeout_secs),
        }
    }
}

impl<'a> WindowInputs<'a> {
    /// The inputs of `window` as this participant's chain, beacon and `[validator]`
    /// settings define them, for `context`, the model of the checkpoint `checkpoint`.
    ///
    /// # Errors
    /// The chain or the beacon cannot give the window's randomness or deadline.
    pub async fn from_network(
        w: &grail_node::wiring::Wiring,
        context: &'a ModelContext,
        env: &'a dyn Environment,
        window: u64,
        checkpoint: [u8; 32],
        registered: Vec<Hotkey>,
    ) -> Result<Self, NodeError> {
        Ok(Self {
            context,
            env,
            plan: WindowPlan {
                window,
                window_randomness: w.net.window_randomness(window).await?,
                checkpoint,
                environment: env.id(),
                generation: w.config.subnet.generation(),
                group_size: w.config.subnet.group_size,
            },
            challenge_randomness: w.net.challenge_randomness(window).await?,
            deadline: w.net.deadline(window).await?,
            registered,
            groups_checked: w.config.validator.groups_checked,
            max_bundle_bytes: w.config.validator.max_bundle_bytes,
            fetch: FetchPolicy::of(&w.config.validator),
            pins: None,
            lane: None,
        })
    }
}

impl WindowInputs<'_> {
    /// The inputs of a client job's lane in the same window: the job's environment and
    /// lane plan, its bundles under `lanes/`, checked by upload timestamps until the
    /// caller sets the lane's pins.
    pub fn lane<'j>(&'j self, job: &'j grail_jobs::JobEnvironment) -> WindowInputs<'j> {
        WindowInputs {
            context: self.context,
            env: job,
            plan: job.lane_plan(&self.plan),
            challenge_randomness: self.challenge_randomness,
            deadline: self.deadline,
            registered: self.registered.clone(),
            groups_checked: self.groups_checked,
            max_bundle_bytes: self.max_bundle_bytes,
            fetch: self.fetch,
            pins: None,
            lane: Some(job.job_id().to_string()),
        }
    }

    /// The window's parameters for the model in effect, archiving evidence at
    /// `validator`'s positions.
    pub fn params(&self, validator: Hotkey) -> WindowParams {
        window_params(
            self.context,
            self.plan.clone(),
            self.challenge_randomness,
            validator,
            self.groups_checked,
        )
    }

    /// The model and environment answering the forward-pass requests of `params`.
    pub fn check<'c>(&'c self, params: &'c WindowParams) -> WindowCheck<'c> {
        WindowCheck {
            context: self.context,
            env: self.env,
            params,
        }
    }
}

fn bundle_reason(e: &StoreError) -> Reason {
    match e {
        StoreError::NotFound { .. } => Reason::Missing,
        StoreError::Late { .. } | StoreError::ChangedAfterPin { .. } => Reason::LateUpload,
        StoreError::TooLarge { .. } => Reason::Oversized,
        StoreError::HashMismatch { .. } | StoreError::Incomplete { .. } => Reason::Integrity,
        StoreError::Wire(_) => Reason::Malformed,
        _ => Reason::StoreUnreachable,
    }
}

/// A fetched bundle, or why there is none: its bundle reason and the detail.
type FetchOutcome = Result<Fetched, (Reason, String)>;

/// Every miner's bundle of the window, in `miners` order: read `concurrency` at a time,
/// each within the per-miner budget; a failure is the bundle reason and its detail.
async fn fetch_all(inputs: &WindowInputs<'_>, miners: &[MinerSource]) -> Vec<FetchOutcome> {
    use futures::StreamExt;
    let budget = inputs.fetch.per_miner;
    let mut fetched: Vec<(usize, FetchOutcome)> = futures::stream::iter(miners.iter().enumerate())
        .map(|(i, m)| async move {
            let fetch = fetch_one(inputs, m);
            let result = match tokio::time::timeout(budget, fetch).await {
                Ok(result) => result,
                Err(_) => Err((
                    Reason::StoreUnreachable,
                    format!(
                        "no bundle within the {:.0} s fetch budget",
                        budget.as_secs_f64()
                    ),
                )),
            };
            (i, result)
        })
        .buffer_unordered(inputs.fetch.concurrency.max(1))
        .collect()
        .await;
    fetched.sort_by_key(|(i, _)| *i);
    fetched.into_iter().map(|(_, r)| r).collect()
}

/// One miner's bundle: exactly the pinned bytes when the window has pins (a bundle
/// without a pin is missing, or late when it exists now), else the bundle whose objects'
/// timestamps are before the deadline.
async fn fetch_one(inputs: &WindowInputs<'_>, m: &MinerSource) -> FetchOutcome {
    let window = inputs.plan.window;
    let failed = |e: StoreError| (bundle_reason(&e), e.to_string());
    let Some(pins) = &inputs.pins else {
        return m
            .store
            .fetch_bundle_in(
                window,
                inputs.lane.as_deref(),
                &m.hotkey,
                Some(inputs.deadline),
                inputs.max_bundle_bytes,
            )
            .await
            .map_err(failed);
    };
    match pins.of(&m.hotkey) {
        Some(PinOutcome::Pinned(pin)) => m
            .store
            .fetch_pinned_bundle_in(
                window,
                inputs.lane.as_deref(),
                &m.hotkey,
                pin,
                inputs.max_bundle_bytes,
            )
            .await
            .map_err(failed),
        Some(PinOutcome::Unreachable(detail)) => Err((
            Reason::StoreUnreachable,
            format!("at the deadline pin: {detail}"),
        )),
        Some(PinOutcome::Absent) | None => {
            match m
                .store
                .head(&grail_store::layout::bundle_in(
                    window,
                    inputs.lane.as_deref(),
                    &m.hotkey,
                ))
                .await
            {
                Ok(Some(_)) => Err((
                    Reason::LateUpload,
                    "no finished bundle when it was pinned at the deadline; written after it"
                        .into(),
                )),
                Ok(None) => Err((Reason::Missing, "no bundle at the deadline pin".into())),
                Err(e) => Err(failed(e)),
            }
        }
    }
}

/// A fetched bundle through the checks that need no forward pass: the report of a bundle
/// that failed at bundle level, or what the window keeps of one that was read.
fn screen(
    registered: &[Hotkey],
    params: &WindowParams,
    prechecks: &Prechecks<'_>,
    m: &MinerSource,
    fetched: FetchOutcome,
    replay: &ReplaySet,
    prompts: &PromptCache,
) -> PendingBundle {
    let fetched = match fetched {
        Ok(fetched) => fetched,
        Err((reason, detail)) => {
            return MinerReport::refused(m.hotkey, m.uid, reason, detail).into()
        }
    };
    let is_registered = |h: &Hotkey| registered.contains(h);
    match BundleCheck::open(params, m.hotkey, m.uid, &fetched.bytes, is_registered) {
        Ok(check) => {
            drop(fetched);
            let pending = prechecks.run(check, prompts, replay);
            if pending.report.bundle_status == grail_proto::verifier::OWN_FAILURE_STATUS {
                tracing::warn!(window = params.plan.window, miner = %m.hotkey.to_ss58(), "{}; the miner's window is not credited", pending.report.detail);
            }
            pending
        }
        Err(report) => (*report).into(),
    }
}

/// Fetches and checks every miner's bundle of a window; returns the reports (sorted by
/// hotkey, with credited work) and the sealed window. `replay` holds the work of earlier
/// windows of the checkpoint. The rules are `grail_proto::verifier`'s; this answers its
/// requests.
///
/// Bundles are read `fetch.concurrency` at a time and each batch goes through its
/// [`BundleCheck`]s on every core before the next is read; only what the forward-pass
/// stage needs is kept. Memory is bounded by `fetch.concurrency` × `max_bundle_bytes`
/// (bytes and decoded groups), whatever the number of miners.
pub async fn check_window(
    inputs: &WindowInputs<'_>,
    miners: &[MinerSource],
    validator: Hotkey,
    replay: &ReplaySet,
) -> (Vec<MinerReport>, SealedWindow) {
    let params = inputs.params(validator);
    let check = inputs.check(&params);
    let mut pending = Vec::new();
    let prompts = PromptCache::new();
    let prechecks = check.prechecks();
    let registered = inputs.registered.as_slice();
    for batch in miners.chunks(inputs.fetch.concurrency.max(1)) {
        let fetched = fetch_all(inputs, batch).await;
        let screened = grail_node::blocking(|| {
            screen_all(batch, fetched, |m, f| {
                screen(registered, &params, &prechecks, m, f, replay, &prompts)
            })
        });
        pending.extend(screened);
    }
    let outcome = finish_window(&check, pending);
    (outcome.reports, outcome.sealed)
}

/// `screen` applied to every fetched bundle of a batch, spread over the cores; results in
/// `miners` order.
fn screen_all<T: Send>(
    miners: &[MinerSource],
    fetched: Vec<FetchOutcome>,
    screen: impl Fn(&MinerSource, FetchOutcome) -> T + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(miners.len());
    let work: Vec<std::sync::Mutex<Option<FetchOutcome>>> = fetched
        .into_iter()
        .map(|f| std::sync::Mutex::new(Some(f)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<T>>> =
        miners.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (Some(m), Some(slot)) = (miners.get(i), work.get(i)) else {
                    break;
                };
                let taken = slot.lock().ok().and_then(|mut f| f.take());
                if let Some(f) = taken {
                    let out = screen(m, f);
                    if let Ok(mut r) = results[i].lock() {
                        *r = Some(out);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .filter_map(|r| r.into_inner().ok().flatten())
        .collect()
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
