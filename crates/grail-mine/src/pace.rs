//! How many groups a miner starts at once, sized from measured throughput so that every
//! batch it starts finishes before the upload must begin. Sans-I/O: the window loop passes
//! the seconds it has left and the seconds each batch took; the estimate is carried across
//! windows, so the time a checkpoint load takes out of a window is simply time not left.
//!
//! The model of a batch's cost is deliberately pessimistic, because a batch that ends after
//! the deadline is wasted work:
//! - a batch of `n` groups costs the least that a measured batch of at least `n` groups
//!   cost (a narrower batch is not slower than a wider one: the same decode steps, fewer
//!   rows), or, wider than any measured, the widest measured scaled linearly with `n`
//!   (batching is sublinear, so this overestimates);
//! - a measurement slower than the estimate replaces it at once; a faster one moves it
//!   only part of the way ([`RELEASE`]), so one quick window does not start work a slow
//!   one cannot finish;
//! - the estimate is multiplied by [`SAFETY`] before it is compared with the time left
//!   ([`FIRST_BATCH_SAFETY`] for a window's first batch, whose cancellation leaves the
//!   window empty), except for a window's first group, which is tried whenever its
//!   estimate fits: the miner cancels a batch still sampling at the cutoff, so trying costs
//!   compute but never a finished group, and without it the window earns nothing.
//!
//! Before anything is measured the miner starts one group alone: the cheapest probe. A
//! batch cancelled at the cutoff only raises estimates ([`CANCELLED`]); a window in which
//! not even one group fits lowers them by [`IDLE_DECAY`], so one slow batch cannot stop a
//! miner.

/// Weight of a measurement faster than the estimate (slower ones replace it).
pub const RELEASE: f64 = 0.3;

/// Headroom on every estimate: a batch is started only when `SAFETY ×` its estimated
/// seconds fit in the time left (completion lengths vary from batch to batch).
pub const SAFETY: f64 = 1.1;

/// Headroom on the estimate of a window's first batch when it is wider than one group: a
/// first batch cancelled at the cutoff leaves the window with nothing to upload, so it is
/// only as wide as fits with this much to spare (one group is still tried whenever its
/// estimate fits).
pub const FIRST_BATCH_SAFETY: f64 = 1.5;

/// What a batch cancelled after `s` seconds is taken to need: `CANCELLED × s` (it had not
/// finished). Large enough that a miner too slow for one group probes again only every
/// few windows ([`IDLE_DECAY`] brings the estimate back down).
pub const CANCELLED: f64 = 1.5;

/// The miner's throughput estimate: seconds per batch, by batch width.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    /// `seconds[n - 1]`: the estimated seconds of a batch of `n` groups, once measured.
    seconds: Vec<Option<f64>>,
}

impl Pacer {
    /// A pacer for batches of at most `max_batch` groups (at least 1), nothing measured.
    pub fn new(max_batch: usize) -> Self {
        Self {
            seconds: vec![None; max_batch.max(1)],
        }
    }

    /// The widest batch this pacer plans.
    pub fn max_batch(&self) -> usize {
        self.seconds.len()
    }

    /// Estimated seconds of a batch of `n` groups (`None` before any measurement).
    pub fn estimate(&self, n: usize) -> Option<f64> {
        let n = n.max(1);
        let measured = |i: usize| self.seconds.get(i - 1).copied().flatten();
        let at_least = (n..=self.seconds.len())
            .filter_map(measured)
            .min_by(f64::total_cmp);
        if at_least.is_some() {
            return at_least;
        }
        (1..n.min(self.seconds.len() + 1))
            .rev()
            .find_map(|m| measured(m).map(|s| s * n as f64 / m as f64))
    }

