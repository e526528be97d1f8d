//! Find where a key path sits in TOML text, so semantic errors can name line and column.

use crate::diagnostic::{Location, PathPart};
use toml::de::{DeTable, DeValue};

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
