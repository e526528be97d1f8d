//! `[window]`: how each subject's streams are cut into windows.

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use serde::Deserialize;

/// `[window]`: how the stream is cut into windows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length in seconds. HRV and EDA features need tens of seconds.
    #[serde(default = "default_length")]
    pub length_s: f64,
    /// Seconds between the starts of consecutive windows; one feedback message per hop.
    #[serde(default = "default_hop")]
    pub hop_s: f64,
    /// A channel this far (recording seconds) behind the others is treated as stalled.
    #[serde(default = "default_stall")]
    pub stall_timeout_s: f64,
}

fn default_length() -> f64 {
    60.0
}
fn default_hop() -> f64 {
    5.0
}
fn default_stall() -> f64 {
    5.0
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig { length_s: default_length(), hop_s: default_hop(), stall_timeout_s: default_stall() }
    }
}

impl WindowConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        Invalid::bounded(key_path!["length_s"], bounds::WINDOW_S, self.length_s)?;
        Invalid::bounded(key_path!["hop_s"], bounds::WINDOW_S, self.hop_s)?;
        Invalid::bounded(key_path!["stall_timeout_s"], bounds::WINDOW_S, self.stall_timeout_s)?;
        if self.hop_s > self.length_s {
            return Err(Invalid::new(
                key_path!["hop_s"],
                format!(
                    "a {} s hop is longer than the {} s window: the samples between windows would be dropped",
                    self.hop_s, self.length_s
                ),
            )
            .help("make hop_s at most length_s (windows may overlap, never leave holes)"));
        }
        Ok(())
    }
}