    /// How many groups to start now, with `left` seconds before the upload must begin,
    /// `wanted` groups still wanted and `first` when none is finished yet in this window:
    /// the widest batch (at most [`Self::max_batch`]) whose estimate, with [`SAFETY`],
    /// fits; one group before anything is measured; 0 when nothing fits (then the window's
    /// work is done). The first group of a window is started whenever its estimate fits
    /// without the safety factor: a batch still sampling at the cutoff is cancelled, so
    /// trying costs compute but never a finished group, and it is the window's only chance.
    pub fn next_batch(&self, left: f64, wanted: usize, first: bool) -> usize {
        let most = wanted.min(self.seconds.len());
        if most == 0 || left <= 0.0 {
            return 0;
        }
        if self.seconds.iter().all(Option::is_none) {
            return 1;
        }
        // A window's first batch, cancelled, leaves the window empty: more headroom.
        let headroom = if first { FIRST_BATCH_SAFETY } else { SAFETY };
        let widest = (1..=most)
            .rev()
            .find(|&n| self.estimate(n).is_some_and(|s| s * headroom <= left));
        match widest {
            Some(n) => n,
            None if first && self.estimate(1).is_some_and(|s| s <= left) => 1,
            None => 0,
        }
    }

    /// Whether not even one group fits in `usable` seconds (a whole window's working time)
    /// by the current estimate.
    pub fn too_slow_for(&self, usable: f64) -> bool {
        self.estimate(1).is_some_and(|s| s > usable)
    }

    /// Records that a batch of `n` groups took `seconds`. Slower than estimated, it also
    /// raises the estimates of wider batches to it (they are not faster).
    pub fn record(&mut self, n: usize, seconds: f64) {
        if n == 0 || !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let n = n.min(self.seconds.len());
        let slot = &mut self.seconds[n - 1];
        *slot = Some(match *slot {
            Some(old) if seconds < old => old + RELEASE * (seconds - old),
            _ => seconds,
        });
        for wider in self.seconds[n..].iter_mut().flatten() {
            *wider = wider.max(seconds);
        }
    }

    /// Records that a batch of `n` groups was cancelled after `seconds`: it would have taken
    /// longer, so the estimate rises to at least [`CANCELLED`] × `seconds` (never falls). A
    /// batch cancelled within a second of its start says nothing and is ignored.
    pub fn record_cancelled(&mut self, n: usize, seconds: f64) {
        if !seconds.is_finite() || seconds < 1.0 {
            return;
        }
        let n = n.clamp(1, self.seconds.len());
        let bound = seconds * CANCELLED;
        if self.estimate(n).is_none_or(|estimate| bound > estimate) {
            self.record(n, bound);
        }
    }

    /// A window in which not even one group fitted: every estimate falls by
    /// [`IDLE_DECAY`], so that one slow batch cannot stop a miner for good (a miner too
    /// slow for the window probes one group every few windows).
    pub fn idle_window(&mut self) {
        for s in self.seconds.iter_mut().flatten() {
            *s *= IDLE_DECAY;
        }
    }
}

