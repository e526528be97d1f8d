//! The feature stage allocates nothing per hop once it is warm (ARCHITECTURE.md, `features`).
//!
//! A counting global allocator wraps the system one; the extractor runs every 5 s hop of the real
//! recordings once to reach its steady state (buffers grown to their working size), then the
//! same hops again while the allocator counts. Allocation on the pipeline thread is the latency
//! jitter and fragmentation a long-running hub cannot afford, so this is an invariant, not a
//! benchmark: the count is exact and independent of the machine.

#[path = "../benches/common/mod.rs"]
mod recordings;

use biofeedd::features::FeatureExtractor;
use biofeedd::ingest::replay::Recording;
use recordings::{hops, HOP_S};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations made by this thread while `COUNTING` is set. Thread-local so the test
    /// harness's other threads cannot disturb the count.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// One more allocation by this thread, if it is counting.
fn count() {
    // `try_with`: a thread being torn down has no locals left; its allocations are not ours.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|a| a.get())
}

fn assert_no_allocation_per_hop(name: &str, rec: &Recording) {
    let windows = hops(rec);
    assert!(windows.len() > 10, "{name}: only {} hops", windows.len());
    // A 30 s baseline, so the counted hops also compute the z_ features.
    let mut extractor = FeatureExtractor::with_hop(HOP_S).with_baseline(30.0);
    let mut checksum = 0.0f64;
    for w in &windows {
        checksum += extractor.extract(w).values.iter().filter(|v| v.is_finite()).map(|&v| v as f64).sum::<f64>();
    }
    // The counted pass is the hops again after the first: the same streams, one jump back in time
    // at the start (as the criterion bench cycles), so the counted hops exercise every component.
    let n = allocations_in(|| {
        for w in &windows[1..] {
            checksum += extractor.extract(w).values.iter().filter(|v| v.is_finite()).map(|&v| v as f64).sum::<f64>();
        }
    });
    assert!(checksum.is_finite() && checksum != 0.0, "{name}: the extractor produced no features");
    assert_eq!(n, 0, "{name}: {n} allocations in {} steady-state hops", windows.len() - 1);
}

#[test]
fn features_allocate_nothing_per_hop_on_the_demo_recording() {
    assert_no_allocation_per_hop("demo (ECG, EDA, RSP at 100 Hz)", &recordings::demo_recording());
}

#[test]
fn features_allocate_nothing_per_hop_on_the_e4_excerpt() {
    assert_no_allocation_per_hop("E4 excerpt (BVP, EDA, TEMP, ACC)", &recordings::e4_recording());
}
