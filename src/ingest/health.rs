//! What a running source says about itself, readable at any time by anyone holding its handle.
//!
//! The source's task writes (state, arrivals, decode errors, reconnects); the daemon, the status
//! payload and later the `sensor/{id}/state` topic read a [`HealthSnapshot`]. Samples and overruns
//! are not counted twice: they come from the source's channel rings, which count them anyway.
//! Everything is an atomic, so writing never blocks the ingest path and reading never blocks it.

use crate::ring::RingStats;
use serde::Serialize;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a source's link to its device (or file) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Built, not yet delivering samples (opening, waiting for the first packet).
    Starting,
    /// Looking for its device (a BLE scan).
    Scanning,
    /// Found it; connecting, discovering, starting its streams.
    Connecting,
    /// Samples are arriving.
    Streaming,
    /// The link dropped; the source is trying again.
    Reconnecting,
    /// The stream ended normally (a recording played to its end, or shutdown).
    Ended,
    /// The source gave up; its report says why.
    Failed,
}

impl LinkState {
    const ALL: [LinkState; 7] = [
        LinkState::Starting,
        LinkState::Scanning,
        LinkState::Connecting,
        LinkState::Streaming,
        LinkState::Reconnecting,
        LinkState::Ended,
        LinkState::Failed,
    ];
}

/// A copy of a source's health at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthSnapshot {
    pub state: LinkState,
    /// Host instant the last chunk arrived, if any did.
    pub last_arrival: Option<Instant>,
    /// Samples accepted onto the rings.
    pub samples: u64,
    /// Samples dropped because a ring was full.
    pub overrun_samples: u64,
    /// Bytes, packets or rows that could not be decoded (and were dropped).
    pub decode_errors: u64,
    /// Samples the device's own counter says were sent but never arrived (each left a gap).
    pub lost_samples: u64,
    /// Times the link was re-established after a drop.
    pub reconnects: u64,
    /// The device's battery level, percent, when it reports one (BLE Battery service).
    pub battery_percent: Option<u8>,
    /// Received signal strength of a radio link, dBm, when known.
    pub rssi_dbm: Option<i16>,
}

impl HealthSnapshot {
    /// How long ago the last chunk arrived, seen from `now`.
    pub fn data_age(&self, now: Instant) -> Option<Duration> {
        self.last_arrival.map(|t| now.saturating_duration_since(t))
    }
}

/// The shared health of one source. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Health(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Arrival instants are stored as nanoseconds after this (0 = none yet).
    epoch: Instant,
    state: AtomicU8,
    last_arrival_ns: AtomicU64,
    decode_errors: AtomicU64,
    lost_samples: AtomicU64,
    reconnects: AtomicU64,
    /// Percent, or [`NO_BATTERY`].
    battery: AtomicU8,
    /// dBm as the bits of an i16, or [`NO_RSSI`].
    rssi: AtomicU16,
    rings: Vec<Arc<RingStats>>,
}

const NO_BATTERY: u8 = u8::MAX;
const NO_RSSI: u16 = i16::MIN as u16;

impl Health {
    /// The health of a source whose channels use these rings.
    pub fn new(rings: Vec<Arc<RingStats>>) -> Self {
        Health(Arc::new(Inner {
            epoch: Instant::now(),
            state: AtomicU8::new(0),
            last_arrival_ns: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            lost_samples: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            battery: AtomicU8::new(NO_BATTERY),
            rssi: AtomicU16::new(NO_RSSI),
            rings,
        }))
    }

    pub fn set_state(&self, state: LinkState) {
        let i = LinkState::ALL.iter().position(|s| *s == state).expect("ALL lists every state");
        self.0.state.store(i as u8, Ordering::Relaxed);
    }

    /// A chunk arrived at `at`.
    pub fn arrived(&self, at: Instant) {
        // +1 so an arrival at the epoch itself is not read as "none yet".
        let ns = at.saturating_duration_since(self.0.epoch).as_nanos() as u64 + 1;
        self.0.last_arrival_ns.fetch_max(ns, Ordering::Relaxed);
    }

    pub fn decode_errors(&self, n: u64) {
        self.0.decode_errors.fetch_add(n, Ordering::Relaxed);
    }

    pub fn lost_samples(&self, n: u64) {
        self.0.lost_samples.fetch_add(n, Ordering::Relaxed);
    }

    pub fn reconnected(&self) {
        self.0.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_battery(&self, percent: u8) {
        self.0.battery.store(percent.min(100), Ordering::Relaxed);
    }

    pub fn set_rssi(&self, dbm: i16) {
        self.0.rssi.store(dbm.max(i16::MIN + 1) as u16, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let inner = &self.0;
        let ns = inner.last_arrival_ns.load(Ordering::Relaxed);
        let sum = |f: fn(&RingStats) -> &AtomicU64| inner.rings.iter().map(|r| f(r).load(Ordering::Relaxed)).sum();
        HealthSnapshot {
            state: LinkState::ALL[inner.state.load(Ordering::Relaxed) as usize],
            last_arrival: (ns > 0).then(|| inner.epoch + Duration::from_nanos(ns - 1)),
            samples: sum(|r| &r.pushed_samples),
            overrun_samples: sum(|r| &r.overrun_samples),
            decode_errors: inner.decode_errors.load(Ordering::Relaxed),
            lost_samples: inner.lost_samples.load(Ordering::Relaxed),
            reconnects: inner.reconnects.load(Ordering::Relaxed),
            battery_percent: Some(inner.battery.load(Ordering::Relaxed)).filter(|b| *b != NO_BATTERY),
            rssi_dbm: Some(inner.rssi.load(Ordering::Relaxed)).filter(|r| *r != NO_RSSI).map(|r| r as i16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{channel, Waker};
    use crate::signal::ChunkStamp;

    #[test]
    fn a_snapshot_reads_what_the_source_and_its_rings_counted() {
        let (mut p, _c) = channel(4, 8, Waker::default());
        let health = Health::new(vec![p.stats().clone()]);
        assert_eq!(health.snapshot().state, LinkState::Starting);
        assert_eq!(health.snapshot().last_arrival, None);
        let now = Instant::now();
        p.push(ChunkStamp { source_time: 0.0, arrival: now }, &[1.0, 2.0]).unwrap();
        p.push(ChunkStamp { source_time: 0.0, arrival: now }, &[1.0; 3]).unwrap_err();
        health.arrived(now);
        health.set_state(LinkState::Streaming);
        health.decode_errors(2);
        health.lost_samples(7);
        health.reconnected();
        let s = health.snapshot();
        assert_eq!(
            (s.state, s.samples, s.overrun_samples, s.decode_errors, s.lost_samples, s.reconnects),
            (LinkState::Streaming, 2, 3, 2, 7, 1)
        );
        assert_eq!(s.last_arrival, Some(now));
        assert_eq!((s.battery_percent, s.rssi_dbm), (None, None));
        health.set_battery(90);
        health.set_rssi(-67);
        assert_eq!((health.snapshot().battery_percent, health.snapshot().rssi_dbm), (Some(90), Some(-67)));
        assert_eq!(s.data_age(now), Some(Duration::ZERO));
    }
}
