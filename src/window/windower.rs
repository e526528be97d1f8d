//! The windower: buffers one subject's channels and closes windows on the recording clock.

use super::{ChannelWindow, Window, WindowConfig, WindowerStats};
use crate::ring::ChunkMark;
use crate::signal::ChannelSpec;
use std::collections::VecDeque;
use std::time::Instant;

struct ChannelBuffer {
    spec: ChannelSpec,
    times: VecDeque<f64>,
    values: VecDeque<f32>,
    /// (first sample time, last sample time, arrival) of each chunk still buffered.
    chunks: VecDeque<(f64, f64, Instant)>,
    /// Time of the newest sample ever pushed.
    newest: Option<f64>,
    first: Option<f64>,
    finished: bool,
    /// The channel's ring holds data not yet pushed here; it is behind, not stalled.
    pending: bool,
    /// Times of the first sample after each chunk the ring dropped (overrun), while a window can
    /// still hold them.
    overrun_gaps: VecDeque<f64>,
}

impl ChannelBuffer {
    /// Recording time up to which this channel is known to be complete.
    fn covered_until(&self) -> Option<f64> {
        // An event proves nothing about the time after it; a sample covers its period.
        let period = if self.spec.is_event() { 0.0 } else { self.spec.period_s() };
        self.newest.map(|t| t + period)
    }
}

/// Assembles one subject's windows from its channels.
pub struct SubjectWindower {
    config: WindowConfig,
    channels: Vec<ChannelBuffer>,
    next_start: Option<f64>,
    window: Window,
    stats: WindowerStats,
}

impl SubjectWindower {
    pub fn subject(&self) -> &str {
        &self.window.subject
    }

    pub fn new(subject: impl Into<String>, specs: Vec<ChannelSpec>, config: WindowConfig) -> Self {
        let window = Window {
            subject: subject.into(),
            seq: 0,
            start: 0.0,
            end: 0.0,
            channels: specs
                .iter()
                .map(|spec| ChannelWindow {
                    spec: spec.clone(),
                    values: Vec::with_capacity((config.length_s * spec.rate_hz).ceil() as usize + 1),
                    missing: 0,
                    fresh: 0,
                })
                .collect(),
            last_arrival: Instant::now(),
        };
        let channels = specs
            .into_iter()
            .map(|spec| ChannelBuffer {
                spec,
                times: VecDeque::new(),
                values: VecDeque::new(),
                chunks: VecDeque::new(),
                newest: None,
                first: None,
                finished: false,
                pending: false,
                overrun_gaps: VecDeque::new(),
            })
            .collect();
        SubjectWindower { config, channels, next_start: None, window, stats: WindowerStats::default() }
    }

    pub fn stats(&self) -> WindowerStats {
        self.stats
    }

    /// Samples of channel `channel` held for windows not yet closed (the memory bound in the
    /// module doc is about this number).
    pub fn buffered_samples(&self, channel: usize) -> usize {
        self.channels[channel].values.len()
    }

    /// Add one chunk popped from channel `channel`'s ring.
    pub fn push(&mut self, channel: usize, mark: &ChunkMark, samples: &[f32]) {
        let next_start = self.next_start;
        let buf = &mut self.channels[channel];
        let period = buf.spec.period_s();
        // Events may come closer than their typical period; only a repeat or a step back is
        // out of order.
        let min_step = if buf.spec.is_event() { 1e-6 } else { 0.5 * period };
        let mut first_kept: Option<f64> = None;
        let mut last_kept = 0.0;
        for (i, &v) in samples.iter().enumerate() {
            let t = mark.source_time + i as f64 * period;
            if buf.newest.is_some_and(|n| t < n + min_step) {
                self.stats.out_of_order_samples += 1;
                continue;
            }
            buf.newest = Some(t);
            if next_start.is_some_and(|s| t < s - boundary_eps(&buf.spec)) {
                self.stats.late_samples += 1;
                continue;
            }
            buf.first.get_or_insert(t);
            buf.times.push_back(t);
            buf.values.push_back(v);
            first_kept.get_or_insert(t);
            last_kept = t;
        }
        if let Some(first) = first_kept {
            buf.chunks.push_back((first, last_kept, mark.arrival));
            if mark.gap_before {
                buf.overrun_gaps.push_back(first);
            }
        }
    }

