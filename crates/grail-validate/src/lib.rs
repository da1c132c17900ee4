//! grail-validate: the validator role. The validator loop: after each window's deadline, fetch every miner's bundle, check a
//! sample of groups, judge copies, seal the window (archive), score, set weights, persist.
//!
//! - [`window`]: one window's fetch-and-check ([`check_window`]);
//! - [`summary`]: the per-window summary ([`summarize`]);
//! - [`state`]: what is persisted;
//! - [`verdicts`]: every miner's verdicts of the last windows (`GET /verdicts/{hotkey}`);
//! - [`retention`]: forgetting old windows (state and sealed archives);
//! - [`reverify`]: offline re-verification of a sealed window;
//! - [`reverify_cli`]: `grail-validator reverify` (fetch, load the checkpoint, compare);
//! - [`api`]: the read-only HTTP API and Prometheus metrics.
//! - [`verify`]: drives the validator rules of `grail_proto::rules` (prompts, forward
//!   passes, rewards) — the trainer's re-verification and the experiment use it too.
//! - [`jobs`]: the v2 job gateway and the following of other validators' jobs.
//! - `testing` (feature `test-helpers`): small groups and reports for other crates' tests.

pub mod api;
pub mod jobs;
pub mod pins;
pub mod retention;
pub mod reverify;
pub mod reverify_cli;
pub mod state;
pub mod summary;
#[cfg(any(test, feature = "test-helpers"))]
pub mod testing;
pub mod verdicts;
pub mod verify;
pub mod window;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use grail_chain::subtensor::emit_weights;
use grail_env::Environment;
use grail_proto::rules::Reason;
use grail_proto::scoring::{weights, ScoreRule};
use grail_proto::Hotkey;
use tracing::{info, warn};

pub use api::{prometheus, router, serve_api, ApiState};
pub use pins::{pin_window, PinBook, PinOutcome, WindowPins};
pub use reverify::reverify_archive;
pub use state::ValidatorState;
pub use summary::{summarize, Totals, WindowSummary};
pub use verdicts::{GroupVerdict, MinerWindow, VerdictHistory};
pub use window::{check_window, FetchPolicy, MinerSource, WindowInputs};

use grail_node::checkpoints::{CheckpointId, CurrentModel};
use grail_node::cursor::{Readiness, WindowCursor};
use grail_node::network::Stop;
use grail_node::wiring::Wiring;
use grail_node::{write_atomic, NodeError};

/// The job gateway of `[jobs]` over this validator's bucket, its book in the state folder.
fn job_gateway(w: &Wiring) -> Result<Arc<crate::jobs::Gateway>, NodeError> {
    let jobs = &w.config.jobs;
    let keys_file = jobs
        .api_keys_file
        .as_ref()
        .ok_or_else(|| NodeError::Config("jobs.enabled needs jobs.api_keys_file".into()))?;
    let keys = crate::jobs::ApiKeys::load(keys_file)?;
    if keys.is_empty() {
        warn!(file = %keys_file.display(), "the API key file holds no keys: every job submission is refused");
    }
    info!(clients = keys.len(), "job gateway on /v2/jobs");
    Ok(Arc::new(crate::jobs::Gateway::open(
        keys,
        crate::jobs::BookLimits::of(jobs),
        w.store.clone(),
        w.config.state_dir.join("job-book.json"),
        crate::jobs::gateway::system_clock(),
    )?))
}

/// The client jobs a validator checks: its own gateway's (delivered to the clients'
/// streams) and the other validators' it follows (credited by the same rule).
#[derive(Default, Clone)]
pub struct JobSources {
    /// This validator's gateway (`jobs.enabled`).
    pub gateway: Option<Arc<crate::jobs::Gateway>>,
    /// The other validators' jobs (`jobs.follow_others`).
    pub watch: Option<Arc<crate::jobs::JobWatch>>,
}

