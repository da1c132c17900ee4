//! Runs each target's campaign in child processes and survives what kills them.
//!
//! A child runs one target ([`child`]), writing each input to `current` before running it
//! and its totals to `stats.json` about once a second. When a child dies (an abort, a
//! stack overflow, an allocation refused by the hard cap) or its watchdog ends it (one
//! execution over the time limit), the supervisor saves `current` as a finding, adds the
//! child's totals and starts a new child for the remaining executions; the corpus on disk
//! carries over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::{fnv1a, save_findings, Campaign, Finding, Options, Stats};
use crate::targets;

/// Exit status of a child whose watchdog saw one execution run over the time limit.
pub const TIMEOUT_EXIT: i32 = 75;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Target names.
    pub targets: Vec<String>,
    /// Executions per target.
    pub execs: u64,
    /// Targets run at once.
    pub jobs: usize,
    /// Output folder: corpus, findings, stats, report.
    pub out: PathBuf,
    /// Stop a target after this long.
    pub max_time: Option<Duration>,
    /// One execution over this is a `timeout` finding.
    pub timeout: Duration,
    /// One execution's heap peak over this is an `oversized` finding.
    pub heap_limit: usize,
    /// Single allocations over this fail (and end the child: an `abort` finding).
    pub hard_cap: usize,
}

/// One target's totals over all its children.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Totals (findings include aborts and timeouts).
    pub stats: Stats,
    /// Children started.
    pub children: u32,
}

/// Arguments of a child process.
#[derive(Debug, Clone)]
pub struct ChildArgs {
    /// The target.
    pub target: String,
    /// Executions to run.
    pub execs: u64,
    /// Random seed.
    pub seed: u64,
    /// The target's folder under the output folder.
    pub dir: PathBuf,
    /// Stop after this long.
    pub max_time: Option<Duration>,
    /// Watchdog limit per execution.
    pub timeout: Duration,
    /// Heap limit per execution.
    pub heap_limit: usize,
    /// Allocation hard cap.
    pub hard_cap: usize,
}

impl ChildArgs {
    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "child".to_string(),
            self.target.clone(),
            "--execs".into(),
            self.execs.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--timeout-ms".into(),
            self.timeout.as_millis().to_string(),
            "--heap-limit".into(),
            self.heap_limit.to_string(),
            "--hard-cap".into(),
            self.hard_cap.to_string(),
        ];
        if let Some(t) = self.max_time {
            args.extend(["--max-secs".into(), t.as_secs().to_string()]);
        }
        args
    }
}

static STATS_PATH: Mutex<Option<PathBuf>> = Mutex::new(None);

fn write_stats(stats: &Stats) {
    let path = STATS_PATH.lock().ok().and_then(|p| p.clone());
    if let (Some(path), Ok(json)) = (path, serde_json::to_vec(stats)) {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(tmp, path);
        }
    }
}

/// The child's side: runs one campaign with a watchdog and writes its totals.
///
/// # Errors
///
/// An unknown target or an I/O error in the target's folder.
pub fn child(args: &ChildArgs) -> Result<Stats, String> {
    let target = targets::by_name(&args.target)
        .ok_or_else(|| format!("unknown target `{}`", args.target))?;
    crate::alloc::set_hard_cap(args.hard_cap);
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    if let Ok(mut p) = STATS_PATH.lock() {
        *p = Some(args.dir.join("stats.json"));
    }
    let options = Options {
        execs: args.execs,
        max_time: args.max_time,
        seed: args.seed,
        heap_limit: args.heap_limit,
        corpus_dir: Some(args.dir.join("corpus")),
        current_input: Some(args.dir.join("current")),
        findings_dir: Some(args.dir.join("findings")),
        progress: Some(write_stats),
    };
    let campaign = Campaign::new(&target, options).map_err(|e| e.to_string())?;
    let clock = campaign.clock.clone();
    let timeout = args.timeout;
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let running = clock.running_for();
        if running > timeout {
            eprintln!("timeout: one execution has run for {running:?} (limit {timeout:?})");
            std::process::exit(TIMEOUT_EXIT);
        }
    });
    let (stats, _) = campaign.run().map_err(|e| e.to_string())?;
    write_stats(&stats);
    Ok(stats)
}

fn read_stats(path: &Path) -> Option<Stats> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn add(total: &mut Stats, part: &Stats) {
    total.execs += part.execs;
    total.seconds += part.seconds;
    total.corpus = total.corpus.max(part.corpus);
    total.features = total.features.max(part.features);
    total.edges = total.edges.max(part.edges);
    total.max_heap = total.max_heap.max(part.max_heap);
    total.max_alloc = total.max_alloc.max(part.max_alloc);
    total.slowest = total.slowest.max(part.slowest);
    for (k, v) in &part.outcomes {
        *total.outcomes.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &part.findings {
        *total.findings.entry(k.clone()).or_default() += v;
    }
}

/// What the child wrote to stderr, at most its first 64 KiB.
fn child_stderr(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&text[..text.len().min(64 << 10)]).into_owned()
}

