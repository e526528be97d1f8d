//! Wiring: builds sources, rings, the pipeline thread and the output task from a [`Config`], runs
//! them, and shuts them down in order.
//!
//! Shutdown (mini-redis style, each step owned by one task): a signal, `--duration` or the end of
//! every recording → sources stop and drop their ring producers → the pipeline drains the rings,
//! emits the last complete windows and returns → the record channel closes → the output task
//! flushes stdout; with a broker connected it gives it a few seconds to take the outbox's
//! backlog, publishes the retained `offline` status and disconnects (without one it waits for
//! nothing: every message is already in the outbox) → the summary is printed and the process
//! exits 0 (1 when a source failed, or a required broker was never reached).

pub mod governor;
mod mqtt;
mod offload;
pub mod output;
pub mod pipeline;
mod stop;

use crate::biofeedback::{BeatSource, BeatTracker};
use crate::bridge::payload::{new_run_id, ChannelStatus, SensorStatus, Status, STATUS_SCHEMA};
use crate::config::Config;
use crate::control::{self, ControlHandle};
use crate::fusion::raw::RawSpec;
use crate::fusion::Fusion;
use crate::governor::{Level, TiersConfig};
use crate::ingest::{Health, HealthSnapshot, SourceContext, SourceReport};
use crate::metrics::{DeliverySummary, Metrics, SharedMetrics, Summary};
use crate::ring::{self, RingStats, Waker};
use crate::service::{Liveness, Phase};
use crate::signal::{ChannelSpec, Modality};
use crate::sink::queue::{self, Overflow};
use crate::sink::stdout::Stdout;
use crate::sink::tensor::TensorFile;
use crate::sink::OutputFormat;
use crate::window::{SubjectWindower, WindowerStats};
use anyhow::{bail, Context};
use governor::Governor;
use output::{BeatOutput, Sinks};
use pipeline::{Binding, Governed, Pipeline, SubjectPipeline};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stop::StopSignals;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the command line adds to a config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub output: OutputFormat,
    /// Stop after this much host time.
    pub duration: Option<Duration>,
    /// Stop after features (no model, no MQTT): `biofeedd features`.
    pub features_only: bool,
    /// With `features_only`: also prepare each window's raw tensor as this spec says and append
    /// it to this file (what the raw-window stage is trained on).
    pub raw_dump: Option<(RawSpec, PathBuf)>,
    /// `--pressure`: pin the governor at this level.
    pub pressure: Option<Level>,
}

/// Every sensor's channels, in config order, as its source announces them before it runs.
pub fn sensor_channels(config: &Config) -> anyhow::Result<Vec<Vec<ChannelSpec>>> {
    config
        .sensors
        .iter()
        .map(|sensor| {
            sensor
                .source
                .channels(&config.base_dir)
                .with_context(|| format!("sensor `{}`: cannot describe its channels", sensor.id))
        })
        .collect()
}

