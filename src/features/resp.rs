//! Respiration rate: from a belt (or any breathing waveform), streaming, and derived from the
//! heartbeats where no belt is worn.
//!
//! Belt: 0.1–0.7 Hz band-pass (6–42 breaths/min), then upward crossings of a hysteresis band of
//! ±20 % of the signal's running RMS, so noise near zero does not add breaths. Each crossing is a
//! breath event; a window's rate is breaths over the span between its first and last crossing.
//!
//! Derived: breathing modulates both the heart rate (respiratory sinus arrhythmia) and the beat
//! amplitude (chest impedance for ECG, venous return for PPG). Charlton et al. (2016) compare both
//! modulations; on the recordings here (benches/validation/signals.py, belt as reference) the
//! amplitude modulation alone gave the best rate, and adding the heart-rate modulation (by sum,
//! product or weights) made it worse: in driving and at rest the heart rate also carries slow
//! Mayer waves and baroreflex swings. So the rate is the highest local maximum over 0.1–0.5 Hz of
//! the Lomb–Scargle periodogram of the detrended beat amplitudes, and of the RR intervals only
//! when beats carry no amplitude (a chest strap that sends RR intervals alone).

use super::beats::Beat;
use super::dsp::{Biquad, FiniteHold};
use super::rr::BeatSpectra;
use super::spectrum::{Centre, SlidingPeriodogram};

/// Streaming breath detector for one breathing waveform.
#[derive(Debug)]
pub struct RespStream {
    fs: f64,
    hold: FiniteHold,
    hp: Biquad,
    lp: Biquad,
    /// Exponentially averaged power of the filtered signal (time constant ~10 s).
    power: f64,
    n: u64,
    settle: u64,
    below: bool,
}

impl RespStream {
    pub fn new(fs: f64) -> Self {
        RespStream {
            fs,
            hold: FiniteHold::default(),
            hp: Biquad::highpass(0.1, fs),
            lp: Biquad::lowpass(0.7, fs),
            power: 0.0,
            n: 0,
            // The 0.1 Hz high-pass needs about two seconds to forget its start.
            settle: (2.0 * fs) as u64,
            below: false,
        }
    }

    pub fn rate_hz(&self) -> f64 {
        self.fs
    }

    /// Feed samples; the sample number of each breath (upward crossing) goes to `breaths`.
    pub fn process(&mut self, samples: &[f32], breaths: &mut Vec<u64>) {
        for &x in samples {
            let i = self.n;
            self.n += 1;
            let Some(x) = self.hold.next(x, &mut [&mut self.hp]) else { continue };
            let y = self.lp.process(self.hp.process(x));
            if i < self.settle {
                continue;
            }
            let k = (i - self.settle + 1) as f64;
            self.power += (y * y - self.power) / k.min(10.0 * self.fs);
            let h = 0.2 * self.power.sqrt();
            if h <= 0.0 {
                continue;
            }
            if y < -h {
                self.below = true;
            } else if y > h && self.below {
                breaths.push(i);
                self.below = false;
            }
        }
    }
}

/// Breaths per minute from breath event sample numbers at `fs` Hz (at least two events).
pub fn rate_from_breaths(breaths: &[u64], fs: f64) -> Option<f64> {
    let (first, last) = (*breaths.first()?, *breaths.last()?);
    (breaths.len() >= 2 && last > first).then(|| (breaths.len() - 1) as f64 / ((last - first) as f64 / fs) * 60.0)
}

/// Reusable state for [`derived_rate_bpm`] over a batch of beats.
#[derive(Debug, Default)]
pub struct DerivedScratch {
    spectra: BeatSpectra,
}

/// Breathing rate (breaths/min) from a batch of beats at `fs` Hz: [`derived_rate_of`] after
/// loading them into fresh spectra.
pub fn derived_rate_bpm(beats: &[Beat], fs: f64, s: &mut DerivedScratch) -> Option<f64> {
    s.spectra.clear();
    for (k, b) in beats.iter().enumerate() {
        s.spectra.push(k.checked_sub(1).map(|j| &beats[j]), b, fs);
    }
    derived_rate_of(&s.spectra, beats, fs)
}

