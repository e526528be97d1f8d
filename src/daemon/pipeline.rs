//! The pipeline thread: drain rings → windows → features → fusion → records for the output.
//!
//! It runs on its own OS thread (tract is compute-bound and must not stall tokio's workers) and
//! sleeps in `park_timeout` until a producer or a control message wakes it. Each loop first
//! applies the control messages waiting for it, then drains the rings. It ends when every
//! channel's producer is gone and the last windows are out, or when the output side has gone away.
//!
//! Architecture invariant: the pipeline thread never awaits; it hands records over through a
//! bounded queue whose overflow policy never makes a live stream wait (see `sink::queue`).

use crate::biofeedback::{BeatEvent, BeatTracker};
use crate::bridge::offload::request_for;
use crate::bridge::Feedback;
use crate::control::{Control, PipelineSnapshot};
use crate::features::{FeatureExtractor, FeatureVector, FEATURE_NAMES};
use crate::fusion::raw::{self, RawScratch, RawSpec};
use crate::fusion::{Answer, Fusion, RunPlan, Source, Variant};
use crate::governor::{Plan, Shed, Tier};
use crate::metrics::{SharedMetrics, Stage};
use crate::ring::{ChannelConsumer, Waker};
use crate::service::Liveness;
use crate::sink::queue::RecordSender;
use crate::sink::{FeatureRow, OffloadJob, Record};
use crate::window::{SubjectWindower, Window, WindowerStats};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest the thread sleeps with nothing to do.
const IDLE_PARK: Duration = Duration::from_millis(250);

/// One channel's consumer and where its samples go.
pub struct Binding {
    pub consumer: ChannelConsumer,
    pub subject: usize,
    pub channel: usize,
    /// The subject's per-beat stream, on the one cardiac channel it follows.
    pub beats: Option<BeatTracker>,
    finished: bool,
}

impl Binding {
    pub fn new(consumer: ChannelConsumer, subject: usize, channel: usize) -> Self {
        Binding { consumer, subject, channel, beats: None, finished: false }
    }
}

pub struct SubjectPipeline {
    pub windower: SubjectWindower,
    extractor: FeatureExtractor,
}

impl SubjectPipeline {
    pub fn new(windower: SubjectWindower, hop_s: f64, baseline_s: f64) -> Self {
        SubjectPipeline { windower, extractor: FeatureExtractor::with_hop(hop_s).with_baseline(baseline_s) }
    }
}

pub struct Pipeline {
    pub hub: String,
    /// This run's id, carried by every feedback message.
    pub run: String,
    pub bindings: Vec<Binding>,
    pub subjects: Vec<SubjectPipeline>,
    /// `None` in features-only mode (`biofeedd features`).
    pub fusion: Option<Fusion>,
    /// Features-only mode: the raw-window tensor to prepare for each row, for training.
    pub raw: Option<RawSpec>,
    /// How the governor's plan, the tiers and offload shape each subject's cascade.
    pub governed: Governed,
    /// Beaten on every pass of the loop and every window: the watchdog's proof of progress.
    pub liveness: Liveness,
}

/// What the governor decides, as the pipeline applies it to each window.
#[derive(Debug, Clone, Default)]
pub struct Governed {
    /// The last plan received (`None`: the full cascade here, as configured).
    pub plan: Option<Plan>,
    /// The variants the run started with: a plan without a variant restores them.
    pub start_variants: Vec<Variant>,
    /// The stage `[offload]` sends to workers (`None`: no `[offload]`).
    pub offload_stage: Option<usize>,
    /// Each subject's tier and its deadline, by subject index.
    pub tiers: Vec<(Tier, Duration)>,
    /// `[tiers]` is configured: the tier deadline bounds the local cascade too.
    pub tiered: bool,
}

impl Governed {
    /// The cascade plan for one window of subject `subject` whose last sample arrived at `arrival`.
    fn run_plan(&self, subject: usize, arrival: Instant) -> RunPlan {
        let (tier, deadline) = self.tier(subject);
        let Some(plan) = &self.plan else {
            return RunPlan { deadline: self.tiered.then_some(arrival + deadline), ..RunPlan::default() };
        };
        let shed = tier == Tier::Basic && plan.sheds(Shed::BasicOffload);
        RunPlan {
            local_stages: plan.local_stages,
            offload_stage: if plan.offload && !shed { self.offload_stage } else { None },
            deadline: self.tiered.then_some(arrival + deadline),
        }
    }

