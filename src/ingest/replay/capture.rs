//! A BLE capture replayed: its notifications go through the same [`Assembler`] the live BLE
//! source uses, and each is handed out when its recorded arrival time comes (for a file without
//! arrival times, when its last sample was taken), so a replay at 1× delivers the packets as
//! the radio did. `--format pmd` replays the Polar PMD streams, `--format hrs` the Heart Rate
//! service's.

use super::recording::{ReadError, Segment};
use super::stream::SampleSource;
use crate::ingest::protocol::ble::capture::{CaptureReader, Format};
use crate::ingest::protocol::ble::stream::{Assembler, Gatt, StreamKind, StreamSpec, TimeBase, Timed};
use crate::signal::ChannelSpec;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Which of a capture's streams a replay takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Polar PMD (ECG, ACC, PPG).
    Pmd,
    /// The Heart Rate service.
    Hrs,
}

impl Profile {
    fn takes(self, kind: StreamKind) -> bool {
        (kind == StreamKind::Hr) == (self == Profile::Hrs)
    }

    fn takes_source(self, source: Gatt) -> bool {
        match self {
            Profile::Pmd => matches!(source, Gatt::PmdData | Gatt::PmdControl),
            Profile::Hrs => source == Gatt::HeartRate,
        }
    }
}

/// The streams of the capture at `path` that `profile` replays.
fn streams(
    reader: &CaptureReader<BufReader<File>>,
    profile: Profile,
    path: &Path,
) -> Result<Vec<StreamSpec>, ReadError> {
    let streams: Vec<StreamSpec> =
        reader.header.streams.iter().map(|&s| StreamSpec::from(s)).filter(|s| profile.takes(s.kind)).collect();
    if streams.is_empty() {
        let has: Vec<String> = reader.header.streams.iter().map(|s| format!("{:?}", s.kind).to_lowercase()).collect();
        return Err(ReadError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "the capture has no {} stream (it has: {}); try --format {}",
                if profile == Profile::Hrs { "heart rate" } else { "Polar PMD" },
                has.join(", "),
                if profile == Profile::Hrs { "pmd" } else { "hrs" }
            ),
        });
    }
    Ok(streams)
}

fn open_reader(path: &Path) -> Result<CaptureReader<BufReader<File>>, ReadError> {
    let file = File::open(path).map_err(|e| read_error(path, e))?;
    CaptureReader::new(BufReader::with_capacity(64 * 1024, file)).map_err(|e| read_error(path, e))
}

/// The capture reader's error, naming the file: bad content is `Invalid`, the rest I/O.
fn read_error(path: &Path, e: std::io::Error) -> ReadError {
    match e.kind() {
        std::io::ErrorKind::InvalidData => ReadError::Invalid { path: path.to_path_buf(), message: e.to_string() },
        _ => ReadError::Io { path: path.to_path_buf(), source: e },
    }
}

/// The channels a replay of the capture at `path` gives, from its header alone.
pub fn probe(path: &Path, profile: Profile) -> Result<Vec<ChannelSpec>, ReadError> {
    let reader = open_reader(path)?;
    let streams = streams(&reader, profile, path)?;
    Ok(Assembler::new(&streams, TimeBase::Sensor).specs().to_vec())
}

/// A capture as a [`SampleSource`], one notification ahead.
pub struct CaptureStream {
    reader: CaptureReader<BufReader<File>>,
    path: PathBuf,
    profile: Profile,
    assembler: Assembler,
    specs: Vec<ChannelSpec>,
    /// The next notification's samples and when it is released.
    pending: Timed,
    release: Option<f64>,
    decode_errors: u64,
    first_errors: Vec<String>,
    notes: Vec<String>,
}

