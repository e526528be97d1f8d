//! Heartbeat detection in a window: R peaks in ECG, systolic peaks in PPG.
//!
//! ECG follows Pan & Tompkins (1985): 5–15 Hz band-pass, derivative, squaring, 150 ms moving
//! integration, adaptive signal/noise peak levels with a 200 ms refractory period and a
//! search-back for missed beats; each detection is refined to the largest deflection of the
//! baseline-removed ECG nearby. PPG follows Elgendi et al. (2013): 0.5–8 Hz band-pass, clipped and
//! squared, two moving averages (111 ms and 667 ms) marking blocks of interest, one peak per block.
//!
//! Both work on any rate the window carries (ECG from about 100 Hz, PPG from about 25 Hz) and
//! return sample indices into the window. The signal-processing issue replaces these batch
//! versions with streaming ones validated on MIT-BIH; the interface stays.

use super::dsp;

/// Reusable buffers so detection does not allocate per window in the steady state.
#[derive(Debug, Default)]
pub struct BeatScratch {
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
}

/// R-peak sample indices of an ECG window sampled at `fs` Hz, appended to `peaks` (cleared first).
pub fn detect_ecg(ecg: &[f32], fs: f64, scratch: &mut BeatScratch, peaks: &mut Vec<usize>) {
    peaks.clear();
    let n = ecg.len();
    if n < (fs * 2.0) as usize || fs < 50.0 {
        return;
    }
    let BeatScratch { a: band, b: integ, c: base } = scratch;
    dsp::bandpass(ecg, fs, 5.0, 15.0, band);
    // Derivative (five-point), squared, integrated over 150 ms.
    let mut sq = std::mem::take(base);
    sq.clear();
    sq.extend((0..n).map(|i| {
        let at = |k: isize| band[(i as isize + k).clamp(0, n as isize - 1) as usize];
        let d = (2.0 * at(2) + at(1) - at(-1) - 2.0 * at(-2)) * fs / 8.0;
        d * d
    }));
    dsp::moving_average(&sq, (0.15 * fs).round() as usize, integ);
    *base = sq;

    // 250 ms (a 240 bpm ceiling) rather than Pan & Tompkins' 200 ms: on mitdb and svdb it removes
    // more false detections than it costs beats.
    let refractory = (0.25 * fs) as usize;
    let half = (0.075 * fs).max(1.0) as usize;
    // Initial levels from the first two seconds, as Pan & Tompkins' learning phase.
    let learn = &integ[..(2.0 * fs) as usize];
    let mut spk = learn.iter().cloned().fold(0.0, f64::max) * 0.25;
    let mut npk = learn.iter().sum::<f64>() / learn.len() as f64 * 0.5;
    let mut last_peak: Option<usize> = None;
    let mut rr_mean = fs; // ~60 bpm until beats are seen
    let mut candidates: Vec<(usize, f64)> = Vec::new(); // noise peaks since the last beat, for search-back

    // Largest squared slope in the integration window ending at `i`: the QRS's steepness.
    let win = (0.15 * fs) as usize;
    let slope_at = |sq: &[f64], i: usize| sq[i.saturating_sub(win)..=i].iter().cloned().fold(0.0, f64::max);
    let mut last_slope = 0.0;
    let mut i = 1;
    while i + 1 < n {
        let v = integ[i];
        let is_local_max = v > integ[i - 1]
            && v >= integ[i + 1]
            && integ[i.saturating_sub(half)..(i + half).min(n)].iter().all(|&w| w <= v);
        if is_local_max {
            // Pan & Tompkins use 0.25 of the way from noise to signal level and search back after
            // 1.66 RR; 0.2 and 1.5 find more low-amplitude and premature beats on MIT-BIH for few
            // extra false detections (benches/validation/results-mitdb.md, one setting for all).
            let threshold = npk + 0.2 * (spk - npk);
            let far_enough = last_peak.is_none_or(|p| i - p > refractory);
            // Pan & Tompkins' T-wave test, over 550 ms rather than their 360 ms: a candidate with
            // less than half the last beat's slope (a quarter of its square) is a T wave.
            let slope = slope_at(base, i);
            let t_wave = last_peak.is_some_and(|p| ((i - p) as f64) < 0.55 * fs && slope < 0.25 * last_slope);
            if v > threshold && far_enough && !t_wave {
                // Search-back: a gap over 1.66 RR hides a beat among the sub-threshold candidates.
                if let Some(p) = last_peak {
                    if (i - p) as f64 > 1.5 * rr_mean {
                        if let Some(&(ci, cv)) = candidates
                            .iter()
                            .filter(|(ci, cv)| *cv > 0.5 * threshold && ci - p > refractory && i - ci > refractory)
                            .max_by(|a, b| a.1.total_cmp(&b.1))
                        {
                            peaks.push(ci);
                            spk = 0.25 * cv + 0.75 * spk;
                        }
                    }
                }
                if let Some(&p) = peaks.last() {
                    let rr = (i - p) as f64;
                    if rr > 0.3 * fs && rr < 2.0 * fs {
                        rr_mean = 0.875 * rr_mean + 0.125 * rr;
                    }
                }
                peaks.push(i);
                // Clip the update so one huge ectopic beat or artefact does not lift the threshold
                // over the normal beats that follow it.
                spk = 0.125 * v.min(2.0 * spk) + 0.875 * spk;
                last_peak = Some(i);
                last_slope = slope;
                candidates.clear();
            } else {
                npk = 0.125 * v + 0.875 * npk;
                candidates.push((i, v));
            }
        }
        i += 1;
    }

    // Refine each detection to the largest deflection of the 0.5 Hz high-passed ECG. The
    // integrator lags the QRS by about half its window, so search behind the detection.
    let mut hp = dsp::Biquad::highpass(0.5, fs);
    hp.settle(dsp::first_finite(ecg));
    base.clear();
    base.extend(dsp::finite_held(ecg).map(|x| hp.process(x)));
    let back = (0.2 * fs) as usize;
    let fwd = (0.05 * fs) as usize;
    // The band-pass delays the QRS by 10–15 ms, so look further back than ahead.
    let (near_back, near_fwd) = ((0.06 * fs) as usize, (0.02 * fs).max(1.0) as usize);
    let abs_max = |x: &[f64], lo: usize, hi: usize| {
        x[lo..=hi].iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).map_or(lo, |(j, _)| lo + j)
    };
    for p in peaks.iter_mut() {
        // First the QRS in the 5–15 Hz band, where slow S–T deflections cannot outgrow the R
        // wave; then the R wave itself in the wide-band signal next to it.
        let q = abs_max(band, p.saturating_sub(back), (*p + fwd).min(n - 1));
        *p = abs_max(base, q.saturating_sub(near_back), (q + near_fwd).min(n - 1));
    }
    peaks.dedup();
    let min_gap = refractory;
    let mut kept = 0;
    for k in 0..peaks.len() {
        if kept == 0 || peaks[k] - peaks[kept - 1] > min_gap {
            peaks[kept] = peaks[k];
            kept += 1;
        }
    }
    peaks.truncate(kept);
}

