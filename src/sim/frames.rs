//! What a simulated device sends: slices of a recording turned into the frames of one protocol,
//! with the impairments asked for (lost frames, garbage between frames). Pure: the pty is
//! `serial.rs`'s business.
//!
//! - **line**: one line per instant at the fastest channel's rate (slower channels held), a
//!   counter first.
//! - **cyton**: 250 Hz packets; the recording's first 8 channels, held to 250 Hz, in channels
//!   1–8 as µV (a `mV` channel is multiplied by 1000), gain 24, no accelerometer.
//! - **framed**: every channel at its own rate, one block per channel per frame, f32 samples,
//!   CRC-16.
//!
//! [`DeviceFrames::protocol_config`] is the daemon-side config that reads what is sent.

use crate::ingest::protocol::{cyton, framed, line, ProtocolConfig};
use crate::ingest::replay::Segment;
use crate::signal::ChannelSpec;

/// What the simulator did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SimReport {
    pub frames: u64,
    /// Frames dropped on purpose (`--loss`).
    pub lost_frames: u64,
    /// Frames preceded by garbage bytes (`--garbage`).
    pub garbled_frames: u64,
    /// Bytes no reader took in time (nobody had the port open).
    pub unread_bytes: u64,
}

/// Which protocol the simulated device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimProtocol {
    Line,
    Cyton,
    Framed,
}

/// Deliberate damage: each frame is lost with probability `loss` (its counter still advances,
/// as on a radio link) or preceded by 1–40 random bytes with probability `garbage`.
#[derive(Debug, Clone)]
pub struct Impairments {
    pub loss: f64,
    pub garbage: f64,
    /// xorshift64 state (reproducible runs from a seed; no statistics rest on it).
    state: u64,
}

impl Impairments {
    pub fn new(loss: f64, garbage: f64, seed: u64) -> Self {
        Impairments { loss, garbage, state: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }

    /// Apply to one encoded frame: append it to `out` (or not), perhaps after garbage.
    fn emit(&mut self, frame: &[u8], out: &mut Vec<u8>, report: &mut SimReport) {
        report.frames += 1;
        if self.chance(self.loss) {
            report.lost_frames += 1;
            return;
        }
        if self.chance(self.garbage) {
            report.garbled_frames += 1;
            let n = 1 + self.next() % 40;
            for _ in 0..n {
                out.push(self.next() as u8);
            }
        }
        out.extend_from_slice(frame);
    }
}

/// A device's framing state over one recording.
pub struct DeviceFrames {
    protocol: SimProtocol,
    specs: Vec<ChannelSpec>,
    hold: Hold,
    counter: u64,
    /// Per channel, the device index of its next sample (framed).
    next_index: Vec<u64>,
    frame: Vec<u8>,
    values: Vec<f64>,
}

const CYTON_RATE_HZ: f64 = 250.0;
const CYTON_GAIN: f64 = 24.0;

impl DeviceFrames {
    /// Frames for a recording with channels `specs`.
    pub fn new(protocol: SimProtocol, specs: &[ChannelSpec]) -> Result<DeviceFrames, String> {
        if specs.is_empty() {
            return Err("the recording has no channel".into());
        }
        let specs: Vec<ChannelSpec> = match protocol {
            SimProtocol::Cyton => specs.iter().take(8).cloned().collect(),
            SimProtocol::Framed if specs.len() > 255 => return Err("more than 255 channels".into()),
            _ => specs.to_vec(),
        };
        let rate = match protocol {
            SimProtocol::Cyton => CYTON_RATE_HZ,
            _ => specs.iter().map(|s| s.rate_hz).fold(0.0, f64::max),
        };
        Ok(DeviceFrames {
            protocol,
            hold: Hold::new(rate, specs.len()),
            next_index: vec![0; specs.len()],
            specs,
            counter: 0,
            frame: Vec::new(),
            values: Vec::new(),
        })
    }

    /// The config a daemon reads this device with.
    pub fn protocol_config(&self) -> ProtocolConfig {
        match self.protocol {
            SimProtocol::Line => {
                let held: Vec<ChannelSpec> =
                    self.specs.iter().map(|s| ChannelSpec { rate_hz: self.hold.rate, ..s.clone() }).collect();
                ProtocolConfig::Line(line::LineConfig::for_encoder(&held, line::Separator::Comma, None))
            }
            SimProtocol::Cyton => ProtocolConfig::Cyton(cyton::CytonConfig::for_simulator(&self.specs)),
            SimProtocol::Framed => ProtocolConfig::Framed(framed::FramedConfig::for_encoder(&self.specs)),
        }
    }

