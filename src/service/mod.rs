//! What the daemon tells its service manager: that it is ready, that it is reloading or
//! stopping, and — through the watchdog — that its work thread still makes progress.
//!
//! systemd's `Type=notify` protocol is one datagram per message on the socket named by
//! `NOTIFY_SOCKET` (`READY=1`, `WATCHDOG=1`, `STATUS=…`). It is written here rather than taken
//! from a crate because the tests need a notifier bound to a socket of their own (the crates
//! read the process environment at every send, which tests running in parallel share), and the
//! protocol is two dozen lines.
//!
//! The watchdog is fed from [`Liveness`], which the pipeline thread (or a worker's compute
//! thread) beats on every pass of its loop, idle or busy. [`supervise`] pings only when the
//! count moved since its last look: a thread stuck in a model, a lock or a full queue stops
//! the pings, and systemd restarts the service after `WatchdogSec`.
//!
//! Architecture invariant: this module imports nothing of ours; the daemon and the worker hand
//! it a [`Liveness`] and it never reaches into them.

mod liveness;
mod notify;

pub use liveness::{Liveness, Phase};
pub use notify::Notifier;

use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// Say READY once `liveness` is ready and STOPPING when it stops, and in between feed the
/// watchdog (when the service manager asked for one) for as long as `liveness` keeps moving.
/// `what` names the thread in the log ("pipeline", "compute thread"). Runs until the process
/// ends; spawn it.
pub async fn supervise(notifier: Arc<Notifier>, liveness: Liveness, what: &'static str) {
    let send = |result: std::io::Result<()>, message: &str| {
        if let Err(e) = result {
            tracing::warn!("service manager: cannot send {message}: {e}");
        }
    };
    tokio::select! {
        _ = liveness.wait_for(Phase::Ready) => {}
        // Stopped before it was ever ready: systemd learns it from the exit.
        _ = liveness.wait_for(Phase::Stopping) => {}
    }
    if liveness.phase() == Phase::Ready {
        send(notifier.ready(), "READY=1");
    }
    let period = notifier.watchdog_period();
    if let Some(period) = period {
        tracing::debug!("watchdog: pinging every {period:?} while the {what} makes progress");
    }
    // The first look a whole period from now: one straight away would find the count unmoved.
    let every = period.unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = liveness.beats();
    let mut stalled_since: Option<tokio::time::Instant> = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = tick.tick(), if period.is_some() => {}
            _ = liveness.wait_for(Phase::Stopping), if !stopping => {
                stopping = true;
                send(notifier.stopping(), "STOPPING=1");
                if period.is_none() {
                    return;
                }
                continue;
            }
        }
        let now = liveness.beats();
        let alive = now != last || liveness.is_finished();
        last = now;
        if alive {
            if let Some(since) = stalled_since.take() {
                tracing::info!("watchdog: the {what} moves again after {:.1} s", since.elapsed().as_secs_f64());
            }
            send(notifier.watchdog(), "WATCHDOG=1");
        } else if stalled_since.is_none() {
            stalled_since = Some(tokio::time::Instant::now());
            tracing::warn!(
                "watchdog: the {what} made no progress in {:.1} s; withholding the watchdog ping (the service manager restarts the service if this lasts WatchdogSec)",
                period.unwrap_or_default().as_secs_f64()
            );
        }
    }
}

/// Half the service manager's watchdog timeout: a ping every half period tolerates one late tick.
fn ping_period(watchdog_usec: u64) -> Duration {
    Duration::from_micros(watchdog_usec / 2).max(Duration::from_millis(1))
}
