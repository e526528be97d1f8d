//! `biofeedd worker`: serve offload requests until SIGTERM or SIGINT, then drain. Under a
//! service manager: READY once serving, the watchdog fed from the compute thread, SIGHUP
//! reloading the log filter.

use super::logging;
use super::reload::{self, ReloadFrom};
use anyhow::Context;
use biofeedd::config::Config;
use biofeedd::service::{self, Liveness, Notifier};
use std::path::Path;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

pub fn worker(path: &Path) -> anyhow::Result<()> {
    // A worker needs the broker and the models, not the hub's sensors.
    let (config, text) = Config::load_with_text(path, false)?;
    logging::set_level(&config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let (stop, stopped) = watch::channel(false);
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop.send(true);
        });
        let notifier = Arc::new(Notifier::from_env().context("NOTIFY_SOCKET")?);
        let liveness = Liveness::default();
        tokio::spawn(service::supervise(notifier.clone(), liveness.clone(), "compute thread"));
        let from = ReloadFrom { path: path.to_path_buf(), text, require_sensors: false, unit: "biofeedd-worker" };
        tokio::spawn(reload::serve(hangup, from, notifier, liveness.clone(), None));
        biofeedd::worker::serve(&config, stopped, &liveness).await.map(|_| ())
    })
}
