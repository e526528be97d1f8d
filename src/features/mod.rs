//! Turns a closed [`Window`] into a named feature vector with per-modality quality.
//!
//! The feature set is fixed and named ([`FEATURE_NAMES`]); a model manifest lists the names it
//! needs, and the daemon checks at start-up that the configured channels can produce them. A
//! feature that cannot be computed in a window (channel absent, too few beats, signal flat) is
//! `NaN`, never a guess; the fusion stage decides what to do with it.
//!
//! Architecture invariant: pure and synchronous — no I/O, no tokio. The large buffers (filtered
//! signals, beats) are reused across windows; what is still allocated per window is small (quality
//! flags, an RR mask). The signal-processing issue makes the stage streaming and allocation-free.

pub mod beats;
pub mod dsp;
pub mod hrv;

use crate::signal::Modality;
use crate::window::{ChannelWindow, Window};
use serde::Serialize;

/// Every feature the stage computes, in vector order. Names carry their unit.
pub const FEATURE_NAMES: [&str; 25] = [
    "hr_mean_bpm",
    "hr_std_bpm",
    "hrv_sdnn_ms",
    "hrv_rmssd_ms",
    "hrv_pnn50",
    "hrv_lf_ms2",
    "hrv_hf_ms2",
    "hrv_lf_hf",
    "beats_n",
    "beats_rejected",
    "eda_mean_us",
    "eda_std_us",
    "eda_min_us",
    "eda_slope_us_per_min",
    "scr_count",
    "scr_rate_per_min",
    "scr_amp_mean_us",
    "resp_rate_bpm",
    "temp_mean_c",
    "temp_slope_c_per_min",
    "acc_mag_mean_g",
    "acc_mag_std_g",
    "acc_enmo_g",
    "quality_cardiac",
    "quality_eda",
];

/// Index of a feature by name.
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_NAMES.iter().position(|n| *n == name)
}

/// Which modalities can feed a feature (any one of them suffices).
pub fn feature_sources(name: &str) -> &'static [Modality] {
    match name.split('_').next().unwrap_or("") {
        "hr" | "hrv" | "beats" => &[Modality::Ecg, Modality::Ppg],
        "eda" | "scr" => &[Modality::Eda],
        "resp" => &[Modality::Resp],
        "temp" => &[Modality::Temp],
        "acc" => &[Modality::Acc],
        _ if name == "quality_cardiac" => &[Modality::Ecg, Modality::Ppg],
        _ if name == "quality_eda" => &[Modality::Eda],
        _ => &[],
    }
}

/// Signal quality of one modality in one window, 0 (unusable) to 1 (clean).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Quality {
    pub modality: Modality,
    pub score: f32,
    /// Why the score is below 1, e.g. `gap`, `flatline`, `clipping`, `non_finite`, `implausible_rr`.
    pub flags: Vec<&'static str>,
}

/// The features of one window.
#[derive(Debug, Clone)]
pub struct FeatureVector {
    /// Aligned with [`FEATURE_NAMES`]; `NaN` where not computable.
    pub values: [f32; FEATURE_NAMES.len()],
    pub quality: Vec<Quality>,
    /// The cardiac channel the beats came from (`ecg` or `ppg`), if any.
    pub cardiac_source: Option<Modality>,
}

impl FeatureVector {
    pub fn get(&self, name: &str) -> Option<f32> {
        feature_index(name).map(|i| self.values[i])
    }

    fn set(&mut self, name: &str, v: f64) {
        let i = feature_index(name).expect("feature name in FEATURE_NAMES");
        self.values[i] = v as f32;
    }
}

/// Reusable state of the feature stage for one subject.
#[derive(Debug, Default)]
pub struct FeatureExtractor {
    scratch: beats::BeatScratch,
    peaks: Vec<usize>,
    hrv: hrv::HrvScratch,
    buf: Vec<f64>,
    mag: Vec<f32>,
}

