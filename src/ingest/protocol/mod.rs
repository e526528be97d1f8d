//! Wire protocols as pure decoders: bytes in, samples and counted errors out. No I/O, no tokio,
//! no allocation per frame once the output buffers have grown; any transport (a serial port, a
//! pseudo-terminal in a test, a fuzzer) drives them the same way.
//!
//! - [`line`]: text lines of separated values (Arduino/ESP32 sketches, BITalino-style kits).
//! - [`cyton`]: OpenBCI Cyton 33-byte packets over its dongle.
//! - [`ble`]: Bluetooth LE notifications (Heart Rate service, Polar PMD), one message at a time.
//! - [`framed`]: biofeedd's documented framed binary protocol (COBS, sequence, CRC) for custom
//!   firmware; `docs/serial-protocol.md` specifies it.
//!
//! Time is not a decoder's business: each sample carries its **device sample index** (per
//! channel, at that channel's rate, counting from 0 at the start or the last
//! [`Decoder::reset`]), taken from the device's own counter where the protocol has one. A jump in
//! the index is lost samples; the transport turns indices into recording-clock times, so a loss
//! becomes a gap on the stream.

pub mod ble;
pub mod cyton;
mod delimited;
pub mod framed;
pub mod line;
#[cfg(test)]
mod testing;

use crate::diagnostic::Invalid;
use crate::key_path;
use crate::signal::ChannelSpec;
use serde::Deserialize;

/// `protocol = { type = "line" | "cyton" | "framed", … }` in a serial source: how its bytes
/// are read, and the channels they carry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ProtocolConfig {
    Line(line::LineConfig),
    Cyton(cyton::CytonConfig),
    Framed(framed::FramedConfig),
}

impl ProtocolConfig {
    /// As `type = "…"` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ProtocolConfig::Line(_) => "line",
            ProtocolConfig::Cyton(_) => "cyton",
            ProtocolConfig::Framed(_) => "framed",
        }
    }

    /// Check the protocol's fields; paths in the error are relative to the `protocol` table.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            ProtocolConfig::Line(c) => c.validate(),
            ProtocolConfig::Cyton(c) => c.validate(),
            ProtocolConfig::Framed(c) => c.validate(),
        }
        .map_err(|e| e.under(key_path!["protocol"]))
    }

    /// The channels the protocol's decoder emits, in order.
    pub fn specs(&self) -> Vec<ChannelSpec> {
        match self {
            ProtocolConfig::Line(c) => c.specs(),
            ProtocolConfig::Cyton(c) => c.specs(),
            ProtocolConfig::Framed(c) => c.specs(),
        }
    }

    /// A fresh decoder for one connection.
    pub fn decoder(&self) -> Box<dyn Decoder> {
        match self {
            ProtocolConfig::Line(c) => Box::new(c.decoder()),
            ProtocolConfig::Cyton(c) => Box::new(c.decoder()),
            ProtocolConfig::Framed(c) => Box::new(c.decoder()),
        }
    }
}

/// A protocol decoder. One per connection; [`Decoder::reset`] after a reconnect.
pub trait Decoder: Send {
    /// The channels this decoder emits, in the order of [`Decoded::channels`].
    fn specs(&self) -> &[ChannelSpec];

    /// Decode `bytes`, appending to `out`. Bytes of a frame split across calls are kept until
    /// the rest arrives; bytes that cannot be decoded are counted and skipped to the next frame
    /// boundary (resynchronisation), never a panic.
    fn push(&mut self, bytes: &[u8], out: &mut Decoded);

    /// The stream ended (the device went away): a partial frame held back is dropped and, when
    /// it held anything, counted as a decode error.
    fn finish(&mut self, out: &mut Decoded);

    /// Start over for a new connection: partial frames and sample counters are forgotten, so the
    /// next sample is index 0 again.
    fn reset(&mut self);
}