    /// True when the device streams only after being told to (`b` for the Cyton).
    pub fn waits_for_start(&self) -> bool {
        self.protocol == SimProtocol::Cyton
    }

    /// A command byte from the host: the reply goes to `reply`; `Some(true)` starts streaming,
    /// `Some(false)` stops it.
    pub fn command(&mut self, byte: u8, reply: &mut Vec<u8>) -> Option<bool> {
        if self.protocol != SimProtocol::Cyton {
            return None;
        }
        match byte {
            b'v' => {
                reply.extend_from_slice(cyton::SIMULATED_BANNER);
                self.counter = 0;
                Some(false)
            }
            b'b' => Some(true),
            b's' => Some(false),
            _ => None,
        }
    }

    /// Encode the frames due for `batch` (one list of segments per recording channel).
    pub fn encode(&mut self, batch: &[Vec<Segment>], imp: &mut Impairments, out: &mut Vec<u8>, report: &mut SimReport) {
        match self.protocol {
            SimProtocol::Line => {
                let (mut frame, mut values) = (std::mem::take(&mut self.frame), std::mem::take(&mut self.values));
                let counter = &mut self.counter;
                self.hold.frames(&self.specs, batch, |held| {
                    frame.clear();
                    values.clear();
                    values.extend(held.iter().map(|&v| v as f64));
                    line::encode_line(*counter, &values, line::Separator::Comma, &mut frame);
                    *counter += 1;
                    imp.emit(&frame, out, report);
                });
                (self.frame, self.values) = (frame, values);
            }
            SimProtocol::Cyton => {
                let mut frame = std::mem::take(&mut self.frame);
                let counter = &mut self.counter;
                let specs = &self.specs;
                self.hold.frames(specs, batch, |held| {
                    let mut counts = [0i32; 8];
                    for ((c, &v), spec) in counts.iter_mut().zip(held).zip(specs) {
                        let microvolts = if spec.unit == "mV" { v as f64 * 1000.0 } else { v as f64 };
                        *c = cyton::microvolts_to_counts(microvolts, CYTON_GAIN);
                    }
                    frame.clear();
                    cyton::encode_packet(*counter as u8, counts, [0; 6], 0xC0, &mut frame);
                    *counter += 1;
                    imp.emit(&frame, out, report);
                });
                self.frame = frame;
            }
            SimProtocol::Framed => {
                let mut blocks = Vec::new();
                for (k, segments) in batch.iter().enumerate().take(self.specs.len()) {
                    for segment in segments {
                        for chunk in segment.samples.chunks(framed::MAX_BLOCK_SAMPLES) {
                            blocks.push(framed::Block::f32(k as u8, self.next_index[k] as u32, chunk));
                            self.next_index[k] += chunk.len() as u64;
                        }
                    }
                }
                if self.counter == 0 && !blocks.is_empty() {
                    // As docs/serial-protocol.md asks of firmware after power-up: a delimiter
                    // first, so the receiver drops nothing of the first frame.
                    out.push(0);
                }
                if !blocks.is_empty() {
                    self.frame.clear();
                    framed::encode_frame(self.counter as u16, &blocks, framed::Crc::Crc16, &mut self.frame);
                    self.counter += 1;
                    imp.emit(&self.frame, out, report);
                }
            }
        }
    }
}

/// Sample-and-hold onto a frame clock: frame `k` is at `t0 + k / rate` and carries each
/// channel's latest sample at or before that time.
struct Hold {
    rate: f64,
    t0: Option<f64>,
    next_frame: u64,
    latest: Vec<f32>,
    /// Samples not yet reached by the frame clock, per channel: (time, value).
    pending: Vec<std::collections::VecDeque<(f64, f32)>>,
}

impl Hold {
    fn new(rate: f64, channels: usize) -> Self {
        Hold { rate, t0: None, next_frame: 0, latest: vec![0.0; channels], pending: vec![Default::default(); channels] }
    }

