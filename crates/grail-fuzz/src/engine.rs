//! The fuzzing loop: mutate a corpus entry, run the target, keep inputs that reach new
//! coverage, record panics and oversized allocations.
//!
//! One [`Campaign`] runs one target in this process. Aborts, stack overflows and hangs
//! end the process; [`crate::supervise`] runs campaigns in child processes, writes each
//! input to a file before running it, and records whatever killed the child.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alloc::{Execution, HeapUse};
use crate::coverage::Map;
use crate::targets::Target;

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x6a09_e667_f3bc_c909)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Values that often sit on a boundary, written at random offsets.
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// One random edit of `input` (in place), bounded by `max_len`.
pub fn mutate(
    input: &mut Vec<u8>,
    other: &[u8],
    dictionary: &[&[u8]],
    max_len: usize,
    rng: &mut Rng,
) {
    let len = input.len();
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next_u64() as u8;
        }
        2 if len > 0 => {
            let i = rng.below(len);
            input[i] = [0u8, 0xff, 0x7f, 0x80, b'0', b'9', b'-', b' '][rng.below(8)];
        }
        3 if len > 0 => {
            // A boundary value as 1, 2, 4 or 8 little- or big-endian bytes.
            let width = [1usize, 2, 4, 8][rng.below(4)];
            let i = rng.below(len);
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let bytes = if rng.below(2) == 0 {
                value.to_le_bytes()
            } else {
                value.to_be_bytes()
            };
            for (k, b) in bytes.iter().take(width).enumerate() {
                if let Some(slot) = input.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        4 if len > 0 => {
            // Add or subtract a small number from a byte.
            let i = rng.below(len);
            let delta = rng.below(35) as u8;
            input[i] = if rng.below(2) == 0 {
                input[i].wrapping_add(delta)
            } else {
                input[i].wrapping_sub(delta)
            };
        }
        5 if len > 1 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(16.min(len - start))).min(len);
            input.drain(start..end);
        }
        6 if len > 0 => {
            // Duplicate a slice somewhere else.
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let piece = input[start..end].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, piece);
        }
        7 if !dictionary.is_empty() => {
            let word = dictionary[rng.below(dictionary.len())];
            let at = rng.below(len + 1);
            if rng.below(2) == 0 || at + word.len() > len {
                input.splice(at..at, word.iter().copied());
            } else {
                input[at..at + word.len()].copy_from_slice(word);
            }
        }
        8 if !other.is_empty() => {
            // Splice: our head, the other input's tail.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        9 if len > 0 => {
            input.truncate(rng.below(len));
        }
        10 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        _ if len > 1 => {
            // Swap two bytes.
            let (a, b) = (rng.below(len), rng.below(len));
            input.swap(a, b);
        }
        _ => input.push(rng.next_u64() as u8),
    }
    input.truncate(max_len);
}

/// A failure the fuzzer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `panic`, `oversized`, `abort` (the process died) or `timeout`.
    pub kind: &'static str,
    /// What happened (panic message, bytes allocated, signal).
    pub message: String,
    /// The input that did it.
    pub input: Vec<u8>,
}

impl Finding {
    /// A stable file name: `{target}-{kind}-{hash of the input}`.
    pub fn file_name(&self, target: &str) -> String {
        format!("{target}-{}-{:016x}", self.kind, fnv1a(&self.input))
    }
}

/// FNV-1a over `bytes` (names corpus files; not a security hash).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How a campaign runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Executions to run (seeds included).
    pub execs: u64,
    /// Stop earlier after this long.
    pub max_time: Option<Duration>,
    /// Random seed.
    pub seed: u64,
    /// One execution's heap peak above this is an `oversized` finding.
    pub heap_limit: usize,
    /// Where corpus entries that found new coverage are kept (and read back on start).
    pub corpus_dir: Option<PathBuf>,
    /// Each input is written here before it runs (for the supervisor after a crash).
    pub current_input: Option<PathBuf>,
    /// Findings are written here as soon as they are found.
    pub findings_dir: Option<PathBuf>,
    /// Called about once a second with the running totals.
    pub progress: Option<fn(&Stats)>,
}

impl Options {
    /// `execs` executions, seed 0, a 256 MiB heap limit, nothing on disk.
    pub fn new(execs: u64) -> Self {
        Options {
            execs,
            max_time: None,
            seed: 0,
            heap_limit: 256 << 20,
            corpus_dir: None,
            current_input: None,
            findings_dir: None,
            progress: None,
        }
    }
}

