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

use super::dsp::{Biquad, FiniteHold, History};
use std::collections::VecDeque;

/// One detected beat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat {
    /// Absolute sample number of the R peak (ECG) or systolic peak (PPG).
    pub index: u64,
    /// ECG: the R wave's height above the 0.5 Hz high-passed baseline. PPG: foot-to-peak amplitude
    /// of the 8 Hz low-passed pulse. Respiration modulates both (used for derived respiration).
    pub amplitude: f64,
    /// PPG: the pulse foot (the trough before the upstroke); ECG: equal to `index`.
    pub foot: u64,
}

/// Seconds of derived signal each detector keeps for look-back.
const HISTORY_S: f64 = 4.0;

/// No two beats are closer than this (ECG refractory period; PPG waits longer, 0.3 s): at most
/// 240 bpm. Also bounds how many beats a window can hold, so buffers are sized once.
pub const MIN_BEAT_INTERVAL_S: f64 = 0.25;

/// Streaming Pan–Tompkins QRS detector for one ECG channel at a fixed rate.
#[derive(Debug)]
pub struct EcgDetector {
    fs: f64,
    hold: FiniteHold,
    hp: Biquad,
    lp: Biquad,
    hp_wide: Biquad,
    /// 5–15 Hz band, 0.5 Hz high-passed wide band, squared slope, integrated: indexed by sample.
    band: History,
    wide: History,
    sq: History,
    integ: History,
    ma_sum: f64,
    // Constants in samples.
    ma_len: u64,
    half: u64,
    lag: u64,
    learn: u64,
    refractory: u64,
    slope_win: u64,
    back: u64,
    fwd: u64,
    near_back: u64,
    near_fwd: u64,
    // Adaptive state.
    learned: bool,
    spk: f64,
    npk: f64,
    rr_mean: f64,
    last_peak: Option<u64>,
    last_slope: f64,
    /// Last detection before refinement (the RR estimate uses raw detections, as the batch loop did).
    last_raw: Option<u64>,
    last_emitted: Option<u64>,
    /// Sub-threshold peaks since the last beat, for search-back; bounded by the history.
    candidates: VecDeque<(u64, f64)>,
    /// Next candidate sample to examine.
    next_candidate: u64,
    /// The newest detection, reported once its refractory period has passed without a rival.
    pending: Option<Pending>,
}

/// A detection waiting out its refractory period. A peak inside that period at least
/// `RIVAL_RATIO` times as strong takes its place: in electrode-motion noise a spike just before
/// the QRS would otherwise be reported and block the beat itself (nstdb 118e06: 56 of 73 missed
/// beats had a false detection in the 300 ms before them).
#[derive(Debug, Clone, Copy)]
struct Pending {
    i: u64,
    v: f64,
    /// The adaptive state as it was before this detection, restored if a rival replaces it.
    before: Levels,
}

#[derive(Debug, Clone, Copy)]
struct Levels {
    spk: f64,
    rr_mean: f64,
    last_peak: Option<u64>,
    last_slope: f64,
    last_raw: Option<u64>,
}

const RIVAL_RATIO: f64 = 2.0;

impl EcgDetector {
    /// A detector for `fs` Hz. Below 50 Hz a QRS cannot be resolved: such a detector never reports beats.
    pub fn new(fs: f64) -> Self {
        let s = |secs: f64| (secs * fs) as u64;
        let cap = (HISTORY_S * fs).ceil() as usize + 8;
        let half = ((0.075 * fs) as u64).max(1);
        let (fwd, near_fwd) = (s(0.05), ((0.02 * fs) as u64).max(1));
        EcgDetector {
            fs,
            hold: FiniteHold::default(),
            hp: Biquad::highpass(5.0, fs),
            lp: Biquad::lowpass(15.0, fs),
            hp_wide: Biquad::highpass(0.5, fs),
            band: History::new(cap),
            wide: History::new(cap),
            sq: History::new(cap),
            integ: History::new(cap),
            ma_sum: 0.0,
            ma_len: ((0.15 * fs).round() as u64).max(1),
            half,
            // Examine a candidate once its local-maximum neighbourhood and the refinement's look-ahead
            // (in the band signal, 2 samples ahead of the integrated one) have arrived.
            lag: (half.saturating_sub(1)).max(1).max((fwd + near_fwd).saturating_sub(2)),
            learn: s(2.0),
            // 250 ms (a 240 bpm ceiling) rather than Pan & Tompkins' 200 ms: on mitdb and svdb it
            // removes more false detections than it costs beats.
            refractory: s(MIN_BEAT_INTERVAL_S),
            slope_win: s(0.15),
            back: s(0.2),
            fwd,
            // The band-pass delays the QRS by 10–15 ms, so look further back than ahead.
            near_back: s(0.06),
            near_fwd,
            learned: false,
            spk: 0.0,
            npk: 0.0,
            rr_mean: fs, // ~60 bpm until beats are seen
            last_peak: None,
            last_slope: 0.0,
            last_raw: None,
            last_emitted: None,
            candidates: VecDeque::new(),
            next_candidate: 1,
            pending: None,
        }
    }

