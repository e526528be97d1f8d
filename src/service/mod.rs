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
/// `what` names the thread in the log ("pipeline thread", "compute thread"). Runs until the
/// process ends; spawn it.
///
/// With a watchdog timeout W it looks every W/4 and pings when the thread beat within the last
/// W/2: a thread stalled at time s is vouched for until about s + W/2, and the service manager
/// acts at about s + 1.5 W. A pause shorter than W/2 (a slow window) never costs a ping.
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
    if liveness.was_ready() {
        send(notifier.ready(), "READY=1");
    }
    let timeout = notifier.watchdog_timeout();
    let look = timeout.map(|w| (w / 4).max(Duration::from_millis(1)));
    let quiet_limit = timeout.map(|w| w / 2).unwrap_or_default();
    if let Some(w) = timeout {
        tracing::debug!("watchdog: {w:?}; pinging while the {what} makes progress");
    }
    // The first look a whole period from now: one straight away would find the count unmoved.
    let every = look.unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = liveness.beats();
    let mut last_moved = tokio::time::Instant::now();
    let mut stalled = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = tick.tick(), if look.is_some() => {}
            _ = liveness.wait_for(Phase::Stopping), if !stopping => {
                stopping = true;
                send(notifier.stopping(), "STOPPING=1");
                if look.is_none() {
                    return;
                }
                continue;
            }
        }
        let now = liveness.beats();
        if now != last || liveness.is_finished() {
            last = now;
            last_moved = tokio::time::Instant::now();
        }
        let quiet = last_moved.elapsed();
        if quiet <= quiet_limit {
            if stalled {
                stalled = false;
                tracing::info!("watchdog: the {what} moves again");
            }
            send(notifier.watchdog(), "WATCHDOG=1");
        } else if !stalled {
            stalled = true;
            tracing::warn!(
                "watchdog: the {what} made no progress in {:.1} s; withholding the watchdog ping (the service manager restarts the service if this lasts)",
                quiet.as_secs_f64()
            );
        }
    }
}
