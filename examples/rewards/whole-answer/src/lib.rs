//! A grail job reward (docs/jobs.md, "WebAssembly rewards"): 1 when the completion contains
//! the gold answer with no ASCII digit right before or after it ("42" counts in "it is 42."
//! but not in "142" or "420"), else 0. The same reward as the built-in spec
//! `regex:(?:^|[^0-9]){answer}(?:[^0-9]|$)`; a test in grail-jobs checks that they agree.
//!
//! Build: `cargo build --release --target wasm32-unknown-unknown`, or
//! `cargo xtask reward-example`, which builds the committed `whole_answer.wasm` with a
//! pinned compiler and checks it is byte for byte this source's.
#![no_std]

use core::arch::wasm32;
use core::slice;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}

/// `n` writable bytes for one input: fresh pages at the end of memory. Each reward runs in
/// a fresh instance, so nothing needs freeing.
#[no_mangle]
pub extern "C" fn alloc(n: usize) -> *mut u8 {
    let pages = (n + 0xFFFF) / 0x10000;
    let old = wasm32::memory_grow(0, pages.max(1));
    if old == usize::MAX {
        wasm32::unreachable()
    }
    (old * 0x10000) as *mut u8
}

/// The reward of `completion` for the prompt with gold `answer` (its metadata is unused).
///
/// # Safety
/// The host passes pointers `alloc` returned, filled with the stated number of bytes.
#[no_mangle]
pub unsafe extern "C" fn reward(
    completion: *const u8,
    completion_len: usize,
    answer: *const u8,
    answer_len: usize,
    _meta: *const u8,
    _meta_len: usize,
) -> f64 {
    let completion = slice::from_raw_parts(completion, completion_len);
    let answer = slice::from_raw_parts(answer, answer_len);
    if contains_whole(completion, answer) {
        1.0
    } else {
        0.0
    }
}

/// Whether `needle` occurs in `hay` with no ASCII digit on either side.
fn contains_whole(hay: &[u8], needle: &[u8]) -> bool {
    if needle.len() > hay.len() {
        return false;
    }
    (0..=hay.len() - needle.len()).any(|i| {
        &hay[i..i + needle.len()] == needle
            && !digit_at(hay, i.wrapping_sub(1))
            && !digit_at(hay, i + needle.len())
    })
}

fn digit_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).map_or(false, u8::is_ascii_digit)
}
