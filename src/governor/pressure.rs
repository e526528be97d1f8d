//! The pressure level: a pure state machine over [`Reading`]s, with hysteresis and dwell.
//!
//! Each reading has a *candidate* level: the worst level one of whose thresholds any reading
//! meets. The governor goes up once a worse candidate was seen `rise_samples` samples in a row,
//! straight to it (normal → critical). It comes down one level at a time, and only after
//! `dwell_s` at its level with every reading clear of that level's thresholds by the release
//! margin for `dwell_s` without a break. A reading between the release line and the threshold
//! holds the level. Missing readings (no thermal zone, no cgroup quota) never trigger.

use super::config::{GovernorConfig, Thresholds};
use super::sample::Reading;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How hard the machine is pressed, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Normal,
    Constrained,
    Critical,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Normal, Level::Constrained, Level::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Constrained => "constrained",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s.trim())
            .ok_or_else(|| format!("`{s}` is not a pressure level; expected normal, constrained or critical"))
    }
}

/// A switch from one level to another and the reading that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub from: Level,
    pub to: Level,
    /// `temp 81.2 °C ≥ 80 °C (critical)`; down: `every reading below the constrained thresholds for 10 s`.
    pub reason: String,
}

/// The pressure level over time.
#[derive(Debug, Clone)]
pub struct Pressure {
    constrained: Thresholds,
    critical: Thresholds,
    /// The release margin as a fraction of a threshold.
    margin: f64,
    rise_samples: u32,
    dwell: Duration,
    level: Level,
    pinned: bool,
    /// When the current level was entered.
    since: Instant,
    /// Consecutive samples whose candidate was at least constrained, at least critical.
    streak: [u32; 2],
    /// Since when every reading has been clear of the constrained, the critical thresholds.
    calm_since: [Option<Instant>; 2],
}

impl Pressure {
    /// Starts at normal.
    pub fn new(config: &GovernorConfig, now: Instant) -> Pressure {
        Pressure {
            constrained: config.constrained,
            critical: config.critical,
            margin: config.release_margin_percent / 100.0,
            rise_samples: config.rise_samples.max(1),
            dwell: Duration::try_from_secs_f64(config.dwell_s).unwrap_or(Duration::ZERO),
            level: Level::Normal,
            pinned: false,
            since: now,
            streak: [0; 2],
            calm_since: [None; 2],
        }
    }

