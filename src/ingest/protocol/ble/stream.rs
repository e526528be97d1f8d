//! From notifications to timed samples: what a BLE sensor streams, the channels that makes, and
//! the [`Assembler`] that turns each notification into chunks on the recording clock. Pure —
//! the live BLE source and the replay of a capture drive the same assembler, one with what the
//! radio delivers, the other with what a file recorded.

use super::clock::{BeatClock, SensorClock};
use super::hrs;
use super::pmd::{self, control, Layout, Measurement, PmdError};
use crate::signal::{ChannelSpec, Modality};
use serde::Deserialize;

/// One stream a BLE sensor can deliver (`streams = ["ecg", "acc"]` in a `kind = "ble"` source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Heart Rate service: the heart rate of each notification (about 1 Hz).
    Hr,
    /// Polar PMD ECG (H10: 130 Hz, µV at 14 bits).
    Ecg,
    /// Polar PMD accelerometer (three axes, in g).
    Acc,
    /// Polar PMD PPG (Verity Sense, OH1: three green channels and ambient).
    Ppg,
    /// Polar PMD peak-to-peak intervals (Verity Sense, OH1), the armband's own beat detection.
    Ppi,
}

impl StreamKind {
    /// The PMD measurement behind this stream, if it is one.
    pub fn measurement(self) -> Option<Measurement> {
        match self {
            StreamKind::Hr => None,
            StreamKind::Ecg => Some(Measurement::Ecg),
            StreamKind::Acc => Some(Measurement::Acc),
            StreamKind::Ppg => Some(Measurement::Ppg),
            StreamKind::Ppi => Some(Measurement::Ppi),
        }
    }
}

/// A stream and the settings it is started with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSpec {
    pub kind: StreamKind,
    /// The rate the samples really come at. (A Verity Sense outside SDK mode reports 135 Hz for
    /// its PPG whatever it does; the assembler measures the rate and says when they differ.)
    pub rate_hz: f64,
    /// Bits per value, as started.
    pub resolution: u8,
    /// ACC range in g, when the stream has one.
    pub range: Option<u16>,
}

impl StreamSpec {
    /// The defaults for `kind`: an H10's ECG (130 Hz, 14 bit) and ACC (200 Hz, 16 bit, ±8 g), a
    /// Verity Sense's PPG (55 Hz, 22 bit), and the Heart Rate service's ~1 Hz.
    pub fn default_for(kind: StreamKind) -> StreamSpec {
        let (rate_hz, resolution, range) = match kind {
            // Event streams: the typical beat rate, for sizing buffers.
            StreamKind::Hr | StreamKind::Ppi => (1.0, 16, None),
            StreamKind::Ecg => (130.0, 14, None),
            StreamKind::Acc => (200.0, 16, Some(8)),
            StreamKind::Ppg => (55.0, 22, None),
        };
        StreamSpec { kind, rate_hz, resolution, range }
    }

    /// Channels of a compressed frame of this stream.
    fn channels(&self) -> usize {
        match self.kind {
            StreamKind::Hr | StreamKind::Ecg | StreamKind::Ppi => 1,
            StreamKind::Acc => 3,
            StreamKind::Ppg => 4,
        }
    }

    /// The control-point request that starts this stream (`None` for the Heart Rate service,
    /// which streams once subscribed). PPI takes no settings.
    pub fn start_request(&self) -> Option<Vec<u8>> {
        let m = self.kind.measurement()?;
        if self.kind == StreamKind::Ppi {
            return Some(vec![control::Op::Start as u8, m as u8]);
        }
        let settings = control::StreamSettings {
            sample_rate: self.rate_hz.round() as u16,
            resolution: u16::from(self.resolution),
            range: self.range,
            channels: (self.kind == StreamKind::Ppg).then_some(4),
        };
        Some(control::start_request(m, &settings))
    }

