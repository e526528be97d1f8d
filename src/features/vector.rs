//! The features of one window: the values in [`FEATURE_NAMES`] order, with the quality of each
//! modality and where the subject's baseline stands.

use super::baseline;
use super::names::{feature_index, Feature, FEATURE_NAMES};
use super::quality::Quality;
use crate::signal::Modality;

/// The features of one window.
#[derive(Debug, Clone)]
pub struct FeatureVector {
    /// Aligned with [`FEATURE_NAMES`]; `NaN` where not computable.
    pub values: [f32; FEATURE_NAMES.len()],
    /// Where the subject's baseline calibration stands (the `z_` features wait for it).
    pub baseline: baseline::Phase,
    pub quality: Vec<Quality>,
    /// The cardiac channel the beats came from (`ecg` or `ppg`), if any.
    pub cardiac_source: Option<Modality>,
}

impl FeatureVector {
    pub fn empty() -> Self {
        FeatureVector {
            values: [f32::NAN; FEATURE_NAMES.len()],
            baseline: baseline::Phase::Off,
            quality: Vec::new(),
            cardiac_source: None,
        }
    }

    /// A feature by name (tests, the CLI); `None` for a name not in [`FEATURE_NAMES`].
    pub fn get(&self, name: &str) -> Option<f32> {
        feature_index(name).map(|i| self.values[i])
    }

    /// A feature's value (`NaN` if not computed in this window).
    pub fn value(&self, f: Feature) -> f32 {
        self.values[f.index()]
    }

    pub(super) fn set(&mut self, f: Feature, v: f64) {
        self.values[f.index()] = v as f32;
    }

    /// Back to [`FeatureVector::empty`], keeping the quality list's buffer.
    pub(super) fn reset(&mut self) {
        self.values = [f32::NAN; FEATURE_NAMES.len()];
        self.quality.clear();
        self.cardiac_source = None;
        self.baseline = baseline::Phase::Off;
    }
}
