//! Which window a role works on next: one cursor drives the miner, validator and trainer
//! loops (where to start or resume, when a window is ready, how many are left).

use tracing::warn;

use crate::network::{Network, Stop};
use crate::NodeError;

/// When a window is ready for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// At the window's first block: miners generate during the window. A window that is
    /// already over when its turn comes is skipped (and counts as done).
    Open,
    /// At the block after the deadline block, so the deadline block's time is final:
    /// validators and trainers work on finished windows.
    Sealed,
}

/// The windows a role loop works on, in order. Pure bookkeeping except [`Self::next`],
/// which waits on the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCursor {
    next: u64,
    window_length: u64,
    readiness: Readiness,
    remaining: Option<u64>,
}

impl WindowCursor {
    /// A cursor that starts after `last_done` (a restart resumes from saved state), else
    /// at `from`, else at the default for its readiness: the current window (`Open`) or
    /// the last complete one (`Sealed`). `limit` windows at most (`None`: until stopped).
    pub fn new(
        last_done: Option<u64>,
        from: Option<u64>,
        current_window: u64,
        window_length: u64,
        readiness: Readiness,
        limit: Option<u64>,
    ) -> Self {
        let next = match (last_done, from) {
            (Some(last), _) => last + window_length,
            (None, Some(from)) => from,
            (None, None) => match readiness {
                Readiness::Open => current_window,
                Readiness::Sealed => current_window.saturating_sub(window_length),
            },
        };
        Self {
            next,
            window_length,
            readiness,
            remaining: limit,
        }
    }

    /// [`Self::new`] with the current window read from the chain (only when needed).
    ///
    /// # Errors
    /// The chain cannot be read.
    pub async fn start(
        net: &Network,
        last_done: Option<u64>,
        from: Option<u64>,
        readiness: Readiness,
        limit: Option<u64>,
    ) -> Result<Self, NodeError> {
        let current = match (last_done, from) {
            (None, None) => net.current_window().await?,
            _ => 0,
        };
        Ok(Self::new(
            last_done,
            from,
            current,
            net.window_length,
            readiness,
            limit,
        ))
    }

    /// The window the cursor points at.
    pub fn window(&self) -> u64 {
        self.next
    }

    /// Windows left before the limit (`None`: no limit).
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    /// The block the chain must reach before window `window` is ready.
    pub fn ready_block(&self, window: u64) -> u64 {
        match self.readiness {
            Readiness::Open => window,
            Readiness::Sealed => window + self.window_length + 1,
        }
    }

    /// Waits until the next window is ready and returns it; `None` when the limit is
    /// reached or a stop was requested. An `Open` cursor skips windows that are already
    /// over and counts them against the limit.
    ///
    /// # Errors
    /// The chain cannot be read.
    pub async fn next(&mut self, net: &Network, stop: &mut Stop) -> Result<Option<u64>, NodeError> {
        loop {
            if self.remaining == Some(0) || stop.requested() {
                return Ok(None);
            }
            if !net
                .wait_for_block(self.ready_block(self.next), stop)
                .await?
            {
                return Ok(None);
            }
            if self.readiness == Readiness::Open {
                let head_window = net.current_window().await?;
                if head_window > self.next {
                    warn!(
                        window = self.next,
                        "window already over; skipping to {head_window}"
                    );
                    self.consume((head_window - self.next) / self.window_length);
                    self.next = head_window;
                    continue;
                }
            }
            return Ok(Some(self.next));
        }
    }

    /// Marks the window [`Self::next`] returned as done: it counts against the limit and
    /// the cursor moves to the following window.
    pub fn advance(&mut self) {
        self.consume(1);
        self.next += self.window_length;
    }

    fn consume(&mut self, windows: u64) {
        if let Some(r) = &mut self.remaining {
            *r = r.saturating_sub(windows);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The cursor on simulated time (see `crate::sim`).

    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::network::stop_signal;
    use crate::sim::{network as sim_network, BLOCK_MS, WINDOW_LENGTH as WL};

    fn at_block(start: Instant, block: u64) -> Duration {
        Instant::now() - start - Duration::from_millis(block * BLOCK_MS)
    }

    #[test]
    fn start_rule_resumes_then_follows_from_then_defaults() {
        let c = |last, from, r| WindowCursor::new(last, from, 20, WL, r, None).window();
        assert_eq!(c(Some(8), Some(0), Readiness::Sealed), 12);
        assert_eq!(c(None, Some(4), Readiness::Sealed), 4);
        assert_eq!(c(None, None, Readiness::Sealed), 16);
        assert_eq!(c(None, None, Readiness::Open), 20);
        let early = WindowCursor::new(None, None, 0, WL, Readiness::Sealed, None);
        assert_eq!(early.window(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn sealed_windows_come_after_their_deadline_block_in_order() {
        let net = sim_network();
        let start = Instant::now();
        let mut stop = Stop::never();
        let mut cursor = WindowCursor::start(&net, None, Some(0), Readiness::Sealed, Some(3))
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Some(w) = cursor.next(&net, &mut stop).await.unwrap() {
            // Ready at block w + WL + 1, and not much later (the wait polls at most every
            // block time, clamped to 50 ms–2 s).
            let late = at_block(start, w + WL + 1);
            assert!(late < Duration::from_millis(BLOCK_MS), "{w}: {late:?}");
            seen.push(w);
            cursor.advance();
        }
        assert_eq!(seen, [0, 4, 8]);
        assert_eq!(cursor.remaining(), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn open_windows_that_are_over_are_skipped_and_counted() {
        let net = sim_network();
        let mut stop = Stop::never();
        let mut cursor = WindowCursor::new(None, Some(0), 0, WL, Readiness::Open, Some(5));
        assert_eq!(cursor.next(&net, &mut stop).await.unwrap(), Some(0));
        // The miner's work on window 0 takes until block 13 (window 12): windows 4 and 8
        // are over and count against the limit.
        tokio::time::advance(Duration::from_millis(13 * BLOCK_MS)).await;
        cursor.advance();
        assert_eq!(cursor.next(&net, &mut stop).await.unwrap(), Some(12));
        assert_eq!(cursor.remaining(), Some(2));
        cursor.advance();
        assert_eq!(cursor.next(&net, &mut stop).await.unwrap(), Some(16));
        cursor.advance();
        assert_eq!(cursor.next(&net, &mut stop).await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_wait_without_a_window() {
        let net = sim_network();
        let (tx, mut stop) = stop_signal();
        let start = Instant::now();
        let mut cursor = WindowCursor::new(None, Some(400), 0, WL, Readiness::Sealed, None);
        let waiter = tokio::spawn(async move { cursor.next(&net, &mut stop).await.unwrap() });
        tokio::time::sleep(Duration::from_secs(3)).await;
        tx.send(true).unwrap();
        assert_eq!(waiter.await.unwrap(), None);
        // Stopped at the request, long before window 400 was ready (block 405).
        assert!(Instant::now() - start < Duration::from_secs(6));
    }
}