impl FeatureExtractor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compute every feature the window's channels allow.
    pub fn extract(&mut self, window: &Window) -> FeatureVector {
        let mut fv =
            FeatureVector { values: [f32::NAN; FEATURE_NAMES.len()], quality: Vec::new(), cardiac_source: None };
        let first = |m: Modality| window.channels.iter().find(|c| c.spec.modality == m && !c.values.is_empty());
        // ECG is preferred over PPG when both are worn: sharper beats, less motion artefact.
        if let Some(ch) = first(Modality::Ecg).or_else(|| first(Modality::Ppg)) {
            self.cardiac(ch, &mut fv);
        }
        if let Some(ch) = first(Modality::Eda) {
            self.eda(ch, &mut fv);
        }
        if let Some(ch) = first(Modality::Resp) {
            self.resp(ch, &mut fv);
        }
        if let Some(ch) = first(Modality::Temp) {
            self.temp(ch, &mut fv);
        }
        let acc: Vec<&ChannelWindow> =
            window.channels.iter().filter(|c| c.spec.modality == Modality::Acc && !c.values.is_empty()).collect();
        if !acc.is_empty() {
            self.acc(&acc, &mut fv);
        }
        fv
    }

    fn cardiac(&mut self, ch: &ChannelWindow, fv: &mut FeatureVector) {
        let fs = ch.spec.rate_hz;
        let modality = ch.spec.modality;
        fv.cardiac_source = Some(modality);
        if modality == Modality::Ecg {
            beats::detect_ecg(&ch.values, fs, &mut self.scratch, &mut self.peaks);
        } else {
            beats::detect_ppg(&ch.values, fs, &mut self.scratch, &mut self.peaks);
        }
        let hrv = hrv::from_peaks(&self.peaks, fs, hrv::HrvOptions::default(), &mut self.hrv);
        let intervals = self.peaks.len().saturating_sub(1);
        fv.set("beats_n", self.peaks.len() as f64);
        fv.set("beats_rejected", hrv.corrected as f64);
        let mut flags = window_flags(ch);
        let rr_ok = if intervals > 0 { (intervals - hrv.corrected) as f32 / intervals as f32 } else { 0.0 };
        if rr_ok < 0.8 {
            flags.push("implausible_rr");
        }
        let score = (ch.coverage() * rr_ok * if flags.contains(&"flatline") { 0.0 } else { 1.0 }).clamp(0.0, 1.0);
        fv.quality.push(Quality { modality, score, flags });
        fv.set("quality_cardiac", score as f64);
        // Too few clean beats leave HR/HRV as NaN (hrv::from_peaks decides), never a guess.
        fv.set("hr_mean_bpm", hrv.hr_mean_bpm);
        fv.set("hr_std_bpm", hrv.hr_std_bpm);
        fv.set("hrv_sdnn_ms", hrv.sdnn_ms);
        fv.set("hrv_rmssd_ms", hrv.rmssd_ms);
        fv.set("hrv_pnn50", hrv.pnn50);
        fv.set("hrv_lf_ms2", hrv.lf_ms2);
        fv.set("hrv_hf_ms2", hrv.hf_ms2);
        fv.set("hrv_lf_hf", hrv.lf_hf);
    }

    fn eda(&mut self, ch: &ChannelWindow, fv: &mut FeatureVector) {
        let fs = ch.spec.rate_hz;
        let minutes = ch.values.len() as f64 / fs / 60.0;
        let mut flags = window_flags(ch);
        if let Some((mean, std)) = dsp::mean_std(ch.values.iter().map(|&v| v as f64)) {
            fv.set("eda_mean_us", mean);
            fv.set("eda_std_us", std);
            if mean < 0.05 {
                // Below 0.05 µS the electrodes are not on skin.
                flags.push("no_contact");
            }
        }
        let min = ch.values.iter().copied().filter(|v| v.is_finite()).fold(f32::INFINITY, f32::min);
        if min.is_finite() {
            fv.set("eda_min_us", min as f64);
        }
        if let Some(s) = dsp::slope_per_s(&ch.values, fs) {
            fv.set("eda_slope_us_per_min", s * 60.0);
        }
        // SCRs: rises of at least 0.01 µS from a trough to the next peak of the 1 Hz low-passed
        // signal, rise time 0.5–5 s (Boucsein's conventional amplitude and timing criteria).
        dsp::lowpass(&ch.values, fs, 1.0, &mut self.buf);
        let x = &self.buf;
        let (mut count, mut amp_sum) = (0usize, 0.0);
        let mut trough: Option<usize> = None;
        for i in 1..x.len().saturating_sub(1) {
            if x[i] <= x[i - 1] && x[i] < x[i + 1] {
                trough = Some(i);
            } else if x[i] >= x[i - 1] && x[i] > x[i + 1] {
                if let Some(t) = trough.take() {
                    let amp = x[i] - x[t];
                    let rise = (i - t) as f64 / fs;
                    if amp >= 0.01 && (0.5..=5.0).contains(&rise) {
                        count += 1;
                        amp_sum += amp;
                    }
                }
            }
        }
        fv.set("scr_count", count as f64);
        if minutes > 0.0 {
            fv.set("scr_rate_per_min", count as f64 / minutes);
        }
        fv.set("scr_amp_mean_us", if count > 0 { amp_sum / count as f64 } else { 0.0 });
        let score = if flags.iter().any(|f| *f == "flatline" || *f == "no_contact") { 0.0 } else { ch.coverage() };
        fv.set("quality_eda", score as f64);
        fv.quality.push(Quality { modality: Modality::Eda, score, flags });
    }

    fn resp(&mut self, ch: &ChannelWindow, fv: &mut FeatureVector) {
        let fs = ch.spec.rate_hz;
        // Breathing lies in 0.1–0.7 Hz (6–42 breaths/min); count upward zero crossings with a
        // hysteresis of 20 % of the signal's spread so noise near zero does not add breaths.
        dsp::bandpass(&ch.values, fs, 0.1, 0.7, &mut self.buf);
        let x = &self.buf[(fs * 2.0).min(self.buf.len() as f64) as usize..];
        let flags = window_flags(ch);
        if let Some((_, sd)) = dsp::mean_std(x.iter().copied()) {
            let h = 0.2 * sd;
            let mut below = false;
            let mut crossings: Vec<usize> = Vec::new();
            for (i, &v) in x.iter().enumerate() {
                if v < -h {
                    below = true;
                } else if v > h && below {
                    crossings.push(i);
                    below = false;
                }
            }
            if crossings.len() >= 2 && sd > 0.0 {
                let span = (crossings[crossings.len() - 1] - crossings[0]) as f64 / fs;
                fv.set("resp_rate_bpm", (crossings.len() - 1) as f64 / span * 60.0);
            }
        }
        let score = if flags.contains(&"flatline") { 0.0 } else { ch.coverage() };
        fv.quality.push(Quality { modality: Modality::Resp, score, flags });
    }

    fn temp(&mut self, ch: &ChannelWindow, fv: &mut FeatureVector) {
        if let Some((mean, _)) = dsp::mean_std(ch.values.iter().map(|&v| v as f64)) {
            fv.set("temp_mean_c", mean);
        }
        if let Some(s) = dsp::slope_per_s(&ch.values, ch.spec.rate_hz) {
            fv.set("temp_slope_c_per_min", s * 60.0);
        }
        let flags = window_flags(ch);
        fv.quality.push(Quality { modality: Modality::Temp, score: ch.coverage(), flags });
    }

    fn acc(&mut self, axes: &[&ChannelWindow], fv: &mut FeatureVector) {
        // Magnitude over the axes present (normally x, y, z of one sensor, same rate).
        let n = axes.iter().map(|a| a.values.len()).min().unwrap_or(0);
        self.mag.clear();
        self.mag.extend((0..n).map(|i| axes.iter().map(|a| a.values[i].powi(2)).sum::<f32>().sqrt()));
        if let Some((mean, std)) = dsp::mean_std(self.mag.iter().map(|&v| v as f64)) {
            fv.set("acc_mag_mean_g", mean);
            fv.set("acc_mag_std_g", std);
        }
        // ENMO (van Hees et al. 2013): Euclidean norm minus one g, negatives clipped.
        if let Some((enmo, _)) = dsp::mean_std(self.mag.iter().map(|&v| (v as f64 - 1.0).max(0.0))) {
            fv.set("acc_enmo_g", enmo);
        }
        let coverage = axes.iter().map(|a| a.coverage()).fold(1.0, f32::min);
        let mut flags = Vec::new();
        for a in axes {
            for f in window_flags(a) {
                if !flags.contains(&f) {
                    flags.push(f);
                }
            }
        }
        fv.quality.push(Quality { modality: Modality::Acc, score: coverage, flags });
    }
}

