//! The offload request's binary layout (version 1), pure: a window's heavy-stage inputs to bytes
//! and back. Specified byte for byte in `docs/offload.md`; every field little-endian.
//!
//! Why binary: a 60 s wrist window at the CNN's 8 Hz is 4 × 480 samples plus 51 features — about
//! 8 KiB as `f32`, three to four times that as JSON text, and parsing floats from text would cost
//! the worker more than the model does.
//!
//! The decoder trusts nothing: every length is checked against what is left and against a bound
//! before anything is allocated, every number must be finite, and the error names the field and
//! the byte offset.

use crate::signal::Modality;
use std::fmt;

/// The first four bytes of every request.
pub const MAGIC: [u8; 4] = *b"BFOQ";
/// The layout this module writes and reads.
pub const VERSION: u16 = 1;

const MAX_NAME: usize = 255;
const MAX_FEATURES: usize = 4096;
const MAX_CHANNELS: usize = 32;
/// Samples over all channels: 1 Mi `f32` is 4 MiB, far above any window a stage takes.
const MAX_SAMPLES: usize = 1 << 20;

/// One row of the raw-window block: what it holds and how many samples.
#[derive(Debug, Clone, PartialEq)]
pub struct WireChannel {
    /// e.g. `ppg:zscore` (the manifest's modality and transform).
    pub name: String,
    pub modality: Modality,
    pub rate_hz: f32,
    pub len: u32,
}

/// What a worker needs to run one stage on one window.
#[derive(Debug, Clone, PartialEq)]
pub struct OffloadRequest {
    /// The stage's manifest name and its ONNX file's SHA-256: the worker must run exactly this.
    pub model: String,
    pub sha256: [u8; 32],
    pub hub: String,
    pub subject: String,
    /// The window's sequence number for the subject in the hub's run.
    pub seq: u64,
    /// Window bounds on the recording clock, unix seconds.
    pub window_start: f64,
    pub window_end: f64,
    /// What was left of the window's deadline when the request left, ms (for the worker's
    /// logs and queueing decisions; the hub enforces the deadline itself).
    pub budget_ms: f32,
    /// The stage's feature inputs in its manifest's order, missing ones already filled.
    pub features: Vec<f32>,
    /// The raw-window rows, in the manifest's channel order.
    pub channels: Vec<WireChannel>,
    /// Every row's samples, one row after the other.
    pub samples: Vec<f32>,
}

/// Why bytes are not a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub offset: usize,
    pub what: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offload request: {} (at byte {})", self.what, self.offset)
    }
}

impl std::error::Error for WireError {}