/// What a campaign did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// The target.
    pub target: String,
    /// Executions run.
    pub execs: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Corpus entries at the end (seeds included).
    pub corpus: usize,
    /// (edge, hit bucket) pairs seen; 0 without instrumentation.
    pub features: usize,
    /// Instrumented edges reached; 0 without instrumentation.
    pub edges: usize,
    /// The largest heap peak of one execution, bytes.
    pub max_heap: usize,
    /// The largest single allocation, bytes.
    pub max_alloc: usize,
    /// The longest execution, seconds.
    pub slowest: f64,
    /// How executions ended (the target's own labels), counted.
    pub outcomes: BTreeMap<String, u64>,
    /// Findings by kind.
    pub findings: BTreeMap<String, u64>,
}

/// Records one execution's start so a watchdog can see a hang.
#[derive(Debug, Default)]
pub struct Clock {
    started_ms: AtomicU64,
}

impl Clock {
    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// How long the running execution has taken (zero when none runs).
    pub fn running_for(&self) -> Duration {
        match self.started_ms.load(Relaxed) {
            0 => Duration::ZERO,
            t => Duration::from_millis(Self::now_ms().saturating_sub(t)),
        }
    }
}

/// One target's campaign in this process.
pub struct Campaign<'a> {
    target: &'a Target,
    options: Options,
    corpus: Vec<Vec<u8>>,
    map: Map,
    rng: Rng,
    stats: Stats,
    findings: Vec<Finding>,
    current: Option<File>,
    /// The running execution's start, for a watchdog thread.
    pub clock: Arc<Clock>,
}

thread_local! {
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics inside a target are recorded as findings, not printed; others go to the hook
/// that was installed before. Installed once per process.
fn quiet_panics() {
    static ONCE: Mutex<bool> = Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TARGET.with(std::cell::Cell::get) {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic".into());
            PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{payload}{location}")));
        }));
        *done = true;
    }
}

impl<'a> Campaign<'a> {
    /// A campaign of `target` (seeds and any saved corpus loaded, nothing run yet).
    pub fn new(target: &'a Target, options: Options) -> std::io::Result<Self> {
        quiet_panics();
        let mut corpus = (target.seeds)();
        if let Some(dir) = &options.corpus_dir {
            std::fs::create_dir_all(dir)?;
            let mut saved: Vec<PathBuf> = std::fs::read_dir(dir)?
                .flatten()
                .map(|e| e.path())
                .collect();
            saved.sort();
            for path in saved {
                corpus.push(std::fs::read(path)?);
            }
        }
        let current = match &options.current_input {
            Some(path) => Some(File::create(path)?),
            None => None,
        };
        let map = Map::new();
        map.clear_counters();
        Ok(Campaign {
            target,
            rng: Rng::new(options.seed),
            options,
            corpus,
            map,
            stats: Stats {
                target: target.name.into(),
                ..Stats::default()
            },
            findings: Vec::new(),
            current,
            clock: Arc::new(Clock::default()),
        })
    }

