//! The store: atomic uploads, capped downloads, hashes, deadlines and retention, and the
//! typed operations on bundles and archives.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use grail_proto::archive::{decode_archive, encode_archive, SealedWindow};
use grail_proto::params::{MAX_ARCHIVE_BYTES, MAX_BUNDLE_BYTES};
use grail_proto::Hotkey;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::{layout, sha256, StoreError};

/// Objects larger than this go up in parts (each part this size; S3's minimum is 5 MiB).
pub const MULTIPART_PART_BYTES: usize = 8 * 1024 * 1024;

/// Bytes read from the store with what the store said about them.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes.
    pub bytes: Bytes,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
    /// When the store received them.
    pub last_modified: DateTime<Utc>,
}

/// One archive object in a bucket, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveObject {
    /// SHA-256 of the archive bytes (its name).
    pub digest: [u8; 32],
    /// Size in bytes.
    pub size: u64,
    /// When the store last wrote it.
    pub last_modified: DateTime<Utc>,
}

/// What a validator fixes of a miner's bundle at the window's deadline, before the
/// challenge randomness exists: the published SHA-256 and the bundle's size. The bundle
/// read later must be exactly these bytes, whatever timestamps the store reports (an S3
/// multipart object carries the time its upload was *started*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BundlePin {
    /// The published SHA-256 of the bundle.
    #[serde(with = "hex_bytes")]
    pub sha256: [u8; 32],
    /// The bundle object's size then.
    pub size: u64,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// A bucket behind any object_store backend.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
}

fn path(key: &str) -> Result<Path, StoreError> {
    Path::parse(key).map_err(|source| StoreError::BadKey {
        key: key.to_string(),
        source,
    })
}

/// Fails when `written` is after `deadline`.
pub fn check_deadline(
    key: &str,
    written: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    match deadline {
        Some(deadline) if written > deadline => Err(StoreError::Late {
            key: key.into(),
            written,
            deadline,
        }),
        _ => Ok(()),
    }
}