/// What decoding produced. Reused across calls: the transport calls [`Decoded::clear`] after
/// taking the samples, which keeps the buffers' capacity.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// One entry per channel, in [`Decoder::specs`] order.
    pub channels: Vec<ChannelSamples>,
    /// Frames, packets or lines that could not be decoded and were skipped.
    pub decode_errors: u64,
    /// Samples the device's counter says were sent but never arrived (summed over the frame
    /// rate's samples, not per channel).
    pub lost_samples: u64,
}

impl Decoded {
    /// Buffers for `channels` channels.
    pub fn new(channels: usize) -> Self {
        Decoded { channels: vec![ChannelSamples::default(); channels], decode_errors: 0, lost_samples: 0 }
    }

    /// Make room for `channels` channels (a caller may hand in a `Decoded::default()`).
    pub fn fit(&mut self, channels: usize) {
        if self.channels.len() != channels {
            self.channels.resize(channels, ChannelSamples::default());
        }
    }

    /// Forget the samples and counts, keep the capacity.
    pub fn clear(&mut self) {
        for c in &mut self.channels {
            c.clear();
        }
        self.decode_errors = 0;
        self.lost_samples = 0;
    }

    /// Samples over all channels.
    pub fn sample_count(&self) -> usize {
        self.channels.iter().map(|c| c.values.len()).sum()
    }
}

/// One channel's decoded samples as runs of consecutive device sample indices.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ChannelSamples {
    /// Sample values in physical units, in arrival order.
    pub values: Vec<f32>,
    /// Where each run of consecutive indices begins: (offset into `values`, device sample index
    /// of that value). A new run starts at the first value and after every jump in the index.
    pub runs: Vec<(usize, u64)>,
}

impl ChannelSamples {
    /// Append the sample with device index `index`. An index not after the previous one (a
    /// counter gone backwards or repeated) starts a new run too; the transport decides.
    pub fn push(&mut self, index: u64, value: f32) {
        let continues = self.follows(index);
        if !continues {
            self.runs.push((self.values.len(), index));
        }
        self.values.push(value);
    }

    /// Append consecutive samples, the first with device index `index`: one continuity check
    /// for the lot (a decoder's block of samples).
    pub fn push_run(&mut self, index: u64, values: impl IntoIterator<Item = f32>) {
        let continues = self.follows(index);
        let before = self.values.len();
        self.values.extend(values);
        if !continues && self.values.len() > before {
            self.runs.push((before, index));
        }
    }

    /// `index` is the one right after the last sample (checked: a hostile counter may sit near
    /// `u64::MAX`).
    fn follows(&self, index: u64) -> bool {
        self.runs
            .last()
            .is_some_and(|&(offset, first)| first.checked_add((self.values.len() - offset) as u64) == Some(index))
    }

    /// Index just past the last sample, if any.
    pub fn end_index(&self) -> Option<u64> {
        self.runs.last().map(|&(offset, first)| first.saturating_add((self.values.len() - offset) as u64))
    }

    /// Runs as (device index of the first sample, samples).
    pub fn iter_runs(&self) -> impl Iterator<Item = (u64, &[f32])> + '_ {
        self.runs.iter().enumerate().map(|(k, &(offset, index))| {
            let end = self.runs.get(k + 1).map_or(self.values.len(), |r| r.0);
            (index, &self.values[offset..end])
        })
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_index_jumps() {
        let mut c = ChannelSamples::default();
        for (i, v) in [(0, 1.0), (1, 2.0), (5, 3.0), (6, 4.0), (6, 5.0)] {
            c.push(i, v);
        }
        let runs: Vec<(u64, Vec<f32>)> = c.iter_runs().map(|(i, v)| (i, v.to_vec())).collect();
        assert_eq!(runs, [(0, vec![1.0, 2.0]), (5, vec![3.0, 4.0]), (6, vec![5.0])]);
        // A run pushed whole continues the last one when it follows it, else starts its own.
        c.push_run(7, [6.0, 7.0]);
        c.push_run(20, []);
        c.push_run(10, [8.0]);
        let runs: Vec<(u64, Vec<f32>)> = c.iter_runs().map(|(i, v)| (i, v.to_vec())).collect();
        assert_eq!(runs[2..], [(6, vec![5.0, 6.0, 7.0]), (10, vec![8.0])]);
    }
}
