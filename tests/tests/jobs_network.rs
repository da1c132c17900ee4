//! A client job end to end on a local network (tiny model, CPU): a client submits a job
//! with a WebAssembly reward to the validator's gateway; an honest miner mines it beside
//! the subnet's work, a dishonest one uploads job groups whose rewards it made up; the
//! client follows the stream and receives only verified rollouts, all of the honest
//! miner; the status names the dishonest miner's rejections; a bad module and a malformed
//! job are refused at the gateway; the Python client (`python/grail_client`) reads the
//! same stream as whole groups.

use std::path::Path;

use grail_client::ClientError;
use grail_e2e::{open_wiring, publish_base, spawn_role, TestNet, ToyEnv};
use grail_jobs::api::DeliveredRollout;
use grail_jobs::reward::encode_module;
use grail_jobs::spec::{JobRequest, PromptRequest};
use grail_jobs::{JobEnvironment, RewardSpec};
use grail_mine::jobs::mine_job_groups;
use grail_node::checkpoints::CurrentModel;
use grail_node::network::Stop;
use grail_proto::rules::WindowPlan;
use grail_proto::{encode_bundle, SketchCoefficients, WindowBundle};
use grail_validate::reverify_cli::{load_job, reverify_lane};

const KEY: &str = "lab-key-0123456789abcdefghijklmn";

fn job(deadline_unix: u64) -> JobRequest {
    JobRequest {
        prompts: (0..6)
            .map(|i| PromptRequest {
                prompt: Some(format!("Write anything, take {i}.")),
                ..Default::default()
            })
            .collect(),
        reward: RewardSpec::Wasm {
            module: encode_module(&wat::parse_str(grail_e2e::LENGTH_REWARD).unwrap()),
        },
        group_size: 4,
        max_new_tokens: 8,
        temperature: 1.0,
        groups_per_prompt: 2,
        deadline_unix,
        pass_threshold: 1.0,
    }
}

