//! An honest network end to end (tiny model, CPU): two miners, a validator and a trainer,
//! each a task on one runtime on paused time (the chain, beacon and deadlines on tokio's
//! clock), for seven windows (the validator and the trainer
//! restart after two and resume from their state). Every honest group is accepted,
//! weights are set, a trained checkpoint is published and rotated in, the HTTP API serves
//! the state and every miner's verdicts, a sealed archive re-verifies offline to the same
//! verdicts (a tampered one does not), and the sealed windows export as a Parquet dataset.

use std::io::{Read, Write};
use std::sync::{Arc, RwLock};

use futures::FutureExt;
use grail_chain::{Clock, TokioClock};
use grail_e2e::{
    open_clocked_wiring, open_wiring, paused_runtime, publish_base, runtime, ChainFault,
    FaultyChain, TestNet, ToyEnv,
};
use grail_node::network::Stop;
use grail_proto::archive::encode_archive;
use grail_train::export::export_windows;
use grail_validate::reverify_cli::reverify_window;
use grail_validate::{serve_api, ApiState, ValidatorState};

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn honest_network_trains_rotates_and_reverifies() {
    let net = TestNet::new(2, 250, 12, 12, 3);
    let env: &'static ToyEnv = Box::leak(Box::default());
    let start = net.info.start_window;
    let net_wl = 12;
    // Seven 3-s windows: the challenge comes `PIN_SECONDS` (two windows) after each
    // deadline, so the first trained checkpoint is in effect from the sixth or so.
    let windows = 7;
    let roles = ["trainer", "validator", "miner-1", "miner-2"];
    // Every role is a task on one runtime on paused time: the windows pass as fast as the
    // roles work, in the same order on every run.
    let rt = paused_runtime();
    let clock: Arc<dyn Clock> = rt.block_on(async { Arc::new(TokioClock::starting_now()) });
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for name in roles {
        let (root, info, clock) = (net.root.clone(), net.info.clone(), clock.clone());
        handles.push(local.spawn_local(async move {
            let mut w = open_clocked_wiring(&root, &info, clock, name, |c| {
                c.miner.max_groups = 4;
                c.trainer.grpo.learning_rate = 1e-3;
                c.trainer.grpo.warmup_steps = 0;
                // The KL term loads the base model again as the frozen reference.
                c.trainer.grpo.kl_coef = 0.01;
                // The offline re-verification below needs old checkpoints.
                c.trainer.keep_checkpoints = 100;
                c.validator.http = String::new();
            })
            .await;
            if name == "miner-1" || name == "miner-2" {
                let mined = grail_mine::run(&w, env, Some(start), Some(windows), Stop::never())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                return (mined.len(), 0);
            }
            // The validator is killed right after its second weights call, the trainer
            // right after announcing its first trained checkpoint (before either saved
            // its state); each restarts until it has done every window.
            let (method, dir) = match name {
                "validator" => ("set_weights", w.config.state_dir.clone()),
                _ => ("commit", w.config.state_dir.clone()),
            };
            let faulty = Arc::new(FaultyChain::new(
                w.net.chain.clone(),
                method,
                2,
                ChainFault::KillAfter,
            ));
            w.net.chain = faulty.clone();
            let mut kills = 0;
            let mut from = Some(start);
            loop {
                let done = match name {
                    "validator" => ValidatorState::load(&dir).unwrap().windows.len() as u64,
                    _ => grail_train::TrainerState::load(&dir)
                        .unwrap()
                        .last_window
                        .map_or(0, |l| (l - start) / net_wl + 1),
                };
                if done >= windows {
                    break;
                }
                let (n, stop) = (Some(windows - done), Stop::never());
                let run = async {
                    match name {
                        "validator" => grail_validate::run(&w, env, from, n, stop)
                            .await
                            .map(|_| ()),
                        _ => grail_train::run(&w, env, from, n, stop).await.map(|_| ()),
                    }
                };
                match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                    Ok(result) => result.unwrap_or_else(|e| panic!("{name}: {e}")),
                    Err(_) => kills += 1,
                }
                from = None;
            }
            (
                kills,
                faulty.calls.load(std::sync::atomic::Ordering::SeqCst),
            )
        }));
    }
    let results: Vec<(usize, usize)> = rt.block_on(local.run_until(async {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }));
    let (trainer_kills, _) = results[0];
    let (validator_kills, weight_calls) = results[1];
    assert_eq!(
        (trainer_kills, validator_kills),
        (1, 1),
        "each fault fired once"
    );
    assert_eq!(results[2].0, windows as usize, "miner-1 mined every window");
    let state = ValidatorState::load(&net.config("validator").state_dir).unwrap();
    let trainer = grail_train::TrainerState::load(&net.config("trainer").state_dir).unwrap();
    eprintln!("start {start}; published: {:?}", trainer.published);
    // The trainer was killed right after announcing checkpoint 1; the restart recovered
    // its record from the manifest instead of training its windows again, so every
    // checkpoint was trained on windows no earlier one used.
    let numbers: Vec<u64> = trainer.published.iter().map(|p| p.number).collect();
    assert!(numbers.len() >= 2, "published {numbers:?}");
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>());
    let manifests: Vec<(u64, u64)> = runtime().block_on(async {
        let t = open_wiring(&net.root, "trainer", |_| {}).await;
        let mut out = Vec::new();
        for &n in &numbers[1..] {
            let m = t
                .store
                .checkpoint_manifest(n, &t.key.public())
                .await
                .unwrap();
            out.push(m.manifest.windows);
        }
        out
    });
    for pair in manifests.windows(2) {
        assert!(
            pair[1].0 > pair[0].1,
            "windows trained twice: {manifests:?}"
        );
    }
    let killed = manifests[0].1;
    assert_eq!(trainer.published[1].trained_through, Some(killed));
    assert!(trainer.last_window >= Some(killed));
    // The killed run's steps on that window died with it; a retrain would have logged them.
    assert!(
        !trainer.steps.iter().any(|s| s.window == killed),
        "window {killed} trained again after the restart"
    );
    for (w, s) in &state.windows {
        eprintln!(
            "window {w}: checkpoint {:?} verdicts {:?} bundles {:?}",
            s.checkpoint, s.verdicts, s.bundles
        );
    }
    let mut rotated = false;
    for (w, s) in &state.windows {
        assert_eq!(s.bundles.get("accepted"), Some(&2), "window {w}: {s:?}");
        assert!(s.groups_checked > 0, "window {w}: nothing checked");
        assert_eq!(
            s.verdicts.keys().collect::<Vec<_>>(),
            ["accepted"],
            "window {w}: {:?}",
            s.verdicts
        );
        rotated |= s.checkpoint.unwrap_or(0) >= 1;
    }
    // Weights went out once per window: the killed window's call reached the chain but
    // was not recorded, and the restarted validator did not set that window's weights again.
    assert_eq!(weight_calls, windows as usize, "set_weights calls");
    let recorded = state
        .windows
        .values()
        .filter(|s| !s.weights.is_empty())
        .count();
    assert_eq!(recorded, windows as usize - 1, "{:?}", state.windows);
    assert!(
        rotated,
        "no window was validated with a trained checkpoint: {:?}",
        state.windows
    );
    assert!(state.windows.values().any(|s| s.in_zone > 0));
    // Per-stratum zone counts (what zone-targeting miners read) add up to the window's.
    for s in state.windows.values() {
        let zone: f64 = s.strata.values().map(|c| c.in_zone).sum();
        assert_eq!(zone, s.in_zone as f64, "{:?}", s.strata);
    }
    // After the first update the policy differs from the reference: the KL term is live.
    assert!(
        trainer.steps.iter().any(|s| s.report.kl > 0.0),
        "no step measured a KL: {:?}",
        trainer
            .steps
            .iter()
            .map(|s| s.report.kl)
            .collect::<Vec<_>>()
    );
    let miner_uids: Vec<u16> = net
        .info
        .participants
        .iter()
        .filter(|p| p.name.starts_with("miner"))
        .map(|p| p.uid)
        .collect();
    let last = state.windows.values().last().unwrap();
    assert!(
        last.weights
            .iter()
            .any(|(uid, v)| miner_uids.contains(uid) && *v > 0),
        "{:?}",
        last.weights
    );

    // Re-verify one archive offline (what `grail-validator reverify` does): same
    // verdicts, same bytes; a tampered copy disagrees.
    rt.block_on(async {
        let w = open_clocked_wiring(&net.root, &net.info, clock.clone(), "validator", |c| {
            c.validator.http = String::new()
        })
        .await;
        let (&window, summary) = state
            .windows
            .iter()
            .find(|(_, s)| s.checkpoint.unwrap_or(0) >= 1)
            .unwrap();
        let digest: [u8; 32] = hex::decode(&summary.archive).unwrap().try_into().unwrap();
        let (archive, bytes) = w.store.get_archive(window, &digest).await.unwrap();
        assert_eq!(encode_archive(&archive).unwrap(), bytes.to_vec());
        // Every archive of the window (one, unless a retry sealed it twice) agrees.
        let checks = reverify_window(&w, env, window, None).await.unwrap();
        assert!(
            checks.iter().any(|c| c.digest == summary.archive),
            "{checks:?}"
        );
        for check in &checks {
            assert!(check.checkpoint >= 1);
            assert!(!check.entries.is_empty());
            assert_eq!(check.mismatches(), 0, "{check:?}");
            for e in &check.entries {
                assert_eq!(e.recomputed, e.archived, "byte-identical verdicts");
            }
        }
        let mut tampered = archive.clone();
        let entry = tampered
            .entries
            .iter_mut()
            .find(|e| e.verdict.accepted)
            .unwrap();
        entry.verdict.accepted = false;
        entry.verdict.reason = "proof_failed".into();
        let forged = w.store.put_archive(&tampered).await.unwrap();
        let checks = reverify_window(&w, env, window, Some(forged))
            .await
            .unwrap();
        assert_eq!(checks[0].mismatches(), 1);

        // The sealed windows as a dataset (`grail-trainer export`): one row per accepted
        // rollout of every archive in range, the forged one included (it is in the
        // validator's bucket, and the export takes what validators sealed).
        let trainer =
            open_clocked_wiring(&net.root, &net.info, clock.clone(), "trainer", |_| {}).await;
        let last = state.last_window.unwrap();
        let out = net.tmp.path().join("windows.parquet");
        let report = export_windows(&trainer, start, last, &out).await.unwrap();
        assert_eq!(report.windows, windows as usize);
        assert!(report.archives > windows as usize, "{report:?}");
        assert!(report.rows > 0 && report.rows % 4 == 0, "{report:?}");
        if let Some(python) = std::env::var_os("GRAIL_TOOLS_PYTHON").filter(|p| !p.is_empty()) {
            let read = std::process::Command::new(python)
                .args([
                    "-c",
                    "import sys, pandas; print(len(pandas.read_parquet(sys.argv[1])))",
                ])
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                read.status.success(),
                "{}",
                String::from_utf8_lossy(&read.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&read.stdout).trim(),
                report.rows.to_string()
            );
        }

        // The HTTP API over the final state.
        let api = Arc::new(RwLock::new(ApiState::from_state(
            w.key.public().to_ss58(),
            &state,
        )));
        let addr = serve_api("127.0.0.1:0", api).await.unwrap().to_string();
        let get = |path: String| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || http_get(&addr, &path))
        };
        assert_eq!(get("/health".into()).await.unwrap(), (200, "ok".into()));
        let (status, body) = get("/state".into()).await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains(&w.key.public().to_ss58()));
        let (status, body) = get(format!("/window/{window}/state")).await.unwrap();
        assert_eq!(status, 200);
        assert!(
            body.contains("sigma_histogram") && body.contains("prompts"),
            "{body}"
        );
        assert_eq!(get("/window/1/state".into()).await.unwrap().0, 404);
        let (status, metrics) = get("/metrics".into()).await.unwrap();
        assert_eq!(status, 200);
        assert!(
            metrics.contains("grail_validator_groups_total{reason=\"accepted\"}"),
            "{metrics}"
        );
        // Every miner reads its own verdicts of each window.
        for p in net
            .info
            .participants
            .iter()
            .filter(|p| p.name.starts_with("miner"))
        {
            let (status, body) = get(format!("/verdicts/{}", p.hotkey)).await.unwrap();
            assert_eq!(status, 200, "{body}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            let mined = json["windows"].as_array().unwrap();
            assert_eq!(mined.len(), windows as usize, "{body}");
            for m in mined {
                assert_eq!(m["uid"].as_u64(), Some(u64::from(p.uid)));
                assert_eq!(m["bundle_status"], "accepted");
                assert_eq!(m["zeroed"], false);
                assert!(m["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|g| g["reason"] == "accepted"));
            }
        }
        let trainer_key = &net
            .info
            .participants
            .iter()
            .find(|p| p.name == "trainer")
            .unwrap()
            .hotkey;
        assert_eq!(
            get(format!("/verdicts/{trainer_key}")).await.unwrap().0,
            404
        );
        assert_eq!(get("/verdicts/not-a-hotkey".into()).await.unwrap().0, 400);
    });
}

/// Ctrl-C in the middle of a window: the miner stops between groups and uploads nothing
/// for the unfinished window.
#[test]
fn a_stopped_miner_uploads_no_partial_bundle() {
    let net = TestNet::new(1, 250, 40, 12, 1);
    let env = ToyEnv::default();
    let rt = runtime();
    rt.block_on(async {
        publish_base(&net.root, &env).await;
        let miner = open_wiring(&net.root, "miner-1", |c| c.miner.max_groups = 100_000).await;
        let window = miner.net.current_window().await.unwrap() + 40;
        let (tx, stop) = grail_node::network::stop_signal();
        let chain = miner.net.chain.clone();
        tokio::spawn(async move {
            // Two seconds into the window (of ten), mid-generation.
            while chain.block_number().await.unwrap() < window + 8 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let _ = tx.send(true);
        });
        let mined = grail_mine::run(&miner, &env, Some(window), Some(1), stop)
            .await
            .unwrap();
        assert!(mined.is_empty(), "{mined:?}");
        assert!(miner.store.list_bundles(window).await.unwrap().is_empty());
        assert!(
            miner.net.chain.block_number().await.unwrap() < window + 40,
            "it stopped before the deadline"
        );
    });
}
