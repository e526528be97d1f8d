//! What a detector reports, and the spacing both detectors share.

/// One detected beat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat {
    /// Absolute sample number of the R peak (ECG) or systolic peak (PPG).
    pub index: u64,
    /// ECG: the R wave's height above the 0.5 Hz high-passed baseline. PPG: foot-to-peak amplitude
    /// of the 8 Hz low-passed pulse. Respiration modulates both (used for derived respiration).
    pub amplitude: f64,
    /// PPG: the pulse foot (the trough before the upstroke); ECG: equal to `index`.
    pub foot: u64,
}

/// Seconds of derived signal each detector keeps for look-back.
pub(super) const HISTORY_S: f64 = 4.0;

/// No two beats are closer than this (ECG refractory period, Pan & Tompkins' 200 ms; PPG waits
/// longer, 0.3 s): at most 300 bpm. Also bounds how many beats a window can hold, so buffers are
/// sized once.
pub const MIN_BEAT_INTERVAL_S: f64 = 0.2;
