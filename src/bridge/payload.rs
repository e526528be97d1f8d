//! Payloads of the v1 topic tree (ARCHITECTURE-GUIDE §4), with their JSON Schemas in `schemas/`.

use crate::biofeedback::{BeatEvent, BeatSource};
use crate::features::{FeatureVector, Quality, FEATURE_NAMES};
use crate::fusion::{Prediction, Source, Variant};
use crate::signal::ChannelSpec;
use serde::Serialize;
use std::collections::BTreeMap;

pub const FEEDBACK_SCHEMA: &str = "biofeedd.feedback.v1";
pub const STATUS_SCHEMA: &str = "biofeedd.status.v1";
pub const BEAT_SCHEMA: &str = "biofeedd.beat.v1";

/// `biofeedd/v1/{hub}/{subject}/feedback`: one message per closed window.
#[derive(Debug, Clone, Serialize)]
pub struct Feedback {
    pub schema: &'static str,
    /// Per-subject window sequence number, from 0 in each run; consecutive messages differ by
    /// one. `(run, subject, seq)` names a message uniquely: a QoS 1 duplicate repeats it.
    pub seq: u64,
    pub hub: String,
    /// Id of the daemon run that produced this message (new at every start).
    pub run: String,
    pub subject: String,
    /// Window bounds on the recording clock, unix seconds (`[window_start, window_end)`).
    pub window_start: f64,
    pub window_end: f64,
    pub label: String,
    /// Class → probability; empty when `label` is `unknown`.
    pub probabilities: BTreeMap<String, f32>,
    pub exit_stage: u32,
    pub model: String,
    pub variant: Variant,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every feature of the window by name; `null` where not computable.
    pub features: BTreeMap<&'static str, Option<f32>>,
    /// Signal quality per modality present.
    pub quality: Vec<Quality>,
    /// Host time from the arrival of the window's last bytes to handing this message to the
    /// output, in ms. Delivery time (stdout or PUBACK) is in the run's metrics.
    pub latency_ms: f64,
}

impl Feedback {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hub: &str,
        run: &str,
        subject: &str,
        seq: u64,
        window_start: f64,
        window_end: f64,
        features: &FeatureVector,
        prediction: Prediction,
        latency_ms: f64,
    ) -> Feedback {
        Feedback {
            schema: FEEDBACK_SCHEMA,
            seq,
            hub: hub.to_string(),
            run: run.to_string(),
            subject: subject.to_string(),
            window_start,
            window_end,
            label: prediction.label,
            probabilities: prediction.probabilities.into_iter().collect(),
            exit_stage: prediction.exit_stage,
            model: prediction.model,
            variant: prediction.variant,
            source: prediction.source,
            reason: prediction.reason,
            features: FEATURE_NAMES
                .iter()
                .zip(features.values)
                .map(|(n, v)| (*n, v.is_finite().then_some(v)))
                .collect(),
            quality: features.quality.clone(),
            latency_ms,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("feedback serialises")
    }

    /// One readable line for a terminal.
    pub fn to_text(&self) -> String {
        let f = |name: &str| self.features.get(name).copied().flatten();
        let num = |name: &str, unit: &str, digits: usize| match f(name) {
            Some(v) => format!("{v:.digits$}{unit}"),
            None => "-".to_string(),
        };
        let probs = if self.probabilities.is_empty() {
            self.reason.clone().unwrap_or_default()
        } else {
            self.probabilities.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>().join(" ")
        };
        // Where the answer came from, when it is not simply this hub's full cascade.
        let source = match self.source {
            Source::Cloud => " cloud",
            Source::Fallback => " fallback",
            Source::Cache => " cache",
            Source::Edge | Source::None => "",
        };
        let quality =
            self.quality.iter().map(|q| format!("{} {:.2}", q.modality, q.score)).collect::<Vec<_>>().join(" ");
        format!(
            "{subject} #{seq:<4} {start}-{end}  {label:<7} [{probs}]{source}  hr {hr} rmssd {rmssd} eda {eda} scr/min {scr} resp {resp}  q[{quality}]  {lat:.2} ms",
            subject = self.subject,
            seq = self.seq,
            start = clock_time(self.window_start),
            end = clock_time(self.window_end),
            label = self.label,
            hr = num("hr_mean_bpm", "bpm", 0),
            rmssd = num("hrv_rmssd_ms", "ms", 0),
            eda = num("eda_mean_us", "uS", 2),
            scr = num("scr_rate_per_min", "", 1),
            resp = num("resp_rate_bpm", "/min", 1),
            lat = self.latency_ms,
        )
    }
}

