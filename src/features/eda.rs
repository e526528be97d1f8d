//! Electrodermal activity, streaming: tonic level and phasic skin-conductance responses (SCRs).
//!
//! The signal is smoothed with a 1 Hz low-pass (SCRs rise over 0.5–5 s; faster wiggles are
//! electrode noise) and split into a tonic level (0.05 Hz low-pass, as NeuroKit2's `highpass`
//! decomposition) and the phasic rest. SCRs are trough-to-peak rises of the smoothed signal found
//! with a small hysteresis, so a rise interrupted by a noise wiggle stays one response; a rise
//! counts when it gains at least 0.01 µS in 0.5–5 s (Boucsein's conventional criteria). Works at
//! any rate from 4 Hz (Empatica E4) up.

use super::dsp::{Biquad, FiniteHold};

/// One skin-conductance response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scr {
    /// Absolute sample numbers of the onset (trough) and the peak.
    pub onset: u64,
    pub peak: u64,
    /// Peak minus onset level of the smoothed signal, µS.
    pub amplitude: f64,
    /// Onset to peak, seconds.
    pub rise_s: f64,
}

/// Smallest rise that counts as a response, µS.
pub const SCR_MIN_AMPLITUDE: f64 = 0.01;
/// Rise times outside this range are not SCRs (too fast: artefact; too slow: tonic drift).
pub const SCR_RISE_S: std::ops::RangeInclusive<f64> = 0.5..=5.0;
/// A turn is confirmed once the smoothed signal moves this far back, µS.
const HYSTERESIS: f64 = 0.003;
/// While the smoothed signal rises slower than this (µS/s) the response has not started yet: the
/// onset follows slow tonic drift up to the point where the steep phasic rise begins.
const ONSET_SLOPE: f64 = 0.01;

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Falling (or flat) since the lowest point `(index, value)`.
    Falling(u64, f64),
    /// Rising from `onset` to the highest point so far.
    Rising { onset: (u64, f64), top: (u64, f64) },
}

/// Streaming EDA processor for one channel.
#[derive(Debug)]
pub struct EdaStream {
    fs: f64,
    hold: FiniteHold,
    smooth: Biquad,
    tonic: Biquad,
    n: u64,
    phase: Option<Phase>,
    last: f64,
    /// The latest sample where the smoothed signal rose slower than `ONSET_SLOPE` (or fell).
    last_slow: (u64, f64),
}

/// Per-sample outputs: the smoothed and tonic levels.
#[derive(Debug, Clone, Copy)]
pub struct EdaSample {
    pub smooth: f64,
    pub tonic: f64,
}

impl EdaStream {
    pub fn new(fs: f64) -> Self {
        EdaStream {
            fs,
            hold: FiniteHold::default(),
            smooth: Biquad::lowpass(1.0, fs),
            tonic: Biquad::lowpass(0.05, fs),
            n: 0,
            phase: None,
            last: 0.0,
            last_slow: (0, 0.0),
        }
    }

    pub fn rate_hz(&self) -> f64 {
        self.fs
    }

    /// Feed one sample; a response confirmed by it goes to `scrs`. `None` before the first finite sample.
    pub fn push(&mut self, x: f32, scrs: &mut Vec<Scr>) -> Option<EdaSample> {
        let i = self.n;
        self.n += 1;
        let x = self.hold.next(x, &mut [&mut self.smooth, &mut self.tonic])?;
        let s = self.smooth.process(x);
        let tonic = self.tonic.process(x);
        let slope = if self.phase.is_none() { 0.0 } else { (s - self.last) * self.fs };
        self.last = s;
        if slope < ONSET_SLOPE {
            self.last_slow = (i, s);
        }
        self.phase = Some(match self.phase {
            None => Phase::Falling(i, s),
            Some(Phase::Falling(low_i, low)) => {
                if s < low {
                    Phase::Falling(i, s)
                } else if s > low + HYSTERESIS {
                    Phase::Rising { onset: (low_i, low), top: (i, s) }
                } else {
                    Phase::Falling(low_i, low)
                }
            }
            Some(Phase::Rising { onset, top }) => {
                if s > top.1 {
                    // Until the rise counts as a response, its start follows slow drift up to where
                    // the steep rise began; after that it stays (the rise slows again near its peak).
                    let small = top.1 - onset.1 < SCR_MIN_AMPLITUDE;
                    let onset = if small && self.last_slow.0 >= onset.0 { self.last_slow } else { onset };
                    Phase::Rising { onset, top: (i, s) }
                } else if s < top.1 - HYSTERESIS {
                    let amplitude = top.1 - onset.1;
                    let rise_s = (top.0 - onset.0) as f64 / self.fs;
                    if amplitude >= SCR_MIN_AMPLITUDE && SCR_RISE_S.contains(&rise_s) {
                        scrs.push(Scr { onset: onset.0, peak: top.0, amplitude, rise_s });
                    }
                    Phase::Falling(i, s)
                } else {
                    Phase::Rising { onset, top }
                }
            }
        });
        Some(EdaSample { smooth: s, tonic })
    }
}

/// Every SCR of a whole EDA record at `fs` Hz.
pub fn detect_scrs(eda: &[f32], fs: f64) -> Vec<Scr> {
    let mut stream = EdaStream::new(fs);
    let mut scrs = Vec::new();
    for &x in eda {
        stream.push(x, &mut scrs);
    }
    scrs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tonic level plus responses of `amp` µS rising over `rise` s at the given onsets, decaying
    /// with a 4 s time constant, plus a wiggle of ±1 nS at 1.7 Hz.
    fn synthetic(fs: f64, secs: f64, onsets: &[f64], amp: f64, rise: f64) -> Vec<f32> {
        (0..(fs * secs) as usize)
            .map(|i| {
                let t = i as f64 / fs;
                let mut v = 5.0 + 0.002 * t + 0.001 * (2.0 * std::f64::consts::PI * 1.7 * t).sin();
                for &t0 in onsets {
                    v += if t < t0 {
                        0.0
                    } else if t < t0 + rise {
                        amp * 0.5 * (1.0 - (std::f64::consts::PI * (t - t0) / rise).cos())
                    } else {
                        amp * (-(t - t0 - rise) / 4.0).exp()
                    };
                }
                v as f32
            })
            .collect()
    }

    #[test]
    fn responses_found_at_4_hz_and_at_1000_hz() {
        let onsets = [10.0, 30.0, 47.0];
        for fs in [4.0, 32.0, 1000.0] {
            let scrs = detect_scrs(&synthetic(fs, 60.0, &onsets, 0.2, 2.0), fs);
            assert_eq!(scrs.len(), 3, "fs {fs}: {scrs:?}");
            for (s, t0) in scrs.iter().zip(onsets) {
                let onset = s.onset as f64 / fs;
                assert!((onset - t0).abs() < 0.6, "fs {fs}: onset {onset} vs {t0}");
                assert!((s.amplitude - 0.2).abs() < 0.04, "fs {fs}: amplitude {}", s.amplitude);
                assert!((s.rise_s - 2.0).abs() < 0.7, "fs {fs}: rise {}", s.rise_s);
            }
        }
    }

    #[test]
    fn small_or_slow_rises_are_not_responses() {
        let fs = 8.0;
        assert!(detect_scrs(&synthetic(fs, 60.0, &[20.0], 0.005, 2.0), fs).is_empty());
        assert!(detect_scrs(&synthetic(fs, 60.0, &[20.0], 0.3, 12.0), fs).is_empty());
        assert!(detect_scrs(&[f32::NAN; 100], fs).is_empty());
        assert!(detect_scrs(&[3.0; 100], fs).is_empty());
    }
}
