//! drand: chain parameters, round ↔ time arithmetic, BLS verification of every beacon,
//! and an HTTP client that fetches a *specific* round from several relays.
//!
//! Nothing here returns randomness that was not verified: a beacon is accepted only when
//! it is for the requested round, its BLS signature verifies under the chain's public key,
//! and (when the relay sends one) its `randomness` equals SHA-256 of the signature. There
//! is no fallback value; when no relay gives a valid beacon the caller gets an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use drand_verify::{G1Pubkey, G2PubkeyFastnet, G2PubkeyRfc, Pubkey};
use grail_proto::Beacon;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock};

/// Signature scheme of a drand chain (its `schemeID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    /// `pedersen-bls-chained`: key on G1, signatures on G2 over (previous signature, round)
    /// — the original League of Entropy mainnet.
    #[serde(rename = "pedersen-bls-chained")]
    PedersenBlsChained,
    /// `pedersen-bls-unchained`: key on G1, signatures on G2 over the round.
    #[serde(rename = "pedersen-bls-unchained")]
    PedersenBlsUnchained,
    /// `bls-unchained-g1-rfc9380`: key on G2, signatures on G1 (RFC 9380 hash) — quicknet.
    #[serde(rename = "bls-unchained-g1-rfc9380")]
    BlsUnchainedG1Rfc9380,
    /// `bls-unchained-on-g1`: the pre-RFC G1 variant (fastnet).
    #[serde(rename = "bls-unchained-on-g1")]
    BlsUnchainedOnG1,
}

/// A drand chain's public parameters (its `/info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// Chain hash (hex), the path segment relays serve it under.
    pub hash: String,
    /// Group public key (hex).
    pub public_key: String,
    /// Seconds between rounds.
    pub period: u64,
    /// Unix time of round 1.
    pub genesis_time: u64,
    /// Signature scheme.
    #[serde(rename = "schemeID")]
    pub scheme: Scheme,
}

/// Relays of the League of Entropy (mainnet and quicknet are served by all of them).
pub const LOE_RELAYS: &[&str] = &[
    "https://api.drand.sh",
    "https://api2.drand.sh",
    "https://api3.drand.sh",
    "https://drand.cloudflare.com",
];

impl ChainInfo {
    /// quicknet: 3 s rounds, unchained, G1 signatures (what grail uses in production).
    pub fn quicknet() -> Self {
        Self {
            hash: "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971".into(),
            public_key: "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a".into(),
            period: 3,
            genesis_time: 1_692_803_367,
            scheme: Scheme::BlsUnchainedG1Rfc9380,
        }
    }

    /// The original mainnet ("default" beacon): 30 s rounds, chained.
    pub fn mainnet() -> Self {
        Self {
            hash: "8990e7a9aaed2ffed73dbd7092123d6f289930540d7651336225dc172e51b2ce".into(),
            public_key: "868f005eb8e6e4ca0a47c8a77ceaa5309a47978a7c71bc5cce96366b5d7a569937c529eeda66c7293784a9402801af31".into(),
            period: 30,
            genesis_time: 1_595_431_050,
            scheme: Scheme::PedersenBlsChained,
        }
    }

    /// The latest round emitted at or before `unix_secs` (0 before genesis).
    pub fn round_at(&self, unix_secs: u64) -> u64 {
        if unix_secs < self.genesis_time || self.period == 0 {
            return 0;
        }
        (unix_secs - self.genesis_time) / self.period + 1
    }

    /// The first round emitted strictly after `unix_secs`.
    pub fn round_after(&self, unix_secs: u64) -> u64 {
        self.round_at(unix_secs) + 1
    }

    /// Unix time at which `round` is emitted (round 0 is genesis itself).
    pub fn round_time(&self, round: u64) -> u64 {
        self.genesis_time + round.saturating_sub(1) * self.period
    }
}

/// A beacon as relays serve it (`/{hash}/public/{round}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawBeacon {
    /// Round number.
    pub round: u64,
    /// SHA-256 of the signature (hex); optional, checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randomness: Option<String>,
    /// BLS signature (hex).
    pub signature: String,
    /// Previous round's signature (hex), chained schemes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_signature: Option<String>,
}

