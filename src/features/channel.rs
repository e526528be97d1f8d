//! Streaming state of one window channel: the processor its modality needs (beat detector, EDA,
//! respiration) and running block statistics, fed each sample once, and the events found (beats,
//! SCRs, breaths) kept exactly as long as a window can still contain them. Event queues are
//! sized once, at channel start, so steady state never allocates.

use super::beats::{Beat, EcgDetector, PpgDetector, MIN_BEAT_INTERVAL_S};
use super::eda::{self, EdaStream, Scr};
use super::resp::RespStream;
use super::rr::BeatSpectra;
use super::stats::{RunningStats, Summary};
use crate::signal::Modality;
use crate::window::ChannelWindow;
use std::collections::VecDeque;

/// What a channel's processor finds, kept while a window can still contain it.
#[derive(Debug)]
pub(super) enum Processor {
    Ecg(EcgDetector, WindowBeats),
    Ppg(PpgDetector, WindowBeats),
    /// An `rr` event channel: each interval places a beat on a clock of [`RR_TICKS_PER_S`]
    /// ticks, so HRV runs on the same beat machinery as a detector's beats.
    Rr(WindowBeats),
    Eda {
        stream: EdaStream,
        tonic: RunningStats,
        scrs: VecDeque<Scr>,
        found: Vec<Scr>,
    },
    Resp {
        stream: RespStream,
        breaths: VecDeque<u64>,
        found: Vec<u64>,
    },
    /// Temperature, accelerometer axes and anything else: block statistics only.
    Plain,
}

/// The clock an `rr` channel's beats are placed on: microseconds, so an interval given in
/// 1/1024 s or in ms keeps its value to well under a microsecond.
pub(super) const RR_TICKS_PER_S: f64 = 1e6;

/// The beats of the current window and their spectra, kept in step: each beat joins once and
/// leaves once, so HRV and derived respiration cost the hop's beats, not the window's.
#[derive(Debug)]
pub(super) struct WindowBeats {
    fs: f64,
    pub(super) beats: VecDeque<Beat>,
    pub(super) spectra: BeatSpectra,
}

impl WindowBeats {
    fn new(fs: f64, capacity: usize) -> Self {
        WindowBeats { fs, beats: VecDeque::with_capacity(capacity), spectra: BeatSpectra::default() }
    }

    fn extend(&mut self, new: &[Beat]) {
        for b in new {
            self.spectra.push(self.beats.back(), b, self.fs);
            self.beats.push_back(*b);
        }
    }

    /// Drop the oldest beats while `old` says so.
    fn prune(&mut self, old: impl Fn(&Beat) -> bool) {
        while let Some(b) = self.beats.front().copied().filter(&old) {
            self.beats.pop_front();
            self.spectra.pop(&b, self.beats.front(), self.fs);
        }
    }
}

/// Streaming state of one window channel.
#[derive(Debug)]
pub(super) struct ChannelState {
    pub(super) modality: Modality,
    pub(super) rate_hz: f64,
    stats: RunningStats,
    pub(super) processor: Processor,
}

impl ChannelState {
    pub(super) fn new(ch: &ChannelWindow, hop_samples: usize) -> Self {
        let fs = ch.spec.rate_hz;
        let keep = ch.values.len().max(1);
        // Event queues are sized once for the most events a window can hold (the detectors'
        // minimum spacing), so a faster heart later never reallocates them mid-run.
        let cap = |min_interval_s: f64| event_capacity(keep, fs, min_interval_s);
        let processor = match ch.spec.modality {
            Modality::Ecg => Processor::Ecg(EcgDetector::new(fs), WindowBeats::new(fs, cap(MIN_BEAT_INTERVAL_S))),
            Modality::Ppg => Processor::Ppg(PpgDetector::new(fs), WindowBeats::new(fs, cap(MIN_BEAT_INTERVAL_S))),
            Modality::Rr => {
                // Beats of the window, one more than its intervals, with room for a fast heart.
                let mut beats = WindowBeats::new(RR_TICKS_PER_S, keep * 2 + 2);
                // The beat the first interval ends at is the origin of the tick clock.
                beats.extend(&[Beat { index: 0, amplitude: 0.0, foot: 0 }]);
                Processor::Rr(beats)
            }
            Modality::Eda => Processor::Eda {
                stream: EdaStream::new(fs),
                tonic: RunningStats::new(hop_samples, keep),
                scrs: VecDeque::with_capacity(cap(*eda::SCR_RISE_S.start())),
                found: Vec::with_capacity(cap(*eda::SCR_RISE_S.start())),
            },
            Modality::Resp => Processor::Resp {
                stream: RespStream::new(fs),
                breaths: VecDeque::with_capacity(cap(MIN_BREATH_INTERVAL_S)),
                found: Vec::with_capacity(cap(MIN_BREATH_INTERVAL_S)),
            },
            _ => Processor::Plain,
        };
        ChannelState { modality: ch.spec.modality, rate_hz: fs, stats: RunningStats::new(hop_samples, keep), processor }
    }

