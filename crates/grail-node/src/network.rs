//! The outside world of a node: a chain and a drand beacon, windows, randomness, and a
//! stop signal for graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use grail_chain::{BeaconSource, Chain, ChainError, Clock};
use grail_proto::params::PIN_SECONDS;
use grail_proto::{challenge_randomness, window_randomness};
use tokio::sync::watch;

use crate::NodeError;

/// Asks running loops to stop at the next safe point.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

/// Creates a stop signal: send `true` to stop.
pub fn stop_signal() -> (watch::Sender<bool>, Stop) {
    let (tx, rx) = watch::channel(false);
    (tx, Stop(rx))
}

impl Stop {
    /// A signal that never fires.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Self(rx)
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Sleeps for `d`; returns true when a stop was requested meanwhile.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        if self.requested() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.requested(),
            _ = self.0.changed() => true,
        }
    }
}

/// Chain, beacon, clock and window length.
#[derive(Clone)]
pub struct Network {
    /// The chain.
    pub chain: Arc<dyn Chain>,
    /// Verified public randomness.
    pub beacon: Arc<dyn BeaconSource>,
    /// Blocks per window.
    pub window_length: u64,
    /// Expected milliseconds per block (to estimate times of future blocks).
    pub block_time_ms: u64,
    /// What time it is: the wall clock in production; tests pass tokio's paused clock
    /// (the same the chain and beacon read), so deadlines follow simulated time.
    pub clock: Arc<dyn Clock>,
}

impl Network {
    /// The time now, by the network's clock.
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.clock.now_ms() as i64).unwrap_or_default()
    }

    /// The window a block belongs to (its first block).
    pub fn window_of(&self, block: u64) -> u64 {
        block - block % self.window_length
    }

    /// The first window of the last `keep` windows ending with `window`: what a retention
    /// of `keep` windows keeps from (`None` when `keep` is 0, "keep everything", or when
    /// nothing before `window` is old enough to go).
    pub fn first_kept(&self, window: u64, keep: u64) -> Option<u64> {
        let span = keep.checked_sub(1)?.checked_mul(self.window_length)?;
        window.checked_sub(span).filter(|&first| first > 0)
    }

    /// The current window.
    pub async fn current_window(&self) -> Result<u64, NodeError> {
        Ok(self.window_of(self.chain.block_number().await?))
    }

    /// Waits until the chain has reached `block`; false when stopped first.
    pub async fn wait_for_block(&self, block: u64, stop: &mut Stop) -> Result<bool, NodeError> {
        loop {
            let head = self.chain.block_number().await?;
            if head >= block {
                return Ok(true);
            }
            let wait = Duration::from_millis(((block - head) * self.block_time_ms).clamp(50, 2000));
            if stop.sleep(wait).await {
                return Ok(false);
            }
        }
    }

    /// The time of `block` (estimated from the head for future blocks; any other chain
    /// failure is returned).
    pub async fn block_time(&self, block: u64) -> Result<DateTime<Utc>, NodeError> {
        let ms = match self.chain.block_timestamp_ms(block).await {
            Ok(ms) => ms,
            Err(ChainError::FutureBlock { .. }) => {
                let head = self.chain.block_number().await?;
                let head_ms = self.chain.block_timestamp_ms(head).await?;
                head_ms + block.saturating_sub(head) * self.block_time_ms
            }
            Err(e) => return Err(e.into()),
        };
        Utc.timestamp_millis_opt(ms as i64)
            .single()
            .ok_or(NodeError::BlockTime { block, ms })
    }

    /// The upload deadline of window `w`: the time of block `w + window_length`.
    pub async fn deadline(&self, w: u64) -> Result<DateTime<Utc>, NodeError> {
        self.block_time(w + self.window_length).await
    }

    /// Window randomness (protocol §3): block hash of `w` and the drand round at its time.
    pub async fn window_randomness(&self, w: u64) -> Result<[u8; 32], NodeError> {
        let hash = self.chain.block_hash(w).await?;
        let secs = (self.chain.block_timestamp_ms(w).await? / 1000) as u64;
        let round = self.beacon.info().round_at(secs);
        let beacon = self.beacon.beacon(round).await?;
        Ok(window_randomness(w, &hash, &beacon))
    }

    /// Challenge randomness (protocol §3): the deadline block's hash and the first drand
    /// round after the deadline plus [`PIN_SECONDS`]. Fails for a window whose deadline
    /// block does not exist, or before that round is emitted.
    pub async fn challenge_randomness(&self, w: u64) -> Result<[u8; 32], NodeError> {
        let deadline_block = w + self.window_length;
        let hash = self.chain.block_hash(deadline_block).await?;
        let secs = self.chain.block_timestamp_ms(deadline_block).await? / 1000;
        let beacon = self.beacon.beacon(self.challenge_round(secs)).await?;
        Ok(challenge_randomness(w, &hash, &beacon))
    }

    /// The drand round of the challenge of a window whose deadline block is at Unix
    /// `deadline_secs`.
    pub fn challenge_round(&self, deadline_secs: u64) -> u64 {
        self.beacon.info().round_after(deadline_secs + PIN_SECONDS)
    }

    /// When the challenge randomness of window `w` becomes public: the time its drand
    /// round is emitted (estimated from the head while the deadline block is ahead).
    pub async fn challenge_published_at(&self, w: u64) -> Result<DateTime<Utc>, NodeError> {
        let deadline = self.deadline(w).await?;
        let round = self.challenge_round(deadline.timestamp().max(0) as u64);
        let secs = self.beacon.info().round_time(round);
        Ok(DateTime::from_timestamp(secs as i64, 0).unwrap_or(deadline))
    }
}
