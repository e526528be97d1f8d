//! Latency histograms per pipeline stage and run counters, for the summary and the `metrics`
//! topic (which reports each stage over its interval: [`Metrics::take_interval`]).
//!
//! Stages follow ARCHITECTURE-GUIDE §3. `window` runs from the host arrival of the bytes carrying
//! a window's last sample to the window closing (ring wait + assembly); `features` and `fusion`
//! are compute; `output` runs from the prediction being handed to the output task to delivery
//! (stdout written, or PUBACK received when a broker is connected); `end_to_end` is arrival →
//! delivery, so it is the sum of the others plus queueing between them.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Window,
    Features,
    Fusion,
    Output,
    EndToEnd,
    /// A beat event: arrival of the chunk that confirmed the beat → PUBACK (or the stdout
    /// hand-over without a broker).
    Beat,
}

impl Stage {
    pub const ALL: [Stage; 6] =
        [Stage::Window, Stage::Features, Stage::Fusion, Stage::Output, Stage::EndToEnd, Stage::Beat];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Window => "window",
            Stage::Features => "features",
            Stage::Fusion => "fusion",
            Stage::Output => "output",
            Stage::EndToEnd => "end_to_end",
            Stage::Beat => "beat",
        }
    }
}

/// Histograms (microseconds, 3 significant digits, up to 1 hour) and counters.
#[derive(Debug)]
pub struct Metrics {
    hists: Vec<Histogram<u64>>,
    /// The same stages since the last `metrics` report ([`Metrics::take_interval`]).
    interval_hists: Vec<Histogram<u64>>,
    /// Per cascade stage: latency of each run of that stage.
    cascade_hists: Vec<Histogram<u64>>,
    pub counters: Counters,
    /// `None` until the governor's first sample (and in `biofeedd features`).
    pub pressure: Option<PressureState>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub windows: u64,
    pub predictions: u64,
    pub unknown: u64,
    pub published: u64,
    pub acked: u64,
    pub overrun_samples: u64,
    pub out_of_order_samples: u64,
    pub late_samples: u64,
    pub partial_windows_dropped: u64,
    pub replay_skipped_rows: u64,
    /// Answers per cascade stage (the stage the window exited at).
    pub exits_per_stage: Vec<u64>,
    /// Answers the deadline cut short (`source = fallback`).
    pub fallbacks: u64,
    /// Windows looked up in the prediction cache, and those answered from it.
    pub cache_lookups: u64,
    pub cache_hits: u64,
    /// Windows skipped because no channel had a sample in them (recording gaps).
    pub empty_windows_skipped: u64,
    /// Records the output queue had no room for (live sources only; see `sink::queue`).
    pub records_dropped: u64,
    /// Lines stdout did not take in time (dropped during a live run, or still unwritten when the
    /// run ended); MQTT delivery goes on regardless.
    pub stdout_lines_dropped: u64,
    /// Windows whose heavy stage was offered to workers, and what became of them.
    pub offload: OffloadStats,
    /// Times the governor's pressure level changed.
    pub pressure_changes: u64,
}

/// What offload did (`bridge::offload`), for the metrics and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OffloadStats {
    /// Requests handed to the link.
    pub sent: u64,
    /// Replies merged within the deadline (`source = "cloud"`).
    pub answered: u64,
    /// Deadlines reached with no reply: the local answer went out (`source = "fallback"`).
    pub timed_out: u64,
    /// Replies that came after their deadline (dropped).
    pub late: u64,
    /// Workers' refusals (unknown model, wrong shape): the local answer went out at once.
    pub refused: u64,
    /// Windows not sent: no connection, rumqttc's queue full, the in-flight bound reached for
    /// their tier, or a request that could not be encoded.
    pub not_sent: u64,
    /// Replies that were not ours or not valid.
    pub invalid: u64,
}

/// The governor's pressure level as the last sample left it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PressureState {
    pub level: crate::governor::Level,
    /// Set with `--pressure`: readings do not move it.
    pub pinned: bool,
    /// The reading that decided the last change.
    pub reason: String,
    /// What the level's policy sheds.
    pub shed: Vec<crate::governor::Shed>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            hists: Stage::ALL.iter().map(|_| latency_histogram()).collect(),
            interval_hists: Stage::ALL.iter().map(|_| latency_histogram()).collect(),
            cascade_hists: Vec::new(),
            counters: Counters::default(),
            pressure: None,
        }
    }
}