/// Runs one target to its execution count through as many children as it takes.
fn supervise(exe: &Path, plan: &Plan, target: &str) -> Result<Summary, String> {
    let dir = plan.out.join(target);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut summary = Summary {
        stats: Stats {
            target: target.into(),
            ..Stats::default()
        },
        ..Summary::default()
    };
    let started = Instant::now();
    while summary.stats.execs < plan.execs && summary.children < 64 {
        let left = plan.max_time.map(|t| t.saturating_sub(started.elapsed()));
        if left.is_some_and(|t| t.is_zero()) {
            break;
        }
        let args = ChildArgs {
            target: target.into(),
            execs: plan.execs - summary.stats.execs,
            seed: u64::from(summary.children) * 0x9e37 + fnv1a(target.as_bytes()),
            dir: dir.clone(),
            max_time: left,
            timeout: plan.timeout,
            heap_limit: plan.heap_limit,
            hard_cap: plan.hard_cap,
        };
        let stats_path = dir.join("stats.json");
        let _ = std::fs::remove_file(&stats_path);
        let stderr_path = dir.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(args.to_args())
            .env("TOKENIZERS_PARALLELISM", "false")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting a child for {target}: {e}"))?;
        summary.children += 1;
        let mut last_report = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                let _ = std::fs::remove_dir_all(targets::scratch_dir(child.id()));
                break status;
            }
            std::thread::sleep(Duration::from_millis(200));
            if last_report.elapsed() >= Duration::from_secs(30) {
                last_report = Instant::now();
                if let Some(s) = read_stats(&stats_path) {
                    let done = summary.stats.execs + s.execs;
                    eprintln!(
                        "    {target}: {done} execs ({:.0}/s), corpus {}, edges {}, findings {}",
                        s.execs as f64 / s.seconds.max(1e-9),
                        s.corpus,
                        s.edges,
                        summary.stats.findings.values().sum::<u64>()
                            + s.findings.values().sum::<u64>()
                    );
                }
            }
        };
        if let Some(s) = read_stats(&stats_path) {
            add(&mut summary.stats, &s);
        }
        if status.success() {
            break;
        }
        let kind = if status.code() == Some(TIMEOUT_EXIT) {
            "timeout"
        } else {
            "abort"
        };
        let input = std::fs::read(dir.join("current")).unwrap_or_default();
        let finding = Finding {
            kind,
            message: format!("{status}\n{}", child_stderr(&stderr_path)),
            input,
        };
        save_findings(&dir.join("findings"), target, &[finding]).map_err(|e| e.to_string())?;
        *summary.stats.findings.entry(kind.into()).or_default() += 1;
        // The input that killed the child still counts as executed.
        summary.stats.execs += 1;
    }
    Ok(summary)
}

/// Runs every target of `plan`, `plan.jobs` at a time; returns their summaries in order.
///
/// # Errors
///
/// An unknown target, or a child that cannot be started.
pub fn run(plan: &Plan) -> Result<Vec<Summary>, String> {
    for name in &plan.targets {
        if targets::by_name(name).is_none() {
            return Err(format!("unknown target `{name}`"));
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let queue = Mutex::new(plan.targets.to_vec());
    let results = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.max(1) {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| {
                    if q.is_empty() {
                        None
                    } else {
                        Some(q.remove(0))
                    }
                });
                let Some(target) = next else { break };
                eprintln!("==> fuzzing {target}");
                let result = supervise(&exe, plan, &target);
                if let Ok(s) = &result {
                    eprintln!(
                        "    {target}: done, {} execs in {:.0} s, findings {:?}",
                        s.stats.execs, s.stats.seconds, s.stats.findings
                    );
                }
                if let Ok(mut r) = results.lock() {
                    r.insert(target, result);
                }
            });
        }
    });
    let mut results = results.into_inner().map_err(|e| e.to_string())?;
    plan.targets
        .iter()
        .map(|t| {
            results
                .remove(t)
                .unwrap_or_else(|| Err(format!("{t}: no result")))
        })
        .collect()
}

fn mib(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

/// The campaign's table (Markdown).
pub fn report(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "| target | executions | exec/s | edges | corpus | crashes | oversized | timeouts | largest heap / exec | largest allocation | slowest exec | most frequent outcomes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in summaries {
        let st = &s.stats;
        let count = |k: &str| st.findings.get(k).copied().unwrap_or(0);
        let mut outcomes: Vec<(&String, &u64)> = st.outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1));
        // Shares of 1 % and more as percentages, rarer outcomes as counts.
        let outcomes: Vec<String> = outcomes
            .iter()
            .take(6)
            .map(|(k, v)| {
                let share = **v as f64 * 100.0 / st.execs.max(1) as f64;
                if share >= 1.0 {
                    format!("{k} {share:.0} %")
                } else {
                    format!("{k} {v}")
                }
            })
            .collect();
        let rate = if st.seconds > 0.01 {
            format!("{:.0}", st.execs as f64 / st.seconds)
        } else {
            "–".into()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} ms | {} |\n",
            st.target,
            st.execs,
            rate,
            st.edges,
            st.corpus,
            count("panic") + count("abort"),
            count("oversized"),
            count("timeout"),
            mib(st.max_heap),
            mib(st.max_alloc),
            st.slowest * 1e3,
            outcomes.join(", ")
        ));
    }
    out
}
