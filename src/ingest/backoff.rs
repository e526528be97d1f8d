//! Reconnect delays for every live source: exponential backoff with jitter, so a hub's devices
//! that dropped together (a power blip, a USB hub reset) do not all retry in step.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reconnect delays: doubling from `initial` to `max`, each with ±25 % jitter.
pub struct Backoff {
    initial: f64,
    max: f64,
    next: f64,
    /// xorshift state for the jitter (no need for a random crate's quality here).
    seed: u64,
}

impl Backoff {
    pub fn new(initial: f64, max: f64) -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.subsec_nanos() as u64 | 1);
        Backoff { initial, max, next: initial, seed }
    }

    /// The link worked: the next try comes quickly again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// How long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.75 + 0.5 * (self.seed % 1000) as f64 / 1000.0;
        let delay = self.next * jitter;
        self.next = (self.next * 2.0).min(self.max);
        Duration::from_secs_f64(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(0.1, 1.0);
        let delays: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
        let nominal = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0];
        for (d, n) in delays.iter().zip(nominal) {
            assert!(*d >= 0.75 * n - 1e-9 && *d <= 1.25 * n + 1e-9, "{d} vs {n}");
        }
        b.reset();
        assert!(b.next_delay().as_secs_f64() <= 0.125 + 1e-9);
    }
}
