//! The per-beat stream: each heartbeat as soon as its detector confirms it.
//!
//! A [`BeatTracker`] follows one cardiac channel of one subject with a detector of its own. The
//! window pipeline's detectors see a channel's samples only when a window closes (every hop, 5 s
//! by default): far too late to feed a beat back. Sharing one detector would tie the two paths
//! together; the price of a second is one more pass over the cardiac samples (the detectors run
//! ~700× faster than real time, benches/features.rs).
//!
//! Pure: chunks in, [`BeatEvent`]s out. Times are on the recording clock, mapped from the
//! detector's sample numbers through the chunk stamps it was fed.

use crate::features::beats::{Beat, EcgDetector, PpgDetector};
use crate::features::rr::PLAUSIBLE_RR_MS;
use crate::ring::ChunkMark;
use crate::signal::Modality;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Instant;

/// Where a beat was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BeatSource {
    /// An R peak in an ECG channel.
    Ecg,
    /// A systolic peak in a PPG (blood volume pulse) channel.
    Ppg,
    /// An interval a heart-rate strap measured itself (Heart Rate service RR values).
    Rr,
}

impl BeatSource {
    /// The source a channel of this modality gives, if it carries the heart.
    pub fn of(modality: Modality) -> Option<BeatSource> {
        match modality {
            Modality::Ecg => Some(BeatSource::Ecg),
            Modality::Ppg => Some(BeatSource::Ppg),
            Modality::Rr => Some(BeatSource::Rr),
            _ => None,
        }
    }

    /// The window features read the heart from ECG if worn, else a strap's intervals, else PPG
    /// (`features/extract/cardiac.rs`); the beat stream follows the same channel.
    pub fn preference(self) -> u8 {
        match self {
            BeatSource::Ecg => 0,
            BeatSource::Rr => 1,
            BeatSource::Ppg => 2,
        }
    }
}

/// Why a beat's interval should not be trusted for feedback (protocols withhold rewards on them).
pub mod flags {
    /// The interval is outside 300–2000 ms (30–200 bpm): a missed or a false beat.
    pub const IMPLAUSIBLE: &str = "implausible_rr";
    /// More than 20 % from the median of the previous intervals (Malik's rule): an ectopic beat
    /// or a detection error.
    pub const ECTOPIC: &str = "ectopic";
    /// The ECG detector's noise level was high when it confirmed the beat.
    pub const NOISY: &str = "noisy";
}

/// One confirmed beat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeatEvent {
    /// Per-subject beat number, from 0 in each run; consecutive events differ by one.
    pub seq: u64,
    /// The beat's time on the recording clock (unix seconds): the R peak, the systolic peak, or
    /// the end of a strap's interval.
    pub t: f64,
    /// Interval from the previous beat, ms; `None` for the first beat and after a gap.
    pub rr_ms: Option<f64>,
    /// Instantaneous heart rate, 60000 / `rr_ms`.
    pub hr_bpm: Option<f64>,
    pub source: BeatSource,
    /// Empty when the interval can be trusted (see [`flags`]).
    pub flags: Vec<&'static str>,
    /// Host arrival of the chunk whose samples confirmed the beat (latency starts here).
    #[serde(skip)]
    pub arrival: Instant,
}

#[derive(Debug)]
enum Detector {
    Ecg(EcgDetector),
    Ppg(PpgDetector),
    Rr,
}

/// Seconds of chunk stamps kept to place beats: the detectors refine a beat at most ~0.5 s
/// behind the newest sample and keep 4 s of history.
const CLOCK_S: f64 = 5.0;
/// A chunk starting further than this from where the previous one ended (or after a ring
/// overrun) breaks the sample clock: the detector starts over and no interval spans the hole.
const MAX_CLOCK_SLIP_S: f64 = 0.25;
/// Previous plausible intervals the ectopic test takes its median over.
const ECTOPIC_REFERENCE: usize = 5;

/// The beat stream of one cardiac channel.
#[derive(Debug)]
pub struct BeatTracker {
    source: BeatSource,
    rate_hz: f64,
    detector: Detector,
    /// (detector sample number, recording time) of the first sample of each recent chunk.
    clock: VecDeque<(u64, f64)>,
    /// Detector sample number and recording time the next chunk should start at.
    next_index: u64,
    next_time: Option<f64>,
    /// The last beat reported: later beats must come after it, even across a restart.
    last_beat: Option<f64>,
    /// The next beat's interval may be measured from `last_beat` (false after a restart).
    interval_open: bool,
    recent_rr: VecDeque<f64>,
    seq: u64,
    found: Vec<Beat>,
}

impl BeatTracker {
    /// A tracker for a channel of `modality` at `rate_hz`; `None` if it carries no heartbeat.
    pub fn new(modality: Modality, rate_hz: f64) -> Option<BeatTracker> {
        let source = BeatSource::of(modality)?;
        Some(BeatTracker {
            source,
            rate_hz,
            detector: fresh_detector(source, rate_hz),
            clock: VecDeque::new(),
            next_index: 0,
            next_time: None,
            last_beat: None,
            interval_open: false,
            recent_rr: VecDeque::with_capacity(ECTOPIC_REFERENCE + 1),
            seq: 0,
            found: Vec::new(),
        })
    }

