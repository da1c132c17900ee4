//! Edge coverage from LLVM's SanitizerCoverage on the stable toolchain.
//!
//! `cargo xtask fuzz` builds with `-C passes=sancov-module` and
//! `-C llvm-args=-sanitizer-coverage-inline-8bit-counters` (plus edge level), so every
//! instrumented edge increments one byte counter; each module registers its counter array
//! through [`__sanitizer_cov_8bit_counters_init`], defined here. After each execution
//! [`Map::observe`] buckets the counters the way AFL does (1, 2, 3, 4–7, 8–15, 16–31,
//! 32–127, 128+ hits) and reports whether any (edge, bucket) pair is new, then zeroes them.
//! Without the flags nothing registers and the fuzzer runs as a plain mutation fuzzer.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const MAX_REGIONS: usize = 4096;

static STARTS: [AtomicUsize; MAX_REGIONS] = [const { AtomicUsize::new(0) }; MAX_REGIONS];
static ENDS: [AtomicUsize; MAX_REGIONS] = [const { AtomicUsize::new(0) }; MAX_REGIONS];
static REGIONS: AtomicUsize = AtomicUsize::new(0);

/// Called by instrumented code (module constructors) with each module's counter array.
///
/// # Safety
///
/// `start..stop` must be a counter array that stays valid for the life of the process,
/// which is what LLVM's module constructors pass.
#[no_mangle]
pub unsafe extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, stop: *mut u8) {
    if start.is_null() || stop <= start {
        return;
    }
    let i = REGIONS.fetch_add(1, Relaxed);
    if i < MAX_REGIONS {
        STARTS[i].store(start as usize, Relaxed);
        ENDS[i].store(stop as usize, Relaxed);
    }
}

/// Whether this build is instrumented (any counter registered).
pub fn instrumented() -> bool {
    counters() > 0
}

/// Number of instrumented edges.
pub fn counters() -> usize {
    regions().map(|(s, e)| e - s).sum()
}

fn regions() -> impl Iterator<Item = (usize, usize)> {
    let n = REGIONS.load(Relaxed).min(MAX_REGIONS);
    (0..n).map(|i| (STARTS[i].load(Relaxed), ENDS[i].load(Relaxed)))
}

/// AFL's hit-count buckets as one bit each.
fn bucket(hits: u8) -> u8 {
    match hits {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 4,
        4..=7 => 8,
        8..=15 => 16,
        16..=31 => 32,
        32..=127 => 64,
        128..=255 => 128,
    }
}

/// The (edge, hit bucket) pairs seen so far.
#[derive(Debug, Default)]
pub struct Map {
    seen: Vec<u8>,
    features: usize,
    edges: usize,
}

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Map::default()
    }

    /// Zeroes every counter (before the first execution).
    pub fn clear_counters(&self) {
        for (start, end) in regions() {
            for addr in start..end {
                // SAFETY: `addr` lies in a counter array registered by LLVM's module
                // constructor, valid and writable for the life of the process.
                unsafe { std::ptr::write_volatile(addr as *mut u8, 0) };
            }
        }
    }

    /// Folds the counters of the execution that just ran into the map, zeroes them and
    /// returns how many new (edge, bucket) pairs it found.
    pub fn observe(&mut self) -> usize {
        let total = counters();
        if self.seen.len() < total {
            self.seen.resize(total, 0);
        }
        let mut new = 0;
        let mut offset = 0;
        for (start, end) in regions() {
            let len = end - start;
            let mut i = 0;
            while i < len {
                let addr = start + i;
                if i + 8 <= len {
                    // SAFETY: as in `clear_counters`; eight counters at once, unaligned.
                    let word = unsafe { std::ptr::read_unaligned(addr as *const u64) };
                    if word == 0 {
                        i += 8;
                        continue;
                    }
                }
                // SAFETY: as in `clear_counters`.
                let hits = unsafe { std::ptr::read_volatile(addr as *const u8) };
                if hits != 0 {
                    // SAFETY: as in `clear_counters`.
                    unsafe { std::ptr::write_volatile(addr as *mut u8, 0) };
                    let bit = bucket(hits);
                    let seen = &mut self.seen[offset + i];
                    if *seen & bit == 0 {
                        if *seen == 0 {
                            self.edges += 1;
                        }
                        *seen |= bit;
                        self.features += 1;
                        new += 1;
                    }
                }
                i += 1;
            }
            offset += len;
        }
        new
    }

    /// (edge, bucket) pairs seen.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Edges seen at least once.
    pub fn edges(&self) -> usize {
        self.edges
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_are_single_bits_in_order() {
        let mut last = 0;
        for hits in 1..=255u8 {
            let b = bucket(hits);
            assert_eq!(b.count_ones(), 1);
            assert!(b >= last, "bucket of {hits} below the previous");
            last = b;
        }
        assert_eq!(bucket(0), 0);
    }
}