/// What a window without any batch leaves of every estimate.
pub const IDLE_DECAY: f64 = 0.9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_pessimistic_and_react_to_slowdowns_at_once() {
        let mut p = Pacer::new(4);
        assert_eq!(p.estimate(1), None);
        assert_eq!(p.next_batch(100.0, 10, true), 1, "one probe group first");
        assert_eq!(p.next_batch(0.0, 10, true), 0);
        assert_eq!(p.next_batch(100.0, 0, true), 0);
        p.record(1, 10.0);
        // Wider than measured: scaled linearly.
        assert_eq!(p.estimate(3), Some(30.0));
        assert_eq!(
            p.next_batch(40.0, 10, false),
            3,
            "3 × 10 s × 1.1 fits in 40 s"
        );
        assert_eq!(p.next_batch(10.5, 10, false), 0, "11 s needed");
        // The window's first group is tried whenever its estimate fits at all, and its
        // first batch is only as wide as fits with 1.5x to spare.
        assert_eq!(p.next_batch(10.5, 10, true), 1);
        assert_eq!(p.next_batch(9.0, 10, true), 0);
        assert_eq!(
            p.next_batch(40.0, 10, true),
            2,
            "2 × 10 s × 1.5 fits in 40 s, 3 do not"
        );
        p.record(4, 16.0);
        // Narrower than a measured batch: that batch's time.
        assert_eq!(p.estimate(2), Some(16.0));
        assert_eq!(p.estimate(1), Some(10.0));
        assert_eq!(p.next_batch(20.0, 10, false), 4);
        assert_eq!(p.next_batch(20.0, 2, false), 2, "never more than wanted");
        // Faster: part of the way; slower: at once.
        p.record(4, 6.0);
        assert!((p.estimate(4).unwrap() - 13.0).abs() < 1e-9);
        p.record(4, 40.0);
        assert_eq!(p.estimate(4), Some(40.0));
        // Nonsense measurements are ignored.
        p.record(4, f64::NAN);
        p.record(0, 1.0);
        assert_eq!(p.estimate(4), Some(40.0));
        assert_eq!(Pacer::new(0).max_batch(), 1);
    }

    /// What one simulated window gave.
    #[derive(Debug, Default, Clone, Copy)]
    struct SimWindow {
        /// Groups finished in time (uploaded).
        uploaded: usize,
        /// Groups of a batch that ended after the upload had to begin (wasted work).
        late: usize,
        /// Batches started.
        batches: usize,
    }

    /// Runs the miner's window loop on simulated time: windows of `window` seconds, an
    /// upload margin of `margin`, `load(w)` seconds of checkpoint loading at the start of
    /// window `w`, and a batch of `n` groups taking `speed(w, n)` seconds. Exactly the
    /// decisions `mine_window` makes, with the clock replaced.
    fn simulate(
        windows: u64,
        window: f64,
        margin: f64,
        load: impl Fn(u64) -> f64,
        speed: impl Fn(u64, usize) -> f64,
    ) -> Vec<SimWindow> {
        let mut pacer = Pacer::new(4);
        (0..windows)
            .map(|w| {
                let mut out = SimWindow::default();
                let mut now = load(w);
                loop {
                    let n = pacer.next_batch(
                        window - margin - now,
                        64 - out.uploaded,
                        out.uploaded == 0,
                    );
                    if n == 0 {
                        if out.batches == 0 && pacer.too_slow_for(window - margin) {
                            pacer.idle_window();
                        }
                        break;
                    }
                    let took = speed(w, n);
                    out.batches += 1;
                    if now + took <= window - margin {
                        now += took;
                        pacer.record(n, took);
                        out.uploaded += n;
                    } else {
                        // Cancelled at the cutoff; the groups finished before are kept.
                        pacer.record_cancelled(n, window - margin - now);
                        out.late += n;
                        break;
                    }
                }
                out
            })
            .collect()
    }

    /// Batches that decode together: a fixed cost per batch plus a smaller one per group.
    fn batched(fixed: f64, per_group: f64) -> impl Fn(u64, usize) -> f64 {
        move |_, n| fixed + per_group * n as f64
    }

    #[test]
    fn a_fast_model_fills_every_window_without_a_late_batch() {
        // 4 groups take 4 s: four full batches fit in the 19 usable seconds, once measured
        // (the first window starts with a one-group probe).
        let run = simulate(10, 24.0, 5.0, |_| 0.0, batched(2.0, 0.5));
        for (w, s) in run.iter().enumerate() {
            assert_eq!(s.late, 0, "window {w}: {s:?}");
            assert!(
                s.uploaded >= if w == 0 { 8 } else { 16 },
                "window {w}: {s:?}"
            );
        }
    }

    #[test]
    fn a_model_slower_than_the_old_fixed_batch_still_uploads_every_window() {
        // The landed miner's case: 4 groups take 30 s, longer than the 24-s window, one
        // group 12 s. The old loop started 4 groups and uploaded nothing, ever.
        let run = simulate(10, 24.0, 5.0, |_| 0.0, batched(8.0, 5.5));
        for (w, s) in run.iter().enumerate() {
            assert_eq!(s.late, 0, "window {w}: {s:?}");
            assert!(s.uploaded >= 1, "window {w}: {s:?}");
        }
        // One group (13.5 s, 14.9 s with the safety factor) fits in the 19 usable seconds;
        // two are estimated at 2 × 13.5 s and are never started.
        assert!(run[1..].iter().all(|s| s.uploaded == 1), "{run:?}");
    }

    #[test]
    fn a_model_too_slow_for_one_group_probes_only_every_few_windows() {
        let run = simulate(12, 24.0, 5.0, |_| 0.0, batched(25.0, 5.0));
        assert_eq!(run[0].late, 1, "the probe runs late");
        let probes = run.iter().filter(|s| s.batches > 0).count();
        assert!((2..=4).contains(&probes), "{run:?}");
        assert!(run.iter().all(|s| s.uploaded == 0), "{run:?}");
    }

    #[test]
    fn one_slow_batch_does_not_stop_the_miner_for_good() {
        // One group takes 13.5 s of the 19 usable; once, in window 2, it takes 26 s.
        let speed = |w: u64, n: usize| batched(8.0, 5.5)(w, n) * if w == 2 { 1.93 } else { 1.0 };
        let run = simulate(12, 24.0, 5.0, |_| 0.0, speed);
        assert!(run[8..].iter().all(|s| s.uploaded >= 1), "{run:?}");
    }

    #[test]
    fn a_cancelled_batch_only_raises_estimates() {
        let mut p = Pacer::new(4);
        p.record_cancelled(1, 0.5);
        assert_eq!(p.estimate(1), None, "cancelled at once: no measurement");
        p.record(2, 10.0);
        p.record_cancelled(2, 4.0);
        assert_eq!(p.estimate(2), Some(10.0));
        p.record_cancelled(2, 14.0);
        assert_eq!(p.estimate(2), Some(14.0 * CANCELLED));
        // A cancelled probe is a lower bound: it would have taken longer.
        let mut probe = Pacer::new(4);
        probe.record_cancelled(1, 19.0);
        assert_eq!(probe.estimate(1), Some(19.0 * CANCELLED));
        // Slower narrow batches raise the wider estimates too.
        p.record(4, 16.0);
        p.record(1, 20.0);
        assert_eq!(p.estimate(4), Some(20.0));
        // Idle windows let every estimate fall.
        p.idle_window();
        assert_eq!(p.estimate(1), Some(20.0 * IDLE_DECAY));
    }

    #[test]
    fn a_slow_first_window_is_forgotten_gradually() {
        // Window 0 runs 4× slower (cold caches, another process): a probe of 1 group.
        let speed = |w: u64, n: usize| batched(2.0, 1.0)(w, n) * if w == 0 { 4.0 } else { 1.0 };
        let run = simulate(8, 24.0, 5.0, |_| 0.0, speed);
        assert!(run.iter().all(|s| s.late == 0), "{run:?}");
        assert!(run[0].uploaded >= 1, "{run:?}");
        // Then the batches widen back to the full width.
        assert!(run[7].uploaded >= 8, "{run:?}");
        assert!(
            run.windows(2)
                .skip(1)
                .all(|p| p[1].uploaded >= p[0].uploaded),
            "{run:?}"
        );
    }

    #[test]
    fn a_checkpoint_load_eating_most_of_a_window_leaves_what_still_fits() {
        // Loading a new checkpoint takes 14 s of the 19 usable seconds in windows 3 and 6:
        // one group (3 s) still fits there, and nothing is started that would end late.
        let load = |w: u64| if w == 3 || w == 6 { 14.0 } else { 0.0 };
        let run = simulate(8, 24.0, 5.0, load, batched(2.0, 1.0));
        assert!(run.iter().all(|s| s.late == 0), "{run:?}");
        assert!(run[3].uploaded >= 1 && run[6].uploaded >= 1, "{run:?}");
        assert!(run[3].uploaded < run[2].uploaded, "{run:?}");
        // A load that leaves less than one group's time: no batch at all.
        let load = |w: u64| if w == 3 { 17.5 } else { 0.0 };
        let run = simulate(5, 24.0, 5.0, load, batched(2.0, 1.0));
        assert_eq!((run[3].batches, run[3].late), (0, 0), "{run:?}");
        assert!(run[4].uploaded >= 1, "{run:?}");
    }
}