    /// Feed one chunk of the channel; beats it confirms are appended to `out`.
    pub fn push(&mut self, mark: &ChunkMark, samples: &[f32], out: &mut Vec<BeatEvent>) {
        let period = 1.0 / self.rate_hz;
        if let Detector::Rr = self.detector {
            // A strap's value is the interval that ended at the sample's time.
            for (i, &rr) in samples.iter().enumerate() {
                let t = mark.source_time + i as f64 * period;
                if rr.is_finite() && rr > 0.0 && self.last_beat.is_none_or(|last| t > last) {
                    self.beat(t, Some(f64::from(rr)), false, mark.arrival, out);
                }
            }
            return;
        }
        let slipped = self.next_time.is_some_and(|next| (mark.source_time - next).abs() > MAX_CLOCK_SLIP_S);
        if mark.gap_before || slipped {
            // What the old detector still holds belongs to the old clock: report it first.
            self.finish(mark.arrival, out);
            self.restart();
        }
        self.clock.push_back((self.next_index, mark.source_time));
        self.next_index += samples.len() as u64;
        self.next_time = Some(mark.source_time + samples.len() as f64 * period);
        self.found.clear();
        let noisy = match &mut self.detector {
            Detector::Ecg(d) => {
                d.process(samples, &mut self.found);
                d.is_noisy()
            }
            Detector::Ppg(d) => {
                d.process(samples, &mut self.found);
                false
            }
            Detector::Rr => unreachable!("handled above"),
        };
        self.place_found(noisy, mark.arrival, out);
        // Only after placing: a long chunk's beats may lie seconds before its end. Later beats
        // lie at most the detectors' history (4 s) before the end of the chunk that confirms them.
        let keep_from = self.next_index.saturating_sub((CLOCK_S * self.rate_hz) as u64);
        while self.clock.get(1).is_some_and(|&(first, _)| first <= keep_from) {
            self.clock.pop_front();
        }
    }

    /// The stream has ended: report what the detector still holds.
    pub fn finish(&mut self, arrival: Instant, out: &mut Vec<BeatEvent>) {
        self.found.clear();
        let noisy = match &mut self.detector {
            Detector::Ecg(d) => {
                d.finish(&mut self.found);
                d.is_noisy()
            }
            _ => return,
        };
        self.place_found(noisy, arrival, out);
    }

    fn place_found(&mut self, noisy: bool, arrival: Instant, out: &mut Vec<BeatEvent>) {
        for k in 0..self.found.len() {
            let index = self.found[k].index;
            // Chunk stamps are kept for longer than a detector looks back, so one holds `index`.
            let Some(&(first, time)) = self.clock.iter().rev().find(|&&(first, _)| first <= index) else {
                debug_assert!(false, "no chunk stamp for beat at sample {index}");
                continue;
            };
            let t = time + (index - first) as f64 / self.rate_hz;
            if self.last_beat.is_some_and(|last| t <= last) {
                continue; // stamps stepping back would give a negative interval
            }
            let rr = self.last_beat.filter(|_| self.interval_open).map(|last| (t - last) * 1000.0);
            self.beat(t, rr, noisy, arrival, out);
        }
    }

    fn beat(&mut self, t: f64, rr_ms: Option<f64>, noisy: bool, arrival: Instant, out: &mut Vec<BeatEvent>) {
        let mut flags = Vec::new();
        if let Some(rr) = rr_ms {
            if !PLAUSIBLE_RR_MS.contains(&rr) {
                flags.push(flags::IMPLAUSIBLE);
            } else {
                if median(&self.recent_rr).is_some_and(|m| (rr - m).abs() > 0.2 * m) {
                    flags.push(flags::ECTOPIC);
                }
                if self.recent_rr.len() == ECTOPIC_REFERENCE {
                    self.recent_rr.pop_front();
                }
                self.recent_rr.push_back(rr);
            }
        }
        if noisy {
            flags.push(flags::NOISY);
        }
        out.push(BeatEvent {
            seq: self.seq,
            t,
            rr_ms,
            hr_bpm: rr_ms.map(|rr| 60_000.0 / rr),
            source: self.source,
            flags,
            arrival,
        });
        self.seq += 1;
        self.last_beat = Some(t);
        self.interval_open = true;
    }

    /// A break in the sample clock: a new detector, and no interval across the hole.
    fn restart(&mut self) {
        self.detector = fresh_detector(self.source, self.rate_hz);
        self.clock.clear();
        self.next_index = 0;
        self.interval_open = false;
        self.recent_rr.clear();
    }
}

fn fresh_detector(source: BeatSource, rate_hz: f64) -> Detector {
    match source {
        BeatSource::Ecg => Detector::Ecg(EcgDetector::new(rate_hz)),
        BeatSource::Ppg => Detector::Ppg(PpgDetector::new(rate_hz)),
        BeatSource::Rr => Detector::Rr,
    }
}

fn median(values: &VecDeque<f64>) -> Option<f64> {
    // At most ECTOPIC_REFERENCE values: sorted on the stack, no allocation per beat.
    let mut v = [0.0; ECTOPIC_REFERENCE];
    let n = values.len().min(ECTOPIC_REFERENCE);
    if n == 0 {
        return None;
    }
    for (slot, x) in v.iter_mut().zip(values) {
        *slot = *x;
    }
    let v = &mut v[..n];
    v.sort_by(f64::total_cmp);
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}