/// Breathing rate (breaths/min) from the spectra of a window's `beats` at `fs` Hz, or `None`
/// when the beats span under 30 s, are too few, or carry no modulation.
pub fn derived_rate_of(spectra: &BeatSpectra, beats: &[Beat], fs: f64) -> Option<f64> {
    let span_s = beats.last().zip(beats.first()).map_or(0.0, |(l, f)| (l.index - f.index) as f64 / fs);
    if beats.len() < 15 || span_s < 30.0 {
        return None;
    }
    // The RR series stands in when the amplitudes are missing or flat.
    let modulated = |p: &SlidingPeriodogram| {
        let (n, var, mean) = (p.len(), p.variance(Centre::Line)?, p.mean()?);
        // A constant series keeps a rounding residue of variance (the sums slide for hours), so
        // "no modulation" is a relative spread under ~3e-5; real beat amplitudes vary by percent.
        (n >= 10 && var > 1e-9 * mean * mean).then_some(())
    };
    let series = if modulated(&spectra.amp).is_some() {
        &spectra.amp
    } else if modulated(&spectra.rr).is_some() {
        &spectra.rr
    } else {
        return None;
    };
    // Bins of 0.005 Hz from 0.1025 to 0.4975 Hz: 6–30 breaths/min at 0.3 breath/min resolution;
    // beats come at about 1 Hz, so faster breathing cannot be told apart from the beat sampling
    // itself. Only a true local maximum counts (its neighbours, one bin outside the band, are
    // read too): a spectrum still falling at 0.1 Hz is the tail of slow (Mayer-wave, ~0.1 Hz and
    // below) heart-rate variation, not a breath.
    let power = |k: usize| series.power(k, Centre::Line);
    let mut best: Option<(usize, f64)> = None;
    let (mut before, mut here) = (power(DERIVED_BINS.start - 1), power(DERIVED_BINS.start));
    for k in DERIVED_BINS {
        let after = power(k + 1);
        if here > before && here >= after && best.is_none_or(|(_, p)| here > p) {
            best = Some((k, here));
        }
        (before, here) = (here, after);
    }
    best.map(|(k, _)| series.freq(k) * 60.0)
}

/// Bins of [`super::rr::rr_periodogram`] the derived rate scans: 0.1025–0.4975 Hz.
const DERIVED_BINS: std::ops::Range<usize> = 12..92;

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn belt_rate_at_several_sampling_rates() {
        for fs in [10.0, 100.0, 1000.0] {
            let x: Vec<f32> = (0..(fs * 60.0) as usize)
                .map(|i| {
                    let t = i as f64 / fs;
                    (3.0 + 0.5 * (2.0 * PI * 0.25 * t).sin() + 0.02 * (2.0 * PI * 3.0 * t).sin()) as f32
                })
                .collect();
            let mut breaths = Vec::new();
            RespStream::new(fs).process(&x, &mut breaths);
            let rate = rate_from_breaths(&breaths, fs).unwrap();
            assert!((rate - 15.0).abs() < 0.3, "fs {fs}: {rate}");
        }
    }

    #[test]
    fn rate_from_modulated_beats() {
        // 70 s of beats at ~72 bpm; breathing at 0.2 Hz (12/min) modulates RR by ±40 ms and the
        // amplitude by ±10 %.
        let fs = 250.0;
        let mut beats = Vec::new();
        let mut t = 0.5;
        while t < 70.0 {
            let phase = 2.0 * PI * 0.2 * t;
            beats.push(Beat { index: (t * fs) as u64, amplitude: 1.0 + 0.1 * phase.sin(), foot: (t * fs) as u64 });
            t += 0.83 + 0.04 * phase.sin();
        }
        let rate = derived_rate_bpm(&beats, fs, &mut DerivedScratch::default()).unwrap();
        assert!((rate - 12.0).abs() < 0.7, "{rate}");
        assert!(derived_rate_bpm(&beats[..10], fs, &mut DerivedScratch::default()).is_none());
        let flat: Vec<Beat> = (0..80).map(|k| Beat { index: k * 200, amplitude: 1.0, foot: k * 200 }).collect();
        assert!(derived_rate_bpm(&flat, fs, &mut DerivedScratch::default()).is_none());
        // RR intervals alone (constant amplitude, as from a strap that sends only RR) still tell.
        let rr_only: Vec<Beat> = beats.iter().map(|b| Beat { amplitude: 1.0, ..*b }).collect();
        let rate = derived_rate_bpm(&rr_only, fs, &mut DerivedScratch::default()).unwrap();
        assert!((rate - 12.0).abs() < 0.7, "RR only: {rate}");
    }

    #[test]
    fn slow_heart_rate_swings_are_not_breaths() {
        // Breathing at 0.3 Hz (18/min) in the amplitude; the heart rate wanders with a strong
        // 0.08 Hz Mayer wave, whose spectrum falls through the band's lower edge.
        let fs = 250.0;
        let mut beats = Vec::new();
        let mut t = 0.5;
        while t < 65.0 {
            let amplitude = 1.0 + 0.1 * (2.0 * PI * 0.3 * t).sin() + 0.02 * t / 65.0;
            beats.push(Beat { index: (t * fs) as u64, amplitude, foot: (t * fs) as u64 });
            t += 0.8 + 0.08 * (2.0 * PI * 0.08 * t).sin();
        }
        let rate = derived_rate_bpm(&beats, fs, &mut DerivedScratch::default()).unwrap();
        assert!((rate - 18.0).abs() < 0.7, "{rate}");
    }
}