/// Flags any channel can raise: gaps, non-finite samples, flat line, clipping at the extremes.
fn window_flags(ch: &ChannelWindow) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if ch.missing > 0 {
        flags.push("gap");
    }
    let finite: Vec<f32> = ch.values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.len() < ch.values.len() {
        flags.push("non_finite");
    }
    let (lo, hi) = finite.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    if finite.is_empty() || hi - lo <= f32::EPSILON * hi.abs().max(1.0) {
        flags.push("flatline");
    } else {
        // Clipping: more than 1 % of samples sit exactly on the window's extreme values.
        let at_edge = finite.iter().filter(|&&v| v == lo || v == hi).count();
        if at_edge * 100 > finite.len() && at_edge > 4 {
            flags.push("clipping");
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::ChannelSpec;
    use std::time::Instant;

    fn window(channels: Vec<ChannelWindow>) -> Window {
        Window { subject: "s".into(), seq: 0, start: 0.0, end: 60.0, channels, last_arrival: Instant::now() }
    }

    fn cw(name: &str, m: Modality, fs: f64, values: Vec<f32>) -> ChannelWindow {
        ChannelWindow { spec: ChannelSpec::new(name, m, "u", fs), values, missing: 0 }
    }

    #[test]
    fn every_feature_has_a_source_and_a_unique_name() {
        for (i, name) in FEATURE_NAMES.iter().enumerate() {
            assert!(!feature_sources(name).is_empty(), "{name} has no source modality");
            assert_eq!(feature_index(name), Some(i));
        }
    }

    #[test]
    fn empty_window_gives_all_nan_and_no_panic() {
        let fv = FeatureExtractor::new().extract(&window(vec![]));
        assert!(fv.values.iter().all(|v| v.is_nan()));
        assert!(fv.quality.is_empty());
    }

    #[test]
    fn flat_channels_are_flagged_not_guessed() {
        let w = window(vec![
            cw("ecg", Modality::Ecg, 100.0, vec![0.5; 6000]),
            cw("eda", Modality::Eda, 4.0, vec![2.0; 240]),
        ]);
        let fv = FeatureExtractor::new().extract(&w);
        assert!(fv.get("hr_mean_bpm").unwrap().is_nan());
        assert_eq!(fv.get("quality_cardiac"), Some(0.0));
        assert!(fv.quality[0].flags.contains(&"flatline"));
        assert_eq!(fv.get("eda_mean_us"), Some(2.0));
        assert_eq!(fv.get("quality_eda"), Some(0.0));
    }

    #[test]
    fn accelerometer_at_rest_reads_one_g() {
        let w = window(vec![
            cw("acc_x", Modality::Acc, 32.0, vec![0.0; 320]),
            cw("acc_y", Modality::Acc, 32.0, vec![0.0; 320]),
            cw("acc_z", Modality::Acc, 32.0, vec![1.0; 320]),
        ]);
        let fv = FeatureExtractor::new().extract(&w);
        assert!((fv.get("acc_mag_mean_g").unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(fv.get("acc_enmo_g"), Some(0.0));
    }

    #[test]
    fn scr_and_respiration_on_simple_shapes() {
        let fs = 4.0;
        // Two SCRs: 0.2 µS rises over 2 s, decaying back.
        let eda: Vec<f32> = (0..240)
            .map(|i| {
                let t = i as f64 / fs;
                let bump = |t0: f64| {
                    if t < t0 {
                        0.0
                    } else if t < t0 + 2.0 {
                        0.1 * (t - t0)
                    } else {
                        0.2 * (-(t - t0 - 2.0) / 4.0).exp()
                    }
                };
                (5.0 + bump(10.0) + bump(35.0)) as f32
            })
            .collect();
        let resp: Vec<f32> =
            (0..6000).map(|i| (2.0 * std::f64::consts::PI * 0.25 * i as f64 / 100.0).sin() as f32).collect();
        let w = window(vec![cw("eda", Modality::Eda, fs, eda), cw("rsp", Modality::Resp, 100.0, resp)]);
        let fv = FeatureExtractor::new().extract(&w);
        assert_eq!(fv.get("scr_count"), Some(2.0));
        let rr = fv.get("resp_rate_bpm").unwrap();
        assert!((rr - 15.0).abs() < 0.5, "{rr}");
    }
}
