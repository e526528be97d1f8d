//! SIGHUP: read the config file again and apply what can change while running (the log filter,
//! the governor's thresholds; see `config::reload`), naming what needs a restart. A file that
//! no longer validates changes nothing: the daemon runs on with the config it had.

use super::logging;
use biofeedd::config::reload::Reload;
use biofeedd::config::Config;
use biofeedd::governor::GovernorConfig;
use biofeedd::service::Notifier;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::Signal;

/// The file a running daemon was started from, and its text then (or at the last reload).
pub struct ReloadFrom {
    pub path: PathBuf,
    pub text: String,
    /// `run` needs `[[sensor]]` tables; `worker` and `replay --config` do not.
    pub require_sensors: bool,
}

/// What hands the governor new thresholds (a worker has no governor).
pub type Retune = Option<Box<dyn Fn(GovernorConfig) + Send>>;

/// Serve SIGHUPs until the process ends.
pub async fn serve(mut hangup: Signal, mut from: Option<ReloadFrom>, notifier: Arc<Notifier>, retune: Retune) {
    while hangup.recv().await.is_some() {
        let Some(from) = from.as_mut() else {
            tracing::warn!("SIGHUP: this run was not started from a config file (--config); nothing to reload");
            continue;
        };
        let _ = notifier.reloading();
        match Config::load_with_text(&from.path, from.require_sensors) {
            Err(e) => tracing::error!("SIGHUP: {e}\n  the daemon keeps the configuration it runs with"),
            Ok((config, text)) => {
                let reload = Reload::between(&from.text, &text, &config);
                apply(&reload, &retune);
                from.text = text;
            }
        }
        let _ = notifier.ready();
    }
}

fn apply(reload: &Reload, retune: &Retune) {
    if reload.is_empty() {
        tracing::info!("SIGHUP: configuration unchanged");
        return;
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
    if !reload.needs_restart.is_empty() {
        tracing::warn!(
            "SIGHUP: changed, but applied only by a restart (systemctl restart biofeedd): {}",
            reload.needs_restart.join(", ")
        );
    }
}