    /// Feed the window's fresh samples, then forget events that no later window can contain.
    pub(super) fn advance(&mut self, fresh: &[f32], window_len: usize, beats: &mut Vec<Beat>) {
        for &x in fresh {
            self.stats.push(x);
        }
        let from = self.stats.total().saturating_sub(window_len as u64);
        match &mut self.processor {
            Processor::Ecg(det, kept) => {
                beats.clear();
                det.process(fresh, beats);
                kept.extend(beats);
                kept.prune(|b| b.index < from);
            }
            Processor::Ppg(det, kept) => {
                beats.clear();
                det.process(fresh, beats);
                kept.extend(beats);
                kept.prune(|b| b.foot < from);
            }
            Processor::Rr(kept) => {
                let last = kept.beats.back().map_or(0, |b| b.index);
                beats.clear();
                let mut index = last;
                for &rr in fresh {
                    // A sensor's 0 or garbage is no interval; the next one still ends a beat.
                    if rr.is_finite() && rr > 0.0 {
                        index += (f64::from(rr) * RR_TICKS_PER_S / 1000.0).round() as u64;
                        beats.push(Beat { index, amplitude: 0.0, foot: index });
                    }
                }
                kept.extend(beats);
                // The window's intervals end at its last `window_len` beats; keep the one before.
                let excess = kept.beats.len().saturating_sub(window_len + 1);
                let from = kept.beats.get(excess).map_or(0, |b| b.index);
                kept.prune(|b| b.index < from);
            }
            Processor::Eda { stream, tonic, scrs, found } => {
                found.clear();
                for &x in fresh {
                    let sample = stream.push(x, found);
                    tonic.push(sample.map_or(f32::NAN, |s| s.tonic as f32));
                }
                scrs.extend(found.iter().copied());
                prune(scrs, |s| s.onset < from);
            }
            Processor::Resp { stream, breaths, found } => {
                found.clear();
                stream.process(fresh, found);
                breaths.extend(found.iter().copied());
                prune(breaths, |&b| b < from);
            }
            Processor::Plain => {}
        }
    }

    /// The rate beat indices count at: the channel's own, or the tick clock of an `rr` channel.
    pub(super) fn beat_rate(&self) -> f64 {
        match self.processor {
            Processor::Rr(_) => RR_TICKS_PER_S,
            _ => self.rate_hz,
        }
    }

    /// First sample number of the current window of `len` samples.
    pub(super) fn window_from(&self, len: usize) -> u64 {
        self.stats.total().saturating_sub(len as u64)
    }

    /// Block statistics of the window `ch` (this channel's current window).
    pub(super) fn summary(&self, ch: &ChannelWindow) -> Summary {
        self.stats.window_with(ch.values.len(), |i| ch.values[i])
    }
}

/// Shortest breath the sizing of breath buffers assumes (60 /min; the belt band stops at 42).
const MIN_BREATH_INTERVAL_S: f64 = 1.0;

/// Most events `window_samples` at `fs` Hz can hold when events are `min_interval_s` apart.
pub(super) fn event_capacity(window_samples: usize, fs: f64, min_interval_s: f64) -> usize {
    (window_samples as f64 / fs / min_interval_s).ceil() as usize + 2
}

fn prune<T>(q: &mut VecDeque<T>, old: impl Fn(&T) -> bool) {
    while q.front().is_some_and(&old) {
        q.pop_front();
    }
}
