//! `cargo xtask faults` and `cargo xtask load`: the reliability runs of
//! docs/reliability.md (the short versions of both run in `cargo xtask ci` as tests).

use crate::{models, setup, util};

/// `cargo xtask load [--miners N] [--groups N]`: one window with many honest miners and
/// four faulty buckets, verified by the validator's `check_window` (release build).
pub fn load(args: &[String]) -> Result<(), String> {
    let mut miners = "64".to_string();
    let mut groups = "2".to_string();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = || format!("load: {arg} needs a number");
        match arg.as_str() {
            "--miners" => miners = it.next().ok_or_else(value)?.clone(),
            "--groups" => groups = it.next().ok_or_else(value)?.clone(),
            other => return Err(format!("load: unknown argument `{other}`")),
        }
    }
    let env = setup::run(&["--no-deny".into()])?;
    util::run_timed(
        "load",
        models::cargo_with(&env)
            .args([
                "test",
                "--release",
                "-p",
                "grail-e2e",
                "--test",
                "load",
                "--",
                "--nocapture",
            ])
            .env("GRAIL_LOAD_MINERS", miners)
            .env("GRAIL_LOAD_GROUPS", groups),
    )
}

/// The fault-injection tests: (package, test selection, what it injects).
const FAULT_TESTS: &[(&str, &[&str], &str)] = &[
    (
        "grail-e2e",
        &["--test", "network"],
        "validator killed right after setting weights, trainer killed right after announcing a checkpoint; both restart",
    ),
    (
        "grail-e2e",
        &["--test", "load"],
        "buckets whose S3 server is down, answers 503, stalls, or holds an oversized bundle",
    ),
    (
        "grail-node",
        &["--lib", "validator::tests"],
        "every drand relay down, or the chain node unreachable, for a whole window (simulated time); \
         also kills/restarts of the validator loop",
    ),
    (
        "grail-chain",
        &["--test", "drand"],
        "forged, stale and tampered beacons; relays failing over (recorded real beacons)",
    ),
    (
        "grail-fs",
        &["--test", "durable"],
        "failed and concurrent atomic writes leave whole files and no leftovers",
    ),
];

/// `cargo xtask faults`: runs every fault-injection test and prints what each injects.
pub fn faults(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("faults: unknown argument `{arg}`"));
    }
    let env = setup::run(&["--no-deny".into()])?;
    let mut failed = Vec::new();
    for (package, selection, what) in FAULT_TESTS {
        let name = format!("{package} {}", selection.join(" "));
        eprintln!("\n{name}: {what}");
        let result = util::run_timed(
            &name,
            models::cargo_with(&env)
                .args(["test", "-p", package])
                .args(*selection),
        );
        if let Err(e) = result {
            failed.push(format!("{name}: {e}"));
        }
    }
    if failed.is_empty() {
        eprintln!("\nfaults: every injected fault was handled");
        Ok(())
    } else {
        Err(format!("faults: {}", failed.join("; ")))
    }
}
