//! A drand-format beacon with its own BLS12-381 key, for local networks.
//!
//! It signs rounds exactly as quicknet does (`bls-unchained-g1-rfc9380`: signature =
//! secret · H_G1(SHA-256(u64be(round))), public key on G2), and its beacons are checked by
//! [`crate::drand::verify_beacon`] with its public key — the code path production uses.
//! [`serve`] exposes it over HTTP with the relay API (`/{hash}/info`,
//! `/{hash}/public/{round}`), so local nodes fetch it with the real [`DrandClient`].
//!
//! [`DrandClient`]: crate::drand::DrandClient

use std::sync::Arc;

use async_trait::async_trait;
use bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve};
use bls12_381::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar};
use grail_proto::Beacon;
use sha2::{Digest, Sha256, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::clock::{Clock, SystemClock};
use crate::drand::{
    verify_beacon, wait_for_round, BeaconSource, ChainInfo, DrandError, RawBeacon, Scheme,
};

/// The RFC 9380 domain separation tag of BLS signatures on G1 (quicknet's).
const DST_G1: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";

/// A local drand-compatible beacon.
pub struct LocalBeacon {
    secret: Scalar,
    info: ChainInfo,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalBeacon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBeacon")
            .field("info", &self.info)
            .finish()
    }
}

impl LocalBeacon {
    /// A beacon whose secret key is derived from `seed`, emitting round 1 at
    /// `genesis_time` and one round every `period` seconds.
    pub fn from_seed(seed: &[u8; 32], genesis_time: u64, period: u64) -> Self {
        let wide: [u8; 64] = Sha512::new()
            .chain_update(b"grail-rs/local-beacon/v1")
            .chain_update(seed)
            .finalize()
            .into();
        let secret = Scalar::from_bytes_wide(&wide);
        let public = G2Affine::from(G2Projective::generator() * secret).to_compressed();
        let scheme = Scheme::BlsUnchainedG1Rfc9380;
        let hash = Sha256::new()
            .chain_update(period.to_be_bytes())
            .chain_update(genesis_time.to_be_bytes())
            .chain_update(public)
            .chain_update(b"bls-unchained-g1-rfc9380")
            .finalize();
        Self {
            secret,
            info: ChainInfo {
                hash: hex::encode(hash),
                public_key: hex::encode(public),
                period: period.max(1),
                genesis_time,
                scheme,
            },
            clock: Arc::new(SystemClock),
        }
    }

    /// Decides which rounds are due by `clock` instead of the wall clock (tests pass
    /// tokio's paused one, the same the chain reads).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Signs `round` (whether or not it is due).
    pub fn sign(&self, round: u64) -> RawBeacon {
        let message = Sha256::digest(round.to_be_bytes());
        let point = <G1Projective as HashToCurve<ExpandMsgXmd<sha2_09::Sha256>>>::hash_to_curve(
            message, DST_G1,
        );
        let signature = G1Affine::from(point * self.secret).to_compressed();
        RawBeacon {
            round,
            randomness: Some(hex::encode(Sha256::digest(signature))),
            signature: hex::encode(signature),
            previous_signature: None,
        }
    }

    /// The latest round that is due now.
    pub fn current_round(&self) -> u64 {
        self.info.round_at(self.clock.now_ms() / 1000)
    }
}

#[async_trait]
impl BeaconSource for LocalBeacon {
    fn info(&self) -> &ChainInfo {
        &self.info
    }

    async fn beacon(&self, round: u64) -> Result<Beacon, DrandError> {
        wait_for_round(&self.info, round, self.clock.as_ref()).await?;
        verify_beacon(&self.info, round, &self.sign(round))
    }
}

/// Serves `beacon` with the drand relay HTTP API on `listener` until the task is dropped.
/// Rounds that are not due yet get `425 Too Early`, as drand relays answer.
pub async fn serve(beacon: Arc<LocalBeacon>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let beacon = beacon.clone();
        tokio::spawn(async move {
            let _ = answer(&beacon, stream).await;
        });
    }
}

async fn answer(beacon: &LocalBeacon, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    let (status, body) = route(beacon, path);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn route(beacon: &LocalBeacon, path: &str) -> (&'static str, String) {
    let info = &beacon.info;
    let not_found = ("404 Not Found", "{\"error\":\"not found\"}".to_string());
    let Some(rest) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(info.hash.as_str()))
    else {
        return not_found;
    };
    if rest == "/info" {
        return ("200 OK", serde_json::to_string(info).unwrap_or_default());
    }
    let Some(round) = rest.strip_prefix("/public/") else {
        return not_found;
    };
    let current = beacon.current_round();
    let round = match round {
        "latest" => current,
        r => match r.parse::<u64>() {
            Ok(r) => r,
            Err(_) => return ("400 Bad Request", "{\"error\":\"bad round\"}".into()),
        },
    };
    if round == 0 || round > current {
        return (
            "425 Too Early",
            "{\"error\":\"round not emitted yet\"}".into(),
        );
    }
    (
        "200 OK",
        serde_json::to_string(&beacon.sign(round)).unwrap_or_default(),
    )
}
