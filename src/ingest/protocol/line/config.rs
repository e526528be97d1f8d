//! `protocol = { type = "line", … }`: which columns of a text line are which channels, and how
//! each line is placed in time (a counter column, a timestamp column, or one line per period).

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use crate::signal::{ChannelSpec, Modality};
use serde::Deserialize;

/// The line protocol's table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Between fields: `","` (default), `"\t"`, `";"`, or `" "` (any run of spaces and tabs).
    #[serde(default)]
    pub separator: Separator,
    /// Lines per second the device sends; every channel has this rate.
    pub rate_hz: f64,
    /// The first non-blank, non-numeric line names the columns; channels may then name a column.
    #[serde(default)]
    pub header: bool,
    /// Which columns are channels.
    pub channels: Vec<LineChannel>,
    /// Column holding the device's sample counter; a jump is lost samples.
    pub counter_column: Option<Column>,
    /// Where the counter wraps to 0 (256 for a `uint8_t`); without it the counter never wraps.
    pub counter_modulus: Option<f64>,
    /// Column holding the device's time of each line, in `timestamp_unit`; sample index =
    /// round((t − first t) × rate_hz). Exclusive with `counter_column`.
    pub timestamp_column: Option<Column>,
    /// `"s"` (default), `"ms"` or `"us"`.
    #[serde(default)]
    pub timestamp_unit: TimestampUnit,
}

/// One channel read from a column: value = raw × `scale` + `offset`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LineChannel {
    /// 0-based column number, or the column's name in the header line (needs `header = true`).
    pub column: Column,
    /// Channel name; defaults to the column name in lower case, or `col<N>` for a number.
    pub name: Option<String>,
    pub modality: Modality,
    /// Unit after scaling.
    pub unit: String,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

/// A column by position or by header name.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Column {
    Index(usize),
    Name(String),
}

/// What separates the fields of a line.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum Separator {
    #[default]
    #[serde(rename = ",")]
    Comma,
    #[serde(rename = "\t")]
    Tab,
    #[serde(rename = ";")]
    Semicolon,
    /// Runs of spaces and tabs; leading and trailing blanks are ignored.
    #[serde(rename = " ")]
    Whitespace,
}

impl Separator {
    /// The byte an encoder writes between fields.
    pub fn byte(self) -> u8 {
        match self {
            Separator::Comma => b',',
            Separator::Tab => b'\t',
            Separator::Semicolon => b';',
            Separator::Whitespace => b' ',
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum TimestampUnit {
    #[default]
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "us")]
    Micros,
}

impl TimestampUnit {
    pub fn seconds(self) -> f64 {
        match self {
            TimestampUnit::Seconds => 1.0,
            TimestampUnit::Millis => 1e-3,
            TimestampUnit::Micros => 1e-6,
        }
    }
}

impl LineChannel {
    pub fn channel_name(&self) -> String {
        match (&self.name, &self.column) {
            (Some(n), _) => n.clone(),
            (None, Column::Name(c)) => c.to_ascii_lowercase(),
            (None, Column::Index(i)) => format!("col{i}"),
        }
    }
}

impl LineConfig {
    /// Check every field; paths are relative to the `protocol` table.
    pub fn validate(&self) -> Result<(), Invalid> {
        Invalid::bounded(key_path!["rate_hz"], bounds::SAMPLE_RATE_HZ, self.rate_hz)
            .map_err(|e| e.help("the number of lines the device sends per second"))?;
        if self.channels.is_empty() {
            return Err(Invalid::new(key_path!["channels"], "the line protocol needs at least one channel")
                .help("add e.g. channels = [{ column = 1, name = \"ecg\", modality = \"ecg\", unit = \"mV\" }]"));
        }
        let named = |c: &Column| matches!(c, Column::Name(_));
        for (i, ch) in self.channels.iter().enumerate() {
            Invalid::scale(key_path!["channels", i, "scale"], ch.scale)?;
            Invalid::bounded(key_path!["channels", i, "offset"], bounds::OFFSET, ch.offset)?;
            if named(&ch.column) && !self.header {
                return Err(Invalid::new(key_path!["channels", i, "column"], "a column named by text needs a header")
                    .help("set header = true, or give the 0-based column number"));
            }
            let name = ch.channel_name();
            if self.channels[..i].iter().any(|c| c.channel_name() == name) {
                return Err(Invalid::new(key_path!["channels", i], format!("channel name `{name}` is used twice"))
                    .help("give one of them a distinct `name`"));
            }
        }
        if self.counter_column.is_some() && self.timestamp_column.is_some() {
            return Err(Invalid::new(key_path!["timestamp_column"], "give a counter or a timestamp column, not both")
                .help("the counter is exact; keep `counter_column` if the device sends one"));
        }
        for (key, col) in [("counter_column", &self.counter_column), ("timestamp_column", &self.timestamp_column)] {
            if col.as_ref().is_some_and(named) && !self.header {
                return Err(Invalid::new(key_path![key], "a column named by text needs a header")
                    .help("set header = true, or give the 0-based column number"));
            }
        }
        if let Some(m) = self.counter_modulus {
            Invalid::bounded(key_path!["counter_modulus"], bounds::COUNTER_MODULUS, m)?;
            if m.fract() != 0.0 {
                return Err(Invalid::new(key_path!["counter_modulus"], format!("must be a whole number, not {m}"))
                    .help("256 for a counter that wraps as a uint8_t"));
            }
            if self.counter_column.is_none() {
                return Err(Invalid::new(key_path!["counter_modulus"], "`counter_modulus` needs `counter_column`"));
            }
        }
        Ok(())
    }

    /// One channel per `channels` entry, in order.
    pub fn specs(&self) -> Vec<ChannelSpec> {
        self.channels
            .iter()
            .map(|c| ChannelSpec::new(c.channel_name(), c.modality, c.unit.clone(), self.rate_hz))
            .collect()
    }
}
