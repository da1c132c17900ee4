//! A counting global allocator: live bytes, the peak of one execution and the largest
//! single request, so a fuzz target that allocates without bound is caught even when the
//! machine could satisfy the request. Requests above [`set_hard_cap`] fail (the process
//! aborts with Rust's allocation-error message, which the supervisor records).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counted.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BIGGEST: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);
static HARD_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    BIGGEST.fetch_max(size, Relaxed);
}

fn refused(size: usize) -> bool {
    if size > HARD_CAP.load(Relaxed) {
        REFUSED.fetch_max(size, Relaxed);
        return true;
    }
    false
}

/// Runs `allocate` unless `size` is refused, counting what it returns.
fn counted(size: usize, allocate: impl FnOnce() -> *mut u8) -> *mut u8 {
    if refused(size) {
        return std::ptr::null_mut();
    }
    let p = allocate();
    if !p.is_null() {
        grew(size);
    }
    p
}

// SAFETY: every call is forwarded to `System` with the caller's layout; the counters are
// plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size(), || System.alloc(layout))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted(layout.size(), || System.alloc_zeroed(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if refused(new_size) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Requests larger than `bytes` fail from now on (the default: none fail).
pub fn set_hard_cap(bytes: usize) {
    HARD_CAP.store(bytes, Relaxed);
}

/// Heap use of one execution, from [`Execution::start`] to [`Execution::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Execution {
    live_at_start: usize,
}

/// What one execution allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapUse {
    /// Most bytes live at once above what was live at the start.
    pub peak: usize,
    /// The largest single request.
    pub biggest: usize,
    /// The largest request refused by the hard cap (0: none).
    pub refused: usize,
}

impl Execution {
    /// Starts measuring.
    pub fn start() -> Self {
        let live_at_start = LIVE.load(Relaxed);
        PEAK.store(live_at_start, Relaxed);
        BIGGEST.store(0, Relaxed);
        REFUSED.store(0, Relaxed);
        Execution { live_at_start }
    }

    /// What was allocated since [`Self::start`].
    pub fn finish(self) -> HeapUse {
        HeapUse {
            peak: PEAK.load(Relaxed).saturating_sub(self.live_at_start),
            biggest: BIGGEST.load(Relaxed),
            refused: REFUSED.load(Relaxed),
        }
    }
}
