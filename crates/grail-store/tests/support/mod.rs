//! Shared fixtures for the grail-store integration tests: a real S3 API server
//! (`moto_server` from PyPI `moto[server]`) started per test, and small groups.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grail_proto::archive::{ArchiveEntry, SealedWindow, Verdict};
use grail_proto::{
    EnvironmentId, GenerationParams, Group, GroupHeader, Hotkey, Rollout, Signature, SketchDigest,
};
use grail_store::{Store, StoreConfig};

/// A running `moto_server` on 127.0.0.1, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
}

/// The `moto_server` program: `$GRAIL_MOTO_SERVER` (set by `cargo xtask ci`/`env`), else
/// `moto_server` on `PATH`. `None` when neither exists.
fn moto_program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GRAIL_MOTO_SERVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "GRAIL_MOTO_SERVER={} does not exist; run `cargo xtask setup`",
            p.display()
        );
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("moto_server"))
        .find(|p| p.exists())
}

impl Moto {
    /// Starts a server, or returns `None` after printing why the S3 tests are skipped.
    pub fn start() -> Option<Self> {
        let Some(program) = moto_program() else {
            eprintln!(
                "SKIPPED: no S3 server: `moto_server` (PyPI moto[server]) is not installed. \
                 `cargo xtask setup` installs it and sets GRAIL_MOTO_SERVER."
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        let start = Instant::now();
        while moto.http("GET", "/moto-api/").is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto_server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Sends one plain HTTP/1.1 request; returns the status code.
    pub fn http(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response: {response:.80}")))
    }

    /// Creates `bucket` with a raw S3 `PUT /bucket` (object_store cannot create buckets)
    /// and opens a store on it through the production S3 configuration.
    pub fn bucket(&self, bucket: &str) -> Store {
        let status = self
            .http("PUT", &format!("/{bucket}"))
            .expect("create bucket");
        assert_eq!(status, 200, "creating bucket {bucket}");
        StoreConfig::S3 {
            bucket: bucket.into(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            allow_http: true,
        }
        .open()
        .expect("open S3 store")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A group with `m` rollouts whose contents depend on `seed` (not signed: the store does
/// not verify groups).
pub fn group(seed: u64, m: usize) -> Group {
    let rollouts = (0..m)
        .map(|i| {
            let i = i as u64;
            let tokens: Vec<u32> = (0..8)
                .map(|t| ((seed * 31 + i * 7 + t) % 500) as u32)
                .collect();
            Rollout {
                sketches: vec![
                    SketchDigest([seed as u16 & SketchDigest::MAX, i as u16]);
                    tokens.len()
                ],
                logprobs: vec![-0.25 * (i as f32 + 1.0); 5],
                tokens,
                prompt_len: 3,
                reward: i as f64,
                advantage: i as f64 - (m as f64 - 1.0) / 2.0,
                success: i % 2 == 1,
            }
        })
        .collect();
    Group {
        header: GroupHeader {
            protocol_version: grail_proto::params::PROTOCOL_VERSION,
            hotkey: Hotkey([seed as u8; 32]),
            window: 100,
            environment: EnvironmentId {
                name: "sat".into(),
                params: "v1".into(),
            },
            prompt_id: seed,
            checkpoint: [9; 32],
            window_randomness: [3; 32],
            generation: GenerationParams {
                max_new_tokens: 5,
                temperature_milli: 700,
            },
        },
        rollouts,
        signature: Signature([seed as u8; 64]),
    }
}

/// A sealed window with one accepted and one rejected group.
pub fn sealed_window(window: u64) -> SealedWindow {
    let entry = |seed: u64, accepted: bool| ArchiveEntry {
        miner: Hotkey([seed as u8; 32]),
        bundle_sha256: [seed as u8; 32],
        group_index: 0,
        group: group(seed, 4),
        recomputed_logprobs: if accepted {
            (0..4).map(|i| vec![-0.5 - i as f32; 5]).collect()
        } else {
            Vec::new()
        },
        evidence: Vec::new(),
        verdict: Verdict {
            accepted,
            reason: if accepted { "accepted" } else { "proof" }.into(),
            detail: String::new(),
        },
    };
    SealedWindow {
        window,
        validator: Hotkey([42; 32]),
        checkpoint: [9; 32],
        entries: vec![entry(1, true), entry(2, false)],
        credits: Vec::new(),
    }
}
