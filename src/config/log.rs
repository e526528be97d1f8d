//! `[log]`: how much the daemon says. Reloaded on SIGHUP.

use crate::diagnostic::Invalid;
use crate::key_path;
use serde::Deserialize;

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
        self.level.parse::<tracing_subscriber::filter::Targets>().map(|_| ()).map_err(|e| {
            Invalid::new(key_path!["level"], format!("`{}` is not a log filter: {e}", self.level))
                .help("use error, warn, info, debug or trace, optionally with per-module directives (info,biofeedd::bridge=debug)")
        })
    }
}
