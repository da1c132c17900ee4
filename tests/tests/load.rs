//! Load and bucket faults in one window (tiny model, CPU): many honest miners next to a
//! bucket whose S3 server is down, one whose server answers every request with 503, one
//! that stalls (10 minutes per read) and one holding an oversized bundle. The window is
//! verified without waiting for the stalled bucket, every honest group is accepted, each
//! faulty bucket gets its reason, and nothing from them is credited.
//!
//! `GRAIL_LOAD_MINERS` (default 8) and `GRAIL_LOAD_GROUPS` (default 2) size it;
//! `cargo xtask load` runs it with 64 miners and prints the figures for docs/reliability.md.
//! `GRAIL_LOAD_FILL=1` (`cargo xtask load --fill`) fills every honest bundle to the
//! largest a validator reads (`DEFAULT_MAX_BUNDLE_BYTES`, at most
//! `MAX_GROUPS_PER_BUNDLE` groups): the groups the challenge will sample are mined
//! honestly, the rest are signed filler groups that pass every check without a forward
//! pass, so the window's cost and the validator's peak memory are those of the worst
//! bundles it accepts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grail_e2e::ToyEnv;
use grail_env::Environment;
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_mine::groups::{make_group, WindowPlan};
use grail_node::config::SubnetSettings;
use grail_node::context::ModelContext;
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::signing::Keypair;
use grail_proto::{encode_bundle, SketchCoefficients, WindowBundle};
use grail_store::{Store, StoreConfig};
use grail_validate::{check_window, FetchPolicy, MinerSource, WindowInputs};
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

/// Peak resident memory is measured from here on (Linux: `clear_refs` 5 resets VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Prompt tokens already used in one miner's bundle (a second group for a prompt is a
/// `duplicate_prompt`).
type UsedPrompts = std::collections::HashSet<Vec<u32>>;

/// A signed group on prompt `prompt_id` that passes every check without a forward pass
/// (binding, structure, signature) with random completions: what fills a bundle to the
/// largest size a validator reads. `None` when the prompt's tokens are already used.
fn filler_group(
    context: &ModelContext,
    env: &dyn Environment,
    plan: &WindowPlan,
    key: &Keypair,
    prompt_id: u64,
    used: &mut UsedPrompts,
    rng: &mut u64,
) -> Option<grail_proto::Group> {
    let (_, prompt) = context.prompt(env, prompt_id).ok()?;
    if !used.insert(prompt.clone()) {
        return None;
    }
    let vocab = context.model.config().vocab_size as u64;
    let mut next = || {
        *rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *rng >> 33
    };
    let eos = context.eos_ids[0];
    let length = plan.generation.max_new_tokens as usize;
    let rollouts = (0..plan.group_size)
        .map(|_| {
            let mut completion: Vec<u32> = Vec::with_capacity(length);
            while completion.len() + 1 < length {
                let t = (next() % vocab) as u32;
                if !context.eos_ids.contains(&t) {
                    completion.push(t);
                }
            }
            completion.push(eos);
            let tokens = [prompt.as_slice(), &completion].concat();
            grail_proto::Rollout {
                sketches: (0..tokens.len())
                    .map(|_| grail_proto::SketchDigest([next() as u16 & 0x7FFF; 2]))
                    .collect(),
                logprobs: vec![-2.5; completion.len()],
                prompt_len: prompt.len() as u32,
                tokens,
                reward: 0.0,
                advantage: 0.0,
                success: false,
            }
        })
        .collect();
    let mut group = grail_proto::Group {
        header: plan.header(key.public(), prompt_id),
        rollouts,
        signature: grail_proto::Signature([0; 64]),
    };
    key.sign_group(&mut group);
    Some(group)
}

/// Miner `miner`'s bundle filled to `max_bytes` (at most `MAX_GROUPS_PER_BUNDLE` groups):
/// `honest` groups at the indices the challenge samples, filler groups elsewhere.
#[allow(clippy::too_many_arguments)]
fn filled_bundle(
    context: &ModelContext,
    env: &dyn Environment,
    plan: &WindowPlan,
    key: &Keypair,
    miner: usize,
    honest: Vec<grail_proto::Group>,
    challenge: &[u8; 32],
    max_bytes: usize,
) -> Vec<u8> {
    let mut used: UsedPrompts = honest
        .iter()
        .map(|g| g.rollouts[0].prompt().to_vec())
        .collect();
    let mut rng = miner as u64 + 1;
    let mut ids = (0..).map(|k| 10_000_000 * (miner as u64 + 1) + k);
    let mut filler = || loop {
        let id = ids.next().expect("ids");
        if let Some(g) = filler_group(context, env, plan, key, id, &mut used, &mut rng) {
            break g;
        }
    };
    // How many groups fit: one filler group's encoded size (fillers are the longest).
    let one = filler();
    let per_group = encode_bundle(&WindowBundle {
        hotkey: key.public(),
        window: plan.window,
        groups: vec![one.clone(), one.clone()],
    })
    .unwrap()
    .len()
        - encode_bundle(&WindowBundle {
            hotkey: key.public(),
            window: plan.window,
            groups: vec![one.clone()],
        })
        .unwrap()
        .len();
    let mut count = (max_bytes / per_group).min(grail_proto::params::MAX_GROUPS_PER_BUNDLE);
    loop {
        let sampled = grail_proto::rules::bundle::sample_groups(
            challenge,
            &key.public(),
            count,
            |_| true,
            honest.len(),
        );
        let mut honest_groups = honest.clone().into_iter();
        let mut first = Some(one.clone());
        let groups: Vec<_> = (0..count)
            .map(|i| {
                if sampled.contains(&i) {
                    honest_groups
                        .next()
                        .expect("one honest group per sampled index")
                } else {
                    first.take().unwrap_or_else(&mut filler)
                }
            })
            .collect();
        let bytes = encode_bundle(&WindowBundle {
            hotkey: key.public(),
            window: plan.window,
            groups,
        })
        .unwrap();
        if bytes.len() <= max_bytes {
            return bytes;
        }
        count -= 1 + (bytes.len() - max_bytes) / per_group;
    }
}

