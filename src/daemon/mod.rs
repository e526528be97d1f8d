//! Wiring: builds sources, rings, the pipeline thread and the output task from a [`Config`], runs
//! them, and shuts them down in order.
//!
//! Shutdown (mini-redis style, each step owned by one task): a signal, `--duration` or the end of
//! every recording → sources stop and drop their ring producers → the pipeline drains the rings,
//! emits the last complete windows and returns → the record channel closes → the output task
//! flushes stdout, publishes the retained `offline` status, waits for PUBACKs and disconnects →
//! the summary is printed and the process exits 0.

pub mod pipeline;

use crate::bridge::output::{self, OutputFormat, OutputOptions};
use crate::bridge::payload::{ChannelStatus, SensorStatus, Status, STATUS_SCHEMA};
use crate::bridge::{mqtt, Topics};
use crate::config::{Config, SourceConfig};
use crate::fusion::raw::RawSpec;
use crate::fusion::Fusion;
use crate::ingest::replay::{self, PlayReport, Recording, Speed};
use crate::metrics::{Metrics, SharedMetrics, Summary};
use crate::ring::{self, Waker};
use crate::signal::Modality;
use crate::window::SubjectWindower;
use anyhow::{bail, Context};
use pipeline::{Binding, Pipeline, SubjectPipeline};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// What the command line adds to a config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides every replay source's `speed`.
    pub speed: Option<Speed>,
    pub output: OutputFormat,
    /// Stop after this much host time.
    pub duration: Option<Duration>,
    /// Stop after features (no model, no MQTT): `biofeedd features`.
    pub features_only: bool,
    /// With `features_only`: also prepare each window's raw tensor as this spec says and append
    /// it to this file (what the raw-window stage is trained on).
    pub raw_dump: Option<(RawSpec, PathBuf)>,
}

/// Load every model the config names and check it against each subject's channels.
pub fn load_fusion(config: &Config, recordings: &[Recording]) -> anyhow::Result<Fusion> {
    let fusion = Fusion::from_config(&config.fusion, |p| config.resolve(p))?;
    for subject in config.subjects() {
        let modalities: Vec<Modality> = config
            .sensors
            .iter()
            .zip(recordings)
            .filter(|(s, _)| s.subject == subject)
            .flat_map(|(_, r)| r.channels.iter().map(|c| c.spec.modality))
            .collect();
        // The first stage must be able to answer; a later one that cannot (a chest strap has no
        // raw PPG for the wrist CNN) is skipped for this subject and the cascade stops before it.
        for (k, stage) in fusion.stages().enumerate() {
            if let Err(e) = stage.check_inputs(&subject, &modalities) {
                if k == 0 {
                    bail!("{e}\n  help: add a sensor with that modality for `{subject}`, or choose a model whose inputs it has ([fusion] model)");
                }
                tracing::warn!("{e}: stage {k} will not run for `{subject}`; its answers come from the earlier stages");
            }
        }
    }
    if let Some(hint) = &fusion.stage().manifest.window {
        if (hint.length_s - config.window.length_s).abs() > 1e-9 {
            tracing::warn!(
                "model `{}` was trained on {} s windows; this config uses {} s, so its probabilities may be off",
                fusion.stage().manifest.name,
                hint.length_s,
                config.window.length_s
            );
        }
    }
    Ok(fusion)
}

/// Read every replay source's recording, in sensor order.
pub fn load_recordings(config: &Config) -> anyhow::Result<Vec<Recording>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    config
        .sensors
        .iter()
        .map(|sensor| match &sensor.source {
            SourceConfig::Replay(r) => {
                let rec = replay::load(r, &config.resolve(&r.path), now)
                    .with_context(|| format!("sensor `{}`: cannot load its recording", sensor.id))?;
                for note in &rec.notes {
                    tracing::warn!("sensor `{}`: {note}", sensor.id);
                }
                Ok(rec)
            }
        })
        .collect()
}

