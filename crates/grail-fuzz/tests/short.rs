//! The short version of `cargo xtask fuzz` that CI runs: every target for a few hundred
//! uninstrumented executions (seeds must reach the deep checks, nothing may fail), the
//! inputs of earlier findings replayed, and the fuzzer's own detectors shown to fire.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use grail_fuzz::engine::{Campaign, Options};
use grail_fuzz::targets::{self, Target};

/// The label each target's seeds must reach: proof that the target drives the real path
/// to its end, not only its first parse error.
fn deepest(target: &str) -> &'static [&'static str] {
    match target {
        "bundle" | "group" => &["accepted"],
        "archive" => &["agreed"],
        "math" => &["correct"],
        "sat" => &["satisfied"],
        "dataset" => &["parsed"],
        "http" => &["2xx", "400", "404"],
        "commitment" => &["announcement", "credentials"],
        "gguf" | "safetensors" | "config" => &["ran"],
        "tokenizer" => &["round_trip"],
        other => panic!("no expectation for target {other}"),
    }
}

/// Heap use is counted process-wide: in-process campaigns must not overlap.
static ONE_CAMPAIGN_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn every_target_survives_a_short_campaign() {
    let _alone = ONE_CAMPAIGN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut table = Vec::new();
    for target in targets::all() {
        // Seeds only, to see every one of them reach the deep checks.
        let seeds = (target.seeds)().len() as u64;
        let (seeded, _) = Campaign::new(&target, Options::new(seeds))
            .unwrap()
            .run()
            .unwrap();
        for label in deepest(target.name) {
            assert!(
                seeded.outcomes.contains_key(*label),
                "{}: no seed reached `{label}`: {:?}",
                target.name,
                seeded.outcomes
            );
        }
        let mut options = Options::new(seeds + 400);
        options.seed = 1;
        options.max_time = Some(Duration::from_secs(3));
        let (stats, findings) = Campaign::new(&target, options).unwrap().run().unwrap();
        assert!(
            findings.is_empty(),
            "{}: {:#?}",
            target.name,
            findings
                .iter()
                .map(|f| (f.kind, &f.message, f.input.len()))
                .collect::<Vec<_>>()
        );
        assert!(stats.execs > seeds, "{}: no mutated input ran", target.name);
        assert!(
            stats.outcomes.len() > 1,
            "{}: every mutated input ended the same way: {:?}",
            target.name,
            stats.outcomes
        );
        table.push((target.name, stats.execs, stats.outcomes));
    }
    for (name, execs, outcomes) in table {
        eprintln!("{name:<12} {execs:>6} {outcomes:?}");
    }
    let _ = std::fs::remove_dir_all(targets::scratch_dir(std::process::id()));
}

#[test]
fn inputs_of_earlier_findings_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for target in targets::all() {
        let Ok(entries) = std::fs::read_dir(root.join(target.name)) else {
            continue;
        };
        for file in entries.flatten().map(|e| e.path()) {
            let input = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| (target.run)(&input));
            assert!(outcome.is_ok(), "{} panics again", file.display());
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs under {}",
        root.display()
    );
}

/// A target with a panic and an oversized allocation (3 MiB against the test's 1 MiB
/// limit) behind dictionary words.
fn faulty() -> Target {
    Target {
        name: "faulty",
        what: "panics on `boom`, holds 3 MiB on `big`",
        max_len: 64,
        seeds: || vec![b"hello".to_vec()],
        dictionary: &[b"boom", b"big"],
        mutate: None,
        run: |bytes| {
            let text = String::from_utf8_lossy(bytes);
            if text.contains("boom") {
                panic!("boom");
            }
            if text.contains("big") {
                // Reserved, not written: counted without the cost of touching 3 MiB.
                let mut held: Vec<u8> = Vec::with_capacity(3 << 20);
                held.push(7);
                return if held[0] == 7 { "held" } else { "lost" };
            }
            "ok"
        },
    }
}

#[test]
fn the_engine_catches_panics_and_oversized_heaps() {
    let _alone = ONE_CAMPAIGN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let target = faulty();
    let mut options = Options::new(3_000);
    options.seed = 5;
    options.heap_limit = 1 << 20;
    let (stats, findings) = Campaign::new(&target, options).unwrap().run().unwrap();
    let kinds: BTreeMap<&str, usize> = findings.iter().fold(BTreeMap::new(), |mut m, f| {
        *m.entry(f.kind).or_default() += 1;
        m
    });
    assert!(kinds.contains_key("panic"), "{kinds:?} {stats:?}");
    assert!(kinds.contains_key("oversized"), "{kinds:?} {stats:?}");
    let panic = findings.iter().find(|f| f.kind == "panic").unwrap();
    assert!(String::from_utf8_lossy(&panic.input).contains("boom"));
    assert!(panic.message.contains("boom"), "{}", panic.message);
    assert!(stats.max_heap >= 3 << 20);
    // The fuzzer went on after each finding.
    assert_eq!(stats.execs, 3_000);
}

/// Runs the real binary's supervisor on the self-test target set to fail with `mode`.
fn supervised(mode: &str, extra: &[&str]) -> (bool, String) {
    let out = std::env::temp_dir().join(format!("grail-fuzz-test-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_grail-fuzz"))
        .args(["run", "selftest", "--execs", "3", "--out"])
        .arg(&out)
        .args(extra)
        .env("GRAIL_FUZZ_SELFTEST", mode)
        .status()
        .unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let mut notes = String::new();
    if let Ok(entries) = std::fs::read_dir(out.join("selftest/findings")) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "txt") {
                notes.push_str(&std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    (status.success(), format!("{report}\n{notes}"))
}

/// The row of the report as cells.
fn cells(report: &str) -> Vec<String> {
    let row = report
        .lines()
        .find(|l| l.starts_with("| selftest"))
        .unwrap();
    row.split('|').map(|c| c.trim().to_string()).collect()
}

#[test]
fn the_supervisor_survives_aborts_hangs_and_refused_allocations() {
    // Columns: 1 target, 6 crashes, 7 oversized, 8 timeouts.
    let (ok, text) = supervised("abort", &[]);
    assert!(!ok, "{text}");
    assert_eq!(cells(&text)[6], "3", "{text}");

    let (ok, text) = supervised("hang", &["--timeout-ms", "300"]);
    assert!(!ok, "{text}");
    assert_eq!(cells(&text)[8], "3", "{text}");

    let (ok, text) = supervised("grow", &["--hard-cap", "1073741824"]);
    assert!(!ok, "{text}");
    assert_eq!(cells(&text)[6], "3", "{text}");
    assert!(text.contains("memory allocation"), "{text}");

    let (ok, text) = supervised("leak", &[]);
    assert!(!ok, "{text}");
    assert_ne!(cells(&text)[7], "0", "{text}");

    let (ok, text) = supervised("fine", &[]);
    assert!(ok, "{text}");
    assert_eq!(&cells(&text)[6..9], ["0", "0", "0"], "{text}");
}