fn api_address(state_dir: &Path) -> String {
    for _ in 0..600 {
        if let Ok(a) = std::fs::read_to_string(state_dir.join("api-address")) {
            return format!("http://{}", a.trim());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the validator's API did not come up");
}

#[test]
fn a_client_job_is_mined_verified_and_streamed() {
    let net = TestNet::new(2, 250, 12, 8, 3);
    let env: &'static ToyEnv = Box::leak(Box::default());
    let start = net.info.start_window;
    let windows = 4;
    let keys = net.tmp.path().join("api-keys");
    std::fs::write(&keys, format!("lab {KEY}\n")).unwrap();
    grail_e2e::runtime().block_on(publish_base(&net.root, env));
    let validator_state = net.config("validator").state_dir;

    // The validator, with its gateway; it keeps serving until the client is done.
    let root = net.root.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (sealed_tx, sealed_rx) = std::sync::mpsc::channel();
    let validator = spawn_role("validator", move || {
        Box::pin(async move {
            let w = open_wiring(&root, "validator", |c| {
                c.jobs.enabled = true;
                c.jobs.api_keys_file = Some(keys);
                // Job credit uncapped here (9× the subnet's), so it counts delivered groups.
                c.jobs.max_share = 0.9;
                c.validator.http = "127.0.0.1:0".into();
            })
            .await;
            let state = grail_validate::run(&w, env, Some(start), Some(windows), Stop::never())
                .await
                .unwrap();
            sealed_tx.send(state).unwrap();
            tokio::task::spawn_blocking(move || done_rx.recv())
                .await
                .ok();
        })
    });
    let api = api_address(&validator_state);
    // A second validator without a gateway follows the first one's jobs from its bucket
    // and credits the same job groups in its own weights.
    net.add_validator("validator-2", 42);
    let root = net.root.clone();
    let follower = spawn_role("validator-2", move || {
        Box::pin(async move {
            let w = open_wiring(&root, "validator-2", |c| c.jobs.max_share = 0.9).await;
            grail_validate::run(&w, env, Some(start), Some(windows), Stop::never())
                .await
                .unwrap()
        })
    });

    // The client (the grail-client library): a bad module and a malformed job are
    // refused with their reasons, the job is accepted.
    let rt = grail_e2e::runtime();
    let client = grail_client::Client::new(&api, KEY).unwrap();
    let submit = |body: &JobRequest| rt.block_on(client.submit(body));
    let deadline = chrono::Utc::now().timestamp() as u64 + 3_600;
    let mut trapping = job(deadline);
    trapping.reward = RewardSpec::Wasm {
        module: encode_module(
            &wat::parse_str(
                r#"(module (memory (export "memory") 1)
                     (func (export "alloc") (param i32) (result i32) (i32.const 64))
                     (func (export "reward") (param i32 i32 i32 i32 i32 i32) (result f64) unreachable))"#,
            )
            .unwrap(),
        ),
    };
    match submit(&trapping) {
        Err(ClientError::Refused {
            status: 400,
            message,
            field,
        }) => {
            assert!(message.contains("trapped"), "{message}");
            assert!(field.unwrap().starts_with("reward.module"));
        }
        other => panic!("{other:?}"),
    }
    let mut malformed = job(deadline);
    malformed.max_new_tokens = 0;
    match submit(&malformed) {
        Err(ClientError::Refused {
            status: 400, field, ..
        }) => {
            assert_eq!(field.as_deref(), Some("max_new_tokens"))
        }
        other => panic!("{other:?}"),
    }
    let id = submit(&job(deadline)).unwrap().id;
    // The job's canonical bytes, checked against its id.
    assert_eq!(rt.block_on(client.job(&id)).unwrap().id().to_string(), id);

    // The honest miner mines the job beside the subnet's work.
    let root = net.root.clone();
    let gateway = api.clone();
    let honest = spawn_role("miner-1", move || {
        Box::pin(async move {
            let w = open_wiring(&root, "miner-1", |c| {
                c.miner.max_groups = 2;
                c.miner.job_groups = 3;
                c.miner.job_gateways = vec![gateway];
            })
            .await;
            grail_mine::run(&w, env, Some(start), Some(windows), Stop::never())
                .await
                .unwrap()
        })
    });
    // The dishonest miner: honest subnet work, and job groups whose rewards it claims
    // are all 1 (every rollout solved), in every window.
    let root = net.root.clone();
    let gateway = api.clone();
    let dishonest = spawn_role("miner-2", move || {
        Box::pin(async move {
            let w = open_wiring(&root, "miner-2", |c| {
                c.miner.max_groups = 2;
                c.miner.job_groups = 0;
            })
            .await;
            w.publish_store().await.unwrap();
            let mut current: Option<CurrentModel> = None;
            let mut stop = Stop::never();
            let mut forged_windows = 0;
            for k in 0..windows {
                let window = start + k * w.net.window_length;
                w.net.wait_for_block(window, &mut stop).await.unwrap();
                let id = w
                    .checkpoints
                    .in_effect(w.net.chain.as_ref(), window)
                    .await
                    .unwrap()
                    .unwrap();
                CurrentModel::ensure(&mut current, &w.checkpoints, id, w.device)
                    .await
                    .unwrap();
                let model = current.as_ref().unwrap();
                let job_bytes = reqwest::get(format!("{gateway}/v2/jobs"))
                    .await
                    .unwrap()
                    .json::<Vec<serde_json::Value>>()
                    .await
                    .unwrap();
                let Some(job_id) = job_bytes.first().and_then(|j| j["id"].as_str()) else {
                    continue;
                };
                let canonical = reqwest::get(format!("{gateway}/v2/jobs/{job_id}/job"))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let job = JobEnvironment::load(&canonical).unwrap();
                let wr = w.net.window_randomness(window).await.unwrap();
                let plan = WindowPlan {
                    window,
                    window_randomness: wr,
                    checkpoint: id.digest,
                    environment: env_id(),
                    generation: w.config.subnet.generation(),
                    group_size: w.config.subnet.group_size,
                };
                let coefficients =
                    SketchCoefficients::derive(&wr, model.context.model.config().hidden_size);
                let mut groups = mine_job_groups(
                    &model.context,
                    &job,
                    &plan,
                    &coefficients,
                    &w.key,
                    &[0, 1],
                    &|| false,
                )
                .unwrap();
                for g in &mut groups {
                    for r in &mut g.rollouts {
                        r.reward = 1.0;
                        r.success = true;
                        r.advantage = 0.0;
                    }
                    // Unequal claimed rewards keep it "in the zone" as a cheater wants.
                    g.rollouts[0].reward = 0.5;
                    let rewards: Vec<f64> = g.rollouts.iter().map(|r| r.reward).collect();
                    for (r, a) in g
                        .rollouts
                        .iter_mut()
                        .zip(grail_proto::grpo::advantages(&rewards))
                    {
                        r.advantage = a;
                    }
                    w.key.sign_group(g);
                }
                let bundle = WindowBundle {
                    hotkey: w.key.public(),
                    window,
                    groups,
                };
                w.store
                    .upload_bundle_in(
                        window,
                        Some(job_id),
                        &w.key.public(),
                        encode_bundle(&bundle).unwrap(),
                    )
                    .await
                    .unwrap();
                forged_windows += 1;
            }
            (w.key.public().to_ss58(), forged_windows)
        })
    });
    let mined = honest.join().unwrap();
    let (cheater, forged) = dishonest.join().unwrap();
    let state = sealed_rx.recv().unwrap();
    assert!(mined.iter().any(|m| m.job_groups > 0), "{mined:?}");
    assert!(forged > 0);
    assert_eq!(state.windows.len() as u64, windows);
    // Both validators credited the same job work, window by window.
    let followed = follower.join().unwrap();
    let job_credit = |s: &grail_validate::ValidatorState| -> Vec<(u64, f64)> {
        s.windows.iter().map(|(&w, s)| (w, s.job_credit)).collect()
    };
    eprintln!(
        "job credit by window: gateway {:?}, follower {:?}",
        job_credit(&state),
        job_credit(&followed)
    );
    assert!(job_credit(&state).iter().any(|&(_, c)| c > 0.0));
    assert_eq!(job_credit(&followed), job_credit(&state));
    let credited: f64 = job_credit(&state).iter().map(|&(_, c)| c).sum();
    // The lanes are reported as strata of the zone market, by both validators alike.
    let stratum = grail_node::zone::job_stratum(&id);
    let reported: f64 = state
        .windows
        .values()
        .filter_map(|s| s.strata.get(&stratum))
        .map(|c| c.in_zone)
        .sum();
    assert!(
        reported >= credited,
        "{reported} in-zone job groups reported"
    );
    for (w, s) in &state.windows {
        assert_eq!(
            s.strata.get(&stratum),
            followed.windows[w].strata.get(&stratum)
        );
    }

    // The client follows the stream to the end of what was delivered: only verified
    // rollouts, all the honest miner's, whole groups, each reward the module's and its
    // log-probs the validator's.
    let mut rollouts: Vec<DeliveredRollout> = Vec::new();
    let mut cursor = 0;
    loop {
        let (batch, next) = rt.block_on(client.rollouts(&id, cursor, 7, 0)).unwrap();
        if batch.is_empty() {
            break;
        }
        rollouts.extend(batch);
        cursor = next;
    }
    assert!(!rollouts.is_empty(), "nothing was delivered");
    assert_eq!(rollouts.len() % 4, 0);
    for (i, r) in rollouts.iter().enumerate() {
        assert_eq!(r.cursor, i as u64);
        assert_ne!(r.miner, cheater);
        assert_eq!(r.job, id);
        // The module sees the completion without its end-of-sequence marker.
        let text = r
            .completion
            .strip_suffix("<|im_end|>")
            .unwrap_or(&r.completion);
        assert_eq!(r.reward, (text.len() % 3) as f64 / 2.0, "{r:?}");
        assert_eq!(r.logprobs.len(), r.completion_tokens.len());
    }
    // The status counts the deliveries and names the dishonest miner's rejections.
    let status = rt.block_on(client.status(&id)).unwrap();
    eprintln!("job status after {windows} windows: {status:?}");
    assert_eq!(status.rollouts_delivered, rollouts.len() as u64);
    assert_eq!(
        status.groups_delivered as f64, credited,
        "one unit per delivered group"
    );
    assert_eq!(status.cost.credit_units, credited);
    assert_eq!(
        status.cost.completion_tokens,
        rollouts
            .iter()
            .map(|r| r.completion_tokens.len() as u64)
            .sum::<u64>()
    );
    assert_eq!(status.groups_delivered * 4, rollouts.len() as u64);
    assert!(
        status.in_zone_share.is_some_and(|s| s > 0.0 && s <= 1.0),
        "{status:?}"
    );
    assert!(
        status.rejected.get("reward_mismatch").copied().unwrap_or(0) > 0,
        "{status:?}"
    );
    // The Python client reads the same stream as whole groups.
    let key_file = net.tmp.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../python/examples/summarize.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&api)
        .arg(&key_file)
        .arg(&id)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(py["rollouts"], rollouts.len());
    assert_eq!(py["groups"], rollouts.len() / 4);
    assert_eq!(py["group_sizes"], serde_json::json!([4]));
    assert_eq!(
        py["cursors"],
        serde_json::json!((0..rollouts.len()).collect::<Vec<_>>())
    );
    for sum in py["mean_advantage_per_group"].as_array().unwrap() {
        assert!(sum.as_f64().unwrap().abs() < 1e-6, "{py}");
    }
    assert_eq!(py["unknown_job_status"], 404);
    // Exported as Parquet, one row per rollout.
    let parquet = net.tmp.path().join("job.parquet");
    let rows = rt
        .block_on(grail_client::export(&client, &id, &parquet))
        .unwrap();
    assert_eq!(rows, rollouts.len());
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&parquet).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as usize,
        rollouts.len()
    );
    // The lanes were pinned at the deadlines like the subnet's bundles: the validator's pin
    // book holds the job's lane with the honest miner's bundle pinned.
    let book = grail_validate::PinBook::load(&validator_state);
    let pinned = (0..200u64)
        .filter_map(|w| book.get(w))
        .filter_map(|p| p.lanes.get(&id))
        .flat_map(|lane| lane.miners.values())
        .filter(|o| matches!(o, grail_validate::PinOutcome::Pinned(_)))
        .count();
    assert!(pinned > 0, "no job lane bundle was pinned");
    // TRL's GRPO trains the job's checkpoint on the stream (python/examples/trl_grpo.py).
    trl_example(&net, &api, &key_file, &id, rollouts.len() / 4);
    done_tx.send(()).unwrap();
    validator.join().unwrap();

    // A client re-verifies the lane archive a delivered rollout names, offline
    // (`grail-validator reverify --job`): the same verdicts; a tampered copy disagrees.
    rt.block_on(async {
        let w = open_wiring(&net.root, "validator", |c| c.validator.http = String::new()).await;
        let job = load_job(&w, &id).await.unwrap();
        assert!(load_job(&w, &"0".repeat(64)).await.is_err());
        let key = &rollouts[0].archive;
        let window = grail_store::layout::window_of(key).unwrap();
        let name = key.rsplit('/').next().unwrap().trim_end_matches(".archive");
        let digest: [u8; 32] = hex::decode(name).unwrap().try_into().unwrap();
        let checks = reverify_lane(&w, env, Some(&job), window, Some(digest))
            .await
            .unwrap();
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].entries.is_empty());
        assert_eq!(checks[0].mismatches(), 0, "{:?}", checks[0]);
        let (mut tampered, _) = w
            .store
            .get_archive_in(window, Some(&id), &digest)
            .await
            .unwrap();
        let entry = tampered
            .entries
            .iter_mut()
            .find(|e| e.verdict.accepted)
            .unwrap();
        entry.verdict.accepted = false;
        entry.verdict.reason = "proof_failed".into();
        let forged = w.store.put_lane_archive(&tampered, &id).await.unwrap();
        let name = forged
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".archive");
        let forged: [u8; 32] = hex::decode(name).unwrap().try_into().unwrap();
        let checks = reverify_lane(&w, env, Some(&job), window, Some(forged))
            .await
            .unwrap();
        assert_eq!(checks[0].mismatches(), 1);
        // Without --archive: every archive of the lane's window, both of them.
        let all = reverify_lane(&w, env, Some(&job), window, None)
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
    });
}

