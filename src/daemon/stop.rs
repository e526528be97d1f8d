//! Why a run stops before its sources end: SIGTERM, SIGINT, `--duration`, or a stop request.
//!
//! The signal handlers are installed when the daemon starts, before models load, so a SIGTERM
//! that arrives while it is still getting ready stops it cleanly (summary, exit 0) instead of
//! killing it with the default action.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::time::Instant;

pub struct StopSignals {
    term: Option<Signal>,
    int: Option<Signal>,
    deadline: Option<Instant>,
    requested: watch::Receiver<bool>,
}

impl StopSignals {
    /// Listen from now on; `duration` counts from now too. `requested` turning true also stops.
    pub fn install(duration: Option<std::time::Duration>, requested: watch::Receiver<bool>) -> Self {
        StopSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
            deadline: duration.map(|d| Instant::now() + d),
            requested,
        }
    }

    /// Wait for the first reason to stop and name it.
    pub async fn next(&mut self) -> &'static str {
        async fn recv(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = recv(&mut self.term) => "SIGTERM",
            _ = recv(&mut self.int) => "SIGINT",
            _ = deadline => "--duration reached",
            _ = self.requested.wait_for(|stop| *stop) => "stop requested",
        }
    }
}
