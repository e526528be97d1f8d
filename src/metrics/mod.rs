//! Latency histograms per pipeline stage and run counters, for the summary and (later) the
//! `metrics` topic.
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
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::Window, Stage::Features, Stage::Fusion, Stage::Output, Stage::EndToEnd];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Window => "window",
            Stage::Features => "features",
            Stage::Fusion => "fusion",
            Stage::Output => "output",
            Stage::EndToEnd => "end_to_end",
        }
    }
}

/// Histograms (microseconds, 3 significant digits, up to 1 hour) and counters.
#[derive(Debug)]
pub struct Metrics {
    hists: Vec<Histogram<u64>>,
    pub counters: Counters,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            hists: Stage::ALL
                .iter()
                .map(|_| Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
                .collect(),
            counters: Counters::default(),
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

impl Metrics {
    pub fn shared() -> SharedMetrics {
        Arc::new(Mutex::new(Metrics::default()))
    }

    pub fn record(&mut self, stage: Stage, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let i = Stage::ALL.iter().position(|s| *s == stage).expect("stage listed");
        self.hists[i].saturating_record(us);
    }

    pub fn stage(&self, stage: Stage) -> StageSummary {
        let i = Stage::ALL.iter().position(|s| *s == stage).expect("stage listed");
        let h = &self.hists[i];
        let ms = |us: u64| us as f64 / 1000.0;
        StageSummary {
            stage: stage.name(),
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }

    pub fn summary(&self) -> Summary {
        Summary { stages: Stage::ALL.iter().map(|s| self.stage(*s)).collect(), counters: self.counters.clone() }
    }
}

/// What a finished run prints.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub stages: Vec<StageSummary>,
    pub counters: Counters,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
                writeln!(f, "  {:<12} {:>6} {:>8.3} {:>8.3} {:>8.3}", s.stage, s.count, s.p50_ms, s.p99_ms, s.max_ms)?;
            }
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
}
