//! grail-mine: the miner role.
//!
//! The miner loop: per window, the checkpoint in effect, the window randomness, as many
//! signed groups as fit before the deadline (minus a margin), in batches [`pace`] sizes
//! from measured throughput, one upload.
//!
//! - [`groups`]: building a signed group (sampling, proof pass, rewards, signature);
//! - [`prompts`]: which prompts to try (pseudo-random, or targeting the learning zone);
//! - [`reports`]: the validators' learning-zone reports zone-targeting miners read;
//! - [`jobs`]: mining the open client jobs' lanes;
//! - [`pace`]: batch sizes from measured throughput;
//! - [`metrics`]: what `[miner] http` serves.

pub mod groups;
pub mod jobs;
pub mod metrics;
pub mod pace;
pub mod prompts;
pub mod reports;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use grail_env::Environment;
use grail_proto::sampling::prompt_digest;
use grail_proto::{encode_bundle, SketchCoefficients, WindowBundle};
use tracing::{info, warn};

use crate::groups::{assemble_group, sample_completions_batch_until, WindowPlan};
use crate::prompts::{PromptStrategy, Prompts};
use grail_node::checkpoints::CurrentModel;
use grail_node::cursor::{Readiness, WindowCursor};
use grail_node::network::Stop;
use grail_node::wiring::Wiring;
use grail_node::NodeError;
pub use metrics::MinerMetrics;
pub use pace::Pacer;
pub use reports::{discover_validators, ReportBatch, ReportError, ValidatorApi, ValidatorReports};

/// Windows ahead of the next one whose checkpoints a miner downloads after its upload.
const MAX_WINDOWS_AHEAD: usize = 16;

/// Prompts in a row that the strategy may propose again before the window is closed
/// early (a finite prompt space can run out).
const MAX_PROMPT_REPEATS: usize = 1000;

/// What a miner did in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct MinedWindow {
    /// The window.
    pub window: u64,
    /// Groups uploaded.
    pub groups: usize,
    /// Checkpoint number used.
    pub checkpoint: u64,
    /// Completion tokens generated per second (over the window's generation time).
    pub tokens_per_second: f64,
    /// Client-job groups uploaded (in the jobs' lanes, besides `groups`).
    pub job_groups: usize,
}

/// Runs the miner from `from_window` (default: the current one) for `windows` windows
/// (default: until stopped).
pub async fn run(
    w: &Wiring,
    env: &dyn Environment,
    from_window: Option<u64>,
    windows: Option<u64>,
    stop: Stop,
) -> Result<Vec<MinedWindow>, NodeError> {
    let metrics = Arc::new(RwLock::new(MinerMetrics::default()));
    run_with_metrics(w, env, from_window, windows, stop, metrics).await
}

