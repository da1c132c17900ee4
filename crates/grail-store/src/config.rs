//! Backends and the on-chain read credentials.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

/// Where a participant's bucket lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StoreConfig {
    /// A local directory (the embedded default).
    Local {
        /// The folder (created if missing).
        dir: PathBuf,
    },
    /// In memory (tests).
    Memory,
    /// Any S3-compatible service: AWS, MinIO, a local S3 server.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Endpoint URL (None: AWS for the region).
        #[serde(default)]
        endpoint: Option<String>,
        /// Region (`us-east-1` when unsure).
        #[serde(default = "default_region")]
        region: String,
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
        /// Allow plain HTTP (local servers only).
        #[serde(default)]
        allow_http: bool,
    },
    /// Cloudflare R2: endpoint `https://{account_id}.r2.cloudflarestorage.com`.
    R2 {
        /// Cloudflare account id.
        account_id: String,
        /// Bucket name.
        bucket: String,
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
    },
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Transient errors (timeouts, 5xx, throttling) are retried with exponential backoff
/// inside object_store; after this many tries or this long the error is returned.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
    }
}

impl StoreConfig {
    /// Opens the backend.
    pub fn open(&self) -> Result<Store, StoreError> {
        let inner: Arc<dyn ObjectStore> = match self {
            Self::Local { dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(
                    |source| StoreError::BackendConfig {
                        what: format!("local directory {}", dir.display()),
                        source,
                    },
                )?;
                Arc::new(fs)
            }
            Self::Memory => Arc::new(object_store::memory::InMemory::new()),
            Self::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key)
                    .with_allow_http(*allow_http)
                    .with_retry(retry_config());
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                Arc::new(b.build().map_err(|source| StoreError::BackendConfig {
                    what: format!("S3 bucket {bucket}"),
                    source,
                })?)
            }
            Self::R2 {
                account_id,
                bucket,
                access_key_id,
                secret_access_key,
            } => {
                check_token("account_id", account_id, 32)?;
                let b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region("auto")
                    .with_endpoint(format!("https://{account_id}.r2.cloudflarestorage.com"))
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key)
                    .with_retry(retry_config());
                Arc::new(b.build().map_err(|source| StoreError::BackendConfig {
                    what: format!("R2 bucket {bucket}"),
                    source,
                })?)
            }
        };
        Ok(Store::new(inner))
    }

    /// From the environment: `GRAIL_STORE` = `local:DIR` (default `./grail-store`),
    /// `memory`, `s3:BUCKET` (with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
    /// `AWS_ENDPOINT_URL`, `AWS_REGION`) or `r2:BUCKET` (with `R2_ACCOUNT_ID`,
    /// `R2_ACCESS_KEY_ID`, `R2_SECRET_ACCESS_KEY`).
    pub fn from_env() -> Result<Self, StoreError> {
        let var = |k: &str| {
            std::env::var(k).map_err(|source| StoreError::EnvVar {
                var: k.to_string(),
                source,
            })
        };
        let spec = std::env::var("GRAIL_STORE").unwrap_or_else(|_| "local:grail-store".into());
        Self::parse(&spec, &var)
    }

    /// Parses a `GRAIL_STORE`-style spec, reading secrets through `var`.
    pub fn parse(
        spec: &str,
        var: &dyn Fn(&str) -> Result<String, StoreError>,
    ) -> Result<Self, StoreError> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        match kind {
            "local" if !rest.is_empty() => Ok(Self::Local { dir: rest.into() }),
            "memory" => Ok(Self::Memory),
            "s3" if !rest.is_empty() => Ok(Self::S3 {
                bucket: rest.into(),
                endpoint: var("AWS_ENDPOINT_URL").ok(),
                region: var("AWS_REGION").unwrap_or_else(|_| default_region()),
                access_key_id: var("AWS_ACCESS_KEY_ID")?,
                secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
                allow_http: var("AWS_ENDPOINT_URL").is_ok_and(|e| e.starts_with("http://")),
            }),
            "r2" if !rest.is_empty() => Ok(Self::R2 {
                account_id: var("R2_ACCOUNT_ID")?,
                bucket: rest.into(),
                access_key_id: var("R2_ACCESS_KEY_ID")?,
                secret_access_key: var("R2_SECRET_ACCESS_KEY")?,
            }),
            _ => Err(StoreError::BadSpec { spec: spec.into() }),
        }
    }
}

fn check_token(field: &'static str, value: &str, len: usize) -> Result<(), StoreError> {
    if value.len() == len && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(StoreError::CredentialsField { field, len })
    }
}