    /// Take `batch`'s samples and call `frame` for every frame up to the latest sample seen.
    fn frames(&mut self, specs: &[ChannelSpec], batch: &[Vec<Segment>], mut frame: impl FnMut(&[f32])) {
        let mut newest = f64::NEG_INFINITY;
        for ((segments, spec), pending) in batch.iter().zip(specs).zip(&mut self.pending) {
            for s in segments {
                for (i, &v) in s.samples.iter().enumerate() {
                    let t = s.start_time + i as f64 / spec.rate_hz;
                    pending.push_back((t, v));
                    newest = newest.max(t);
                    self.t0 = Some(self.t0.map_or(t, |t0: f64| t0.min(t)));
                }
            }
        }
        let Some(t0) = self.t0 else { return };
        loop {
            let t = t0 + self.next_frame as f64 / self.rate;
            if t > newest {
                break;
            }
            for (pending, latest) in self.pending.iter_mut().zip(&mut self.latest) {
                while let Some(&(ts, v)) = pending.front() {
                    if ts > t + 1e-9 {
                        break;
                    }
                    *latest = v;
                    pending.pop_front();
                }
            }
            frame(&self.latest);
            self.next_frame += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::protocol::Decoded;
    use crate::signal::Modality;

    /// `seconds` of a sine per channel, in 10 ms steps as the simulator reads them.
    fn steps(specs: &[ChannelSpec], seconds: f64) -> Vec<Vec<Vec<Segment>>> {
        (0..(seconds * 100.0) as usize)
            .map(|step| {
                specs
                    .iter()
                    .map(|s| {
                        let per_step = s.rate_hz / 100.0;
                        let (from, to) =
                            ((step as f64 * per_step).ceil() as usize, ((step + 1) as f64 * per_step).ceil() as usize);
                        let samples: Vec<f32> = (from..to).map(|i| (i as f32 * 0.01).sin()).collect();
                        let start_time = 100.0 + from as f64 / s.rate_hz;
                        if samples.is_empty() {
                            vec![]
                        } else {
                            vec![Segment { start_time, samples }]
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// What the daemon's decoder reads back from `seconds` of a two-rate recording.
    fn round_trip(protocol: SimProtocol, loss: f64, garbage: f64) -> (Decoded, SimReport, Vec<ChannelSpec>) {
        let specs =
            [ChannelSpec::new("ecg", Modality::Ecg, "mV", 100.0), ChannelSpec::new("eda", Modality::Eda, "uS", 4.0)];
        let mut frames = DeviceFrames::new(protocol, &specs).unwrap();
        let mut bytes = Vec::new();
        let mut report = SimReport::default();
        let mut imp = Impairments::new(loss, garbage, 7);
        for batch in steps(&specs, 4.0) {
            frames.encode(&batch, &mut imp, &mut bytes, &mut report);
        }
        let config = frames.protocol_config();
        let mut decoder = config.decoder();
        let mut out = Decoded::new(config.specs().len());
        decoder.push(b"\n", &mut out); // the port opened between lines
        decoder.push(&bytes, &mut out);
        decoder.finish(&mut out);
        (out, report, config.specs())
    }

    #[test]
    fn every_protocol_reads_back_what_it_sent() {
        for protocol in [SimProtocol::Line, SimProtocol::Cyton, SimProtocol::Framed] {
            let (out, report, specs) = round_trip(protocol, 0.0, 0.0);
            assert_eq!(out.decode_errors, 0, "{protocol:?}");
            assert_eq!(out.lost_samples, 0, "{protocol:?}");
            assert!(report.frames > 0);
            assert_eq!(specs[0].name, "ecg", "{protocol:?}");
            let ecg = &out.channels[0];
            assert_eq!(ecg.runs.len(), 1, "{protocol:?}: one unbroken run");
            assert!(ecg.values.len() >= 399, "{protocol:?}: {}", ecg.values.len());
            // The held ECG reads back within the protocol's quantisation.
            for (i, v) in ecg.values.iter().enumerate().take(50).skip(1) {
                let rate = specs[0].rate_hz;
                let expected = ((i as f64 * 100.0 / rate).floor() as f32 * 0.01).sin();
                assert!((v - expected).abs() < 1e-3, "{protocol:?} sample {i}: {v} vs {expected}");
            }
        }
    }

    #[test]
    fn loss_and_garbage_are_counted_on_both_sides() {
        for protocol in [SimProtocol::Line, SimProtocol::Cyton, SimProtocol::Framed] {
            let (out, report, _) = round_trip(protocol, 0.05, 0.05);
            assert!(report.lost_frames > 0 && report.garbled_frames > 0, "{protocol:?}: {report:?}");
            assert!(out.lost_samples > 0, "{protocol:?}: the decoder sees the counter jump");
            assert!(out.decode_errors > 0, "{protocol:?}: the decoder counts the garbage");
        }
    }
}