    pub fn rate_hz(&self) -> f64 {
        self.fs
    }

    /// Feed samples; beats confirmed meanwhile are appended to `beats`.
    pub fn process(&mut self, samples: &[f32], beats: &mut Vec<Beat>) {
        if self.fs < 50.0 {
            return;
        }
        for &x in samples {
            self.push(x, beats);
        }
    }

    /// The stream has ended: examine the last candidates with whatever look-ahead exists (a
    /// whole record's last beat would otherwise wait for samples that never come).
    pub fn finish(&mut self, beats: &mut Vec<Beat>) {
        if !self.learned {
            return;
        }
        while self.next_candidate + 1 < self.integ.len() {
            let c = self.next_candidate;
            self.next_candidate += 1;
            self.examine(c, beats);
        }
        self.flush(beats);
    }

    fn push(&mut self, x: f32, beats: &mut Vec<Beat>) {
        // Zeros before the first finite sample keep the sample numbering.
        let x = self.hold.next(x, &mut [&mut self.hp, &mut self.hp_wide]).unwrap_or(0.0);
        self.band.push(self.lp.process(self.hp.process(x)));
        self.wide.push(self.hp_wide.process(x));
        // Five-point derivative centred two samples back, squared.
        let j = self.band.len() - 1;
        if j < 2 {
            return;
        }
        let i = j - 2;
        let b = |k: i64| self.band.get((i as i64 + k).max(0) as u64);
        let d = (2.0 * b(2) + b(1) - b(-1) - 2.0 * b(-2)) * self.fs / 8.0;
        self.sq.push(d * d);
        // Trailing moving average over 150 ms (shorter at the very start).
        self.ma_sum += d * d;
        if i >= self.ma_len {
            self.ma_sum -= self.sq.get(i - self.ma_len);
        }
        self.integ.push(self.ma_sum.max(0.0) / (i + 1).min(self.ma_len) as f64);
        let k = i; // newest integrated sample
        if !self.learned {
            if k + 1 < self.learn {
                return;
            }
            // Initial levels from the first two seconds, as Pan & Tompkins' learning phase.
            let (mut max, mut sum) = (0.0f64, 0.0);
            for t in 0..self.learn {
                let v = self.integ.get(t);
                max = max.max(v);
                sum += v;
            }
            self.spk = max * 0.25;
            self.npk = sum / self.learn as f64 * 0.5;
            self.learned = true;
        }
        while self.next_candidate + self.lag <= k {
            let c = self.next_candidate;
            self.next_candidate += 1;
            self.examine(c, beats);
        }
    }

    /// Is integrated sample `i` a beat, a noise peak, or neither?
    fn examine(&mut self, i: u64, beats: &mut Vec<Beat>) {
        if self.pending.is_some_and(|pd| i > pd.i + self.refractory) {
            self.flush(beats);
        }
        let integ = &self.integ;
        let v = integ.get(i);
        let is_local_max = v > integ.get(i - 1)
            && v >= integ.get(i + 1)
            && (i.saturating_sub(self.half)..i + self.half).all(|t| integ.get(t) <= v);
        if !is_local_max {
            return;
        }
        // Pan & Tompkins use 0.25 of the way from noise to signal level and search back after
        // 1.66 RR; 0.2 and 1.5 find more low-amplitude and premature beats on MIT-BIH for few
        // extra false detections (benches/validation/results-mitdb.md, one setting for all).
        let threshold = self.npk + 0.2 * (self.spk - self.npk);
        let slope = self.sq.max_in(i.saturating_sub(self.slope_win), i);
        if v > threshold {
            if let Some(pd) = self.pending.filter(|pd| i - pd.i <= self.refractory && v >= RIVAL_RATIO * pd.v) {
                // A much stronger peak inside the pending detection's refractory period: that
                // detection was the noise, this is the beat.
                self.restore(pd.before);
                self.pending = None;
            }
        }
        let far_enough = self.last_peak.is_none_or(|p| i - p > self.refractory);
        // Pan & Tompkins' T-wave test, over 550 ms rather than their 360 ms: a candidate with less
        // than half the last beat's slope (a quarter of its square) is a T wave.
        let t_wave =
            self.last_peak.is_some_and(|p| ((i - p) as f64) < 0.55 * self.fs && slope < 0.25 * self.last_slope);
        if v > threshold && far_enough && !t_wave {
            self.flush(beats);
            // Search-back: a long gap hides a beat among the sub-threshold candidates.
            if let Some(p) = self.last_peak {
                if (i - p) as f64 > 1.5 * self.rr_mean {
                    let r = self.refractory;
                    if let Some(&(ci, cv)) = self
                        .candidates
                        .iter()
                        .filter(|(ci, cv)| *cv > 0.5 * threshold && ci - p > r && i - ci > r)
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                    {
                        self.last_raw = Some(ci);
                        self.emit(ci, beats);
                        self.spk = 0.25 * cv + 0.75 * self.spk;
                    }
                }
            }
            let before = self.levels();
            if let Some(p) = self.last_raw {
                let rr = (i - p) as f64;
                if rr > 0.3 * self.fs && rr < 2.0 * self.fs {
                    self.rr_mean = 0.875 * self.rr_mean + 0.125 * rr;
                }
            }
            self.last_raw = Some(i);
            self.pending = Some(Pending { i, v, before });
            // Clip the update so one huge ectopic beat or artefact does not lift the threshold
            // over the normal beats that follow it.
            self.spk = 0.125 * v.min(2.0 * self.spk) + 0.875 * self.spk;
            self.last_peak = Some(i);
            self.last_slope = slope;
            self.candidates.clear();
        } else {
            self.npk = 0.125 * v + 0.875 * self.npk;
            // Candidates older than the history cannot be refined any more: forget them.
            let oldest = self.band.oldest() + self.back + self.near_back;
            while self.candidates.front().is_some_and(|&(c, _)| c < oldest) {
                self.candidates.pop_front();
            }
            self.candidates.push_back((i, v));
        }
    }