impl OffloadRequest {
    /// The bytes, or why this request could not be decoded on the other side (a count past its
    /// bound, a name too long, samples that do not add up to the channels' lengths).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        self.check()?;
        Ok(self.write())
    }

    /// The bytes as they are, checked or not (tests write lies with it).
    fn write(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + 4 * (self.features.len() + self.samples.len()));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        put_str(&mut out, &self.model);
        out.extend_from_slice(&self.sha256);
        put_str(&mut out, &self.hub);
        put_str(&mut out, &self.subject);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.window_start.to_le_bytes());
        out.extend_from_slice(&self.window_end.to_le_bytes());
        out.extend_from_slice(&self.budget_ms.to_le_bytes());
        out.extend_from_slice(&(self.features.len() as u16).to_le_bytes());
        self.features.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out.push(self.channels.len() as u8);
        for c in &self.channels {
            put_str(&mut out, &c.name);
            out.push(modality_code(c.modality));
            out.extend_from_slice(&c.rate_hz.to_le_bytes());
            out.extend_from_slice(&c.len.to_le_bytes());
        }
        self.samples.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out
    }

    fn check(&self) -> Result<(), String> {
        let names = [("model", &self.model), ("hub", &self.hub), ("subject", &self.subject)];
        let channel_names = self.channels.iter().map(|c| ("channel", &c.name));
        if let Some((what, long)) = names.into_iter().chain(channel_names).find(|(_, n)| n.len() > MAX_NAME) {
            return Err(format!("{what} name of {} bytes (at most {MAX_NAME})", long.len()));
        }
        if self.features.len() > MAX_FEATURES || self.channels.len() > MAX_CHANNELS {
            return Err(format!(
                "{} features and {} channels (at most {MAX_FEATURES} and {MAX_CHANNELS})",
                self.features.len(),
                self.channels.len()
            ));
        }
        let total: usize = self.channels.iter().map(|c| c.len as usize).sum();
        if total != self.samples.len() || total > MAX_SAMPLES {
            return Err(format!("{} samples for channels of {total} (at most {MAX_SAMPLES})", self.samples.len()));
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8]) -> Result<OffloadRequest, WireError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(r.error_at(0, "not a biofeedd offload request (magic is not `BFOQ`)"));
        }
        let version = r.u16("version")?;
        if version != VERSION {
            return Err(r.error_at(4, format!("layout version {version}; this build reads version {VERSION}")));
        }
        let model = r.str("model name")?;
        let sha256 = r.take(32, "model SHA-256")?.try_into().expect("32 bytes taken");
        let hub = r.str("hub id")?;
        let subject = r.str("subject")?;
        let seq = r.u64("seq")?;
        let window_start = r.f64("window_start")?;
        let window_end = r.f64("window_end")?;
        if window_end < window_start {
            return Err(r.error_at(r.at - 8, format!("window_end {window_end} is before window_start {window_start}")));
        }
        let budget_ms = r.f32("budget_ms")?;
        let n = r.u16("feature count")? as usize;
        if n > MAX_FEATURES {
            return Err(r.error_at(r.at - 2, format!("{n} features; at most {MAX_FEATURES}")));
        }
        let features = r.f32s(n, "feature")?;
        let channel_count = r.u8("channel count")? as usize;
        if channel_count > MAX_CHANNELS {
            return Err(r.error_at(r.at - 1, format!("{channel_count} channels; at most {MAX_CHANNELS}")));
        }
        let mut channels = Vec::with_capacity(channel_count);
        let mut total = 0usize;
        for k in 0..channel_count {
            let name = r.str("channel name")?;
            let code_at = r.at;
            let code = r.u8("modality")?;
            let modality = *Modality::ALL
                .get(code as usize)
                .ok_or_else(|| r.error_at(code_at, format!("channel {k}: modality code {code} is unknown")))?;
            let rate_hz = r.f32("channel rate")?;
            if rate_hz <= 0.0 {
                return Err(r.error_at(r.at - 4, format!("channel {k}: rate {rate_hz} Hz is not positive")));
            }
            let len = r.u32("channel length")?;
            total = total.saturating_add(len as usize);
            if total > MAX_SAMPLES {
                return Err(r.error_at(r.at - 4, format!("more than {MAX_SAMPLES} samples in all")));
            }
            channels.push(WireChannel { name, modality, rate_hz, len });
        }
        let samples = r.f32s(total, "sample")?;
        if r.at != bytes.len() {
            return Err(r.error_at(r.at, format!("{} bytes after the last sample", bytes.len() - r.at)));
        }
        Ok(OffloadRequest {
            model,
            sha256,
            hub,
            subject,
            seq,
            window_start,
            window_end,
            budget_ms,
            features,
            channels,
            samples,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // `check` bounded every name to MAX_NAME bytes.
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn modality_code(m: Modality) -> u8 {
    Modality::ALL.iter().position(|x| *x == m).expect("ALL lists every modality") as u8
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error_at(&self, offset: usize, what: impl Into<String>) -> WireError {
        WireError { offset, what: what.into() }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(self.error_at(self.at, format!("cut short in {what}: needs {n} bytes, {left} left")));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self, what: &str) -> Result<f32, WireError> {
        let at = self.at;
        let v = f32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes"));
        if !v.is_finite() {
            return Err(self.error_at(at, format!("{what} is {v}, not a finite number")));
        }
        Ok(v)
    }
    fn f64(&mut self, what: &str) -> Result<f64, WireError> {
        let at = self.at;
        let v = f64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes"));
        if !v.is_finite() {
            return Err(self.error_at(at, format!("{what} is {v}, not a finite number")));
        }
        Ok(v)
    }
    fn str(&mut self, what: &str) -> Result<String, WireError> {
        let n = self.u8(what)? as usize;
        let at = self.at;
        let raw = self.take(n, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.error_at(at, format!("{what} is not UTF-8")))
    }
    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, WireError> {
        // The length check comes first, so a lying count allocates nothing.
        let start = self.at;
        let raw = self.take(n * 4, what)?;
        let mut out = Vec::with_capacity(n);
        for (k, b) in raw.chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            if !v.is_finite() {
                return Err(self.error_at(start + 4 * k, format!("{what} {k} is {v}, not a finite number")));
            }
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_request() -> OffloadRequest {
        OffloadRequest {
            model: "stress-s2".into(),
            sha256: [7; 32],
            hub: "hub-1".into(),
            subject: "s05".into(),
            seq: 42,
            window_start: 1_700_000_000.0,
            window_end: 1_700_000_060.0,
            budget_ms: 21.5,
            features: vec![1.0, -2.5, 3.25],
            channels: vec![
                WireChannel { name: "ppg:zscore".into(), modality: Modality::Ppg, rate_hz: 8.0, len: 3 },
                WireChannel { name: "eda:zscore".into(), modality: Modality::Eda, rate_hz: 8.0, len: 2 },
            ],
            samples: vec![0.1, 0.2, 0.3, 0.4, 0.5],
        }
    }

    #[test]
    fn the_bytes_docs_offload_md_shows_are_the_sample_request() {
        // The fuzz seed is the documented hex dump, so the document cannot drift from the code.
        let documented = include_bytes!("../../../fuzz/seeds/offload_wire/sample-request.bin");
        assert_eq!(sample_request().encode().unwrap(), documented);
    }

    #[test]
    fn a_request_survives_the_round_trip() {
        let r = sample_request();
        assert_eq!(OffloadRequest::decode(&r.encode().unwrap()).unwrap(), r);
    }

    #[test]
    fn every_truncation_is_an_error_naming_a_place_never_a_panic() {
        let bytes = sample_request().encode().unwrap();
        for cut in 0..bytes.len() {
            let e = OffloadRequest::decode(&bytes[..cut]).unwrap_err();
            assert!(e.offset <= cut, "{e} for a cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(OffloadRequest::decode(&longer).unwrap_err().what.contains("1 bytes after"));
    }

    #[test]
    fn lies_and_non_finite_numbers_are_named() {
        let good = sample_request().encode().unwrap();
        let mut bad = good.clone();
        bad[4] = 9;
        assert!(OffloadRequest::decode(&bad).unwrap_err().what.contains("layout version 9"));
        let mut nan = sample_request();
        nan.samples[3] = f32::NAN;
        let e = OffloadRequest::decode(&nan.encode().unwrap()).unwrap_err();
        assert!(e.what.contains("sample 3 is NaN"), "{e}");
        let mut huge = sample_request();
        huge.channels[0].len = u32::MAX;
        assert!(huge.encode().unwrap_err().contains("samples for channels"));
        let e = OffloadRequest::decode(&huge.write()).unwrap_err();
        assert!(e.what.contains("samples in all"), "{e}");
        assert!(OffloadRequest::decode(b"GET / HTTP/1.1").unwrap_err().what.contains("magic"));
    }
}
