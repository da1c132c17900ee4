//! grail-train: the trainer role. The trainer loop: publish the base model as checkpoint 0, then per window read the
//! validators' sealed archives, train on the groups a stake majority accepted (the
//! miners' signed log-probs as behaviour policy), publish a signed checkpoint and
//! announce it on chain with the window from which it is in effect.
//!
//! - [`state`]: what is persisted;
//! - [`archives`]: reading a window's sealed archives from the validators' buckets;
//! - [`groups`]: which archived groups are trained on;
//! - [`reverify`]: the copy rule and the re-verification of the validators' evidence;
//! - [`publish`]: export, upload, announcement and pruning of checkpoints;
//! - [`export`]: `grail-trainer export`, sealed windows as a Parquet dataset;
//! - [`metrics`]: what `[trainer] http` serves.

pub mod archives;
pub mod export;
pub mod groups;
pub mod metrics;
pub mod publish;
pub mod reverify;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use grail_env::Environment;
use grail_grpo::{GrpoConfig, Trainer};
use grail_infer::ModelDir;
use tch::{Device, Kind};
use tracing::{info, warn};

pub use groups::{trainable_groups, training_groups};
pub use metrics::TrainerMetrics;
pub use state::{LoggedStep, Published, TrainerState};

use grail_node::checkpoints::{CheckpointId, CheckpointSource};
use grail_node::cursor::{Readiness, WindowCursor};
use grail_node::network::Stop;
use grail_node::wiring::Wiring;
use grail_node::NodeError;
use publish::{announce, publish_next, Publisher, Trained};
use reverify::Screening;

/// The optimizer state (moments, step count) that belongs to checkpoint `number`: saved
/// before the checkpoint is published, so a restart resumes exactly where that
/// checkpoint left off.
fn optimizer_dir(state_dir: &Path, number: u64) -> PathBuf {
    state_dir
        .join("optimizer")
        .join(format!("ckpt-{number:06}"))
}

