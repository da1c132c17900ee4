//! `cargo xtask faults` and `cargo xtask load`: the reliability runs of
//! docs/reliability.md (the short versions of both run in `cargo xtask ci` as tests).

use crate::{models, setup, util};

/// `cargo xtask load [--miners N] [--groups N] [--fill]`: one window with many honest
/// miners and four faulty buckets, verified by the validator's `check_window` (release
/// build); `--fill` fills every honest bundle to the largest size a validator reads.
pub fn load(args: &[String]) -> Result<(), String> {
    let mut miners = "64".to_string();
    let mut groups = "2".to_string();
    let mut fill = "0";
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = || format!("load: {arg} needs a number");
        match arg.as_str() {
            "--miners" => miners = it.next().ok_or_else(value)?.clone(),
            "--groups" => groups = it.next().ok_or_else(value)?.clone(),
            "--fill" => fill = "1",
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
            .env("GRAIL_LOAD_GROUPS", groups)
            .env("GRAIL_LOAD_FILL", fill),
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
        "grail-validate",
        &["--lib", "loop_tests"],
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

/// LLVM SanitizerCoverage on the stable toolchain: one inline 8-bit counter per edge,
/// read by `grail_fuzz::coverage`.
const COVERAGE_FLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
     -Cllvm-args=-sanitizer-coverage-inline-8bit-counters";

/// `cargo xtask fuzz [TARGET...] [--execs N] [--jobs J] [--max-secs S] [--no-coverage]`:
/// builds grail-fuzz with coverage counters (profile `fuzz`: release with overflow checks
/// and debug assertions, in its own target folder because the flags differ) and runs the
/// supervised campaigns; the report lands in `<target folder>/out/report.md`.
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let mut coverage = true;
    let mut passed: Vec<String> = Vec::new();
    let mut has_jobs = false;
    for arg in args {
        match arg.as_str() {
            "--no-coverage" => coverage = false,
            "--jobs" => {
                has_jobs = true;
                passed.push(arg.clone());
            }
            _ => passed.push(arg.clone()),
        }
    }
    let env = setup::run(&["--no-deny".into()])?;
    let host = util::output(std::process::Command::new("rustc").arg("-vV"))
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .ok_or("fuzz: cannot read the host triple from `rustc -vV`")?;
    let folder = if coverage {
        "target-fuzz"
    } else {
        "target-fuzz-plain"
    };
    let target_dir = setup::cache_dir().join(folder);
    let mut build = models::cargo_with(&env);
    build
        .args(["build", "-p", "grail-fuzz", "--bin", "grail-fuzz"])
        .args(["--profile", "fuzz", "--target", &host])
        .env("CARGO_TARGET_DIR", &target_dir);
    if coverage {
        // With an explicit --target, RUSTFLAGS reach only the target's code, not build
        // scripts or proc macros (which would not link against the counters' hooks).
        build.env("RUSTFLAGS", COVERAGE_FLAGS);
    }
    util::run_timed("build grail-fuzz (instrumented)", &mut build)?;
    let binary = target_dir.join(&host).join("fuzz").join("grail-fuzz");
    let out = target_dir.join("out");
    let mut run = std::process::Command::new(&binary);
    run.arg("run").args(&passed).arg("--out").arg(&out);
    if !has_jobs {
        run.args(["--jobs", "2"]);
    }
    util::run_timed("fuzz", &mut run)
}