    /// The pipeline channels this stream fills, in order.
    pub fn specs(&self) -> Vec<ChannelSpec> {
        let rate = self.rate_hz;
        match self.kind {
            StreamKind::Hr => vec![
                ChannelSpec::new("hr", Modality::Other, "bpm", rate),
                ChannelSpec::new("rr", Modality::Rr, "ms", rate),
            ],
            StreamKind::Ppi => vec![ChannelSpec::new("ppi", Modality::Rr, "ms", rate)],
            StreamKind::Ecg => vec![ChannelSpec::new("ecg", Modality::Ecg, "mV", rate)],
            StreamKind::Acc => {
                ["acc_x", "acc_y", "acc_z"].into_iter().map(|n| ChannelSpec::new(n, Modality::Acc, "g", rate)).collect()
            }
            StreamKind::Ppg => vec![
                ChannelSpec::new("ppg", Modality::Ppg, "a.u.", rate),
                ChannelSpec::new("ppg_ambient", Modality::Other, "a.u.", rate),
            ],
        }
    }
}

/// Which clock a notification's times are read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBase {
    /// Live, or a capture with arrival times: sensor timestamps mapped onto the host clock.
    Arrival,
    /// A recording with no arrival times: the sensor's own timestamps are the recording clock.
    Sensor,
}

/// The characteristic a notification came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    HeartRate,
    Battery,
    PmdControl,
    PmdData,
}

/// One run of samples for one channel, its first sample at `time` (recording clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedChunk {
    pub channel: usize,
    pub time: f64,
    /// Where its values are in [`Timed::values`].
    pub start: usize,
    pub len: usize,
}

/// What one notification gave. Reused: [`Timed::clear`] keeps the buffers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Timed {
    pub chunks: Vec<TimedChunk>,
    pub values: Vec<f32>,
    pub decode_errors: u64,
    pub lost_samples: u64,
    /// The first few decode errors' messages since the last clear, for a log line.
    pub errors: Vec<String>,
    pub battery: Option<u8>,
    /// Control-point responses: which measurement, and whether the request succeeded.
    pub responses: Vec<(u8, Result<(), PmdError>)>,
    /// Things worth telling the user once (a PPG rate that is not what was configured).
    pub notes: Vec<String>,
}

impl Timed {
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.values.clear();
        self.decode_errors = 0;
        self.lost_samples = 0;
        self.errors.clear();
        self.battery = None;
        self.responses.clear();
        self.notes.clear();
    }

    /// The values of `chunk`.
    pub fn values_of(&self, chunk: &TimedChunk) -> &[f32] {
        &self.values[chunk.start..chunk.start + chunk.len]
    }

    fn error(&mut self, message: String) {
        self.decode_errors += 1;
        if self.errors.len() < 4 {
            self.errors.push(message);
        }
    }
}

/// Per-stream state: where its channels start, its clock, the last frame's time.
#[derive(Debug, Clone)]
struct StreamState {
    spec: StreamSpec,
    first_channel: usize,
    clock: SensorClock,
    /// Sensor time (s) of the previous frame's last sample.
    last_sensor: Option<f64>,
    factor: f32,
    /// (sensor time, samples) since the rate was last checked.
    rate_probe: Option<(f64, u64)>,
    rate_noted: bool,
    beats: BeatClock,
}

/// Turns notifications into timed chunks for the channels of its streams.
#[derive(Debug, Clone)]
pub struct Assembler {
    streams: Vec<StreamState>,
    specs: Vec<ChannelSpec>,
    time_base: TimeBase,
    raw: Vec<i32>,
}

/// A frame further than this many frame spans after the previous one means frames were lost.
const GAP_FRAMES: f64 = 1.5;

impl Assembler {
    pub fn new(streams: &[StreamSpec], time_base: TimeBase) -> Self {
        let mut specs = Vec::new();
        let streams = streams
            .iter()
            .map(|&spec| {
                let first_channel = specs.len();
                specs.extend(spec.specs());
                StreamState {
                    spec,
                    first_channel,
                    clock: SensorClock::default(),
                    last_sensor: None,
                    factor: 1.0,
                    rate_probe: None,
                    rate_noted: false,
                    beats: BeatClock::default(),
                }
            })
            .collect();
        Assembler { streams, specs, time_base, raw: Vec::new() }
    }

