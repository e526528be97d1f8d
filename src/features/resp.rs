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
use super::hrv::lomb_scargle;

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

/// Reusable buffers for [`derived_rate_bpm`].
#[derive(Debug, Default)]
pub struct DerivedScratch {
    t_amp: Vec<f64>,
    amp: Vec<f64>,
    t_rr: Vec<f64>,
    rr: Vec<f64>,
    trig: Vec<(f64, f64)>,
}

impl DerivedScratch {
    /// Room for `beats` beats, so [`derived_rate_bpm`] over that many never allocates.
    pub fn reserve(&mut self, beats: usize) {
        for v in [&mut self.t_amp, &mut self.amp, &mut self.t_rr, &mut self.rr] {
            v.reserve(beats.saturating_sub(v.len()));
        }
    }
}

/// Breathing rate (breaths/min) from a window's beats at `fs` Hz, or `None` when the beats span
/// under 30 s, are too few, or carry no modulation.
pub fn derived_rate_bpm(beats: &[Beat], fs: f64, s: &mut DerivedScratch) -> Option<f64> {
    if beats.len() < 15 || (beats[beats.len() - 1].index - beats[0].index) as f64 / fs < 30.0 {
        return None;
    }
    s.t_amp.clear();
    s.amp.clear();
    s.t_rr.clear();
    s.rr.clear();
    for (k, b) in beats.iter().enumerate() {
        let t = b.index as f64 / fs;
        if b.amplitude.is_finite() {
            s.t_amp.push(t);
            s.amp.push(b.amplitude);
        }
        if k > 0 {
            let rr = (b.index - beats[k - 1].index) as f64 / fs;
            // Missed or extra beats would put their own spikes into the spectrum.
            if (0.3..=2.0).contains(&rr) {
                s.t_rr.push(t);
                s.rr.push(rr);
            }
        }
    }
    // The RR series stands in when the amplitudes are missing or flat.
    let amp_var = detrend(&s.t_amp, &mut s.amp);
    let rr_var = detrend(&s.t_rr, &mut s.rr);
    if amp_var.is_none() && rr_var.is_none() {
        return None;
    }
    // 0.1–0.5 Hz in 0.005 Hz steps: 6–30 breaths/min at 0.3 breath/min resolution; beats come at
    // about 1 Hz, so faster breathing cannot be told apart from the beat sampling itself. The
    // scan starts a step below and ends a step above the band so that only a true local maximum
    // counts: a spectrum still falling at 0.1 Hz is the tail of slow (Mayer-wave, ~0.1 Hz and
    // below) heart-rate variation, not a breath.
    let power = |f: f64, s: &mut DerivedScratch| match (amp_var, rr_var) {
        (Some(v), _) => lomb_scargle(&s.t_amp, &s.amp, f, &mut s.trig) / v,
        (None, Some(v)) => lomb_scargle(&s.t_rr, &s.rr, f, &mut s.trig) / v,
        (None, None) => 0.0,
    };
    let mut best: Option<(f64, f64)> = None;
    let (mut before, mut here) = (power(0.095, s), power(0.1, s));
    for k in 0..=80 {
        let f = 0.1 + 0.005 * k as f64;
        let after = power(f + 0.005, s);
        if here > before && here >= after && best.is_none_or(|(_, p)| here > p) {
            best = Some((f, here));
        }
        (before, here) = (here, after);
    }
    best.map(|(f, _)| f * 60.0)
}

/// Subtract the least-squares line through `(t, x)`; return the residual variance, or `None` for
/// fewer than 10 values or no variance. Electrode and posture drift over a window is slower than
/// any breath and would otherwise lift the lowest frequencies.
fn detrend(t: &[f64], x: &mut [f64]) -> Option<f64> {
    if x.len() < 10 {
        return None;
    }
    let n = x.len() as f64;
    let (mt, mx) = (t.iter().sum::<f64>() / n, x.iter().sum::<f64>() / n);
    let (mut stt, mut stx) = (0.0, 0.0);
    for (&ti, &xi) in t.iter().zip(x.iter()) {
        stt += (ti - mt) * (ti - mt);
        stx += (ti - mt) * (xi - mx);
    }
    let slope = if stt > 0.0 { stx / stt } else { 0.0 };
    x.iter_mut().zip(t).for_each(|(v, &ti)| *v -= mx + slope * (ti - mt));
    let var = x.iter().map(|v| v * v).sum::<f64>() / n;
    (var > 1e-12 * mx * mx).then_some(var)
}

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