pub type SharedMetrics = Arc<Mutex<Metrics>>;

/// One stage's figures in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: &'static str,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Latencies in microseconds, 1 µs to an hour, 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn record_latency(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).clamp(1, 3_600_000_000));
}

impl StageSummary {
    fn of(stage: &'static str, h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            // A quantile of nothing walks every bucket to say 0.
            return StageSummary { stage, count: 0, p50_ms: 0.0, p99_ms: 0.0, max_ms: 0.0 };
        }
        StageSummary {
            stage,
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

impl Metrics {
    pub fn shared() -> SharedMetrics {
        Arc::new(Mutex::new(Metrics::default()))
    }

    pub fn record(&mut self, stage: Stage, d: Duration) {
        let i = Stage::ALL.iter().position(|s| *s == stage).expect("stage listed");
        record_latency(&mut self.hists[i], d);
        record_latency(&mut self.interval_hists[i], d);
    }

    /// Each stage's latency since the last call, and a fresh start for the next interval.
    pub fn take_interval(&mut self) -> Vec<StageSummary> {
        let out = Stage::ALL.iter().zip(&self.interval_hists).map(|(s, h)| StageSummary::of(s.name(), h)).collect();
        // An empty histogram is already fresh: resetting clears its whole count array (the
        // largest cost of an idle daemon's metrics report).
        self.interval_hists.iter_mut().filter(|h| !h.is_empty()).for_each(Histogram::reset);
        out
    }

    /// One fusion answer: which stage it exited at, whether it was a fallback, and how long each
    /// stage that ran took.
    pub fn record_cascade(&mut self, exit_stage: usize, fallback: bool, stage_latency: &[Duration]) {
        let n = stage_latency.len().max(exit_stage + 1);
        if self.counters.exits_per_stage.len() < n {
            self.counters.exits_per_stage.resize(n, 0);
        }
        while self.cascade_hists.len() < n {
            self.cascade_hists.push(latency_histogram());
        }
        self.counters.exits_per_stage[exit_stage] += 1;
        self.counters.fallbacks += fallback as u64;
        for (h, &d) in self.cascade_hists.iter_mut().zip(stage_latency) {
            record_latency(h, d);
        }
    }

    pub fn stage(&self, stage: Stage) -> StageSummary {
        let i = Stage::ALL.iter().position(|s| *s == stage).expect("stage listed");
        StageSummary::of(stage.name(), &self.hists[i])
    }

    pub fn summary(&self) -> Summary {
        let cascade =
            CASCADE_NAMES.iter().zip(&self.cascade_hists).map(|(name, h)| StageSummary::of(name, h)).collect();
        Summary {
            stages: Stage::ALL.iter().map(|s| self.stage(*s)).collect(),
            cascade,
            counters: self.counters.clone(),
            delivery: None,
            failed_sources: Vec::new(),
        }
    }
}

/// What MQTT delivery left behind at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    /// Messages still in the outbox, not acknowledged by the broker.
    pub waiting: usize,
    pub outbox_dir: std::path::PathBuf,
    pub broker_reached: bool,
    /// `[mqtt] optional = false`: a broker never reached fails the run.
    pub broker_required: bool,
    pub recovered: u64,
    pub expired: u64,
    pub dropped_live: u64,
    pub dropped_durable: u64,
    pub refused: u64,
}

/// What a finished run prints.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub stages: Vec<StageSummary>,
    /// Latency of each cascade stage, over the windows that ran it.
    pub cascade: Vec<StageSummary>,
    pub counters: Counters,
    /// What MQTT delivery left behind, when a broker was configured.
    pub delivery: Option<DeliverySummary>,
    /// `sensor `id`: why` for each source that gave up before its stream ended.
    pub failed_sources: Vec<String>,
}

