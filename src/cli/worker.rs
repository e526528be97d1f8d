//! `biofeedd worker`: serve offload requests until SIGTERM or SIGINT, then drain.

use anyhow::Context;
use biofeedd::config::Config;
use std::path::Path;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

pub fn worker(config: &Path) -> anyhow::Result<()> {
    // A worker needs the broker and the models, not the hub's sensors.
    let config = Config::load_settings(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let (stop, stopped) = watch::channel(false);
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop.send(true);
        });
        biofeedd::worker::serve(&config, stopped).await.map(|_| ())
    })
}
