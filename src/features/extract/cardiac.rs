//! The heart, from the beats of one cardiac channel (ECG, or PPG when no ECG is worn): HR and HRV,
//! the beat-derived respiration rate and the cardiac quality; and for a PPG channel the pulse
//! shape (rise time, amplitude variability), which also judges the pulse's quality.

use crate::features::beats::Beat;
use crate::features::channel::{ChannelState, Processor};
use crate::features::names::Feature;
use crate::features::quality::{basic_flags, Flags, Quality};
use crate::features::vector::FeatureVector;
use crate::features::{dsp, hrv, resp};
use crate::signal::Modality;
use crate::window::ChannelWindow;

/// Coefficient of variation of PPG pulse amplitudes above which pulses are artefactual: breathing
/// and vasomotion modulate a clean pulse by well under half its mean.
const PULSE_AMPLITUDE_CV_MAX: f32 = 0.5;

/// Buffers the cardiac readers reuse every window; sized for a window's beats at channel start.
#[derive(Debug, Default)]
pub(super) struct BeatScratch {
    /// The beats of the current window.
    window_beats: Vec<Beat>,
    hrv: hrv::Intervals,
    amps: Vec<f64>,
}

impl BeatScratch {
    /// Room in every per-window beat buffer for `n` beats.
    pub(super) fn reserve(&mut self, n: usize) {
        self.window_beats.reserve(n.saturating_sub(self.window_beats.len()));
        self.amps.reserve(n.saturating_sub(self.amps.len()));
        self.hrv.reserve(n);
    }

    /// The beats of the channel that lie in its current window `ch`, into `window_beats`.
    fn collect(&mut self, st: &ChannelState, ch: &ChannelWindow) {
        let from = st.window_from(ch.values.len());
        self.window_beats.clear();
        match &st.processor {
            Processor::Ecg(_, kept) | Processor::Ppg(_, kept) => {
                self.window_beats.extend(kept.beats.iter().filter(|b| b.index >= from));
            }
            // An `rr` channel keeps exactly its window's beats.
            Processor::Rr(kept) => self.window_beats.extend(kept.beats.iter()),
            _ => {}
        }
    }

    /// HR, HRV, beat-derived respiration and the cardiac quality from the channel's beats.
    /// `motion` says the wearer moved (it lowers a PPG's quality, not an ECG's).
    /// `window_s` is the window's length (an `rr` channel's coverage is the time its intervals span).
    pub(super) fn heart(
        &mut self,
        st: &mut ChannelState,
        ch: &ChannelWindow,
        window_s: f64,
        motion: bool,
        fv: &mut FeatureVector,
    ) {
        self.collect(st, ch);
        let fs = st.beat_rate();
        let modality = ch.spec.modality;
        fv.cardiac_source = Some(modality);
        let (Processor::Ecg(_, kept) | Processor::Ppg(_, kept) | Processor::Rr(kept)) = &mut st.processor else {
            unreachable!("a cardiac channel has a beat processor");
        };
        self.hrv.load_beats(self.window_beats.iter().map(|b| b.index), fs);
        let hrv = hrv::from_intervals(
            self.window_beats.len(),
            hrv::HrvOptions::default(),
            &mut self.hrv,
            &mut kept.spectra.rr,
        );
        // A bare interval series has no beat amplitudes to derive respiration from.
        let derived =
            if modality == Modality::Rr { None } else { resp::derived_rate_of(&kept.spectra, &self.window_beats, fs) };
        let intervals = self.window_beats.len().saturating_sub(1);
        fv.set(Feature::BeatsN, self.window_beats.len() as f64);
        fv.set(Feature::BeatsRejected, hrv.corrected as f64);
        let mut flags = basic_flags(ch, &st.summary(ch));
        let rr_ok = if intervals > 0 { (intervals - hrv.corrected) as f32 / intervals as f32 } else { 0.0 };
        if rr_ok < 0.8 {
            flags.insert(Flags::IMPLAUSIBLE_RR);
        }
        let coverage = if ch.spec.is_event() {
            // The share of the window the intervals account for.
            let spanned_s =
                ch.values.iter().filter(|v| v.is_finite() && **v > 0.0).map(|&v| f64::from(v)).sum::<f64>() / 1000.0;
            (spanned_s / window_s).min(1.0) as f32
        } else {
            ch.coverage()
        };
        let mut score = coverage * rr_ok;
        if flags.contains(Flags::FLATLINE) {
            score = 0.0;
        }
        if modality == Modality::Ppg {
            // Movement corrupts the optical pulse far more than it does the ECG.
            if motion {
                flags.insert(Flags::MOTION);
                score *= 0.5;
            }
            if fv.value(Feature::PpgAmpCv) > PULSE_AMPLITUDE_CV_MAX {
                flags.insert(Flags::PULSE_ARTIFACT);
                score *= 0.5;
            }
        }
        let score = score.clamp(0.0, 1.0);
        fv.quality.push(Quality { modality, score, flags });
        fv.set(Feature::QualityCardiac, score as f64);
        // Too few clean beats leave HR/HRV as NaN (hrv::from_intervals decides), never a guess.
        fv.set(Feature::HrMeanBpm, hrv.hr_mean_bpm);
        fv.set(Feature::HrStdBpm, hrv.hr_std_bpm);
        fv.set(Feature::HrvSdnnMs, hrv.sdnn_ms);
        fv.set(Feature::HrvRmssdMs, hrv.rmssd_ms);
        fv.set(Feature::HrvPnn50, hrv.pnn50);
        fv.set(Feature::HrvLfMs2, hrv.lf_ms2);
        fv.set(Feature::HrvHfMs2, hrv.hf_ms2);
        fv.set(Feature::HrvLfHf, hrv.lf_hf);
        if let Some(rate) = derived {
            fv.set(Feature::RespRateCardiacBpm, rate);
        }
    }

    /// Pulse shape of a PPG channel: rise time (foot to systolic peak) and amplitude variability.
    pub(super) fn pulse_shape(&mut self, st: &ChannelState, ch: &ChannelWindow, fv: &mut FeatureVector) {
        self.collect(st, ch);
        let fs = ch.spec.rate_hz;
        if self.window_beats.len() < 5 {
            return;
        }
        let rise = self.window_beats.iter().map(|b| (b.index - b.foot) as f64 / fs * 1000.0);
        fv.set(Feature::PpgRiseMs, median(&mut self.amps, rise));
        self.amps.clear();
        self.amps.extend(self.window_beats.iter().map(|b| b.amplitude));
        if let Some((mean, std)) = dsp::mean_std(self.amps.iter().copied()) {
            if mean > 0.0 {
                fv.set(Feature::PpgAmpCv, std / mean);
            }
        }
    }
}

/// Median of `values`, sorted in `buf` (reused, so no allocation); `NaN` when there are none.
fn median(buf: &mut Vec<f64>, values: impl Iterator<Item = f64>) -> f64 {
    buf.clear();
    buf.extend(values);
    if buf.is_empty() {
        return f64::NAN;
    }
    buf.sort_by(f64::total_cmp);
    buf[buf.len() / 2]
}
