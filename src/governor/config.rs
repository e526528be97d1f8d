//! `[governor]`: how often the governor samples the machine, where it reads, and the thresholds
//! of its two pressure levels.

use crate::bounds::{self, Bound};
use crate::diagnostic::Invalid;
use crate::key_path;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

/// `[governor]`: sampling and the pressure levels' thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernorConfig {
    /// Seconds between samples.
    #[serde(default = "default_interval")]
    pub interval_s: f64,
    /// Where sysfs is mounted: thermal zones are read under `class/thermal` (or, where that is
    /// absent, `devices/virtual/thermal`, as on a Jetson).
    #[serde(default = "default_sysfs_root")]
    pub sysfs_root: PathBuf,
    /// The cgroup v2 folder whose `cpu.max`, `cpu.stat`, `memory.max` and `memory.current` bound
    /// the daemon. When it holds no `cpu.max` (the host's root), the daemon's own cgroup under it
    /// (from `/proc/self/cgroup`) is read instead.
    #[serde(default = "default_cgroup_root")]
    pub cgroup_root: PathBuf,
    /// What puts the daemon under pressure.
    #[serde(default = "Thresholds::constrained", deserialize_with = "constrained")]
    pub constrained: Thresholds,
    /// What puts it under critical pressure; each at least as severe as `constrained`.
    #[serde(default = "Thresholds::critical", deserialize_with = "critical")]
    pub critical: Thresholds,
    /// A level is released only when every reading is this many percent of its threshold on the
    /// good side of it (below it; above it for available memory).
    #[serde(default = "default_release_margin")]
    pub release_margin_percent: f64,
    /// Consecutive samples a worse level must be seen before the governor switches up.
    #[serde(default = "default_rise_samples")]
    pub rise_samples: u32,
    /// The least time at a level, and the time the better level must hold without a break,
    /// before the governor steps down.
    #[serde(default = "default_dwell")]
    pub dwell_s: f64,
}

/// The readings that put the daemon at one pressure level; any one reaching its threshold does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The machine's CPU use (all cores), and the cgroup's CPU use against its quota.
    pub cpu_percent: f64,
    /// The daemon's own CPU use in percent of one core (200 = two cores busy).
    pub process_cpu_percent: f64,
    /// Available memory, lower is worse; the cgroup's memory use against its limit is compared
    /// with `100 - memory_available_percent`.
    pub memory_available_percent: f64,
    /// The hottest thermal zone.
    pub temp_c: f64,
    /// Windows that missed fusion's deadline, in percent of the windows closed since the last
    /// sample.
    pub deadline_miss_percent: f64,
}

impl Thresholds {
    /// The defaults of `[governor.constrained]`.
    pub fn constrained() -> Thresholds {
        Thresholds {
            cpu_percent: 75.0,
            process_cpu_percent: 150.0,
            memory_available_percent: 20.0,
            temp_c: 70.0,
            deadline_miss_percent: 5.0,
        }
    }

    /// The defaults of `[governor.critical]`.
    pub fn critical() -> Thresholds {
        Thresholds {
            cpu_percent: 92.0,
            process_cpu_percent: 185.0,
            memory_available_percent: 8.0,
            temp_c: 80.0,
            deadline_miss_percent: 20.0,
        }
    }

    /// Each threshold with its key, its bound and whether a higher reading is worse.
    fn keyed(&self) -> [(&'static str, Bound, f64, bool); 5] {
        [
            ("cpu_percent", bounds::SHARE_PERCENT, self.cpu_percent, true),
            ("process_cpu_percent", bounds::PROCESS_CPU_PERCENT, self.process_cpu_percent, true),
            ("memory_available_percent", bounds::SHARE_PERCENT, self.memory_available_percent, false),
            ("temp_c", bounds::TEMP_THRESHOLD_C, self.temp_c, true),
            ("deadline_miss_percent", bounds::SHARE_PERCENT, self.deadline_miss_percent, true),
        ]
    }
}

/// A thresholds table as written: the keys left out take the level's defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsTable {
    cpu_percent: Option<f64>,
    process_cpu_percent: Option<f64>,
    memory_available_percent: Option<f64>,
    temp_c: Option<f64>,
    deadline_miss_percent: Option<f64>,
}

impl ThresholdsTable {
    fn or(self, d: Thresholds) -> Thresholds {
        Thresholds {
            cpu_percent: self.cpu_percent.unwrap_or(d.cpu_percent),
            process_cpu_percent: self.process_cpu_percent.unwrap_or(d.process_cpu_percent),
            memory_available_percent: self.memory_available_percent.unwrap_or(d.memory_available_percent),
            temp_c: self.temp_c.unwrap_or(d.temp_c),
            deadline_miss_percent: self.deadline_miss_percent.unwrap_or(d.deadline_miss_percent),
        }
    }
}

fn constrained<'de, D: Deserializer<'de>>(d: D) -> Result<Thresholds, D::Error> {
    Ok(ThresholdsTable::deserialize(d)?.or(Thresholds::constrained()))
}
fn critical<'de, D: Deserializer<'de>>(d: D) -> Result<Thresholds, D::Error> {
    Ok(ThresholdsTable::deserialize(d)?.or(Thresholds::critical()))
}

fn default_interval() -> f64 {
    1.0
}
fn default_sysfs_root() -> PathBuf {
    PathBuf::from("/sys")
}
fn default_cgroup_root() -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
}
fn default_release_margin() -> f64 {
    10.0
}
fn default_rise_samples() -> u32 {
    2
}
fn default_dwell() -> f64 {
    10.0
}

