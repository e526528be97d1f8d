//! Polar Measurement Data (PMD): the GATT service Polar sensors (H10, Verity Sense, OH1) stream raw
//! ECG, PPG, PPI and accelerometer data through. Pure: [`control`] encodes requests and parses
//! responses, [`parse_frame`] and [`decode_samples`] read data notifications, [`delta`] undoes
//! Polar's compression. Time is the caller's: a frame's timestamp is handed back as it came.
//!
//! ```text
//! service       FB005C80-02E7-F387-1CAD-8ACD2D8DF0C8
//! control point FB005C81-…  (write requests, indications back)   see control.rs
//! data          FB005C82-…  (notifications):
//!   type (u8) | timestamp (u64 LE, ns since 2000-01-01T00:00Z, of the LAST sample) | frame type (u8) | payload
//! ```
//! Frame type bit 7 marks a delta-compressed payload; the low bits pick the raw layout.
//! Sources: Polar's `online_measurement.pdf` (v1.0, 2024), `TimeSystemExplained.md` and the
//! Polar BLE SDK's parsers, as summarised in ../shared/data/ble-captures/VECTORS.md §1.

pub mod control;
pub mod delta;

use std::fmt;

/// The PMD service and its characteristics.
pub const SERVICE_UUID: &str = "fb005c80-02e7-f387-1cad-8acd2d8df0c8";
pub const CONTROL_POINT_UUID: &str = "fb005c81-02e7-f387-1cad-8acd2d8df0c8";
pub const DATA_UUID: &str = "fb005c82-02e7-f387-1cad-8acd2d8df0c8";

/// Unix time of the PMD epoch, 2000-01-01T00:00:00Z, in seconds.
pub const EPOCH_UNIX_S: f64 = 946_684_800.0;

/// The most channels a frame may carry (newer Polar PPG frames have 16–24).
pub const MAX_CHANNELS: usize = 24;

/// Measurement types (the first byte of a data frame, the type byte of a request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measurement {
    Ecg = 0,
    Ppg = 1,
    Acc = 2,
    Ppi = 3,
    Gyro = 5,
    Mag = 6,
}

impl Measurement {
    pub const ALL: [Measurement; 6] =
        [Measurement::Ecg, Measurement::Ppg, Measurement::Acc, Measurement::Ppi, Measurement::Gyro, Measurement::Mag];

    pub fn from_byte(b: u8) -> Option<Measurement> {
        Measurement::ALL.into_iter().find(|m| *m as u8 == b)
    }

    /// `ECG`, `ACC`, … or `type N` for a byte no measurement has.
    pub fn name_of(b: u8) -> String {
        Measurement::from_byte(b).map_or_else(|| format!("type {b}"), |m| m.to_string())
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Measurement::Ecg => "ECG",
            Measurement::Ppg => "PPG",
            Measurement::Acc => "ACC",
            Measurement::Ppi => "PPI",
            Measurement::Gyro => "GYRO",
            Measurement::Mag => "MAG",
        })
    }
}

/// What went wrong with a PMD message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PmdError {
    /// The bytes do not follow the layout.
    #[error("{0}")]
    Format(String),
    /// The sensor answered a request with an error status.
    #[error("Polar PMD refused `{request}`: {name} (status {status})")]
    Refused { request: String, status: u8, name: &'static str },
}

/// A data notification's header and payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame<'a> {
    pub measurement: u8,
    /// Nanoseconds since 2000-01-01T00:00:00Z of the frame's last sample (0 for PPI).
    pub timestamp_ns: u64,
    /// The frame type with the compression bit cleared.
    pub frame_type: u8,
    pub compressed: bool,
    pub payload: &'a [u8],
}