/// Names of cascade stages in the summary (a cascade deeper than this is not reported per stage).
const CASCADE_NAMES: [&str; 8] =
    ["  stage 0", "  stage 1", "  stage 2", "  stage 3", "  stage 4", "  stage 5", "  stage 6", "  stage 7"];

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, s: &StageSummary| {
            writeln!(f, "  {:<12} {:>6} {:>8.3} {:>8.3} {:>8.3}", s.stage, s.count, s.p50_ms, s.p99_ms, s.max_ms)
        };
        let c = &self.counters;
        writeln!(
            f,
            "summary: {} windows, {} predictions ({} unknown), {} published, {} acknowledged",
            c.windows, c.predictions, c.unknown, c.published, c.acked
        )?;
        writeln!(
            f,
            "drops: {} samples overrun, {} out of order, {} late, {} partial windows at end, {} bad rows skipped",
            c.overrun_samples, c.out_of_order_samples, c.late_samples, c.partial_windows_dropped, c.replay_skipped_rows
        )?;
        writeln!(f, "latency (ms)    count      p50      p99      max")?;
        for s in &self.stages {
            if s.count > 0 {
                row(f, s)?;
            }
            // A cascade's stages right under the fusion line that contains them.
            if s.stage == Stage::Fusion.name() && self.cascade.len() > 1 {
                for c in self.cascade.iter().filter(|c| c.count > 0) {
                    row(f, c)?;
                }
            }
        }
        if c.exits_per_stage.len() > 1 {
            let exits: Vec<String> =
                c.exits_per_stage.iter().enumerate().map(|(k, n)| format!("stage {k}: {n}")).collect();
            writeln!(f, "cascade exits: {}; {} deadline fallbacks", exits.join(", "), c.fallbacks)?;
        }
        if c.empty_windows_skipped > 0 {
            writeln!(f, "gaps: {} windows without any sample skipped", c.empty_windows_skipped)?;
        }
        if c.records_dropped > 0 {
            writeln!(f, "output: {} records dropped (the output queue was full)", c.records_dropped)?;
        }
        if c.stdout_lines_dropped > 0 {
            writeln!(f, "stdout: {} lines not written (stdout did not keep up)", c.stdout_lines_dropped)?;
        }
        if c.cache_lookups > 0 {
            let rate = 100.0 * c.cache_hits as f64 / c.cache_lookups as f64;
            writeln!(f, "prediction cache: {} hits of {} lookups ({rate:.1} %)", c.cache_hits, c.cache_lookups)?;
        }
        let o = &c.offload;
        if o.sent + o.not_sent > 0 {
            writeln!(
                f,
                "offload: {} sent, {} answered by workers, {} timed out (local answer), {} late replies dropped, {} refused, {} not sent",
                o.sent, o.answered, o.timed_out, o.late, o.refused, o.not_sent
            )?;
        }
        if let Some(d) = &self.delivery {
            write!(f, "mqtt: {} waiting in the outbox", d.waiting)?;
            if d.waiting > 0 {
                write!(f, " at {} (the next run sends them)", d.outbox_dir.display())?;
            }
            writeln!(
                f,
                "; {} recovered from an earlier run, {} expired, {} live and {} durable dropped for room, {} refused by the broker",
                d.recovered, d.expired, d.dropped_live, d.dropped_durable, d.refused
            )?;
            if !d.broker_reached {
                writeln!(f, "mqtt: the broker was never reached during this run")?;
            }
        }
        for failure in &self.failed_sources {
            writeln!(f, "failed: {failure}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut m = Metrics::default();
        for us in 1..=1000u64 {
            m.record(Stage::Features, Duration::from_micros(us));
        }
        let s = m.stage(Stage::Features);
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 0.5).abs() < 0.01, "{s:?}");
        assert!((s.p99_ms - 0.99).abs() < 0.01, "{s:?}");
        assert!((s.max_ms - 1.0).abs() < 0.01);
        assert_eq!(m.stage(Stage::Fusion).count, 0);
        assert!(m.summary().to_string().contains("features"));
    }

    #[test]
    fn cascade_exits_fallbacks_and_stage_latency_reach_the_summary() {
        let mut m = Metrics::default();
        let ms = Duration::from_millis;
        m.record(Stage::Fusion, ms(1));
        m.record_cascade(0, false, &[ms(1)]);
        m.record_cascade(1, false, &[ms(1), ms(3)]);
        m.record_cascade(0, true, &[ms(2)]);
        let s = m.summary();
        assert_eq!(s.counters.exits_per_stage, vec![2, 1]);
        assert_eq!(s.counters.fallbacks, 1);
        assert_eq!((s.cascade[0].count, s.cascade[1].count), (3, 1));
        let text = s.to_string();
        assert!(text.contains("cascade exits: stage 0: 2, stage 1: 1; 1 deadline fallbacks"), "{text}");
        assert!(text.contains("    stage 1         1"), "{text}");
    }
}
