//! Heartbeat detection, streaming: R peaks in ECG, systolic peaks and feet in PPG.
//!
//! ECG follows Pan & Tompkins (1985): 5–15 Hz band-pass, derivative, squaring, 150 ms moving
//! integration, adaptive signal/noise peak levels with a refractory period, a T-wave test and a
//! search-back for missed beats; each detection is refined to the R wave nearby. PPG follows
//! Elgendi et al. (2013): 0.5–8 Hz band-pass, clipped and squared, two moving averages (111 ms and
//! 667 ms) marking blocks of interest, one systolic peak per block; the foot is the trough before it.
//!
//! Both detectors take samples as they arrive and report each beat once, a fixed delay after it
//! (about 100 ms for ECG, 350 ms for PPG: the look-ahead refinement and centring need). Their
//! state is a few fixed rings, so a hop costs what its samples cost and nothing is allocated
//! after start-up. Beats carry absolute sample numbers of the stream. `detect_ecg`/`detect_ppg`
//! run the same detectors over a whole record (the CLI and the validation scripts use them).

mod beat;
mod ecg;
mod ppg;

pub use beat::{Beat, MIN_BEAT_INTERVAL_S};
pub use ecg::EcgDetector;
pub use ppg::PpgDetector;

/// R-peak sample indices of a whole ECG record at `fs` Hz.
pub fn detect_ecg(ecg: &[f32], fs: f64) -> Vec<usize> {
    let mut beats = Vec::new();
    let mut detector = EcgDetector::new(fs);
    detector.process(ecg, &mut beats);
    detector.finish(&mut beats);
    beats.into_iter().map(|b| b.index as usize).collect()
}

/// R-peak sample indices with, for each, the number of samples the detector had been fed when
/// it confirmed the beat (fed one sample at a time; a beat only `finish` reports gets the
/// record's length). The confirmation delay is the difference, over `fs`.
pub fn detect_ecg_confirmed(ecg: &[f32], fs: f64) -> Vec<(usize, usize)> {
    let mut beats = Vec::new();
    let mut out = Vec::new();
    let mut detector = EcgDetector::new(fs);
    for (k, x) in ecg.iter().enumerate() {
        detector.process(std::slice::from_ref(x), &mut beats);
        out.extend(beats.drain(..).map(|b| (b.index as usize, k + 1)));
    }
    detector.finish(&mut beats);
    out.extend(beats.drain(..).map(|b| (b.index as usize, ecg.len())));
    out
}