    /// Tell the windower whether the channel's ring still holds unread chunks. Set it after
    /// draining every channel: a channel with data waiting is not stalled however far the others
    /// ran ahead (they may simply have been drained later, as in a flat-out replay).
    pub fn set_pending(&mut self, channel: usize, pending: bool) {
        self.channels[channel].pending = pending;
    }

    /// The channel's stream ended; windows no longer wait for it.
    pub fn finish_channel(&mut self, channel: usize) {
        self.channels[channel].finished = true;
    }

    pub fn all_finished(&self) -> bool {
        self.channels.iter().all(|c| c.finished)
    }

    /// The next closed window, if one is ready. Call until it returns `None`.
    pub fn next_window(&mut self) -> Option<&Window> {
        let start = match self.next_start {
            Some(s) => s,
            None => {
                // Start at the earliest sample once every channel has spoken or ended — or is
                // stalled: a channel silent from the start (a sensor that never connected) is
                // given up like any quiet one once the others have run `length + stall_timeout`
                // past the first sample, so their buffers stay bounded.
                let s = self.channels.iter().filter_map(|c| c.first).min_by(f64::total_cmp)?;
                let newest = self.channels.iter().filter_map(|c| c.newest).max_by(f64::total_cmp)?;
                let stalled = newest >= s + self.config.length_s + self.config.stall_timeout_s;
                if self.channels.iter().any(|c| c.first.is_none() && !c.finished && (c.pending || !stalled)) {
                    return None;
                }
                self.next_start = Some(s);
                s
            }
        };
        let end = start + self.config.length_s;
        let newest_anywhere = self.channels.iter().filter_map(|c| c.newest).max_by(f64::total_cmp)?;
        let stalled_after = end + self.config.stall_timeout_s;
        let eps = 1e-9;
        let mut any_complete = false;
        for c in &self.channels {
            let complete = c.covered_until().is_some_and(|u| u >= end - eps);
            any_complete |= complete;
            let given_up = c.finished || (!c.pending && newest_anywhere >= stalled_after);
            if !complete && !given_up {
                return None;
            }
        }
        if !any_complete {
            // Every stream ended before this window could fill: the recording is over.
            if self.all_finished() {
                self.stats.partial_windows_dropped += 1;
                self.next_start = Some(f64::INFINITY);
            }
            return None;
        }
        if let Some(skip) = self.empty_windows_before_data(start, end) {
            // No channel has a sample in this window or the next `skip - 1`: a recording gap
            // (a device off for hours, channels days apart) gives no windows, not a flood of
            // empty ones, and the windows after it stay on the hop grid.
            self.stats.empty_windows_skipped += skip;
            self.next_start = Some(start + skip as f64 * self.config.hop_s);
            self.release_before(start + skip as f64 * self.config.hop_s);
            return self.next_window();
        }
        self.fill(start, end);
        self.next_start = Some(start + self.config.hop_s);
        self.release_before(start + self.config.hop_s);
        self.stats.windows += 1;
        Some(&self.window)
    }

    /// When no channel holds a sample in `[start, end)` but some hold later ones, how many
    /// windows to skip so the next one holds the earliest of them.
    fn empty_windows_before_data(&self, start: f64, end: f64) -> Option<u64> {
        let mut earliest = f64::INFINITY;
        for buf in &self.channels {
            let eps = boundary_eps(&buf.spec);
            match buf.times.iter().find(|&&t| t >= start - eps) {
                Some(&t) if t < end - eps => return None,
                Some(&t) => earliest = earliest.min(t),
                None => {}
            }
        }
        if !earliest.is_finite() {
            return None;
        }
        // The first window on the hop grid whose end lies past `earliest`.
        let k = ((earliest - end) / self.config.hop_s).floor() + 1.0;
        Some(k.max(1.0) as u64)
    }

