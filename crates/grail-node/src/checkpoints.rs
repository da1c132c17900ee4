//! Which checkpoint a window uses, and getting it: the trainer announces
//! `(number, digest, effective window)` on chain; earlier windows use the parent. Files
//! come from the trainer's bucket and are accepted only under a manifest the trainer's
//! hotkey signed whose digest is the announced one.

use std::path::{Path, PathBuf};

use grail_chain::{Chain, CheckpointAnnouncement};
use grail_proto::Hotkey;
use grail_store::Store;
use tch::Device;

use crate::context::ModelContext;
use crate::NodeError;

/// A checkpoint's number and identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointId {
    /// Number.
    pub number: u64,
    /// Identity (signed-manifest digest), bound into every group.
    pub digest: [u8; 32],
}

/// The trainer's checkpoints, as a reader sees them.
#[derive(Clone)]
pub struct CheckpointSource {
    /// The trainer's bucket.
    pub store: Store,
    /// The trainer's hotkey.
    pub trainer: Hotkey,
    /// Local cache of downloaded checkpoints.
    pub cache: PathBuf,
    /// A local copy of the base model: used in place of a download when its files are
    /// exactly those a checkpoint's manifest lists (same names, sizes and SHA-256).
    pub base: Option<PathBuf>,
}

/// Whether `dir` holds exactly the files of `manifest` (names, sizes, SHA-256).
fn matches_manifest(dir: &Path, manifest: &grail_store::CheckpointManifest) -> bool {
    manifest.files.iter().all(|(name, entry)| {
        let path = dir.join(name);
        std::fs::metadata(&path).is_ok_and(|m| m.len() == entry.size)
            && std::fs::read(&path)
                .is_ok_and(|b| hex::encode(grail_store::sha256(&b)) == entry.sha256)
    })
}

impl CheckpointSource {
    /// The trainer's current announcement, if any.
    pub async fn announcement(
        &self,
        chain: &dyn Chain,
    ) -> Result<Option<CheckpointAnnouncement>, NodeError> {
        let commitments = chain.commitments().await?;
        Ok(commitments
            .get(&self.trainer)
            .and_then(|c| CheckpointAnnouncement::parse(c).ok()))
    }

    /// The checkpoint rollouts of `window` must be made with (`None` before the trainer
    /// announced any).
    pub async fn in_effect(
        &self,
        chain: &dyn Chain,
        window: u64,
    ) -> Result<Option<CheckpointId>, NodeError> {
        let Some(a) = self.announcement(chain).await? else {
            return Ok(None);
        };
        if a.effective_window <= window {
            return Ok(Some(CheckpointId {
                number: a.number,
                digest: a.digest,
            }));
        }
        // Walk back through the parents to the one in effect for `window`.
        let mut manifest = self
            .store
            .checkpoint_manifest(a.number, &self.trainer)
            .await?;
        if manifest.manifest.digest() != a.digest {
            return Err(NodeError::CheckpointMismatch { number: a.number });
        }
        while manifest.manifest.effective_window > window {
            let Some(parent) = manifest.manifest.parent else {
                return Ok(None);
            };
            manifest = self
                .store
                .checkpoint_manifest(parent, &self.trainer)
                .await?;
        }
        Ok(Some(CheckpointId {
            number: manifest.manifest.number,
            digest: manifest.manifest.digest(),
        }))
    }

    /// The folder of checkpoint `id`, downloaded (and verified) when not cached.
    pub async fn fetch(&self, id: CheckpointId) -> Result<PathBuf, NodeError> {
        let dir = self.cache.join(format!(
            "ckpt-{:06}-{}",
            id.number,
            hex::encode(&id.digest[..6])
        ));
        if dir.join("config.json").exists() {
            return Ok(dir);
        }
        let signed = self
            .store
            .checkpoint_manifest(id.number, &self.trainer)
            .await?;
        if signed.manifest.digest() != id.digest {
            return Err(NodeError::CheckpointMismatch { number: id.number });
        }
        // The base model is checkpoint 0; later checkpoints are always downloaded.
        if let Some(base) = self
            .base
            .as_ref()
            .filter(|b| id.number == 0 && matches_manifest(b, &signed.manifest))
        {
            return Ok(base.clone());
        }
        let bytes: u64 = signed.manifest.files.values().map(|f| f.size).sum();
        let mb = bytes as f64 / 1e6;
        tracing::info!(
            checkpoint = id.number,
            files = signed.manifest.files.len(),
            mb = format!("{mb:.1}"),
            "downloading checkpoint"
        );
        let started = std::time::Instant::now();
        self.store
            .download_checkpoint(&signed, &self.trainer, &dir)
            .await?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            checkpoint = id.number,
            seconds = format!("{secs:.1}"),
            mb_per_s = format!("{:.1}", mb / secs.max(1e-3)),
            "checkpoint downloaded and verified"
        );
        Ok(dir)
    }
}

/// The model in use and the checkpoint it came from.
pub struct CurrentModel {
    /// Its checkpoint.
    pub id: CheckpointId,
    /// The loaded model.
    pub context: ModelContext,
}

impl CurrentModel {
    /// Makes sure the model of `id` is loaded (downloading it if needed); returns whether
    /// it changed.
    pub async fn ensure(
        current: &mut Option<CurrentModel>,
        source: &CheckpointSource,
        id: CheckpointId,
        device: Device,
    ) -> Result<bool, NodeError> {
        if current.as_ref().is_some_and(|c| c.id == id) {
            return Ok(false);
        }
        let dir = source.fetch(id).await?;
        let context = load_blocking(&dir, device).await?;
        *current = Some(CurrentModel { id, context });
        Ok(true)
    }
}

/// Loads a model without blocking the async runtime (progress as
/// [`crate::progress::ProgressLine::log`] shows it).
pub async fn load_blocking(dir: &Path, device: Device) -> Result<ModelContext, NodeError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut line = crate::progress::ProgressLine::log();
        ModelContext::load_with_progress(&dir, device, &mut |p| line.update(p))
    })
    .await?
}
