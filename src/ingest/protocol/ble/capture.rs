//! BLE capture files: every notification a sensor sent, with its arrival time, so a session can
//! be replayed through the same decoders later (`[sensor.source] capture = "FILE"` writes one,
//! `biofeedd replay --format pmd|hrs` reads it). Pure over `Read`/`Write`.
//!
//! ```text
//! biofeedd BLE capture v1\n
//! {"streams":[{"kind":"ecg","rate_hz":130.0,"resolution":14,"range":null}],"device":"…"}\n
//! record*: arrival (u64 LE, unix ns) | source (u8: 0 heart rate, 1 battery, 2 PMD control, 3 PMD data)
//!          | length (u16 LE) | notification bytes
//! ```
//! The reader also takes the layout of phdiethelm/h10_ecg's recordings (24-byte magic
//! `H10 ECG v1.0 binary data`, then `u32 LE length | PMD ECG notification` records, no arrival
//! times): those are paced by the frames' own timestamps. A file cut short inside its last
//! record (a recorder killed mid-write) ends cleanly before it, with a note.

use super::stream::{Gatt, StreamKind, StreamSpec};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Read, Write};

pub const MAGIC: &[u8] = b"biofeedd BLE capture v1\n";
pub const H10_MAGIC: &[u8] = b"H10 ECG v1.0 binary data";

/// The longest notification a record may hold (an ATT value is at most 512 bytes).
pub const MAX_NOTIFICATION: usize = 512;

/// What the capture's first line after the magic says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureHeader {
    pub streams: Vec<CapturedStream>,
    /// The device's name and address, for the reader's benefit.
    #[serde(default)]
    pub device: String,
}

/// A stream as started, in the header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapturedStream {
    pub kind: StreamKind,
    pub rate_hz: f64,
    pub resolution: u8,
    pub range: Option<u16>,
}

impl From<StreamSpec> for CapturedStream {
    fn from(s: StreamSpec) -> Self {
        CapturedStream { kind: s.kind, rate_hz: s.rate_hz, resolution: s.resolution, range: s.range }
    }
}

impl From<CapturedStream> for StreamSpec {
    fn from(s: CapturedStream) -> Self {
        StreamSpec { kind: s.kind, rate_hz: s.rate_hz, resolution: s.resolution, range: s.range }
    }
}

/// One captured notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unix seconds the notification arrived; `None` in a file that did not record it.
    pub arrival_unix: Option<f64>,
    pub source: Gatt,
    pub bytes: Vec<u8>,
}

/// Which file format a capture is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Biofeedd,
    H10Ecg,
}

/// Reads records one at a time.
pub struct CaptureReader<R> {
    input: R,
    pub format: Format,
    pub header: CaptureHeader,
    /// Bytes consumed so far (for error positions).
    pub offset: u64,
    /// Set when the file ended inside a record.
    pub truncated: Option<String>,
}

impl<R: BufRead> CaptureReader<R> {
    /// Read the magic and header.
    pub fn new(mut input: R) -> io::Result<Self> {
        let mut magic = [0u8; 24];
        input.read_exact(&mut magic).map_err(|_| invalid("too short to be a BLE capture".into()))?;
        if magic == H10_MAGIC {
            let header = CaptureHeader {
                streams: vec![StreamSpec::default_for(StreamKind::Ecg).into()],
                device: "Polar H10".into(),
            };
            return Ok(CaptureReader { input, format: Format::H10Ecg, header, offset: 24, truncated: None });
        }
        if magic != MAGIC {
            return Err(invalid(format!(
                "not a BLE capture: it starts with {:?}, not `biofeedd BLE capture v1` or `H10 ECG v1.0 binary data`",
                String::from_utf8_lossy(&magic)
            )));
        }
        let mut line = Vec::new();
        (&mut input).take(64 * 1024).read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(invalid("the capture's header line is missing or longer than 64 KiB".into()));
        }
        let header: CaptureHeader = serde_json::from_slice(&line)
            .map_err(|e| invalid(format!("the capture's header line is not valid: {e}")))?;
        if header.streams.is_empty() {
            return Err(invalid("the capture's header lists no stream".into()));
        }
        for s in &header.streams {
            crate::bounds::SAMPLE_RATE_HZ
                .check(s.rate_hz)
                .map_err(|why| invalid(format!("the capture header's {:?} rate_hz {why}", s.kind)))?;
            if !(1..=32).contains(&s.resolution) {
                return Err(invalid(format!(
                    "the capture header's {:?} resolution {} is not 1–32 bits",
                    s.kind, s.resolution
                )));
            }
        }
        let offset = (MAGIC.len() + line.len()) as u64;
        Ok(CaptureReader { input, format: Format::Biofeedd, header, offset, truncated: None })
    }

    /// The next record, `None` at the end (or before a record the file ends inside).
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        let at = self.offset;
        let (prefix_len, arrival_unix, source, len) = match self.format {
            Format::H10Ecg => {
                let mut prefix = [0u8; 4];
                if !self.fill(&mut prefix)? {
                    return Ok(None);
                }
                let len = u32::from_le_bytes(prefix) as usize;
                (4, None, Gatt::PmdData, len)
            }
            Format::Biofeedd => {
                let mut prefix = [0u8; 11];
                if !self.fill(&mut prefix)? {
                    return Ok(None);
                }
                let ns = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
                let source = Gatt::from_code(prefix[8])
                    .ok_or_else(|| invalid(format!("record at byte {at}: unknown source {}", prefix[8])))?;
                (11, Some(ns as f64 / 1e9), source, usize::from(u16::from_le_bytes([prefix[9], prefix[10]])))
            }
        };
        if len > MAX_NOTIFICATION {
            return Err(invalid(format!(
                "record at byte {at}: a {len}-byte notification (at most {MAX_NOTIFICATION})"
            )));
        }
        let mut bytes = vec![0u8; len];
        if !self.fill(&mut bytes)? {
            self.truncated =
                Some(format!("the file ends inside the record at byte {at}; the records before it were read"));
            return Ok(None);
        }
        self.offset += (prefix_len + len) as u64;
        Ok(Some(Record { arrival_unix, source, bytes }))
    }

    /// Fill `buf` whole: `false` at a clean end or a cut-short record (noted).
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got > 0 && got < buf.len() {
            self.truncated = Some(format!(
                "the file ends inside the record at byte {}; the records before it were read",
                self.offset
            ));
        }
        Ok(got == buf.len())
    }
}

