//! Sketch commitments per second against the Python reference's proof v5, and proof bytes
//! per token on the wire.
//!
//! `cargo xtask bench sketch` runs it. For each (hidden size, positions) case it writes one
//! matrix of synthetic last-layer hidden states (little-endian f32) to a temporary file,
//! times [`SketchCoefficients::sketch_rows`] on it (the protocol v3/v4 sketch a miner computes
//! for every position), and runs `python/v5_commitments.py` — a PyTorch implementation of
//! grail v5's `create_commitments_batch` — on the same file. Both sides run on one thread
//! (`torch.set_num_threads(1)`; the Rust sketch is single-threaded) and report the best of
//! `REPEATS` calls after a warm-up; file loading and coefficient derivation are not timed.
//! The Python sketches are checked against [`grail_proto::compat::grail_v5::sketch`], so the
//! reference side is known to compute v5 on the same states.
//!
//! The second table encodes window bundles with [`grail_proto::encode_bundle`] and splits
//! their bytes per token into sketches, token ids, log-probs and the rest.
//!
//! Environment: `GRAIL_REFERENCE_PYTHON` (optional: a python with torch and numpy),
//! `GRAIL_BENCH_OUT` (optional: file for the markdown tables).

use std::path::Path;
use std::time::Instant;

use grail_proto::compat::grail_v5;
use grail_proto::params::{PROTOCOL_VERSION, SKETCHES_PER_POSITION};
use grail_proto::{
    encode_bundle, EnvironmentId, GenerationParams, Group, GroupHeader, Hotkey, Rollout, Signature,
    SketchCoefficients, WindowBundle,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// (hidden size, positions) per row of the table.
const CASES: [(usize, usize); 4] = [(576, 1024), (2048, 1024), (4096, 1024), (576, 8192)];
const REPEATS: usize = 5;
const THREADS: usize = 1;
/// The window randomness both sides derive their coefficients from.
const RANDOMNESS: [u8; 32] = [0x5a; 32];
const SCRIPT: &str = include_str!("../python/v5_commitments.py");

/// Hidden states shaped like a real last layer: uniform in (−1.5, 1.5) with 24 random
/// bits each (so top-k ties are improbable), and about 1 % outliers up to ±300.
fn hidden(d: usize, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..d * n)
        .map(|_| {
            let u = rng.next_u64();
            let x = (u & 0xff_ffff) as f32 / (1u32 << 23) as f32 - 1.0;
            if (u >> 32) % 100 == 0 {
                x * 300.0
            } else {
                x * 1.5
            }
        })
        .collect()
}

fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs the Python reference on the written files; `None` (with a message) if it is not
/// configured or fails.
fn reference(work: &Path, files: &[std::path::PathBuf]) -> Option<serde_json::Value> {
    let python = std::env::var("GRAIL_REFERENCE_PYTHON").ok()?;
    let (script, spec, out) = (
        work.join("v5_commitments.py"),
        work.join("spec.json"),
        work.join("out.json"),
    );
    std::fs::write(&script, SCRIPT).ok()?;
    let cases: Vec<_> = CASES
        .iter()
        .zip(files)
        .map(|(&(d, n), file)| json!({"file": file, "hidden": d, "positions": n}))
        .collect();
    let spec_json = json!({
        "randomness": hex::encode(RANDOMNESS),
        "threads": THREADS,
        "repeats": REPEATS,
        "cases": cases,
    });
    std::fs::write(&spec, spec_json.to_string()).ok()?;
    let ok = std::process::Command::new(python)
        .arg(&script)
        .arg(&spec)
        .arg(&out)
        .status()
        .ok()?
        .success();
    if !ok {
        eprintln!("sketch bench: the Python reference run failed");
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok()
}

fn commitments_table() -> String {
    let work = std::env::temp_dir().join(format!("grail-sketch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("temporary folder");
    let states: Vec<Vec<f32>> = CASES.iter().map(|&(d, n)| hidden(d, n)).collect();
    let files: Vec<_> = CASES
        .iter()
        .zip(&states)
        .map(|(&(d, n), h)| {
            let file = work.join(format!("hidden-{d}x{n}.f32"));
            let bytes: Vec<u8> = h.iter().flat_map(|x| x.to_le_bytes()).collect();
            std::fs::write(&file, bytes).expect("write hidden states");
            file
        })
        .collect();

    let ours: Vec<f64> = CASES
        .iter()
        .zip(&states)
        .map(|(&(d, n), h)| {
            let coefficients = SketchCoefficients::derive(&RANDOMNESS, d);
            let seconds = best_of(REPEATS, || {
                let sketches = coefficients.sketch_rows(h);
                assert_eq!(sketches.len(), n);
                std::hint::black_box(sketches);
            });
            n as f64 / seconds
        })
        .collect();

    let theirs = reference(&work, &files);
    let _ = std::fs::remove_dir_all(&work);
    let r_vec = grail_v5::coefficients(&hex::encode(RANDOMNESS)).expect("hex");
    if let Some(v) = &theirs {
        let python_r: Vec<i64> = v["r_vec"]
            .as_array()
            .expect("r_vec")
            .iter()
            .map(|x| x.as_i64().expect("int"))
            .collect();
        let want: Vec<i64> = r_vec.iter().map(|&c| i64::from(c)).collect();
        assert_eq!(
            python_r, want,
            "the Python r_vec differs from compat::grail_v5"
        );
    }

    let torch = theirs
        .as_ref()
        .and_then(|v| v["torch"].as_str().map(str::to_string))
        .unwrap_or_else(|| "not run".into());
    let mut table = format!(
        "| hidden size | positions | grail-rs commitments/s (v3/v4 sketch) | Python v5 `create_commitments_batch` commitments/s (torch {torch}) | ratio | Python sketches equal to `compat::grail_v5` |\n\
         |---|---|---|---|---|---|\n"
    );
    for (i, (&(d, n), ours)) in CASES.iter().zip(&ours).enumerate() {
        let case = theirs.as_ref().map(|v| &v["cases"][i]);
        let (python, ratio, agree) = match case.and_then(|c| c["seconds"].as_f64()) {
            Some(seconds) => {
                let rate = n as f64 / seconds;
                let sketches = case.expect("case")["sketches"].as_array().expect("list");
                let h = &states[i];
                let equal = sketches
                    .iter()
                    .zip(h.chunks_exact(d))
                    .filter(|(s, row)| s.as_u64() == Some(u64::from(grail_v5::sketch(row, &r_vec))))
                    .count();
                (
                    thousands(rate),
                    format!("{:.1}×", ours / rate),
                    format!("{equal} / {n}"),
                )
            }
            None => ("n/a".into(), "n/a".into(), "n/a".into()),
        };
        table.push_str(&format!(
            "| {d} | {n} | {} | {python} | {ratio} | {agree} |\n",
            thousands(*ours)
        ));
    }
    table
}

/// `1234567.8` → `1 234 568`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// (groups, rollouts per group, prompt tokens, completion tokens, vocabulary) per row.
const BUNDLES: [(usize, usize, usize, usize, u32); 4] = [
    (8, 16, 128, 512, 49_152),
    (8, 16, 128, 2_048, 49_152),
    (8, 16, 128, 512, 151_936),
    (8, 16, 256, 4_096, 151_936),
];

/// A window bundle with real sketches (of synthetic 576-wide hidden states), uniform token
/// ids below `vocab`, and negative log-probs.
fn bundle(
    groups: usize,
    rollouts: usize,
    prompt: usize,
    completion: usize,
    vocab: u32,
) -> WindowBundle {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let coefficients = SketchCoefficients::derive(&RANDOMNESS, 576);
    let tokens_per_rollout = prompt + completion;
    let states = hidden(576, tokens_per_rollout);
    let sketches = coefficients.sketch_rows(&states);
    let groups = (0..groups)
        .map(|g| Group {
            header: GroupHeader {
                protocol_version: PROTOCOL_VERSION,
                hotkey: Hotkey([1; 32]),
                window: 1_000_000,
                environment: EnvironmentId {
                    name: "math".into(),
                    params: "tier=2".into(),
                },
                prompt_id: g as u64,
                checkpoint: [2; 32],
                window_randomness: RANDOMNESS,
                generation: GenerationParams {
                    max_new_tokens: completion as u32,
                    temperature_milli: 700,
                },
            },
            rollouts: (0..rollouts)
                .map(|i| Rollout {
                    tokens: (0..tokens_per_rollout)
                        .map(|_| rng.next_u32() % vocab)
                        .collect(),
                    prompt_len: prompt as u32,
                    // Rotated so the rollouts of a group do not share sketches.
                    sketches: (0..tokens_per_rollout)
                        .map(|p| sketches[(p + i * 7) % tokens_per_rollout].digest())
                        .collect(),
                    logprobs: (0..completion)
                        .map(|_| -((rng.next_u32() % 4000) as f32) / 1000.0)
                        .collect(),
                    reward: (i % 2) as f64,
                    advantage: if i % 2 == 0 { -1.0 } else { 1.0 },
                    success: i % 2 == 1,
                })
                .collect(),
            signature: Signature([3; 64]),
        })
        .collect();
    WindowBundle {
        hotkey: Hotkey([1; 32]),
        window: 1_000_000,
        groups,
    }
}

fn bytes_table() -> String {
    let mut table = String::from(
        "| bundle | tokens | bundle bytes | total B/token | sketches B/token | token ids B/token | log-probs B/token | rest B/token |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (groups, rollouts, prompt, completion, vocab) in BUNDLES {
        let full = bundle(groups, rollouts, prompt, completion, vocab);
        let size = |f: &dyn Fn(&mut Rollout)| {
            let mut b = full.clone();
            b.groups
                .iter_mut()
                .flat_map(|g| &mut g.rollouts)
                .for_each(f);
            encode_bundle(&b).expect("encode").len() as f64
        };
        let total = size(&|_| {});
        let sketches = total - size(&|r| r.sketches.clear());
        let ids = total - size(&|r| r.tokens.clear());
        let logprobs = total - size(&|r| r.logprobs.clear());
        let tokens = (groups * rollouts * (prompt + completion)) as f64;
        let per = |x: f64| format!("{:.2}", x / tokens);
        table.push_str(&format!(
            "| {groups} groups × {rollouts} rollouts × ({prompt} prompt + {completion} completion), vocabulary {vocab} | {tokens} | {total} | {} | {} | {} | {} | {} |\n",
            per(total),
            per(sketches),
            per(ids),
            per(logprobs),
            per(total - sketches - ids - logprobs),
        ));
    }
    table.push_str(&format!(
        "\nSketches: {SKETCHES_PER_POSITION} 15-bit digests per token position (prompt and completion), 2 bytes each (protocol v4).\n"
    ));
    table
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it without, as a smoke test.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("sketch bench: run with `cargo xtask bench sketch`");
        return;
    }
    let threads = format!(
        "{THREADS} thread each side, best of {REPEATS} after a warm-up; synthetic last-layer states (|x| < 1.5, ~1 % outliers to ±300)\n\n"
    );
    let out = format!("{threads}{}\n{}", commitments_table(), bytes_table());
    print!("{out}");
    if let Ok(path) = std::env::var("GRAIL_BENCH_OUT") {
        std::fs::write(&path, &out).expect("write GRAIL_BENCH_OUT");
    }
}
