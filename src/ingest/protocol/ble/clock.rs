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
    first: (f64, f64),
}

impl Default for SensorClock {
    fn default() -> Self {
        SensorClock { offset: None, recent: [0.0; WINDOW], written: 0, last_sensor: 0.0, first: (0.0, 0.0) }
    }
}

impl SensorClock {
    /// The host time of sensor time `sensor_s` (seconds on the sensor's clock) for a frame that
    /// arrived at `arrival_unix`.
    pub fn map(&mut self, sensor_s: f64, arrival_unix: f64) -> f64 {
        let delay_free = arrival_unix - sensor_s;
        self.recent[self.written % WINDOW] = delay_free;
        self.written += 1;
        let floor = self.recent[..self.written.min(WINDOW)].iter().copied().fold(f64::INFINITY, f64::min);
        let offset = match self.offset {
            None => floor,
            Some(offset) => {
                let budget = MAX_SLEW * (sensor_s - self.last_sensor).max(0.0);
                offset + (floor - offset).clamp(-budget, budget)
            }
        };
        self.offset = Some(offset);
        self.last_sensor = sensor_s;
        if self.written == WINDOW {
            // The first minimum over a full window: a fair start for the drift estimate.
            self.first = (sensor_s, offset);
        }
        sensor_s + offset
    }

    /// The sensor's clock rate against the host's, parts per million (positive: the sensor runs
    /// slow), once a minute of frames has been seen.
    pub fn drift_ppm(&self) -> Option<f64> {
        if self.written < WINDOW {
            return None;
        }
        let elapsed = self.last_sensor - self.first.0;
        let offset = self.offset?;
        (elapsed >= 60.0).then(|| (offset - self.first.1) / elapsed * 1e6)
    }

    /// A new connection: the sensor's clock is the same, but the delays seen are history.
    pub fn reconnect(&mut self) {
        if let Some(offset) = self.offset {
            self.recent = [offset; WINDOW];
            self.written = WINDOW;
        }
    }
}

/// Times for beat intervals that come without timestamps (Heart Rate service RR values, PPI):
/// a notification's last beat happened about when it arrived, the earlier ones an interval
/// apart before it. Consecutive beats follow the sensor's own intervals (exact), and the clock
/// is pulled a little toward the arrival times at each notification, so radio jitter does not
/// reorder beats and a long gap (lost notifications) re-anchors it.
#[derive(Debug, Clone, Default)]
pub struct BeatClock {
    last_beat: Option<f64>,
}

/// Beyond this, the intervals and the arrivals disagree too much: beats were lost; re-anchor.
const BEAT_REANCHOR_S: f64 = 2.0;
/// How much of the disagreement one notification corrects (a slow pull, bounded per beat).
const BEAT_PULL: f64 = 0.1;

impl BeatClock {
    /// Place the intervals (ms, oldest first) that arrived at `arrival_unix` as samples of
    /// `channel`, each at its beat's time.
    /// The time of the beat before a run of intervals lasting `span_s` in all that arrived at
    /// `arrival_unix` (its last beat ending about then).
    pub fn start_of(&self, span_s: f64, arrival_unix: f64) -> f64 {
        let anchored = arrival_unix - span_s;
        match self.last_beat {
            // At most 10 ms a notification: far less than any interval, so beats keep their order.
            Some(last) if (anchored - last).abs() < BEAT_REANCHOR_S => {
                last + (BEAT_PULL * (anchored - last)).clamp(-0.01, 0.01)
            }
            _ => anchored,
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
            let mapped = clock.map(sensor, host + delay);
            assert!(mapped > last + 0.49, "frame {k}: time went back or jumped: {last} → {mapped}");
            last = mapped;
            if k > 200 {
                assert!((mapped - host).abs() < 0.012, "frame {k}: {mapped} vs {host}");
            }
        }
        let drift = clock.drift_ppm().unwrap();
        assert!((drift - 300.0).abs() < 20.0, "{drift}");
    }
}
