//! Heart-rate variability from beat times: time domain (Task Force 1996) and Lomb–Scargle
//! frequency domain, with ectopic/artefact correction reported.

use super::dsp;
use super::rr::{rr_interval, rr_periodogram, PLAUSIBLE_RR_MS, RR_DF};
use super::spectrum::{Centre, SlidingPeriodogram};

/// How RR intervals are cleaned before HRV.
#[derive(Debug, Clone, Copy)]
pub struct HrvOptions {
    /// Drop RR intervals outside 300–2000 ms or more than 20 % from the window's median (Malik's
    /// rule), and successive differences that touch a dropped interval.
    pub correct: bool,
}

impl Default for HrvOptions {
    fn default() -> Self {
        HrvOptions { correct: true }
    }
}

/// HRV of one series of beats. Values are `NaN` when there are too few clean intervals.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Hrv {
    pub beats: usize,
    /// RR intervals dropped by the correction.
    pub corrected: usize,
    pub mean_nn_ms: f64,
    pub hr_mean_bpm: f64,
    pub hr_std_bpm: f64,
    pub sdnn_ms: f64,
    pub rmssd_ms: f64,
    /// NN50 / number of NN intervals, as a fraction (NeuroKit2 reports it in percent).
    pub pnn50: f64,
    /// Power in 0.04–0.15 Hz and 0.15–0.40 Hz, ms².
    pub lf_ms2: f64,
    pub hf_ms2: f64,
    pub lf_hf: f64,
}

/// A window's RR intervals and the buffers HRV works in, reused from window to window.
#[derive(Debug, Default)]
pub struct Intervals {
    rr: Vec<f64>,
    t: Vec<f64>,
    keep: Vec<bool>,
    sorted: Vec<f64>,
}

impl Intervals {
    /// Load the intervals between consecutive beats at these sample numbers.
    pub fn load_beats(&mut self, beats: impl Iterator<Item = u64>, fs: f64) {
        self.rr.clear();
        self.t.clear();
        let mut prev = None;
        for b in beats {
            if let Some(a) = prev {
                let (t, rr) = rr_interval(a, b, fs);
                self.t.push(t);
                self.rr.push(rr);
            }
            prev = Some(b);
        }
    }

    /// Room for `beats` beats, so computing HRV of that many never allocates.
    pub fn reserve(&mut self, beats: usize) {
        for v in [&mut self.rr, &mut self.t, &mut self.sorted] {
            v.reserve(beats.saturating_sub(v.len()));
        }
        self.keep.reserve(beats.saturating_sub(self.keep.len()));
    }
}

/// Reusable state for [`from_peaks`]: the intervals and a spectrum to load them into.
#[derive(Debug)]
pub struct HrvScratch {
    intervals: Intervals,
    spectrum: SlidingPeriodogram,
}

impl Default for HrvScratch {
    fn default() -> Self {
        HrvScratch { intervals: Intervals::default(), spectrum: rr_periodogram() }
    }
}

/// Minimum clean intervals for any HRV value.
const MIN_INTERVALS: usize = 5;
/// HRV's bands on the RR grid ([`rr_periodogram`]): 0.04–0.15 Hz (LF) and 0.15–0.40 Hz (HF).
const LF_BINS: std::ops::Range<usize> = 0..22;
const HF_BINS: std::ops::Range<usize> = 22..72;

/// HRV from beat sample indices at `fs` Hz.
pub fn from_peaks(peaks: &[usize], fs: f64, options: HrvOptions, s: &mut HrvScratch) -> Hrv {
    let HrvScratch { intervals, spectrum } = s;
    intervals.load_beats(peaks.iter().map(|&p| p as u64), fs);
    spectrum.clear();
    for (&t, &r) in intervals.t.iter().zip(&intervals.rr) {
        if !options.correct || PLAUSIBLE_RR_MS.contains(&r) {
            spectrum.add(t, r);
        }
    }
    from_intervals(peaks.len(), options, intervals, spectrum)
}