    fn levels(&self) -> Levels {
        Levels {
            spk: self.spk,
            rr_mean: self.rr_mean,
            last_peak: self.last_peak,
            last_slope: self.last_slope,
            last_raw: self.last_raw,
        }
    }

    fn restore(&mut self, l: Levels) {
        (self.spk, self.rr_mean, self.last_peak, self.last_slope, self.last_raw) =
            (l.spk, l.rr_mean, l.last_peak, l.last_slope, l.last_raw);
    }

    /// Report the pending detection, if any.
    fn flush(&mut self, beats: &mut Vec<Beat>) {
        if let Some(pd) = self.pending.take() {
            self.emit(pd.i, beats);
        }
    }

    /// Refine detection `i` to its R wave and report it unless it repeats the previous beat.
    fn emit(&mut self, i: u64, beats: &mut Vec<Beat>) {
        // The integrator lags the QRS by about half its window, so search behind the detection:
        // first the QRS in the 5–15 Hz band, where slow S–T deflections cannot outgrow the R wave;
        // then the R wave itself in the wide-band signal next to it.
        let q = self.band.argmax_by(i.saturating_sub(self.back), i + self.fwd, f64::abs);
        let r = self.wide.argmax_by(q.saturating_sub(self.near_back), q + self.near_fwd, f64::abs);
        if self.last_emitted.is_some_and(|p| r <= p + self.refractory) {
            return;
        }
        self.last_emitted = Some(r);
        beats.push(Beat { index: r, amplitude: self.wide.get(r).abs(), foot: r });
    }
}

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

/// R-peak sample indices of a whole ECG record at `fs` Hz.
pub fn detect_ecg(ecg: &[f32], fs: f64) -> Vec<usize> {
    let mut beats = Vec::new();
    let mut detector = EcgDetector::new(fs);
    detector.process(ecg, &mut beats);
    detector.finish(&mut beats);
    beats.into_iter().map(|b| b.index as usize).collect()
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
    fn a_spike_just_before_a_stronger_qrs_does_not_take_its_place() {
        let fs = 360.0;
        let (mut x, beats) = synthetic_ecg(fs, 30.0, 0.9);
        // A sharp 7 ms artefact 200 ms before beat 20: detected on its own (without the rival
        // rule the QRS then falls in its refractory period and is lost), but with under half the
        // QRS's integrated energy.
        let spike = beats[20] - (0.2 * fs) as usize;
        for (k, v) in x.iter_mut().enumerate().skip(spike - 12).take(25) {
            let d = k as f64 - spike as f64;
            *v += (0.7 * (-d * d / (2.0 * 2.5 * 2.5)).exp()) as f32;
        }
        let found = detect_ecg(&x, fs);
        let near = |b: usize| found.iter().any(|&p| p.abs_diff(b) <= (0.05 * fs) as usize);
        assert!(near(beats[20]), "the QRS after the spike is found");
        assert!(!found.iter().any(|&p| p.abs_diff(spike) <= 5), "the spike is not reported");
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