/// Systolic peak indices of a PPG window at `fs` Hz, into `peaks` (cleared first).
pub fn detect_ppg(ppg: &[f32], fs: f64, scratch: &mut BeatScratch, peaks: &mut Vec<usize>) {
    peaks.clear();
    let n = ppg.len();
    if n < (fs * 2.0) as usize || fs < 16.0 {
        return;
    }
    let BeatScratch { a: band, b: ma_peak, c: ma_beat } = scratch;
    dsp::bandpass(ppg, fs, 0.5, 8.0, band);
    // Clip negatives and square, in place of a separate buffer.
    let mut sq = std::mem::take(ma_beat);
    sq.clear();
    sq.extend(band.iter().map(|&v| if v > 0.0 { v * v } else { 0.0 }));
    dsp::moving_average(&sq, (0.111 * fs).round() as usize, ma_peak);
    let mean_sq = sq.iter().sum::<f64>() / n as f64;
    let mut beat = Vec::new();
    dsp::moving_average(&sq, (0.667 * fs).round() as usize, &mut beat);
    *ma_beat = sq;
    // The trailing moving averages lag; shift them back by half their windows to center them.
    let lag_peak = (0.111 * fs / 2.0) as usize;
    let lag_beat = (0.667 * fs / 2.0) as usize;
    let beta = 0.02;
    let min_width = (0.111 * fs) as usize;
    let min_gap = (0.3 * fs) as usize;
    let mut block_start: Option<usize> = None;
    for i in 0..n {
        let mp = ma_peak.get(i + lag_peak).copied().unwrap_or(0.0);
        let mb = beat.get(i + lag_beat).copied().unwrap_or(beat[n - 1]);
        let inside = mp > mb + beta * mean_sq;
        match (inside, block_start) {
            (true, None) => block_start = Some(i),
            (false, Some(s)) => {
                if i - s >= min_width {
                    let (j, _) =
                        band[s..i].iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("non-empty block");
                    let p = s + j;
                    if peaks.last().is_none_or(|&q| p - q >= min_gap) {
                        peaks.push(p);
                    }
                }
                block_start = None;
            }
            _ => {}
        }
    }
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
            let mut peaks = Vec::new();
            detect_ecg(&x, fs, &mut BeatScratch::default(), &mut peaks);
            assert_eq!(peaks.len(), truth.len(), "fs {fs}: {peaks:?}");
            for (p, t) in peaks.iter().zip(&truth) {
                assert!((*p as f64 - *t as f64).abs() <= 0.02 * fs, "fs {fs}: {p} vs {t}");
            }
        }
    }

    #[test]
    fn degenerate_inputs_give_no_peaks_and_no_panic() {
        let mut peaks = vec![1];
        let mut s = BeatScratch::default();
        detect_ecg(&[], 360.0, &mut s, &mut peaks);
        assert!(peaks.is_empty());
        detect_ecg(&[0.0; 3600], 360.0, &mut s, &mut peaks);
        assert!(peaks.is_empty());
        detect_ecg(&[f32::NAN; 3600], 360.0, &mut s, &mut peaks);
        assert!(peaks.is_empty());
        detect_ppg(&[1.0; 640], 64.0, &mut s, &mut peaks);
        assert!(peaks.is_empty());
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
        let mut peaks = Vec::new();
        detect_ppg(&x, fs, &mut BeatScratch::default(), &mut peaks);
        let expected = 20.0 / 0.75;
        assert!((peaks.len() as f64 - expected).abs() <= 2.0, "{} peaks", peaks.len());
        let rr: Vec<usize> = peaks.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(rr.iter().all(|&d| (d as f64 - 0.75 * fs).abs() <= 3.0), "{rr:?}");
    }
}
