//! The trainer loop: publish the base model as checkpoint 0, then per window read the
//! validators' sealed archives, train on accepted groups (the validator's recomputed
//! log-probs as behaviour policy), publish a signed checkpoint and announce it on chain
//! with the window from which it is in effect.

use std::collections::BTreeMap;
use std::path::PathBuf;

use grail_chain::CheckpointAnnouncement;
use grail_env::Environment;
use grail_grpo::checkpoint::export_model;
use grail_grpo::{RolloutGroup, StepReport, Trainer, TrainingRollout};
use grail_infer::{no_progress, ModelDir};
use grail_proto::archive::SealedWindow;
use grail_proto::rules::training::agreed_entries;
use grail_proto::signing::verify_group;
use grail_proto::Hotkey;
use grail_store::Store;
use serde::{Deserialize, Serialize};
use tch::Kind;
use tracing::{info, warn};

use crate::checkpoints::CheckpointId;
use crate::network::Stop;
use crate::wiring::Wiring;
use crate::{read_json, write_atomic, NodeError};

/// One published checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Number.
    pub number: u64,
    /// Manifest digest (hex).
    pub digest: String,
    /// Last window trained on.
    pub trained_through: Option<u64>,
    /// First window that must use it.
    pub effective_window: u64,
}

/// One optimizer step, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedStep {
    /// The window whose archives it used.
    pub window: u64,
    /// The report.
    pub report: StepReport,
}

/// What the trainer persists (`trainer-state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Last window read.
    pub last_window: Option<u64>,
    /// Published checkpoints, oldest first.
    pub published: Vec<Published>,
    /// Steps taken.
    pub steps: Vec<LoggedStep>,
}

const STATE_FILE: &str = "trainer-state.json";

impl TrainerState {
    /// Loads from `dir`.
    pub fn load(dir: &std::path::Path) -> Result<Self, NodeError> {
        Ok(read_json(&dir.join(STATE_FILE))?.unwrap_or_default())
    }

    fn save(&self, dir: &std::path::Path) -> Result<(), NodeError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| NodeError::Config(e.to_string()))?;
        write_atomic(&dir.join(STATE_FILE), &json)
    }
}

/// Training groups of `window` from the validators' sealed windows: groups that
/// validators holding more than half of the stake in `validators` (hotkey → stake of
/// every validator with a permit) accepted, whose signature verifies
/// (`grail_proto::rules::training::agreed_entries`), in the learning zone when
/// `in_zone_only`, with the miner's signed log-probs as behaviour policy (every accepting
/// validator checked them against its own recomputation; no single validator's numbers
/// are trusted). Entries that could not be trained on (archives come from other machines: empty, mismatched
/// log-probs, ids outside a vocabulary of `vocab` tokens) are left out rather than
/// failing the step.
pub fn training_groups(
    window: u64,
    archives: &[SealedWindow],
    validators: &BTreeMap<Hotkey, u64>,
    in_zone_only: bool,
    vocab: usize,
) -> Vec<RolloutGroup> {
    let refs: Vec<&SealedWindow> = archives.iter().collect();
    let mut out = Vec::new();
    for e in agreed_entries(window, &refs, validators, verify_group) {
        let rollouts = &e.group.rollouts;
        let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward).collect();
        if in_zone_only && !grail_proto::grpo::in_learning_zone(&rewards) {
            continue;
        }
        let Some(first) = rollouts.first() else {
            continue;
        };
        let trainable = rollouts.iter().all(|r| {
            r.prompt() == first.prompt()
                && !r.completion().is_empty()
                && r.logprobs.len() == r.completion().len()
                && r.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0)
                && r.reward.is_finite()
                && r.tokens.iter().all(|&t| (t as usize) < vocab)
        });
        if !trainable {
            continue;
        }
        out.push(RolloutGroup {
            prompt: first.prompt().to_vec(),
            rollouts: rollouts
                .iter()
                .map(|r| TrainingRollout {
                    completion: r.completion().to_vec(),
                    behaviour_logprobs: r.logprobs.clone(),
                    reward: r.reward,
                })
                .collect(),
        });
    }
    out
}