    /// Runs every corpus entry once, then mutated inputs until the execution count or the
    /// time limit is reached. Returns the totals and the findings.
    pub fn run(mut self) -> std::io::Result<(Stats, Vec<Finding>)> {
        let start = Instant::now();
        let mut last_progress = Instant::now();
        let initial = std::mem::take(&mut self.corpus);
        for input in initial {
            self.execute(input, false)?;
            // Seeds stay even when they add no coverage (the uninstrumented case).
        }
        let max_len = self.target.max_len;
        while self.stats.execs < self.options.execs {
            if self
                .options
                .max_time
                .is_some_and(|limit| start.elapsed() >= limit)
            {
                break;
            }
            let parent = self.rng.below(self.corpus.len());
            let other = self.rng.below(self.corpus.len());
            let structured = match self.target.mutate {
                Some(edit) if self.rng.below(2) == 0 => edit(&self.corpus[parent], &mut self.rng),
                _ => None,
            };
            let byte_edits = if structured.is_some() {
                0
            } else {
                1 + self.rng.below(6)
            };
            let mut input = structured.unwrap_or_else(|| self.corpus[parent].clone());
            for _ in 0..byte_edits {
                mutate(
                    &mut input,
                    &self.corpus[other],
                    self.target.dictionary,
                    max_len,
                    &mut self.rng,
                );
            }
            self.execute(input, true)?;
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                self.stats.seconds = start.elapsed().as_secs_f64();
                self.sync_stats();
                if let Some(report) = self.options.progress {
                    report(&self.stats);
                }
            }
        }
        self.stats.seconds = start.elapsed().as_secs_f64();
        self.sync_stats();
        Ok((self.stats, self.findings))
    }

    fn sync_stats(&mut self) {
        self.stats.corpus = self.corpus.len();
        self.stats.features = self.map.features();
        self.stats.edges = self.map.edges();
    }

    fn execute(&mut self, input: Vec<u8>, mutated: bool) -> std::io::Result<()> {
        if let Some(file) = &mut self.current {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&input)?;
        }
        let heap = Execution::start();
        self.clock.started_ms.store(Clock::now_ms(), Relaxed);
        let began = Instant::now();
        IN_TARGET.with(|t| t.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| (self.target.run)(&input)));
        IN_TARGET.with(|t| t.set(false));
        let took = began.elapsed().as_secs_f64();
        self.clock.started_ms.store(0, Relaxed);
        let used: HeapUse = heap.finish();
        self.stats.execs += 1;
        self.stats.max_heap = self.stats.max_heap.max(used.peak);
        self.stats.max_alloc = self.stats.max_alloc.max(used.biggest);
        self.stats.slowest = self.stats.slowest.max(took);
        let new_coverage = self.map.observe();
        match result {
            Ok(outcome) => {
                *self.stats.outcomes.entry(outcome.to_string()).or_default() += 1;
            }
            Err(_) => {
                let message = PANIC_MESSAGE
                    .with(|m| m.borrow_mut().take())
                    .unwrap_or_else(|| "panic".into());
                self.record(Finding {
                    kind: "panic",
                    message,
                    input: input.clone(),
                })?;
            }
        }
        if used.peak > self.options.heap_limit || used.refused > 0 {
            self.record(Finding {
                kind: "oversized",
                message: format!(
                    "heap peak {} bytes, largest request {} bytes, refused {} bytes",
                    used.peak, used.biggest, used.refused
                ),
                input: input.clone(),
            })?;
        }
        if !mutated {
            self.corpus.push(input);
        } else if new_coverage > 0 {
            if let Some(dir) = &self.options.corpus_dir {
                let name = format!("{:016x}", fnv1a(&input));
                std::fs::write(dir.join(name), &input)?;
            }
            self.corpus.push(input);
        }
        Ok(())
    }

    fn record(&mut self, finding: Finding) -> std::io::Result<()> {
        *self
            .stats
            .findings
            .entry(finding.kind.to_string())
            .or_default() += 1;
        // Keep the first few of each kind; the count says how many there were.
        if self
            .findings
            .iter()
            .filter(|f| f.kind == finding.kind)
            .count()
            < 16
        {
            if let Some(dir) = &self.options.findings_dir {
                save_findings(dir, self.target.name, std::slice::from_ref(&finding))?;
            }
            self.findings.push(finding);
        }
        Ok(())
    }
}

/// Writes each finding's input to `dir` (named by [`Finding::file_name`]) with a `.txt`
/// beside it saying what happened.
pub fn save_findings(dir: &Path, target: &str, findings: &[Finding]) -> std::io::Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for f in findings {
        let name = f.file_name(target);
        std::fs::write(dir.join(&name), &f.input)?;
        std::fs::write(
            dir.join(format!("{name}.txt")),
            format!("{}: {}\n", f.kind, f.message),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_within_the_length_limit_and_change_inputs() {
        let mut rng = Rng::new(7);
        let mut changed = 0;
        for _ in 0..10_000 {
            let mut input = b"{\"a\": [1, 2, 3]}".to_vec();
            let before = input.clone();
            mutate(&mut input, b"other bytes", &[b"\\boxed{"], 24, &mut rng);
            assert!(input.len() <= 24);
            changed += usize::from(input != before);
        }
        assert!(
            changed > 9_000,
            "only {changed} of 10000 mutations changed the input"
        );
    }

    #[test]
    fn rng_is_deterministic_and_spread() {
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..100).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut hist = [0u32; 10];
        for _ in 0..10_000 {
            hist[a.below(10)] += 1;
        }
        assert!(hist.iter().all(|&h| (800..1200).contains(&h)), "{hist:?}");
    }
}
