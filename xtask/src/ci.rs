//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{setup, util};

/// Runs every check. Options: `--skip-deny` leaves out cargo-deny.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut deny = true;
    for arg in args {
        match arg.as_str() {
            "--skip-deny" => deny = false,
            other => return Err(format!("ci: unknown option `{other}`")),
        }
    }
    let start = Instant::now();
    let setup_args = if deny {
        vec![]
    } else {
        vec!["--no-deny".to_string()]
    };
    let env = setup::run(&setup_args)?;
    // A few GB of download on a fresh machine: fetched while clippy compiles.
    let trl = std::thread::spawn(setup::trl_python);
    let cargo = || {
        let mut cmd = util::cargo();
        cmd.envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    };
    // `cargo deny …`, or the program setup installed, called the way cargo calls it.
    let deny_cmd = || match &env.deny {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.current_dir(util::project_root()).arg("deny");
            cmd.envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            cmd
        }
        None => {
            let mut cmd = cargo();
            cmd.arg("deny");
            cmd
        }
    };

    util::run_timed("fmt", cargo().args(["fmt", "--all", "--", "--check"]))?;
    layering(&cargo)?;
    hygiene()?;
    util::step("reward example module is its crate's build");
    crate::reward_example::ci_check()?;
    util::run_timed(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    match trl.join() {
        Ok(Some(python)) => {
            test.env("GRAIL_TRL_PYTHON", python);
        }
        _ => eprintln!("ci: the TRL stack is missing; the TRL example test will skip"),
    }
    util::run_timed("test", &mut test)?;
    let localnet = Instant::now();
    crate::localnet::ci_check()?;
    eprintln!(
        "    local network check: {:.1} s",
        localnet.elapsed().as_secs_f64()
    );
    util::run_timed(
        "doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    if deny {
        util::run_timed(
            "deny (bans, licenses, sources)",
            deny_cmd().args(["--all-features", "check", "bans", "licenses", "sources"]),
        )?;
        advisories(deny_cmd)?;
    }
    eprintln!(
        "\nci: all checks passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Crates a package must not depend on (normal dependencies, any depth): the layering
/// rules of docs/architecture.md.
const LAYERING: &[(&str, &[&str])] = &[
    (
        "grail-proto",
        &[
            "tokio",
            "tch",
            "torch-sys",
            "subxt",
            "object_store",
            "reqwest",
            "grail-env",
        ],
    ),
    (
        "grail-env",
        &["tokio", "tch", "grail-chain", "grail-store", "grail-infer"],
    ),
    (
        "grail-infer",
        &["grail-chain", "grail-store", "grail-env", "tokio"],
    ),
    ("grail-chain", &["tch", "grail-store", "grail-infer"]),
    ("grail-store", &["tch", "grail-chain", "grail-infer"]),
    ("grail-fs", &["tokio", "tch", "grail-proto"]),
    // Jobs are pure: parsing, rewards and the sandbox, no I/O or model.
    (
        "grail-jobs",
        &[
            "tokio",
            "tch",
            "subxt",
            "object_store",
            "reqwest",
            "grail-chain",
            "grail-store",
            "grail-infer",
        ],
    ),
    // The soundness audits are measurement tools and the fuzzer replaces the global
    // allocator: no role may link them.
    // The node core sees no role; the roles see each other only as the data flows
    // (the trainer re-verifies with the validator's driver).
    (
        "grail-node",
        &[
            "grail-audit",
            "grail-fuzz",
            "grail-mine",
            "grail-validate",
            "grail-train",
            "grail-lab",
        ],
    ),
    (
        "grail-mine",
        &[
            "grail-audit",
            "grail-fuzz",
            "grail-validate",
            "grail-train",
            "grail-lab",
        ],
    ),
    (
        "grail-validate",
        &[
            "grail-audit",
            "grail-fuzz",
            "grail-mine",
            "grail-train",
            "grail-lab",
        ],
    ),
    (
        "grail-train",
        &["grail-audit", "grail-fuzz", "grail-mine", "grail-lab"],
    ),
    ("grail-lab", &["grail-audit", "grail-fuzz"]),
];

/// Every declared dependency is used; binaries are one main.rs over the role crates.
pub fn hygiene() -> Result<(), String> {
    util::step("dependencies and binaries");
    let root = util::project_root();
    let mut problems = crate::hygiene::unused_dependencies(&root)?;
    problems.extend(crate::hygiene::thick_bins(&root)?);
    if !problems.is_empty() {
        return Err(format!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ));
    }
    eprintln!("    no unused dependencies; binaries are thin");
    Ok(())
}

/// Fails when a crate depends on something its layer must not see.
fn layering(cargo: &impl Fn() -> Command) -> Result<(), String> {
    util::step("layering");
    for (package, forbidden) in LAYERING {
        let tree = util::output(cargo().args([
            "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
        ]))
        .ok_or_else(|| format!("cargo tree -p {package} failed"))?;
        let names: Vec<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let bad: Vec<&&str> = forbidden.iter().filter(|f| names.contains(f)).collect();
        if !bad.is_empty() {
            return Err(format!(
                "{package} must not depend on {bad:?} (see docs/architecture.md)"
            ));
        }
    }
    eprintln!("    layering: ok");
    Ok(())
}

/// Checks advisories when the advisory database can be fetched; skips cleanly offline.
/// `deny` makes a `cargo deny` command.
fn advisories(deny: impl Fn() -> Command) -> Result<(), String> {
    util::step("deny (advisories)");
    let mut fetch = deny();
    fetch.args(["fetch", "db"]);
    if !finishes_within(&mut fetch, Duration::from_secs(90)) {
        eprintln!("    skipped: the advisory database could not be fetched (offline?)");
        return Ok(());
    }
    util::run(deny().args(["check", "--disable-fetch", "advisories"]))
}

/// Runs `cmd` quietly; true when it succeeds before `limit`, else kills it.
fn finishes_within(cmd: &mut Command, limit: Duration) -> bool {
    use std::process::Stdio;
    let Ok(mut child) = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}
