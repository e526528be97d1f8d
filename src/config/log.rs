//! `[log]`: how much the daemon says. Reloaded on SIGHUP.

use crate::diagnostic::Invalid;
use crate::key_path;
use serde::Deserialize;
use tracing_subscriber::filter::{LevelFilter, Targets};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`), optionally with
    /// levels per module (`info,biofeedd::bridge=debug`). `BIOFEEDD_LOG` in the environment wins.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: default_level() }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        parse_filter(&self.level).map(|_| ()).map_err(|e| {
            Invalid::new(key_path!["level"], format!("`{}` is not a log filter: {e}", self.level))
                .help("use error, warn, info, debug, trace or off, optionally with levels per module (info,biofeedd::bridge=debug)")
        })
    }
}

/// A filter from `level` or `level,module=level,…`. Stricter than `Targets`' own parser, which
/// takes a misspelt level (`warning`, `inof`) for a module name and so silences everything;
/// without a bare level, other modules log at `info`.
pub fn parse_filter(text: &str) -> Result<Targets, String> {
    let level = |s: &str| s.trim().parse::<LevelFilter>().map_err(|_| format!("`{}` is not a level", s.trim()));
    let mut filter = Targets::new();
    let mut default = None;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((module, l)) if !module.trim().is_empty() => filter = filter.with_target(module.trim(), level(l)?),
            Some(_) => return Err(format!("`{part}` names no module")),
            None if default.is_none() => default = Some(level(part)?),
            None => return Err(format!("two default levels (`{part}`)")),
        }
    }
    Ok(filter.with_default(default.unwrap_or(LevelFilter::INFO)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn levels_and_modules_parse_and_typos_are_refused() {
        let f = parse_filter("warn,biofeedd::bridge=debug").unwrap();
        assert!(f.would_enable("biofeedd::bridge::link", &Level::DEBUG));
        assert!(!f.would_enable("biofeedd::daemon", &Level::INFO));
        assert!(parse_filter("biofeedd=debug").unwrap().would_enable("rumqttc", &Level::INFO));
        for bad in ["warning", "inof", "info,debug", "=debug", "biofeedd=loud"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
