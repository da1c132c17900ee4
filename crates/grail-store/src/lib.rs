//! grail-store: object storage for everything that moves between roles.
//!
//! Each participant writes its own bucket and publishes read credentials on chain; others
//! read. This crate owns the key layout ([`layout`]), the backends ([`config`]: a local
//! directory by default, S3-compatible stores such as AWS, Cloudflare R2 and MinIO, and
//! memory for tests), the rules every transfer follows ([`store`]: atomic uploads, size
//! caps before download, SHA-256 checks, deadlines by `LastModified`, retention), signed
//! checkpoints ([`checkpoint`]) and the Parquet dataset export ([`export`]).

pub mod checkpoint;
pub mod config;
pub mod export;
pub mod layout;
pub mod store;

pub use checkpoint::{CheckpointManifest, FileEntry, SignedManifest};
pub use config::{ReadCredentials, StoreConfig};
pub use store::{check_deadline, ArchiveObject, BundlePin, Fetched, Store, MULTIPART_PART_BYTES};

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Everything that can go wrong in grail-store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object under the key.
    #[error("object `{key}` not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The object is larger than the caller accepts (checked before downloading it all).
    #[error("object `{key}` is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The key.
        key: String,
        /// Size seen (or reached while streaming).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes do not hash to what was published.
    #[error("object `{key}` has SHA-256 {actual}, expected {expected}")]
    HashMismatch {
        /// The key.
        key: String,
        /// Published hash (hex).
        expected: String,
        /// Hash of the bytes read (hex).
        actual: String,
    },
    /// Written after the deadline.
    #[error("object `{key}` was written at {written}, after the deadline {deadline}")]
    Late {
        /// The key.
        key: String,
        /// The store's LastModified.
        written: chrono::DateTime<chrono::Utc>,
        /// The deadline.
        deadline: chrono::DateTime<chrono::Utc>,
    },
    /// The object is not the one pinned at the deadline (replaced, or written after it).
    #[error("object `{key}` changed after the deadline pin: {detail}")]
    ChangedAfterPin {
        /// The key.
        key: String,
        /// What differs.
        detail: String,
    },
    /// A multi-object upload that was not finished (no digest or pointer published).
    #[error("object `{key}` is incomplete: {detail}")]
    Incomplete {
        /// The key.
        key: String,
        /// What is missing.
        detail: String,
    },
    /// A configuration that cannot be used, described as text (callers outside this
    /// crate; the problems this crate detects have their own variants).
    #[error("store configuration: {0}")]
    Config(String),
    /// A `GRAIL_STORE`-style spec that names no known backend (or no bucket / folder).
    #[error("store configuration: GRAIL_STORE=`{spec}` is not local:DIR, memory, s3:BUCKET or r2:BUCKET")]
    BadSpec {
        /// The spec.
        spec: String,
    },
    /// A read-credentials commitment that is not 128 ASCII characters.
    #[error(
        "invalid read credentials: commitment must be {} ASCII characters, got {chars}{}",
        config::COMMITMENT_LEN,
        if *.ascii { "" } else { " (not all ASCII)" }
    )]
    CredentialsLength {
        /// Its length in characters (surrounding whitespace removed).
        chars: usize,
        /// Whether it is all ASCII.
        ascii: bool,
    },
    /// A part of the read credentials (or an R2 account id) with the wrong length or
    /// alphabet.
    #[error("invalid read credentials: {field} must be {len} ASCII letters or digits")]
    CredentialsField {
        /// Which part: `account_id`, `access_key_id` or `secret_access_key`.
        field: &'static str,
        /// The length it must have.
        len: usize,
    },
    /// A manifest signed (or to be signed) with a key other than its trainer's.
    #[error(
        "checkpoint manifest: checkpoint {number} names trainer {trainer}, signed by {signer}"
    )]
    WrongSigner {
        /// The checkpoint.
        number: u64,
        /// The trainer the manifest names (hex).
        trainer: String,
        /// The key signing it (hex).
        signer: String,
    },
    /// A manifest from a trainer other than the trusted one.
    #[error("checkpoint manifest: checkpoint {number} is from trainer {trainer}, not the trusted one {trusted}")]
    UntrustedTrainer {
        /// The checkpoint.
        number: u64,
        /// The trainer it names (hex).
        trainer: String,
        /// The trusted trainer (hex).
        trusted: String,
    },
    /// A manifest whose signature is not 64 hex-encoded bytes.
    #[error("checkpoint manifest: the signature on checkpoint {number} is not 64 hex bytes")]
    MalformedSignature {
        /// The checkpoint.
        number: u64,
    },
    /// A manifest whose signature does not verify (altered or forged).
    #[error("checkpoint manifest: bad signature on checkpoint {number}")]
    BadSignature {
        /// The checkpoint.
        number: u64,
    },
    /// A checkpoint file name that is not allowed (path separators, `manifest.json`, …).
    #[error("checkpoint manifest: file name `{name}` is not allowed in a checkpoint")]
    BadFileName {
        /// The name.
        name: String,
    },
    /// A manifest stored under another checkpoint's number.
    #[error("checkpoint manifest: {key} describes checkpoint {found}, not {expected}")]
    WrongCheckpoint {
        /// The manifest's object key.
        key: String,
        /// The number it is stored (or pointed to) under.
        expected: u64,
        /// The number it describes.
        found: u64,
    },
    /// The backend failed (after its own retries for transient errors).
    #[error("storage backend failed on `{key}`: {source}")]
    Backend {
        /// The key.
        key: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Writing Parquet failed.
    #[error("parquet export: {0}")]
    Parquet(#[source] parquet::errors::ParquetError),
    /// Building the Arrow columns for the export failed.
    #[error("parquet export: {0}")]
    Arrow(#[source] arrow_schema::ArrowError),
    /// A backend could not be configured (bad URL, missing region, bad local folder).
    #[error("store configuration: {what}: {source}")]
    BackendConfig {
        /// Which backend.
        what: String,
        /// object_store's error.
        #[source]
        source: object_store::Error,
    },
    /// A required environment variable is missing or not UTF-8.
    #[error("store configuration: {var}: {source}")]
    EnvVar {
        /// The variable.
        var: String,
        /// Why it could not be read.
        #[source]
        source: std::env::VarError,
    },
    /// A key that is not a valid object path.
    #[error("store configuration: bad key `{key}`: {source}")]
    BadKey {
        /// The key.
        key: String,
        /// Why it is not a path.
        #[source]
        source: object_store::path::Error,
    },
    /// A stored manifest or `latest` pointer is not the JSON it should be.
    #[error("checkpoint manifest: {key}: {source}")]
    ManifestJson {
        /// The object.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Something could not be serialized.
    #[error("serializing {what}: {source}")]
    Serialize {
        /// What.
        what: &'static str,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking file task panicked or was cancelled.
    #[error("{context}: task failed: {source}")]
    Task {
        /// What was being done.
        context: String,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// Stored bytes are not a valid bundle or archive.
    #[error(transparent)]
    Wire(#[from] grail_proto::WireError),
}

impl StoreError {
    pub(crate) fn backend(key: &str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => Self::NotFound {
                key: key.to_string(),
            },
            source => Self::Backend {
                key: key.to_string(),
                source,
            },
        }
    }

    /// For writes and listings, where "not found" can only mean the bucket is missing:
    /// never [`StoreError::NotFound`], which readers treat as "no such object".
    pub(crate) fn backend_write(key: &str, source: object_store::Error) -> Self {
        Self::Backend {
            key: key.to_string(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
