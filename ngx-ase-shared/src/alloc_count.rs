//! For tests that prove a path allocates nothing: a global allocator that counts this
//! thread's allocations. A test binary installs it with
//! `#[global_allocator] static A: Counting = Counting;` (only a binary can choose its
//! allocator, so this file only offers it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting allocations and reallocations per thread.
pub struct Counting;

// SAFETY: every call goes straight to the system allocator; counting touches only a
// thread-local cell (and nothing during thread teardown, when `try_with` fails).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            System.alloc(layout)
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            System.realloc(ptr, layout, new_size)
        }
    }
}

/// How many allocations `f` made on this thread (meaningful only with `Counting`
/// installed as the global allocator).
pub fn allocations(f: impl FnOnce()) -> usize {
    let before = COUNT.with(Cell::get);
    f();
    COUNT.with(Cell::get) - before
}