/// Run the configured pipeline to its end (or a signal, or `duration`) and return the summary.
pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<Summary> {
    let recordings = load_recordings(&config)?;
    let fusion = if options.features_only { None } else { Some(load_fusion(&config, &recordings)?) };
    let metrics: SharedMetrics = Metrics::shared();
    let waker = Waker::default();

    // Rings and windowers: one ring per channel, one windower per subject over all its channels.
    let subjects = config.subjects();
    let mut windower_specs = vec![Vec::new(); subjects.len()];
    let mut bindings = Vec::new();
    let mut producers_per_sensor = Vec::new();
    let mut ring_stats = Vec::new();
    for (sensor, rec) in config.sensors.iter().zip(&recordings) {
        let subject = subjects.iter().position(|s| *s == sensor.subject).expect("subject listed");
        let SourceConfig::Replay(r) = &sensor.source;
        let mut producers = Vec::new();
        for ch in &rec.channels {
            let chunk = (ch.spec.rate_hz * r.chunk_ms / 1000.0).ceil() as usize + 1;
            // 30 s of samples absorbs a pipeline hiccup; never less than a few chunks.
            let capacity = ((ch.spec.rate_hz * 30.0) as usize).max(chunk * 8).max(1024);
            let (p, c) = ring::channel(capacity, 4096, waker.clone());
            ring_stats.push(p.stats().clone());
            bindings.push(Binding::new(c, subject, windower_specs[subject].len()));
            windower_specs[subject].push(ch.spec.clone());
            producers.push(p);
        }
        producers_per_sensor.push(producers);
    }
    let windowers: Vec<SubjectPipeline> = subjects
        .iter()
        .zip(windower_specs)
        .map(|(s, specs)| {
            SubjectPipeline::new(
                SubjectWindower::new(s.clone(), specs, config.window.clone()),
                config.window.hop_s,
                config.features.baseline_s,
            )
        })
        .collect();

    // Output side first, so the first window has somewhere to go.
    let topics = Topics::new(&config.hub.id);
    let status = Status {
        schema: STATUS_SCHEMA,
        state: "online",
        hub: config.hub.id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        started_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        sensors: config
            .sensors
            .iter()
            .zip(&recordings)
            .map(|(s, r)| SensorStatus {
                id: s.id.clone(),
                subject: s.subject.clone(),
                kind: "replay",
                channels: r.channels.iter().map(|c| ChannelStatus::from(&c.spec)).collect(),
            })
            .collect(),
    };
    let link = match (&config.mqtt, options.features_only) {
        (Some(m), false) => {
            let will = Status { state: "offline", ..status.clone() }.to_json();
            mqtt::connect(m, &format!("biofeedd-{}", config.hub.id), &topics.status(), will)
                .await
                .map_err(|e| anyhow::anyhow!("[mqtt] {e}"))?
        }
        _ => None,
    };
    let raw_output = match &options.raw_dump {
        Some((_, path)) => Some((
            path.clone(),
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let (record_tx, record_rx) = mpsc::unbounded_channel();
    let output_task = tokio::spawn(output::run(
        record_rx,
        link,
        topics,
        status,
        OutputOptions { format: options.output, raw_output },
        metrics.clone(),
    ));

    let raw = options.raw_dump.as_ref().map(|(spec, _)| spec.clone());
    let pipeline = Pipeline { hub: config.hub.id.clone(), bindings, subjects: windowers, fusion, raw };
    let pipeline_metrics = metrics.clone();
    let pipeline_waker = waker.clone();
    let pipeline_thread = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || pipeline.run(pipeline_waker, record_tx, pipeline_metrics))
        .context("cannot start the pipeline thread")?;

    // Sources last: data starts flowing once everything downstream is ready.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let skipped_rows: u64 = recordings.iter().map(|r| r.skipped_rows).sum();
    let mut sources = tokio::task::JoinSet::new();
    for ((sensor, rec), producers) in config.sensors.iter().zip(recordings).zip(producers_per_sensor) {
        let SourceConfig::Replay(r) = &sensor.source;
        let speed = options.speed.unwrap_or(r.speed);
        let chunk_ms = r.chunk_ms;
        let rx = shutdown_rx.clone();
        tracing::info!(
            "sensor `{}` ({}): replaying {} channels, {} samples at {speed}",
            sensor.id,
            sensor.subject,
            rec.channels.len(),
            rec.total_samples()
        );
        sources.spawn(async move { replay::play(&rec, producers, speed, chunk_ms, rx).await });
    }

    // Overruns are counted by the rings themselves, so the sources' own reports are not needed.
    if let Some(reason) = wait_for_stop(&mut sources, options.duration).await {
        tracing::info!("{reason}: stopping sources");
        let _ = shutdown_tx.send(true);
        while sources.join_next().await.is_some() {}
    }
    let windower_stats = tokio::task::spawn_blocking(move || pipeline_thread.join())
        .await
        .context("pipeline thread join")?
        .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
    output_task.await.context("output task")??;

    let mut m = metrics.lock().expect("metrics lock");
    m.counters.overrun_samples = ring_stats.iter().map(|s| s.overrun_samples.load(Ordering::Relaxed)).sum();
    m.counters.replay_skipped_rows = skipped_rows;
    for s in windower_stats {
        m.counters.out_of_order_samples += s.out_of_order_samples;
        m.counters.late_samples += s.late_samples;
        m.counters.partial_windows_dropped += s.partial_windows_dropped;
    }
    Ok(m.summary())
}

/// Wait until every source ends (returns `None`) or a signal or the duration says stop.
async fn wait_for_stop(
    sources: &mut tokio::task::JoinSet<PlayReport>,
    duration: Option<Duration>,
) -> Option<&'static str> {
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async move {
        match &mut sigterm {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(term);
    loop {
        tokio::select! {
            done = sources.join_next() => match done {
                None => return None,
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::error!("a source task failed: {e}"),
            },
            _ = &mut deadline => return Some("--duration reached"),
            _ = tokio::signal::ctrl_c() => return Some("SIGINT"),
            _ = &mut term => return Some("SIGTERM"),
        }
    }
}
