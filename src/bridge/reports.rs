//! The hub's reports about itself: `sensor/{sensor}/state` (retained, each source's health) and
//! `metrics` (periodic pipeline and delivery figures). Schemas in `schemas/`.

use crate::ingest::{HealthSnapshot, LinkState};
use crate::metrics::{Counters, OffloadStats, PressureState, StageSummary};
use serde::Serialize;
use std::time::{Duration, Instant};

pub const SENSOR_STATE_SCHEMA: &str = "biofeedd.sensor_state.v1";
pub const METRICS_SCHEMA: &str = "biofeedd.metrics.v1";

/// How often the state of every sensor is republished even when nothing changed (so its
/// `data_age_ms` and `samples` stay fresh on a dashboard).
pub const STATE_REFRESH: Duration = Duration::from_secs(30);

/// `biofeedd/v1/{hub}/sensor/{sensor}/state`, retained.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorState {
    pub schema: &'static str,
    pub hub: String,
    pub run: String,
    pub sensor: String,
    pub subject: String,
    pub kind: &'static str,
    pub state: LinkState,
    /// Unix seconds when this was read.
    pub at: f64,
    /// Milliseconds since the last data arrived; null before any did.
    pub data_age_ms: Option<u64>,
    pub samples: u64,
    pub battery_percent: Option<u8>,
    pub rssi_dbm: Option<i16>,
    pub reconnects: u64,
    pub decode_errors: u64,
    pub lost_samples: u64,
    pub overrun_samples: u64,
}

impl SensorState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hub: &str,
        run: &str,
        sensor: &str,
        subject: &str,
        kind: &'static str,
        health: &HealthSnapshot,
        now: Instant,
        at: f64,
    ) -> Self {
        SensorState {
            schema: SENSOR_STATE_SCHEMA,
            hub: hub.into(),
            run: run.into(),
            sensor: sensor.into(),
            subject: subject.into(),
            kind,
            state: health.state,
            at,
            data_age_ms: health.data_age(now).map(|d| d.as_millis() as u64),
            samples: health.samples,
            battery_percent: health.battery_percent,
            rssi_dbm: health.rssi_dbm,
            reconnects: health.reconnects,
            decode_errors: health.decode_errors,
            lost_samples: health.lost_samples,
            overrun_samples: health.overrun_samples,
        }
    }

    /// Whether `self` says something `before` did not: a change of state, battery, signal, or
    /// any error counter. Data age and sample counts move all the time and are not news.
    pub fn differs_from(&self, before: &SensorState) -> bool {
        (self.state, self.battery_percent, self.rssi_dbm, self.reconnects)
            != (before.state, before.battery_percent, before.rssi_dbm, before.reconnects)
            || (self.decode_errors, self.lost_samples, self.overrun_samples)
                != (before.decode_errors, before.lost_samples, before.overrun_samples)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("sensor state serialises")
    }
}

/// One stage's latency over the report's interval; null figures when nothing ran.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalLatency {
    pub stage: &'static str,
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl From<StageSummary> for IntervalLatency {
    fn from(s: StageSummary) -> Self {
        let some = |v: f64| (s.count > 0).then_some(v);
        IntervalLatency { stage: s.stage, count: s.count, p50_ms: some(s.p50_ms), p99_ms: some(s.p99_ms) }
    }
}

/// The outbox in the metrics report.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxReport {
    pub depth: usize,
    pub oldest_age_s: Option<f64>,
    pub disk_bytes: u64,
    pub expired: u64,
    pub dropped_live: u64,
    pub dropped_durable: u64,
    pub refused: u64,
}

/// `biofeedd/v1/{hub}/metrics`: latency since the last report, counters since the run started.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsReport {
    pub schema: &'static str,
    pub hub: String,
    pub run: String,
    pub at: f64,
    pub interval_s: f64,
    pub latency: Vec<IntervalLatency>,
    pub windows: u64,
    pub unknown: u64,
    pub exits_per_stage: Vec<u64>,
    pub fallbacks: u64,
    pub records_dropped: u64,
    pub stdout_lines_dropped: u64,
    pub acked: u64,
    pub outbox: OutboxReport,
    pub offload: OffloadStats,
    /// The governor's level, once it has sampled.
    pub pressure: Option<PressureState>,
}

impl MetricsReport {
    pub fn new(
        hub: &str,
        run: &str,
        at: f64,
        interval: Duration,
        latency: Vec<StageSummary>,
        counters: &Counters,
        outbox: OutboxReport,
    ) -> Self {
        MetricsReport {
            schema: METRICS_SCHEMA,
            hub: hub.into(),
            run: run.into(),
            at,
            interval_s: interval.as_secs_f64(),
            latency: latency.into_iter().map(IntervalLatency::from).collect(),
            windows: counters.windows,
            unknown: counters.unknown,
            exits_per_stage: counters.exits_per_stage.clone(),
            fallbacks: counters.fallbacks,
            records_dropped: counters.records_dropped,
            stdout_lines_dropped: counters.stdout_lines_dropped,
            acked: counters.acked,
            outbox,
            offload: counters.offload,
            pressure: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metrics serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> HealthSnapshot {
        HealthSnapshot {
            state: LinkState::Streaming,
            last_arrival: None,
            samples: 10,
            overrun_samples: 0,
            decode_errors: 0,
            lost_samples: 0,
            reconnects: 0,
            battery_percent: Some(80),
            rssi_dbm: None,
        }
    }

    #[test]
    fn only_news_counts_as_a_change() {
        let now = Instant::now();
        let state = |h: &HealthSnapshot| SensorState::new("h", "r", "s", "p", "ble", h, now, 0.0);
        let before = state(&snapshot());
        assert!(!state(&HealthSnapshot { samples: 99, ..snapshot() }).differs_from(&before));
        assert!(state(&HealthSnapshot { battery_percent: Some(79), ..snapshot() }).differs_from(&before));
        assert!(state(&HealthSnapshot { state: LinkState::Reconnecting, ..snapshot() }).differs_from(&before));
        assert!(state(&HealthSnapshot { decode_errors: 1, ..snapshot() }).differs_from(&before));
    }
}