/// Runs the trainer from `from_window` for `windows` windows (default: until stopped).
pub async fn run(
    w: &Wiring,
    _env: &dyn Environment,
    from_window: Option<u64>,
    windows: Option<u64>,
    mut stop: Stop,
) -> Result<TrainerState, NodeError> {
    let settings = &w.config.trainer;
    let dir = w.config.state_dir.as_path();
    let local = w.config.is_local_network();
    let publisher = Publisher {
        key: &w.key,
        net: &w.net,
        store: &w.store,
        state_dir: dir,
        keep_checkpoints: settings.keep_checkpoints,
    };
    let screening = Screening {
        net: &w.net,
        checkpoints: &w.checkpoints,
        device: w.device,
        per_archive: settings.reverify_entries,
    };
    let mut state = TrainerState::load(dir)?;
    let (mut id, files) =
        latest_checkpoint(&publisher, &w.checkpoints, &w.config.model, &mut state).await?;
    let metrics = Arc::new(RwLock::new(TrainerMetrics {
        checkpoint: Some(id.number),
        last_window: state.last_window,
        ..Default::default()
    }));
    grail_node::metrics::start(
        &settings.http,
        dir,
        TrainerMetrics::render_shared(metrics.clone()),
    )
    .await?;
    let mut trainer = start_trainer(&files, id, w.device, &settings.grpo, &w.config.model, dir)?;
    let mut cursor = WindowCursor::start(
        &w.net,
        state.last_window,
        from_window,
        Readiness::Sealed,
        windows,
    )
    .await?;
    let mut trained: Option<Trained> = None;
    let mut liveness =
        archives::Liveness::new(settings.liveness_windows, settings.min_active_stake_share);
    let mut pending_windows = 0u64;
    let mut reverify_model = None;
    while let Some(window) = cursor.next(&w.net, &mut stop).await? {
        let Some((mut archives, validators)) =
            archives::window_archives(&w.net, local, settings, window, &mut stop).await?
        else {
            return Ok(state);
        };
        // Copies are no votes; a validator caught with wrong evidence loses the window.
        // Entries are drawn among what the live voters would agree on with every archive.
        let would_vote = liveness
            .clone()
            .voters(window, w.net.window_length, &archives);
        let caught = reverify::screen_window(
            &screening,
            window,
            (&validators, &would_vote),
            &mut archives,
            &state.published,
            &mut reverify_model,
        )
        .await;
        if let Ok(mut m) = metrics.write() {
            m.evidence_failures += caught.len() as u64;
        }
        let vocab = trainer.model().config().vocab_size;
        let voters = liveness.voters(window, w.net.window_length, &archives);
        if voters.len() < archives.stakes.len() {
            info!(
                window,
                voters = voters.len(),
                validators = archives.stakes.len(),
                "validators silent for trainer.liveness_windows windows do not count"
            );
        }
        let agreed = archives.agreed(&voters);
        let entries = archives::agreed_entries(&validators, window, &archives, &agreed).await;
        let groups = trainable_groups(
            &entries,
            &archives.credits(window, &voters),
            settings.in_zone_only,
            vocab,
        );
        if groups.is_empty() {
            info!(
                window,
                archives = archives.read.len(),
                "no trainable groups in the window"
            );
        } else if train_window(
            settings.steps_per_window,
            &mut trainer,
            window,
            &groups,
            &mut state,
            &metrics,
        ) {
            let t = trained.get_or_insert(Trained {
                first: window,
                last: window,
            });
            t.last = window;
            pending_windows += 1;
        }
        if pending_windows >= settings.publish_every.max(1) && !stop.requested() {
            let t = trained.take().unwrap_or(Trained {
                first: window,
                last: window,
            });
            id = publish_next(&publisher, &trainer, &files, id, t, &mut state).await?;
            if let Ok(mut m) = metrics.write() {
                m.published(id.number);
            }
            pending_windows = 0;
        }
        state.last_window = Some(window);
        if let Some(first) = w.net.first_kept(window, settings.retention_windows) {
            state.prune_before(first, settings.keep_checkpoints.max(1));
        }
        state.save(dir)?;
        if let Ok(mut m) = metrics.write() {
            m.last_window = Some(window);
        }
        cursor.advance();
    }
    Ok(state)
}

/// `steps_per_window` optimizer steps on `groups` (at least one); true when at least one
/// changed the weights. A failed step is logged and ends the window's training (the next
/// window tries again).
fn train_window(
    steps_per_window: usize,
    trainer: &mut Trainer,
    window: u64,
    groups: &[grail_grpo::RolloutGroup],
    state: &mut TrainerState,
    metrics: &RwLock<TrainerMetrics>,
) -> bool {
    let mut updated = false;
    for _ in 0..steps_per_window.max(1) {
        let report = match grail_node::blocking(|| trainer.step(groups)) {
            Ok(r) => r,
            Err(e) => {
                warn!(window, "training step failed: {e}");
                break;
            }
        };
        info!(
            window,
            loss = report.loss,
            reward = report.mean_reward,
            skipped = report.skipped.as_deref().unwrap_or("no"),
            "training step"
        );
        updated |= report.skipped.is_none();
        if let Ok(mut m) = metrics.write() {
            m.step(&report);
        }
        state.steps.push(LoggedStep { window, report });
    }
    updated
}

