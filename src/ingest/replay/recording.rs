//! What every reader returns: a [`Recording`] of channels, each a run of gap-free [`Segment`]s,
//! or a [`ReadError`] naming the file. No file format is known here.

use crate::signal::ChannelSpec;
use std::path::PathBuf;

/// A whole recording in memory, one entry per channel.
#[derive(Debug, Clone)]
pub struct Recording {
    pub channels: Vec<RecordedChannel>,
    /// Malformed rows dropped under `on_bad_row = "skip"`; each left a gap.
    pub skipped_rows: u64,
    /// Things worth telling the user that did not stop the read (e.g. a missing E4 file).
    pub notes: Vec<String>,
}

/// One channel: its spec and its samples as runs of evenly spaced samples.
#[derive(Debug, Clone)]
pub struct RecordedChannel {
    pub spec: ChannelSpec,
    /// Gap-free runs in time order; a new segment starts after every gap.
    pub segments: Vec<Segment>,
}

/// Evenly spaced samples starting at `start_time` (recording clock, unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_time: f64,
    pub samples: Vec<f32>,
}

impl Recording {
    /// Earliest and latest sample time over all channels.
    pub fn time_span(&self) -> Option<(f64, f64)> {
        let mut span: Option<(f64, f64)> = None;
        for ch in &self.channels {
            for seg in &ch.segments {
                if seg.samples.is_empty() {
                    continue;
                }
                let end = seg.start_time + (seg.samples.len() - 1) as f64 * ch.spec.period_s();
                span = Some(match span {
                    None => (seg.start_time, end),
                    Some((a, b)) => (a.min(seg.start_time), b.max(end)),
                });
            }
        }
        span
    }

    pub fn total_samples(&self) -> usize {
        self.channels.iter().flat_map(|c| &c.segments).map(|s| s.samples.len()).sum()
    }
}

/// Why a recording could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}
