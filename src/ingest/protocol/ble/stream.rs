//! From notifications to timed samples: the [`Assembler`] that turns each notification into
//! chunks on the recording clock (what a sensor streams, and its channels, is in `spec.rs`). Pure —
//! the live BLE source and the replay of a capture drive the same assembler, one with what the
//! radio delivers, the other with what a file recorded.

use super::clock::{BeatClock, SensorClock};
use super::hrs;
use super::pmd::{self, control, Layout, PmdError};
pub use super::spec::{StreamKind, StreamSpec};
use crate::signal::ChannelSpec;

/// Which clock a notification's times are read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBase {
    /// Live, or a capture with arrival times: sensor timestamps mapped onto the host clock.
    Arrival,
    /// A recording with no arrival times: the sensor's own timestamps are the recording clock.
    Sensor,
}

/// The GATT characteristic a notification came from (each has its own decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gatt {
    /// Heart Rate Measurement, 0x2A37. (The values are capture-file codes: never renumber.)
    HeartRate = 0,
    /// Battery Level, 0x2A19.
    Battery = 1,
    /// Polar PMD control point (indications answering requests).
    PmdControl = 2,
    /// Polar PMD data.
    PmdData = 3,
}

impl Gatt {
    const ALL: [Gatt; 4] = [Gatt::HeartRate, Gatt::Battery, Gatt::PmdControl, Gatt::PmdData];

    /// Its code in a capture file's records.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Gatt> {
        Gatt::ALL.into_iter().find(|g| g.code() == code)
    }
}

/// A control-point answer: which request and measurement it answers, whether the sensor did
/// it, and for "get settings" what it offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlAnswer {
    pub op: control::Op,
    pub measurement: u8,
    pub result: Result<(), PmdError>,
    pub offered: Option<control::Settings>,
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
    /// Control-point answers, in arrival order.
    pub responses: Vec<ControlAnswer>,
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
    /// Recording time just past the last sample handed out: the next chunk starts no earlier.
    next_time: Option<f64>,
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
                    next_time: None,
                }
            })
            .collect();
        Assembler { streams, specs, time_base, raw: Vec::new() }
    }

    /// The channels, in the order chunks name them.
    pub fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    /// Whether `channel`'s chunks are evenly sampled runs (ECG, ACC, PPG), as opposed to
    /// readings each at its own time (heart rate per notification, beat intervals).
    pub fn evenly_sampled(&self, channel: usize) -> bool {
        self.streams
            .iter()
            .rev()
            .find(|s| s.first_channel <= channel)
            .is_some_and(|s| matches!(s.spec.kind, StreamKind::Ecg | StreamKind::Acc | StreamKind::Ppg))
    }

    /// A new connection: the streams start again (a lost stretch is a gap, not lost frames).
    /// The clocks carry on: times after the reconnect never go back before those already given.
    pub fn reconnect(&mut self) {
        for s in &mut self.streams {
            s.clock.reconnect();
            s.last_sensor = None;
            s.rate_probe = None;
        }
    }

    /// The drift of the first PMD stream's sensor clock against the host's, in ppm.
    pub fn drift_ppm(&self) -> Option<f64> {
        self.streams.iter().find_map(|s| s.clock.drift_ppm())
    }

    /// Decode one notification from `source` that arrived at `arrival_unix` into `out`.
    pub fn push(&mut self, source: Gatt, bytes: &[u8], arrival_unix: f64, out: &mut Timed) {
        match source {
            Gatt::HeartRate => self.heart_rate(bytes, arrival_unix, out),
            Gatt::Battery => match hrs::parse_battery(bytes) {
                Ok(level) => out.battery = Some(level),
                Err(e) => out.error(e.to_string()),
            },
            Gatt::PmdControl => match control::parse_response(bytes) {
                Ok(r) => {
                    if let (Ok(()), Some(factor), Some(s)) =
                        (r.check(), r.start_factor(), stream_of(&mut self.streams, r.measurement))
                    {
                        s.factor = factor;
                    }
                    let offered =
                        (r.op == control::Op::GetSettings && r.status == 0).then(|| r.settings().ok()).flatten();
                    out.responses.push(ControlAnswer {
                        op: r.op,
                        measurement: r.measurement,
                        result: r.check(),
                        offered,
                    });
                }
                Err(e) => out.error(e.to_string()),
            },
            Gatt::PmdData => {
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
        let Some(stream) = stream_of(&mut self.streams, frame.measurement) else {
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
        let name = pmd::Measurement::name_of(frame.measurement);
        // In a recording the sensor's timestamps are the clock; live, they are mapped onto the
        // host's, and a step of the sensor's clock (set by another app, reset to its 2019
        // default) is measured anew rather than taken for hours of lost frames.
        let (last_time, stepped) = match self.time_base {
            TimeBase::Sensor => (pmd::EPOCH_UNIX_S + sensor_s, false),
            TimeBase::Arrival => {
                let m = stream.clock.map(sensor_s, arrival_unix);
                (m.time, m.stepped)
            }
        };
        if stepped {
            out.notes.push(format!(
                "the sensor's {name} clock stepped by {:+.0} s; its timestamps are followed from here",
                sensor_s - stream.last_sensor.unwrap_or(sensor_s)
            ));
            stream.last_sensor = None;
            stream.rate_probe = None;
        }
        if let Some(last) = stream.last_sensor {
            if sensor_s <= last {
                return Err(PmdError::Format(format!(
                    "{name} frame stamped {sensor_s:.6} s, not after the previous frame's {last:.6} s"
                )));
            }
            let span = samples as f64 / rate;
            if sensor_s - last > GAP_FRAMES * span {
                out.lost_samples += (((sensor_s - last) * rate).round() as u64).saturating_sub(samples as u64);
            }
        }
        stream.last_sensor = Some(sensor_s);
        check_rate(stream, sensor_s, samples as u64, out);
        // Never before what was handed out: a frame that overlaps the last (a sensor slightly
        // faster than its configured rate, the clock's correction) follows it instead.
        let first_time = (last_time - (samples - 1) as f64 / rate).max(stream.next_time.unwrap_or(f64::NEG_INFINITY));
        stream.next_time = Some(first_time + samples as f64 / rate);
        let scale = stream.factor * unit_scale(stream.spec.kind, frame.compressed, frame.frame_type);
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
                // Summed wide: a hostile delta frame may carry any i32.
                let mean = |s: &[i32]| (i64::from(s[0]) + i64::from(s[1]) + i64::from(s[2])) as f32 / 3.0;
                push(first, &mut self.raw.chunks_exact(4).map(|s| mean(s) * scale));
                push(first + 1, &mut self.raw.chunks_exact(4).map(|s| s[3] as f32 * scale));
            }
            StreamKind::Hr | StreamKind::Ppi => unreachable!("event streams are placed above"),
        }
        Ok(())
    }
}