    fn fill(&mut self, start: f64, end: f64) {
        let w = &mut self.window;
        // Samples before the previous window's end were handed out already.
        let fresh_from = if self.stats.windows == 0 { f64::NEG_INFINITY } else { w.end };
        w.start = start;
        w.end = end;
        w.seq = self.stats.windows;
        let mut last_arrival: Option<Instant> = None;
        for (buf, out) in self.channels.iter().zip(&mut w.channels) {
            out.values.clear();
            out.fresh = 0;
            let mut last_t = None;
            // Sample times are computed (chunk time + i × period), so compare with a small
            // tolerance: a sample at 4.999999999 s belongs to the window starting at 5 s.
            let eps = boundary_eps(&buf.spec);
            for (&t, &v) in buf.times.iter().zip(&buf.values) {
                if t >= end - eps {
                    break;
                }
                if t >= start - eps {
                    out.values.push(v);
                    out.fresh += (t >= fresh_from - eps) as usize;
                    last_t = Some(t);
                }
            }
            // Device timestamps jitter, so a complete window may hold one sample more or less than
            // the nominal count; only a shortfall beyond that one sample is a gap.
            // Events have no expected count: their features judge coverage from the intervals.
            let expected = if buf.spec.is_event() { 0 } else { ((end - start) * buf.spec.rate_hz).round() as usize };
            out.missing = expected.saturating_sub(out.values.len() + 1);
            // A chunk the ring dropped is a gap even when it was as short as the jitter forgiven.
            if buf.overrun_gaps.iter().any(|&g| g > start + eps && g < end - eps) {
                out.missing = out.missing.max(1);
            }
            if let Some(t) = last_t {
                if let Some(&(_, _, arrival)) = buf.chunks.iter().find(|(a, b, _)| *a <= t && t <= *b) {
                    last_arrival = Some(last_arrival.map_or(arrival, |l| l.max(arrival)));
                }
            }
        }
        w.last_arrival = last_arrival.unwrap_or_else(Instant::now);
    }

    fn release_before(&mut self, t: f64) {
        for buf in &mut self.channels {
            let eps = boundary_eps(&buf.spec);
            while buf.times.front().is_some_and(|&x| x < t - eps) {
                buf.times.pop_front();
                buf.values.pop_front();
            }
            while buf.chunks.front().is_some_and(|&(_, last, _)| last < t) {
                buf.chunks.pop_front();
            }
            while buf.overrun_gaps.front().is_some_and(|&g| g < t) {
                buf.overrun_gaps.pop_front();
            }
        }
    }
}