/// Why no verified beacon came back.
#[derive(Debug, thiserror::Error)]
pub enum DrandError {
    /// The relay could not be reached or answered with an error status.
    #[error("relay {relay}: {detail}")]
    Http {
        /// Relay base URL.
        relay: String,
        /// What happened.
        detail: String,
    },
    /// The relay did not answer in time.
    #[error("relay {relay} timed out after {after_ms} ms")]
    Timeout {
        /// Relay base URL.
        relay: String,
        /// The limit.
        after_ms: u64,
    },
    /// The HTTP request to the relay failed (connection, TLS, reading the body).
    #[error("relay {relay}: {source}")]
    Request {
        /// Relay base URL.
        relay: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The relay's answer is larger than any beacon.
    #[error("malformed beacon from {relay}: answer over {limit} bytes")]
    Oversized {
        /// Relay base URL.
        relay: String,
        /// The most a beacon answer may take (bytes).
        limit: usize,
    },
    /// A beacon of a chained scheme without the previous round's signature.
    #[error("malformed beacon: round {round} of a chained scheme has no previous_signature")]
    MissingPreviousSignature {
        /// Round.
        round: u64,
    },
    /// The answer is not beacon JSON.
    #[error("malformed beacon from {relay}: {source}")]
    MalformedJson {
        /// Relay base URL.
        relay: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A hex field of the beacon does not decode.
    #[error("malformed beacon: {what} is not hex: {source}")]
    MalformedHex {
        /// Which field.
        what: &'static str,
        /// The decode error.
        #[source]
        source: hex::FromHexError,
    },
    /// A beacon for another round than the one asked for.
    #[error("asked for round {expected}, got round {got}")]
    WrongRound {
        /// Asked for.
        expected: u64,
        /// Received.
        got: u64,
    },
    /// The BLS signature does not verify under the chain's key.
    #[error("round {round}: BLS signature does not verify ({detail})")]
    BadSignature {
        /// Round.
        round: u64,
        /// Detail.
        detail: String,
        /// The verifier's error, when the signature could not even be decoded.
        #[source]
        source: Option<drand_verify::VerificationError>,
    },
    /// `randomness` is not SHA-256 of the signature.
    #[error("round {round}: randomness is not SHA-256 of the signature")]
    RandomnessMismatch {
        /// Round.
        round: u64,
    },
    /// The round is too far in the future to wait for.
    #[error("round {round} is emitted at {at}, too far in the future")]
    NotYet {
        /// Round.
        round: u64,
        /// Its Unix time.
        at: u64,
    },
    /// Every relay failed; each failure is listed.
    #[error("no relay gave a valid beacon for round {round}: {}", list(.failures))]
    AllRelaysFailed {
        /// Round.
        round: u64,
        /// One failure per relay, in order.
        failures: Vec<DrandError>,
    },
    /// A client with no relay to ask.
    #[error("drand configuration: no relays")]
    NoRelays,
    /// The chain's public key is not a point of the group its scheme puts keys in.
    #[error("drand configuration: public key ({scheme:?}): {point}")]
    PublicKey {
        /// The chain's scheme.
        scheme: Scheme,
        /// Why the key is not a point (drand-verify's error does not implement `Error`).
        point: drand_verify::InvalidPoint,
    },
    /// The chain's public key is not hex.
    #[error("drand configuration: public key is not hex: {0}")]
    PublicKeyHex(#[source] hex::FromHexError),
    /// The HTTP client could not be built.
    #[error("drand configuration: HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

fn list(failures: &[DrandError]) -> String {
    failures
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn decode_hex(what: &'static str, text: &str) -> Result<Vec<u8>, DrandError> {
    hex::decode(text).map_err(|source| DrandError::MalformedHex { what, source })
}

/// Verifies `raw` as round `expected` of the chain `info`; returns the beacon with
/// randomness = SHA-256(signature).
pub fn verify_beacon(
    info: &ChainInfo,
    expected: u64,
    raw: &RawBeacon,
) -> Result<Beacon, DrandError> {
    if raw.round != expected {
        return Err(DrandError::WrongRound {
            expected,
            got: raw.round,
        });
    }
    let signature = decode_hex("signature", &raw.signature)?;
    let key = hex::decode(&info.public_key).map_err(DrandError::PublicKeyHex)?;
    let bad = |detail: String, source| DrandError::BadSignature {
        round: expected,
        detail,
        source,
    };
    let previous = match info.scheme {
        Scheme::PedersenBlsChained => {
            let prev = raw
                .previous_signature
                .as_deref()
                .ok_or(DrandError::MissingPreviousSignature { round: expected })?;
            decode_hex("previous_signature", prev)?
        }
        _ => Vec::new(),
    };
    let key_error = |point| DrandError::PublicKey {
        scheme: info.scheme,
        point,
    };
    let verified = match info.scheme {
        Scheme::PedersenBlsChained | Scheme::PedersenBlsUnchained => G1Pubkey::from_variable(&key)
            .map_err(key_error)?
            .verify(expected, &previous, &signature),
        Scheme::BlsUnchainedG1Rfc9380 => G2PubkeyRfc::from_variable(&key)
            .map_err(key_error)?
            .verify(expected, &previous, &signature),
        Scheme::BlsUnchainedOnG1 => G2PubkeyFastnet::from_variable(&key)
            .map_err(key_error)?
            .verify(expected, &previous, &signature),
    };
    match verified {
        Ok(true) => {}
        Ok(false) => return Err(bad("pairing check failed".into(), None)),
        Err(e) => return Err(bad(e.to_string(), Some(e))),
    }
    let randomness: [u8; 32] = Sha256::digest(&signature).into();
    if let Some(claimed) = &raw.randomness {
        if !claimed.eq_ignore_ascii_case(&hex::encode(randomness)) {
            return Err(DrandError::RandomnessMismatch { round: expected });
        }
    }
    Ok(Beacon {
        round: expected,
        randomness,
    })
}

/// Anything that yields verified beacons of one drand chain.
#[async_trait]
pub trait BeaconSource: Send + Sync {
    /// The chain's parameters.
    fn info(&self) -> &ChainInfo;

    /// The verified beacon of `round`, waiting for it when it is due within a few periods.
    async fn beacon(&self, round: u64) -> Result<Beacon, DrandError>;
}

/// The current Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Largest beacon answer read from a relay.
const MAX_BEACON_BYTES: usize = 16 * 1024;

/// How long [`DrandClient`] waits for a round that is not emitted yet.
pub const MAX_WAIT_FOR_ROUND: Duration = Duration::from_secs(120);

/// HTTP client for a drand chain with relay failover.
#[derive(Debug, Clone)]
pub struct DrandClient {
    info: ChainInfo,
    relays: Vec<String>,
    http: reqwest::Client,
    timeout: Duration,
}

impl DrandClient {
    /// A client for `info` served by `relays` (base URLs, tried in order), each given
    /// `timeout` per request.
    pub fn new(
        info: ChainInfo,
        relays: Vec<String>,
        timeout: Duration,
    ) -> Result<Self, DrandError> {
        if relays.is_empty() {
            return Err(DrandError::NoRelays);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(DrandError::Client)?;
        Ok(Self {
            info,
            relays: relays
                .into_iter()
                .map(|r| r.trim_end_matches('/').to_string())
                .collect(),
            http,
            timeout,
        })
    }

    /// quicknet through the League of Entropy relays (10 s per relay).
    pub fn quicknet() -> Result<Self, DrandError> {
        Self::new(
            ChainInfo::quicknet(),
            LOE_RELAYS.iter().map(|s| s.to_string()).collect(),
            Duration::from_secs(10),
        )
    }

    /// The relays, in the order they are tried.
    pub fn relays(&self) -> &[String] {
        &self.relays
    }

    async fn fetch_from(&self, relay: &str, round: u64) -> Result<Beacon, DrandError> {
        let url = format!("{relay}/{}/public/{round}", self.info.hash);
        let http = |detail: String| DrandError::Http {
            relay: relay.to_string(),
            detail,
        };
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                DrandError::Timeout {
                    relay: relay.to_string(),
                    after_ms: self.timeout.as_millis() as u64,
                }
            } else {
                DrandError::Request {
                    relay: relay.to_string(),
                    source: e,
                }
            }
        };
        let mut response = self.http.get(&url).send().await.map_err(failed)?;
        if !response.status().is_success() {
            return Err(http(format!(
                "HTTP {} for round {round}",
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_BEACON_BYTES {
                return Err(DrandError::Oversized {
                    relay: relay.to_string(),
                    limit: MAX_BEACON_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let raw: RawBeacon =
            serde_json::from_slice(&body).map_err(|source| DrandError::MalformedJson {
                relay: relay.to_string(),
                source,
            })?;
        verify_beacon(&self.info, round, &raw)
    }
}

/// Sleeps until `round` is due (plus a little slack), or fails when that is too far away.
pub(crate) async fn wait_for_round(
    info: &ChainInfo,
    round: u64,
    clock: &dyn Clock,
) -> Result<(), DrandError> {
    let at = info.round_time(round);
    let now = clock.now_ms() / 1000;
    if at > now {
        let wait = Duration::from_secs(at - now);
        if wait > MAX_WAIT_FOR_ROUND {
            return Err(DrandError::NotYet { round, at });
        }
        tokio::time::sleep(wait + Duration::from_millis(300)).await;
    }
    Ok(())
}

#[async_trait]
impl BeaconSource for DrandClient {
    fn info(&self) -> &ChainInfo {
        &self.info
    }

    async fn beacon(&self, round: u64) -> Result<Beacon, DrandError> {
        wait_for_round(&self.info, round, &SystemClock).await?;
        let mut failures = Vec::new();
        for relay in &self.relays {
            match self.fetch_from(relay, round).await {
                Ok(beacon) => return Ok(beacon),
                Err(e) => failures.push(e),
            }
        }
        Err(DrandError::AllRelaysFailed { round, failures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_time_arithmetic() {
        let q = ChainInfo::quicknet();
        assert_eq!(q.round_at(q.genesis_time - 1), 0);
        assert_eq!(q.round_at(q.genesis_time), 1);
        assert_eq!(q.round_at(q.genesis_time + 2), 1);
        assert_eq!(q.round_at(q.genesis_time + 3), 2);
        assert_eq!(q.round_after(q.genesis_time + 3), 3);
        for round in [1, 2, 1000, 30_662_982] {
            assert_eq!(q.round_at(q.round_time(round)), round);
            assert_eq!(q.round_at(q.round_time(round) - 1), round - 1);
        }
    }
}