/// Load every model the config names and check it against each subject's channels
/// (`channels[i]` belongs to sensor i).
pub fn load_fusion(config: &Config, channels: &[Vec<ChannelSpec>]) -> anyhow::Result<Fusion> {
    let mut fusion = Fusion::from_config(&config.fusion, |p| config.resolve(p))?;
    for subject in config.subjects() {
        let mut modalities: Vec<Modality> = Vec::new();
        let specs = config.sensors.iter().zip(channels).filter(|(s, _)| s.subject == subject).flat_map(|(_, c)| c);
        for m in specs.map(|c| c.modality) {
            if !modalities.contains(&m) {
                modalities.push(m);
            }
        }
        // The first stage must be able to answer; a later one that cannot (a chest strap has no
        // raw PPG for the wrist CNN) is skipped for this subject and the cascade stops before it.
        let mut unfed = None;
        for (k, stage) in fusion.stages().enumerate() {
            if let Err(e) = stage.check_inputs(&subject, &modalities) {
                if k == 0 {
                    if config.fusion.required {
                        bail!("{e}\n  help: add a sensor with that modality for `{subject}`, choose a model whose inputs it has ([fusion] model), or drop `[fusion] required`");
                    }
                    // A chest strap alone still gives heart rate, HRV and quality: publish them.
                    tracing::warn!(
                        "{e}: `{subject}` gets features and quality every window and `unknown` as its prediction (`[fusion] required = true` makes this an error; for heart sensors alone, `[fusion] model = \"models/stress-hr.toml\"` reads stress from heart rate, a weak model: see README, \"The models\")"
                    );
                    unfed = Some(format!("no configured model can be fed: {e}"));
                    break;
                }
                tracing::warn!("{e}: stage {k} will not run for `{subject}`; its answers come from the earlier stages");
            }
        }
        if let Some(reason) = unfed {
            fusion.set_unfed(&subject, reason);
        }
    }
    for stage in fusion.stages() {
        let m = &stage.manifest;
        if let Some(hint) = &m.window {
            if (hint.length_s - config.window.length_s).abs() > 1e-9 {
                tracing::warn!(
                    "model `{}` was trained on {} s windows; this config uses {} s, so its probabilities may be off",
                    m.name,
                    hint.length_s,
                    config.window.length_s
                );
            }
        }
    }
    // Baseline-relative inputs need a baseline phase; without one the first stage never answers.
    let first = &fusion.slots()[0].active().manifest;
    let required = |f: &String| match (&first.inputs.fill, &first.inputs.required) {
        (Some(_), Some(listed)) => listed.contains(f),
        _ => true,
    };
    let needs_baseline = first.inputs.features.iter().any(|f| f.starts_with("z_") && required(f));
    if needs_baseline && config.features.baseline_s == 0.0 {
        bail!(
            "model `{}` needs baseline-relative (z_) features, but [features] baseline_s = 0 turns them off, so every window would be `unknown`\n  help: set baseline_s to the resting phase at the start of each session (300 s as trained), or choose a model without z_ inputs",
            first.name
        );
    }
    Ok(fusion)
}

/// A running daemon: its control handle, its sources' health, and the tasks to wait for.
pub struct Daemon {
    control: ControlHandle,
    health: Vec<(String, Health)>,
    sources: JoinSet<SourceReport>,
    /// Which sensor each source task reads, to name it if the task fails.
    source_names: HashMap<tokio::task::Id, String>,
    shutdown: watch::Sender<bool>,
    stop: StopSignals,
    stop_request: watch::Sender<bool>,
    pipeline: std::thread::JoinHandle<Vec<WindowerStats>>,
    output: JoinHandle<anyhow::Result<Option<DeliverySummary>>>,
    governor: Option<JoinHandle<()>>,
    /// The governor's thresholds, for a reload.
    retune: Arc<watch::Sender<crate::governor::GovernorConfig>>,
    rings: Vec<Arc<RingStats>>,
    metrics: SharedMetrics,
    liveness: Liveness,
}

/// Run the configured pipeline to its end (or a signal, or `duration`) and return the summary.
pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<Summary> {
    start(config, options).await?.wait().await
}

/// Give each subject a beat stream on the channel its heart is read from: ECG if worn, else a
/// strap's intervals, else PPG (as the window features choose); the first such channel wins a tie.
fn follow_beats(bindings: &mut [Binding], specs: &[Vec<ChannelSpec>]) {
    for (subject, channels) in specs.iter().enumerate() {
        let best = bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| b.subject == subject)
            .filter_map(|(k, b)| BeatSource::of(channels[b.channel].modality).map(|source| (source.preference(), k)))
            .min();
        if let Some((_, k)) = best {
            let spec = &channels[bindings[k].channel];
            bindings[k].beats = BeatTracker::new(spec.modality, spec.rate_hz);
        }
    }
}

