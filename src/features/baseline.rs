//! Per-subject baseline: the features relative to the subject's own resting start.
//!
//! People differ more from each other than a stressor moves any one of them: a resting heart rate
//! of 85 bpm is calm for one wearer and aroused for another, and wrist EDA levels span two orders
//! of magnitude. A biofeedback session therefore starts with a resting calibration phase, and the
//! features of every later window are also reported as z-scores against it (`z_<name>`): the
//! mean and standard deviation of each feature over the windows that end within the first
//! `baseline_s` seconds of the session. Only the past is used, so a live hub computes exactly
//! what training saw.
//!
//! Until the calibration phase is over the `z_` features are `NaN` (a model that needs them
//! answers `unknown` with the reason); so are the z-scores of a feature whose baseline had fewer
//! than three finite values or no spread.

use serde::Deserialize;

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;

/// How many features have a baseline-relative twin (the `z_` names in [`super::FEATURE_NAMES`]).
pub const COUNT: usize = super::names::Z_COUNT;

/// `[features]`: settings of the feature stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Length of the resting calibration phase at the start of each subject's session, seconds;
    /// `0` turns the `z_` features off.
    #[serde(default = "default_baseline")]
    pub baseline_s: f64,
}

fn default_baseline() -> f64 {
    300.0
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig { baseline_s: default_baseline() }
    }
}

impl FeaturesConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        Invalid::bounded(key_path!["baseline_s"], bounds::BASELINE_S, self.baseline_s)
            .map_err(|e| e.help("0 turns the baseline-relative z_ features off"))?;
        Ok(())
    }
}

/// Where the calibration phase stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// No baseline configured.
    Off,
    /// Collecting: this many recording seconds are left.
    Calibrating { left_s: f64 },
    /// The baseline is fixed.
    Ready,
}

/// Running baseline of one subject.
#[derive(Debug, Clone)]
pub struct Baseline {
    span_s: f64,
    origin: Option<f64>,
    ready: bool,
    /// Per baseline feature: (n, sum, sum of squares), then (mean, std) once ready.
    acc: [(u32, f64, f64); COUNT],
    stats: [Option<(f64, f64)>; COUNT],
}

impl Baseline {
    pub fn new(span_s: f64) -> Self {
        Baseline { span_s, origin: None, ready: false, acc: [(0, 0.0, 0.0); COUNT], stats: [None; COUNT] }
    }

    /// Take in the window `[start, end)` with the raw values of the twinned features (in the
    /// order of the `z_` names), and write their z-scores into `z` (NaN where there is none yet). Returns the phase.
    pub fn observe(&mut self, start: f64, end: f64, raw: &[f32], z: &mut [f32]) -> Phase {
        z.iter_mut().for_each(|v| *v = f32::NAN);
        if self.span_s <= 0.0 {
            return Phase::Off;
        }
        let origin = *self.origin.get_or_insert(start);
        if !self.ready {
            if end <= origin + self.span_s {
                for (a, &x) in self.acc.iter_mut().zip(raw) {
                    if x.is_finite() {
                        let x = x as f64;
                        *a = (a.0 + 1, a.1 + x, a.2 + x * x);
                    }
                }
                return Phase::Calibrating { left_s: origin + self.span_s - end };
            }
            self.ready = true;
            for (s, &(n, sum, sq)) in self.stats.iter_mut().zip(&self.acc) {
                *s = (n >= 3).then(|| {
                    let n = n as f64;
                    let mean = sum / n;
                    // Sample SD; rounding can leave a constant series a tiny negative variance.
                    (mean, ((sq - sum * mean) / (n - 1.0)).max(0.0).sqrt())
                });
            }
        }
        for ((zv, &x), s) in z.iter_mut().zip(raw).zip(&self.stats) {
            if let Some((mean, std)) = *s {
                // No spread in the baseline (a feature stuck at one value): no scale to judge by.
                if x.is_finite() && std > 1e-9 * mean.abs().max(1e-9) {
                    *zv = ((x as f64 - mean) / std) as f32;
                }
            }
        }
        Phase::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores_follow_the_calibration_windows_only() {
        let mut b = Baseline::new(120.0);
        let mut z = [0.0f32; COUNT];
        let mut raw = [f32::NAN; COUNT];
        // Windows of 60 s every 5 s: those ending by 120 s are the baseline (13 of them).
        let mut phases = Vec::new();
        for k in 0..20 {
            let start = 1000.0 + 5.0 * k as f64;
            raw[0] = if k < 13 { 60.0 + (k % 2) as f32 * 2.0 } else { 70.0 };
            raw[1] = 3.0; // constant: no spread, no z
            phases.push(b.observe(start, start + 60.0, &raw, &mut z));
            if k < 13 {
                assert!(z.iter().all(|v| v.is_nan()), "window {k} is still calibrating");
            }
        }
        assert!(matches!(phases[0], Phase::Calibrating { left_s } if (left_s - 60.0).abs() < 1e-9));
        assert_eq!(phases[19], Phase::Ready);
        // Baseline of feature 0: seven 60s and six 62s: mean 60.923, sample SD 1.038.
        let (mean, sd) = (60.923077, 1.0377490);
        assert!((z[0] as f64 - (70.0 - mean) / sd).abs() < 1e-4, "{}", z[0]);
        assert!(z[1].is_nan() && z[2].is_nan());
    }

    #[test]
    fn off_gives_nothing() {
        let mut b = Baseline::new(0.0);
        let mut z = [0.0f32; COUNT];
        assert_eq!(b.observe(0.0, 60.0, &[1.0; COUNT], &mut z), Phase::Off);
        assert!(z.iter().all(|v| v.is_nan()));
        assert!(FeaturesConfig { baseline_s: -1.0 }.validate().is_err());
        assert!(FeaturesConfig::default().validate().is_ok());
    }
}