async fn announce(w: &Wiring, id: CheckpointId, effective_window: u64) -> Result<(), NodeError> {
    let a = CheckpointAnnouncement {
        number: id.number,
        digest: id.digest,
        effective_window,
    };
    let current = w.net.chain.commitments().await?;
    let wanted = a.to_commitment();
    if current.get(&w.key.public()) != Some(&wanted) {
        w.net.chain.commit(&w.key, &wanted).await?;
    }
    Ok(())
}

/// Reads the sealed archives of `window` in the validators' buckets that are not in
/// `cache` yet (keyed by validator and archive digest).
async fn sealed_archives(
    validators: &[(Hotkey, Store)],
    window: u64,
    cache: &mut BTreeMap<(Hotkey, [u8; 32]), SealedWindow>,
) -> Result<(), NodeError> {
    for (hotkey, store) in validators {
        for digest in store.list_archives(window).await? {
            if cache.contains_key(&(*hotkey, digest)) {
                continue;
            }
            match store.get_archive(window, &digest).await {
                Ok((a, _)) if a.validator == *hotkey => {
                    cache.insert((*hotkey, digest), a);
                }
                Ok(_) => warn!(
                    window,
                    "an archive in {} names another validator",
                    hotkey.to_ss58()
                ),
                Err(e) => warn!(window, "unreadable archive: {e}"),
            }
        }
    }
    Ok(())
}

/// Whether the validators that published archives hold more than half of the stake (or
/// of the validators, when no stake is set): before that, no group can have a majority.
fn majority_published(
    stakes: &BTreeMap<Hotkey, u64>,
    archives: &BTreeMap<(Hotkey, [u8; 32]), SealedWindow>,
) -> bool {
    let by_count = stakes.values().all(|&s| s == 0);
    let weight = |s: u64| if by_count { 1u128 } else { u128::from(s) };
    let total: u128 = stakes.values().map(|&s| weight(s)).sum();
    let published: std::collections::BTreeSet<&Hotkey> = archives.keys().map(|(h, _)| h).collect();
    let have: u128 = published
        .iter()
        .filter_map(|h| stakes.get(*h))
        .map(|&s| weight(s))
        .sum();
    total > 0 && 2 * have > total
}

