//! `[sensor.source]` of `kind = "ble"`: which device, which of its streams, and how hard to try
//! when it goes away.
//!
//! ```toml
//! [sensor.source]
//! kind = "ble"
//! name = "Polar H10"                 # a name prefix, or `address = "A0:9E:1A:12:34:56"`
//! streams = ["ecg", { kind = "acc", rate_hz = 50 }]
//! capture = "captures/h10.capture"   # optional: keep every notification for replay
//! ```

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::ingest::protocol::ble::stream::{StreamKind, StreamSpec};
use crate::key_path;
use crate::signal::ChannelSpec;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BleConfig {
    /// The device's address (`A0:9E:1A:12:34:56`); the surest way to name one strap among many.
    pub address: Option<String>,
    /// Or the start of its advertised name (`Polar H10`, `Polar H10 8AA87D20`).
    pub name: Option<String>,
    /// The Bluetooth adapter (`hci0`); default the first.
    pub adapter: Option<String>,
    /// What to stream: `hr` (Heart Rate service), `ecg`, `acc`, `ppg` (Polar PMD), each as a
    /// name or `{ kind, rate_hz, resolution, range }` to change its settings.
    pub streams: Vec<StreamEntry>,
    /// Write every notification with its arrival time to this file (replay it with
    /// `biofeedd replay --format pmd|hrs`). Relative to the config file.
    pub capture: Option<PathBuf>,
    /// How long one scan looks for the device before backing off.
    #[serde(default = "default_scan")]
    pub scan_timeout_s: f64,
    /// A connected device that sends no samples this long is treated as gone (and reconnected).
    /// Default 3 s, or 15 s when the only stream is `ppi` (five beats a notification).
    pub data_timeout_s: Option<f64>,
    /// Reconnect backoff: the first wait, doubled after each failed attempt up to the last, with
    /// ±25 % jitter.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_s: f64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_s: f64,
}

/// `"ecg"` or `{ kind = "ecg", rate_hz = 130 }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StreamEntry {
    Kind(StreamKind),
    Settings { kind: StreamKind, rate_hz: Option<f64>, resolution: Option<u8>, range: Option<u16> },
}

impl StreamEntry {
    pub fn spec(&self) -> StreamSpec {
        match *self {
            StreamEntry::Kind(kind) => StreamSpec::default_for(kind),
            StreamEntry::Settings { kind, rate_hz, resolution, range } => {
                let d = StreamSpec::default_for(kind);
                StreamSpec {
                    kind,
                    rate_hz: rate_hz.unwrap_or(d.rate_hz),
                    resolution: resolution.unwrap_or(d.resolution),
                    range: range.or(d.range),
                }
            }
        }
    }
}

fn default_scan() -> f64 {
    10.0
}
fn default_backoff_initial() -> f64 {
    0.2
}
fn default_backoff_max() -> f64 {
    // A strap back in range is picked up within about this long (plus BlueZ's own connect).
    1.0
}

impl BleConfig {
    /// The streams, with their settings.
    pub fn stream_specs(&self) -> Vec<StreamSpec> {
        self.streams.iter().map(StreamEntry::spec).collect()
    }

    /// The channels, in ring order (each stream's channels in turn).
    pub fn channels(&self) -> Vec<ChannelSpec> {
        self.stream_specs().iter().flat_map(StreamSpec::specs).collect()
    }

    /// The data-age watchdog's limit: the config's, or one that suits the streams (an H10 sends
    /// ECG every 0.56 s and heart rate every second; a PPI notification holds five beats).
    pub fn data_timeout(&self) -> f64 {
        let only_ppi = self.stream_specs().iter().all(|s| s.kind == StreamKind::Ppi);
        self.data_timeout_s.unwrap_or(if only_ppi { 15.0 } else { 3.0 })
    }

    /// How the device is named in log lines.
    pub fn device_label(&self) -> String {
        match (&self.address, &self.name) {
            (Some(a), _) => a.clone(),
            (None, Some(n)) => format!("`{n}…`"),
            (None, None) => "?".into(),
        }
    }