/// Wire sources → rings → pipeline → sinks from `config` and start them.
pub async fn start(config: Config, options: RunOptions) -> anyhow::Result<Daemon> {
    let (stop_request, requested) = watch::channel(false);
    let stop = StopSignals::install(options.duration, requested);
    let channels = sensor_channels(&config)?;
    let fusion = if options.features_only { None } else { Some(load_fusion(&config, &channels)?) };
    let metrics: SharedMetrics = Metrics::shared();
    let waker = Waker::default();

    // Rings and windowers: one ring per channel, one windower per subject over all its channels.
    let subjects = config.subjects();
    let mut windower_specs = vec![Vec::new(); subjects.len()];
    let mut bindings = Vec::new();
    let mut rings = Vec::new();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut built = Vec::new();
    let mut health = Vec::new();
    for (sensor, specs) in config.sensors.iter().zip(&channels) {
        let subject = subjects.iter().position(|s| *s == sensor.subject).expect("subject listed");
        let mut producers = Vec::new();
        for spec in specs {
            let chunk = (spec.rate_hz * sensor.source.max_chunk_s()).ceil() as usize + 1;
            // 30 s of samples absorbs a pipeline hiccup; never less than a few chunks.
            let capacity = ((spec.rate_hz * 30.0) as usize).max(chunk * 8).max(1024);
            let (p, c) = ring::channel(capacity, 4096, waker.clone());
            bindings.push(Binding::new(c, subject, windower_specs[subject].len()));
            windower_specs[subject].push(spec.clone());
            producers.push(p);
        }
        let sensor_rings: Vec<Arc<RingStats>> = producers.iter().map(|p| p.stats().clone()).collect();
        rings.extend(sensor_rings.iter().cloned());
        let context = SourceContext {
            sensor: sensor.id.clone(),
            base_dir: config.base_dir.clone(),
            producers,
            health: Health::new(sensor_rings),
            shutdown: shutdown_rx.clone(),
        };
        let source =
            sensor.source.build(context).with_context(|| format!("sensor `{}`: cannot start its source", sensor.id))?;
        health.push((sensor.id.clone(), source.health.clone()));
        built.push(source);
    }
    // Kept to choose each subject's beat channel once the broker's fate is known.
    let specs_by_subject = windower_specs.clone();
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
    let run = new_run_id();
    let status = Status {
        schema: STATUS_SCHEMA,
        state: "online",
        hub: config.hub.id.clone(),
        run: run.clone(),
        version: env!("CARGO_PKG_VERSION"),
        started_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        // The governor's first level (see `governor::start`): the retained status has it from
        // the first CONNACK, and is republished only when it changes.
        pressure: fusion.is_some().then(|| options.pressure.unwrap_or(Level::Normal).as_str()),
        sensors: config
            .sensors
            .iter()
            .zip(&channels)
            .map(|(s, specs)| SensorStatus {
                id: s.id.clone(),
                subject: s.subject.clone(),
                kind: s.source.kind(),
                channels: specs.iter().map(ChannelStatus::from).collect(),
            })
            .collect(),
    };
    let mqtt = match (&config.mqtt, options.features_only) {
        (Some(m), false) => mqtt::start(m, &config, &run, &status, &health).await?,
        _ => None,
    };
    // After connecting: an optional broker that was not there takes no beats.
    let beats_wanted = !options.features_only && ((config.beats.mqtt && mqtt.is_some()) || config.beats.stdout);
    if beats_wanted {
        follow_beats(&mut bindings, &specs_by_subject);
    }
    let offload = match (&config.offload, &mqtt, &fusion) {
        (Some(o), Some(_), Some(fusion)) => Some(offload::start(o, &config, &run, fusion)?),
        _ => None,
    };
    let tensors = options.raw_dump.as_ref().map(|(_, path)| TensorFile::create(path.clone())).transpose()?;
    // Files played flat out wait for room all the way back; anything live must never wait.
    let policy = if built.iter().all(|s| s.waits_for_room) { Overflow::Wait } else { Overflow::Drop };
    let (record_tx, record_rx) = queue::channel(queue::CAPACITY, policy);
    let stdout = Stdout::new(options.output, policy == Overflow::Wait).context("cannot start the stdout writer")?;
    let tiers = config.tiers.clone().unwrap_or_else(TiersConfig::standard);
    let governed = Governed {
        plan: None,
        start_variants: fusion.as_ref().map(Fusion::variants).unwrap_or_default(),
        offload_stage: offload.as_ref().map(|(_, stage)| *stage),
        tiers: subjects.iter().map(|s| tiers.tier(s)).map(|t| (t, tiers.deadline(t))).collect(),
        tiered: config.tiers.is_some(),
    };
    let queue_gauge = record_tx.depth_gauge();
    let beats = BeatOutput {
        hub: config.hub.id.clone(),
        run: run.clone(),
        mqtt: config.beats.mqtt,
        stdout: config.beats.stdout,
    };
    let sinks = Sinks { stdout, tensors, mqtt, offload: offload.map(|(o, _)| o), beats };
    let output = tokio::spawn(output::run(record_rx, sinks, metrics.clone()));

    let raw = options.raw_dump.as_ref().map(|(spec, _)| spec.clone());
    let has_fusion = fusion.is_some();
    let liveness = Liveness::default();
    let pipeline = Pipeline {
        hub: config.hub.id.clone(),
        run,
        bindings,
        subjects: windowers,
        fusion,
        raw,
        governed,
        liveness: liveness.clone(),
    };
    let (control, control_rx) = control::channel(waker.clone());
    if has_fusion {
        governor::start(&config.policy, options.pressure, &control, &metrics);
    }
    let pipeline_metrics = metrics.clone();
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || pipeline.run(waker, control_rx, record_tx, pipeline_metrics))
        .context("cannot start the pipeline thread")?;

    let (retune, retune_rx) = watch::channel(config.governor.clone());
    let retune = Arc::new(retune);
    let governor = has_fusion.then(|| {
        let governor = Governor {
            config: config.governor.clone(),
            policy: config.policy.clone(),
            pinned: options.pressure,
            control: control.clone(),
            metrics: metrics.clone(),
            queue: queue_gauge,
            retune: retune_rx,
        };
        tokio::spawn(governor.run(shutdown_rx.clone()))
    });

    // Sources last: data starts flowing once everything downstream is ready.
    let mut sources = JoinSet::new();
    let mut source_names = HashMap::new();
    for (source, sensor) in built.into_iter().zip(&config.sensors) {
        source_names.insert(sources.spawn(source.task).id(), sensor.id.clone());
    }
    // Sources, pipeline and output all run (the broker may still be connecting: the outbox
    // holds what comes before it is).
    liveness.set(Phase::Ready);
    Ok(Daemon {
        control,
        health,
        sources,
        source_names,
        shutdown,
        stop,
        stop_request,
        pipeline,
        output,
        governor,
        retune,
        rings,
        metrics,
        liveness,
    })
}