impl CaptureStream {
    pub fn open(path: &Path, profile: Profile) -> Result<CaptureStream, ReadError> {
        let reader = open_reader(path)?;
        let streams = streams(&reader, profile, path)?;
        let time_base = match reader.format {
            Format::Biofeedd => TimeBase::Arrival,
            Format::H10Ecg => TimeBase::Sensor,
        };
        let assembler = Assembler::new(&streams, time_base);
        let specs = assembler.specs().to_vec();
        Ok(CaptureStream {
            reader,
            path: path.to_path_buf(),
            profile,
            assembler,
            specs,
            pending: Timed::default(),
            release: None,
            decode_errors: 0,
            first_errors: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// What replaying found worth saying (a cut-short file, decode errors, a wrong rate).
    fn notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        if let Some(t) = &self.reader.truncated {
            notes.push(t.clone());
        }
        if self.decode_errors > 0 {
            notes.push(format!(
                "{} notifications could not be decoded (first: {})",
                self.decode_errors,
                self.first_errors.join("; ")
            ));
        }
        notes
    }

    /// Decode records until one gives samples; `false` at the end.
    fn load_next(&mut self) -> Result<bool, ReadError> {
        while self.release.is_none() {
            let record = self.reader.next_record().map_err(|e| read_error(&self.path, e))?;
            let Some(record) = record else { return Ok(false) };
            if !self.profile.takes_source(record.source) {
                continue;
            }
            self.pending.clear();
            let arrival = record.arrival_unix.unwrap_or(0.0);
            self.assembler.push(record.source, &record.bytes, arrival, &mut self.pending);
            self.decode_errors += self.pending.decode_errors;
            for e in self.pending.errors.drain(..) {
                if self.first_errors.len() < 3 {
                    self.first_errors.push(e);
                }
            }
            self.notes.append(&mut self.pending.notes);
            if let Some(last_end) = self
                .pending
                .chunks
                .iter()
                .map(|c| c.time + (c.len.saturating_sub(1)) as f64 / self.specs[c.channel].rate_hz)
                .reduce(f64::max)
            {
                self.release = Some(record.arrival_unix.unwrap_or(last_end).max(last_end));
            }
        }
        Ok(true)
    }
}

impl SampleSource for CaptureStream {
    fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    /// When the next notification is released: its arrival, or its last sample's time.
    fn next_time(&mut self) -> Result<Option<f64>, ReadError> {
        self.load_next()?;
        Ok(self.release)
    }

    fn read_before(&mut self, t_end: f64, out: &mut [Vec<Segment>]) -> Result<(), ReadError> {
        while self.load_next()? && self.release.is_some_and(|r| r < t_end) {
            for c in &self.pending.chunks {
                let values = self.pending.values_of(c);
                let period = self.specs[c.channel].period_s();
                let segments = &mut out[c.channel];
                // Evenly sampled chunks that follow each other make one segment. Beats and
                // heart-rate readings keep their own times: a segment would re-space them.
                let evenly = self.assembler.evenly_sampled(c.channel);
                match segments.last_mut() {
                    Some(s)
                        if evenly && (s.start_time + s.samples.len() as f64 * period - c.time).abs() < 0.5 * period =>
                    {
                        s.samples.extend_from_slice(values)
                    }
                    _ => segments.push(Segment { start_time: c.time, samples: values.to_vec() }),
                }
            }
            self.release = None;
        }
        Ok(())
    }

    fn skipped_rows(&self) -> u64 {
        self.decode_errors
    }

    fn end_notes(&self) -> Vec<String> {
        self.notes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::protocol::ble::capture::{CaptureHeader, CaptureWriter, H10_MAGIC};
    use crate::ingest::protocol::ble::pmd::tests::{hex, ECG_G6};
    use crate::ingest::replay::stream::drain;

    const FRAME_NS: u64 = 561_538_461;

    /// ECG-G6 (a real H10 notification) restamped as frame `k` of a stream.
    fn frame(k: u64) -> Vec<u8> {
        let mut b = hex(&ECG_G6);
        b[1..9].copy_from_slice(&(599_622_176_564_550_314 + k * FRAME_NS).to_le_bytes());
        b
    }

    #[test]
    fn a_capture_replays_each_notification_at_its_arrival_with_its_samples_in_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h10.capture");
        let header = CaptureHeader {
            streams: vec![
                StreamSpec::default_for(StreamKind::Ecg).into(),
                StreamSpec::default_for(StreamKind::Hr).into(),
            ],
            device: "test".into(),
        };
        let mut w = CaptureWriter::new(File::create(&path).unwrap(), &header).unwrap();
        let t0 = 1_700_000_000.0;
        w.write(t0, Gatt::PmdControl, &[0xF0, 0x02, 0x00, 0x00, 0x00, 0x00]).unwrap();
        for k in 0..100u64 {
            // 20–40 ms of radio delay, and a heart-rate notification every other frame.
            let arrival = t0 + (k as f64 * FRAME_NS as f64) / 1e9 + 0.02 + 0.02 * ((k * 7 % 10) as f64 / 10.0);
            w.write(arrival, Gatt::PmdData, &frame(k)).unwrap();
            if k % 2 == 0 {
                w.write(arrival, Gatt::HeartRate, &[0x10, 0x3B, 0x53, 0x04]).unwrap();
            }
        }
        w.flush().unwrap();
        drop(w);
        let mut pmd = CaptureStream::open(&path, Profile::Pmd).unwrap();
        assert_eq!(pmd.specs().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["ecg"]);
        let first = pmd.next_time().unwrap().unwrap();
        assert!((first - (t0 + 0.02)).abs() < 1e-6, "released at its arrival: {first}");
        let mut out = vec![Vec::new()];
        pmd.read_before(first + 0.001, &mut out).unwrap();
        assert_eq!(out[0][0].samples.len(), 73, "one notification");
        pmd.read_before(f64::INFINITY, &mut out).unwrap();
        assert_eq!(out[0].len(), 1, "a gap-free stream is one segment");
        assert_eq!(out[0][0].samples.len(), 7300);
        assert!(pmd.end_notes().is_empty(), "{:?}", pmd.end_notes());
        let mut hrs = CaptureStream::open(&path, Profile::Hrs).unwrap();
        let hr = drain(&mut hrs).unwrap();
        assert_eq!(hr[0].segments.iter().map(|s| s.samples.len()).sum::<usize>(), 50);
    }

    #[test]
    fn an_h10_recording_is_timed_by_its_frames_and_may_end_mid_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h10.bin");
        let mut bytes = H10_MAGIC.to_vec();
        for k in 0..10 {
            bytes.extend(229u32.to_le_bytes());
            bytes.extend(frame(k));
        }
        bytes.extend(229u32.to_le_bytes());
        bytes.extend(&frame(10)[..50]);
        std::fs::write(&path, bytes).unwrap();
        assert!(probe(&path, Profile::Hrs).unwrap_err().to_string().contains("no heart rate stream"));
        let mut s = CaptureStream::open(&path, Profile::Pmd).unwrap();
        let ch = drain(&mut s).unwrap();
        assert_eq!(ch[0].segments[0].samples.len(), 730);
        let last_sample = crate::ingest::protocol::ble::pmd::EPOCH_UNIX_S + (599_622_176_564_550_314u64 as f64) / 1e9;
        assert!((ch[0].segments[0].start_time + 72.0 / 130.0 - last_sample).abs() < 1e-6);
        assert!(s.end_notes()[0].contains("ends inside the record"), "{:?}", s.end_notes());
    }
}