/// The checkpoint to continue from: the one announced on chain (a checkpoint uploaded but
/// never announced — the trainer was killed in between — was never in effect, so it is
/// trained again and replaced), or the base model published and announced as checkpoint
/// 0. When the state lacks the announced checkpoint's record (killed after announcing,
/// before saving), the record is recovered from its manifest, so the windows it was
/// trained on are not trained on again. `checkpoints` reads this trainer's own
/// announcement and checkpoints back; `base` is the base model.
async fn latest_checkpoint(
    p: &Publisher<'_>,
    checkpoints: &CheckpointSource,
    base: &Path,
    state: &mut TrainerState,
) -> Result<(CheckpointId, ModelDir), NodeError> {
    let me = p.key.public();
    if checkpoints.trainer != me {
        return Err(NodeError::Config(format!(
            "trainer_hotkey is {}, but this trainer's hotkey is {}",
            checkpoints.trainer.to_ss58(),
            me.to_ss58()
        )));
    }
    let announced = checkpoints.announcement(p.net.chain.as_ref()).await?;
    let (id, model_dir) = match announced {
        Some(a) => {
            let signed = p.store.checkpoint_manifest(a.number, &me).await?;
            let m = &signed.manifest;
            if m.digest() != a.digest {
                return Err(NodeError::CheckpointMismatch { number: a.number });
            }
            let id = CheckpointId {
                number: a.number,
                digest: a.digest,
            };
            if !state.published.iter().any(|p| p.number == a.number) {
                warn!(
                    checkpoint = a.number,
                    "recovering the record of a checkpoint announced before a restart"
                );
                let trained = (m.number > 0).then_some(m.windows.1);
                state.published.push(Published {
                    number: a.number,
                    digest: hex::encode(a.digest),
                    trained_through: trained,
                    effective_window: a.effective_window,
                });
                if let Some(last) = trained {
                    state.last_window = Some(state.last_window.map_or(last, |l| l.max(last)));
                }
                state.save(p.state_dir)?;
            }
            (id, checkpoints.fetch(id).await?)
        }
        None => {
            let signed = p
                .store
                .publish_checkpoint(base, 0, None, (0, 0), 0, p.key)
                .await?;
            let id = CheckpointId {
                number: 0,
                digest: signed.manifest.digest(),
            };
            state.published.retain(|p| p.number != 0);
            state.published.push(Published {
                number: 0,
                digest: hex::encode(id.digest),
                trained_through: None,
                effective_window: 0,
            });
            state.save(p.state_dir)?;
            info!("published the base model as checkpoint 0");
            (id, base.to_path_buf())
        }
    };
    let effective = state
        .published
        .iter()
        .find(|p| p.number == id.number)
        .map_or(0, |p| p.effective_window);
    announce(p.key, p.net.chain.as_ref(), id, effective).await?;
    Ok((id, ModelDir::open(&model_dir)?))
}

/// The trainer for checkpoint `id`: resumed (moments and step count) from the optimizer
/// state saved with it, else fresh. The coefficients always come from the configuration,
/// so an edited `[trainer.grpo]` (`grpo`) takes effect on restart. With a KL term the
/// frozen base model `base` (not the latest checkpoint) is the reference. Models load on
/// `device`; the optimizer state is looked up under `state_dir`.
fn start_trainer(
    files: &ModelDir,
    id: CheckpointId,
    device: Device,
    grpo: &GrpoConfig,
    base: &Path,
    state_dir: &Path,
) -> Result<Trainer, NodeError> {
    let mut line = grail_node::progress::ProgressLine::log();
    let model = files.load_model(Kind::Float, device, &mut |p| line.update(p))?;
    let config = grpo.clone();
    let reference = if config.kl_coef > 0.0 {
        let base = ModelDir::open(base)?;
        Some(base.load_model(Kind::Float, device, &mut |p| line.update(p))?)
    } else {
        None
    };
    let optimizer_dir = optimizer_dir(state_dir, id.number);
    let resumable = id.number > 0 && optimizer_dir.join("trainer_state.json").exists();
    Ok(if resumable {
        Trainer::resume_with(model, reference, &optimizer_dir, Some(config))?
    } else {
        Trainer::new(model, reference, config)?
    })
}

/// `grail-trainer train`: runs the trainer from its flags until `--windows` windows are
/// done or Ctrl-C.
pub async fn run_cli(args: grail_node::cli::RoleArgs) -> Result<(), NodeError> {
    let s = grail_node::cli::start_role(grail_node::Role::Trainer, args).await?;
    let state = run(&s.wiring, s.env.as_ref(), s.from_window, s.windows, s.stop).await?;
    info!(checkpoints = state.published.len(), "trainer stopped");
    Ok(())
}
