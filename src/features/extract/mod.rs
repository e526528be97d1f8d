//! [`FeatureExtractor`]: one subject's feature stage. `extract` feeds each window channel's fresh
//! samples to its [`ChannelState`] once, then asks one reader per modality to turn the channel's
//! events and block summaries into features and a [`Quality`](super::Quality):
//! `motion.rs` (accelerometer), `cardiac.rs` (ECG or PPG beats, pulse shape), `electrodermal.rs`,
//! `respiration.rs` (belt), `temperature.rs`. Last, the baseline turns the raw features into
//! their `z_` twins.

mod cardiac;
mod electrodermal;
mod motion;
mod respiration;
mod temperature;

use super::baseline;
use super::beats::{Beat, MIN_BEAT_INTERVAL_S};
use super::channel::{event_capacity, ChannelState};
use super::names::{feature_index, Feature, FEATURE_NAMES, Z_COUNT, Z_START};
use super::vector::FeatureVector;
use crate::signal::Modality;
use crate::window::Window;
use cardiac::BeatScratch;
use motion::AccState;

/// Reusable state of the feature stage for one subject: one streaming processor per channel.
#[derive(Debug, Default)]
pub struct FeatureExtractor {
    channels: Vec<Option<ChannelState>>,
    /// Window hop in seconds, for block sizes (block statistics merge one block per hop).
    hop_s: Option<f64>,
    out: Option<FeatureVector>,
    // Scratch reused every window.
    fresh_beats: Vec<Beat>,
    beats: BeatScratch,
    acc_mag: Option<AccState>,
    baseline: Option<baseline::Baseline>,
    /// Index of the raw feature of each `z_` twin.
    baseline_index: [usize; Z_COUNT],
}

impl FeatureExtractor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hint of the hop in seconds (from `[window]`), so block statistics merge per hop.
    pub fn with_hop(hop_s: f64) -> Self {
        FeatureExtractor { hop_s: Some(hop_s), ..Self::default() }
    }

    /// Report `z_` features against the first `baseline_s` seconds of windows (`[features]`).
    pub fn with_baseline(mut self, baseline_s: f64) -> Self {
        self.baseline = Some(baseline::Baseline::new(baseline_s));
        self.baseline_index = std::array::from_fn(|k| {
            feature_index(&FEATURE_NAMES[Z_START + k][2..]).expect("a z_ twin names a feature")
        });
        self
    }

    /// Compute every feature the window's channels allow. Windows must come in order; each
    /// channel's `fresh` samples are fed to its processor exactly once.
    pub fn extract(&mut self, window: &Window) -> &FeatureVector {
        let mut fv = self.out.take().unwrap_or_else(FeatureVector::empty);
        fv.reset();
        if self.channels.len() != window.channels.len() {
            self.channels.resize_with(window.channels.len(), || None);
        }
        let hop_s = self.hop_s.unwrap_or(window.end - window.start).max(1e-3);
        let mut reserve_beats = 0;
        for (state, ch) in self.channels.iter_mut().zip(&window.channels) {
            // A new channel, or one whose rate or kind changed (a device reconfigured): start
            // over on this window's samples.
            let stale = state.as_ref().is_none_or(|s| s.rate_hz != ch.spec.rate_hz || s.modality != ch.spec.modality);
            let fresh = if stale {
                *state = Some(ChannelState::new(ch, ((hop_s * ch.spec.rate_hz).round() as usize).max(1)));
                if matches!(ch.spec.modality, Modality::Ecg | Modality::Ppg | Modality::Rr) {
                    let beats = event_capacity(ch.values.len(), ch.spec.rate_hz, MIN_BEAT_INTERVAL_S);
                    self.fresh_beats.reserve(beats.saturating_sub(self.fresh_beats.len()));
                    reserve_beats = reserve_beats.max(beats);
                }
                &ch.values[..]
            } else {
                &ch.values[ch.values.len() - ch.fresh.min(ch.values.len())..]
            };
            state.as_mut().expect("state just set").advance(fresh, ch.values.len(), &mut self.fresh_beats);
        }
        if reserve_beats > 0 {
            self.beats.reserve(reserve_beats);
        }
        motion::read(&mut self.acc_mag, &self.channels, window, hop_s, &mut fv);
        let motion = fv.value(Feature::Motion) > 0.5;
        // ECG is preferred for the heart when worn: sharper beats, less motion artefact; then a
        // strap's own RR intervals (detected on the device at 1 kHz); then PPG, which still gives
        // its pulse-shape features.
        let find = |m: Modality| window.channels.iter().position(|c| c.spec.modality == m && !c.values.is_empty());
        let (ecg, rr, ppg) = (find(Modality::Ecg), find(Modality::Rr), find(Modality::Ppg));
        if let Some(k) = ppg {
            self.beats.pulse_shape(state(&self.channels, k), &window.channels[k], &mut fv);
        }
        if let Some(k) = ecg.or(rr).or(ppg) {
            let st = self.channels[k].as_mut().expect("state per channel");
            self.beats.heart(st, &window.channels[k], window.end - window.start, motion, &mut fv);
        }
        if let Some(k) = find(Modality::Eda) {
            electrodermal::read(state(&self.channels, k), &window.channels[k], &mut fv);
        }
        if let Some(k) = find(Modality::Resp) {
            respiration::read(state(&self.channels, k), &window.channels[k], &mut fv);
        }
        if let Some(k) = find(Modality::Temp) {
            temperature::read(state(&self.channels, k), &window.channels[k], &mut fv);
        }
        if let Some(b) = &mut self.baseline {
            let raw = self.baseline_index.map(|i| fv.values[i]);
            let (_, z) = fv.values.split_at_mut(Z_START);
            fv.baseline = b.observe(window.start, window.end, &raw, z);
        }
        self.out = Some(fv);
        self.out.as_ref().expect("just stored")
    }
}

