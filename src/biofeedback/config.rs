//! `[beats]`: where the per-beat stream goes.

use serde::Deserialize;

/// `[beats]`: each confirmed heartbeat of each subject as its own message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeatsConfig {
    /// Publish every beat on `biofeedd/v1/{hub}/{subject}/beat` when `[mqtt]` is configured.
    pub mqtt: bool,
    /// Write every beat to stdout too, between the window lines (one or two lines a second per
    /// subject).
    pub stdout: bool,
}

impl Default for BeatsConfig {
    fn default() -> Self {
        BeatsConfig { mqtt: true, stdout: false }
    }
}