/// Tolerance for placing a computed sample time against a window boundary: a thousandth of a
/// sample period, far above f64 rounding at unix-time magnitudes and far below a real offset.
fn boundary_eps(spec: &ChannelSpec) -> f64 {
    spec.period_s() * 1e-3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Modality;

    fn cfg(length_s: f64, hop_s: f64) -> WindowConfig {
        WindowConfig { length_s, hop_s, stall_timeout_s: 2.0 }
    }

    fn mark(t: f64, len: usize) -> ChunkMark {
        ChunkMark { len: len as u32, source_time: t, arrival: Instant::now(), gap_before: false }
    }

    fn two_rate() -> SubjectWindower {
        SubjectWindower::new(
            "s1",
            vec![
                ChannelSpec::new("fast", Modality::Ecg, "mV", 10.0),
                ChannelSpec::new("slow", Modality::Eda, "uS", 2.0),
            ],
            cfg(2.0, 1.0),
        )
    }

    /// Push `secs` seconds of both channels starting at `t0`.
    fn feed(w: &mut SubjectWindower, t0: f64, secs: usize) {
        w.push(0, &mark(t0, secs * 10), &vec![1.0; secs * 10]);
        w.push(1, &mark(t0, secs * 2), &vec![2.0; secs * 2]);
    }

    #[test]
    fn a_channel_that_never_speaks_is_stalled_and_the_others_stay_bounded() {
        let mut w = two_rate();
        // Only the fast channel sends, for 20 s; the slow sensor never connected.
        w.push(0, &mark(0.0, 200), &[1.0; 200]);
        let first = w.next_window().expect("windows start once the silent channel is stalled").clone();
        assert_eq!((first.start, first.channels[1].values.len()), (0.0, 0));
        assert_eq!(first.channels[1].missing, 3, "2 s at 2 Hz, one sample forgiven: flagged as a gap");
        while w.next_window().is_some() {}
        assert!(w.buffered_samples(0) <= 50, "{} samples kept", w.buffered_samples(0));
    }

    #[test]
    fn a_recording_gap_gives_no_flood_of_empty_windows_and_keeps_the_hop_grid() {
        let mut w = two_rate();
        feed(&mut w, 0.0, 3);
        // Both channels resume a day later.
        feed(&mut w, 86_400.0, 3);
        let mut starts = Vec::new();
        while let Some(win) = w.next_window() {
            starts.push(win.start);
        }
        assert!(starts.len() < 10, "{starts:?}");
        let after: Vec<f64> = starts.iter().copied().filter(|s| *s > 100.0).collect();
        assert_eq!(after[0], 86_399.0, "the first window on the 1 s grid holding the day-later data");
        assert!(w.stats().empty_windows_skipped > 86_000);
    }

    #[test]
    fn a_chunk_the_ring_dropped_is_a_gap_even_when_within_the_jitter_forgiven() {
        let mut w = SubjectWindower::new("s", vec![ChannelSpec::new("a", Modality::Ecg, "mV", 10.0)], cfg(2.0, 1.0));
        // 0.0–0.9 s, then one sample dropped (1.0 s), then 1.1–4.0 s flagged as after a drop.
        w.push(0, &mark(0.0, 10), &[1.0; 10]);
        let after = ChunkMark { gap_before: true, ..mark(1.1, 30) };
        w.push(0, &after, &[1.0; 30]);
        let first = w.next_window().expect("window [0, 2)").channels[0].clone();
        assert_eq!(first.values.len(), 19, "one sample short: within the jitter forgiven by count");
        assert_eq!(first.missing, 1, "but the ring said a chunk was dropped there");
        assert_eq!(w.next_window().expect("window [1, 3)").channels[0].missing, 1, "it holds 1.0 s too");
        let third = w.next_window().expect("window [2, 4)").channels[0].clone();
        assert_eq!((third.values.len(), third.missing), (20, 0), "the drop is before this window");
    }

    #[test]
    fn multi_rate_windows_close_when_every_channel_covers_the_end() {
        let mut w = two_rate();
        w.push(0, &mark(100.0, 30), &[1.0; 30]);
        assert!(w.next_window().is_none(), "slow channel has not spoken yet");
        w.push(1, &mark(100.0, 3), &[2.0; 3]); // covers up to 101.5
        assert!(w.next_window().is_none(), "slow channel covers only 1.5 s of a 2 s window");
        w.push(1, &mark(101.5, 1), &[2.0]);
        let win = w.next_window().expect("window closes");
        assert_eq!((win.start, win.end, win.seq), (100.0, 102.0, 0));
        assert_eq!(win.channels[0].values.len(), 20);
        assert_eq!(win.channels[1].values.len(), 4);
        assert_eq!(win.channels[1].missing, 0);
        assert!(w.next_window().is_none(), "second window needs data to 103 s");
        feed(&mut w, 103.0, 1);
        let win = w.next_window().expect("second window");
        assert_eq!((win.start, win.seq), (101.0, 1));
    }

    #[test]
    fn gap_is_counted_as_missing_samples() {
        let mut w = two_rate();
        feed(&mut w, 0.0, 1);
        // fast channel skips 0.5 s
        w.push(0, &mark(1.5, 5), &[1.0; 5]);
        w.push(1, &mark(1.0, 2), &[2.0; 2]);
        let win = w.next_window().expect("window");
        assert_eq!(win.channels[0].values.len(), 15);
        // 5 samples absent, less the one sample of jitter forgiven at a boundary.
        assert_eq!(win.channels[0].missing, 4);
        assert!((win.channels[0].coverage() - 15.0 / 19.0).abs() < 1e-6);
    }

    #[test]
    fn stalled_channel_does_not_block_windows_forever() {
        let mut w = two_rate();
        feed(&mut w, 0.0, 1);
        w.push(0, &mark(1.0, 30), &[1.0; 30]); // fast runs to 4 s; slow stopped at 1 s
        assert!(w.next_window().is_none(), "3.9 s < 2 s + 2 s stall timeout");
        w.push(0, &mark(4.0, 1), &[1.0]);
        let win = w.next_window().expect("stall timeout closes the window");
        assert_eq!(win.channels[1].values.len(), 2);
        assert_eq!(win.channels[1].missing, 1, "4 expected, 2 present, 1 forgiven as jitter");
    }

    #[test]
    fn a_channel_with_unread_data_is_behind_not_stalled() {
        let mut w = two_rate();
        feed(&mut w, 0.0, 1);
        w.push(0, &mark(1.0, 40), &[1.0; 40]); // fast drained up to 5 s
        w.set_pending(1, true); // slow has chunks waiting in its ring
        assert!(w.next_window().is_none(), "do not give up on a channel whose data is in flight");
        w.set_pending(1, false);
        assert!(w.next_window().is_some(), "nothing in flight: it is stalled");
    }

    #[test]
    fn out_of_order_and_late_samples_are_dropped_and_counted() {
        let mut w = two_rate();
        feed(&mut w, 0.0, 3);
        assert!(w.next_window().is_some());
        w.push(0, &mark(2.0, 5), &[9.0; 5]); // repeats already-held times
        assert_eq!(w.stats().out_of_order_samples, 5);
        let win = w.next_window().expect("second window");
        assert!(win.channels[0].values.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn chunks_overlapping_by_jitter_keep_their_samples_but_not_repeats() {
        let mut w = SubjectWindower::new("s", vec![ChannelSpec::new("a", Modality::Ecg, "mV", 10.0)], cfg(2.0, 1.0));
        // 0.0–0.9 s, then a chunk stamped 0.03 s early (0.3 of a period): a clock's jitter, every
        // sample kept.
        w.push(0, &mark(0.0, 10), &[1.0; 10]);
        w.push(0, &mark(0.97, 10), &[1.0; 10]);
        assert_eq!((w.buffered_samples(0), w.stats().out_of_order_samples), (20, 0));
        // Stamped 0.04 s after the newest sample (closer than half a period): a repeat, dropped.
        w.push(0, &mark(1.91, 1), &[1.0]);
        assert_eq!((w.buffered_samples(0), w.stats().out_of_order_samples), (20, 1));
    }

    #[test]
    fn end_of_stream_drops_the_partial_window() {
        let mut w = two_rate();
        feed(&mut w, 0.0, 3);
        w.finish_channel(0);
        w.finish_channel(1);
        let mut n = 0;
        while w.next_window().is_some() {
            n += 1;
        }
        assert_eq!(n, 2, "windows [0,2) and [1,3)");
        assert_eq!(w.stats().partial_windows_dropped, 1);
        assert!(w.next_window().is_none());
    }

    #[test]
    fn rounding_in_sample_times_does_not_look_like_a_gap() {
        let mut w = SubjectWindower::new("s", vec![ChannelSpec::new("e", Modality::Ecg, "mV", 100.0)], cfg(60.0, 5.0));
        // 100 Hz chunks stamped by accumulating 0.1 s at unix-time magnitude: the stamps drift by
        // a fraction of a period, as device clocks do.
        let mut t = 1644829925.0f64;
        for _ in 0..1000 {
            w.push(0, &mark(t, 10), &[0.0; 10]);
            t += 0.1;
            while let Some(win) = w.next_window() {
                let n = win.channels[0].values.len();
                assert!((5999..=6001).contains(&n), "window {}: {n}", win.seq);
                assert_eq!(win.channels[0].missing, 0);
            }
        }
        assert!(w.stats().windows > 5);
    }

    #[test]
    fn buffers_stay_bounded() {
        let mut w = two_rate();
        for s in 0..1000 {
            feed(&mut w, s as f64, 1);
            while w.next_window().is_some() {}
        }
        assert!(w.channels[0].times.len() <= 40, "{}", w.channels[0].times.len());
        assert!(w.channels[0].chunks.len() <= 4);
    }
}
