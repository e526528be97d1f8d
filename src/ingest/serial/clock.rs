//! Recording-clock times for a live device's samples. Pure.
//!
//! A decoder numbers samples from 0 at each connection (from the device's counter where it has
//! one, so lost samples leave a jump). The clock anchors the first connection's index 0 to the
//! host's unix time when its first bytes arrive, as if the newest sample in them had just been
//! taken; every later sample's time is `anchor + index / rate`. A reconnect re-anchors the new
//! connection after the end of what the last one delivered, plus the host time that passed
//! without data: the device went on sampling while unplugged, so that time becomes a gap in the
//! stream (and the `gap` flag on its windows), and time never runs backwards.
//!
//! Not corrected: a device whose crystal runs off its nominal rate drifts from the host clock
//! (100 ppm is 0.36 s an hour); the anchor holds for one connection.

use crate::signal::ChannelSpec;

#[derive(Debug, Clone, Default)]
pub struct DeviceClock {
    /// Unix time of sample index 0 of the current connection, once its first batch arrived.
    anchor: Option<f64>,
    /// End (time of last sample + one period) of everything delivered so far, any connection.
    delivered_until: f64,
    /// Host unix time of the last delivery, if any.
    last_delivery: Option<f64>,
}

impl DeviceClock {
    /// A new connection starts: the next batch anchors it.
    pub fn reconnect(&mut self) {
        self.anchor = None;
    }

    /// The anchor for a batch arriving at `now_unix` whose newest sample ends `newest_end_s`
    /// after index 0 (the largest `(index + 1) / rate` in the batch).
    pub fn anchor(&mut self, now_unix: f64, newest_end_s: f64) -> f64 {
        let anchor = match (self.anchor, self.last_delivery) {
            (Some(anchor), _) => anchor,
            (None, None) => now_unix - newest_end_s,
            // Unplugged from `last` to now: the new samples end that much after the old ones.
            (None, Some(last)) => {
                (self.delivered_until + (now_unix - last).max(0.0) - newest_end_s).max(self.delivered_until)
            }
        };
        self.anchor = Some(anchor);
        self.last_delivery = Some(now_unix);
        anchor
    }

    /// Recording-clock time of sample `index` of `spec`'s channel; remembers how far delivery
    /// reached when `samples` samples from there are delivered.
    pub fn time_of(&mut self, anchor: f64, spec: &ChannelSpec, index: u64, samples: usize) -> f64 {
        let t = anchor + index as f64 / spec.rate_hz;
        self.delivered_until = self.delivered_until.max(t + samples as f64 / spec.rate_hz);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Modality;

    #[test]
    fn a_reconnect_leaves_a_gap_and_never_goes_back() {
        let spec = ChannelSpec::new("x", Modality::Ecg, "mV", 100.0);
        let mut clock = DeviceClock::default();
        // 50 samples arrive at t = 1000.5: index 0 was taken at 1000.0.
        let a = clock.anchor(1000.5, 0.5);
        assert_eq!(clock.time_of(a, &spec, 0, 50), 1000.0);
        assert_eq!(clock.anchor(1000.6, 0.6), a, "the anchor holds within a connection");
        assert!((clock.time_of(a, &spec, 50, 10) - 1000.5).abs() < 1e-9);
        // Unplugged for 3 s of host time: the next connection starts 3 s after the last sample.
        clock.reconnect();
        let b = clock.anchor(1003.6, 0.01);
        assert!((clock.time_of(b, &spec, 0, 1) - 1003.59).abs() < 1e-9);
        // Even when the device's clock runs ahead of the host's (a simulator at 10x), the hole
        // is as long as the host time without data.
        let mut fast = DeviceClock::default();
        let a = fast.anchor(2000.0, 0.0);
        fast.time_of(a, &spec, 0, 1000); // 10 s of samples that arrived within 1 s
        fast.anchor(2001.0, 0.0);
        fast.reconnect();
        let b = fast.anchor(2003.0, 0.0);
        assert!((b - 2012.0).abs() < 1e-9, "10 s delivered + 2 s unplugged: {b}");
        // A backlog read at reconnect never places samples before what was delivered.
        clock.reconnect();
        let c = clock.anchor(1003.7, 5.0);
        assert!((c - 1003.6).abs() < 1e-9, "{c}");
    }
}
