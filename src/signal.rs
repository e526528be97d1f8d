//! Shared vocabulary of the pipeline: what a channel is and how samples travel.
//!
//! Every later stage speaks in these words, so they live here and nowhere else
//! (see ARCHITECTURE.md, "no module imports a later stage"). The names follow
//! LSL/XDF stream metadata: a channel has a label, a type (modality), a unit and
//! a nominal rate.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Instant;

/// What a channel measures. The feature stage picks its algorithms from this,
/// never from the channel's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Electrocardiogram (any lead).
    Ecg,
    /// Photoplethysmogram / blood volume pulse.
    Ppg,
    /// Electrodermal activity (skin conductance).
    Eda,
    /// Respiration belt or thermistor.
    Resp,
    /// One accelerometer axis.
    Acc,
    /// Skin temperature.
    Temp,
    /// One EEG channel.
    Eeg,
    /// Beat-to-beat intervals in ms, one sample per beat at the beat's time (a strap's Heart
    /// Rate service RR values, an armband's PPI): an *event* channel, not evenly sampled.
    Rr,
    /// Anything the pipeline carries but does not interpret (markers, photosensors).
    Other,
}

impl Modality {
    pub const ALL: [Modality; 9] = [
        Modality::Ecg,
        Modality::Ppg,
        Modality::Eda,
        Modality::Resp,
        Modality::Acc,
        Modality::Temp,
        Modality::Eeg,
        Modality::Rr,
        Modality::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Ecg => "ecg",
            Modality::Ppg => "ppg",
            Modality::Eda => "eda",
            Modality::Resp => "resp",
            Modality::Acc => "acc",
            Modality::Temp => "temp",
            Modality::Eeg => "eeg",
            Modality::Rr => "rr",
            Modality::Other => "other",
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Static description of one channel, fixed when its source is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    /// Label unique within its sensor, e.g. `ecg`, `acc_x`.
    pub name: String,
    pub modality: Modality,
    /// Physical unit after scaling, e.g. `mV`, `uS`, `g`, `degC`, or `a.u.`.
    pub unit: String,
    /// Nominal sampling rate in Hz. Sample times are derived from it between
    /// chunk timestamps, so it must be the device's real rate.
    pub rate_hz: f64,
}

impl ChannelSpec {
    pub fn new(name: impl Into<String>, modality: Modality, unit: impl Into<String>, rate_hz: f64) -> Self {
        ChannelSpec { name: name.into(), modality, unit: unit.into(), rate_hz }
    }

    /// Seconds between two consecutive samples.
    pub fn period_s(&self) -> f64 {
        1.0 / self.rate_hz
    }

    /// An event channel (`rr`): each sample carries its own time and `rate_hz` is only the
    /// typical rate (for sizing buffers); no sample is "missing" between two events.
    pub fn is_event(&self) -> bool {
        self.modality == Modality::Rr
    }
}

/// Where and when a chunk of samples was stamped.
///
/// `source_time` is on the *recording clock*: unix seconds from the device or the
/// recording file. `arrival` is the host monotonic instant at which the bytes
/// carrying the chunk arrived; end-to-end latency is measured from it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkStamp {
    /// Recording-clock time (unix seconds) of the chunk's first sample.
    pub source_time: f64,
    /// Host monotonic arrival of the bytes that carried the chunk.
    pub arrival: Instant,
}
