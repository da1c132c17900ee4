//! Progress of long work (GGUF import, model loading, generation, evaluation) as one
//! line with the rate and the time left. On a terminal the line is redrawn in place (at
//! most ten times a second); elsewhere — a log file, a service manager — only a few
//! milestone lines are written (at 25, 50, 75 and 100 % of each stage), so logs stay short.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub use grail_infer::Progress;

/// Shortest time between two redraws on a terminal.
const REDRAW: Duration = Duration::from_millis(100);

/// What a [`ProgressLine`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Redraw the current line with this text (terminals).
    Redraw(String),
    /// End the redrawn line (terminals).
    EndLine,
    /// One milestone line (elsewhere).
    Milestone(String),
}

/// `d` as `4.2s`, `3m05s` or `1h02m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

fn rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}")
    } else if per_second >= 10.0 {
        format!("{per_second:.1}")
    } else {
        format!("{per_second:.2}")
    }
}

/// The text of a progress line for `p` after `elapsed` in its stage: done and total,
/// percentage, rate (units per second) and the time left at that rate; a finished stage
/// says how long it took (and its rate, when it took a second or more).
pub fn line(p: Progress, elapsed: Duration) -> String {
    let total = p.total.max(1);
    let done = if p.total == 0 {
        total
    } else {
        p.done.min(total)
    };
    let pct = done as f64 * 100.0 / total as f64;
    let secs = elapsed.as_secs_f64();
    if done >= total {
        // A rate over less than a second says little (one file in 2 ms is not 500/s).
        let per_second = if secs >= 1.0 {
            format!(", {}/s", rate(total as f64 / secs))
        } else {
            String::new()
        };
        return format!(
            "{}: {done}/{total} (100%) in {}{per_second}",
            p.stage,
            duration(elapsed)
        );
    }
    let speed = if done > 0 && secs > 0.0 {
        let per_second = done as f64 / secs;
        let left = Duration::from_secs_f64((total - done) as f64 / per_second);
        format!("{}/s, ETA {}", rate(per_second), duration(left))
    } else {
        "ETA ?".to_string()
    };
    format!("{}: {done}/{total} ({pct:.0}%) {speed}", p.stage)
}

/// Shows [`Progress`] reports as a progress line; see the module docs.
pub struct ProgressLine {
    terminal: bool,
    write: Box<dyn FnMut(Output) + Send>,
    stage: Option<&'static str>,
    started: Instant,
    last_draw: Option<Instant>,
    quarter: u64,
    open: bool,
}

impl std::fmt::Debug for ProgressLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressLine")
            .field("terminal", &self.terminal)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

fn to_stderr(out: Output) {
    let mut e = std::io::stderr().lock();
    let _ = match out {
        Output::Redraw(text) => write!(e, "\r{text}\x1b[K"),
        Output::EndLine => writeln!(e),
        Output::Milestone(text) => writeln!(e, "{text}"),
    };
    let _ = e.flush();
}

impl ProgressLine {
    /// For command-line tools: redrawn on stderr when it is a terminal, else milestone
    /// lines on stderr.
    pub fn stderr() -> Self {
        Self::new(std::io::stderr().is_terminal(), Box::new(to_stderr))
    }

    /// For the roles: redrawn on stderr when it is a terminal, else milestones as `info`
    /// log events (in the role's log format).
    pub fn log() -> Self {
        let write = |out: Output| match out {
            Output::Milestone(text) => tracing::info!("{text}"),
            other => to_stderr(other),
        };
        Self::new(std::io::stderr().is_terminal(), Box::new(write))
    }

    /// A line that redraws (`terminal`) or writes milestones, through `write`.
    pub fn new(terminal: bool, write: Box<dyn FnMut(Output) + Send>) -> Self {
        Self {
            terminal,
            write,
            stage: None,
            started: Instant::now(),
            last_draw: None,
            quarter: 0,
            open: false,
        }
    }

    /// Shows `p`.
    pub fn update(&mut self, p: Progress) {
        self.update_at(p, Instant::now());
    }