/// Runs the trainer from `from_window` for `windows` windows (default: until stopped).
pub async fn run(
    w: &Wiring,
    _env: &dyn Environment,
    from_window: Option<u64>,
    windows: Option<u64>,
    mut stop: Stop,
) -> Result<TrainerState, NodeError> {
    let dir = w.config.state_dir.clone();
    let mut state = TrainerState::load(&dir)?;
    let me = w.key.public();
    let wl = w.net.window_length;
    // The latest checkpoint, or the base model published as checkpoint 0.
    let (mut id, model_dir): (CheckpointId, PathBuf) = match w.store.latest_checkpoint(&me).await? {
        Some(signed) => {
            let id = CheckpointId {
                number: signed.manifest.number,
                digest: signed.manifest.digest(),
            };
            (id, w.checkpoints.fetch(id).await?)
        }
        None => {
            let signed = w
                .store
                .publish_checkpoint(&w.config.model, 0, None, (0, 0), 0, &w.key)
                .await?;
            let id = CheckpointId {
                number: 0,
                digest: signed.manifest.digest(),
            };
            state.published.push(Published {
                number: 0,
                digest: hex::encode(id.digest),
                trained_through: None,
                effective_window: 0,
            });
            state.save(&dir)?;
            info!("published the base model as checkpoint 0");
            (id, w.config.model.clone())
        }
    };
    let effective = state.published.last().map_or(0, |p| p.effective_window);
    announce(w, id, effective).await?;
    let files = ModelDir::open(&model_dir)?;
    let model = files.load_model(Kind::Float, w.device, &mut no_progress)?;
    let config = w.config.trainer.grpo.clone();
    // The KL term compares against the frozen base model, not the latest checkpoint.
    let reference = if config.kl_coef > 0.0 {
        let base = ModelDir::open(&w.config.model)?;
        Some(base.load_model(Kind::Float, w.device, &mut no_progress)?)
    } else {
        None
    };
    let optimizer_dir = dir.join("optimizer");
    let resumable = optimizer_dir.join("trainer_state.json").exists()
        && state
            .published
            .last()
            .is_some_and(|p| p.number == id.number && p.number > 0);
    let mut trainer = if resumable {
        // The moments and step count come from the saved state; the coefficients from
        // the configuration, so an edited `[trainer.grpo]` takes effect on restart.
        Trainer::resume_with(model, reference, &optimizer_dir, Some(config))?
    } else {
        Trainer::new(model, reference, config)?
    };
    let mut window = match (state.last_window, from_window) {
        (Some(last), _) => last + wl,
        (None, Some(f)) => f,
        (None, None) => w.net.current_window().await?.saturating_sub(wl),
    };
    let mut first_trained: Option<u64> = None;
    let mut pending_windows = 0u64;
    let mut processed = 0u64;
    while windows.is_none_or(|n| processed < n) {
        // Archives appear shortly after the deadline; give validators up to two windows.
        if !w.net.wait_for_block(window + wl + 1, &mut stop).await? {
            break;
        }
        // Who the validators are is read once per window; their buckets are polled.
        let (metagraph, stores) = w.registered_stores(|n| n.validator_permit).await?;
        let stakes: BTreeMap<Hotkey, u64> = metagraph
            .neurons
            .iter()
            .filter(|n| n.validator_permit)
            .map(|n| (n.hotkey, n.stake))
            .collect();
        let validators: Vec<(Hotkey, Store)> = stores
            .into_iter()
            .map(|(n, store)| (n.hotkey, store))
            .collect();
        // Wait until validators holding a stake majority have sealed the window (or two
        // windows have passed): earlier, no group can have a majority's agreement.
        let mut cache = BTreeMap::new();
        let archives: Vec<SealedWindow> = loop {
            sealed_archives(&validators, window, &mut cache).await?;
            let head = w.net.chain.block_number().await?;
            if majority_published(&stakes, &cache) || head > window + 3 * wl {
                break cache.into_values().collect();
            }
            if stop.sleep(std::time::Duration::from_millis(500)).await {
                return Ok(state);
            }
        };
        let vocab = trainer.model().config().vocab_size;
        let groups = training_groups(
            window,
            &archives,
            &stakes,
            w.config.trainer.in_zone_only,
            vocab,
        );
        let mut updated = false;
        if !groups.is_empty() {
            for _ in 0..w.config.trainer.steps_per_window.max(1) {
                let report = match tokio::task::block_in_place(|| trainer.step(&groups)) {
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
                state.steps.push(LoggedStep { window, report });
            }
        } else {
            info!(
                window,
                archives = archives.len(),
                "no trainable groups in the window"
            );
        }
        if updated {
            first_trained.get_or_insert(window);
            pending_windows += 1;
        }
        if pending_windows >= w.config.trainer.publish_every.max(1) && !stop.requested() {
            let number = id.number + 1;
            let out = dir.join("exports").join(format!("ckpt-{number:06}"));
            export_model(trainer.model(), &files, &out)?;
            // In effect from the first window that starts at least a whole window from now,
            // so the announcement reaches every miner before that window begins.
            let head = w.net.chain.block_number().await?;
            let effective = w.net.window_of(head + wl) + wl;
            let signed = w
                .store
                .publish_checkpoint(
                    &out,
                    number,
                    Some(id.number),
                    (first_trained.unwrap_or(window), window),
                    effective,
                    &w.key,
                )
                .await?;
            id = CheckpointId {
                number,
                digest: signed.manifest.digest(),
            };
            announce(w, id, effective).await?;
            trainer.save_state(&optimizer_dir)?;
            state.published.push(Published {
                number,
                digest: hex::encode(id.digest),
                trained_through: Some(window),
                effective_window: effective,
            });
            info!(
                window,
                checkpoint = number,
                effective,
                "checkpoint published"
            );
            // Keep every checkpoint not yet in effect, the one in effect now and the
            // `keep_checkpoints − 1` before it: validators behind by a few windows still
            // find the checkpoint of the window they check.
            let now = w.net.current_window().await?;
            let effective: Vec<u64> = state
                .published
                .iter()
                .filter(|p| p.effective_window <= now)
                .map(|p| p.number)
                .collect();
            let keep = w.config.trainer.keep_checkpoints.max(1);
            if let Some(&first_kept) = effective.iter().rev().nth(keep - 1) {
                w.store.prune_checkpoints_before(first_kept).await?;
            }
            pending_windows = 0;
            first_trained = None;
        }
        state.last_window = Some(window);
        state.save(&dir)?;
        processed += 1;
        window += wl;
    }
    Ok(state)
}