    /// A subject's tier and deadline (every subject has one; standard's defaults are a guard).
    fn tier(&self, subject: usize) -> (Tier, Duration) {
        self.tiers.get(subject).copied().unwrap_or((Tier::Standard, Duration::from_millis(25)))
    }
}

/// The record for a window fusion has answered, or the offload job for one it has not yet.
#[allow(clippy::too_many_arguments)]
fn fused(
    hub: &str,
    run: &str,
    fusion: &Fusion,
    window: &Window,
    features: &FeatureVector,
    answer: Answer,
    governed: &Governed,
    subject: usize,
    featured: Instant,
    metrics: &SharedMetrics,
) -> Record {
    let fused = Instant::now();
    let arrival = window.last_arrival;
    let (mut prediction, offloaded) = match answer {
        Answer::Here(p) => (p, None),
        Answer::Offload { local, stage } => (local, Some(stage)),
    };
    let unknown = prediction.probabilities.is_empty();
    // The feedback does not carry per-stage latencies; the metrics do.
    let stage_latency = std::mem::take(&mut prediction.stage_latency);
    let (exit_stage, fallback) = (prediction.exit_stage as usize, prediction.source == Source::Fallback);
    let cached = prediction.source == Source::Cache;
    let cache_on = fusion.cache_stats().is_some();
    let feedback = Feedback::new(
        hub,
        run,
        &window.subject,
        window.seq,
        window.start,
        window.end,
        features,
        prediction,
        (fused - arrival).as_secs_f64() * 1000.0,
    );
    let mut m = metrics.lock().expect("metrics lock");
    m.record(Stage::Fusion, fused - featured);
    m.counters.predictions += 1;
    m.counters.cache_lookups += cache_on as u64;
    m.counters.cache_hits += cached as u64;
    let Some(stage) = offloaded else {
        m.counters.unknown += unknown as u64;
        if !unknown && !cached {
            m.record_cascade(exit_stage, fallback, &stage_latency);
        }
        return Record::Feedback { feedback: Box::new(feedback), arrival, handed: fused };
    };
    drop(m);
    let (tier, budget) = governed.tier(subject);
    let deadline = arrival + budget;
    let offloaded = fusion.slots()[stage].active();
    Record::Offload(Box::new(OffloadJob {
        request: request_for(offloaded, hub, window, deadline.saturating_duration_since(fused)),
        feedback,
        classes: offloaded.manifest.outputs.classes.clone(),
        deadline,
        arrival,
        handed: fused,
        share: tier.offload_share(),
    }))
}

/// Hand the beats found to the output; false when the output task is gone.
fn send_beats(beats: &mut Vec<BeatEvent>, subject: &str, records: &mut RecordSender) -> bool {
    beats.drain(..).all(|beat| records.send(Record::Beat { subject: subject.to_string(), beat }).is_ok())
}