/// Unix seconds as `HH:MM:SS.s` UTC (the date is in the JSON output; a terminal line wants the time).
fn clock_time(unix: f64) -> String {
    // Truncate to tenths first so 59.96 s prints as 59.9, not 60.0.
    let day = ((unix * 10.0).floor() / 10.0).rem_euclid(86_400.0);
    let (h, m, s) = ((day / 3600.0) as u32, ((day % 3600.0) / 60.0) as u32, day % 60.0);
    format!("{h:02}:{m:02}:{s:04.1}")
}

/// A new id for a daemon run: 64 random bits (std's per-process hash keys) in hex.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// `biofeedd/v1/{hub}/status`, retained; the LWT carries the same shape with `state: offline`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema: &'static str,
    pub state: &'static str,
    pub hub: String,
    pub run: String,
    pub version: &'static str,
    /// Unix seconds.
    pub started_at: f64,
    pub sensors: Vec<SensorStatus>,
    /// The governor's pressure level (normal, constrained, critical), once it has sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure: Option<&'static str>,
}

/// A sensor in the status message, described in LSL's words.
#[derive(Debug, Clone, Serialize)]
pub struct SensorStatus {
    pub id: String,
    pub subject: String,
    pub kind: &'static str,
    pub channels: Vec<ChannelStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    pub label: String,
    #[serde(rename = "type")]
    pub modality: String,
    pub unit: String,
    pub nominal_srate: f64,
}

impl From<&ChannelSpec> for ChannelStatus {
    fn from(c: &ChannelSpec) -> Self {
        ChannelStatus {
            label: c.name.clone(),
            modality: c.modality.to_string(),
            unit: c.unit.clone(),
            nominal_srate: c.rate_hz,
        }
    }
}

impl Status {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("status serialises")
    }
}

/// `biofeedd/v1/{hub}/{subject}/beat`: one message per heartbeat, as soon as it is confirmed.
#[derive(Debug, Clone, Serialize)]
pub struct BeatMessage<'a> {
    pub schema: &'static str,
    /// Per-subject beat number, from 0 in each run; `(run, subject, seq)` names a message.
    pub seq: u64,
    pub hub: &'a str,
    pub run: &'a str,
    pub subject: &'a str,
    /// The beat's time on the recording clock, unix seconds.
    pub t: f64,
    pub rr_ms: Option<f64>,
    pub hr_bpm: Option<f64>,
    pub source: BeatSource,
    /// Why the interval should not be trusted; empty when it can.
    pub flags: &'a [&'static str],
    /// Host time from the arrival of the confirming bytes to handing this message to the
    /// output, in ms.
    pub latency_ms: f64,
}

impl<'a> BeatMessage<'a> {
    pub fn new(hub: &'a str, run: &'a str, subject: &'a str, beat: &'a BeatEvent, latency_ms: f64) -> Self {
        BeatMessage {
            schema: BEAT_SCHEMA,
            seq: beat.seq,
            hub,
            run,
            subject,
            t: beat.t,
            rr_ms: beat.rr_ms,
            hr_bpm: beat.hr_bpm,
            source: beat.source,
            flags: &beat.flags,
            latency_ms,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("beat serialises")
    }

    /// One readable line for a terminal.
    pub fn to_text(&self) -> String {
        let hr = self.hr_bpm.map_or("-".to_string(), |v| format!("{v:.1}bpm"));
        let rr = self.rr_ms.map_or("-".to_string(), |v| format!("{v:.0}ms"));
        let mut line = format!("{} beat #{:<5} {}  hr {hr} rr {rr}", self.subject, self.seq, clock_time(self.t));
        if !self.flags.is_empty() {
            line = format!("{line}  [{}]", self.flags.join(" "));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_time_formats_utc() {
        assert_eq!(super::clock_time(1644829925.0), "09:12:05.0");
        assert_eq!(super::clock_time(59.96), "00:00:59.9", "truncated to tenths, never 60.0");
    }
}