    /// The channels, in the order chunks name them.
    pub fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    /// A new connection: the streams start again (a lost stretch is a gap, not lost frames).
    pub fn reconnect(&mut self) {
        for s in &mut self.streams {
            s.clock.reconnect();
            s.last_sensor = None;
            s.rate_probe = None;
            s.beats = BeatClock::default();
        }
    }

    /// The drift of the first PMD stream's sensor clock against the host's, in ppm.
    pub fn drift_ppm(&self) -> Option<f64> {
        self.streams.iter().find_map(|s| s.clock.drift_ppm())
    }

    /// Decode one notification from `source` that arrived at `arrival_unix` into `out`.
    pub fn push(&mut self, source: Source, bytes: &[u8], arrival_unix: f64, out: &mut Timed) {
        match source {
            Source::HeartRate => self.heart_rate(bytes, arrival_unix, out),
            Source::Battery => match hrs::parse_battery(bytes) {
                Ok(level) => out.battery = Some(level),
                Err(e) => out.error(e.to_string()),
            },
            Source::PmdControl => match control::parse_response(bytes) {
                Ok(r) => {
                    if let (Ok(()), Some(factor)) = (r.check(), r.start_factor()) {
                        for s in self
                            .streams
                            .iter_mut()
                            .filter(|s| s.spec.kind.measurement().map(|m| m as u8) == Some(r.measurement))
                        {
                            s.factor = factor;
                        }
                    }
                    out.responses.push((r.measurement, r.check()));
                }
                Err(e) => out.error(e.to_string()),
            },
            Source::PmdData => {
                if let Err(e) = self.pmd_frame(bytes, arrival_unix, out) {
                    out.error(e.to_string());
                }
            }
        }
    }

    fn heart_rate(&mut self, bytes: &[u8], arrival_unix: f64, out: &mut Timed) {
        let Some(s) = self.streams.iter_mut().find(|s| s.spec.kind == StreamKind::Hr) else { return };
        match hrs::parse_measurement(bytes) {
            Ok(m) => {
                let start = out.values.len();
                out.values.push(f32::from(m.heart_rate_bpm));
                out.chunks.push(TimedChunk { channel: s.first_channel, time: arrival_unix, start, len: 1 });
                place_beats(&mut s.beats, m.rr_ms(), arrival_unix, s.first_channel + 1, out);
            }
            Err(e) => out.error(e.to_string()),
        }
    }

    fn pmd_frame(&mut self, bytes: &[u8], arrival_unix: f64, out: &mut Timed) -> Result<(), PmdError> {
        let frame = pmd::parse_frame(bytes)?;
        let Some(stream) =
            self.streams.iter_mut().find(|s| s.spec.kind.measurement().map(|m| m as u8) == Some(frame.measurement))
        else {
            // A stream another client started, or one we stopped asking for: not ours to decode.
            return Ok(());
        };
        if stream.spec.kind == StreamKind::Ppi {
            // PPI frames carry no timestamp: beats are placed from the arrival, like RR values.
            // An interval the sensor marks unreliable is left out (HRV would reject most anyway).
            let intervals = pmd::decode_ppi(frame.payload)?.filter(|p| !p.invalid()).map(|p| f64::from(p.interval_ms));
            place_beats(&mut stream.beats, intervals, arrival_unix, stream.first_channel, out);
            return Ok(());
        }
        let layout = Layout { channels: stream.spec.channels(), resolution: stream.spec.resolution };
        self.raw.clear();
        let (samples, channels) = pmd::decode_samples(&frame, layout, &mut self.raw)?;
        if channels != layout.channels {
            return Err(PmdError::Format(format!(
                "{} frame type {} has {channels} channels, the stream {}",
                pmd::Measurement::name_of(frame.measurement),
                frame.frame_type,
                layout.channels
            )));
        }
        let rate = stream.spec.rate_hz;
        let sensor_s = frame.timestamp_ns as f64 / 1e9;
        if let Some(last) = stream.last_sensor {
            if sensor_s <= last {
                return Err(PmdError::Format(format!(
                    "{} frame stamped {:.6} s, not after the previous frame's {last:.6} s",
                    pmd::Measurement::name_of(frame.measurement),
                    sensor_s
                )));
            }
            let span = samples as f64 / rate;
            if sensor_s - last > GAP_FRAMES * span {
                out.lost_samples += (((sensor_s - last) * rate).round() as u64).saturating_sub(samples as u64);
            }
        }
        stream.last_sensor = Some(sensor_s);
        check_rate(stream, sensor_s, samples as u64, out);
        let last_time = match self.time_base {
            TimeBase::Arrival => stream.clock.map(sensor_s, arrival_unix),
            TimeBase::Sensor => pmd::EPOCH_UNIX_S + sensor_s,
        };
        let first_time = last_time - (samples - 1) as f64 / rate;
        let scale = stream.factor * unit_scale(stream.spec.kind);
        let mut push = |channel: usize, values: &mut dyn Iterator<Item = f32>| {
            let start = out.values.len();
            out.values.extend(values);
            out.chunks.push(TimedChunk { channel, time: first_time, start, len: out.values.len() - start });
        };
        let first = stream.first_channel;
        match stream.spec.kind {
            StreamKind::Ecg => push(first, &mut self.raw.iter().map(|&v| v as f32 * scale)),
            StreamKind::Acc => {
                for axis in 0..3 {
                    push(first + axis, &mut self.raw.chunks_exact(3).map(|s| s[axis] as f32 * scale));
                }
            }
            StreamKind::Ppg => {
                // The three green channels see the same pulse: their mean is the PPG.
                push(first, &mut self.raw.chunks_exact(4).map(|s| (s[0] + s[1] + s[2]) as f32 / 3.0 * scale));
                push(first + 1, &mut self.raw.chunks_exact(4).map(|s| s[3] as f32 * scale));
            }
            StreamKind::Hr | StreamKind::Ppi => unreachable!("event streams are placed above"),
        }
        Ok(())
    }
}