/// The state of window channel `k`, which `extract` has just fed.
fn state(channels: &[Option<ChannelState>], k: usize) -> &ChannelState {
    channels[k].as_ref().expect("state per channel")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::beats::Beat;
    use crate::features::channel::Processor;
    use crate::features::quality::Flags;
    use crate::features::{hrv, resp};
    use crate::signal::ChannelSpec;
    use crate::window::ChannelWindow;
    use std::time::Instant;

    fn window(channels: Vec<ChannelWindow>) -> Window {
        Window { subject: "s".into(), seq: 0, start: 0.0, end: 60.0, channels, last_arrival: Instant::now() }
    }

    fn cw(name: &str, m: Modality, fs: f64, values: Vec<f32>) -> ChannelWindow {
        ChannelWindow { spec: ChannelSpec::new(name, m, "u", fs), fresh: values.len(), values, missing: 0 }
    }

    #[test]
    fn an_rr_channel_gives_the_hrv_of_its_intervals_window_after_window() {
        // Intervals swinging ±40 ms at 0.25 Hz around 850 ms: a strap's own RR values.
        let mut rr = Vec::new();
        let mut t = 0.0;
        while t < 300.0 {
            let v = 850.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.25 * t).sin();
            rr.push((t + v / 1000.0, v as f32));
            t += v / 1000.0;
        }
        let mut extractor = FeatureExtractor::with_hop(5.0);
        let mut checked = 0;
        let mut previous_end: f64 = 0.0;
        for k in 0..48 {
            let (start, end) = (k as f64 * 5.0, k as f64 * 5.0 + 60.0);
            let values: Vec<f32> = rr.iter().filter(|(t, _)| *t >= start && *t < end).map(|(_, v)| *v).collect();
            let fresh = rr.iter().filter(|(t, _)| *t >= previous_end.max(start) && *t < end).count();
            previous_end = end;
            let mut ch = cw("rr", Modality::Rr, 1.0, values.clone());
            ch.fresh = fresh;
            let mut w = window(vec![ch]);
            (w.start, w.end) = (start, end);
            let fv = extractor.extract(&w).clone();
            // The batch HRV of exactly the window's intervals, as beats at their cumulative times.
            let mut at = 0usize;
            let mut peaks = vec![0usize];
            for v in &values {
                at += (f64::from(*v) * 1000.0).round() as usize;
                peaks.push(at);
            }
            let batch = hrv::from_peaks(&peaks, 1e6, hrv::HrvOptions::default(), &mut hrv::HrvScratch::default());
            let close = |f: Feature, want: f64| (f64::from(fv.value(f)) - want).abs() <= 1e-4 * want.abs().max(1.0);
            assert!(
                close(Feature::HrMeanBpm, batch.hr_mean_bpm),
                "window {k}: {} vs {}",
                fv.value(Feature::HrMeanBpm),
                batch.hr_mean_bpm
            );
            assert!(close(Feature::HrvRmssdMs, batch.rmssd_ms), "window {k}");
            assert!(close(Feature::HrvHfMs2, batch.hf_ms2), "window {k}");
            assert!((f64::from(fv.value(Feature::HrMeanBpm)) - 60_000.0 / 850.0).abs() < 1.0);
            assert_eq!(fv.cardiac_source, Some(Modality::Rr));
            assert!(fv.value(Feature::QualityCardiac) > 0.95, "window {k}: {}", fv.value(Feature::QualityCardiac));
            assert!(fv.value(Feature::RespRateCardiacBpm).is_nan(), "no amplitudes, no derived respiration");
            checked += 1;
        }
        assert_eq!(checked, 48);
    }

    #[test]
    fn sliding_hrv_and_derived_respiration_equal_the_batch_ones_on_every_window() {
        // 5 minutes of synthetic ECG at 250 Hz: narrow R waves whose spacing follows breathing
        // (0.25 Hz) and a slow swing, amplitude modulated by breathing, an early beat now and then.
        let fs = 250.0;
        let n = (300.0 * fs) as usize;
        let mut ecg = vec![0.0f32; n];
        let mut t = 0.6;
        let mut k = 0;
        while t < 299.0 {
            let amp = 1.0 + 0.15 * (2.0 * std::f64::consts::PI * 0.25 * t).sin();
            let c = (t * fs) as usize;
            for (j, v) in ecg.iter_mut().enumerate().take((c + 8).min(n)).skip(c.saturating_sub(8)) {
                let d = (j as f64 - c as f64) / 3.0;
                *v += (amp * (-d * d).exp()) as f32;
            }
            k += 1;
            let ectopic = k % 37 == 0;
            t += if ectopic { 0.45 } else { 0.85 + 0.05 * (2.0 * std::f64::consts::PI * 0.25 * t).sin() };
        }
        let (len, hop) = ((60.0 * fs) as usize, (5.0 * fs) as usize);
        let mut extractor = FeatureExtractor::with_hop(5.0);
        let mut checked = 0;
        for start in (0..=n - len).step_by(hop) {
            let mut ch = cw("ecg", Modality::Ecg, fs, ecg[start..start + len].to_vec());
            ch.fresh = if start == 0 { len } else { hop };
            let fv = extractor.extract(&window(vec![ch])).clone();
            // The batch functions over the very beats the window holds.
            let Some(Processor::Ecg(_, kept)) = extractor.channels[0].as_ref().map(|s| &s.processor) else {
                panic!("ecg state")
            };
            let from = start as u64;
            let beats: Vec<Beat> = kept.beats.iter().copied().filter(|b| b.index >= from).collect();
            assert_eq!(beats.len(), kept.beats.len(), "the queue holds exactly the window's beats");
            let peaks: Vec<usize> = beats.iter().map(|b| (b.index - from) as usize).collect();
            let batch = hrv::from_peaks(&peaks, fs, hrv::HrvOptions::default(), &mut Default::default());
            let close = |name: &str, want: f64| {
                let got = fv.get(name).unwrap() as f64;
                assert!(
                    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-4 * want.abs().max(1e-3),
                    "window at {start}: {name} {got} vs batch {want}"
                );
            };
            close("hrv_sdnn_ms", batch.sdnn_ms);
            close("hrv_lf_ms2", batch.lf_ms2);
            close("hrv_hf_ms2", batch.hf_ms2);
            close("beats_rejected", batch.corrected as f64);
            let derived = resp::derived_rate_bpm(&beats, fs, &mut Default::default());
            close("resp_rate_cardiac_bpm", derived.unwrap_or(f64::NAN));
            assert!(batch.corrected > 0 && derived.is_some_and(|r| (r - 15.0).abs() < 1.0), "{batch:?} {derived:?}");
            checked += 1;
        }
        assert_eq!(checked, 49);
    }

    #[test]
    fn empty_window_gives_all_nan_and_no_panic() {
        let fv = FeatureExtractor::new().extract(&window(vec![])).clone();
        assert!(fv.values.iter().all(|v| v.is_nan()));
        assert!(fv.quality.is_empty());
    }

    #[test]
    fn flat_channels_are_flagged_not_guessed() {
        let w = window(vec![
            cw("ecg", Modality::Ecg, 100.0, vec![0.5; 6000]),
            cw("eda", Modality::Eda, 4.0, vec![2.0; 240]),
        ]);
        let fv = FeatureExtractor::new().extract(&w).clone();
        assert!(fv.get("hr_mean_bpm").unwrap().is_nan());
        assert_eq!(fv.get("quality_cardiac"), Some(0.0));
        assert!(fv.quality[0].flags.contains(Flags::FLATLINE));
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
        let fv = FeatureExtractor::new().extract(&w).clone();
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
        let fv = FeatureExtractor::new().extract(&w).clone();
        assert_eq!(fv.get("scr_count"), Some(2.0));
        let rr = fv.get("resp_rate_bpm").unwrap();
        assert!((rr - 15.0).abs() < 0.5, "{rr}");
    }
}
