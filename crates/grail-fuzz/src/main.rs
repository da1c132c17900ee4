//! `grail-fuzz`: run fuzz campaigns (`cargo xtask fuzz` builds and calls it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use grail_fuzz::supervise::{self, ChildArgs, Plan};
use grail_fuzz::targets;

const USAGE: &str = "usage:
  grail-fuzz list
  grail-fuzz run [TARGET...] [--execs N] [--jobs J] [--out DIR] [--max-secs S]
                 [--timeout-ms MS] [--heap-limit BYTES] [--hard-cap BYTES]
  grail-fuzz replay TARGET FILE...";

fn value<T: std::str::FromStr>(args: &[String], i: &mut usize, flag: &str) -> Result<T, String> {
    *i += 1;
    args.get(*i)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{flag} needs a number\n{USAGE}"))
}

fn run(args: &[String]) -> Result<bool, String> {
    let mut plan = Plan {
        targets: Vec::new(),
        execs: 1_000_000,
        jobs: 1,
        out: PathBuf::from("target/fuzz"),
        max_time: None,
        timeout: Duration::from_secs(5),
        heap_limit: 256 << 20,
        hard_cap: 1 << 30,
    };
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--execs" => plan.execs = value(args, &mut i, "--execs")?,
            "--jobs" => plan.jobs = value(args, &mut i, "--jobs")?,
            "--max-secs" => {
                plan.max_time = Some(Duration::from_secs(value(args, &mut i, "--max-secs")?))
            }
            "--timeout-ms" => {
                plan.timeout = Duration::from_millis(value(args, &mut i, "--timeout-ms")?)
            }
            "--heap-limit" => plan.heap_limit = value(args, &mut i, "--heap-limit")?,
            "--hard-cap" => plan.hard_cap = value(args, &mut i, "--hard-cap")?,
            "--out" => {
                i += 1;
                plan.out = args.get(i).map(PathBuf::from).ok_or(USAGE)?;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}\n{USAGE}")),
            name => plan.targets.push(name.to_string()),
        }
        i += 1;
    }
    if plan.targets.is_empty() {
        plan.targets = targets::all().iter().map(|t| t.name.to_string()).collect();
    }
    let summaries = supervise::run(&plan)?;
    let table = supervise::report(&summaries);
    let path = plan.out.join("report.md");
    std::fs::write(&path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{table}");
    let found: u64 = summaries
        .iter()
        .map(|s| s.stats.findings.values().sum::<u64>())
        .sum();
    if found > 0 {
        eprintln!(
            "{found} finding(s): inputs under {}/<target>/findings",
            plan.out.display()
        );
    }
    eprintln!("report: {}", path.display());
    Ok(found == 0)
}

fn child(args: &[String]) -> Result<bool, String> {
    let mut child = ChildArgs {
        target: args.first().cloned().ok_or(USAGE)?,
        execs: 0,
        seed: 0,
        dir: PathBuf::new(),
        max_time: None,
        timeout: Duration::from_secs(5),
        heap_limit: 256 << 20,
        hard_cap: usize::MAX,
    };
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--execs" => child.execs = value(args, &mut i, "--execs")?,
            "--seed" => child.seed = value(args, &mut i, "--seed")?,
            "--timeout-ms" => {
                child.timeout = Duration::from_millis(value(args, &mut i, "--timeout-ms")?)
            }
            "--heap-limit" => child.heap_limit = value(args, &mut i, "--heap-limit")?,
            "--hard-cap" => child.hard_cap = value(args, &mut i, "--hard-cap")?,
            "--max-secs" => {
                child.max_time = Some(Duration::from_secs(value(args, &mut i, "--max-secs")?))
            }
            "--dir" => {
                i += 1;
                child.dir = args.get(i).map(PathBuf::from).ok_or(USAGE)?;
            }
            other => return Err(format!("unknown child option {other}")),
        }
        i += 1;
    }
    // One libtorch thread per campaign: campaigns run side by side.
    tch::set_num_threads(1);
    supervise::child(&child).map(|_| true)
}

fn replay(args: &[String]) -> Result<bool, String> {
    let name = args.first().ok_or(USAGE)?;
    let target = targets::by_name(name).ok_or_else(|| format!("unknown target `{name}`"))?;
    let mut clean = true;
    for file in &args[1..] {
        let input = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        match std::panic::catch_unwind(|| (target.run)(&input)) {
            Ok(outcome) => println!("{file}: {outcome}"),
            Err(_) => {
                println!("{file}: PANIC");
                clean = false;
            }
        }
    }
    Ok(clean)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("list") => {
            for t in targets::all() {
                println!("{:<12} {}", t.name, t.what);
            }
            Ok(true)
        }
        Some("run") => run(&args[1..]),
        Some("child") => child(&args[1..]),
        Some("replay") => replay(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("grail-fuzz: {e}");
            ExitCode::from(2)
        }
    }
}
