//! Publishing checkpoints: export, upload, announce on chain, prune old ones.

use std::path::Path;

use grail_chain::{Chain, CheckpointAnnouncement};
use grail_grpo::checkpoint::export_model;
use grail_grpo::Trainer;
use grail_infer::ModelDir;
use grail_proto::signing::Keypair;
use grail_store::Store;
use tracing::info;

use super::{Published, TrainerState};
use grail_node::checkpoints::CheckpointId;
use grail_node::network::Network;
use grail_node::NodeError;

/// What publishing checkpoints needs: the trainer's hotkey (signs manifests and
/// announcements), the chain (announcements, the current window), its own bucket (where
/// checkpoints go), its state directory (exports and optimizer states) and the retention
/// setting.
#[derive(Clone, Copy)]
pub struct Publisher<'a> {
    /// The trainer's hotkey.
    pub key: &'a Keypair,
    /// Chain and beacon.
    pub net: &'a Network,
    /// The trainer's bucket.
    pub store: &'a Store,
    /// The trainer's state directory.
    pub state_dir: &'a Path,
    /// `trainer.keep_checkpoints`.
    pub keep_checkpoints: usize,
}

/// Announces `id` on chain (in effect from `effective_window`) unless the trainer's
/// commitment already says so.
///
/// # Errors
/// The chain cannot be read or written.
pub async fn announce(
    key: &Keypair,
    chain: &dyn Chain,
    id: CheckpointId,
    effective_window: u64,
) -> Result<(), NodeError> {
    let a = CheckpointAnnouncement {
        number: id.number,
        digest: id.digest,
        effective_window,
    };
    let current = chain.commitments().await?;
    let wanted = a.to_commitment();
    if current.get(&key.public()) != Some(&wanted) {
        chain.commit(key, &wanted).await?;
    }
    Ok(())
}

/// What was trained since the last checkpoint.
pub struct Trained {
    /// First window trained on.
    pub first: u64,
    /// Last window trained on.
    pub last: u64,
}

/// Exports the trainer's model as the checkpoint after `previous`, saves the optimizer
/// state that belongs to it, uploads it, announces it in effect from the first window
/// that starts at least a whole window from now (so the announcement reaches every miner
/// before it begins), records it in `state` and prunes checkpoints no node needs any more.
/// A trainer killed at any point restarts consistently: before the upload it resumes from
/// `previous`; after it, from the new checkpoint (whose record is recovered from its
/// manifest).
///
/// # Errors
/// Export, upload, chain or file failures.
pub async fn publish_next(
    p: &Publisher<'_>,
    trainer: &Trainer,
    files: &ModelDir,
    previous: CheckpointId,
    trained: Trained,
    state: &mut TrainerState,
) -> Result<CheckpointId, NodeError> {
    let dir = p.state_dir;
    let number = previous.number + 1;
    let out = dir.join("exports").join(format!("ckpt-{number:06}"));
    export_model(trainer.model(), files, &out)?;
    trainer.save_state(&super::optimizer_dir(dir, number))?;
    let wl = p.net.window_length;
    let head = p.net.chain.block_number().await?;
    let effective = p.net.window_of(head + wl) + wl;
    let signed = p
        .store
        .publish_checkpoint(
            &out,
            number,
            Some(previous.number),
            (trained.first, trained.last),
            effective,
            p.key,
        )
        .await?;
    let id = CheckpointId {
        number,
        digest: signed.manifest.digest(),
    };
    announce(p.key, p.net.chain.as_ref(), id, effective).await?;
    state.published.push(Published {
        number,
        digest: hex::encode(id.digest),
        trained_through: Some(trained.last),
        effective_window: effective,
    });
    info!(
        window = trained.last,
        checkpoint = number,
        effective,
        "checkpoint published"
    );
    prune(p, state).await?;
    prune_optimizer_states(dir, number);
    Ok(id)
}

/// Removes the optimizer states of checkpoints before `latest` (each is twice the
/// model's size); a failure is logged, never fatal.
fn prune_optimizer_states(state_dir: &Path, latest: u64) {
    let Ok(entries) = std::fs::read_dir(state_dir.join("optimizer")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("ckpt-"))
            .and_then(|n| n.parse::<u64>().ok());
        if number.is_some_and(|n| n < latest) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!("cannot remove the old optimizer state {name:?}: {e}");
            }
        }
    }
}

/// Keeps every checkpoint not yet in effect, the one in effect now and the
/// `keep_checkpoints − 1` before it: validators behind by a few windows still find the
/// checkpoint of the window they check. The local exports of the checkpoints removed
/// from the bucket go too.
async fn prune(p: &Publisher<'_>, state: &TrainerState) -> Result<(), NodeError> {
    let now = p.net.current_window().await?;
    let effective: Vec<u64> = state
        .published
        .iter()
        .filter(|p| p.effective_window <= now)
        .map(|p| p.number)
        .collect();
    let keep = p.keep_checkpoints.max(1);
    if let Some(&first_kept) = effective.iter().rev().nth(keep - 1) {
        p.store.prune_checkpoints_before(first_kept).await?;
        let exports = p.state_dir.join("exports");
        match prune_exports(&exports, first_kept) {
            Ok(0) => {}
            Ok(n) => info!(removed = n, first_kept, "removed old local exports"),
            Err(e) => tracing::warn!("cannot prune {}: {e}", exports.display()),
        }
    }
    Ok(())
}

/// Deletes the exported checkpoint folders `ckpt-NNNNNN` in `exports` numbered below
/// `first_kept` (other entries are left alone); returns how many went.
///
/// # Errors
/// The folder cannot be listed or a checkpoint folder cannot be removed.
pub fn prune_exports(exports: &Path, first_kept: u64) -> Result<usize, NodeError> {
    let entries = match std::fs::read_dir(exports) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(NodeError::io(format!("listing {}", exports.display()), e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry =
            entry.map_err(|e| NodeError::io(format!("listing {}", exports.display()), e))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("ckpt-"))
            .and_then(|n| n.parse::<u64>().ok());
        if number.is_some_and(|n| n < first_kept) && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| NodeError::io(format!("removing {}", entry.path().display()), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_local_exports_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let exports = dir.path().join("exports");
        assert_eq!(prune_exports(&exports, 5).unwrap(), 0, "no folder yet");
        for n in 1..=4u64 {
            let d = exports.join(format!("ckpt-{n:06}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("config.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(exports.join("notes")).unwrap();
        std::fs::write(exports.join("ckpt-000000"), "a file, not a checkpoint").unwrap();
        assert_eq!(prune_exports(&exports, 3).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(&exports)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["ckpt-000000", "ckpt-000003", "ckpt-000004", "notes"]);
    }
}
