//! A counting global allocator for the "no allocation per command" tests.
//!
//! Why `unsafe` here: counting allocations needs a `#[global_allocator]`,
//! and implementing `GlobalAlloc` is an `unsafe impl` (its methods are
//! `unsafe fn`). It lives in this one test-support module, used by each
//! crate's allocation test; the library crates stay
//! `#![forbid(unsafe_code)]`.
//!
//! Use: in the test binary
//! `#[global_allocator] static GLOBAL: Counting = Counting;`, then count
//! the allocations made on the current thread between [`start`] and
//! [`stop`] (`pause`/`resume` leave work out). `TRACE_ALLOC=1` prints a
//! backtrace of each allocation counted.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to [`System`], counting the allocations of threads that count.
pub struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note_alloc() {
    // `try_with`: the allocator may be called while thread-locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
            on.set(false);
            if std::env::var_os("TRACE_ALLOC").is_some() {
                eprintln!("ALLOC {}", std::backtrace::Backtrace::force_capture());
            }
            on.set(true);
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the bookkeeping touches only const-initialised thread-locals
// without destructors (no allocation, no re-entry).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Start counting this thread's allocations from zero.
pub fn start() {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
}
/// Leave what follows out of the count (until [`resume`]).
pub fn pause() {
    COUNTING.with(|c| c.set(false));
}
/// Count again after [`pause`].
pub fn resume() {
    COUNTING.with(|c| c.set(true));
}
/// Stop counting; the allocations counted since [`start`].
pub fn stop() -> u64 {
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|n| n.get())
}
