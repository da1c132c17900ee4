//! Checkpoints: files, a manifest signed by the trainer's hotkey, and a `latest` pointer
//! written last, so readers never see a half-published checkpoint and never load files
//! the trainer did not sign.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use grail_proto::signing::{verify, Keypair};
use grail_proto::{Hotkey, Signature};
use serde::{Deserialize, Serialize};

use crate::{layout, sha256, Store, StoreError};

/// One file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a checkpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointManifest {
    /// Checkpoint number (increasing).
    pub number: u64,
    /// The checkpoint it was trained from.
    pub parent: Option<u64>,
    /// First and last window whose archives trained it.
    pub windows: (u64, u64),
    /// First window whose rollouts must be made with it (earlier ones use the parent).
    pub effective_window: u64,
    /// Every file by name.
    pub files: BTreeMap<String, FileEntry>,
    /// The trainer's hotkey (hex).
    pub trainer: String,
}

/// A manifest with the trainer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: CheckpointManifest,
    /// sr25519 signature of [`CheckpointManifest::digest`], hex.
    pub signature: String,
}

#[derive(Serialize, Deserialize)]
struct LatestPointer {
    number: u64,
    manifest_sha256: String,
}

/// Largest manifest or pointer read.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

impl CheckpointManifest {
    /// The checkpoint identity: SHA-256 over a domain tag and the manifest's canonical JSON
    /// (fields in declaration order, files sorted by name). Rollouts bind this value.
    pub fn digest(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).unwrap_or_default();
        sha256(&[b"grail-rs/checkpoint/v1\0".as_slice(), &json].concat())
    }

    /// Signs the manifest with the trainer's key (which must be `trainer`).
    pub fn sign(self, key: &Keypair) -> Result<SignedManifest, StoreError> {
        let signer = hex::encode(key.public().0);
        if self.trainer != signer {
            return Err(StoreError::WrongSigner {
                number: self.number,
                trainer: self.trainer,
                signer,
            });
        }
        let signature = hex::encode(key.sign(&self.digest()).0);
        Ok(SignedManifest {
            manifest: self,
            signature,
        })
    }
}

impl SignedManifest {
    /// Checks that `trusted` signed it and that it is well formed.
    pub fn verify(&self, trusted: &Hotkey) -> Result<(), StoreError> {
        let m = &self.manifest;
        let trusted_hex = hex::encode(trusted.0);
        if m.trainer != trusted_hex {
            return Err(StoreError::UntrustedTrainer {
                number: m.number,
                trainer: m.trainer.clone(),
                trusted: trusted_hex,
            });
        }
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(StoreError::MalformedSignature { number: m.number })?;
        if !verify(trusted, &m.digest(), &Signature(sig)) {
            return Err(StoreError::BadSignature { number: m.number });
        }
        if let Some(bad) = m
            .files
            .keys()
            .find(|n| !layout::valid_file_name(n) || n.as_str() == "manifest.json")
        {
            return Err(StoreError::BadFileName { name: bad.clone() });
        }
        Ok(())
    }
}