/// Read credentials a participant publishes on chain so others can read its bucket.
/// The commitment is the reference's 128-character form: account id (32) ‖ access key id
/// (32) ‖ secret (64); the bucket is named after the account id (Cloudflare R2).
#[derive(Clone, PartialEq, Eq)]
pub struct ReadCredentials {
    /// R2 account id (also the bucket name).
    pub account_id: String,
    /// Read-only access key id.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

impl std::fmt::Debug for ReadCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCredentials")
            .field("account_id", &self.account_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Length of the on-chain commitment.
pub const COMMITMENT_LEN: usize = 128;

impl ReadCredentials {
    /// Checks each part's length and alphabet.
    pub fn new(
        account_id: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Self, StoreError> {
        check_token("account_id", account_id, 32)?;
        check_token("access_key_id", access_key_id, 32)?;
        check_token("secret_access_key", secret_access_key, 64)?;
        Ok(Self {
            account_id: account_id.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        })
    }

    /// Parses a commitment read from chain (surrounding whitespace ignored).
    pub fn from_commitment(text: &str) -> Result<Self, StoreError> {
        let t = text.trim();
        if t.len() != COMMITMENT_LEN || !t.is_ascii() {
            return Err(StoreError::CredentialsLength {
                chars: t.chars().count(),
                ascii: t.is_ascii(),
            });
        }
        Self::new(&t[..32], &t[32..64], &t[64..])
    }

    /// The commitment string.
    pub fn to_commitment(&self) -> String {
        format!(
            "{}{}{}",
            self.account_id, self.access_key_id, self.secret_access_key
        )
    }

    /// A store configuration that reads the committed bucket.
    pub fn to_config(&self) -> StoreConfig {
        StoreConfig::R2 {
            account_id: self.account_id.clone(),
            bucket: self.account_id.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitments_round_trip_and_bad_ones_are_refused() {
        let c = ReadCredentials::new(&"a".repeat(32), &"B".repeat(32), &"9".repeat(64)).unwrap();
        let text = c.to_commitment();
        assert_eq!(text.len(), COMMITMENT_LEN);
        assert_eq!(
            ReadCredentials::from_commitment(&format!("  {text}\n")).unwrap(),
            c
        );
        assert!(matches!(
            ReadCredentials::from_commitment(&text[1..]),
            Err(StoreError::CredentialsLength {
                chars: 127,
                ascii: true
            })
        ));
        assert!(matches!(
            ReadCredentials::from_commitment(&format!("{}-", &text[1..])),
            Err(StoreError::CredentialsField {
                field: "secret_access_key",
                len: 64
            })
        ));
        let accented = ReadCredentials::from_commitment(&"é".repeat(64)).unwrap_err();
        assert!(
            matches!(
                accented,
                StoreError::CredentialsLength {
                    chars: 64,
                    ascii: false
                }
            ),
            "{accented}"
        );
        assert!(accented.to_string().contains("not all ASCII"), "{accented}");
        assert!(
            !format!("{c:?}").contains(&"9".repeat(64)),
            "secrets stay out of logs"
        );
    }

    #[test]
    fn specs_parse() {
        let env = |k: &str| -> Result<String, StoreError> {
            match k {
                "AWS_ACCESS_KEY_ID" => Ok("id".into()),
                "AWS_SECRET_ACCESS_KEY" => Ok("secret".into()),
                "AWS_ENDPOINT_URL" => Ok("http://127.0.0.1:9000".into()),
                _ => Err(StoreError::EnvVar {
                    var: k.into(),
                    source: std::env::VarError::NotPresent,
                }),
            }
        };
        assert_eq!(
            StoreConfig::parse("local:/tmp/x", &env).unwrap(),
            StoreConfig::Local {
                dir: "/tmp/x".into()
            }
        );
        assert_eq!(
            StoreConfig::parse("memory", &env).unwrap(),
            StoreConfig::Memory
        );
        match StoreConfig::parse("s3:bkt", &env).unwrap() {
            StoreConfig::S3 {
                bucket,
                allow_http,
                region,
                ..
            } => {
                assert_eq!(bucket, "bkt");
                assert!(allow_http);
                assert_eq!(region, "us-east-1");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                StoreConfig::parse("r2:bkt", &env),
                Err(StoreError::EnvVar { var, .. }) if var == "R2_ACCOUNT_ID"
            ),
            "R2 without an account id"
        );
        for bad in ["ftp:x", "local:"] {
            assert!(matches!(
                StoreConfig::parse(bad, &env),
                Err(StoreError::BadSpec { spec }) if spec == bad
            ));
        }
    }
}