/// Runs the TRL example on the delivered groups with the Python `cargo xtask ci` installs
/// (`GRAIL_TRL_PYTHON`): one GRPO step per group, the stream's log-probs equal to the
/// model's own before the first step, and the weights moved.
fn trl_example(net: &TestNet, api: &str, key_file: &Path, id: &str, groups: usize) {
    let Some(python) = std::env::var_os("GRAIL_TRL_PYTHON") else {
        eprintln!("TRL example skipped: GRAIL_TRL_PYTHON is not set (cargo xtask ci sets it)");
        return;
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../python/examples/trl_grpo.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(net.tmp.path().join("tiny"))
        .args(["--gateway", api, "--job", id, "--no-wait"])
        .arg("--key-file")
        .arg(key_file)
        .args(["--groups", &groups.to_string(), "--groups-per-step", "1"])
        .args(["--learning-rate", "1e-3"])
        .arg("--out")
        .arg(net.tmp.path().join("trl-out"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // TRL logs its metrics on stdout; the summary is the last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("TRL example: {summary}");
    assert_eq!(summary["groups"], groups);
    assert_eq!(summary["group_size"], 4);
    assert_eq!(summary["steps"], groups);
    assert_eq!(summary["groups_left_unused"], 0);
    let gap = summary["logprob_gap_at_step_0"].as_f64().unwrap();
    assert!(
        gap < 1e-3,
        "stream log-probs differ from the model's by {gap}"
    );
    let moved = summary["weights_moved_l2"].as_f64().unwrap();
    assert!(moved > 0.0, "GRPO did not move the weights: {summary}");
}

fn env_id() -> grail_proto::EnvironmentId {
    use grail_env::Environment;
    ToyEnv::default().id()
}
