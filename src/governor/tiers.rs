//! `[tiers]`: each subject's latency tier — the deadline its windows are answered within, and
//! its place in the queue when offload capacity or the hub's CPU runs short.
//!
//! The design documents' three tiers: premium (15 ms), standard (25 ms), basic (50 ms), measured
//! from the arrival of a window's last sample to its answer. A subject not listed gets
//! `default`. Without a `[tiers]` table the local cascade keeps `[fusion] deadline_ms` (if any)
//! and offload still waits at most the default tier's deadline for a worker.

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A subject's latency tier, most demanding first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Premium,
    Standard,
    Basic,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Premium => "premium",
            Tier::Standard => "standard",
            Tier::Basic => "basic",
        }
    }

    /// The share of offload's in-flight bound a window of this tier may take: when workers fall
    /// behind, basic windows stop being sent first (at half the bound), premium ones last.
    pub fn offload_share(self) -> f64 {
        match self {
            Tier::Premium => 1.0,
            Tier::Standard => 0.75,
            Tier::Basic => 0.5,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[tiers.deadline_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierDeadlines {
    pub premium: f64,
    pub standard: f64,
    pub basic: f64,
}

impl Default for TierDeadlines {
    fn default() -> Self {
        TierDeadlines { premium: 15.0, standard: 25.0, basic: 50.0 }
    }
}

/// `[tiers]`: the deadlines and who is in which tier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersConfig {
    /// The tier of a subject not listed in `subjects`.
    #[serde(default = "standard")]
    pub default: Tier,
    #[serde(default)]
    pub deadline_ms: TierDeadlines,
    /// Subject id → tier.
    #[serde(default)]
    pub subjects: BTreeMap<String, Tier>,
}

fn standard() -> Tier {
    Tier::Standard
}

impl TiersConfig {
    /// The tiers as they are without a `[tiers]` table: everyone standard, default deadlines.
    pub fn standard() -> TiersConfig {
        TiersConfig { default: Tier::Standard, deadline_ms: TierDeadlines::default(), subjects: BTreeMap::new() }
    }

    pub fn tier(&self, subject: &str) -> Tier {
        self.subjects.get(subject).copied().unwrap_or(self.default)
    }

    pub fn deadline(&self, tier: Tier) -> Duration {
        let ms = match tier {
            Tier::Premium => self.deadline_ms.premium,
            Tier::Standard => self.deadline_ms.standard,
            Tier::Basic => self.deadline_ms.basic,
        };
        Duration::from_secs_f64(ms / 1000.0)
    }

    /// Each deadline in range and no tier's deadline shorter than a more demanding one's.
    /// `subjects` are the config's subjects: a tier given to a subject no sensor has is a typo.
    pub fn validate(&self, subjects: &[String]) -> Result<(), Invalid> {
        let d = &self.deadline_ms;
        let keyed = [("premium", d.premium), ("standard", d.standard), ("basic", d.basic)];
        for (key, ms) in keyed {
            Invalid::bounded(key_path!["deadline_ms", key], bounds::TIER_DEADLINE_MS, ms)?;
        }
        for pair in keyed.windows(2) {
            let ((tighter, a), (looser, b)) = (pair[0], pair[1]);
            if b < a {
                return Err(Invalid::new(
                    key_path!["deadline_ms", looser],
                    format!("the {looser} tier's {b} ms is tighter than the {tighter} tier's {a} ms"),
                )
                .help("premium ≤ standard ≤ basic: a better tier never waits longer"));
            }
        }
        for subject in self.subjects.keys() {
            if !subjects.contains(subject) {
                return Err(Invalid::new(key_path!["subjects"], format!("no [[sensor]] has subject `{subject}`"))
                    .help(format!("the configured subjects are {}", subjects.join(", "))));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> TiersConfig {
        toml::from_str(text).expect("tiers parse")
    }

    #[test]
    fn defaults_are_the_design_documents_tiers() {
        let t = parse("");
        assert_eq!(t, TiersConfig::standard());
        assert_eq!(t.tier("anyone"), Tier::Standard);
        assert_eq!(t.deadline(Tier::Premium), Duration::from_millis(15));
        assert_eq!(t.deadline(Tier::Standard), Duration::from_millis(25));
        assert_eq!(t.deadline(Tier::Basic), Duration::from_millis(50));
        assert!(Tier::Premium.offload_share() > Tier::Standard.offload_share());
        assert!(Tier::Standard.offload_share() > Tier::Basic.offload_share());
    }

    #[test]
    fn listed_subjects_get_their_tier_and_the_rest_the_default() {
        let t = parse("default = \"basic\"\n[subjects]\ns01 = \"premium\"\n[deadline_ms]\npremium = 10");
        assert_eq!((t.tier("s01"), t.tier("s02")), (Tier::Premium, Tier::Basic));
        assert_eq!(t.deadline(Tier::Premium), Duration::from_millis(10));
        t.validate(&["s01".into(), "s02".into()]).unwrap();
    }

    #[test]
    fn bad_tiers_are_refused_with_the_key() {
        let e = parse("[deadline_ms]\nstandard = 5").validate(&[]).unwrap_err();
        assert_eq!(e.rendered_path(), "deadline_ms.standard");
        assert!(e.to_string().contains("tighter than the premium"), "{e}");
        let e = parse("[deadline_ms]\nbasic = -1").validate(&[]).unwrap_err();
        assert_eq!(e.rendered_path(), "deadline_ms.basic");
        let e = parse("[subjects]\ns99 = \"premium\"").validate(&["s01".into()]).unwrap_err();
        assert!(e.to_string().contains("no [[sensor]] has subject `s99`"), "{e}");
        assert!(toml::from_str::<TiersConfig>("default = \"gold\"").is_err());
    }
}
