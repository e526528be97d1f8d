//! What a BLE sensor can stream ([`StreamKind`]), the settings it is started with
//! ([`StreamSpec`]), the start request that asks for them, and the channels each fills.

use super::pmd::{control, Measurement};
use crate::signal::{ChannelSpec, Modality};
use serde::Deserialize;

/// One stream a BLE sensor can deliver (`streams = ["ecg", "acc"]` in a `kind = "ble"` source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Heart Rate service: the heart rate of each notification (about 1 Hz).
    Hr,
    /// Polar PMD ECG (H10: 130 Hz, µV at 14 bits).
    Ecg,
    /// Polar PMD accelerometer (three axes, in g).
    Acc,
    /// Polar PMD PPG (Verity Sense, OH1: three green channels and ambient).
    Ppg,
    /// Polar PMD peak-to-peak intervals (Verity Sense, OH1), the armband's own beat detection.
    Ppi,
}

impl StreamKind {
    /// The PMD measurement behind this stream, if it is one.
    pub fn measurement(self) -> Option<Measurement> {
        match self {
            StreamKind::Hr => None,
            StreamKind::Ecg => Some(Measurement::Ecg),
            StreamKind::Acc => Some(Measurement::Acc),
            StreamKind::Ppg => Some(Measurement::Ppg),
            StreamKind::Ppi => Some(Measurement::Ppi),
        }
    }
}

/// A stream and the settings it is started with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSpec {
    pub kind: StreamKind,
    /// The rate the samples really come at. (A Verity Sense outside SDK mode reports 135 Hz for
    /// its PPG whatever it does; the assembler measures the rate and says when they differ.)
    pub rate_hz: f64,
    /// Bits per value, as started.
    pub resolution: u8,
    /// ACC range in g, when the stream has one.
    pub range: Option<u16>,
}

impl StreamSpec {
    /// The defaults for `kind`: an H10's ECG (130 Hz, 14 bit) and ACC (200 Hz, 16 bit, ±8 g), a
    /// Verity Sense's PPG (55 Hz, 22 bit), and the Heart Rate service's ~1 Hz.
    pub fn default_for(kind: StreamKind) -> StreamSpec {
        let (rate_hz, resolution, range) = match kind {
            // Event streams: the typical beat rate, for sizing buffers.
            StreamKind::Hr | StreamKind::Ppi => (1.0, 16, None),
            StreamKind::Ecg => (130.0, 14, None),
            StreamKind::Acc => (200.0, 16, Some(8)),
            StreamKind::Ppg => (55.0, 22, None),
        };
        StreamSpec { kind, rate_hz, resolution, range }
    }

    /// Channels of a compressed frame of this stream.
    pub(super) fn channels(&self) -> usize {
        match self.kind {
            StreamKind::Hr | StreamKind::Ecg | StreamKind::Ppi => 1,
            StreamKind::Acc => 3,
            StreamKind::Ppg => 4,
        }
    }

    /// The control-point request that starts this stream (`None` for the Heart Rate service,
    /// which streams once subscribed). PPI takes no settings.
    ///
    /// `offered` is the sensor's answer to "get settings", when it gave one: a value the sensor
    /// does not offer is replaced by the first it does, and the note says so (a Verity Sense
    /// outside SDK mode offers only 135 Hz for PPG, whatever it then sends). The samples are
    /// still timed at the configured `rate_hz`, which must be the rate they really come at.
    pub fn start_request(&self, offered: Option<&control::Settings>) -> Option<(Vec<u8>, Option<String>)> {
        let m = self.kind.measurement()?;
        if self.kind == StreamKind::Ppi {
            return Some((vec![control::Op::Start as u8, m as u8], None));
        }
        let mut changed = Vec::new();
        let mut pick = |what: &str, wanted: u16, offer: Option<&Vec<u16>>| match offer {
            Some(list) if !list.is_empty() && !list.contains(&wanted) => {
                changed.push(format!("{what} {wanted} → {} (offered: {list:?})", list[0]));
                list[0]
            }
            _ => wanted,
        };
        let settings = control::StreamSettings {
            sample_rate: pick("rate", self.rate_hz.round() as u16, offered.map(|o| &o.sample_rates)),
            resolution: pick("resolution", u16::from(self.resolution), offered.map(|o| &o.resolutions)),
            range: self.range.map(|r| pick("range", r, offered.map(|o| &o.ranges))),
            channels: (self.kind == StreamKind::Ppg)
                .then(|| offered.and_then(|o| o.channels.first().copied()).unwrap_or(4)),
        };
        let note = (!changed.is_empty()).then(|| {
            format!(
                "{m} asked with {} (the sensor does not offer the configured values); samples are still timed at {} Hz",
                changed.join(", "),
                self.rate_hz
            )
        });
        Some((control::start_request(m, &settings), note))
    }

    /// The pipeline channels this stream fills, in order.
    pub fn specs(&self) -> Vec<ChannelSpec> {
        let rate = self.rate_hz;
        match self.kind {
            StreamKind::Hr => vec![
                ChannelSpec::new("hr", Modality::Other, "bpm", rate),
                ChannelSpec::new("rr", Modality::Rr, "ms", rate),
            ],
            StreamKind::Ppi => vec![ChannelSpec::new("ppi", Modality::Rr, "ms", rate)],
            StreamKind::Ecg => vec![ChannelSpec::new("ecg", Modality::Ecg, "mV", rate)],
            StreamKind::Acc => {
                ["acc_x", "acc_y", "acc_z"].into_iter().map(|n| ChannelSpec::new(n, Modality::Acc, "g", rate)).collect()
            }
            StreamKind::Ppg => vec![
                ChannelSpec::new("ppg", Modality::Ppg, "a.u.", rate),
                ChannelSpec::new("ppg_ambient", Modality::Other, "a.u.", rate),
            ],
        }
    }
}
