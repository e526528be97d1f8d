//! Per-subject window assembly across channels of different rates, on the recording clock.
//!
//! Windows are `[start, start + length)` in recording-clock seconds and advance by `hop`. A window
//! closes when every channel has delivered its last sample before `end` — or, for a channel that
//! went quiet, when another channel is `stall_timeout_s` past `end` (the quiet channel is then
//! flagged, not waited for forever). Missing samples inside a window (dropped chunks, recording
//! gaps, a stalled channel) are counted per channel so features can report their quality.
//!
//! Architecture invariant: memory is bounded by `length + stall_timeout` of recording time per
//! channel, from the first sample on (a channel that never speaks is stalled like a quiet one);
//! samples older than the next window's start are released as soon as a window closes. In samples
//! that is at most twice the nominal count (plus the chunk being pushed): a sample closer than half
//! a period to the one before is dropped as out of order, but one between half and one period
//! after it is kept, because chunks stamped by a device or host clock overlap their predecessor by
//! a fraction of a period all the time, and dropping those samples would lose real data.

mod config;
mod windower;

pub use config::WindowConfig;
pub use windower::SubjectWindower;

use crate::signal::ChannelSpec;
use std::time::Instant;

/// One channel's samples inside a closed window.
#[derive(Debug, Clone)]
pub struct ChannelWindow {
    pub spec: ChannelSpec,
    /// Samples with recording time in `[start, end)`, in time order.
    pub values: Vec<f32>,
    /// Samples the nominal rate promises in the window but that never arrived (one sample of
    /// boundary jitter is forgiven).
    pub missing: usize,
    /// How many of the newest `values` no earlier window held (all of them in the first window):
    /// streaming feature processors consume exactly these.
    pub fresh: usize,
}

impl ChannelWindow {
    /// Fraction of the expected samples that are present (1.0 = complete).
    pub fn coverage(&self) -> f32 {
        let expected = self.values.len() + self.missing;
        if expected == 0 {
            0.0
        } else {
            self.values.len() as f32 / expected as f32
        }
    }
}

/// A closed window of one subject, all channels aligned on the recording clock.
#[derive(Debug, Clone)]
pub struct Window {
    pub subject: String,
    /// 0, 1, 2, ... per subject.
    pub seq: u64,
    pub start: f64,
    pub end: f64,
    pub channels: Vec<ChannelWindow>,
    /// Host arrival of the latest chunk carrying one of the window's last samples; latency starts here.
    pub last_arrival: Instant,
}

/// Counters a windower keeps for the run summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowerStats {
    pub windows: u64,
    /// Samples that arrived with a time at or before one already held (duplicates, clock jumps back).
    pub out_of_order_samples: u64,
    /// Samples that arrived after their window had closed.
    pub late_samples: u64,
    /// Windows left incomplete when every stream ended.
    pub partial_windows_dropped: u64,
    /// Windows in which no channel had a single sample (recording gaps), skipped.
    pub empty_windows_skipped: u64,
}
