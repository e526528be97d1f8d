//! The seam every source kind plugs into: what the daemon asks of a source, and what it gets back.

#[cfg(feature = "ble")]
use super::ble::BleConfig;
use super::health::Health;
use super::replay::{ReadError, ReplayConfig};
#[cfg(feature = "serial")]
use super::serial::SerialConfig;
use crate::diagnostic::Invalid;
use crate::ring::ChannelProducer;
use crate::signal::ChannelSpec;
use serde::{Deserialize, Deserializer};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::sync::watch;

/// `[sensor.source]`: which transport feeds a sensor, chosen by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    /// Play a recording through the same path a live device uses.
    Replay(ReplayConfig),
    /// A device on a serial port speaking one of the `ingest::protocol`s.
    #[cfg(feature = "serial")]
    Serial(SerialConfig),
    /// A Bluetooth LE wearable (Heart Rate service, Polar PMD) through BlueZ.
    #[cfg(feature = "ble")]
    Ble(BleConfig),
}

/// Everything a source needs to run: its rings, its health to keep, and the stop signal.
pub struct SourceContext {
    /// The sensor's id, for log lines.
    pub sensor: String,
    /// The folder relative paths in the source's config are resolved against.
    pub base_dir: PathBuf,
    /// One producer per channel, in the order [`SourceConfig::channels`] gave them.
    pub producers: Vec<ChannelProducer>,
    /// Kept current by the source; read by the daemon at any time.
    pub health: Health,
    /// Turns true when the daemon stops; the source then returns, dropping its producers.
    pub shutdown: watch::Receiver<bool>,
}

/// A built source: its task (not yet spawned) and what the daemon may read while it runs.
pub struct RunningSource {
    pub health: Health,
    /// Runs until the stream ends or shutdown; the daemon spawns it.
    pub task: Pin<Box<dyn Future<Output = SourceReport> + Send>>,
    /// The source waits for ring space instead of dropping (a file at full speed is its own
    /// clock), so nothing downstream needs to drop for it either.
    pub waits_for_room: bool,
}

/// What a source did, for the run summary.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    pub chunks: u64,
    pub samples: u64,
    pub overrun_samples: u64,
    /// Malformed records dropped on the way in (rows of a file under `on_bad_row = "skip"`,
    /// frames of a stream that failed to decode); each left a gap.
    pub skipped_records: u64,
    /// False when shutdown stopped the source before its stream ended, or it failed.
    pub completed: bool,
    /// Why the source gave up (a read error part-way through a file, a device gone for good).
    pub failure: Option<String>,
    /// Things worth telling the user that did not stop the source.
    pub notes: Vec<String>,
}

/// Why a source could not be described or built.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The data is not what the source announced before it was read.
    #[error("{0}")]
    Mismatch(String),
    /// A device the config requires is not there.
    #[error("{0}")]
    Unavailable(String),
}

impl SourceConfig {
    /// Read the struct of `kind` from its table without the tag. `config` uses it to point at
    /// the very key of a bad value: serde's tagged-enum path reports only the table.
    pub fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, table: D) -> Result<SourceConfig, D::Error> {
        match kind {
            "replay" => ReplayConfig::deserialize(table).map(SourceConfig::Replay),
            #[cfg(feature = "serial")]
            "serial" => SerialConfig::deserialize(table).map(SourceConfig::Serial),
            #[cfg(not(feature = "serial"))]
            "serial" => Err(serde::de::Error::custom("this biofeedd was built without the `serial` feature")),
            #[cfg(feature = "ble")]
            "ble" => BleConfig::deserialize(table).map(SourceConfig::Ble),
            #[cfg(not(feature = "ble"))]
            "ble" => Err(serde::de::Error::custom("this biofeedd was built without the `ble` feature")),
            other => Err(serde::de::Error::unknown_variant(other, &["replay", "serial", "ble"])),
        }
    }

    /// The replay config, when this source plays a recording.
    pub fn as_replay(&self) -> Option<&ReplayConfig> {
        match self {
            SourceConfig::Replay(r) => Some(r),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The kind's name, as `kind = "…"` spells it (the status payload reports it).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Replay(_) => "replay",
            #[cfg(feature = "serial")]
            SourceConfig::Serial(_) => "serial",
            #[cfg(feature = "ble")]
            SourceConfig::Ble(_) => "ble",
        }
    }

    /// What device the source reads, for spotting two sensors on one device (a port has one
    /// reader; a BLE device one connection from us): `None` for a recording.
    pub fn device(&self) -> Option<String> {
        match self {
            SourceConfig::Replay(_) => None,
            #[cfg(feature = "serial")]
            SourceConfig::Serial(s) => Some(format!("serial port {}", s.path.display())),
            #[cfg(feature = "ble")]
            SourceConfig::Ble(b) => Some(match (&b.address, &b.name) {
                (Some(a), _) => format!("BLE device {}", a.to_ascii_uppercase()),
                (None, n) => format!("BLE device named `{}…`", n.as_deref().unwrap_or_default()),
            }),
        }
    }

    /// Check the source's own fields; paths in the error are relative to `[sensor.source]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            SourceConfig::Replay(r) => r.validate(),
            #[cfg(feature = "serial")]
            SourceConfig::Serial(s) => s.validate(),
            #[cfg(feature = "ble")]
            SourceConfig::Ble(b) => b.validate(),
        }
    }

    /// The channels this source will produce, known before any sample flows (from the config,
    /// or a recording's header), so rings can be sized and models checked up front.
    pub fn channels(&self, base_dir: &Path) -> Result<Vec<ChannelSpec>, SourceError> {
        match self {
            SourceConfig::Replay(r) => r.channels(base_dir),
            #[cfg(feature = "serial")]
            SourceConfig::Serial(s) => {
                s.check_present(&s.resolved_path(base_dir))?;
                Ok(s.channels())
            }
            #[cfg(feature = "ble")]
            SourceConfig::Ble(b) => Ok(b.channels()),
        }
    }

    /// The longest span of samples one chunk may carry, in seconds; rings hold several.
    pub fn max_chunk_s(&self) -> f64 {
        match self {
            SourceConfig::Replay(r) => r.chunk_ms / 1000.0,
            // One read's worth of bytes; at the slowest protocol that is well under a second.
            #[cfg(feature = "serial")]
            SourceConfig::Serial(_) => 1.0,
            // One notification: at most 512 bytes, under a second of any stream.
            #[cfg(feature = "ble")]
            SourceConfig::Ble(_) => 1.0,
        }
    }

    /// Build the source onto its rings. Reading a file or opening a port happens here; the
    /// returned task does the streaming.
    pub fn build(&self, ctx: SourceContext) -> Result<RunningSource, SourceError> {
        match self {
            SourceConfig::Replay(r) => r.build(ctx),
            #[cfg(feature = "serial")]
            SourceConfig::Serial(s) => s.build(ctx),
            #[cfg(feature = "ble")]
            SourceConfig::Ble(b) => b.build(ctx),
        }
    }
}
