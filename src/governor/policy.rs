//! `[policy]`: what the pipeline does at each pressure level, and the [`Plan`] that carries it
//! to the pipeline thread.
//!
//! The default is the design documents' ladder: normal runs the full cascade here; constrained
//! switches every stage that has one to its int8 variant and offloads the heavy stage;
//! critical runs only the cheapest stage here, offloads the heavy one, and sheds what is not
//! feedback — the metrics report's per-stage detail, and offload for basic-tier subjects (their
//! windows get the cheap local answer, leaving the workers and the link to the better tiers).

use super::pressure::Level;
use crate::diagnostic::Invalid;
use crate::fusion::Variant;
use crate::key_path;
use serde::Deserialize;

/// Work that can be dropped under pressure, in the order it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shed {
    /// The `metrics` report keeps its counters but drops per-stage latency and exits.
    MetricsDetail,
    /// Basic-tier subjects stop offloading; they get the stages run here.
    BasicOffload,
}

/// What to do at one pressure level.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelPolicy {
    /// The variant every stage that has it runs (the others keep theirs); absent: the variants
    /// the run started with (`[fusion] variant`, or each stage's first).
    pub variant: Option<Variant>,
    /// Hand the `[offload] stage` to workers when the cascade reaches it. Without `[offload]`
    /// the stage runs here (if `local_stages` allows).
    #[serde(default)]
    pub offload: bool,
    /// Run only the first this-many stages here (at least 1); absent: all of them.
    pub local_stages: Option<usize>,
    #[serde(default)]
    pub shed: Vec<Shed>,
}

/// `[policy]`: one [`LevelPolicy`] per level.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "LevelPolicy::normal")]
    pub normal: LevelPolicy,
    #[serde(default = "LevelPolicy::constrained")]
    pub constrained: LevelPolicy,
    #[serde(default = "LevelPolicy::critical")]
    pub critical: LevelPolicy,
}

impl LevelPolicy {
    pub fn normal() -> LevelPolicy {
        LevelPolicy::default()
    }

    pub fn constrained() -> LevelPolicy {
        LevelPolicy { variant: Some(Variant::Int8), offload: true, local_stages: None, shed: Vec::new() }
    }

    pub fn critical() -> LevelPolicy {
        LevelPolicy {
            variant: Some(Variant::Int8),
            offload: true,
            local_stages: Some(1),
            shed: vec![Shed::MetricsDetail, Shed::BasicOffload],
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            normal: LevelPolicy::normal(),
            constrained: LevelPolicy::constrained(),
            critical: LevelPolicy::critical(),
        }
    }
}

/// The governor's decision as the pipeline and the output task apply it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub level: Level,
    pub variant: Option<Variant>,
    pub offload: bool,
    pub local_stages: Option<usize>,
    pub shed: Vec<Shed>,
}

impl Plan {
    pub fn sheds(&self, what: Shed) -> bool {
        self.shed.contains(&what)
    }
}

impl PolicyConfig {
    pub fn plan(&self, level: Level) -> Plan {
        let p = match level {
            Level::Normal => &self.normal,
            Level::Constrained => &self.constrained,
            Level::Critical => &self.critical,
        };
        Plan { level, variant: p.variant, offload: p.offload, local_stages: p.local_stages, shed: p.shed.clone() }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        for level in Level::ALL {
            let p = self.plan(level);
            if p.local_stages == Some(0) {
                let key = level.as_str();
                return Err(Invalid::new(
                    key_path![key, "local_stages"],
                    "0 stages here leaves nothing to answer with",
                )
                .help("at least 1: the cheapest stage always runs on the hub, so a late worker has a fallback"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ladder_gets_lighter_with_pressure() {
        let p = PolicyConfig::default();
        let (n, c, k) = (p.plan(Level::Normal), p.plan(Level::Constrained), p.plan(Level::Critical));
        assert_eq!((n.variant, n.offload, n.local_stages), (None, false, None));
        assert_eq!((c.variant, c.offload, c.local_stages), (Some(Variant::Int8), true, None));
        assert_eq!((k.variant, k.offload, k.local_stages), (Some(Variant::Int8), true, Some(1)));
        assert!(k.sheds(Shed::MetricsDetail) && k.sheds(Shed::BasicOffload) && !c.sheds(Shed::BasicOffload));
        assert_eq!(toml::from_str::<PolicyConfig>("").unwrap(), p);
    }

    #[test]
    fn a_level_can_be_rewritten_and_bad_ones_are_refused() {
        let p: PolicyConfig =
            toml::from_str("[constrained]\nvariant = \"pruned\"\nshed = [\"metrics_detail\"]").unwrap();
        let c = p.plan(Level::Constrained);
        assert_eq!(
            (c.variant, c.offload, c.shed.as_slice()),
            (Some(Variant::Pruned), false, &[Shed::MetricsDetail][..])
        );
        let p: PolicyConfig = toml::from_str("[critical]\nlocal_stages = 0").unwrap();
        let e = p.validate().unwrap_err();
        assert_eq!(e.rendered_path(), "critical.local_stages");
        assert!(toml::from_str::<PolicyConfig>("[critical]\nshed = [\"everything\"]").is_err());
        assert!(toml::from_str::<PolicyConfig>("[busy]\noffload = true").is_err());
    }
}
