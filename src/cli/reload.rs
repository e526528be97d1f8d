//! SIGHUP: read the config file again and apply what can change while running (the log filter,
//! the governor's thresholds; see `config::reload`), naming what needs a restart. A file that
//! no longer validates changes nothing: the process runs on with the config it had.

use super::logging;
use biofeedd::config::reload::Reload;
use biofeedd::config::Config;
use biofeedd::governor::GovernorConfig;
use biofeedd::service::{Liveness, Notifier, Phase};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::Signal;

/// The file a running process was started from.
pub struct ReloadFrom {
    pub path: PathBuf,
    /// Its text at start: what needs a restart is judged against what is running.
    pub text: String,
    /// `run` needs `[[sensor]]` tables; `worker` does not.
    pub require_sensors: bool,
    /// The unit to name when a change needs a restart.
    pub unit: &'static str,
}

/// What hands the governor new thresholds (none: no models, or a worker).
pub type Retune = Option<Box<dyn Fn(GovernorConfig) + Send>>;

/// Serve SIGHUPs until the process ends. The service manager hears RELOADING/READY only while
/// the process is ready (not while starting or stopping).
pub async fn serve(mut hangup: Signal, from: ReloadFrom, notifier: Arc<Notifier>, liveness: Liveness, retune: Retune) {
    // What the reloadable settings were last set from.
    let mut applied = from.text.clone();
    while hangup.recv().await.is_some() {
        let ready = liveness.phase() == Phase::Ready;
        if ready {
            let _ = notifier.reloading();
        }
        match Config::load_with_text(&from.path, from.require_sensors) {
            Err(e) => tracing::error!("SIGHUP: {e}\n  the configuration in use stays as it was"),
            Ok((config, text)) => {
                let reloadable = Reload::between(&applied, &text, &config);
                let since_start = Reload::between(&from.text, &text, &config);
                apply(&reloadable, &since_start.needs_restart, &retune, from.unit);
                applied = text;
            }
        }
        if ready {
            let _ = notifier.ready();
        }
    }
}

fn apply(reload: &Reload, needs_restart: &[String], retune: &Retune, unit: &str) {
    if reload.log_level.is_none() && reload.governor.is_none() && needs_restart.is_empty() {
        tracing::info!("SIGHUP: configuration unchanged");
    }
    if let Some(level) = &reload.log_level {
        tracing::info!("SIGHUP: {}", logging::set_level(level));
    }
    match (&reload.governor, retune) {
        (Some(governor), Some(retune)) => {
            retune(governor.clone());
            tracing::info!("SIGHUP: governor thresholds reloaded");
        }
        (Some(_), None) => tracing::info!("SIGHUP: [governor] changed; this process runs no governor"),
        (None, _) => {}
    }
    if !needs_restart.is_empty() {
        tracing::warn!(
            "SIGHUP: changed since start, applied only by a restart (systemctl restart {unit}): {}",
            needs_restart.join(", ")
        );
    }
}
