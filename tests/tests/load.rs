//! Load and bucket faults in one window (tiny model, CPU): many honest miners next to a
//! bucket whose S3 server is down, one whose server answers every request with 503, one
//! that stalls (10 minutes per read) and one holding an oversized bundle. The window is
//! verified without waiting for the stalled bucket, every honest group is accepted, each
//! faulty bucket gets its reason, and nothing from them is credited.
//!
//! `GRAIL_LOAD_MINERS` (default 8) and `GRAIL_LOAD_GROUPS` (default 2) size it;
//! `cargo xtask load` runs it with 64 miners and prints the figures for docs/reliability.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grail_e2e::ToyEnv;
use grail_env::Environment;
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_node::config::SubnetSettings;
use grail_node::context::ModelContext;
use grail_node::mining::{make_group, WindowPlan};
use grail_node::validator::{check_window, FetchPolicy, MinerSource, WindowInputs};
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::signing::Keypair;
use grail_proto::{encode_bundle, SketchCoefficients, WindowBundle};
use grail_store::{Store, StoreConfig};
use object_store::throttle::{ThrottleConfig, ThrottledStore};

const WINDOW: u64 = 480;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of this process so far (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// An S3 endpoint whose server answers every request with `503 Slow Down`.
async fn failing_s3_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn s3(endpoint: String) -> Store {
    StoreConfig::S3 {
        bucket: "miner".into(),
        endpoint: Some(endpoint),
        region: "us-east-1".into(),
        access_key_id: "key".into(),
        secret_access_key: "secret".into(),
        allow_http: true,
    }
    .open()
    .unwrap()
}

#[test]
fn many_miners_and_faulty_buckets_fit_in_one_window() {
    let miners = env_usize("GRAIL_LOAD_MINERS", 8);
    let groups = env_usize("GRAIL_LOAD_GROUPS", 2);
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    write_tiny_model(&TinySpec::default(), &model).unwrap();
    let context = ModelContext::load(&model, tch::Device::Cpu).unwrap();
    let env = ToyEnv::default();
    let subnet = SubnetSettings {
        max_new_tokens: 12,
        ..SubnetSettings::default()
    };
    let plan = WindowPlan {
        window: WINDOW,
        window_randomness: [3; 32],
        checkpoint: [4; 32],
        environment: env.id(),
        generation: subnet.generation(),
        group_size: 4,
    };
    let coefficients =
        SketchCoefficients::derive(&plan.window_randomness, context.model.config().hidden_size);
    let rt = grail_e2e::runtime();

    // Honest miners: `groups` groups each, in their own local buckets.
    let mined = Instant::now();
    let mut sources = Vec::new();
    let mut honest = Vec::new();
    for i in 0..miners {
        let key = Keypair::from_seed(&[i as u8 + 1; 32]);
        let groups: Vec<_> = (0..groups)
            .map(|g| {
                let prompt = (i * 1000 + g) as u64;
                make_group(&context, &env, &plan, &coefficients, &key, prompt).unwrap()
            })
            .collect();
        let bundle = WindowBundle {
            hotkey: key.public(),
            window: WINDOW,
            groups,
        };
        let store = StoreConfig::Local {
            dir: tmp.path().join(format!("miner-{i}")),
        }
        .open()
        .unwrap();
        rt.block_on(store.upload_bundle(WINDOW, &key.public(), encode_bundle(&bundle).unwrap()))
            .unwrap();
        honest.push(key.public());
        sources.push(MinerSource {
            hotkey: key.public(),
            uid: i as u16,
            store,
        });
    }
    let mining_secs = mined.elapsed().as_secs_f64();

    // Faulty buckets.
    let fault_key = |n: u8| Keypair::from_seed(&[200 + n; 32]).public();
    let stalled_dir = tmp.path().join("stalled");
    let stalled_store = StoreConfig::Local {
        dir: stalled_dir.clone(),
    }
    .open()
    .unwrap();
    let stalled_bundle = WindowBundle {
        hotkey: fault_key(2),
        window: WINDOW,
        groups: vec![make_group(
            &context,
            &env,
            &plan,
            &coefficients,
            &Keypair::from_seed(&[202; 32]),
            7,
        )
        .unwrap()],
    };
    rt.block_on(stalled_store.upload_bundle(
        WINDOW,
        &fault_key(2),
        encode_bundle(&stalled_bundle).unwrap(),
    ))
    .unwrap();
    let stalled = Store::new(Arc::new(ThrottledStore::new(
        object_store::local::LocalFileSystem::new_with_prefix(&stalled_dir).unwrap(),
        ThrottleConfig {
            wait_get_per_call: Duration::from_secs(600),
            ..ThrottleConfig::default()
        },
    )));
    let max_bundle_bytes = 1 << 20;
    let huge = StoreConfig::Local {
        dir: tmp.path().join("huge"),
    }
    .open()
    .unwrap();
    rt.block_on(huge.upload_bundle(
        WINDOW,
        &fault_key(3),
        vec![0u8; 2 * max_bundle_bytes as usize],
    ))
    .unwrap();
    let errors = rt.block_on(failing_s3_server());
    let faulty = [
        ("down", s3("http://127.0.0.1:9".into()), "store_unreachable"),
        ("errors", s3(errors), "store_unreachable"),
        ("stalled", stalled, "store_unreachable"),
        ("huge", huge, "oversized"),
    ];
    let mut expected = Vec::new();
    for (n, (name, store, reason)) in faulty.into_iter().enumerate() {
        let hotkey = fault_key(n as u8);
        expected.push((hotkey, name, reason));
        sources.push(MinerSource {
            hotkey,
            uid: (miners + n) as u16,
            store,
        });
    }

    let budget = Duration::from_secs(2);
    let inputs = WindowInputs {
        context: &context,
        env: &env,
        plan: plan.clone(),
        challenge_randomness: [5; 32],
        deadline: chrono::Utc::now() + chrono::Duration::hours(1),
        registered: sources.iter().map(|s| s.hotkey).collect(),
        groups_checked: 2,
        max_bundle_bytes,
        fetch: FetchPolicy {
            concurrency: 16,
            per_miner: budget,
        },
        // Read by upload timestamps: this test measures fetching and checking.
        pins: None,
    };
    let started = Instant::now();
    let (reports, sealed) = rt
        .block_on(check_window(
            &inputs,
            &sources,
            Keypair::from_seed(&[99; 32]).public(),
            &ReplaySet::default(),
        ))
        .unwrap();
    let verify_secs = started.elapsed().as_secs_f64();

    // The stalled bucket (10 minutes per read) did not hold up the window.
    assert!(
        verify_secs < 600.0,
        "the window waited for the stalled bucket"
    );
    let by_key: std::collections::BTreeMap<_, _> = reports.iter().map(|r| (r.hotkey, r)).collect();
    for key in &honest {
        let r = by_key[key];
        assert_eq!(r.bundle_status, "accepted", "{}", r.detail);
        assert!(!r.checked.is_empty());
        assert!(
            r.checked.iter().all(|c| c.outcome.verdict.accepted),
            "{:?}",
            r.checked
        );
    }
    // Credit is in-zone work: a miner whose groups all scored alike earns none, but the
    // honest miners as a whole do.
    let honest_credit: f64 = honest.iter().map(|k| by_key[k].credited).sum();
    assert!(honest_credit > 0.0);
    for (key, name, reason) in &expected {
        let r = by_key[key];
        assert_eq!(r.bundle_status, *reason, "{name}: {}", r.detail);
        assert_eq!(r.credited, 0.0, "{name}");
        eprintln!("load: {name} bucket -> {} ({})", r.bundle_status, r.detail);
    }
    let checked: usize = reports.iter().map(|r| r.checked.len()).sum();
    assert_eq!(sealed.entries.len(), checked);
    eprintln!(
        "load: {miners} honest miners x {groups} groups + 4 faulty buckets; mining {mining_secs:.1} s; \
         window verified in {verify_secs:.1} s ({checked} groups checked, fetch budget {} s); \
         peak RSS {:.0} MiB",
        budget.as_secs(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}