/// From the sensor's raw integers to the channel's unit: ECG µV → mV, ACC mG → g.
fn unit_scale(kind: StreamKind) -> f32 {
    match kind {
        StreamKind::Ecg | StreamKind::Acc => 1e-3,
        StreamKind::Hr | StreamKind::Ppg | StreamKind::Ppi => 1.0,
    }
}

/// After 30 s of frames, compare the rate the timestamps show with the configured one, once.
fn check_rate(stream: &mut StreamState, sensor_s: f64, samples: u64, out: &mut Timed) {
    let Some((since, n)) = stream.rate_probe else {
        // The first frame's samples came before its timestamp: count from the next one.
        stream.rate_probe = Some((sensor_s, 0));
        return;
    };
    let n = n + samples;
    stream.rate_probe = Some((since, n));
    let elapsed = sensor_s - since;
    if stream.rate_noted || elapsed < 30.0 {
        return;
    }
    let measured = n as f64 / elapsed;
    if (measured / stream.spec.rate_hz - 1.0).abs() > 0.02 {
        out.notes.push(format!(
            "{:?} samples come at {measured:.1} Hz, not the configured {} Hz: set `rate_hz = {}` for this stream \
             (a Verity Sense reports a wrong PPG rate outside SDK mode)",
            stream.spec.kind,
            stream.spec.rate_hz,
            measured.round()
        ));
    }
    stream.rate_noted = true;
}

/// Place beat intervals (ms, oldest first) that arrived at `arrival_unix` as samples of
/// `channel`, each at the time of the beat it ends.
fn place_beats(
    clock: &mut BeatClock,
    intervals_ms: impl Iterator<Item = f64>,
    arrival_unix: f64,
    channel: usize,
    out: &mut Timed,
) {
    let first = out.chunks.len();
    let mut span_s = 0.0;
    for ms in intervals_ms {
        let at = out.values.len();
        out.values.push(ms as f32);
        out.chunks.push(TimedChunk { channel, time: 0.0, start: at, len: 1 });
        span_s += ms / 1000.0;
    }
    if out.chunks.len() == first {
        return;
    }
    let mut t = clock.start_of(span_s, arrival_unix);
    for chunk in &mut out.chunks[first..] {
        t += f64::from(out.values[chunk.start]) / 1000.0;
        chunk.time = t;
    }
    clock.ended_at(t);
}

#[cfg(test)]
mod tests;
