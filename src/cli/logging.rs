//! Logging to stderr through a filter that a reload (SIGHUP) can replace.
//!
//! The filter comes from `BIOFEEDD_LOG` when it is set (it then wins over the config, at start
//! and at every reload), else from the config's `[log] level`, else `info`.

use biofeedd::config::parse_filter;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, Registry};

const ENV: &str = "BIOFEEDD_LOG";

static FILTER: OnceLock<reload::Handle<Targets, Registry>> = OnceLock::new();

pub fn init() {
    let from_env = std::env::var(ENV).ok();
    let filter = from_env.as_deref().and_then(|f| parse_filter(f).ok()).unwrap_or_else(default_filter);
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                // Colour codes only for a person at a terminal, never in a log file or a pipe.
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    let _ = FILTER.set(handle);
    if let Some(bad) = from_env.filter(|f| parse_filter(f).is_err()) {
        tracing::warn!(
            "{ENV}=`{bad}` is not a log filter (e.g. `debug`, `info,biofeedd::bridge=debug`); logging at info"
        );
    }
}

fn default_filter() -> Targets {
    Targets::new().with_default(tracing::Level::INFO)
}

/// Filter by the config's `[log] level` from now on, unless `BIOFEEDD_LOG` pins the filter.
/// Returns what was done, for the log.
pub fn set_level(level: &str) -> String {
    if let Some(pinned) = std::env::var(ENV).ok().filter(|f| parse_filter(f).is_ok()) {
        return format!("log filter stays `{pinned}`: {ENV} is set and wins over [log] level");
    }
    let Some(handle) = FILTER.get() else { return "logging is not set up".into() };
    // The config validated the filter; a failure here would be a bug, reported all the same.
    let result = parse_filter(level).and_then(|filter| handle.reload(filter).map_err(|e| e.to_string()));
    match result {
        Ok(()) => format!("log filter `{level}`"),
        Err(e) => format!("log filter unchanged: `{level}`: {e}"),
    }
}