impl Store {
    /// Publishes the files of `dir` (one level, regular files) as checkpoint `number`, in
    /// effect from `effective_window`: files, then the signed manifest, then the `latest`
    /// pointer.
    pub async fn publish_checkpoint(
        &self,
        dir: &Path,
        number: u64,
        parent: Option<u64>,
        windows: (u64, u64),
        effective_window: u64,
        key: &Keypair,
    ) -> Result<SignedManifest, StoreError> {
        let mut files = BTreeMap::new();
        // A directory entry that cannot be read is an error, not a file silently left out
        // of the signed checkpoint.
        let listing = |e| StoreError::io(format!("listing {}", dir.display()), e);
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(listing)? {
            let entry = entry.map_err(listing)?;
            let kind = entry
                .file_type()
                .map_err(|e| StoreError::io(format!("inspecting {}", entry.path().display()), e))?;
            if kind.is_file() {
                entries.push(entry);
            }
        }
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !layout::valid_file_name(&name) || name == "manifest.json" {
                return Err(StoreError::BadFileName { name });
            }
            let bytes = tokio::fs::read(entry.path())
                .await
                .map_err(|e| StoreError::io(format!("reading {}", entry.path().display()), e))?;
            files.insert(
                name.clone(),
                FileEntry {
                    sha256: hex::encode(sha256(&bytes)),
                    size: bytes.len() as u64,
                },
            );
            self.put(&layout::checkpoint_file(number, &name), Bytes::from(bytes))
                .await?;
        }
        let manifest = CheckpointManifest {
            number,
            parent,
            windows,
            effective_window,
            files,
            trainer: hex::encode(key.public().0),
        };
        let signed = manifest.sign(key)?;
        let manifest_bytes =
            serde_json::to_vec_pretty(&signed).map_err(|source| StoreError::Serialize {
                what: "checkpoint manifest",
                source,
            })?;
        let pointer = LatestPointer {
            number,
            manifest_sha256: hex::encode(sha256(&manifest_bytes)),
        };
        self.put(
            &layout::checkpoint_manifest(number),
            Bytes::from(manifest_bytes),
        )
        .await?;
        let pointer = serde_json::to_vec(&pointer).map_err(|source| StoreError::Serialize {
            what: "latest checkpoint pointer",
            source,
        })?;
        self.put(layout::LATEST_CHECKPOINT, Bytes::from(pointer))
            .await?;
        Ok(signed)
    }

    /// The newest published checkpoint's manifest, verified against `trusted`; `None`
    /// when nothing is published.
    pub async fn latest_checkpoint(
        &self,
        trusted: &Hotkey,
    ) -> Result<Option<SignedManifest>, StoreError> {
        let pointer = match self
            .get_capped(layout::LATEST_CHECKPOINT, MAX_MANIFEST_BYTES)
            .await
        {
            Ok(p) => p,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let pointer: LatestPointer =
            serde_json::from_slice(&pointer.bytes).map_err(|source| StoreError::ManifestJson {
                key: layout::LATEST_CHECKPOINT.to_string(),
                source,
            })?;
        let key = layout::checkpoint_manifest(pointer.number);
        let fetched = self.get_capped(&key, MAX_MANIFEST_BYTES).await?;
        let actual = hex::encode(fetched.sha256);
        if actual != pointer.manifest_sha256 {
            return Err(StoreError::HashMismatch {
                key,
                expected: pointer.manifest_sha256,
                actual,
            });
        }
        let signed: SignedManifest =
            serde_json::from_slice(&fetched.bytes).map_err(|source| StoreError::ManifestJson {
                key: key.clone(),
                source,
            })?;
        if signed.manifest.number != pointer.number {
            return Err(StoreError::WrongCheckpoint {
                key,
                expected: pointer.number,
                found: signed.manifest.number,
            });
        }
        signed.verify(trusted)?;
        Ok(Some(signed))
    }

    /// The manifest of checkpoint `number`, verified against `trusted`.
    pub async fn checkpoint_manifest(
        &self,
        number: u64,
        trusted: &Hotkey,
    ) -> Result<SignedManifest, StoreError> {
        let key = layout::checkpoint_manifest(number);
        let fetched = self.get_capped(&key, MAX_MANIFEST_BYTES).await?;
        let signed: SignedManifest =
            serde_json::from_slice(&fetched.bytes).map_err(|source| StoreError::ManifestJson {
                key: key.clone(),
                source,
            })?;
        if signed.manifest.number != number {
            return Err(StoreError::WrongCheckpoint {
                key,
                expected: number,
                found: signed.manifest.number,
            });
        }
        signed.verify(trusted)?;
        Ok(signed)
    }

    /// Downloads a verified checkpoint into `dest` (replaced atomically and durably through
    /// a [`grail_fs::StagedDir`]): every file is size-capped by the manifest and checked
    /// against its SHA-256.
    pub async fn download_checkpoint(
        &self,
        signed: &SignedManifest,
        trusted: &Hotkey,
        dest: &Path,
    ) -> Result<(), StoreError> {
        signed.verify(trusted)?;
        let m = &signed.manifest;
        let staging_error = |e| {
            StoreError::io(
                format!("creating a staging folder for {}", dest.display()),
                e,
            )
        };
        // Removed again (blocking, but only on failure) if it is never committed.
        let staged = grail_fs::StagedDir::new(dest).map_err(staging_error)?;
        for (file, entry) in &m.files {
            let key = layout::checkpoint_file(m.number, file);
            let fetched = self.get_capped(&key, entry.size).await?;
            let actual = hex::encode(fetched.sha256);
            if actual != entry.sha256 {
                return Err(StoreError::HashMismatch {
                    key,
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
            let out = staged.path().join(file);
            tokio::fs::write(&out, &fetched.bytes)
                .await
                .map_err(|e| StoreError::io(format!("writing {}", out.display()), e))?;
        }
        // fsync of every file and the swap: blocking work, off the async threads.
        let context = format!("replacing {}", dest.display());
        tokio::task::spawn_blocking(move || staged.commit())
            .await
            .map_err(|source| StoreError::Task {
                context: context.clone(),
                source,
            })?
            .map_err(|e| StoreError::io(context, e))
    }

    /// Retention: keeps the newest `keep` checkpoints (and the one `latest` names).
    pub async fn prune_checkpoints(&self, keep: usize) -> Result<usize, StoreError> {
        let numbers = self.checkpoint_numbers().await?;
        let cut = numbers.len().saturating_sub(keep.max(1));
        match numbers.get(cut) {
            Some(&first_kept) => self.prune_checkpoints_before(first_kept).await,
            None => Ok(0),
        }
    }

    /// Checkpoint numbers present, ascending.
    pub async fn checkpoint_numbers(&self) -> Result<Vec<u64>, StoreError> {
        let mut numbers: Vec<u64> = self
            .list("checkpoints/")
            .await?
            .iter()
            .filter_map(|m| layout::checkpoint_of(m.location.as_ref()))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }

    /// Retention: deletes every checkpoint numbered below `first_kept`; returns how many
    /// objects went.
    pub async fn prune_checkpoints_before(&self, first_kept: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for meta in self.list("checkpoints/").await? {
            if layout::checkpoint_of(meta.location.as_ref()).is_some_and(|n| n < first_kept) {
                self.delete(meta.location.as_ref()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