/// From the sensor's raw integers (times the start response's factor) to the channel's unit:
/// ECG µV → mV; ACC mG → g, except a delta frame of type 0, whose values times the factor are
/// already g (the Polar SDK's AccData: 0x80 frames scale by the factor alone, 0x81 and raw
/// frames are mG).
fn unit_scale(kind: StreamKind, compressed: bool, frame_type: u8) -> f32 {
    match kind {
        StreamKind::Acc if compressed && frame_type == 0 => 1.0,
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

/// The stream of PMD measurement type `measurement` (a frame's first byte), if we run one.
fn stream_of(streams: &mut [StreamState], measurement: u8) -> Option<&mut StreamState> {
    streams.iter_mut().find(|s| s.spec.kind.measurement().map(|m| m as u8) == Some(measurement))
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
    // A zero interval (a strap's placeholder) ends no beat.
    for ms in intervals_ms.filter(|ms| *ms > 0.0) {
        let at = out.values.len();
        out.values.push(ms as f32);
        out.chunks.push(TimedChunk { channel, time: 0.0, start: at, len: 1 });
        span_s += ms / 1000.0;
    }
    if out.chunks.len() == first {
        return;
    }
    let first_s = f64::from(out.values[out.chunks[first].start]) / 1000.0;
    let mut t = clock.start_of(span_s, first_s, arrival_unix);
    for chunk in &mut out.chunks[first..] {
        t += f64::from(out.values[chunk.start]) / 1000.0;
        chunk.time = t;
    }
    clock.ended_at(t);
}

#[cfg(test)]
mod tests;