/// Split a data notification into header and payload.
pub fn parse_frame(bytes: &[u8]) -> Result<Frame<'_>, PmdError> {
    let Some((header, payload)) = bytes.split_at_checked(10) else {
        return Err(PmdError::Format(format!(
            "PMD data frame of {} bytes is shorter than its 10-byte header",
            bytes.len()
        )));
    };
    let timestamp_ns = u64::from_le_bytes(header[1..9].try_into().expect("8 bytes"));
    Ok(Frame {
        measurement: header[0],
        timestamp_ns,
        frame_type: header[9] & 0x7F,
        compressed: header[9] & 0x80 != 0,
        payload,
    })
}

/// How a measurement's compressed frames are laid out (from the settings it was started with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub channels: usize,
    pub resolution: u8,
}

/// Decode `frame`'s samples into `out`, channel-interleaved, raw integers (µV for ECG, mG for an
/// H10's ACC, counts before the start response's factor otherwise). `compressed` says how a
/// delta frame of this measurement is laid out. Returns (samples, channels); on an error nothing
/// is appended.
pub fn decode_samples(frame: &Frame, compressed: Layout, out: &mut Vec<i32>) -> Result<(usize, usize), PmdError> {
    if frame.compressed {
        let n = delta::decode(frame.payload, compressed.channels, compressed.resolution, out)?;
        return Ok((n, compressed.channels));
    }
    let m = Measurement::from_byte(frame.measurement);
    // (channels, bytes per value) of the raw layouts Polar documents for our sensors.
    let (channels, width) = match (m, frame.frame_type) {
        (Some(Measurement::Ecg), 0) => (1, 3),
        (Some(Measurement::Acc), 0) => (3, 1),
        (Some(Measurement::Acc), 1) => (3, 2),
        (Some(Measurement::Acc), 2) => (3, 3),
        (Some(Measurement::Ppg), 0) => (4, 3),
        (Some(Measurement::Gyro | Measurement::Mag), 0) => (3, 2),
        _ => {
            return Err(PmdError::Format(format!(
                "{} frame type {} is not supported",
                Measurement::name_of(frame.measurement),
                frame.frame_type
            )))
        }
    };
    let stride = channels * width;
    if frame.payload.is_empty() || !frame.payload.len().is_multiple_of(stride) {
        return Err(PmdError::Format(format!(
            "{} frame type {} payload of {} bytes is not a whole number of {stride}-byte samples",
            Measurement::name_of(frame.measurement),
            frame.frame_type,
            frame.payload.len()
        )));
    }
    let bits = (width * 8) as u8;
    out.extend(frame.payload.chunks_exact(width).map(|v| {
        let raw = v.iter().rev().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        delta::sign_extend(raw, bits)
    }));
    Ok((frame.payload.len() / stride, channels))
}

/// One peak-to-peak interval of a PPI frame (Verity Sense, OH1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PpiSample {
    pub heart_rate_bpm: u8,
    pub interval_ms: u16,
    pub error_estimate_ms: u16,
    pub flags: u8,
}

impl PpiSample {
    /// The sensor marked the interval unreliable (flag bit 0).
    pub fn invalid(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// Skin contact, when the sensor can tell (bits 1 and 2).
    pub fn contact(&self) -> Option<bool> {
        (self.flags & 0x04 != 0).then_some(self.flags & 0x02 != 0)
    }
}

/// The intervals of a PPI frame's payload (6 bytes each: HR u8, interval u16 ms, error u16 ms,
/// flags u8).
pub fn decode_ppi(payload: &[u8]) -> Result<impl Iterator<Item = PpiSample> + '_, PmdError> {
    if !payload.len().is_multiple_of(6) {
        return Err(PmdError::Format(format!(
            "PPI payload of {} bytes is not a whole number of 6-byte intervals",
            payload.len()
        )));
    }
    Ok(payload.chunks_exact(6).map(|s| PpiSample {
        heart_rate_bpm: s[0],
        interval_ms: u16::from_le_bytes([s[1], s[2]]),
        error_estimate_ms: u16::from_le_bytes([s[3], s[4]]),
        flags: s[5],
    }))
}

#[cfg(test)]
pub(crate) mod tests;
