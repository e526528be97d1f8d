//! The allowed range of every number that enters from outside — a command-line flag, a
//! recording's header line, a config key, a model manifest — in one place, so a new input
//! reuses a rule instead of skipping one.
//!
//! A [`Bound`] checks finiteness, sign and range and says what was wrong in words a user can act
//! on ("must be more than 0 and at most 100000 Hz, not -5"); the caller adds where the number
//! came from (the flag, the file and line, the key path). A leaf module: it imports nothing.

use std::fmt;

/// A closed or half-open interval of acceptable values, with the unit they are in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub min: f64,
    pub max: f64,
    /// `min` itself is refused (e.g. a rate of 0 Hz).
    pub min_excluded: bool,
    /// Unit for messages, e.g. `Hz`, `s`; empty for plain numbers.
    pub unit: &'static str,
}

impl Bound {
    /// `(min, max]`: more than `min`, at most `max`.
    pub const fn above(min: f64, max: f64, unit: &'static str) -> Bound {
        Bound { min, max, min_excluded: true, unit }
    }

    /// `[min, max]`.
    pub const fn within(min: f64, max: f64, unit: &'static str) -> Bound {
        Bound { min, max, min_excluded: false, unit }
    }

    pub fn contains(&self, v: f64) -> bool {
        v.is_finite() && v <= self.max && (v > self.min || (!self.min_excluded && v == self.min))
    }

    /// `v` if it is allowed; else what is wrong with it and what is allowed.
    pub fn check(&self, v: f64) -> Result<f64, String> {
        if self.contains(v) {
            Ok(v)
        } else if v.is_nan() {
            Err(format!("must be a number {self}, not NaN"))
        } else {
            Err(format!("must be {self}, not {}", Shown(v, self.unit)))
        }
    }

    /// Parse text (a flag's value, a header field) and check it.
    pub fn parse(&self, text: &str) -> Result<f64, String> {
        let v: f64 =
            text.trim().parse().map_err(|_| format!("`{}` is not a number; it must be {self}", text.trim()))?;
        self.check(v)
    }
}

/// The range in words: "more than 0 and at most 3600 s", "between 0 and 86400 s".
impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = (Shown(self.min, ""), Shown(self.max, self.unit));
        if self.min_excluded {
            write!(f, "more than {lo} and at most {hi}")
        } else {
            write!(f, "between {lo} and {hi}")
        }
    }
}

/// A number with its unit, without a trailing `.0` for whole numbers.
struct Shown(f64, &'static str);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            "" => write!(f, "{}", self.0),
            unit => write!(f, "{} {unit}", self.0),
        }
    }
}

/// A sampling rate: no wearable streams faster than 100 kHz, and below one sample per 100 s a
/// series is not a physiological stream (and a window would hold no sample).
pub const SAMPLE_RATE_HZ: Bound = Bound::within(0.01, 100_000.0, "Hz");
/// Replay speed as a multiple of real time.
/// (Below a thousandth, a 40 ms chunk would be due in hours: no use, and near 0 the arithmetic
/// of due times overflows.)
pub const REPLAY_SPEED: Bound = Bound::within(0.001, 1_000_000.0, "× real time");
/// `--duration`: up to a year of host time.
pub const RUN_DURATION_S: Bound = Bound::above(0.0, 31_536_000.0, "s");
/// How much recording time one chunk spans: a millisecond at least (finer steps than that are
/// below the resolution of a unix time in f64 and no device sends them).
pub const CHUNK_MS: Bound = Bound::within(1.0, 10_000.0, "ms");
/// Window length, hop and stall timeout.
pub const WINDOW_S: Bound = Bound::above(0.0, 3600.0, "s");
/// The per-subject baseline phase; 0 turns the `z_` features off.
pub const BASELINE_S: Bound = Bound::within(0.0, 86_400.0, "s");
/// A channel's scale factor's magnitude (the sign may flip an inverted lead).
pub const SCALE: Bound = Bound::above(0.0, 1e9, "");
/// Recording-clock times (unix seconds): 1970 up to the year 2200.
pub const UNIX_TIME_S: Bound = Bound::within(0.0, 7_258_118_400.0, "s");
/// An additive offset applied after a scale factor.
pub const OFFSET: Bound = Bound::within(-1e9, 1e9, "");
/// Where a device's wrapping sample counter wraps (256 for a u8 counter); exact in an f64.
pub const COUNTER_MODULUS: Bound = Bound::within(2.0, 9_007_199_254_740_992.0, "");
/// Fusion's per-window time budget.
pub const DEADLINE_MS: Bound = Bound::above(0.0, 60_000.0, "ms");
/// The prediction cache's quantisation step, in training spreads.
pub const CACHE_QUANTUM: Bound = Bound::above(0.0, 10.0, "spreads");
/// Entries of the prediction cache.
pub const CACHE_ENTRIES: Bound = Bound::within(1.0, 1_000_000.0, "entries");
/// MQTT connect timeout.
pub const CONNECT_TIMEOUT_S: Bound = Bound::above(0.0, 600.0, "s");
/// MQTT keep-alive (whole seconds); rumqttc refuses (panics on) less than 5.
pub const KEEP_ALIVE_S: Bound = Bound::within(5.0, 3600.0, "s");
/// The MQTT outbox's disk bound (MiB): room for a few messages at least, a disk at most.
pub const OUTBOX_MB: Bound = Bound::within(0.25, 1_000_000.0, "MiB");
/// How long live feedback stays worth delivering (0: forever); a week at most.
pub const FEEDBACK_TTL_S: Bound = Bound::within(0.0, 604_800.0, "s");
/// Seconds between metrics reports.
pub const METRICS_INTERVAL_S: Bound = Bound::within(1.0, 3600.0, "s");
/// A probability threshold such as a cascade stage's exit confidence.
pub const PROBABILITY: Bound = Bound::above(0.0, 1.0, "");
/// A softmax temperature.
pub const TEMPERATURE: Bound = Bound::above(0.0, 1000.0, "");