impl Pipeline {
    /// Run until the streams end. Returns each subject's window statistics.
    pub fn run(
        mut self,
        waker: Waker,
        control: mpsc::Receiver<Control>,
        mut records: RecordSender,
        metrics: SharedMetrics,
    ) -> Vec<WindowerStats> {
        waker.register_current_thread();
        let mut chunk = Vec::new();
        let mut beats = Vec::new();
        let mut scratch = RawScratch::default();
        let mut windows = 0u64;
        let liveness = self.liveness.clone();
        let stats = |subjects: &[SubjectPipeline], records: &RecordSender| {
            // Ending is not stalling: the watchdog keeps pinging through the drain.
            liveness.finish();
            metrics.lock().expect("metrics lock").counters.records_dropped = records.dropped();
            subjects.iter().map(|s| s.windower.stats()).collect()
        };
        loop {
            self.liveness.beat();
            while let Ok(message) = control.try_recv() {
                self.apply(message, windows);
            }
            let mut progressed = false;
            for b in &mut self.bindings {
                while let Some(mark) = b.consumer.pop_chunk(&mut chunk) {
                    self.subjects[b.subject].windower.push(b.channel, &mark, &chunk);
                    if let Some(tracker) = &mut b.beats {
                        // Beats go out as soon as a chunk confirms them, before any window work.
                        tracker.push(&mark, &chunk, &mut beats);
                        if !send_beats(&mut beats, self.subjects[b.subject].windower.subject(), &mut records) {
                            return stats(&self.subjects, &records);
                        }
                    }
                    progressed = true;
                }
                if !b.finished && b.consumer.is_finished() {
                    b.finished = true;
                    self.subjects[b.subject].windower.finish_channel(b.channel);
                    if let Some(tracker) = &mut b.beats {
                        tracker.finish(Instant::now(), &mut beats);
                        if !send_beats(&mut beats, self.subjects[b.subject].windower.subject(), &mut records) {
                            return stats(&self.subjects, &records);
                        }
                    }
                    progressed = true;
                }
            }
            // After draining every ring: a ring refilled meanwhile marks its channel as behind,
            // so the windower does not mistake drain order for a stalled sensor.
            for b in &self.bindings {
                self.subjects[b.subject].windower.set_pending(b.channel, b.consumer.has_pending());
            }
            for (subject, s) in self.subjects.iter_mut().enumerate() {
                while let Some(window) = s.windower.next_window() {
                    let closed = Instant::now();
                    let arrival = window.last_arrival;
                    let features = s.extractor.extract(window);
                    let featured = Instant::now();
                    let record = match &mut self.fusion {
                        None => Record::Features(FeatureRow {
                            subject: window.subject.clone(),
                            seq: window.seq,
                            window_start: window.start,
                            window_end: window.end,
                            features: FEATURE_NAMES
                                .iter()
                                .zip(features.values)
                                .map(|(n, v)| (*n, v.is_finite().then_some(v)))
                                .collect(),
                            raw: self.raw.as_ref().map(|spec| {
                                let mut out = vec![0.0; spec.len()];
                                if raw::prepare(spec, window, &mut scratch, &mut out).is_err() {
                                    // Rows stay aligned with the CSV; training skips NaN rows.
                                    out.fill(f32::NAN);
                                }
                                out
                            }),
                        }),
                        Some(fusion) => {
                            let plan = self.governed.run_plan(subject, arrival);
                            let answer = fusion.predict_planned(window, features, &plan);
                            fused(
                                &self.hub,
                                &self.run,
                                fusion,
                                window,
                                features,
                                answer,
                                &self.governed,
                                subject,
                                featured,
                                &metrics,
                            )
                        }
                    };
                    {
                        let mut m = metrics.lock().expect("metrics lock");
                        m.record(Stage::Window, closed.saturating_duration_since(arrival));
                        m.record(Stage::Features, featured - closed);
                        m.counters.windows += 1;
                    }
                    windows += 1;
                    // A backlog of windows is progress too, however long this pass takes.
                    self.liveness.beat();
                    if records.send(record).is_err() {
                        // The output task is gone (shutdown or a fatal error there): stop computing.
                        return stats(&self.subjects, &records);
                    }
                }
            }
            if self.bindings.iter().all(|b| b.finished) {
                break;
            }
            if !progressed {
                // Producers and control messages unpark us, so the timeout is only the idle beat
                // the watchdog reads (`service::supervise`, every WatchdogSec/2) and a guard
                // against a lost wake-up. An idle pass costs ~65 µs (the windowers' checks):
                // at 50 ms that was 0.13 % of a core with sensors quiet; at 250 ms it is 0.03 %
                // (benches/footprint.sh, docs/footprint.md).
                std::thread::park_timeout(IDLE_PARK);
            }
        }
        stats(&self.subjects, &records)
    }

    fn apply(&mut self, message: Control, windows: u64) {
        match (message, &mut self.fusion) {
            (Control::SetVariant(variant), Some(fusion)) => {
                let n = fusion.set_variant(variant);
                tracing::info!("fusion: {variant} on {n} of {} stages", fusion.slots().len());
            }
            (Control::SetStageVariant { stage, variant }, Some(fusion)) => {
                if !fusion.set_stage_variant(stage, variant) {
                    tracing::warn!("fusion: stage {stage} has no {variant} variant; unchanged");
                }
            }
            (Control::SetPlan(plan), Some(fusion)) => {
                match plan.variant {
                    Some(v) => {
                        fusion.set_variant(v);
                    }
                    None => {
                        for (k, v) in self.governed.start_variants.iter().enumerate() {
                            fusion.set_stage_variant(k, *v);
                        }
                    }
                }
                tracing::debug!("pipeline: {} plan applied; variants {:?}", plan.level, fusion.variants());
                self.governed.plan = Some(plan);
            }
            (Control::SetPlan(plan), None) => self.governed.plan = Some(plan),
            (Control::SetVariant(_) | Control::SetStageVariant { .. }, None) => {
                tracing::warn!("no models run in features-only mode; variant switch ignored");
            }
            (Control::Snapshot(reply), fusion) => {
                let variants = fusion.as_ref().map(|f| f.variants()).unwrap_or_default();
                // The asker may have given up waiting; that is its business.
                let _ = reply.send(PipelineSnapshot { variants, windows, plan: self.governed.plan.clone() });
            }
        }
    }
}
