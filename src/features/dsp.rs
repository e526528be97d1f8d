//! Small DSP building blocks shared by the streaming detectors: biquad filters (RBJ cookbook,
//! Butterworth Q), [`FiniteHold`] (filters never see NaN or infinity), [`History`] (a fixed ring
//! addressed by absolute sample number) and [`mean_std`]. Nothing here allocates after
//! construction.

use std::f64::consts::PI;

/// A second-order IIR section in direct form II transposed.
#[derive(Debug, Clone, Copy)]
pub struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
    z1: f64,
    z2: f64,
}

const BUTTERWORTH_Q: f64 = std::f64::consts::FRAC_1_SQRT_2;

impl Biquad {
    fn from_coeffs(b: [f64; 3], a: [f64; 3]) -> Self {
        Biquad { b0: b[0] / a[0], b1: b[1] / a[0], b2: b[2] / a[0], a1: a[1] / a[0], a2: a[2] / a[0], z1: 0.0, z2: 0.0 }
    }

    /// 2nd-order Butterworth low-pass. `cutoff_hz` is clamped below Nyquist.
    pub fn lowpass(cutoff_hz: f64, fs: f64) -> Self {
        let w0 = 2.0 * PI * cutoff_hz.min(0.45 * fs) / fs;
        let (s, c) = w0.sin_cos();
        let alpha = s / (2.0 * BUTTERWORTH_Q);
        Biquad::from_coeffs([(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0], [1.0 + alpha, -2.0 * c, 1.0 - alpha])
    }

    /// 2nd-order Butterworth high-pass.
    pub fn highpass(cutoff_hz: f64, fs: f64) -> Self {
        let w0 = 2.0 * PI * cutoff_hz.min(0.45 * fs) / fs;
        let (s, c) = w0.sin_cos();
        let alpha = s / (2.0 * BUTTERWORTH_Q);
        Biquad::from_coeffs([(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0], [1.0 + alpha, -2.0 * c, 1.0 - alpha])
    }

    /// Start the filter as if it had seen `x` forever, so a step at the window start does not ring.
    pub fn settle(&mut self, x: f64) {
        // Steady state of DF2T for constant input x with output y = H(1) x.
        let gain = (self.b0 + self.b1 + self.b2) / (1.0 + self.a1 + self.a2);
        let y = gain * x;
        self.z2 = self.b2 * x - self.a2 * y;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
    }

    #[inline]
    pub fn process(&mut self, x: f64) -> f64 {
        let y = self.b0 * x + self.z1;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
        self.z2 = self.b2 * x - self.a2 * y;
        y
    }
}

/// Mean and population standard deviation of the finite values; `None` when there are none.
pub fn mean_std(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut n, mut mean, mut m2) = (0u64, 0.0, 0.0);
    for v in values.filter(|v| v.is_finite()) {
        n += 1;
        let d = v - mean;
        mean += d / n as f64;
        m2 += d * (v - mean);
    }
    (n > 0).then(|| (mean, (m2 / n as f64).sqrt()))
}

/// The newest values of a derived signal, addressed by absolute sample number: a fixed ring so
/// streaming detectors can look back (refinement, search-back) without growing.
#[derive(Debug, Clone)]
pub struct History {
    buf: Vec<f64>,
    /// Absolute number of the next value to be pushed.
    next: u64,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History { buf: vec![0.0; capacity.max(1)], next: 0 }
    }

    #[inline]
    pub fn push(&mut self, v: f64) {
        let cap = self.buf.len() as u64;
        self.buf[(self.next % cap) as usize] = v;
        self.next += 1;
    }

    /// Number of values ever pushed (the newest is `len() - 1`).
    pub fn len(&self) -> u64 {
        self.next
    }

    pub fn is_empty(&self) -> bool {
        self.next == 0
    }

    /// Oldest absolute index still held.
    pub fn oldest(&self) -> u64 {
        self.next.saturating_sub(self.buf.len() as u64)
    }

    /// Value `i`; indices outside what is held are clamped to the nearest held one.
    #[inline]
    pub fn get(&self, i: u64) -> f64 {
        if self.next == 0 {
            return 0.0;
        }
        let i = i.clamp(self.oldest(), self.next - 1);
        self.buf[(i % self.buf.len() as u64) as usize]
    }

