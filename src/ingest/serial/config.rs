//! `[sensor.source]` of `kind = "serial"`: which port, how to talk to it, which protocol it
//! speaks, and how hard to try when it goes away.

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::ingest::protocol::ProtocolConfig;
use crate::key_path;
use crate::signal::ChannelSpec;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Device path, e.g. `/dev/ttyUSB0` or (stable across replugs) `/dev/serial/by-id/…`.
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Drive DTR / RTS to this level after opening (some boards reset on DTR); untouched if unset.
    pub dtr: Option<bool>,
    pub rts: Option<bool>,
    /// Ask the driver for low latency (Linux `ASYNC_LOW_LATENCY`; FTDI chips otherwise batch
    /// bytes for up to 16 ms). What the driver allowed is logged at each connect.
    #[serde(default = "yes")]
    pub low_latency: bool,
    /// `check` fails when the device is absent; otherwise the daemon starts and keeps trying.
    #[serde(default)]
    pub required: bool,
    /// A connected device silent this long counts as unplugged (the port is closed and reopened).
    #[serde(default = "default_silence")]
    pub silence_timeout_s: f64,
    /// Reconnect backoff: the first wait, doubled after each failed attempt up to the last, with
    /// ±25 % jitter so hubs with many sensors do not retry in lockstep.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_s: f64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_s: f64,
    pub protocol: ProtocolConfig,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

fn default_baud() -> u32 {
    115_200
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn yes() -> bool {
    true
}
fn default_silence() -> f64 {
    2.0
}
fn default_backoff_initial() -> f64 {
    0.1
}
fn default_backoff_max() -> f64 {
    // A returning device is picked up within about this long.
    1.0
}

impl SerialConfig {
    /// A config for `path` speaking `protocol`, everything else default.
    pub fn new(path: impl Into<PathBuf>, protocol: ProtocolConfig) -> Self {
        SerialConfig {
            path: path.into(),
            baud: default_baud(),
            data_bits: default_data_bits(),
            parity: Parity::None,
            stop_bits: default_stop_bits(),
            dtr: None,
            rts: None,
            low_latency: true,
            required: false,
            silence_timeout_s: default_silence(),
            backoff_initial_s: default_backoff_initial(),
            backoff_max_s: default_backoff_max(),
            protocol,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.path.as_os_str().is_empty() {
            return Err(Invalid::new(key_path!["path"], "is empty").help("e.g. path = \"/dev/ttyUSB0\""));
        }
        Invalid::bounded(key_path!["baud"], bounds::BAUD, self.baud as f64)?;
        if !(5..=8).contains(&self.data_bits) {
            return Err(Invalid::new(key_path!["data_bits"], format!("{} is not 5, 6, 7 or 8", self.data_bits)));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(Invalid::new(key_path!["stop_bits"], format!("{} is not 1 or 2", self.stop_bits)));
        }
        Invalid::bounded(key_path!["silence_timeout_s"], bounds::SILENCE_S, self.silence_timeout_s)?;
        Invalid::bounded(key_path!["backoff_initial_s"], bounds::BACKOFF_S, self.backoff_initial_s)?;
        Invalid::bounded(key_path!["backoff_max_s"], bounds::BACKOFF_S, self.backoff_max_s)?;
        if self.backoff_max_s < self.backoff_initial_s {
            return Err(Invalid::new(
                key_path!["backoff_max_s"],
                format!("{} is below backoff_initial_s = {}", self.backoff_max_s, self.backoff_initial_s),
            ));
        }
        self.protocol.validate()?;
        let specs = self.protocol.specs();
        if specs.is_empty() {
            return Err(Invalid::new(key_path!["protocol"], "names no channel"));
        }
        for spec in &specs {
            Invalid::bounded(key_path!["protocol"], bounds::SAMPLE_RATE_HZ, spec.rate_hz)
                .map_err(|e| e.help(format!("the rate of channel `{}`", spec.name)))?;
        }
        // A device slower than the silence timeout would be "unplugged" between its samples.
        let slowest = specs.iter().map(|s| s.rate_hz).fold(f64::INFINITY, f64::min);
        if self.silence_timeout_s < 2.0 / slowest {
            return Err(Invalid::new(
                key_path!["silence_timeout_s"],
                format!(
                    "{} s is shorter than two samples of the slowest channel ({slowest} Hz)",
                    self.silence_timeout_s
                ),
            )
            .help(format!("set silence_timeout_s to at least {}", 2.0 / slowest)));
        }
        Ok(())
    }

    /// The channels the protocol emits: known from the config alone.
    pub fn channels(&self) -> Vec<ChannelSpec> {
        self.protocol.specs()
    }

    /// The device path, relative paths taken from `base_dir`.
    pub fn resolved_path(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.path)
    }
}
