//! The ECG detector: Pan & Tompkins (1985), streaming. The outline is in `beats/mod.rs`.

use super::beat::{Beat, HISTORY_S, MIN_BEAT_INTERVAL_S};
use crate::features::dsp::{Biquad, FiniteHold, History};
use std::collections::VecDeque;

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
    clean_refractory: u64,
    slope_win: u64,
    back: u64,
    near_back: u64,
    near_fwd: u64,
    r_earliest: u64,
    r_latest: u64,
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
    /// The newest detection while the signal is noisy, reported once its refractory period has
    /// passed without a rival (in clean signal a detection is reported at once).
    pending: Option<Pending>,
}

/// A detection waiting out its refractory period. A peak inside that period at least
/// `RIVAL_RATIO` times as strong takes its place: in electrode-motion noise a spike just before
/// the QRS would otherwise be reported and block the beat itself (on the generated 6 dB noise
/// set, benches/validation/nst.py, most missed beats had a detection in the 250 ms before them).
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

const RIVAL_RATIO: f64 = 1.15;

/// The detector calls the signal noisy while its noise-peak level is above this share of its
/// signal-peak level (clean ECG sits near 0.01, electrode-motion noise at 6 dB near 0.2).
const NOISY_LEVEL_RATIO: f64 = 0.1;
/// While noisy, a candidate sooner than this share of the mean RR interval after the last beat
/// must reach `PREMATURE_THRESHOLD` of the way from noise to signal level instead of 0.2: noise
/// peaks fall between beats, and a real premature beat is strong.
const PREMATURE_RR: f64 = 0.6;
const PREMATURE_THRESHOLD: f64 = 0.4;
const CLEAN_REFRACTORY_S: f64 = 0.25;

impl EcgDetector {
    /// A detector for `fs` Hz. Below 50 Hz a QRS cannot be resolved: such a detector never reports beats.
    pub fn new(fs: f64) -> Self {
        let s = |secs: f64| (secs * fs) as u64;
        let cap = (HISTORY_S * fs).ceil() as usize + 8;
        let half = ((0.075 * fs) as u64).max(1);
        let near_fwd = ((0.02 * fs) as u64).max(1);
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
            // Examine a candidate once its local-maximum neighbourhood has arrived (the refinement
            // looks only behind it).
            lag: half.saturating_sub(1).max(1),
            learn: s(2.0),
            // Pan & Tompkins' 200 ms (a 300 bpm ceiling) while the signal is noisy, where a noise
            // peak just before a QRS would otherwise block it; 250 ms while it is clean, where a
            // peak 200–250 ms after a beat is far more often its T wave (svdb: 96 false
            // detections at 200 ms, 6 at 250 ms).
            refractory: s(MIN_BEAT_INTERVAL_S),
            clean_refractory: s(CLEAN_REFRACTORY_S),
            slope_win: s(0.15),
            back: s(0.16),
            // The band-pass delays the QRS by 10–15 ms, so look further back than ahead.
            near_back: s(0.06),
            near_fwd,
            // The 150 ms integrator peaks 80–160 ms after the R wave (1st–99th percentile in mitdb
            // 100, 109, 118 and svdb 800): the R wave is looked for only 60–170 ms before the peak.
            // A wider search lands on a noise peak in electrode-motion noise and misses the beat it
            // detected (the mitdb and svdb scores did not change).
            r_earliest: s(0.17),
            r_latest: s(0.06),
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

    /// The detector's noise-peak level is high against its signal-peak level (electrode motion,
    /// a loose electrode): its beats wait out a rival check and are less certain.
    pub fn is_noisy(&self) -> bool {
        self.npk > NOISY_LEVEL_RATIO * self.spk
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
        let noisy = self.is_noisy();
        let refractory = if noisy { self.refractory } else { self.clean_refractory };
        if self.pending.is_some_and(|pd| i > pd.i + refractory) {
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
        let premature = self.last_peak.is_some_and(|p| ((i - p) as f64) < PREMATURE_RR * self.rr_mean);
        let share = if noisy && premature { PREMATURE_THRESHOLD } else { 0.2 };
        let threshold = self.npk + share * (self.spk - self.npk);
        let slope = self.sq.max_in(i.saturating_sub(self.slope_win), i);
        if v > threshold {
            if let Some(pd) = self.pending.filter(|pd| i - pd.i <= refractory && v >= RIVAL_RATIO * pd.v) {
                // A stronger peak inside the pending detection's refractory period: that detection
                // was the noise, this is the beat.
                self.restore(pd.before);
                self.pending = None;
            }
        }
        let far_enough = self.last_peak.is_none_or(|p| i - p > refractory);
        // Pan & Tompkins' T-wave test, over 550 ms rather than their 360 ms: a candidate with less
        // than half the last beat's slope (a quarter of its square) is a T wave.
        let t_wave =
            self.last_peak.is_some_and(|p| ((i - p) as f64) < 0.55 * self.fs && slope < 0.25 * self.last_slope);
        if v > threshold && far_enough && !t_wave {
            self.flush(beats);
            // Search-back: a long gap hides a beat among the sub-threshold candidates.
            if let Some(p) = self.last_peak {
                if (i - p) as f64 > 1.5 * self.rr_mean {
                    let r = refractory;
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
            if !noisy {
                // Clean signal: no rival is waited for, so the beat is confirmed as soon as its
                // integrator peak is (80–160 ms after the R wave, plus the local-maximum check's
                // 75 ms): biofeedback needs each beat within 250 ms. In clean ECG a stronger peak
                // inside the refractory period is a T wave or a PVC's tail, never the beat.
                self.flush(beats);
            }
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
        // The integrator lags the QRS, so search behind the detection: first the QRS in the 5–15 Hz
        // band, where slow S–T deflections cannot outgrow the R wave; then the R wave itself in the
        // wide-band signal next to it, within the delays the integrator can have.
        let q = self.band.argmax_by(i.saturating_sub(self.back), i, f64::abs);
        let lo = q.saturating_sub(self.near_back).max(i.saturating_sub(self.r_earliest));
        let hi = (q + self.near_fwd).min(i.saturating_sub(self.r_latest)).max(lo);
        let r = self.wide.argmax_by(lo, hi, f64::abs);
        if self.last_emitted.is_some_and(|p| r <= p + self.refractory) {
            return;
        }
        self.last_emitted = Some(r);
        beats.push(Beat { index: r, amplitude: self.wide.get(r).abs(), foot: r });
    }
}