impl Default for GovernorConfig {
    fn default() -> Self {
        GovernorConfig {
            interval_s: default_interval(),
            sysfs_root: default_sysfs_root(),
            cgroup_root: default_cgroup_root(),
            constrained: Thresholds::constrained(),
            critical: Thresholds::critical(),
            release_margin_percent: default_release_margin(),
            rise_samples: default_rise_samples(),
            dwell_s: default_dwell(),
        }
    }
}

impl GovernorConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        Invalid::bounded(key_path!["interval_s"], bounds::GOVERNOR_INTERVAL_S, self.interval_s)?;
        Invalid::bounded(
            key_path!["release_margin_percent"],
            bounds::RELEASE_MARGIN_PERCENT,
            self.release_margin_percent,
        )?;
        Invalid::bounded(key_path!["rise_samples"], bounds::RISE_SAMPLES, f64::from(self.rise_samples))?;
        Invalid::bounded(key_path!["dwell_s"], bounds::DWELL_S, self.dwell_s)?;
        for (level, t) in [("constrained", &self.constrained), ("critical", &self.critical)] {
            for (key, bound, value, _) in t.keyed() {
                Invalid::bounded(key_path![level, key], bound, value)?;
            }
        }
        for ((key, _, lower, higher_is_worse), (_, _, upper, _)) in
            self.constrained.keyed().into_iter().zip(self.critical.keyed())
        {
            let milder = if higher_is_worse { upper < lower } else { upper > lower };
            if milder {
                let worse = if higher_is_worse { "at least" } else { "at most" };
                return Err(Invalid::new(
                    key_path!["critical", key],
                    format!("the critical {key} {upper} is milder than the constrained {lower}"),
                )
                .help(format!("make critical.{key} {worse} constrained.{key}")));
            }
        }
        let release = self.constrained.memory_available_percent * (1.0 + self.release_margin_percent / 100.0);
        if release >= 100.0 {
            return Err(Invalid::new(
                key_path!["constrained", "memory_available_percent"],
                format!(
                    "with a {} % release margin, {} % available memory is never released (it needs more \
                     than {release} %)",
                    self.release_margin_percent, self.constrained.memory_available_percent
                ),
            )
            .help("lower constrained.memory_available_percent or release_margin_percent"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GovernorConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn an_empty_table_is_the_default_and_valid() {
        let c = parse("").unwrap();
        assert_eq!(c, GovernorConfig::default());
        assert_eq!(c.constrained, Thresholds::constrained());
        assert_eq!(c.critical.temp_c, 80.0);
        assert_eq!(c.sysfs_root, PathBuf::from("/sys"));
        c.validate().unwrap();
    }

    #[test]
    fn keys_left_out_of_a_level_take_that_levels_defaults() {
        let c = parse("dwell_s = 3\n[critical]\ntemp_c = 85\n[constrained]\ncpu_percent = 60\n").unwrap();
        assert_eq!(c.dwell_s, 3.0);
        assert_eq!(c.critical, Thresholds { temp_c: 85.0, ..Thresholds::critical() });
        assert_eq!(c.constrained, Thresholds { cpu_percent: 60.0, ..Thresholds::constrained() });
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused_in_every_table() {
        assert!(parse("interval = 1").unwrap_err().to_string().contains("interval"));
        assert!(parse("[critical]\ntemp = 1").unwrap_err().to_string().contains("temp"));
    }

    #[test]
    fn numbers_are_checked_against_their_bounds() {
        let bad = |c: GovernorConfig| c.validate().unwrap_err();
        let e = bad(GovernorConfig { interval_s: 0.01, ..Default::default() });
        assert_eq!(e.rendered_path(), "interval_s");
        assert!(e.message.contains("between 0.2 and 60 s"), "{}", e.message);
        let e = bad(GovernorConfig { rise_samples: 0, ..Default::default() });
        assert_eq!(e.rendered_path(), "rise_samples");
        let e = bad(GovernorConfig { dwell_s: f64::NAN, ..Default::default() });
        assert_eq!(e.rendered_path(), "dwell_s");
        let e = bad(GovernorConfig { release_margin_percent: -1.0, ..Default::default() });
        assert_eq!(e.rendered_path(), "release_margin_percent");
        let e = bad(GovernorConfig {
            constrained: Thresholds { temp_c: 200.0, ..Thresholds::constrained() },
            ..Default::default()
        });
        assert_eq!(e.rendered_path(), "constrained.temp_c");
        let e = bad(GovernorConfig {
            critical: Thresholds { cpu_percent: 0.0, ..Thresholds::critical() },
            ..Default::default()
        });
        assert_eq!(e.rendered_path(), "critical.cpu_percent");
    }

    #[test]
    fn critical_must_be_at_least_as_severe_as_constrained() {
        let c = GovernorConfig {
            critical: Thresholds { cpu_percent: 70.0, ..Thresholds::critical() },
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.rendered_path(), "critical.cpu_percent");
        assert_eq!(e.message, "the critical cpu_percent 70 is milder than the constrained 75");
        // Lower is worse for available memory: more than the constrained level is milder.
        let c = GovernorConfig {
            critical: Thresholds { memory_available_percent: 25.0, ..Thresholds::critical() },
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().rendered_path(), "critical.memory_available_percent");
        // Equal is allowed: the level goes straight to critical.
        let c = GovernorConfig { critical: Thresholds::constrained(), ..Default::default() };
        c.validate().unwrap();
    }

    #[test]
    fn available_memory_that_could_never_be_released_is_refused() {
        let c = GovernorConfig {
            constrained: Thresholds { memory_available_percent: 95.0, ..Thresholds::constrained() },
            critical: Thresholds { memory_available_percent: 90.0, ..Thresholds::critical() },
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().rendered_path(), "constrained.memory_available_percent");
    }
}