impl Daemon {
    /// The handle to switch variants or ask the pipeline for a snapshot while it runs.
    pub fn control(&self) -> ControlHandle {
        self.control.clone()
    }

    /// Each sensor's health now, by sensor id.
    pub fn health(&self) -> Vec<(String, HealthSnapshot)> {
        self.health.iter().map(|(id, h)| (id.clone(), h.snapshot())).collect()
    }

    /// Whether the daemon is up and its pipeline thread still moving: what feeds the service
    /// manager's watchdog (`service::supervise`).
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    /// What gives the governor new thresholds (a reload): `[governor]`'s `constrained`,
    /// `critical`, `release_margin_percent`, `rise_samples` and `dwell_s` apply from its next
    /// sample. `None` without models: then there is no governor.
    #[allow(clippy::type_complexity)]
    pub fn retuner(&self) -> Option<Box<dyn Fn(crate::governor::GovernorConfig) + Send>> {
        self.governor.as_ref()?;
        let retune = self.retune.clone();
        Some(Box::new(move |config| {
            retune.send_replace(config);
        }))
    }

    /// Stop the sources now, as a signal would; [`Daemon::wait`] then drains and returns.
    pub fn stop(&self) {
        let _ = self.stop_request.send(true);
    }

    /// Wait for the end (every source ended, a signal, the duration, or [`Daemon::stop`]), shut
    /// down in order and return the run's summary.
    pub async fn wait(mut self) -> anyhow::Result<Summary> {
        let mut reports = Vec::new();
        if let Some(reason) = wait_for_stop(&mut self.sources, &self.source_names, &mut reports, &mut self.stop).await {
            tracing::info!("{reason}: stopping sources");
            self.liveness.set(Phase::Stopping);
            let _ = self.shutdown.send(true);
            while let Some(done) = self.sources.join_next_with_id().await {
                source_ended(&self.source_names, done, &mut reports);
            }
        }
        // Every source ended by itself (the recordings are played): stopping all the same.
        self.liveness.set(Phase::Stopping);
        let pipeline = self.pipeline;
        let windower_stats = tokio::task::spawn_blocking(move || pipeline.join())
            .await
            .context("pipeline thread join")?
            .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
        if let Some(governor) = &self.governor {
            // Nothing left to govern.
            governor.abort();
        }
        let delivery = self.output.await.context("output task")??;

        let mut m = self.metrics.lock().expect("metrics lock");
        if m.counters.windows == 0 {
            tracing::warn!(
                "no window closed: the streams ended (or were stopped) before one [window] length of data from every subject"
            );
        }
        m.counters.overrun_samples = self.rings.iter().map(|s| s.overrun_samples.load(Ordering::Relaxed)).sum();
        m.counters.replay_skipped_rows = reports.iter().map(|(_, r)| r.skipped_records).sum();
        for s in windower_stats {
            m.counters.out_of_order_samples += s.out_of_order_samples;
            m.counters.late_samples += s.late_samples;
            m.counters.partial_windows_dropped += s.partial_windows_dropped;
            m.counters.empty_windows_skipped += s.empty_windows_skipped;
        }
        let mut summary = m.summary();
        summary.delivery = delivery;
        summary.failed_sources = reports
            .iter()
            .filter_map(|(sensor, r)| r.failure.as_ref().map(|why| format!("sensor `{sensor}`: {why}")))
            .collect();
        Ok(summary)
    }
}

