//! Find where a key path sits in TOML text, so semantic errors can name line and column.

use super::PathPart;
use toml::de::{DeTable, DeValue};

/// 1-based line and column of a place in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Location of a byte offset in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        Location { line, column: before[line_start..].chars().count() + 1 }
    }
}

/// Location of the deepest part of `path` that exists in `text` (the key itself when present,
/// else its table), or `None` when the text does not parse.
pub fn locate(text: &str, path: &[PathPart]) -> Option<Location> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut value: Option<&toml::Spanned<DeValue>> = None;
    let mut best = None;
    for part in path {
        match part {
            PathPart::Key(key) => {
                let t = match value.map(|v| v.get_ref()) {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    _ => break,
                };
                let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == *key) else { break };
                best = Some(k.span().start);
                table = t;
                value = Some(v);
            }
            PathPart::Index(i) => {
                let Some(DeValue::Array(items)) = value.map(|v| v.get_ref()) else { break };
                let Some(item) = items.get(*i) else { break };
                best = Some(item.span().start);
                value = Some(item);
            }
        }
    }
    best.map(|offset| Location::of_offset(text, offset))
}