    /// Index of the value in `[lo, hi]` (clamped to what is held) that maximises `key`; the first
    /// one on ties.
    pub fn argmax_by(&self, lo: u64, hi: u64, key: impl Fn(f64) -> f64) -> u64 {
        let lo = lo.max(self.oldest());
        let hi = hi.min(self.next.saturating_sub(1)).max(lo);
        let mut best = (lo, f64::NEG_INFINITY);
        for i in lo..=hi {
            let k = key(self.get(i));
            if k > best.1 {
                best = (i, k);
            }
        }
        best.0
    }

    /// Largest value in `[lo, hi]` (clamped).
    pub fn max_in(&self, lo: u64, hi: u64) -> f64 {
        let lo = lo.max(self.oldest());
        (lo..=hi.min(self.next.saturating_sub(1))).map(|i| self.get(i)).fold(f64::NEG_INFINITY, f64::max)
    }
}

/// Holds the last finite sample so a NaN or infinity cannot poison a filter's state.
#[derive(Debug, Clone, Copy, Default)]
pub struct FiniteHold {
    last: Option<f64>,
}

impl FiniteHold {
    /// The sample, or the last finite one; `(value, first)` where `first` is true for the first
    /// finite sample of the stream (filters settle on it). Before any finite sample: `None`.
    #[inline]
    pub fn take(&mut self, x: f32) -> Option<(f64, bool)> {
        if x.is_finite() {
            let first = self.last.is_none();
            self.last = Some(x as f64);
            Some((x as f64, first))
        } else {
            self.last.map(|v| (v, false))
        }
    }

    /// The held sample, settling `filters` on the stream's first finite value (as if it had
    /// lasted forever, so the start does not ring). `None` before any finite sample.
    #[inline]
    pub fn next(&mut self, x: f32, filters: &mut [&mut Biquad]) -> Option<f64> {
        let (v, first) = self.take(x)?;
        if first {
            filters.iter_mut().for_each(|f| f.settle(v));
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(f: f64, fs: f64, n: usize) -> Vec<f32> {
        (0..n).map(|i| (2.0 * PI * f * i as f64 / fs).sin() as f32).collect()
    }

    fn rms(x: &[f64]) -> f64 {
        (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// High-pass then low-pass, both settled on the first finite sample as the detectors do.
    fn bandpass(input: &[f32], fs: f64, low_hz: f64, high_hz: f64) -> Vec<f64> {
        let (mut hp, mut lp) = (Biquad::highpass(low_hz, fs), Biquad::lowpass(high_hz, fs));
        let mut hold = FiniteHold::default();
        let mut out = Vec::with_capacity(input.len());
        for &x in input {
            if let Some(v) = hold.next(x, &mut [&mut hp, &mut lp]) {
                out.push(lp.process(hp.process(v)));
            }
        }
        out
    }

    #[test]
    fn bandpass_passes_the_band_and_stops_the_rest() {
        let fs = 360.0;
        let pass = rms(&bandpass(&sine(10.0, fs, 3600), fs, 5.0, 15.0)[1000..]);
        let low = rms(&bandpass(&sine(0.3, fs, 3600), fs, 5.0, 15.0)[1000..]);
        let high = rms(&bandpass(&sine(60.0, fs, 3600), fs, 5.0, 15.0)[1000..]);
        assert!(pass > 0.5, "{pass}");
        assert!(low < 0.01, "{low}");
        assert!(high < 0.1, "{high}");
    }

    #[test]
    fn settled_lowpass_has_no_startup_transient() {
        let mut lp = Biquad::lowpass(1.0, 4.0);
        let mut hold = FiniteHold::default();
        for x in [5.0f32; 100] {
            let v = hold.next(x, &mut [&mut lp]).expect("finite input");
            assert!((lp.process(v) - 5.0).abs() < 1e-9);
        }
    }

    #[test]
    fn finite_hold_carries_the_last_finite_sample() {
        let mut hold = FiniteHold::default();
        assert_eq!(hold.take(f32::NAN), None, "nothing finite yet");
        assert_eq!(hold.take(2.0), Some((2.0, true)));
        assert_eq!(hold.take(f32::INFINITY), Some((2.0, false)));
        assert_eq!(hold.take(3.0), Some((3.0, false)));
    }

    #[test]
    fn mean_std_skips_non_finite_values() {
        let (m, s) = mean_std([1.0, 3.0, f64::NAN].into_iter()).unwrap();
        assert_eq!((m, s), (2.0, 1.0));
        assert!(mean_std(std::iter::empty()).is_none());
    }
}