/// Systolic peaks of a whole PPG record at `fs` Hz.
pub fn detect_ppg(ppg: &[f32], fs: f64) -> Vec<Beat> {
    let mut beats = Vec::new();
    PpgDetector::new(fs).process(ppg, &mut beats);
    beats
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crude but physiological-looking ECG: narrow Gaussian QRS at given beat times plus wander.
    fn synthetic_ecg(fs: f64, secs: f64, rr: f64) -> (Vec<f32>, Vec<usize>) {
        let n = (fs * secs) as usize;
        let mut x = vec![0f32; n];
        let mut beats = Vec::new();
        let mut t = 0.5;
        while t < secs - 0.5 {
            beats.push((t * fs) as usize);
            t += rr;
        }
        for (i, v) in x.iter_mut().enumerate() {
            let ti = i as f64 / fs;
            let mut s = 0.3 * (2.0 * std::f64::consts::PI * 0.2 * ti).sin();
            for &b in &beats {
                let d = ti - b as f64 / fs;
                s += (-d * d / (2.0 * 0.01f64.powi(2))).exp();
            }
            *v = s as f32;
        }
        (x, beats)
    }

    #[test]
    fn ecg_peaks_found_at_several_rates() {
        for fs in [100.0, 130.0, 360.0, 1000.0] {
            let (x, truth) = synthetic_ecg(fs, 20.0, 0.8);
            let peaks = detect_ecg(&x, fs);
            assert_eq!(peaks.len(), truth.len(), "fs {fs}: {peaks:?}");
            for (p, t) in peaks.iter().zip(&truth) {
                assert!((*p as f64 - *t as f64).abs() <= 0.02 * fs, "fs {fs}: {p} vs {t}");
            }
        }
    }

    #[test]
    fn in_clean_signal_a_spike_just_before_a_qrs_is_reported_at_once() {
        let fs = 360.0;
        let (mut x, beats) = synthetic_ecg(fs, 30.0, 0.9);
        // A sharp 7 ms artefact 200 ms before beat 20, with under half the QRS's integrated
        // energy. While the signal is clean the detector confirms a beat at once (the per-beat
        // stream's 250 ms budget) and waits for no stronger rival, so the spike is reported and
        // the QRS falls in its refractory period: the documented cost of confirming early. The
        // rival rule still applies while the detector's noise level is high (results-qrs-noise.md).
        let spike = beats[20] - (0.2 * fs) as usize;
        for (k, v) in x.iter_mut().enumerate().skip(spike - 12).take(25) {
            let d = k as f64 - spike as f64;
            *v += (0.7 * (-d * d / (2.0 * 2.5 * 2.5)).exp()) as f32;
        }
        let found = detect_ecg(&x, fs);
        let near = |b: usize| found.iter().any(|&p| p.abs_diff(b) <= (0.05 * fs) as usize);
        assert!(near(spike), "the spike is reported");
        assert!(!near(beats[20]), "the QRS in its refractory period is not");
        assert!(beats.iter().enumerate().all(|(k, &b)| k == 20 || near(b)), "every other beat is found");
        assert_eq!(found.len(), beats.len());
    }

    #[test]
    fn degenerate_inputs_give_no_peaks_and_no_panic() {
        assert!(detect_ecg(&[], 360.0).is_empty());
        assert!(detect_ecg(&[0.0; 3600], 360.0).is_empty());
        assert!(detect_ecg(&[f32::NAN; 3600], 360.0).is_empty());
        assert!(detect_ecg(&[1.0; 3600], 30.0).is_empty());
        assert!(detect_ppg(&[1.0; 640], 64.0).is_empty());
        assert!(detect_ppg(&[f32::NAN; 640], 64.0).is_empty());
    }

    #[test]
    fn ppg_pulses_found() {
        let fs = 64.0;
        let n = (fs * 20.0) as usize;
        // Pulse wave: sharp systolic upstroke every 0.75 s.
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let ph = (i as f64 / fs / 0.75).fract();
                (if ph < 0.15 { ph / 0.15 } else { (-(ph - 0.15) * 4.0).exp() }) as f32
            })
            .collect();
        let pulses = detect_ppg(&x, fs);
        let peaks: Vec<u64> = pulses.iter().map(|b| b.index).collect();
        let expected = 20.0 / 0.75;
        assert!((peaks.len() as f64 - expected).abs() <= 2.0, "{} peaks", peaks.len());
        let rr: Vec<u64> = peaks.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(rr.iter().all(|&d| (d as f64 - 0.75 * fs).abs() <= 3.0), "{rr:?}");
        // The upstroke lasts 0.15 × 0.75 s ≈ 0.11 s; the band-pass smears it a little. (The
        // first pulses' feet lie in the 0.5 Hz high-pass's start-up, its first second.)
        for b in &pulses[3..] {
            let rise = (b.index - b.foot) as f64 / fs;
            assert!((0.05..=0.25).contains(&rise), "rise {rise} s at {}", b.index);
            assert!(b.amplitude > 0.0);
        }
    }

    #[test]
    fn chunking_does_not_change_the_beats() {
        let fs = 250.0;
        let (x, _) = synthetic_ecg(fs, 30.0, 0.7);
        let whole = detect_ecg(&x, fs);
        let mut det = EcgDetector::new(fs);
        let mut beats = Vec::new();
        let mut rest = &x[..];
        let mut k = 1;
        while !rest.is_empty() {
            let take = (k * 37 % 300).clamp(1, rest.len());
            det.process(&rest[..take], &mut beats);
            rest = &rest[take..];
            k += 1;
        }
        det.finish(&mut beats);
        let chunked: Vec<usize> = beats.iter().map(|b| b.index as usize).collect();
        assert_eq!(whole, chunked);
        assert!(whole.len() > 35);
    }
}
