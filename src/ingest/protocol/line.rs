//! The line protocol: one text line per sample instant, fields separated by a comma, tab,
//! semicolon or blanks, as an Arduino or ESP32 sketch prints them with `Serial.println`.
//!
//! Tolerates `\r\n`, blank lines, a header line (read again whenever the device reprints it) and
//! a partial first line: the bytes before a connection's first newline are dropped without an
//! error, since the port may open mid-line (unless they form the header). A line that cannot be
//! read (a field that is not a finite number, a missing column, a data line before the header
//! that names the columns) is one decode error. A line longer than [`MAX_LINE`] bytes is one
//! error and is discarded up to the next newline, so memory stays bounded whatever arrives.

mod config;
#[cfg(test)]
mod tests;

pub use config::{Column, LineChannel, LineConfig, Separator, TimestampUnit};

use super::delimited::Delimited;
use super::{Decoded, Decoder};
use crate::signal::ChannelSpec;
use std::io::Write;

/// Longest line kept, in bytes, without its newline.
pub const MAX_LINE: usize = 4096;
/// Largest device sample index (2^53): counters and timestamps past it are refused, so index
/// arithmetic can never overflow.
const MAX_INDEX: f64 = 9_007_199_254_740_992.0;
const UNRESOLVED: usize = usize::MAX;

impl LineConfig {
    /// A fresh decoder for one connection.
    pub fn decoder(&self) -> LineDecoder {
        LineDecoder { specs: self.specs(), lines: Delimited::new(b'\n', MAX_LINE), parser: LineParser::new(self) }
    }

    /// The config that reads what [`encode_line`] writes: the counter in column 0 (wrapping at
    /// `counter_modulus` if given), then one column per spec, at the first spec's rate.
    pub fn for_encoder(specs: &[ChannelSpec], separator: Separator, counter_modulus: Option<u64>) -> LineConfig {
        LineConfig {
            separator,
            rate_hz: specs.first().map_or(1.0, |s| s.rate_hz),
            header: false,
            channels: specs
                .iter()
                .enumerate()
                .map(|(i, s)| LineChannel {
                    column: Column::Index(i + 1),
                    name: Some(s.name.clone()),
                    modality: s.modality,
                    unit: s.unit.clone(),
                    scale: 1.0,
                    offset: 0.0,
                })
                .collect(),
            counter_column: Some(Column::Index(0)),
            counter_modulus: counter_modulus.map(|m| m as f64),
            timestamp_column: None,
            timestamp_unit: TimestampUnit::Seconds,
        }
    }
}

/// Write one line as a device would: `counter`, then each value, separated by `separator`, and
/// a newline. Values are written in Rust's shortest exact form, so they read back unchanged.
pub fn encode_line(counter: u64, values: &[f64], separator: Separator, out: &mut Vec<u8>) {
    let sep = separator.byte();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{counter}");
    for v in values {
        out.push(sep);
        let _ = write!(out, "{v}");
    }
    out.push(b'\n');
}

/// Decodes text lines into samples; see the module docs.
pub struct LineDecoder {
    specs: Vec<ChannelSpec>,
    lines: Delimited,
    parser: LineParser,
}

/// What reads one complete line, apart from the line assembly so both can be borrowed.
struct LineParser {
    cfg: LineConfig,
    /// Column of each channel, then counter, then timestamp; [`UNRESOLVED`] until a header names it.
    cols: Vec<usize>,
    resolved: bool,
    /// (start, end) of each field of the current line.
    fields: Vec<(usize, usize)>,
    /// The current line's values, scaled (each within f32's range).
    raw: Vec<f64>,
    /// Previous line's counter or time, and its sample index.
    last: Option<(f64, u64)>,
    first_time: f64,
    /// Counter of a line refused for an implausible jump, which the next line may confirm.
    suspect: Option<f64>,
}

impl LineParser {
    fn new(cfg: &LineConfig) -> Self {
        let index_of = |c: &Column| match c {
            Column::Index(i) => *i,
            Column::Name(_) => UNRESOLVED,
        };
        let mut cols: Vec<usize> = cfg.channels.iter().map(|c| index_of(&c.column)).collect();
        cols.push(cfg.counter_column.as_ref().map_or(UNRESOLVED, index_of));
        cols.push(cfg.timestamp_column.as_ref().map_or(UNRESOLVED, index_of));
        let resolved = !cfg.header || !Self::names(cfg).any(|_| true);
        LineParser {
            raw: Vec::with_capacity(cfg.channels.len()),
            fields: Vec::with_capacity(cfg.channels.len() + 2),
            cols,
            resolved,
            last: None,
            first_time: 0.0,
            suspect: None,
            cfg: cfg.clone(),
        }
    }

    /// Every column the config names by text, with its position in `cols`.
    fn names(cfg: &LineConfig) -> impl Iterator<Item = (usize, &str)> {
        let extra = [cfg.counter_column.as_ref(), cfg.timestamp_column.as_ref()];
        cfg.channels.iter().map(|c| Some(&c.column)).chain(extra).enumerate().filter_map(|(k, c)| match c {
            Some(Column::Name(s)) => Some((k, s.as_str())),
            _ => None,
        })
    }

    fn split(&mut self, line: &[u8]) {
        self.fields.clear();
        if self.cfg.separator == Separator::Whitespace {
            let mut start = None;
            for (i, &b) in line.iter().enumerate() {
                match (b == b' ' || b == b'\t', start) {
                    (true, Some(s)) => {
                        self.fields.push((s, i));
                        start = None;
                    }
                    (false, None) => start = Some(i),
                    _ => {}
                }
            }
            if let Some(s) = start {
                self.fields.push((s, line.len()));
            }
        } else {
            let sep = self.cfg.separator.byte();
            let mut start = 0;
            for (i, &b) in line.iter().enumerate() {
                if b == sep {
                    self.fields.push((start, i));
                    start = i + 1;
                }
            }
            self.fields.push((start, line.len()));
        }
    }

