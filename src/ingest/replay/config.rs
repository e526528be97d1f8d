//! `[sensor.source]` with `kind = "replay"`: what to read, how to read it and how fast to play it;
//! each field validated here, where it is defined.

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use crate::signal::Modality;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `[sensor.source]` with `kind = "replay"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// `csv` (one column per channel, header row), `e4` (an Empatica E4 export folder) or `wfdb`
    /// (a PhysioNet record: `path` is `FOLDER/RECORD` without extension).
    pub format: ReplayFormat,
    /// File (csv) or folder (e4), relative to the config file.
    pub path: PathBuf,
    /// csv: sampling rate of every column, in Hz (required unless `time_column` is given).
    pub rate_hz: Option<f64>,
    /// csv: column holding each row's time in seconds; rows further apart than 1.5 periods are a gap.
    pub time_column: Option<String>,
    /// csv: recording-clock time of the first row, unix seconds, or `"now"` to start at the host's
    /// wall clock as a live device would. Default 0.
    #[serde(default)]
    pub start_time: StartTime,
    /// csv: which columns to replay and what they are. e4: leave empty to take BVP, ACC, EDA, TEMP.
    #[serde(default)]
    pub channels: Vec<CsvChannel>,
    /// Replay speed: `1` is real time, `10` ten times faster, `"max"` as fast as the pipeline drains.
    #[serde(default)]
    pub speed: Speed,
    /// Samples are pushed in chunks spanning this many milliseconds, like a device's packets.
    #[serde(default = "default_chunk_ms")]
    pub chunk_ms: f64,
    /// What a malformed row does: `error` stops with its line and column, `skip` drops it and
    /// leaves a flagged gap.
    #[serde(default)]
    pub on_bad_row: OnBadRow,
}

fn default_chunk_ms() -> f64 {
    40.0
}

/// One replayed CSV column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvChannel {
    /// Header name of the column.
    pub column: String,
    /// Channel name in the pipeline; defaults to the column name in lower case.
    pub name: Option<String>,
    pub modality: Modality,
    /// Unit after `scale` is applied.
    pub unit: String,
    /// Multiply raw values by this (e.g. 1/64 for E4 accelerometer counts to g).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReplayFormat {
    #[default]
    Csv,
    E4,
    Wfdb,
    /// A BLE capture's Polar PMD streams (ours, or an h10_ecg `.bin` recording).
    Pmd,
    /// A BLE capture's Heart Rate service stream.
    Hrs,
}

impl FromStr for ReplayFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(ReplayFormat::Csv),
            "e4" => Ok(ReplayFormat::E4),
            "wfdb" => Ok(ReplayFormat::Wfdb),
            "pmd" => Ok(ReplayFormat::Pmd),
            "hrs" => Ok(ReplayFormat::Hrs),
            other => Err(format!("unknown replay format `{other}`; use `csv`, `e4`, `wfdb`, `pmd` or `hrs`")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    #[default]
    Error,
    Skip,
}

/// A config value that may be a number or a keyword (`speed = 5` or `speed = "max"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(f64),
    Text(String),
}

/// Recording-clock origin of a CSV without absolute times.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum StartTime {
    #[default]
    Zero,
    Unix(f64),
    /// The host wall clock when replay starts.
    Now,
}

impl<'de> Deserialize<'de> for StartTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(v) => Ok(StartTime::Unix(v)),
            NumberOrText::Text(s) if s == "now" => Ok(StartTime::Now),
            NumberOrText::Text(s) => {
                Err(serde::de::Error::custom(format!("start_time must be unix seconds or \"now\", not \"{s}\"")))
            }
        }
    }
}

/// How fast a recording is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Multiple of real time (1.0 = real time).
    Times(f64),
    /// As fast as the pipeline drains the rings.
    Max,
}

impl Default for Speed {
    fn default() -> Self {
        Speed::Times(1.0)
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Times(x) => write!(f, "{x}x"),
            Speed::Max => f.write_str("max"),
        }
    }
}

impl FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let x: f64 =
            s.trim_end_matches('x').parse().map_err(|_| format!("speed `{s}` is neither a number nor `max`"))?;
        bounds::REPLAY_SPEED.check(x).map(Speed::Times).map_err(|why| format!("speed {why}, or `max`"))
    }
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(v) => Speed::from_str(&v.to_string()),
            NumberOrText::Text(s) => Speed::from_str(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl ReplayConfig {
    /// A replay of an Empatica E4 export folder with every channel it has.
    pub fn e4(path: PathBuf) -> Self {
        ReplayConfig {
            format: ReplayFormat::E4,
            path,
            rate_hz: None,
            time_column: None,
            start_time: StartTime::Zero,
            channels: Vec::new(),
            speed: Speed::default(),
            chunk_ms: default_chunk_ms(),
            on_bad_row: OnBadRow::Error,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let at = |key: &'static str| key_path![key];
        Invalid::bounded(at("chunk_ms"), bounds::CHUNK_MS, self.chunk_ms)
            .map_err(|e| e.help("40 ms is typical of BLE and USB devices"))?;
        if let Speed::Times(x) = self.speed {
            Invalid::bounded(at("speed"), bounds::REPLAY_SPEED, x)
                .map_err(|e| e.help("or \"max\": as fast as the pipeline drains"))?;
        }
        if let StartTime::Unix(t) = self.start_time {
            Invalid::bounded(at("start_time"), bounds::UNIX_TIME_S, t)
                .map_err(|e| e.help("unix seconds, or \"now\""))?;
        }
        match self.format {
            ReplayFormat::Csv => {
                if self.channels.is_empty() {
                    return Err(Invalid::new(at("channels"), "a csv replay needs at least one channel")
                        .help("add e.g. channels = [{ column = \"ECG\", modality = \"ecg\", unit = \"mV\" }]"));
                }
                match (self.rate_hz, &self.time_column) {
                    (None, None) => {
                        return Err(Invalid::new(at("format"), "a csv replay needs `rate_hz` or `time_column`")
                            .help("add rate_hz = 100.0 (the rate every column was sampled at)"))
                    }
                    (Some(r), _) => {
                        Invalid::bounded(at("rate_hz"), bounds::SAMPLE_RATE_HZ, r)
                            .map_err(|e| e.help("the rate every column was sampled at"))?;
                    }
                    _ => {}
                }
            }
            ReplayFormat::E4 | ReplayFormat::Wfdb | ReplayFormat::Pmd | ReplayFormat::Hrs => {
                if !self.channels.is_empty() {
                    return Err(Invalid::new(
                        at("channels"),
                        "e4, wfdb, pmd and hrs replays take their channels from the recording",
                    )
                    .help("remove `channels`; the signals are read with their own names, rates and units"));
                }
            }
        }
        for (i, ch) in self.channels.iter().enumerate() {
            Invalid::scale(key_path!["channels", i, "scale"], ch.scale)?;
            let name = ch.channel_name();
            if self.channels[..i].iter().any(|c| c.channel_name() == name) {
                return Err(Invalid::new(key_path!["channels", i], format!("channel name `{name}` is used twice"))
                    .help("give one of them a distinct `name`"));
            }
        }
        Ok(())
    }
}

impl CsvChannel {
    pub fn channel_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.column.to_ascii_lowercase())
    }
}