    pub fn resolved_capture(&self, base_dir: &Path) -> Option<PathBuf> {
        self.capture.as_ref().map(|c| base_dir.join(c))
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        match (&self.address, &self.name) {
            (None, None) => {
                return Err(Invalid::new(key_path!["address"], "a BLE source needs `address` or `name`")
                    .help("`biofeedd scan` lists nearby devices with both"))
            }
            (Some(a), _) if !is_address(a) => {
                return Err(Invalid::new(key_path!["address"], format!("`{a}` is not a Bluetooth address"))
                    .help("six hex pairs separated by colons, e.g. A0:9E:1A:12:34:56"))
            }
            (_, Some(n)) if n.is_empty() => return Err(Invalid::new(key_path!["name"], "is empty")),
            _ => {}
        }
        if self.streams.is_empty() {
            return Err(Invalid::new(key_path!["streams"], "names no stream")
                .help("e.g. streams = [\"hr\"] for any heart-rate strap, [\"ecg\"] for a Polar H10"));
        }
        for (i, s) in self.stream_specs().iter().enumerate() {
            let at = |key: &'static str| key_path!["streams", i, key];
            if self.stream_specs()[..i].iter().any(|o| o.kind == s.kind) {
                return Err(Invalid::new(key_path!["streams", i], format!("stream `{:?}` is listed twice", s.kind)));
            }
            Invalid::bounded(at("rate_hz"), bounds::SAMPLE_RATE_HZ, s.rate_hz)?;
            if s.kind.measurement().is_some() && s.kind != StreamKind::Ppi && s.rate_hz.fract() != 0.0 {
                return Err(Invalid::new(at("rate_hz"), "a Polar stream's rate is a whole number of Hz"));
            }
            if s.range.is_some() && s.kind != StreamKind::Acc {
                return Err(Invalid::new(at("range"), "only the accelerometer (`acc`) has a range"));
            }
            if !(1..=32).contains(&s.resolution) {
                return Err(Invalid::new(at("resolution"), format!("{} bits is not 1–32", s.resolution)));
            }
        }
        Invalid::bounded(key_path!["scan_timeout_s"], bounds::SILENCE_S, self.scan_timeout_s)?;
        if let Some(t) = self.data_timeout_s {
            Invalid::bounded(key_path!["data_timeout_s"], bounds::SILENCE_S, t)?;
        }
        Invalid::bounded(key_path!["backoff_initial_s"], bounds::BACKOFF_S, self.backoff_initial_s)?;
        Invalid::bounded(key_path!["backoff_max_s"], bounds::BACKOFF_S, self.backoff_max_s)?;
        if self.backoff_max_s < self.backoff_initial_s {
            return Err(Invalid::new(key_path!["backoff_max_s"], "is below backoff_initial_s"));
        }
        Ok(())
    }
}

/// `A0:9E:1A:12:34:56`, either case.
pub fn is_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> BleConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn streams_by_name_or_with_settings() {
        let c = parse("name = \"Polar H10\"\nstreams = [\"ecg\", { kind = \"acc\", rate_hz = 50 }, \"hr\"]");
        c.validate().unwrap();
        let names: Vec<String> = c.channels().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["ecg", "acc_x", "acc_y", "acc_z", "hr", "rr"]);
        assert_eq!(c.stream_specs()[1].rate_hz, 50.0);
        assert_eq!(c.stream_specs()[1].range, Some(8));
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse("streams = [\"hr\"]").validate().unwrap_err();
        assert!(e.to_string().contains("needs `address` or `name`"), "{e}");
        let e = parse("address = \"A0:9E:1A\"\nstreams = [\"hr\"]").validate().unwrap_err();
        assert!(e.to_string().contains("not a Bluetooth address"), "{e}");
        let e = parse("name = \"x\"\nstreams = []").validate().unwrap_err();
        assert!(e.to_string().contains("names no stream"), "{e}");
        let e = parse("name = \"x\"\nstreams = [\"ecg\", \"ecg\"]").validate().unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        let e = parse("name = \"x\"\nstreams = [{ kind = \"ppg\", rate_hz = 1e9 }]").validate().unwrap_err();
        assert!(e.to_string().contains("streams[0].rate_hz") || e.to_string().contains("rate_hz"), "{e}");
        assert!(toml::from_str::<BleConfig>("name = \"x\"\nstreams = [\"eeg\"]").is_err());
    }
}
