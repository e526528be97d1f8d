//! Sensor time on the host's clock, for frames with timestamps ([`SensorClock`]) and for beat
//! intervals without ([`BeatClock`]). Pure.
//!
//! A PMD frame is stamped by the sensor (ns since 2000-01-01, of its last sample) and arrives
//! some milliseconds later. The radio only ever adds delay, so the smallest `arrival − device`
//! seen over the last frames is the best estimate of the clocks' offset (the classic
//! minimum-delay filter). The sensor's crystal drifts against the host's (tens of ppm; an H10
//! here ran 130.045 samples a second for its nominal 130), so that minimum moves slowly; the
//! clock follows it at a bounded rate ([`MAX_SLEW`]) so that mapped times never jump, and
//! reports the drift it has followed.

/// How far the offset may move per second of sensor time: far above any crystal's drift, far
/// below what would reorder two samples (at 130 Hz, 0.5 ms a second moves a frame's samples by
/// 0.3 ms; they are 7.7 ms apart).
const MAX_SLEW: f64 = 500e-6;

/// Frames whose delays the minimum is taken over (at an H10's 0.56 s per ECG frame, ~36 s).
const WINDOW: usize = 64;

/// The slew while the first window of delays fills: the first frame's own delay (tens to
/// hundreds of ms) is shed within seconds rather than minutes. Still under half a sample per
/// frame at 130 Hz (5 ms a second moves a 0.56 s frame by 2.8 ms; samples are 7.7 ms apart).
const SETTLING_SLEW: f64 = 5e-3;

/// A disagreement between the sensor's clock and the arrivals beyond this is a *step* of the
/// sensor's clock (another app set it; a battery change reset it to 2019), not delay or drift.
pub const STEP_S: f64 = 5.0;

/// Maps one sensor's timestamps to unix seconds on the host clock.
#[derive(Debug, Clone)]
pub struct SensorClock {
    /// Current offset, host − sensor, seconds; `None` before the first frame.
    offset: Option<f64>,
    /// Recent `arrival − sensor` values (a ring) and how many were written.
    recent: [f64; WINDOW],
    written: usize,
    last_sensor: f64,
    /// (sensor time, offset) once the first window filled, for the drift estimate.
    first: Option<(f64, f64)>,
}

impl Default for SensorClock {
    fn default() -> Self {
        SensorClock { offset: None, recent: [0.0; WINDOW], written: 0, last_sensor: 0.0, first: None }
    }
}

/// Where a frame's time landed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapped {
    /// Host unix time of the sensor time asked about.
    pub time: f64,
    /// The sensor's clock stepped: the offset was measured anew from this frame.
    pub stepped: bool,
}

impl SensorClock {
    /// The host time of sensor time `sensor_s` (seconds on the sensor's clock) for a frame that
    /// arrived at `arrival_unix`.
    pub fn map(&mut self, sensor_s: f64, arrival_unix: f64) -> Mapped {
        let delay_free = arrival_unix - sensor_s;
        let stepped = self.offset.is_some_and(|o| (delay_free - o).abs() > STEP_S);
        if stepped {
            *self = SensorClock::default();
        }
        self.recent[self.written % WINDOW] = delay_free;
        self.written += 1;
        let floor = self.recent[..self.written.min(WINDOW)].iter().copied().fold(f64::INFINITY, f64::min);
        let offset = match self.offset {
            None => floor,
            Some(offset) => {
                let slew = if self.written < WINDOW { SETTLING_SLEW } else { MAX_SLEW };
                let budget = slew * (sensor_s - self.last_sensor).max(0.0);
                offset + (floor - offset).clamp(-budget, budget)
            }
        };
        self.offset = Some(offset);
        self.last_sensor = sensor_s;
        if self.first.is_none() && self.written >= WINDOW {
            // The first minimum over a full window: a fair start for the drift estimate.
            self.first = Some((sensor_s, offset));
        }
        Mapped { time: sensor_s + offset, stepped }
    }

    /// The sensor's clock rate against the host's, parts per million (positive: the sensor runs
    /// slow), once a minute of frames has been followed since the first window filled.
    pub fn drift_ppm(&self) -> Option<f64> {
        let (since, offset0) = self.first?;
        let elapsed = self.last_sensor - since;
        let offset = self.offset?;
        (elapsed >= 60.0).then(|| (offset - offset0) / elapsed * 1e6)
    }

    /// A new connection: the sensor's clock is the same, but the delays seen are history, so
    /// the offset carries on and the window of delays starts again.
    pub fn reconnect(&mut self) {
        if let Some(offset) = self.offset {
            let kept = self.written.min(WINDOW);
            self.recent[..kept].fill(offset);
        }
    }
}

/// Times for beat intervals that come without timestamps (Heart Rate service RR values, PPI):
/// a notification's last beat happened about when it arrived, the earlier ones an interval
/// apart before it. Consecutive beats follow the sensor's own intervals (exact), and the clock
/// is pulled a little toward the arrival times at each notification; a long gap (lost
/// notifications, a reconnect) re-anchors it forward. It never places a beat at or before one
/// already placed, whatever the sensor sends.
#[derive(Debug, Clone, Default)]
pub struct BeatClock {
    last_beat: Option<f64>,
}