/// Wait until every source ends (returns `None`) or a stop signal says stop. The reports of
/// sources that ended go to `reports`.
async fn wait_for_stop(
    sources: &mut JoinSet<SourceReport>,
    names: &HashMap<tokio::task::Id, String>,
    reports: &mut Vec<(String, SourceReport)>,
    stop: &mut StopSignals,
) -> Option<&'static str> {
    loop {
        tokio::select! {
            done = sources.join_next_with_id() => match done {
                None => return None,
                Some(done) => source_ended(names, done, reports),
            },
            reason = stop.next() => return Some(reason),
        }
    }
}

/// A source task ended: keep its report under its sensor's name and say what it has to say.
fn source_ended(
    names: &HashMap<tokio::task::Id, String>,
    done: Result<(tokio::task::Id, SourceReport), tokio::task::JoinError>,
    reports: &mut Vec<(String, SourceReport)>,
) {
    let id = match &done {
        Ok((id, _)) => *id,
        Err(e) => e.id(),
    };
    let sensor = names.get(&id).map_or("?", String::as_str).to_string();
    match done {
        Ok((_, report)) => {
            for note in &report.notes {
                tracing::warn!("sensor `{sensor}`: {note}");
            }
            if let Some(why) = &report.failure {
                tracing::error!("sensor `{sensor}`: its source gave up: {why}");
            }
            reports.push((sensor, report));
        }
        Err(e) => {
            tracing::error!("sensor `{sensor}`: its source task failed: {e}");
            let failure = Some(format!("its source task failed: {e}"));
            reports.push((sensor, SourceReport { failure, ..SourceReport::default() }));
        }
    }
}