    fn field<'a>(&self, line: &'a [u8], col: usize) -> Option<&'a [u8]> {
        self.fields.get(col).map(|&(s, e)| line[s..e].trim_ascii())
    }

    fn number(&self, line: &[u8], col: usize) -> Option<f64> {
        let text = std::str::from_utf8(self.field(line, col)?).ok()?;
        text.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// If `line` (already split) is the header, take the columns it names.
    fn read_header(&mut self, line: &[u8]) -> bool {
        if !self.cfg.header {
            return false;
        }
        let numeric = (0..self.fields.len()).all(|c| self.number(line, c).is_some());
        if numeric {
            return false;
        }
        let mut found = Vec::new();
        for (k, name) in Self::names(&self.cfg) {
            match (0..self.fields.len()).find(|&c| self.field(line, c) == Some(name.as_bytes())) {
                Some(c) => found.push((k, c)),
                None => return false,
            }
        }
        for (k, c) in found {
            self.cols[k] = c;
        }
        self.resolved = true;
        true
    }

    /// The line's sample index from its counter, its time or the line count, with the samples
    /// it says were lost; `None` if the counter or time cannot be used.
    fn index(&mut self, line: &[u8]) -> Option<(u64, u64)> {
        let n = self.cfg.channels.len();
        let (counter_col, time_col) = (self.cols[n], self.cols[n + 1]);
        if self.cfg.counter_column.is_some() {
            let c = self.number(line, counter_col)?;
            let modulus = self.cfg.counter_modulus.unwrap_or(MAX_INDEX);
            if c < 0.0 || c.fract() != 0.0 || c >= modulus {
                return None;
            }
            let Some((prev, prev_index)) = self.last else {
                self.last = Some((c, 0));
                return Some((0, 0));
            };
            // A counter that repeats or goes back (a device restart without modulus) starts a new
            // run at the same index; the transport decides what that means.
            let step =
                if c > prev || self.cfg.counter_modulus.is_some() { (c - prev).rem_euclid(modulus) } else { 0.0 };
            // A jump of more than 10 s of samples is more likely garbage glued to the counter
            // ("7" + "123" = 7123) than a real loss: refused, unless the next line continues
            // from it, as a device that really jumped would.
            let plausible = (self.cfg.rate_hz * 10.0).max(1000.0);
            let confirmed = self.suspect.is_some_and(|s| (c - s).rem_euclid(modulus) == 1.0);
            if step > plausible && !confirmed {
                self.suspect = Some(c);
                return None;
            }
            self.suspect = None;
            let index = prev_index.saturating_add(step as u64);
            self.last = Some((c, index));
            return Some((index, (step as u64).saturating_sub(1)));
        }
        if self.cfg.timestamp_column.is_some() {
            let t = self.number(line, time_col)? * self.cfg.timestamp_unit.seconds();
            let Some((_, prev_index)) = self.last else {
                self.first_time = t;
                self.last = Some((t, 0));
                return Some((0, 0));
            };
            let at = ((t - self.first_time) * self.cfg.rate_hz).round();
            if !(0.0..MAX_INDEX).contains(&at) {
                return None;
            }
            let index = at as u64;
            self.last = Some((t, index));
            return Some((index, index.saturating_sub(prev_index.saturating_add(1))));
        }
        let index = self.last.map_or(0, |(_, i)| i + 1);
        self.last = Some((0.0, index));
        Some((index, 0))
    }

    /// One complete line without its newline.
    fn line(&mut self, line: &[u8], first: bool, out: &mut Decoded) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.trim_ascii().is_empty() {
            return;
        }
        self.split(line);
        if self.resolved && !first && self.data(line, out) {
            return;
        }
        if !self.read_header(line) && !first {
            out.decode_errors += 1;
        }
    }

    /// Decode a data line; false (and nothing emitted) if it is not one.
    fn data(&mut self, line: &[u8], out: &mut Decoded) -> bool {
        self.raw.clear();
        for k in 0..self.cfg.channels.len() {
            let (scale, offset) = (self.cfg.channels[k].scale, self.cfg.channels[k].offset);
            // A number past f32's range (a run of digits glued on by noise) would be an infinite
            // sample: the line is not data.
            let scaled = self.number(line, self.cols[k]).map(|raw| raw * scale + offset);
            match scaled.filter(|v| (*v as f32).is_finite()) {
                Some(v) => self.raw.push(v),
                None => return false,
            }
        }
        let saved = self.last;
        let Some((index, lost)) = self.index(line) else {
            self.last = saved;
            return false;
        };
        out.lost_samples = out.lost_samples.saturating_add(lost);
        for (&v, samples) in self.raw.iter().zip(&mut out.channels) {
            samples.push(index, v as f32);
        }
        true
    }
}

impl Decoder for LineDecoder {
    fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    fn push(&mut self, bytes: &[u8], out: &mut Decoded) {
        out.fit(self.specs.len());
        let parser = &mut self.parser;
        self.lines.push(bytes, out, |line, first, out| parser.line(line, first, out));
    }

    fn finish(&mut self, out: &mut Decoded) {
        if self.lines.finish(|line| !line.trim_ascii().is_empty()) {
            out.decode_errors += 1;
        }
    }

    fn reset(&mut self) {
        self.lines.reset();
        // A new connection starts as a fresh decoder would: counters and the columns a header
        // named are forgotten (a device that reboots prints its header again).
        self.parser = LineParser::new(&self.parser.cfg);
    }
}