/// Beyond this, the intervals and the arrivals disagree too much: beats were lost; re-anchor.
const BEAT_REANCHOR_S: f64 = 2.0;
/// How much of the disagreement one notification corrects (a slow pull, bounded per beat).
const BEAT_PULL: f64 = 0.1;

impl BeatClock {
    /// The time of the beat before a run of intervals lasting `span_s` in all, the first of them
    /// `first_s`, that arrived at `arrival_unix` (its last beat ending about then). The run's
    /// first beat always comes after the last one placed.
    pub fn start_of(&self, span_s: f64, first_s: f64, arrival_unix: f64) -> f64 {
        let anchored = arrival_unix - span_s;
        match self.last_beat {
            None => anchored,
            // At most 10 ms a notification, and never back by half the first interval, so the
            // first beat stays after the last one.
            Some(last) if (anchored - last).abs() < BEAT_REANCHOR_S => {
                last + (BEAT_PULL * (anchored - last)).clamp(-(0.01f64.min(0.5 * first_s)), 0.01)
            }
            Some(last) if anchored > last => anchored,
            // The intervals claim more time than has passed since the last beat (a sensor that
            // resent beats, a garbled interval): they follow the last beat, not precede it.
            Some(last) => last,
        }
    }

    /// The run placed ended with a beat at `t`.
    pub fn ended_at(&mut self, t: f64) {
        self.last_beat = Some(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_drifting_sensor_through_jittered_delays_without_going_back() {
        // A sensor 300 ppm slow, 1000 s from host time 0, delays of 5–45 ms.
        let mut clock = SensorClock::default();
        let mut last = f64::NEG_INFINITY;
        let mut seed = 7u64;
        for k in 0..2000 {
            let host = k as f64 * 0.5 + 1000.0;
            let sensor = host * (1.0 - 300e-6);
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let delay = 0.005 + 0.04 * ((seed >> 33) as f64 / (1u64 << 31) as f64);
            let mapped = clock.map(sensor, host + delay).time;
            assert!(mapped > last + 0.49, "frame {k}: time went back or jumped: {last} → {mapped}");
            last = mapped;
            if k > 200 {
                assert!((mapped - host).abs() < 0.012, "frame {k}: {mapped} vs {host}");
            }
        }
        let drift = clock.drift_ppm().unwrap();
        assert!((drift - 300.0).abs() < 20.0, "{drift}");
    }

    #[test]
    fn a_step_of_the_sensor_clock_is_measured_anew_and_drift_survives_an_early_reconnect() {
        let mut clock = SensorClock::default();
        // An H10 on its 2019 default, then set to the right time by a phone app.
        let default_2019 = 599_616_000.0;
        for k in 0..10 {
            let m = clock.map(default_2019 + k as f64 * 0.5, 1.7e9 + k as f64 * 0.5 + 0.02);
            assert!(!m.stepped && (m.time - (1.7e9 + k as f64 * 0.5)).abs() < 0.021);
        }
        clock.reconnect();
        let set = 1.7e9 - 946_684_800.0;
        let m = clock.map(set + 5.0, 1.7e9 + 5.03);
        assert!(m.stepped && (m.time - (1.7e9 + 5.03)).abs() < 1e-6, "{m:?}");
        // Back to the default (a battery change): stepped again, still on the host's time.
        let m = clock.map(default_2019 + 100.0, 1.7e9 + 5.6);
        assert!(m.stepped && (m.time - (1.7e9 + 5.6)).abs() < 1e-6, "{m:?}");
        // A reconnect before the first window filled leaves no bogus drift.
        for k in 0..200 {
            clock.map(default_2019 + 100.5 + k as f64 * 0.5, 1.7e9 + 6.1 + k as f64 * 0.5);
            if k == 10 {
                clock.reconnect();
            }
        }
        assert!(clock.drift_ppm().is_none_or(|d| d.abs() < 1.0), "{:?}", clock.drift_ppm());
    }

    #[test]
    fn beats_never_go_back() {
        let mut beats = BeatClock::default();
        let t = beats.start_of(1.0, 1.0, 100.0);
        beats.ended_at(t + 1.0);
        // Intervals claiming 20 s before an arrival 1 s later: placed after the last beat.
        assert_eq!(beats.start_of(20.0, 1.0, 101.0), 100.0);
        // Ten seconds of silence (lost notifications): re-anchored forward at the arrival.
        assert!((beats.start_of(1.0, 1.0, 111.0) - 110.0).abs() < 1e-9);
        // A 1 ms interval arriving early (the fuzzer's find): pulled back by half of it at most.
        let start = beats.start_of(0.001, 0.001, 100.5);
        assert!(start + 0.001 > 100.0, "{start}");
    }
}
