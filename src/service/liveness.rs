//! [`Liveness`]: where a process is in its life, and whether its work thread still moves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Where a process is in its life, as the service manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Starting,
    /// Everything is up: sources, pipeline and output (the daemon), or link and compute thread
    /// (a worker).
    Ready,
    /// Shutting down in order (a signal, the end of the streams).
    Stopping,
}

/// Shared between the thread that does the work (it [`beat`](Liveness::beat)s), whoever starts
/// and stops the process (it [`set`](Liveness::set)s the phase) and the task that talks to the
/// service manager (it reads both). Cloning shares it.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    beats: AtomicU64,
    finished: AtomicBool,
    /// Ready was reached, even if stopping followed before anyone looked.
    was_ready: AtomicBool,
    phase: watch::Sender<Phase>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            inner: Arc::new(Inner {
                beats: AtomicU64::new(0),
                finished: AtomicBool::new(false),
                was_ready: AtomicBool::new(false),
                phase: watch::channel(Phase::Starting).0,
            }),
        }
    }
}

impl Liveness {
    /// The work thread went once more round its loop. One relaxed atomic add: cheap enough
    /// for every pass, idle or busy.
    pub fn beat(&self) {
        self.inner.beats.fetch_add(1, Ordering::Relaxed);
    }

    pub fn beats(&self) -> u64 {
        self.inner.beats.load(Ordering::Relaxed)
    }

    /// The work thread ended its work on purpose (the streams ended; a drain follows): from now
    /// on a still count is not a stall.
    pub fn finish(&self) {
        self.inner.finished.store(true, Ordering::Relaxed);
    }

    pub fn is_finished(&self) -> bool {
        self.inner.finished.load(Ordering::Relaxed)
    }

    /// Move on to `phase` (never back).
    pub fn set(&self, phase: Phase) {
        if phase == Phase::Ready {
            self.inner.was_ready.store(true, Ordering::Relaxed);
        }
        self.inner.phase.send_if_modified(|now| {
            let later = phase > *now;
            if later {
                *now = phase;
            }
            later
        });
    }

    /// Whether the process ever became ready (it may be stopping already).
    pub fn was_ready(&self) -> bool {
        self.inner.was_ready.load(Ordering::Relaxed)
    }

    pub fn phase(&self) -> Phase {
        *self.inner.phase.borrow()
    }

    /// Wait until the phase is at least `phase`.
    pub async fn wait_for(&self, phase: Phase) {
        let mut seen = self.inner.phase.subscribe();
        // The sender lives in `inner`, which `self` keeps alive: this cannot fail.
        let _ = seen.wait_for(|now| *now >= phase).await;
    }
}