/// Writes records.
pub struct CaptureWriter<W: Write> {
    out: W,
}

impl<W: Write> CaptureWriter<W> {
    pub fn new(mut out: W, header: &CaptureHeader) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        Ok(CaptureWriter { out })
    }

    pub fn write(&mut self, arrival_unix: f64, source: Gatt, bytes: &[u8]) -> io::Result<()> {
        let len = u16::try_from(bytes.len())
            .ok()
            .filter(|l| usize::from(*l) <= MAX_NOTIFICATION)
            .ok_or_else(|| invalid(format!("a {}-byte notification is too long to capture", bytes.len())))?;
        let ns = (arrival_unix.max(0.0) * 1e9).round() as u64;
        self.out.write_all(&ns.to_le_bytes())?;
        self.out.write_all(&[source.code()])?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(bytes)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_cut_short_file_ends_cleanly() {
        let header = CaptureHeader {
            streams: vec![
                StreamSpec::default_for(StreamKind::Ecg).into(),
                StreamSpec::default_for(StreamKind::Hr).into(),
            ],
            device: "Polar H10 8AA87D20 (EC:EA:02:85:D9:7A)".into(),
        };
        let mut w = CaptureWriter::new(Vec::new(), &header).unwrap();
        w.write(1_700_000_000.25, Gatt::HeartRate, &[0x10, 0x3B, 0x53, 0x04]).unwrap();
        w.write(1_700_000_000.5, Gatt::PmdData, &[0u8; 229]).unwrap();
        assert!(w.write(0.0, Gatt::PmdData, &[0u8; 600]).is_err());
        let mut bytes = w.out;
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        assert_eq!((r.format, &r.header), (Format::Biofeedd, &header));
        let first = r.next_record().unwrap().unwrap();
        assert_eq!((first.source, first.bytes.len()), (Gatt::HeartRate, 4));
        // Nanoseconds in a u64; an f64 of unix seconds holds them to about 0.2 µs.
        assert!((first.arrival_unix.unwrap() - 1_700_000_000.25).abs() < 1e-6);
        assert_eq!(r.next_record().unwrap().unwrap().bytes.len(), 229);
        assert_eq!(r.next_record().unwrap(), None);
        assert!(r.truncated.is_none());
        bytes.truncate(bytes.len() - 5);
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        assert!(r.next_record().unwrap().is_some());
        assert_eq!(r.next_record().unwrap(), None);
        assert!(r.truncated.as_deref().unwrap().contains("ends inside the record"), "{:?}", r.truncated);
    }

    #[test]
    fn h10_ecg_layout_and_foreign_files() {
        let mut bytes = H10_MAGIC.to_vec();
        bytes.extend(229u32.to_le_bytes());
        bytes.extend([0u8; 229]);
        bytes.extend(229u32.to_le_bytes());
        bytes.extend([0u8; 100]);
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        assert_eq!(r.format, Format::H10Ecg);
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!((rec.arrival_unix, rec.source), (None, Gatt::PmdData));
        assert_eq!(r.next_record().unwrap(), None);
        assert!(r.truncated.is_some());
        let e = CaptureReader::new(&b"time,ecg\n0,1\n1,2\n3,4\n5,6\n"[..]).err().unwrap();
        assert!(e.to_string().contains("not a BLE capture"), "{e}");
        let mut huge = H10_MAGIC.to_vec();
        huge.extend(u32::MAX.to_le_bytes());
        assert!(CaptureReader::new(&huge[..]).unwrap().next_record().unwrap_err().to_string().contains("at most 512"));
    }
}