impl JobSources {
    /// Reads the other registered validators' open jobs into the watch (their buckets
    /// from the chain; this validator's own jobs left out).
    async fn refresh_followed(
        &self,
        net: &grail_node::network::Network,
        local: bool,
        me: Hotkey,
        at: u64,
    ) {
        let Some(watch) = &self.watch else {
            return;
        };
        let own: std::collections::HashSet<String> = match &self.gateway {
            Some(gw) => gw.open_ids(at).await.into_iter().collect(),
            None => Default::default(),
        };
        match grail_node::wiring::registered_stores(net, local, |n| {
            n.validator_permit && n.hotkey != me
        })
        .await
        {
            Ok((_, validators)) => {
                let validators: Vec<(Hotkey, grail_store::Store)> =
                    validators.into_iter().map(|(n, s)| (n.hotkey, s)).collect();
                watch.refresh(&validators, &own, at).await;
            }
            Err(e) => warn!("cannot list the other validators' buckets for their jobs: {e}"),
        }
    }

    /// The ids of every job whose lane is checked at `at` (Unix seconds).
    async fn open_ids(&self, at: u64) -> Vec<String> {
        let mut ids = match &self.gateway {
            Some(gw) => gw.open_ids(at).await,
            None => Vec::new(),
        };
        if let Some(watch) = &self.watch {
            for id in watch.open_ids(at).await {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }
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
    let gateway = match w.config.jobs.enabled {
        true => Some(job_gateway(w)?),
        false => None,
    };
    let watch = match w.config.jobs.follow_others {
        true => Some(Arc::new(crate::jobs::JobWatch::open(
            dir.join("job-watch.json"),
            crate::jobs::WatchLimits::of(&w.config.jobs),
        )?)),
        false => None,
    };
    let jobs = JobSources {
        gateway: gateway.clone(),
        watch,
    };
    let api = Arc::new(RwLock::new(ApiState::from_state(
        w.key.public().to_ss58(),
        &state,
    )));
    if !w.config.validator.http.is_empty() {
        let mut app = router(api.clone());
        if let Some(gw) = &gateway {
            app = app.merge(gw.clone().routes());
        }
        let addr = api::serve_router(&w.config.validator.http, app).await?;
        info!(%addr, "HTTP API listening");
        write_atomic(&dir.join("api-address"), addr.to_string().as_bytes())?;
        // Miners find the API through the chain; serving it does not depend on that.
        match w.config.validator.public_endpoint(addr) {
            Some(endpoint) => match w.publish_endpoint(endpoint).await {
                Ok(published) => {
                    info!(endpoint = %endpoint.addr, published, "API endpoint on chain")
                }
                Err(e) => {
                    warn!(endpoint = %endpoint.addr, "cannot publish the API endpoint on chain: {e}")
                }
            },
            None => {
                warn!(%addr, "the API is bound to an address nobody can connect to; set validator.public_address to publish it on chain")
            }
        }
    }
    let mut cursor = WindowCursor::start(
        &w.net,
        state.last_window,
        from_window,
        Readiness::Sealed,
        windows,
    )
    .await?;
    let book = Arc::new(Mutex::new(PinBook::load(&dir)));
    // At each deadline: the other validators' new jobs are read, then every open job's
    // lane is pinned.
    let lanes: Option<pins::LaneList> = {
        let jobs = jobs.clone();
        let net = w.net.clone();
        let local = w.config.is_local_network();
        let me = w.key.public();
        Some(Arc::new(move |at| {
            let (jobs, net) = (jobs.clone(), net.clone());
            futures::FutureExt::boxed(async move {
                jobs.refresh_followed(&net, local, me, at).await;
                jobs.open_ids(at).await
            })
        }))
    };
    let _pinner = grail_node::AbortOnDrop(tokio::spawn(pins::run_pinner(
        w.net.clone(),
        miner_list(w),
        lanes,
        FetchPolicy::of(&w.config.validator),
        book.clone(),
        cursor.window(),
        stop.clone(),
    )));
    let mut current: Option<CurrentModel> = None;
    while let Some(window) = cursor.next(&w.net, &mut stop).await? {
        // Transient failures (chain, beacon, a store) are retried; a window that still
        // fails is recorded with its error and skipped, not fatal.
        let mut attempt = 0;
        let (summary, weights) = loop {
            match validate_window(w, env, window, &mut current, &mut state, &book, &jobs).await {
                Ok(done) => break done,
                Err(e) if attempt < 3 && !stop.requested() => {
                    attempt += 1;
                    warn!(window, attempt, "validation failed, retrying: {e}");
                    stop.sleep(std::time::Duration::from_secs(2 * attempt))
                        .await;
                }
                Err(e) => {
                    warn!(window, "giving up on the window: {e}");
                    let failed = WindowSummary {
                        window,
                        error: Some(e.to_string()),
                        ..Default::default()
                    };
                    break (failed, None);
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
        state.totals.add(&summary);
        state.windows.insert(window, summary);
        state.last_window = Some(window);
        retention::prune_state(&mut state, &w.net, &w.config.validator, window);
        // The window is sealed on disk before weights go out: a validator killed in
        // between resumes after this window and never sets its weights twice.
        state.save(&dir)?;
        if let Some(emitted) = weights {
            let version = grail_chain::WEIGHTS_VERSION_KEY;
            match w.net.chain.set_weights(&w.key, &emitted, version).await {
                Ok(()) => {
                    if let Some(s) = state.windows.get_mut(&window) {
                        s.weights = emitted;
                    }
                    state.save(&dir)?;
                }
                Err(e) => warn!(window, "setting weights failed: {e}"),
            }
        }
        match retention::prune_store(&w.store, &w.net, &w.config.validator, window).await {
            Ok(0) => {}
            Ok(n) => info!(window, objects = n, "retention: deleted old archives"),
            Err(e) => warn!(window, "retention: cannot prune the bucket: {e}"),
        }
        refresh_api(w, &api, &state, window).await;
        cursor.advance();
    }
    Ok(state)
}

/// Updates what the HTTP API serves after `window`. The current window and its deadline
/// come from the chain; when it cannot be read they keep their previous values (logged).
async fn refresh_api(w: &Wiring, api: &RwLock<ApiState>, state: &ValidatorState, window: u64) {
    let current = match w.net.current_window().await {
        Ok(c) => match w.net.deadline(c).await {
            Ok(deadline) => Some((c, deadline.to_rfc3339())),
            Err(e) => {
                warn!(window, "API: cannot read the current deadline: {e}");
                None
            }
        },
        Err(e) => {
            warn!(window, "API: cannot read the current window: {e}");
            None
        }
    };
    // Windows are public once this validator's weights after them are visible on chain.
    let revealed = match own_weights(w).await {
        Ok(on_chain) => api::revealed_window(&state.windows, &on_chain),
        Err(e) => {
            warn!(
                window,
                "API: cannot read this validator's weights on chain: {e}"
            );
            None
        }
    };
    if let Ok(mut a) = api.write() {
        a.update(state);
        a.revealed_through = a.revealed_through.max(revealed);
        a.checkpoint = state.windows.get(&window).and_then(|s| s.checkpoint);
        if let Some((c, deadline)) = current {
            a.current_window = c;
            a.current_deadline = deadline;
        }
    }
}

/// The weights the chain shows for this validator (empty when it is not registered).
async fn own_weights(w: &Wiring) -> Result<Vec<(u16, u16)>, NodeError> {
    let metagraph = w.net.chain.metagraph().await?;
    match metagraph.by_hotkey(&w.key.public()) {
        Some(n) => Ok(w.net.chain.weights(n.uid).await?),
        None => Ok(Vec::new()),
    }
}

/// Validates `window`: its summary, and the weights to set after it when it is a
/// weights window. `state` gains the window's credited work and replay digests.
async fn validate_window(
    w: &Wiring,
    env: &dyn Environment,
    window: u64,
    current: &mut Option<CurrentModel>,
    state: &mut ValidatorState,
    book: &Mutex<PinBook>,
    jobs: &JobSources,
) -> Result<(WindowSummary, Option<Vec<(u16, u16)>>), NodeError> {
    let Some(id): Option<CheckpointId> = w
        .checkpoints
        .in_effect(w.net.chain.as_ref(), window)
        .await?
    else {
        warn!(window, "no checkpoint in effect; nothing to validate");
        let empty = WindowSummary {
            window,
            ..Default::default()
        };
        return Ok((empty, None));
    };
    CurrentModel::ensure(current, &w.checkpoints, id, w.device).await?;
    let model = current.as_ref().expect("ensured above");
    let me = w.key.public();
    let local = w.config.is_local_network();
    let (metagraph, miners) = miner_sources(&w.net, local, me, w.checkpoints.trainer).await?;
    let registered: Vec<Hotkey> = metagraph.neurons.iter().map(|n| n.hotkey).collect();
    // The pins come first (they are taken before the challenge is public); the beacon
    // then waits for the challenge's drand round.
    let pins = pins_of(w, window, book).await?;
    let mut inputs =
        WindowInputs::from_network(w, &model.context, env, window, id.digest, registered).await?;
    inputs.pins = pins;
    state.replay.begin(id.digest, window);
    let (reports, sealed) = check_window(&inputs, &miners, me, &state.replay).await;
    let (job_credits, job_strata) = check_job_lanes(w, jobs, &inputs, &miners, state, book).await;
    let digest = w.store.put_archive(&sealed).await?;
    let mut summary = summarize(window, Some(id.number), &reports, env);
    summary.strata.extend(job_strata);
    summary.archive = hex::encode(digest);
    state.verdicts.record(window, Some(id.number), &reports);
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
    let subnet_work: f64 = work.values().sum();
    for (uid, credit) in capped_job_credits(&job_credits, subnet_work, w.config.jobs.max_share) {
        *work.entry(uid).or_default() += credit;
        summary.job_credit += credit;
    }
    let s = &w.config.validator;
    if !(window / w.net.window_length).is_multiple_of(s.weights_interval.max(1)) {
        return Ok((summary, None));
    }
    let rule = ScoreRule {
        rolling_windows: s.rolling_windows,
        exponent: s.exponent,
        burn_fraction: s.burn_fraction,
    };
    let shares = weights(&state.work, window, &rule);
    let (uids, values): (Vec<u16>, Vec<f64>) = shares.into_iter().unzip();
    Ok((summary, Some(emit_weights(&uids, &values)?)))
}

/// Checks every open job's lane of the window (the jobs of this validator's gateway and the
/// other validators' it follows, open at the window's deadline) with the ordinary rules,
/// seals each lane's archive under `lanes/`, delivers its verified in-zone groups to the
/// job's stream (own jobs) or records them (followed jobs); returns each miner's job credit
/// (delivered groups, before the cap) and each lane's accepted and in-zone groups, reported
/// as the stratum `job:{id}` so that zone miners weigh jobs like the environment's strata.
async fn check_job_lanes(
    w: &Wiring,
    jobs: &JobSources,
    inputs: &WindowInputs<'_>,
    miners: &[MinerSource],
    state: &mut ValidatorState,
    book: &Mutex<PinBook>,
) -> (
    BTreeMap<u16, f64>,
    BTreeMap<String, grail_node::zone::ZoneCount>,
) {
    let window = inputs.plan.window;
    let me = w.key.public();
    let mut credits: BTreeMap<u16, f64> = BTreeMap::new();
    let mut strata: BTreeMap<String, grail_node::zone::ZoneCount> = BTreeMap::new();
    let at = inputs.deadline.timestamp().max(0) as u64;
    let published = w.net.challenge_published_at(window).await.ok();
    let mut lanes: Vec<(grail_jobs::JobEnvironment, bool)> = Vec::new();
    if let Some(gw) = &jobs.gateway {
        lanes.extend(gw.lanes(at).await.into_iter().map(|j| (j, true)));
    }
    if let Some(watch) = &jobs.watch {
        let own: std::collections::HashSet<String> =
            lanes.iter().map(|(j, _)| j.job_id().to_string()).collect();
        for job in watch.lanes(at).await {
            if !own.contains(&job.job_id().to_string()) {
                lanes.push((job, false));
            }
        }
    }
    for (job, own) in lanes {
        let id = job.job_id().to_string();
        let mut lane = inputs.lane(&job);
        lane.groups_checked = w.config.jobs.lane_groups_checked;
        // Pinned at the deadline like the subnet's bundles. When the subnet's were pinned
        // in time and this lane's were not (taken late, or the job was not known at the
        // deadline), the lane is not checked this window: timestamps would let a miner
        // finish an upload after seeing the challenge. Without the subnet's pins (the
        // validator was down at the deadline) lanes fall back to timestamps like it.
        if let (Some(_), Some(published)) = (&inputs.pins, published) {
            lane.pins = book
                .lock()
                .ok()
                .and_then(|b| b.lane_in_time(window, &id, published));
            if lane.pins.is_none() {
                warn!(window, job = %id, "the job lane was not pinned before the challenge; not checked this window");
                continue;
            }
        }
        let (reports, sealed) = check_window(&lane, miners, me, &state.replay).await;
        state.replay.record(
            window,
            reports
                .iter()
                .flat_map(|r| r.eligible_works.iter().copied()),
        );
        let submitted: usize = reports.iter().map(|r| r.groups_submitted).sum();
        if submitted == 0 {
            continue;
        }
        let zone = strata
            .entry(grail_node::zone::job_stratum(&id))
            .or_default();
        for c in reports.iter().flat_map(|r| &r.checked) {
            if c.outcome.verdict.accepted {
                zone.groups += 1.0;
                zone.in_zone += f64::from(u8::from(c.outcome.in_zone));
            }
        }
        // A job lane that cannot be recorded is logged and skipped: it earns nothing this
        // window, and the subnet's window is not held up by it.
        let key = match w.store.put_lane_archive(&sealed, &id).await {
            Ok(key) => key,
            Err(e) => {
                warn!(window, job = %id, "cannot store the job lane's archive; not delivered: {e}");
                continue;
            }
        };
        let delivered = match (&jobs.gateway, &jobs.watch) {
            (Some(gw), _) if own => {
                let tokenizer = &inputs.context.files.tokenizer;
                let decode = |t: &[u32]| tokenizer.decode(t, false).unwrap_or_default();
                gw.deliver(&job, &reports, &sealed, &key, &decode).await
            }
            (_, Some(watch)) => watch.credit(&job, &reports, &sealed).await,
            _ => Ok(BTreeMap::new()),
        };
        let delivered = match delivered {
            Ok(d) => d,
            Err(e) => {
                warn!(window, job = %id, "cannot record the job lane's deliveries: {e}");
                continue;
            }
        };
        info!(
            window,
            job = %id,
            own,
            submitted,
            checked = sealed.entries.len(),
            delivered_groups = delivered.values().map(|&c| c as u64).sum::<u64>(),
            "job lane sealed"
        );
        for (uid, c) in delivered {
            *credits.entry(uid).or_default() += c;
        }
    }
    (credits, strata)
}

/// Job credits scaled down so that they are at most `max_share` of the window's credit:
/// `Σ job ≤ max_share / (1 − max_share) × subnet_work`. Job work cannot take more of the
/// emission than that, however much of it there is, so training work keeps the rest.
pub fn capped_job_credits(
    job: &BTreeMap<u16, f64>,
    subnet_work: f64,
    max_share: f64,
) -> Vec<(u16, f64)> {
    let total: f64 = job.values().sum();
    if total <= 0.0 || max_share <= 0.0 {
        return Vec::new();
    }
    let cap = max_share / (1.0 - max_share) * subnet_work;
    let scale = (cap / total).min(1.0);
    job.iter()
        .map(|(&uid, &c)| (uid, c * scale))
        .filter(|(_, c)| *c > 0.0)
        .collect()
}

/// The miners of the metagraph (neither this validator, the trainer nor a permit holder)
/// and their buckets.
async fn miner_sources(
    net: &grail_node::network::Network,
    local: bool,
    me: Hotkey,
    trainer: Hotkey,
) -> Result<(grail_chain::Metagraph, Vec<MinerSource>), NodeError> {
    let (metagraph, stores) = grail_node::wiring::registered_stores(net, local, |n| {
        n.hotkey != me && n.hotkey != trainer && !n.validator_permit
    })
    .await?;
    let miners = stores
        .into_iter()
        .map(|(n, store)| MinerSource {
            hotkey: n.hotkey,
            uid: n.uid,
            store,
        })
        .collect();
    Ok((metagraph, miners))
}

/// [`miner_sources`] for the pinning task.
fn miner_list(w: &Wiring) -> pins::MinerList {
    let net = w.net.clone();
    let local = w.config.is_local_network();
    let (me, trainer) = (w.key.public(), w.checkpoints.trainer);
    Arc::new(move || {
        let net = net.clone();
        futures::FutureExt::boxed(async move {
            miner_sources(&net, local, me, trainer)
                .await
                .map(|(_, miners)| miners)
        })
    })
}

/// The pins of `window` taken before its challenge randomness was published: waits for the
/// pinning task while they can still come, then `None` (logged: the window is checked by
/// upload timestamps, the protocol v4 rule).
async fn pins_of(
    w: &Wiring,
    window: u64,
    book: &Mutex<PinBook>,
) -> Result<Option<WindowPins>, NodeError> {
    let published = w.net.challenge_published_at(window).await?;
    let policy = FetchPolicy::of(&w.config.validator);
    // Pinning takes at most a budget per round of `concurrency` miners; a few rounds.
    let give_up = published + chrono::Duration::from_std(policy.per_miner * 4).unwrap_or_default();
    loop {
        let pins = book.lock().ok().and_then(|b| b.get(window).cloned());
        match pins {
            Some(p) if p.taken_before(published) => return Ok(Some(p)),
            Some(_) => break,
            None if w.net.now() > give_up => break,
            None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    warn!(
        window,
        "no pins taken before the challenge randomness was published; checking upload timestamps instead"
    );
    Ok(None)
}

/// `grail-validator validate`: runs the validator from its flags until `--windows`
/// windows are done or Ctrl-C.
pub async fn run_cli(args: grail_node::cli::RoleArgs) -> Result<(), NodeError> {
    let s = grail_node::cli::start_role(grail_node::Role::Validator, args).await?;
    let state = run(&s.wiring, s.env.as_ref(), s.from_window, s.windows, s.stop).await?;
    info!(last_window = ?state.last_window, "validator stopped");
    Ok(())
}

#[cfg(test)]
mod loop_tests {
    //! The loop on simulated time (`grail_node::sim`): no checkpoint is announced, so every
    //! window is sealed as "nothing to validate" and only the loop's bookkeeping runs.

    use super::*;
    use grail_node::sim;

    #[test]
    fn job_credit_is_capped_at_its_share_of_the_window() {
        let job = BTreeMap::from([(1u16, 6.0), (2, 2.0)]);
        // 8 of job work against 30 of subnet work is under 0.25 / 0.75 × 30 = 10: paid in full.
        assert_eq!(
            capped_job_credits(&job, 30.0, 0.25),
            vec![(1, 6.0), (2, 2.0)]
        );
        // Over it: scaled so that job work is exactly a quarter of all credit.
        let capped = capped_job_credits(&job, 12.0, 0.25);
        let total: f64 = capped.iter().map(|(_, c)| c).sum();
        assert!((total / (total + 12.0) - 0.25).abs() < 1e-12, "{capped:?}");
        assert!((capped[0].1 / capped[1].1 - 3.0).abs() < 1e-12);
        // No training work, no job pay; a zero share turns job pay off.
        assert!(capped_job_credits(&job, 0.0, 0.25).is_empty());
        assert!(capped_job_credits(&job, 30.0, 0.0).is_empty());
    }

    fn windows(state: &ValidatorState) -> Vec<u64> {
        state.windows.keys().copied().collect()
    }

    #[tokio::test(start_paused = true)]
    async fn validator_seals_each_window_once_and_a_restart_resumes_after_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let w = sim::wiring(dir.path(), sim::network(), 1);
        let env = grail_env::by_name("math:0", None).unwrap();
        let state = run(&w, env.as_ref(), Some(0), Some(3), Stop::never())
            .await
            .unwrap();
        assert_eq!(windows(&state), [0, 4, 8]);
        assert!(state
            .windows
            .values()
            .all(|s| s.checkpoint.is_none() && s.error.is_none() && s.groups_checked == 0));
        // Window 8 was sealed at its ready block (8 + 4 + 1), not later.
        let head = w.net.chain.block_number().await.unwrap();
        assert!((13..15).contains(&head), "head {head}");
        // A restart resumes after the last saved window, whatever --from-window says.
        let state = run(&w, env.as_ref(), Some(0), Some(2), Stop::never())
            .await
            .unwrap();
        assert_eq!(windows(&state), [0, 4, 8, 12, 16]);
        let saved = ValidatorState::load(&w.config.state_dir).unwrap();
        assert_eq!(saved.last_window, Some(16));
        // Its bucket is published on chain for the trainer and other validators.
        let commitments = w.net.chain.commitments().await.unwrap();
        assert!(commitments.contains_key(&w.key.public()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_without_beacon_or_chain_is_not_validated_and_the_next_one_is() {
        let env = grail_env::by_name("math:0", None).unwrap();
        for fault in ["beacon", "chain"] {
            let dir = tempfile::tempdir().unwrap();
            let (net, chain, beacon) = sim::flaky_network();
            let w = sim::wiring(dir.path(), net, 1);
            sim::announce_tiny_checkpoint(&w, dir.path()).await;
            // Every attempt at the first window (1 + 3 retries) meets the fault.
            match fault {
                "beacon" => beacon
                    .failures
                    .store(4, std::sync::atomic::Ordering::SeqCst),
                _ => chain
                    .hash_failures
                    .store(4, std::sync::atomic::Ordering::SeqCst),
            }
            let state = run(&w, env.as_ref(), Some(0), Some(2), Stop::never())
                .await
                .unwrap();
            let failed = &state.windows[&0];
            let error = failed.error.as_deref().unwrap_or_default();
            assert!(error.contains("injected fault"), "{fault}: {error}");
            assert!(failed.checkpoint.is_none() && failed.weights.is_empty());
            let next = &state.windows[&4];
            assert_eq!(next.error, None, "{fault}");
            assert_eq!(next.checkpoint, Some(0), "{fault}");
            // Weights only after the validated window, never from the failed one.
            let calls = chain.weight_calls.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(calls, 1, "{fault}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_keeps_only_the_retained_windows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = sim::wiring(dir.path(), sim::network(), 1);
        w.config.validator.rolling_windows = 2;
        w.config.validator.retention_windows = 2;
        let old = grail_proto::archive::SealedWindow {
            window: 4,
            validator: w.key.public(),
            checkpoint: [0; 32],
            entries: Vec::new(),
            credits: Vec::new(),
        };
        w.store.put_archive(&old).await.unwrap();
        let env = grail_env::by_name("math:0", None).unwrap();
        let state = run(&w, env.as_ref(), Some(0), Some(4), Stop::never())
            .await
            .unwrap();
        assert_eq!(windows(&state), [8, 12]);
        assert_eq!(state.last_window, Some(12));
        let saved = ValidatorState::load(&w.config.state_dir).unwrap();
        assert_eq!(windows(&saved), [8, 12]);
        assert!(w.store.list_archives(4).await.unwrap().is_empty());
    }
}
