//! Config diagnostics: what a component says is wrong with its table, and where.
//!
//! Nearly a leaf (it imports only the leaf `bounds`), so every component can report problems
//! with its own
//! config without importing `config`, which imports every component. A component knows only its
//! own table: it reports key paths relative to it (`key_path!["chunk_ms"]`), and whoever placed the
//! table in the file adds the prefix (`.under(key_path!["sensor", 0, "source"])`). `config` then
//! turns the full path into a file:line:column. Numbers are checked against the shared rules in
//! `bounds` (a leaf too), so a config key says what a flag or a header line would say.

use crate::bounds::{self, Bound};
use std::fmt;

/// A semantic problem found after parsing, addressed by its TOML key path so it can be located.
#[derive(Debug)]
pub struct Invalid {
    pub path: Vec<PathPart>,
    pub message: String,
    pub help: Option<String>,
}

/// One step of a TOML key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    Key(&'static str),
    Index(usize),
}

impl Invalid {
    pub fn new(path: Vec<PathPart>, message: impl Into<String>) -> Self {
        Invalid { path, message: message.into(), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `value` at `path` if `bound` allows it; else a problem naming the key and the range.
    pub fn bounded(path: Vec<PathPart>, bound: Bound, value: f64) -> Result<f64, Invalid> {
        bound.check(value).map_err(|why| Invalid::new(path, why))
    }

    /// A channel's `scale` factor at `path`: its magnitude within [`bounds::SCALE`] (a negative
    /// factor flips the sign). One rule for every reader and decoder that scales raw values.
    pub fn scale(path: Vec<PathPart>, scale: f64) -> Result<f64, Invalid> {
        Invalid::bounded(path, bounds::SCALE, scale.abs())
            .map_err(|e| e.help("a factor such as 0.001 (µV → mV); negative flips the sign"))
    }

    /// The same problem seen from the table that holds this one: `prefix` goes in front.
    pub fn under(mut self, prefix: Vec<PathPart>) -> Self {
        self.path.splice(0..0, prefix);
        self
    }

    /// The key path as TOML writes it: `sensor[0].source.rate_hz`.
    pub fn rendered_path(&self) -> String {
        let mut out = String::new();
        for part in &self.path {
            match part {
                PathPart::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathPart::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rendered_path(), self.message)
    }
}

/// Shorthand for key paths: `key_path!["sensor", 0, "source"]`.
#[macro_export]
macro_rules! key_path {
    ($($part:expr),* $(,)?) => { vec![$($crate::diagnostic::IntoPathPart::into_part($part)),*] };
}

pub trait IntoPathPart {
    fn into_part(self) -> PathPart;
}

impl IntoPathPart for &'static str {
    fn into_part(self) -> PathPart {
        PathPart::Key(self)
    }
}

impl IntoPathPart for usize {
    fn into_part(self) -> PathPart {
        PathPart::Index(self)
    }
}

/// 1-based line and column of a place in a text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Location of a byte offset in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        Location { line, column: before[line_start..].chars().count() + 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_goes_in_front_and_renders_as_toml_writes_it() {
        let e = Invalid::new(key_path!["channels", 2, "scale"], "bad").under(key_path!["sensor", 0, "source"]);
        assert_eq!(e.rendered_path(), "sensor[0].source.channels[2].scale");
        assert_eq!(e.to_string(), "sensor[0].source.channels[2].scale: bad");
    }

    #[test]
    fn locations_count_lines_and_characters() {
        assert_eq!(Location::of_offset("ab\ncd", 4), Location { line: 2, column: 2 });
        assert_eq!(Location::of_offset("é\nx", 1), Location { line: 1, column: 1 }, "inside a character");
        assert_eq!(Location::of_offset("x", 99), Location { line: 1, column: 2 });
    }
}
