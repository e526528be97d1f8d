//! `[offload]`: which cascade stage may go to workers, how many requests may wait for them, and
//! (for `biofeedd worker`) the shared-subscription group workers join.
//!
//! Offload rides on `[mqtt]`'s broker, credentials and TLS, over MQTT 5 (response topics and
//! correlation data are MQTT 5 properties); whether it is used at a given moment is the
//! governor's `[policy]`.

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use serde::Deserialize;

/// `[offload]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffloadConfig {
    /// The cascade stage (0 = cheapest) sent to workers; absent: the last, heaviest one.
    pub stage: Option<usize>,
    /// Requests waiting for a reply at once; past it (by tier: see `[tiers]`) a window gets the
    /// hub's answer instead of being sent.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// The shared-subscription group of `biofeedd worker` (`$share/{group}/…`): workers in one
    /// group share the requests; two groups would each get every request.
    #[serde(default = "default_group")]
    pub group: String,
    /// For `biofeedd worker`: the hubs whose requests it takes — `+` (every hub) or one hub
    /// id, for a pool that serves one site (with an ACL to match; see docs/scaling.md).
    #[serde(default = "default_hubs")]
    pub hubs: String,
}

fn default_hubs() -> String {
    "+".into()
}

fn default_in_flight() -> usize {
    256
}

fn default_group() -> String {
    "biofeedd-workers".into()
}

impl Default for OffloadConfig {
    fn default() -> Self {
        OffloadConfig { stage: None, max_in_flight: default_in_flight(), group: default_group(), hubs: default_hubs() }
    }
}

impl OffloadConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        Invalid::bounded(key_path!["max_in_flight"], bounds::OFFLOAD_IN_FLIGHT, self.max_in_flight as f64)?;
        let level = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !level(&self.group) {
            return Err(Invalid::new(key_path!["group"], format!("`{}` is not a valid group name", self.group))
                .help("use 1 to 64 letters, digits, `-` and `_`; it becomes a level of `$share/{group}/…`"));
        }
        if self.hubs != "+" && !level(&self.hubs) {
            return Err(Invalid::new(key_path!["hubs"], format!("`{}` is neither `+` nor a hub id", self.hubs))
                .help("`+` serves every hub; a hub id (letters, digits, `-`, `_`) serves that one"));
        }
        Ok(())
    }
}