    /// New thresholds, margin, rise count and dwell (a reload); the level, its streaks and
    /// calm spells carry on, judged by the new values from the next reading.
    pub fn retune(&mut self, config: &GovernorConfig) {
        let fresh = Pressure::new(config, self.since);
        self.constrained = fresh.constrained;
        self.critical = fresh.critical;
        self.margin = fresh.margin;
        self.rise_samples = fresh.rise_samples;
        self.dwell = fresh.dwell;
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Holds `level` for good: `update` changes nothing any more (`--pressure`).
    pub fn pin(&mut self, level: Level) {
        self.level = level;
        self.pinned = true;
    }

    pub fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// Takes one reading; the change of level it caused, if any.
    pub fn update(&mut self, reading: &Reading, now: Instant) -> Option<Change> {
        if self.pinned {
            return None;
        }
        let levels = [(Level::Constrained, self.constrained), (Level::Critical, self.critical)];
        let mut trigger: [Option<Check>; 2] = [None, None];
        for (i, (_, thresholds)) in levels.iter().enumerate() {
            let checks = checks(reading, thresholds, self.margin);
            trigger[i] = checks.iter().find(|c| c.meets()).copied();
            let calm = checks.iter().all(|c| c.released());
            self.streak[i] = if trigger[i].is_some() { self.streak[i].saturating_add(1) } else { 0 };
            self.calm_since[i] = if calm { Some(self.calm_since[i].unwrap_or(now)) } else { None };
        }

        // Up: the worst level seen `rise_samples` times in a row, if worse than the current one.
        for i in [1, 0] {
            let (to, _) = levels[i];
            if to > self.level && self.streak[i] >= self.rise_samples {
                let check = trigger[i].expect("a streak ends with a trigger");
                return Some(self.switch(to, now, check.describe(to)));
            }
        }

        // Down: one level, after the dwell, with every reading clear of this level for the dwell.
        let i = match self.level {
            Level::Normal => return None,
            Level::Constrained => 0,
            Level::Critical => 1,
        };
        let calm_long_enough = self.calm_since[i].is_some_and(|t| now.saturating_duration_since(t) >= self.dwell);
        if calm_long_enough && now.saturating_duration_since(self.since) >= self.dwell {
            let to = Level::ALL[self.level as usize - 1];
            let reason = format!(
                "every reading below the {} thresholds for {} s",
                self.level,
                Rounded(self.dwell.as_secs_f64())
            );
            return Some(self.switch(to, now, reason));
        }
        None
    }

    fn switch(&mut self, to: Level, now: Instant, reason: String) -> Change {
        let change = Change { from: self.level, to, reason };
        self.level = to;
        self.since = now;
        change
    }
}

/// One reading against one threshold.
#[derive(Debug, Clone, Copy)]
struct Check {
    label: &'static str,
    unit: &'static str,
    value: f64,
    threshold: f64,
    /// The value must be on the good side of this to release the level.
    release: f64,
    higher_is_worse: bool,
}

impl Check {
    fn meets(&self) -> bool {
        if self.higher_is_worse {
            self.value >= self.threshold
        } else {
            self.value <= self.threshold
        }
    }

    fn released(&self) -> bool {
        if self.higher_is_worse {
            self.value < self.release
        } else {
            self.value > self.release
        }
    }

    fn describe(&self, level: Level) -> String {
        let op = if self.higher_is_worse { "≥" } else { "≤" };
        let (unit, value, threshold) = (self.unit, self.value, Rounded(self.threshold));
        format!("{} {value:.1} {unit} {op} {threshold} {unit} ({level})", self.label)
    }
}

/// The readings present in `r` against one level's thresholds; a missing or non-finite
/// reading is left out, so it can neither trigger nor hold a level.
fn checks(r: &Reading, t: &Thresholds, margin: f64) -> Vec<Check> {
    let higher = |label, unit, value: f32, threshold: f64| Check {
        label,
        unit,
        value: f64::from(value),
        threshold,
        release: threshold * (1.0 - margin),
        higher_is_worse: true,
    };
    let memory = t.memory_available_percent;
    [
        Some(higher("cpu", "%", r.cpu_percent, t.cpu_percent)),
        Some(higher("process cpu", "%", r.process_cpu_percent, t.process_cpu_percent)),
        Some(Check {
            label: "memory available",
            unit: "%",
            value: f64::from(r.memory_available_percent),
            threshold: memory,
            release: memory * (1.0 + margin),
            higher_is_worse: false,
        }),
        r.temp_c.map(|v| higher("temp", "°C", v, t.temp_c)),
        Some(higher("deadline misses", "%", r.deadline_miss_percent, t.deadline_miss_percent)),
        r.cgroup_cpu_percent.map(|v| higher("cgroup cpu of quota", "%", v, t.cpu_percent)),
        // Use against the limit, released like available memory: (100 - use) above its line.
        r.cgroup_memory_percent.map(|v| Check {
            release: 100.0 - memory * (1.0 + margin),
            ..higher("cgroup memory of limit", "%", v, 100.0 - memory)
        }),
    ]
    .into_iter()
    .flatten()
    .filter(|c| c.value.is_finite())
    .collect()
}

/// A number without float noise or a trailing `.0`: 80, 79.9, 0.3.
struct Rounded(f64);

impl fmt::Display for Rounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", (self.0 * 100.0).round() / 100.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reading far from every default threshold.
    pub(crate) fn calm() -> Reading {
        Reading {
            cpu_percent: 10.0,
            process_cpu_percent: 20.0,
            memory_available_percent: 60.0,
            process_rss_bytes: 50 << 20,
            load_1m_per_core: 0.2,
            temp_c: Some(45.0),
            zones: vec![],
            cgroup_cpu_percent: None,
            cgroup_memory_percent: None,
            deadline_miss_percent: 0.0,
            queue_depth: 0,
        }
    }