impl Store {
    /// Wraps a backend.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    /// Writes `bytes` under `key` so that readers see either nothing (or the previous
    /// object) or all of it: one PUT, or a multipart upload that only becomes visible when
    /// completed and is aborted on error.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let p = path(key)?;
        if bytes.len() <= MULTIPART_PART_BYTES {
            self.inner
                .put(&p, PutPayload::from(bytes))
                .await
                .map_err(|e| StoreError::backend_write(key, e))?;
            return Ok(());
        }
        let upload = self
            .inner
            .put_multipart(&p)
            .await
            .map_err(|e| StoreError::backend_write(key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_BYTES);
        for chunk in bytes.chunks(MULTIPART_PART_BYTES) {
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| StoreError::backend_write(key, e))?;
            writer.write(chunk);
        }
        match writer.finish().await {
            Ok(_) => Ok(()),
            Err(e) => Err(StoreError::backend_write(key, e)),
        }
    }

    /// Metadata of `key`, or `None` when absent.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.inner.head(&path(key)?).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::backend(key, e)),
        }
    }

    /// Reads `key`, refusing objects over `limit` bytes: the size is checked with HEAD
    /// first and again while streaming (an object replaced by a larger one mid-read still
    /// stops at the limit).
    pub async fn get_capped(&self, key: &str, limit: u64) -> Result<Fetched, StoreError> {
        let p = path(key)?;
        let meta = self
            .head(key)
            .await?
            .ok_or_else(|| StoreError::NotFound { key: key.into() })?;
        if meta.size > limit {
            return Err(StoreError::TooLarge {
                key: key.into(),
                size: meta.size,
                limit,
            });
        }
        let result = self
            .inner
            .get(&p)
            .await
            .map_err(|e| StoreError::backend(key, e))?;
        let last_modified = result.meta.last_modified;
        let mut stream = result.into_stream();
        let mut buf = BytesMut::with_capacity(meta.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StoreError::backend(key, e))?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(StoreError::TooLarge {
                    key: key.into(),
                    size: (buf.len() + chunk.len()) as u64,
                    limit,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        let bytes = buf.freeze();
        Ok(Fetched {
            sha256: sha256(&bytes),
            bytes,
            last_modified,
        })
    }

    /// Every object under `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let p = path(prefix.trim_end_matches('/'))?;
        let mut out: Vec<ObjectMeta> = self
            .inner
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| StoreError::backend_write(prefix, e))?;
        out.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        Ok(out)
    }

    /// Deletes `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::backend(key, e)),
        }
    }

    /// Uploads a miner's bundle, then its SHA-256. Readers accept a bundle only when the
    /// digest exists and matches, so a crash between the two leaves nothing acceptable.
    pub async fn upload_bundle(
        &self,
        window: u64,
        hotkey: &Hotkey,
        bytes: Vec<u8>,
    ) -> Result<[u8; 32], StoreError> {
        self.upload_bundle_in(window, None, hotkey, bytes).await
    }

    /// [`Store::upload_bundle`] into the subnet's lane (`None`) or a job's lane.
    pub async fn upload_bundle_in(
        &self,
        window: u64,
        lane: Option<&str>,
        hotkey: &Hotkey,
        bytes: Vec<u8>,
    ) -> Result<[u8; 32], StoreError> {
        let key = layout::bundle_in(window, lane, hotkey);
        let digest_key = layout::bundle_digest_in(window, lane, hotkey);
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(StoreError::TooLarge {
                key,
                size: bytes.len() as u64,
                limit: MAX_BUNDLE_BYTES as u64,
            });
        }
        let digest = sha256(&bytes);
        // Withdraw the old digest first: a reader never pairs a new bundle with an old hash
        // as valid (it would see a mismatch) and never an old bundle with a new hash.
        self.delete(&digest_key).await?;
        self.put(&key, Bytes::from(bytes)).await?;
        self.put(&digest_key, Bytes::from(hex::encode(digest)))
            .await?;
        Ok(digest)
    }

    /// Fetches a miner's bundle: digest present, both objects written by `deadline`, size
    /// within the bundle limit, bytes matching the digest.
    pub async fn fetch_bundle(
        &self,
        window: u64,
        hotkey: &Hotkey,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Fetched, StoreError> {
        self.fetch_bundle_capped(window, hotkey, deadline, MAX_BUNDLE_BYTES as u64)
            .await
    }

    /// [`Store::fetch_bundle`] with a lower size limit than the protocol's.
    pub async fn fetch_bundle_capped(
        &self,
        window: u64,
        hotkey: &Hotkey,
        deadline: Option<DateTime<Utc>>,
        limit: u64,
    ) -> Result<Fetched, StoreError> {
        self.fetch_bundle_in(window, None, hotkey, deadline, limit)
            .await
    }

    /// [`Store::fetch_bundle_capped`] from the subnet's lane (`None`) or a job's lane.
    pub async fn fetch_bundle_in(
        &self,
        window: u64,
        lane: Option<&str>,
        hotkey: &Hotkey,
        deadline: Option<DateTime<Utc>>,
        limit: u64,
    ) -> Result<Fetched, StoreError> {
        let key = layout::bundle_in(window, lane, hotkey);
        let digest_key = layout::bundle_digest_in(window, lane, hotkey);
        let digest = match self.get_capped(&digest_key, 64).await {
            Ok(d) => d,
            Err(StoreError::NotFound { .. }) => {
                return match self.head(&key).await? {
                    Some(_) => Err(StoreError::Incomplete {
                        key,
                        detail: "no published SHA-256 (upload not finished)".into(),
                    }),
                    None => Err(StoreError::NotFound { key }),
                }
            }
            Err(e) => return Err(e),
        };
        check_deadline(&digest_key, digest.last_modified, deadline)?;
        let expected = String::from_utf8_lossy(&digest.bytes).trim().to_string();
        let fetched = self
            .get_capped(&key, limit.min(MAX_BUNDLE_BYTES as u64))
            .await?;
        check_deadline(&key, fetched.last_modified, deadline)?;
        let actual = hex::encode(fetched.sha256);
        if actual != expected {
            return Err(StoreError::HashMismatch {
                key,
                expected,
                actual,
            });
        }
        Ok(fetched)
    }

    /// Pins a miner's bundle of `window` as it is now (at the deadline): its published
    /// SHA-256 and its size. `None` when no finished upload is there (no digest, or no
    /// bundle object): the miner has nothing to be checked in this window.
    pub async fn pin_bundle(
        &self,
        window: u64,
        hotkey: &Hotkey,
    ) -> Result<Option<BundlePin>, StoreError> {
        self.pin_bundle_in(window, None, hotkey).await
    }

    /// [`Store::pin_bundle`] in the subnet's lane (`None`) or a job's lane.
    pub async fn pin_bundle_in(
        &self,
        window: u64,
        lane: Option<&str>,
        hotkey: &Hotkey,
    ) -> Result<Option<BundlePin>, StoreError> {
        let digest_key = layout::bundle_digest_in(window, lane, hotkey);
        let digest = match self.get_capped(&digest_key, 64).await {
            Ok(d) => d,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&digest.bytes);
        let Some(sha256) = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            return Err(StoreError::Incomplete {
                key: digest_key,
                detail: "the published SHA-256 is not 64 hex digits".into(),
            });
        };
        match self.head(&layout::bundle_in(window, lane, hotkey)).await? {
            Some(meta) => Ok(Some(BundlePin {
                sha256,
                size: meta.size,
            })),
            None => Ok(None),
        }
    }

    /// Reads the bundle `pin` fixed at the deadline: at most `limit` bytes, and exactly
    /// the pinned size and SHA-256. A bundle replaced after the pin is
    /// [`StoreError::ChangedAfterPin`], whatever its timestamp; bytes that do not hash to
    /// the digest still published are [`StoreError::HashMismatch`].
    pub async fn fetch_pinned_bundle(
        &self,
        window: u64,
        hotkey: &Hotkey,
        pin: &BundlePin,
        limit: u64,
    ) -> Result<Fetched, StoreError> {
        self.fetch_pinned_bundle_in(window, None, hotkey, pin, limit)
            .await
    }

    /// [`Store::fetch_pinned_bundle`] in the subnet's lane (`None`) or a job's lane.
    pub async fn fetch_pinned_bundle_in(
        &self,
        window: u64,
        lane: Option<&str>,
        hotkey: &Hotkey,
        pin: &BundlePin,
        limit: u64,
    ) -> Result<Fetched, StoreError> {
        let key = layout::bundle_in(window, lane, hotkey);
        let limit = limit.min(MAX_BUNDLE_BYTES as u64);
        if pin.size > limit {
            return Err(StoreError::TooLarge {
                key,
                size: pin.size,
                limit,
            });
        }
        // A replacement larger than the pin stops at the pinned size.
        let fetched = match self.get_capped(&key, pin.size).await {
            Err(StoreError::TooLarge { size, .. }) => {
                return Err(StoreError::ChangedAfterPin {
                    key,
                    detail: format!("{size} bytes or more, {} pinned", pin.size),
                })
            }
            other => other?,
        };
        if fetched.sha256 != pin.sha256 {
            // Bytes that never matched their published digest are a substitution; a
            // digest that changed too is a new upload after the pin.
            let digest_key = layout::bundle_digest_in(window, lane, hotkey);
            let published = self.get_capped(&digest_key, 64).await.ok();
            let unchanged = published.is_some_and(|d| {
                String::from_utf8_lossy(&d.bytes).trim() == hex::encode(pin.sha256)
            });
            if unchanged {
                return Err(StoreError::HashMismatch {
                    key,
                    expected: hex::encode(pin.sha256),
                    actual: hex::encode(fetched.sha256),
                });
            }
            return Err(StoreError::ChangedAfterPin {
                key,
                detail: format!(
                    "SHA-256 {}, {} pinned",
                    hex::encode(fetched.sha256),
                    hex::encode(pin.sha256)
                ),
            });
        }
        Ok(fetched)
    }

    /// Hotkeys with a bundle object in a window (finished or not).
    pub async fn list_bundles(&self, window: u64) -> Result<Vec<Hotkey>, StoreError> {
        let metas = self.list(&layout::bundles_prefix(window)).await?;
        Ok(metas
            .iter()
            .filter_map(|m| layout::hotkey_of_bundle(m.location.as_ref()))
            .collect())
    }

    /// Stores a sealed window under the SHA-256 of its bytes; returns the hash.
    pub async fn put_archive(&self, archive: &SealedWindow) -> Result<[u8; 32], StoreError> {
        let bytes = encode_archive(archive)?;
        let digest = sha256(&bytes);
        self.put(
            &layout::archive(archive.window, &digest),
            Bytes::from(bytes),
        )
        .await?;
        Ok(digest)
    }

    /// Stores a job lane's sealed window under `lanes/`, named by the SHA-256 of its bytes
    /// (out of `archives/`, which the trainer reads); returns its key.
    pub async fn put_lane_archive(
        &self,
        archive: &SealedWindow,
        lane: &str,
    ) -> Result<String, StoreError> {
        let bytes = encode_archive(archive)?;
        let key = layout::lane_archive(archive.window, lane, &sha256(&bytes));
        self.put(&key, Bytes::from(bytes)).await?;
        Ok(key)
    }

    /// Reads a sealed window and checks it against its name.
    pub async fn get_archive(
        &self,
        window: u64,
        digest: &[u8; 32],
    ) -> Result<(SealedWindow, Bytes), StoreError> {
        self.get_archive_in(window, None, digest).await
    }

    /// [`Store::get_archive`] of the subnet's lane (`None`) or a job's lane (`lanes/`).
    pub async fn get_archive_in(
        &self,
        window: u64,
        lane: Option<&str>,
        digest: &[u8; 32],
    ) -> Result<(SealedWindow, Bytes), StoreError> {
        let key = match lane {
            None => layout::archive(window, digest),
            Some(lane) => layout::lane_archive(window, lane, digest),
        };
        let fetched = self.get_capped(&key, MAX_ARCHIVE_BYTES as u64).await?;
        if &fetched.sha256 != digest {
            return Err(StoreError::HashMismatch {
                key,
                expected: hex::encode(digest),
                actual: hex::encode(fetched.sha256),
            });
        }
        let archive = decode_archive(&fetched.bytes)?;
        if archive.window != window {
            return Err(StoreError::Incomplete {
                key,
                detail: format!("archive is for window {}", archive.window),
            });
        }
        Ok((archive, fetched.bytes))
    }

    /// Hashes of the archives stored for a window.
    pub async fn list_archives(&self, window: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(self
            .archive_objects(window)
            .await?
            .into_iter()
            .map(|o| o.digest)
            .collect())
    }

    /// The archives stored for a window with their sizes and modification times (from
    /// the listing; nothing is read), by digest.
    pub async fn archive_objects(&self, window: u64) -> Result<Vec<ArchiveObject>, StoreError> {
        self.archive_objects_in(window, None).await
    }

    /// Hashes of the archives a job's lane (`Some`) or the subnet (`None`) has for a window.
    pub async fn list_archives_in(
        &self,
        window: u64,
        lane: Option<&str>,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(self
            .archive_objects_in(window, lane)
            .await?
            .into_iter()
            .map(|o| o.digest)
            .collect())
    }

    /// [`Store::archive_objects`] of the subnet's lane (`None`) or a job's lane, whose
    /// folder also holds the miners' lane bundles (only `*.archive` objects count).
    pub async fn archive_objects_in(
        &self,
        window: u64,
        lane: Option<&str>,
    ) -> Result<Vec<ArchiveObject>, StoreError> {
        let prefix = match lane {
            None => layout::archives_prefix(window),
            Some(lane) => layout::lane_prefix(window, lane),
        };
        let metas = self.list(&prefix).await?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let name = m
                    .location
                    .as_ref()
                    .rsplit('/')
                    .next()?
                    .strip_suffix(".archive")?;
                Some(ArchiveObject {
                    digest: hex::decode(name).ok()?.try_into().ok()?,
                    size: m.size,
                    last_modified: m.last_modified,
                })
            })
            .collect())
    }

    /// Retention: deletes bundles and archives of windows before `first_kept`; returns how
    /// many objects went.
    pub async fn prune_windows(&self, first_kept: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for prefix in ["bundles/", "lanes/", "archives/"] {
            for meta in self.list(prefix).await? {
                let key = meta.location.as_ref();
                if layout::window_of(key).is_some_and(|w| w < first_kept) {
                    self.delete(key).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
