//! The PPG detector: Elgendi et al. (2013), streaming, with pulse feet. The outline is in
//! `beats/mod.rs`.

use super::beat::{Beat, HISTORY_S};
use crate::features::dsp::{Biquad, FiniteHold, History};

/// Streaming Elgendi systolic-peak detector for one PPG channel, with pulse feet.
#[derive(Debug)]
pub struct PpgDetector {
    fs: f64,
    hold: FiniteHold,
    hp: Biquad,
    lp: Biquad,
    /// 8 Hz low-pass only: keeps the pulse's true shape for the foot, which the high-pass bends.
    lp_shape: Biquad,
    band: History,
    shape: History,
    sq: History,
    ma_peak: History,
    ma_beat: History,
    sum_peak: f64,
    sum_beat: f64,
    /// Mean of the squared signal (Elgendi's z): cumulative, then exponential over ~20 s.
    mean_sq: f64,
    n_peak: u64,
    n_beat: u64,
    lag_peak: u64,
    lag_beat: u64,
    min_width: u64,
    min_gap: u64,
    max_rise: u64,
    /// How far from the band-passed peak the systolic peak of the low-passed pulse may lie.
    refine: u64,
    /// Group delay of `lp_shape` at pulse frequencies, samples.
    shape_delay: u64,
    block_start: Option<u64>,
    next_candidate: u64,
    last_peak: Option<u64>,
}

impl PpgDetector {
    /// A detector for `fs` Hz. Below 16 Hz the pulse cannot be resolved: it never reports beats.
    pub fn new(fs: f64) -> Self {
        let cap = (HISTORY_S * fs).ceil() as usize + 8;
        PpgDetector {
            fs,
            hold: FiniteHold::default(),
            hp: Biquad::highpass(0.5, fs),
            lp: Biquad::lowpass(8.0, fs),
            lp_shape: Biquad::lowpass(8.0, fs),
            band: History::new(cap),
            shape: History::new(cap),
            sq: History::new(cap),
            ma_peak: History::new(cap),
            ma_beat: History::new(cap),
            sum_peak: 0.0,
            sum_beat: 0.0,
            mean_sq: 0.0,
            n_peak: ((0.111 * fs).round() as u64).max(1),
            n_beat: ((0.667 * fs).round() as u64).max(1),
            // The trailing moving averages lag; read them half their windows later to centre them.
            lag_peak: (0.111 * fs / 2.0) as u64,
            lag_beat: (0.667 * fs / 2.0) as u64,
            min_width: (0.111 * fs) as u64,
            min_gap: (0.3 * fs) as u64,
            // The systolic upstroke lasts 0.1–0.4 s; look no further back for the foot.
            max_rise: (0.5 * fs) as u64,
            refine: (0.1 * fs).round() as u64,
            // A 2nd-order Butterworth low-pass delays low frequencies by √2 / (2π f_c).
            shape_delay: (std::f64::consts::SQRT_2 / (2.0 * std::f64::consts::PI * 8.0) * fs).round() as u64,
            block_start: None,
            next_candidate: 0,
            last_peak: None,
        }
    }

    pub fn rate_hz(&self) -> f64 {
        self.fs
    }

    /// Feed samples; pulses confirmed meanwhile are appended to `beats`.
    pub fn process(&mut self, samples: &[f32], beats: &mut Vec<Beat>) {
        if self.fs < 16.0 {
            return;
        }
        for &x in samples {
            self.push(x, beats);
        }
    }

    fn push(&mut self, x: f32, beats: &mut Vec<Beat>) {
        let x = self.hold.next(x, &mut [&mut self.hp, &mut self.lp_shape]).unwrap_or(0.0);
        let b = self.lp.process(self.hp.process(x));
        self.band.push(b);
        self.shape.push(self.lp_shape.process(x));
        let i = self.band.len() - 1;
        // Clip negatives and square: only the systolic part of each pulse counts.
        let s = if b > 0.0 { b * b } else { 0.0 };
        self.sq.push(s);
        let n = (i + 1) as f64;
        self.mean_sq += (s - self.mean_sq) / n.min(20.0 * self.fs);
        self.sum_peak += s;
        self.sum_beat += s;
        if i >= self.n_peak {
            self.sum_peak -= self.sq.get(i - self.n_peak);
        }
        if i >= self.n_beat {
            self.sum_beat -= self.sq.get(i - self.n_beat);
        }
        self.ma_peak.push(self.sum_peak.max(0.0) / (i + 1).min(self.n_peak) as f64);
        self.ma_beat.push(self.sum_beat.max(0.0) / (i + 1).min(self.n_beat) as f64);
        while self.next_candidate + self.lag_beat <= i {
            let c = self.next_candidate;
            self.next_candidate += 1;
            self.examine(c, beats);
        }
    }

    fn examine(&mut self, i: u64, beats: &mut Vec<Beat>) {
        let beta = 0.02;
        let inside = self.ma_peak.get(i + self.lag_peak) > self.ma_beat.get(i + self.lag_beat) + beta * self.mean_sq;
        match (inside, self.block_start) {
            (true, None) => self.block_start = Some(i),
            (false, Some(s)) => {
                self.block_start = None;
                if i - s < self.min_width {
                    return;
                }
                let band_peak = self.band.argmax_by(s, i - 1, |v| v);
                // The band-passed peak shifts with the high-pass's response to the baseline, by a
                // sample or two from beat to beat; the systolic peak proper is the maximum of the
                // low-passed pulse near it. Interval jitter halves (benches/validation/signals.py).
                let after_last = self.last_peak.map_or(0, |q| q + 1);
                let p = self.shape.argmax_by(
                    band_peak.saturating_sub(self.refine).max(after_last),
                    band_peak + self.refine,
                    |v| v,
                );
                if self.last_peak.is_some_and(|q| p < q + self.min_gap) {
                    return;
                }
                let lo = p.saturating_sub(self.max_rise).max(after_last);
                let foot = self.shape.argmax_by(lo, p, |v| -v);
                let amplitude = self.shape.get(p) - self.shape.get(foot);
                self.last_peak = Some(p);
                // Reported on the raw signal's clock: `shape` runs `shape_delay` samples late.
                beats.push(Beat {
                    index: p.saturating_sub(self.shape_delay),
                    amplitude,
                    foot: foot.saturating_sub(self.shape_delay),
                });
            }
            _ => {}
        }
    }
}