/// HRV of a window's intervals, already loaded into `s` ([`Intervals::load_beats`]).
/// `spectrum` holds exactly those intervals that pass the range test (all of them without
/// correction): the streaming extractor keeps one per channel as beats come and go, so the
/// frequency domain costs the bins, not the beats. It is left as it was found.
pub fn from_intervals(beats: usize, options: HrvOptions, s: &mut Intervals, spectrum: &mut SlidingPeriodogram) -> Hrv {
    s.sorted.clear();
    s.sorted.extend(s.rr.iter().copied().filter(|r| PLAUSIBLE_RR_MS.contains(r)));
    s.sorted.sort_by(f64::total_cmp);
    let median = s.sorted.get(s.sorted.len() / 2).copied();
    s.keep.clear();
    s.keep.extend(s.rr.iter().map(|&r| {
        !options.correct || (PLAUSIBLE_RR_MS.contains(&r) && median.is_some_and(|m| (r - m).abs() <= 0.2 * m))
    }));
    let kept = s.keep.iter().filter(|k| **k).count();
    let mut hrv = Hrv {
        beats,
        corrected: s.rr.len() - kept,
        mean_nn_ms: f64::NAN,
        hr_mean_bpm: f64::NAN,
        hr_std_bpm: f64::NAN,
        sdnn_ms: f64::NAN,
        rmssd_ms: f64::NAN,
        pnn50: f64::NAN,
        lf_ms2: f64::NAN,
        hf_ms2: f64::NAN,
        lf_hf: f64::NAN,
    };
    if kept < MIN_INTERVALS {
        return hrv;
    }
    let nn = || s.rr.iter().zip(&s.keep).filter(|(_, k)| **k).map(|(r, _)| *r);
    if let Some((mean, _)) = dsp::mean_std(nn()) {
        hrv.mean_nn_ms = mean;
        // Sample SD (n - 1), as the Task Force standard and NeuroKit2 define SDNN.
        let n = kept as f64;
        hrv.sdnn_ms = (nn().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    }
    if let Some((hr, _)) = dsp::mean_std(nn().map(|r| 60_000.0 / r)) {
        hrv.hr_mean_bpm = hr;
        let n = kept as f64;
        hrv.hr_std_bpm = (nn().map(|r| (60_000.0 / r - hr).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    }
    let (mut ss, mut n, mut over50) = (0.0, 0usize, 0usize);
    for k in 1..s.rr.len() {
        if s.keep[k] && s.keep[k - 1] {
            let d = s.rr[k] - s.rr[k - 1];
            ss += d * d;
            n += 1;
            over50 += (d.abs() > 50.0) as usize;
        }
    }
    if n > 0 {
        hrv.rmssd_ms = (ss / n as f64).sqrt();
        // Task Force: NN50 divided by the number of NN intervals (not of differences).
        hrv.pnn50 = over50 as f64 / kept as f64;
    }
    // Lomb–Scargle on the kept intervals at their own (uneven) beat times: no resampling, and
    // dropped beats simply leave holes instead of interpolated values.
    let kept_t = || s.t.iter().zip(&s.keep).filter(|(_, k)| **k).map(|(t, _)| *t);
    let span = kept_t().next_back().unwrap_or(0.0) - kept_t().next().unwrap_or(0.0);
    // LF needs a few cycles of 0.04 Hz: Task Force recommends ≥ 2 min; below 50 s it is noise.
    if span >= 50.0 {
        // The spectrum holds every plausible interval; the few the median test dropped leave it
        // for this reading and come back after.
        let (t, rr, keep) = (&s.t, &s.rr, &s.keep);
        let dropped = || t.iter().zip(rr).zip(keep).filter(|&((_, r), k)| !k && PLAUSIBLE_RR_MS.contains(r));
        dropped().for_each(|((&t, &r), _)| spectrum.remove(t, r));
        let band = |bins: std::ops::Range<usize>| {
            // Classical Lomb–Scargle P(f) of a sinusoid of amplitude A is A²n/4 and its spectral
            // line is about 1/T wide, so P·2T/n is a one-sided PSD (ms²/Hz) whose integral is the
            // variance.
            bins.map(|k| spectrum.power(k, Centre::Mean)).sum::<f64>() * 2.0 * span / kept as f64 * RR_DF
        };
        let (lf, hf) = (band(LF_BINS), band(HF_BINS));
        dropped().for_each(|((&t, &r), _)| spectrum.add(t, r));
        hrv.lf_ms2 = lf;
        hrv.hf_ms2 = hf;
        hrv.lf_hf = if hf > 0.0 { lf / hf } else { f64::NAN };
    }
    hrv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peaks_from_rr(rr_ms: &[f64], fs: f64) -> Vec<usize> {
        let mut t = 0.0;
        let mut p = vec![0];
        for r in rr_ms {
            t += r;
            p.push((t * fs / 1000.0).round() as usize);
        }
        p
    }

    #[test]
    fn time_domain_matches_hand_computation() {
        let rr = [800.0, 820.0, 780.0, 810.0, 790.0, 830.0];
        let h = from_peaks(&peaks_from_rr(&rr, 1000.0), 1000.0, HrvOptions::default(), &mut HrvScratch::default());
        let mean = rr.iter().sum::<f64>() / 6.0;
        let sdnn = (rr.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
        let diffs = [20.0f64, -40.0, 30.0, -20.0, 40.0];
        let rmssd = (diffs.iter().map(|d| d * d).sum::<f64>() / 5.0).sqrt();
        assert!((h.mean_nn_ms - mean).abs() < 1e-9);
        assert!((h.sdnn_ms - sdnn).abs() < 1e-9);
        assert!((h.rmssd_ms - rmssd).abs() < 1e-9);
        assert_eq!(h.pnn50, 0.0);
        assert_eq!(h.corrected, 0);
        assert!(h.lf_ms2.is_nan(), "5 s of beats is too short for LF");
    }

    #[test]
    fn an_ectopic_interval_is_dropped_and_counted() {
        let rr = [800.0, 810.0, 500.0, 1100.0, 805.0, 795.0, 800.0];
        let h = from_peaks(&peaks_from_rr(&rr, 1000.0), 1000.0, HrvOptions::default(), &mut HrvScratch::default());
        assert_eq!(h.corrected, 2);
        assert!(h.rmssd_ms < 20.0, "{}", h.rmssd_ms);
        let raw =
            from_peaks(&peaks_from_rr(&rr, 1000.0), 1000.0, HrvOptions { correct: false }, &mut HrvScratch::default());
        assert_eq!(raw.corrected, 0);
        assert!(raw.rmssd_ms > 200.0);
    }

    #[test]
    fn respiratory_sinus_arrhythmia_lands_in_hf() {
        // RR modulated at 0.25 Hz (15 breaths/min), amplitude 40 ms, over 3 minutes.
        let mut rr = Vec::new();
        let mut t = 0.0;
        while t < 180.0 {
            let r = 850.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.25 * t).sin();
            rr.push(r);
            t += r / 1000.0;
        }
        let h = from_peaks(&peaks_from_rr(&rr, 1000.0), 1000.0, HrvOptions::default(), &mut HrvScratch::default());
        assert!(h.hf_ms2 > 5.0 * h.lf_ms2, "LF {} HF {}", h.lf_ms2, h.hf_ms2);
        // A sinusoid of amplitude 40 ms carries 800 ms² of variance.
        assert!((h.hf_ms2 - 800.0).abs() < 200.0, "HF {}", h.hf_ms2);
    }

    #[test]
    fn too_few_beats_give_nan() {
        let h = from_peaks(&[0, 800, 1600], 1000.0, HrvOptions::default(), &mut HrvScratch::default());
        assert!(h.sdnn_ms.is_nan() && h.rmssd_ms.is_nan() && h.hr_mean_bpm.is_nan());
        assert_eq!(h.beats, 3);
    }
}