#[test]
fn many_miners_and_faulty_buckets_fit_in_one_window() {
    let miners = env_usize("GRAIL_LOAD_MINERS", 8);
    let groups = env_usize("GRAIL_LOAD_GROUPS", 2);
    let fill = env_usize("GRAIL_LOAD_FILL", 0) == 1;
    let challenge = [5; 32];
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    write_tiny_model(&TinySpec::default(), &model).unwrap();
    let context = ModelContext::load(&model, tch::Device::Cpu).unwrap();
    let env = ToyEnv::default();
    // Filled bundles use long completions, so the byte cap binds before the group cap.
    let subnet = SubnetSettings {
        max_new_tokens: if fill { 48 } else { 12 },
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
    let mut bundle_bytes = 0usize;
    for i in 0..miners {
        // Distinct from each other and from the faulty buckets' keys for any count.
        let mut seed = [1u8; 32];
        seed[..4].copy_from_slice(&(i as u32).to_le_bytes());
        let key = Keypair::from_seed(&seed);
        let groups: Vec<_> = (0..groups)
            .map(|g| {
                let prompt = (i * 1000 + g) as u64;
                make_group(&context, &env, &plan, &coefficients, &key, prompt).unwrap()
            })
            .collect();
        let bytes = if fill {
            let cap = grail_proto::params::DEFAULT_MAX_BUNDLE_BYTES;
            filled_bundle(&context, &env, &plan, &key, i, groups, &challenge, cap)
        } else {
            let bundle = WindowBundle {
                hotkey: key.public(),
                window: WINDOW,
                groups,
            };
            encode_bundle(&bundle).unwrap()
        };
        bundle_bytes += bytes.len();
        let store = StoreConfig::Local {
            dir: tmp.path().join(format!("miner-{i}")),
        }
        .open()
        .unwrap();
        rt.block_on(store.upload_bundle(WINDOW, &key.public(), bytes))
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
    let max_bundle_bytes = if fill {
        grail_proto::params::DEFAULT_MAX_BUNDLE_BYTES as u64
    } else {
        1 << 20
    };
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

    let budget = Duration::from_secs(if fill { 10 } else { 2 });
    let inputs = WindowInputs {
        context: &context,
        env: &env,
        plan: plan.clone(),
        challenge_randomness: challenge,
        deadline: chrono::Utc::now() + chrono::Duration::hours(1),
        registered: sources.iter().map(|s| s.hotkey).collect(),
        // Filled bundles hold their honest groups where this many spot checks fall.
        groups_checked: if fill { groups } else { 2 },
        max_bundle_bytes,
        fetch: FetchPolicy {
            concurrency: 16,
            per_miner: budget,
        },
        // Read by upload timestamps: this test measures fetching and checking.
        pins: None,
        lane: None,
    };
    reset_peak_rss();
    let rss_before = peak_rss_mib().unwrap_or(f64::NAN);
    let started = Instant::now();
    let (reports, sealed) = rt.block_on(check_window(
        &inputs,
        &sources,
        Keypair::from_seed(&[99; 32]).public(),
        &ReplaySet::default(),
    ));
    let verify_secs = started.elapsed().as_secs_f64();

    let checked: usize = reports.iter().map(|r| r.checked.len()).sum();
    assert_eq!(sealed.entries.len(), checked);
    let by_key: std::collections::BTreeMap<_, _> = reports.iter().map(|r| (r.hotkey, r)).collect();
    let submitted: usize = honest.iter().map(|k| by_key[k].groups_submitted).sum();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    eprintln!(
        "load: {miners} honest miners x {groups} honest groups{} + 4 faulty buckets; \
         {submitted} groups, {:.1} MiB of bundles; mining {mining_secs:.1} s; \
         window verified in {verify_secs:.1} s ({checked} groups checked, fetch budget {} s); \
         resident memory {rss_before:.0} MiB before the window, peak {peak:.0} MiB during it",
        if fill { " in filled bundles" } else { "" },
        bundle_bytes as f64 / (1 << 20) as f64,
        budget.as_secs(),
    );
    // The stalled bucket (10 minutes per read) did not hold up the window.
    assert!(
        verify_secs < 600.0,
        "the window waited for the stalled bucket"
    );
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
    if fill && miners >= 4 * inputs.fetch.concurrency {
        // The validator holds a batch of `concurrency` bundles at a time, not the window's:
        // its peak stays below the bytes of all bundles (before v5 it held every decoded
        // bundle until the forward-pass checks).
        let all = bundle_bytes as f64 / (1 << 20) as f64;
        assert!(
            peak - rss_before < all / 2.0,
            "peak {peak:.0} MiB, {rss_before:.0} MiB before, {all:.0} MiB of bundles"
        );
    }
}