/// [`run`], counting what it does in `metrics` (served on `[miner] http` when set).
pub async fn run_with_metrics(
    w: &Wiring,
    env: &dyn Environment,
    from_window: Option<u64>,
    windows: Option<u64>,
    mut stop: Stop,
    metrics: Arc<RwLock<MinerMetrics>>,
) -> Result<Vec<MinedWindow>, NodeError> {
    w.publish_store().await?;
    grail_node::metrics::start(
        &w.config.miner.http,
        &w.config.state_dir,
        MinerMetrics::render_shared(metrics.clone()),
    )
    .await?;
    let count = |f: &dyn Fn(&mut MinerMetrics)| {
        if let Ok(mut m) = metrics.write() {
            f(&mut m);
        }
    };
    let mut prompts = Prompts::new(w.config.miner.prompts, &w.key, env);
    // Zone reports are read in the background, every validator at once, twice a window:
    // a slow or unreachable validator never delays sampling.
    let mut zone_reports = None;
    if let Prompts::Zone(_) = &prompts {
        let reports = ValidatorReports::new(&w.config.miner.validator_api)?;
        let discover = w.config.miner.discovers_validators().then(|| {
            info!("miner.prompts = \"zone\" without miner.validator_api: validators' APIs are looked up on chain");
            (w.net.chain.clone(), w.key.public())
        });
        let period = std::time::Duration::from_millis(
            (w.net.window_length * w.net.block_time_ms / 2).max(500),
        );
        let (rx, task) = reports.spawn(discover, period);
        zone_reports = Some((rx, grail_node::AbortOnDrop(task)));
    }
    let mut job_feed = match w.config.miner.job_groups {
        0 => None,
        _ => Some(jobs::JobFeed::new(&job_gateways(w).await)?),
    };
    let mut current: Option<CurrentModel> = None;
    // Throughput measured in one window sizes the batches of the next.
    let mut pacer = Pacer::new(w.config.miner.batch_groups);
    let mut cursor =
        WindowCursor::start(&w.net, None, from_window, Readiness::Open, windows).await?;
    let mut done = Vec::new();
    while let Some(window) = cursor.next(&w.net, &mut stop).await? {
        let mut job_work = match &mut job_feed {
            Some(feed) => {
                if feed.has_no_gateway() {
                    // Validators publish their APIs on chain when they start.
                    feed.set_gateways(&job_gateways(w).await);
                }
                feed.refresh().await;
                match w.net.deadline(window).await {
                    Ok(deadline) => feed.work(
                        deadline.timestamp().max(0) as u64,
                        w.config.miner.job_groups,
                    ),
                    Err(_) => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        if let (Prompts::Zone(z), Some((rx, _))) = (&mut prompts, &mut zone_reports) {
            let ids: Vec<String> = job_work
                .iter()
                .map(|j| j.env.job_id().to_string())
                .collect();
            z.set_jobs(ids.iter().map(String::as_str));
            while let Ok(batch) = rx.try_recv() {
                z.update_weighted(batch.iter().map(|(weight, strata)| (*weight, strata)));
            }
            // Each job is one more stratum of the market: fewer groups for a job whose
            // groups land in the learning zone less often than the subnet's.
            for (job, id) in job_work.iter_mut().zip(&ids) {
                job.groups = z.job_groups(id, job.groups);
            }
        }
        match mine_window(
            w,
            env,
            window,
            &mut current,
            &mut prompts,
            &mut pacer,
            &mut stop,
            &job_work,
        )
        .await
        {
            Ok(Some(mined)) => {
                count(&|m| m.mined(&mined));
                done.push(mined);
            }
            Ok(None) if stop.requested() => break,
            Ok(None) => count(&|m| m.windows_skipped += 1),
            // One window's failure (chain, beacon, store) does not end the miner.
            Err(e) => {
                count(&|m| m.failures += 1);
                warn!(window, "window failed: {e}");
            }
        }
        let last = cursor.remaining() == Some(1);
        if !stop.requested() && !last {
            preload_next(w, window + w.net.window_length, &mut current).await;
            download_ahead(w, window + w.net.window_length).await;
        }
        cursor.advance();
    }
    Ok(done)
}

/// Where a miner reads open jobs: `miner.job_gateways`, else `miner.validator_api`, else
/// the validators' APIs on chain (looked up once; a lookup failure means no job work).
async fn job_gateways(w: &Wiring) -> Vec<String> {
    let m = &w.config.miner;
    if !m.job_gateways.is_empty() {
        return m.job_gateways.clone();
    }
    if !m.validator_api.is_empty() {
        return m.validator_api.clone();
    }
    match discover_validators(w.net.chain.as_ref(), &w.key.public()).await {
        Ok(apis) => apis.into_iter().map(|a| a.url).collect(),
        Err(e) => {
            warn!("cannot look up validators' APIs for client jobs: {e}");
            Vec::new()
        }
    }
}

/// Between this window's upload and the next window's start: loads the checkpoint of
/// window `next` when it is not loaded (otherwise the load eats into that window). A
/// failure is only logged (the window that needs the checkpoint loads it again).
async fn preload_next(w: &Wiring, next: u64, current: &mut Option<CurrentModel>) {
    let id = match w.checkpoints.in_effect(w.net.chain.as_ref(), next).await {
        Ok(Some(id)) => id,
        Ok(None) => return,
        Err(e) => {
            warn!(window = next, "cannot look up the next checkpoint: {e}");
            return;
        }
    };
    let loading = Instant::now();
    match CurrentModel::ensure(current, &w.checkpoints, id, w.device).await {
        Ok(true) => info!(
            window = next,
            checkpoint = id.number,
            seconds = format!("{:.1}", loading.elapsed().as_secs_f64()),
            "loaded the next window's checkpoint ahead of it"
        ),
        Ok(false) => {}
        Err(e) => warn!(window = next, "cannot load the next checkpoint ahead: {e}"),
    }
}

/// Downloads the checkpoints announced for windows after `next` (the trainer may have
/// announced several), so that loading them later is only a read from the local cache.
/// Failures are only logged.
async fn download_ahead(w: &Wiring, next: u64) {
    if let Ok(Some(a)) = w.checkpoints.announcement(w.net.chain.as_ref()).await {
        // Every checkpoint in effect between the next window and the latest announced one
        // (the trainer may have announced several since).
        let ahead = (next + w.net.window_length..=a.effective_window)
            .step_by(w.net.window_length.max(1) as usize)
            .take(MAX_WINDOWS_AHEAD);
        let mut seen = std::collections::BTreeSet::new();
        for window in ahead {
            let Ok(Some(id)) = w.checkpoints.in_effect(w.net.chain.as_ref(), window).await else {
                continue;
            };
            if !seen.insert(id.number) {
                continue;
            }
            let started = Instant::now();
            match w.checkpoints.fetch(id).await {
                // A cached checkpoint returns at once; only a download is worth a line.
                Ok(_) if started.elapsed().as_secs_f64() > 1.0 => info!(
                    checkpoint = id.number,
                    window,
                    seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
                    "downloaded a checkpoint ahead of its window"
                ),
                Ok(_) => {}
                Err(e) => warn!(
                    checkpoint = id.number,
                    "cannot download an announced checkpoint ahead: {e}"
                ),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn mine_window(
    w: &Wiring,
    env: &dyn Environment,
    window: u64,
    current: &mut Option<CurrentModel>,
    strategy: &mut dyn PromptStrategy,
    pacer: &mut Pacer,
    stop: &mut Stop,
    job_work: &[jobs::JobWork],
) -> Result<Option<MinedWindow>, NodeError> {
    let Some(id) = w
        .checkpoints
        .in_effect(w.net.chain.as_ref(), window)
        .await?
    else {
        warn!(
            window,
            "no checkpoint announced by the trainer yet; skipping the window"
        );
        return Ok(None);
    };
    let loading = Instant::now();
    if CurrentModel::ensure(current, &w.checkpoints, id, w.device).await? {
        info!(
            window,
            checkpoint = id.number,
            seconds = format!("{:.1}", loading.elapsed().as_secs_f64()),
            "loaded checkpoint"
        );
    }
    let model = current.as_ref().expect("ensured above");
    let deadline = w.net.deadline(window).await?;
    let window_randomness = w.net.window_randomness(window).await?;
    let coefficients =
        SketchCoefficients::derive(&window_randomness, model.context.model.config().hidden_size);
    let plan = WindowPlan {
        window,
        window_randomness,
        checkpoint: id.digest,
        environment: env.id(),
        generation: w.config.subnet.generation(),
        group_size: w.config.subnet.group_size,
    };
    // The upload must begin by the cutoff; the margin is for encoding and uploading.
    let margin =
        chrono::Duration::milliseconds((w.config.miner.upload_margin_secs * 1000.0) as i64);
    let cutoff = deadline - margin;
    // Half the margin is kept for encoding and uploading.
    let assembly_cutoff = deadline - margin / 2;
    let opens = w.net.block_time(window).await?;
    let usable = (cutoff - opens).num_milliseconds() as f64 / 1000.0;
    let seconds_left = || (cutoff - w.net.now()).num_milliseconds() as f64 / 1000.0;
    let job_groups = mine_jobs(w, model, &plan, &coefficients, job_work, cutoff).await;
    let mut groups = Vec::new();
    let mut used_prompts = std::collections::BTreeSet::new();
    let mut repeats = 0usize;
    let (mut tokens, started) = (0usize, Instant::now());
    while groups.len() < w.config.miner.max_groups {
        if stop.requested() {
            info!(
                window,
                "stopping: nothing is uploaded for an unfinished window"
            );
            return Ok(None);
        }
        let left = seconds_left();
        let want = pacer.next_batch(
            left,
            w.config.miner.max_groups - groups.len(),
            groups.is_empty(),
        );
        if want == 0 {
            if groups.is_empty() {
                // Estimates only fall by measuring: when one group would not fit even in
                // a whole window, let them fall a little, so that a miner whose one slow
                // batch overstated its cost probes again.
                if pacer.too_slow_for(usable) {
                    pacer.idle_window();
                }
                warn!(
                    window,
                    seconds_left = format!("{left:.1}"),
                    one_group_s = format!("{:.1}", pacer.estimate(1).unwrap_or(f64::NAN)),
                    "one group does not fit before the upload margin; nothing to mine this window \
                     (fewer subnet.max_new_tokens, a faster device, or a lower miner.upload_margin_secs help)"
                );
            }
            break;
        }
        // `want` new prompts, sampled together.
        let mut chosen = Vec::with_capacity(want);
        let mut exhausted = false;
        while chosen.len() < want {
            let prompt_id = strategy.next(window, env);
            let (problem, prompt) = model.context.prompt(env, prompt_id)?;
            // One group per prompt and window: the noise fixes it, a second is a duplicate.
            if !used_prompts.insert(prompt_digest(&prompt)) {
                repeats += 1;
                if repeats > MAX_PROMPT_REPEATS {
                    warn!(
                        window,
                        "the prompt strategy keeps repeating prompts; stopping early"
                    );
                    exhausted = true;
                    break;
                }
                continue;
            }
            chosen.push((prompt_id, problem, prompt));
        }
        if chosen.is_empty() {
            break;
        }
        let t0 = Instant::now();
        let batch = grail_node::blocking(|| {
            let prompts: Vec<&[u32]> = chosen.iter().map(|(_, _, p)| p.as_slice()).collect();
            let past_cutoff = || w.net.now() > cutoff;
            let sampled = sample_completions_batch_until(
                &model.context,
                &plan,
                &w.key.public(),
                &prompts,
                &past_cutoff,
            )?;
            // Proof passes run into the margin, but stop where the upload needs the rest:
            // the groups assembled by then are kept.
            let mut assembled = Vec::with_capacity(chosen.len());
            for ((prompt_id, problem, prompt), completions) in chosen.iter().zip(&sampled) {
                if w.net.now() > assembly_cutoff {
                    break;
                }
                assembled.push(assemble_group(
                    &model.context,
                    env,
                    &plan,
                    &coefficients,
                    &w.key,
                    *prompt_id,
                    (problem, prompt),
                    completions,
                )?);
            }
            Ok::<_, NodeError>(assembled)
        });
        let batch = match batch {
            Err(NodeError::Infer(grail_infer::InferError::Cancelled)) => {
                // The batch would have taken at least this long.
                pacer.record_cancelled(chosen.len(), t0.elapsed().as_secs_f64());
                warn!(
                    window,
                    groups = chosen.len(),
                    seconds = format!("{:.1}", t0.elapsed().as_secs_f64()),
                    "a batch ran past the upload cutoff and was stopped; uploading the groups finished before it"
                );
                break;
            }
            other => other?,
        };
        if batch.len() < chosen.len() {
            warn!(
                window,
                kept = batch.len(),
                batch = chosen.len(),
                "proof passes reached the upload reserve; keeping the groups assembled by then"
            );
            pacer.record_cancelled(chosen.len(), t0.elapsed().as_secs_f64());
        } else {
            pacer.record(chosen.len(), t0.elapsed().as_secs_f64());
        }
        let stopped_early = batch.len() < chosen.len();
        for group in batch {
            tokens += group
                .rollouts
                .iter()
                .map(|r| r.completion().len())
                .sum::<usize>();
            groups.push(group);
        }
        info!(
            window,
            groups = groups.len(),
            batch = chosen.len(),
            batch_s = format!("{:.1}", t0.elapsed().as_secs_f64()),
            tokens_per_s = format!("{:.1}", tokens as f64 / started.elapsed().as_secs_f64()),
            "groups ready"
        );
        if exhausted || stopped_early {
            break;
        }
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let count = groups.len();
    let tokens_per_second = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let bundle = WindowBundle {
        hotkey: w.key.public(),
        window,
        groups,
    };
    let bytes = encode_bundle(&bundle)?;
    if w.net.now() > deadline {
        warn!(
            window,
            "finished after the deadline; not uploading a late bundle"
        );
        return Ok(None);
    }
    w.store
        .upload_bundle(window, &w.key.public(), bytes)
        .await?;
    info!(
        window,
        groups = count,
        checkpoint = id.number,
        "bundle uploaded"
    );
    Ok(Some(MinedWindow {
        window,
        groups: count,
        checkpoint: id.number,
        tokens_per_second,
        job_groups,
    }))
}

/// Mines and uploads each job's `groups` groups of every job in `work`, each job's in its
/// own lane bundle, before `cutoff`; returns how many were uploaded. A job whose groups
/// fail is logged and skipped: the subnet's work goes on.
async fn mine_jobs(
    w: &Wiring,
    model: &CurrentModel,
    plan: &WindowPlan,
    coefficients: &SketchCoefficients,
    work: &[jobs::JobWork],
    cutoff: chrono::DateTime<chrono::Utc>,
) -> usize {
    let mut uploaded = 0;
    for job in work {
        let id = job.env.job_id().to_string();
        let prompts = jobs::choose_prompts(&job.prompts, job.groups, &w.key, plan.window);
        let past_cutoff = || w.net.now() > cutoff;
        let mined = grail_node::blocking(|| {
            jobs::mine_job_groups(
                &model.context,
                &job.env,
                plan,
                coefficients,
                &w.key,
                &prompts,
                &past_cutoff,
            )
        });
        let groups = match mined {
            Ok(g) if !g.is_empty() => g,
            Ok(_) => continue,
            Err(e) => {
                warn!(window = plan.window, job = %id, "cannot mine the job's groups: {e}");
                continue;
            }
        };
        let count = groups.len();
        let bundle = WindowBundle {
            hotkey: w.key.public(),
            window: plan.window,
            groups,
        };
        let uploaded_now = match encode_bundle(&bundle) {
            Ok(bytes) => w
                .store
                .upload_bundle_in(plan.window, Some(&id), &w.key.public(), bytes)
                .await
                .map_err(NodeError::from),
            Err(e) => Err(e.into()),
        };
        match uploaded_now {
            Ok(_) => {
                info!(window = plan.window, job = %id, groups = count, "job lane bundle uploaded");
                uploaded += count;
            }
            Err(e) => warn!(window = plan.window, job = %id, "cannot upload the job's groups: {e}"),
        }
    }
    uploaded
}

/// `grail-miner mine`: runs the miner from its flags until `--windows` windows are done
/// or Ctrl-C.
pub async fn run_cli(args: grail_node::cli::RoleArgs) -> Result<(), NodeError> {
    let s = grail_node::cli::start_role(grail_node::Role::Miner, args).await?;
    let done = run(&s.wiring, s.env.as_ref(), s.from_window, s.windows, s.stop).await?;
    info!(windows = done.len(), "miner stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use grail_node::sim;

    #[tokio::test(start_paused = true)]
    async fn miner_waits_for_each_window_and_uploads_nothing_without_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let w = sim::wiring(dir.path(), sim::network(), 2);
        let env = grail_env::by_name("math:0", None).unwrap();
        let metrics = Arc::new(RwLock::new(MinerMetrics::default()));
        let mined = run_with_metrics(
            &w,
            env.as_ref(),
            Some(4),
            Some(3),
            Stop::never(),
            metrics.clone(),
        )
        .await
        .unwrap();
        assert!(mined.is_empty(), "{mined:?}");
        let counted = metrics.read().unwrap().clone();
        assert_eq!(
            counted,
            MinerMetrics {
                windows_skipped: 3,
                ..Default::default()
            }
        );
        // Windows 4, 8 and 12 were each waited for at their first block.
        let head = w.net.chain.block_number().await.unwrap();
        assert!((12..14).contains(&head), "head {head}");
        for window in [4, 8, 12] {
            let bundle = w
                .store
                .fetch_bundle_capped(window, &w.key.public(), None, 1 << 20)
                .await;
            assert!(bundle.is_err(), "window {window} has a bundle");
        }
        let commitments = w.net.chain.commitments().await.unwrap();
        assert!(commitments.contains_key(&w.key.public()));
    }
}
