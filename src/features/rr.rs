//! The beat series HRV and the beat-derived respiration share: RR intervals (one function builds
//! every one, so a spectrum can remove exactly what it added), the range a heartbeat's interval
//! lies in, the frequency grid of every beat spectrum, and [`BeatSpectra`], the RR and amplitude
//! spectra kept in step with a window's beats.

use super::beats::Beat;
use super::spectrum::SlidingPeriodogram;

/// RR intervals outside this range (ms) are not heartbeats: 30–200 bpm.
pub const PLAUSIBLE_RR_MS: std::ops::RangeInclusive<f64> = 300.0..=2000.0;

/// The frequency grid every beat spectrum uses: 0.0425–0.5025 Hz in 0.005 Hz bins. HRV sums bins
/// 0–21 (LF, 0.04–0.15 Hz) and 22–71 (HF, 0.15–0.40 Hz); derived respiration scans 11–92.
pub fn rr_periodogram() -> SlidingPeriodogram {
    SlidingPeriodogram::new(RR_F0, RR_DF, RR_BINS)
}
const RR_F0: f64 = 0.0425;
/// Bin spacing of the grid, Hz (HRV integrates its bands over it).
pub const RR_DF: f64 = 0.005;
const RR_BINS: usize = 93;

/// The RR interval between beats at samples `a` < `b`: (time of `b` in s, interval in ms). Every
/// RR series is built by this one function, so a spectrum can remove exactly what it added.
pub fn rr_interval(a: u64, b: u64, fs: f64) -> (f64, f64) {
    // Same operation order as NeuroKit2 (Δ / fs × 1000), so a successive difference of exactly
    // 50 ms rounds the same way in both and pNN50 agrees.
    (b as f64 / fs, (b as f64 - a as f64) / fs * 1000.0)
}

/// The spectra of a series of beats, kept in step with it: RR intervals (ms, at the later beat's
/// time; plausible ones only) for HRV and derived respiration, and beat amplitudes for derived
/// respiration. Times are the beats' sample numbers over `fs`.
#[derive(Debug, Clone)]
pub struct BeatSpectra {
    pub rr: SlidingPeriodogram,
    pub amp: SlidingPeriodogram,
}

impl Default for BeatSpectra {
    fn default() -> Self {
        BeatSpectra { rr: rr_periodogram(), amp: rr_periodogram() }
    }
}

impl BeatSpectra {
    /// Beat `b` joins the end of the series; `prev` is the beat before it, if still in the series.
    pub fn push(&mut self, prev: Option<&Beat>, b: &Beat, fs: f64) {
        if let Some(p) = prev {
            let (t, rr) = rr_interval(p.index, b.index, fs);
            if PLAUSIBLE_RR_MS.contains(&rr) {
                self.rr.add(t, rr);
            }
        }
        self.amp.add(b.index as f64 / fs, b.amplitude);
    }

    /// Beat `b`, the oldest, leaves; `next` is the beat after it, whose interval leaves with it.
    pub fn pop(&mut self, b: &Beat, next: Option<&Beat>, fs: f64) {
        if let Some(n) = next {
            let (t, rr) = rr_interval(b.index, n.index, fs);
            if PLAUSIBLE_RR_MS.contains(&rr) {
                self.rr.remove(t, rr);
            }
        }
        self.amp.remove(b.index as f64 / fs, b.amplitude);
    }

    pub fn clear(&mut self) {
        self.rr.clear();
        self.amp.clear();
    }
}