    /// Shows `p` as of `now` (tests pass their own clock).
    pub fn update_at(&mut self, p: Progress, now: Instant) {
        if self.stage != Some(p.stage) {
            self.finish();
            self.stage = Some(p.stage);
            self.started = now;
            self.last_draw = None;
            self.quarter = 0;
        }
        let finished = p.done >= p.total;
        let text = || line(p, now.saturating_duration_since(self.started));
        if self.terminal {
            let due = self
                .last_draw
                .is_none_or(|t| now.saturating_duration_since(t) >= REDRAW);
            if due || finished {
                (self.write)(Output::Redraw(text()));
                self.last_draw = Some(now);
                self.open = true;
            }
            if finished {
                self.finish();
            }
        } else {
            let quarter = if finished {
                4
            } else {
                p.done.saturating_mul(4) / p.total.max(1)
            };
            if quarter > self.quarter {
                self.quarter = quarter;
                (self.write)(Output::Milestone(text()));
            }
        }
    }

    /// Ends a redrawn line that is still open (before other output).
    pub fn finish(&mut self) {
        if self.open {
            (self.write)(Output::EndLine);
            self.open = false;
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn capture(terminal: bool) -> (ProgressLine, Arc<Mutex<Vec<Output>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let line = ProgressLine::new(terminal, Box::new(move |o| sink.lock().unwrap().push(o)));
        (line, seen)
    }

    #[test]
    fn the_line_has_rate_and_eta() {
        let p = |done| Progress::new("generating", done, 400);
        assert_eq!(line(p(0), Duration::ZERO), "generating: 0/400 (0%) ETA ?");
        assert_eq!(
            line(p(100), Duration::from_secs(2)),
            "generating: 100/400 (25%) 50.0/s, ETA 6.0s"
        );
        assert_eq!(
            line(p(4), Duration::from_secs(200)),
            "generating: 4/400 (1%) 0.02/s, ETA 5h30m"
        );
        assert_eq!(
            line(p(400), Duration::from_secs(125)),
            "generating: 400/400 (100%) in 2m05s, 3.20/s"
        );
        // A total of 0 counts as done rather than dividing by zero.
        assert_eq!(
            line(Progress::new("x", 0, 0), Duration::ZERO),
            "x: 1/1 (100%) in 0.0s"
        );
        assert_eq!(
            line(
                Progress::new("loading weights", 1, 1),
                Duration::from_millis(2)
            ),
            "loading weights: 1/1 (100%) in 0.0s"
        );
    }

    #[test]
    fn elsewhere_only_quarters_are_written() {
        let (mut l, seen) = capture(false);
        let t0 = Instant::now();
        for done in 0..=1000 {
            l.update_at(
                Progress::new("dequantizing", done, 1000),
                t0 + Duration::from_millis(done),
            );
        }
        l.update_at(Progress::new("writing model", 1, 1), t0);
        let seen = seen.lock().unwrap();
        let lines: Vec<&str> = seen
            .iter()
            .map(|o| match o {
                Output::Milestone(t) => t.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(
            lines[0].starts_with("dequantizing: 250/1000 (25%)"),
            "{lines:?}"
        );
        assert!(lines[3].starts_with("dequantizing: 1000/1000 (100%) in 1.0s"));
        assert!(lines[4].starts_with("writing model: 1/1 (100%)"));
    }

    #[test]
    fn a_terminal_redraws_at_most_ten_times_a_second_and_ends_each_stage() {
        let (mut l, seen) = capture(true);
        let t0 = Instant::now();
        // 1000 reports over 0.5 s: the first, one per 100 ms, and the last.
        for done in 0..=1000 {
            l.update_at(
                Progress::new("loading weights", done, 1000),
                t0 + Duration::from_micros(done * 500),
            );
        }
        l.update_at(Progress::new("generating", 3, 10), t0);
        drop(l);
        let seen = seen.lock().unwrap();
        let redraws = seen
            .iter()
            .filter(|o| matches!(o, Output::Redraw(_)))
            .count();
        assert!((6..=8).contains(&redraws), "{redraws}: {seen:?}");
        assert_eq!(
            seen.iter().filter(|o| **o == Output::EndLine).count(),
            2,
            "the finished stage and the one open at drop: {seen:?}"
        );
        assert!(
            matches!(&seen[seen.len() - 2], Output::Redraw(t) if t.starts_with("generating: 3/10"))
        );
    }
}
