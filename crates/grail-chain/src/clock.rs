//! What time it is, behind a trait: the local chain, the local beacon and the role loops
//! read the time from a [`Clock`], so tests can run a whole network on tokio's paused
//! clock (deterministic and faster than the wall clock) with the production code paths.

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The machine's wall clock (production).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Tokio's clock read as Unix time from an origin: under a paused runtime
/// (`start_paused`) it advances only when every task waits, and then instantly.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Reads `origin_ms` now and advances with tokio's clock from here.
    pub fn from_origin(origin_ms: u64) -> Self {
        Self {
            origin_ms,
            start: tokio::time::Instant::now(),
        }
    }

    /// Starts at the wall clock's time now (call it inside the runtime whose clock it
    /// follows).
    pub fn starting_now() -> Self {
        Self::from_origin(SystemClock.now_ms())
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.origin_ms + self.start.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time_from_its_origin() {
        let clock = TokioClock::from_origin(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::sleep(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now_ms(), 91_000);
        let wall = SystemClock.now_ms();
        assert!(
            wall > 1_700_000_000_000,
            "the wall clock is a Unix time: {wall}"
        );
    }
}