    fn hot(temp_c: f32) -> Reading {
        Reading { temp_c: Some(temp_c), ..calm() }
    }

    pub(crate) fn config(rise_samples: u32, dwell_s: f64) -> GovernorConfig {
        GovernorConfig { rise_samples, dwell_s, ..Default::default() }
    }

    fn at(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn levels_read_and_print_in_lowercase() {
        for l in Level::ALL {
            assert_eq!(l.to_string().parse::<Level>(), Ok(l));
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
        }
        assert!("Busy".parse::<Level>().unwrap_err().contains("expected normal, constrained or critical"));
        assert!(Level::Normal < Level::Constrained && Level::Constrained < Level::Critical);
    }

    #[test]
    fn going_up_needs_rise_samples_in_a_row() {
        let t0 = Instant::now();
        let mut p = Pressure::new(&config(3, 10.0), t0);
        assert_eq!(p.update(&hot(72.0), at(t0, 1.0)), None);
        assert_eq!(p.update(&hot(72.0), at(t0, 2.0)), None);
        assert_eq!(p.update(&calm(), at(t0, 3.0)), None, "a break starts the count again");
        assert_eq!(p.update(&hot(72.0), at(t0, 4.0)), None);
        assert_eq!(p.update(&hot(72.0), at(t0, 5.0)), None);
        let change = p.update(&hot(72.0), at(t0, 6.0)).unwrap();
        assert_eq!(change.from, Level::Normal);
        assert_eq!(change.to, Level::Constrained);
        assert_eq!(change.reason, "temp 72.0 °C ≥ 70 °C (constrained)");
        assert_eq!(p.level(), Level::Constrained);
    }

    #[test]
    fn a_critical_reading_jumps_straight_to_critical() {
        let t0 = Instant::now();
        let mut p = Pressure::new(&config(2, 10.0), t0);
        assert_eq!(p.update(&hot(81.2), at(t0, 1.0)), None);
        let change = p.update(&hot(81.2), at(t0, 2.0)).unwrap();
        assert_eq!((change.from, change.to), (Level::Normal, Level::Critical));
        assert_eq!(change.reason, "temp 81.2 °C ≥ 80 °C (critical)");
        // Memory is lower-is-worse; the cgroup's memory use is compared with 100 - available.
        let mut p = Pressure::new(&config(1, 10.0), t0);
        let low = Reading { memory_available_percent: 7.5, ..calm() };
        assert_eq!(p.update(&low, at(t0, 1.0)).unwrap().reason, "memory available 7.5 % ≤ 8 % (critical)");
        let mut p = Pressure::new(&config(1, 10.0), t0);
        let full = Reading { cgroup_memory_percent: Some(85.0), ..calm() };
        assert_eq!(p.update(&full, at(t0, 1.0)).unwrap().reason, "cgroup memory of limit 85.0 % ≥ 80 % (constrained)");
        // Constrained then critical in a row: the milder level first.
        let mut p = Pressure::new(&config(2, 10.0), t0);
        assert_eq!(p.update(&hot(72.0), at(t0, 1.0)), None);
        assert_eq!(p.update(&hot(85.0), at(t0, 2.0)).unwrap().to, Level::Constrained);
        assert_eq!(p.update(&hot(85.0), at(t0, 3.0)).unwrap().to, Level::Critical);
    }

    #[test]
    fn no_release_before_the_dwell_and_one_level_at_a_time() {
        let t0 = Instant::now();
        let mut p = Pressure::new(&config(1, 10.0), t0);
        assert_eq!(p.update(&hot(85.0), at(t0, 0.0)).unwrap().to, Level::Critical);
        // Calm from 1 s on: not before 10 s at critical and 10 s of calm.
        for s in 1..11 {
            assert_eq!(p.update(&calm(), at(t0, s as f64)), None, "at {s} s");
        }
        let change = p.update(&calm(), at(t0, 11.0)).unwrap();
        assert_eq!((change.from, change.to), (Level::Critical, Level::Constrained));
        assert_eq!(change.reason, "every reading below the critical thresholds for 10 s");
        // Calm all along, but another 10 s at constrained first.
        for s in 12..21 {
            assert_eq!(p.update(&calm(), at(t0, s as f64)), None, "at {s} s");
        }
        let change = p.update(&calm(), at(t0, 21.0)).unwrap();
        assert_eq!((change.from, change.to), (Level::Constrained, Level::Normal));
        assert_eq!(change.reason, "every reading below the constrained thresholds for 10 s");
    }

    #[test]
    fn a_reading_between_the_release_line_and_the_threshold_holds_the_level() {
        let t0 = Instant::now();
        let mut p = Pressure::new(&config(1, 2.0), t0);
        assert_eq!(p.update(&hot(75.0), at(t0, 0.0)).unwrap().to, Level::Constrained);
        // 64 °C is under 70 °C but not 10 % under it (63 °C): held, however long.
        for s in 1..30 {
            assert_eq!(p.update(&hot(64.0), at(t0, s as f64)), None);
        }
        // A blip above the release line restarts the calm.
        assert_eq!(p.update(&hot(62.0), at(t0, 30.0)), None);
        assert_eq!(p.update(&hot(64.0), at(t0, 31.0)), None);
        assert_eq!(p.update(&hot(62.0), at(t0, 32.0)), None);
        assert_eq!(p.update(&hot(62.0), at(t0, 33.0)), None);
        assert_eq!(p.update(&hot(62.0), at(t0, 34.0)).unwrap().to, Level::Normal);
        // Available memory releases above its threshold by the margin: 21 % holds, 23 % frees.
        let mut p = Pressure::new(&config(1, 0.0), t0);
        let memory = |m: f32| Reading { memory_available_percent: m, ..calm() };
        assert_eq!(p.update(&memory(19.0), t0).unwrap().to, Level::Constrained);
        assert_eq!(p.update(&memory(21.0), at(t0, 1.0)), None);
        assert_eq!(p.update(&memory(23.0), at(t0, 2.0)).unwrap().to, Level::Normal);
    }

    #[test]
    fn missing_readings_never_trigger_nor_hold() {
        let t0 = Instant::now();
        let mut p = Pressure::new(&config(1, 0.0), t0);
        let blank = Reading { temp_c: None, cpu_percent: f32::NAN, ..calm() };
        for s in 0..5 {
            assert_eq!(p.update(&blank, at(t0, s as f64)), None);
        }
        assert_eq!(p.update(&hot(90.0), at(t0, 5.0)).unwrap().to, Level::Critical);
        assert_eq!(p.update(&blank, at(t0, 6.0)).unwrap().to, Level::Constrained);
        assert_eq!(p.update(&blank, at(t0, 7.0)).unwrap().to, Level::Normal);
    }

    #[test]
    fn a_pinned_level_never_changes() {
        let t0 = Instant::now();
        let mut p = Pressure::new(&config(1, 0.0), t0);
        p.pin(Level::Constrained);
        assert!(p.is_pinned());
        for s in 0..5 {
            assert_eq!(p.update(&hot(95.0), at(t0, s as f64)), None);
            assert_eq!(p.update(&calm(), at(t0, s as f64 + 100.0)), None);
        }
        assert_eq!(p.level(), Level::Constrained);
    }
}