/// Serial baud rates (OpenBCI's dongle runs at 115200; USB CDC devices ignore the number).
pub const BAUD: Bound = Bound::within(50.0, 12_000_000.0, "baud");

/// How long a connected serial device may stay silent before it counts as unplugged.
pub const SILENCE_S: Bound = Bound::within(0.05, 3600.0, "s");

/// Probabilities of deliberate damage in a simulator (`--loss`, `--garbage`): below 1, or
/// nothing would get through.
pub const IMPAIRMENT: Bound = Bound::within(0.0, 0.9, "");

/// Waits between reconnect attempts.
pub const BACKOFF_S: Bound = Bound::within(0.01, 600.0, "s");

/// How often the resource governor samples the machine. Not faster than every 200 ms: sysinfo
/// refreshes the CPU times at most that often, so a faster tick would see stale CPU figures.
pub const GOVERNOR_INTERVAL_S: Bound = Bound::within(0.2, 60.0, "s");
/// A share of something whole (the CPUs' time, the memory, the windows), as a governor
/// threshold: 0 would always or never trigger.
pub const SHARE_PERCENT: Bound = Bound::above(0.0, 100.0, "%");
/// The daemon's own CPU use as a governor threshold, in percent of one core (200 = two cores
/// busy); up to 1024 cores.
pub const PROCESS_CPU_PERCENT: Bound = Bound::above(0.0, 102_400.0, "% of one core");
/// A temperature threshold for the hottest thermal zone; above 150 °C no board still runs.
pub const TEMP_THRESHOLD_C: Bound = Bound::within(0.0, 150.0, "°C");
/// How far below (or above) a threshold every reading must be to release a pressure level.
pub const RELEASE_MARGIN_PERCENT: Bound = Bound::within(0.0, 50.0, "%");
/// Consecutive samples a worse pressure level must be seen before the governor switches to it.
pub const RISE_SAMPLES: Bound = Bound::within(1.0, 1000.0, "samples");
/// The least time at a pressure level, and the calm needed, before the governor steps down.
pub const DWELL_S: Bound = Bound::within(0.0, 3600.0, "s");
/// A latency tier's deadline, from a window's last sample to its answer.
pub const TIER_DEADLINE_MS: Bound = Bound::within(1.0, 60_000.0, "ms");
/// Offload requests waiting for their worker at once.
pub const OFFLOAD_IN_FLIGHT: Bound = Bound::within(1.0, 100_000.0, "requests");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_is_allowed_and_what_was_given() {
        assert_eq!(SAMPLE_RATE_HZ.check(64.0), Ok(64.0));
        assert_eq!(SAMPLE_RATE_HZ.check(-5.0).unwrap_err(), "must be between 0.01 and 100000 Hz, not -5 Hz");
        assert_eq!(SAMPLE_RATE_HZ.check(1e-9).unwrap_err(), "must be between 0.01 and 100000 Hz, not 0.000000001 Hz");
        assert!(SAMPLE_RATE_HZ.check(f64::INFINITY).unwrap_err().contains("not inf Hz"));
        assert!(SAMPLE_RATE_HZ.check(f64::NAN).unwrap_err().contains("not NaN"));
        assert_eq!(WINDOW_S.check(0.0).unwrap_err(), "must be more than 0 and at most 3600 s, not 0 s");
        assert_eq!(BASELINE_S.check(0.0), Ok(0.0), "0 is inside a closed bound");
        assert_eq!(BASELINE_S.to_string(), "between 0 and 86400 s");
        assert_eq!(
            SAMPLE_RATE_HZ.parse(" 1e12 ").unwrap_err(),
            "must be between 0.01 and 100000 Hz, not 1000000000000 Hz"
        );
        assert!(SAMPLE_RATE_HZ.parse("fast").unwrap_err().starts_with("`fast` is not a number"));
    }
}
