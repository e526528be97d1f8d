//! `biofeedd worker`: the cloud side of offload. It takes requests from an MQTT 5 shared
//! subscription (`$share/{group}/biofeedd/v1/+/offload/req`), runs the stage each names — after
//! checking it has exactly that model (name and SHA-256) and that the inputs have its shape —
//! and answers on the request's response topic with its correlation data.
//!
//! Stateless: any worker can answer any request, so more processes (on one machine, or on
//! several behind a broker cluster) give more throughput; the broker spreads requests over the
//! group. Threads: the link's tokio task receives; one compute thread owns the models (tract
//! runs there, never on tokio's workers, as in the daemon) and publishes the replies through the
//! client handle, which never blocks.
//!
//! Drain (SIGTERM, SIGINT or `stop`): unsubscribe so the broker sends the group's next requests
//! to the other workers, answer what has already arrived, then disconnect.

pub mod catalog;

use crate::bridge::offload::link::{self, Incoming};
use crate::bridge::offload::reply::Outcome;
use crate::bridge::Topics;
use crate::config::Config;
use crate::fusion::Fusion;
use crate::service::{Liveness, Phase};
use anyhow::Context;
use catalog::Catalog;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Requests waiting for the compute thread; past this a request is refused as busy at once, so
/// its hub falls back now rather than at its deadline.
const QUEUE: usize = 1024;
/// How long a drain waits for the link to settle after unsubscribing.
const DRAIN_SETTLE: Duration = Duration::from_millis(200);

/// What a worker did, for its closing line and the tests.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub received: AtomicU64,
    pub answered: AtomicU64,
    pub refused: AtomicU64,
    /// Refused because the queue was full.
    pub busy: AtomicU64,
    /// Requests without a response topic: nowhere to answer.
    pub unanswerable: AtomicU64,
    /// Requests that waited in the queue past their budget: not run, not answered (their hub
    /// has answered them itself).
    pub expired: AtomicU64,
}

impl WorkerStats {
    pub fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "worker: {} requests, {} answered, {} refused ({} busy), {} expired in the queue, {} without a response topic",
            g(&self.received),
            g(&self.answered),
            g(&self.refused),
            g(&self.busy),
            g(&self.expired),
            g(&self.unanswerable)
        )
    }
}

/// How often an idle compute thread wakes to say it is alive (the watchdog's beat).
const IDLE_BEAT: Duration = Duration::from_secs(1);

/// A worker connected (or connecting) and serving until `stop` turns true. `liveness` turns
/// ready once the link and the compute thread run, and the compute thread beats it.
pub async fn serve(
    config: &Config,
    mut stop: watch::Receiver<bool>,
    liveness: &Liveness,
) -> anyhow::Result<Arc<WorkerStats>> {
    let mqtt = config.mqtt.as_ref().context("a worker needs [mqtt]: the broker its hubs send requests to")?;
    let offload = config.offload.clone().unwrap_or_default();
    let group = &offload.group;
    let settings = mqtt.settings(&config.hub.id, &config.base_dir).map_err(|e| anyhow::anyhow!("[mqtt] {e}"))?;
    let fusion = Fusion::from_config(&config.fusion, |p| config.resolve(p)).context("[fusion]")?;
    let catalog = Catalog::new(fusion);
    let name = format!("{}-worker-{}", settings.client_id, std::process::id());
    let filter = Topics::offload_worker_filter(group, &offload.hubs);
    tracing::info!("worker `{name}`: serving {} on `{filter}`", catalog.describe().join(", "));
    let mut link = link::open(&settings, name.clone(), filter.clone());
    let stats = Arc::new(WorkerStats::default());
    let (jobs, queue) = mpsc::sync_channel::<(Incoming, Instant)>(QUEUE);
    let compute = {
        let (client, stats, name, beat) = (link.client.clone(), stats.clone(), name.clone(), liveness.clone());
        std::thread::Builder::new()
            .name("worker-compute".into())
            .spawn(move || compute(catalog, queue, &client, &name, &stats, &beat))
            .context("cannot start the compute thread")?
    };
    liveness.set(Phase::Ready);
    let mut draining = false;
    loop {
        tokio::select! {
            message = link.incoming.recv() => {
                let Some(message) = message else { break };
                stats.received.fetch_add(1, Ordering::Relaxed);
                if let Err(mpsc::TrySendError::Full((message, _))) = jobs.try_send((message, Instant::now())) {
                    stats.busy.fetch_add(1, Ordering::Relaxed);
                    refuse_busy(&link.client, &name, message, &stats);
                }
            }
            _ = stop.wait_for(|s| *s), if !draining => {
                tracing::info!("worker `{name}`: draining (unsubscribed; answering what has arrived)");
                liveness.set(Phase::Stopping);
                link.unsubscribe(&filter);
                draining = true;
            }
            _ = tokio::time::sleep(DRAIN_SETTLE), if draining => break,
        }
    }
    drop(jobs);
    tokio::task::spawn_blocking(move || compute.join())
        .await
        .context("compute thread join")?
        .map_err(|_| anyhow::anyhow!("the compute thread panicked"))?;
    link.close(Duration::from_secs(2)).await;
    tracing::info!("{}", stats.line());
    Ok(stats)
}

/// The compute thread: answer every queued request until the queue closes.
fn compute(
    mut catalog: Catalog,
    queue: mpsc::Receiver<(Incoming, Instant)>,
    client: &rumqttc::v5::AsyncClient,
    name: &str,
    stats: &WorkerStats,
    liveness: &Liveness,
) {
    loop {
        liveness.beat();
        let (message, started) = match queue.recv_timeout(IDLE_BEAT) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let Some(response_topic) = message.response_topic else {
            stats.unanswerable.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(reply) = catalog.answer(name, &message.payload, started) else {
            stats.expired.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let counter = match &reply.outcome {
            Outcome::Ok { .. } => &stats.answered,
            Outcome::Refused { reason } => {
                tracing::debug!("refused a request on {}: {reason}", message.topic);
                &stats.refused
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        link::publish(client, &response_topic, reply.to_json(), None, message.correlation, None);
    }
    liveness.finish();
}

fn refuse_busy(client: &rumqttc::v5::AsyncClient, name: &str, message: Incoming, stats: &WorkerStats) {
    stats.refused.fetch_add(1, Ordering::Relaxed);
    let Some(topic) = message.response_topic else { return };
    let reply = catalog::refusal(name, "", "", format!("worker busy: {QUEUE} requests already queued"));
    link::publish(client, &topic, reply.to_json(), None, message.correlation, None);
}
