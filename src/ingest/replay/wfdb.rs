//! PhysioNet WFDB records: header (`.hea`), signal files in formats 212 and 16, and MIT-format
//! annotation files (`.atr`). Pure parsers over bytes; [`load`] reads the files.
//!
//! Format references: the WFDB Programmer's Guide, "header(5)", "signal(5)" and "annot(5)".

use crate::bounds;
use crate::signal::{ChannelSpec, Modality};
use std::path::{Path, PathBuf};

use super::recording::{ReadError, RecordedChannel, Recording, Segment};

/// More signals than any physiological record holds (EEG caps have 256 electrodes at most).
const MAX_SIGNALS: usize = 256;

/// One signal line of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalInfo {
    pub file: String,
    pub format: u16,
    /// Samples per frame (`16x32`: 32); the signal's rate is the frame rate times this.
    pub samples_per_frame: usize,
    /// ADC units per physical unit.
    pub gain: f64,
    /// ADC value of 0 physical units.
    pub baseline: i32,
    pub units: String,
    pub description: String,
    /// 1-based line of the header this signal was read from.
    pub line: usize,
}

/// A parsed `.hea` file (single-segment records).
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub record: String,
    pub fs: f64,
    pub samples: Option<usize>,
    pub signals: Vec<SignalInfo>,
}

fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> ReadError {
    ReadError::Parse { path: path.to_path_buf(), line, column: 1, message: message.into() }
}

/// Parse a header. `path` names it in errors.
pub fn parse_header(text: &str, path: &Path) -> Result<Header, ReadError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with('#') && !l.trim().is_empty());
    let (n, record_line) = lines.next().ok_or_else(|| parse_err(path, 1, "empty header"))?;
    let f: Vec<&str> = record_line.split_whitespace().collect();
    if f.len() < 3 {
        return Err(parse_err(path, n + 1, "record line needs: name, number of signals, sampling frequency"));
    }
    if f[0].contains('/') {
        return Err(parse_err(path, n + 1, "multi-segment records are not supported"));
    }
    let nsig: usize = f[1]
        .parse()
        .ok()
        .filter(|k| (1..=MAX_SIGNALS).contains(k))
        .ok_or_else(|| parse_err(path, n + 1, format!("`{}` is not a signal count (1 to {MAX_SIGNALS})", f[1])))?;
    // "360" or "360/…" (counter frequency) or "360(…)" (base counter value).
    let fs_text = f[2].split(['/', '(']).next().unwrap_or("");
    let fs: f64 = bounds::SAMPLE_RATE_HZ
        .parse(fs_text)
        .map_err(|why| parse_err(path, n + 1, format!("sampling frequency `{}`: {why}", f[2])))?;
    let samples = f.get(3).and_then(|s| s.parse().ok());
    let mut signals = Vec::with_capacity(nsig);
    let mut last_line = n + 1;
    for k in 0..nsig {
        let (n, line) = lines.next().ok_or_else(|| {
            parse_err(path, last_line, format!("the record line declares {nsig} signals but {k} are listed"))
        })?;
        last_line = n + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            return Err(parse_err(path, n + 1, "signal line needs at least a file name and a format"));
        }
        // Format may carry "x<samples per frame>", ":<skew>" and "+<offset>" suffixes; skew and
        // offset are not used by the records this reads.
        let format: u16 = f[1]
            .split(['x', ':', '+'])
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| parse_err(path, n + 1, format!("`{}` is not a storage format", f[1])))?;
        let samples_per_frame = match f[1].split_once('x') {
            None => 1,
            Some((_, rest)) => rest
                .split([':', '+'])
                .next()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&k| (1..=1024).contains(&k))
                .ok_or_else(|| parse_err(path, n + 1, format!("`{}`: bad samples-per-frame", f[1])))?,
        };
        // Gain: "200", "200(1024)", "200/mV", "200(1024)/mV"; 0 or absent means 200 (WFDB default).
        let gain_field = f.get(2).copied().unwrap_or("200");
        let (gain_part, units) = match gain_field.split_once('/') {
            Some((g, u)) => (g, u.to_string()),
            None => (gain_field, "mV".to_string()),
        };
        let (gain_text, baseline_text) = match gain_part.split_once('(') {
            Some((g, b)) => (g, Some(b.trim_end_matches(')'))),
            None => (gain_part, None),
        };
        let gain = gain_text.parse::<f64>().ok().filter(|g| *g != 0.0 && g.is_finite()).unwrap_or(200.0);
        let adc_zero: i32 = f.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
        let baseline = match baseline_text {
            Some(b) => b.parse().map_err(|_| parse_err(path, n + 1, format!("`{b}` is not a baseline")))?,
            None => adc_zero,
        };
        let description = if f.len() > 8 { f[8..].join(" ") } else { String::new() };
        bounds::SAMPLE_RATE_HZ.check(fs * samples_per_frame as f64).map_err(|why| {
            parse_err(path, n + 1, format!("{samples_per_frame} samples per frame at {fs} Hz: the rate {why}"))
        })?;
        signals.push(SignalInfo {
            file: f[0].to_string(),
            format,
            samples_per_frame,
            gain,
            baseline,
            units,
            description,
            line: n + 1,
        });
    }
    Ok(Header { record: f[0].to_string(), fs, samples, signals })
}

/// Decode a signal file holding signals with `samples_per_frame[k]` samples each per frame,
/// interleaved frame by frame (the WFDB layout).
pub fn decode_signals(
    bytes: &[u8],
    format: u16,
    samples_per_frame: &[usize],
    path: &Path,
) -> Result<Vec<Vec<i16>>, ReadError> {
    let nsig = samples_per_frame.len();
    let mut out = vec![Vec::new(); nsig];
    let frame: usize = samples_per_frame.iter().sum();
    if nsig == 0 || frame == 0 {
        return Ok(out);
    }
    // Which signal each position in a frame belongs to.
    let owner: Vec<usize> =
        samples_per_frame.iter().enumerate().flat_map(|(k, &n)| std::iter::repeat_n(k, n)).collect();
    let mut k = 0usize;
    let mut put = |v: i16| {
        out[owner[k % frame]].push(v);
        k += 1;
    };
    match format {
        212 => {
            // Two 12-bit two's-complement samples in three bytes.
            for b in bytes.chunks_exact(3) {
                let s0 = ((b[1] as i16 & 0x0f) << 8) | b[0] as i16;
                let s1 = ((b[1] as i16 & 0xf0) << 4) | b[2] as i16;
                for s in [s0, s1] {
                    put(if s & 0x800 != 0 { s - 0x1000 } else { s });
                }
            }
        }
        16 => {
            for b in bytes.chunks_exact(2) {
                put(i16::from_le_bytes([b[0], b[1]]));
            }
        }
        other => {
            return Err(ReadError::Invalid {
                path: path.to_path_buf(),
                message: format!("storage format {other} is not supported (212 and 16 are)"),
            })
        }
    }
    // Drop a trailing partial frame.
    let frames = out.iter().zip(samples_per_frame).map(|(s, &n)| s.len() / n).min().unwrap_or(0);
    for (s, &n) in out.iter_mut().zip(samples_per_frame) {
        s.truncate(frames * n);
    }
    Ok(out)
}

/// One annotation: sample index and MIT code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotation {
    pub sample: u64,
    pub code: u8,
    pub chan: u8,
}

/// Codes WFDB counts as beats (`isqrs`): N L R B A a J S V r F e j n E / f Q ?.
pub fn is_beat(code: u8) -> bool {
    matches!(code, 1..=13 | 25 | 30 | 34 | 35 | 38 | 41)
}

/// Parse an MIT-format annotation file.
pub fn parse_annotations(bytes: &[u8], path: &Path) -> Result<Vec<Annotation>, ReadError> {
    let mut anns = Vec::new();
    let mut t: u64 = 0;
    let mut chan = 0u8;
    let mut i = 0;
    let word = |i: usize| -> Option<u16> { bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]])) };
    while let Some(w) = word(i) {
        i += 2;
        let a = (w >> 10) as u8;
        let interval = (w & 0x3ff) as u64;
        match a {
            0 if interval == 0 => break,
            59 => {
                // SKIP: a 32-bit interval follows, high 16 bits first (PDP-11 order).
                let (Some(hi), Some(lo)) = (word(i), word(i + 2)) else {
                    return Err(ReadError::Invalid { path: path.to_path_buf(), message: "truncated SKIP".into() });
                };
                i += 4;
                let skip = (((hi as u32) << 16) | lo as u32) as i32;
                t = t.checked_add_signed(skip as i64).ok_or_else(|| ReadError::Invalid {
                    path: path.to_path_buf(),
                    message: "annotation time before the record start".into(),
                })?;
            }
            60 | 61 => {} // NUM, SUB: not needed here
            62 => chan = interval as u8,
            63 => i += (interval as usize).div_ceil(2) * 2, // AUX string, padded to even
            code => {
                t += interval;
                anns.push(Annotation { sample: t, code, chan });
            }
        }
    }
    Ok(anns)
}

/// Read a record (`PATH/RECORD` without extension) into a [`Recording`] of its signals in
/// physical units; ECG-looking signals get the ECG modality. The clock starts at 0.
pub fn load(record: &Path) -> Result<Recording, ReadError> {
    let hea = record.with_extension("hea");
    let header = read_header(&hea)?;
    let dir = record.parent().unwrap_or(Path::new("."));
    let mut channels = Vec::new();
    // Signals sharing a file are interleaved in it; decode each file once.
    let mut files: Vec<(String, u16, Vec<usize>)> = Vec::new();
    for (i, s) in header.signals.iter().enumerate() {
        match files.iter_mut().find(|(f, _, _)| *f == s.file) {
            // Frames interleave samples of one storage format; two in one file is no layout
            // this reader (or WFDB's own tools, for these formats) can decode.
            Some((_, format, _)) if *format != s.format => {
                return Err(parse_err(
                    &hea,
                    s.line,
                    format!(
                        "signal {} stores `{}` in format {}, an earlier signal in format {format}",
                        i + 1,
                        s.file,
                        s.format
                    ),
                ))
            }
            Some((_, _, idx)) => idx.push(i),
            None => files.push((s.file.clone(), s.format, vec![i])),
        }
    }
    let mut decoded: Vec<Option<Vec<i16>>> = vec![None; header.signals.len()];
    for (file, format, idx) in files {
        let path: PathBuf = dir.join(&file);
        let bytes = read_bounded(&path, MAX_SIGNAL_FILE_BYTES, "a WFDB record is read whole")?;
        let spf: Vec<usize> = idx.iter().map(|&i| header.signals[i].samples_per_frame).collect();
        let signals = decode_signals(&bytes, format, &spf, &path)?;
        let frames = signals[0].len() / spf[0];
        let invalid = |message: String| ReadError::Invalid { path: path.clone(), message };
        if frames == 0 {
            return Err(invalid(format!("holds no complete frame ({} bytes)", bytes.len())));
        }
        // A header that names the length lets a short, long or mis-declared file be caught: a
        // file holding two signals read as one has twice the frames.
        if let Some(expected) = header.samples.filter(|&n| n != frames) {
            return Err(invalid(format!(
                "holds {frames} frames of {} signal(s) in format {format}, but {} says {expected}: {}",
                spf.len(),
                hea.display(),
                if frames < expected {
                    "the file is truncated"
                } else {
                    "the header lists fewer signals than the file holds, or the file is longer"
                }
            )));
        }
        for (k, sig) in signals.into_iter().enumerate() {
            decoded[idx[k]] = Some(sig);
        }
    }
    for ((info, adc), spec) in header.signals.iter().zip(decoded).zip(channel_specs(&header)) {
        let adc = adc.unwrap_or_default();
        let samples = adc.iter().map(|&v| ((v as i32 - info.baseline) as f64 / info.gain) as f32).collect();
        channels.push(RecordedChannel { spec, segments: vec![Segment { start_time: 0.0, samples }] });
    }
    Ok(Recording { channels, skipped_rows: 0, notes: Vec::new() })
}

/// The channel specs [`load`] gives a record, from its `.hea` alone.
pub fn probe(record: &Path) -> Result<Vec<ChannelSpec>, ReadError> {
    Ok(channel_specs(&read_header(&record.with_extension("hea"))?))
}

/// A header is a line per signal and a few comments: far below this.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Signal and annotation files are read whole (a 24 h two-lead Holter in format 212 is 233 MB);
/// past this the record is better cut with WFDB's own tools than held in memory here.
const MAX_SIGNAL_FILE_BYTES: u64 = 1 << 30;

/// Read and parse a `.hea` file, refusing one too long to be a header before reading it all.
fn read_header(hea: &Path) -> Result<Header, ReadError> {
    let bytes = read_bounded(hea, MAX_HEADER_BYTES, "not a WFDB header")?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        parse_err(hea, line, format!("not text: invalid UTF-8 at byte offset {at}"))
    })?;
    parse_header(&text, hea)
}

/// Read a whole file of at most `max` bytes; a longer one is refused, saying `why` the bound.
fn read_bounded(path: &Path, max: u64, why: &str) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|source| ReadError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > max {
        return Err(ReadError::Invalid {
            path: path.to_path_buf(),
            message: format!("longer than {max} bytes; {why}"),
        });
    }
    Ok(bytes)
}

/// One spec per signal: named by its description (`sig<N>` without one), the modality the
/// description names, the signal's own rate.
fn channel_specs(header: &Header) -> Vec<ChannelSpec> {
    header
        .signals
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let name = if info.description.is_empty() { format!("sig{i}") } else { info.description.clone() };
            let rate = header.fs * info.samples_per_frame as f64;
            ChannelSpec::new(name, modality_of(&info.description), info.units.clone(), rate)
        })
        .collect()
}

/// The modality a signal description names (PhysioNet's usual words), `Other` when none.
fn modality_of(description: &str) -> Modality {
    let d = description.to_ascii_uppercase();
    if looks_like_ecg(&d) {
        Modality::Ecg
    } else if d.starts_with("RESP") {
        Modality::Resp
    } else if d.contains("GSR") || d.starts_with("EDA") {
        Modality::Eda
    } else if d.starts_with("PLETH") || d.starts_with("PPG") {
        Modality::Ppg
    } else {
        Modality::Other
    }
}

fn looks_like_ecg(description: &str) -> bool {
    let d = description.to_ascii_uppercase();
    d.starts_with("ECG")
        || d.starts_with("MLII")
        || d.starts_with("ML")
        || d.starts_with('V')
        || d.starts_with("LEAD")
        || matches!(d.as_str(), "I" | "II" | "III" | "AVR" | "AVL" | "AVF" | "D3")
}

/// Read a record's `.atr` annotations.
pub fn load_annotations(record: &Path) -> Result<Vec<Annotation>, ReadError> {
    let atr = record.with_extension("atr");
    let bytes = read_bounded(&atr, MAX_SIGNAL_FILE_BYTES, "not an annotation file this reader holds in memory")?;
    parse_annotations(&bytes, &atr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_of_mitdb_100() {
        let h = parse_header(
            "100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n# 69 M\n",
            Path::new("100.hea"),
        )
        .unwrap();
        assert_eq!((h.fs, h.samples, h.signals.len()), (360.0, Some(650000), 2));
        assert_eq!(h.signals[0].baseline, 1024, "baseline defaults to the ADC zero");
        assert_eq!(h.signals[1].description, "V5");
        let h = parse_header("r 1 128\nr.dat 212 200(1024)/mV 11 0 0 0 0 ECG1\n", Path::new("r.hea")).unwrap();
        assert_eq!((h.signals[0].gain, h.signals[0].baseline, h.signals[0].units.as_str()), (200.0, 1024, "mV"));
    }

    #[test]
    fn format_212_round_trip() {
        // Samples 995, 1011 then -1, 2047 packed as 212.
        let pack = |a: i16, b: i16| {
            let (a, b) = (a as u16 & 0xfff, b as u16 & 0xfff);
            [(a & 0xff) as u8, (((b >> 8) << 4) | (a >> 8)) as u8, (b & 0xff) as u8]
        };
        let mut bytes = pack(995, 1011).to_vec();
        bytes.extend(pack(-1, 2047));
        let sig = decode_signals(&bytes, 212, &[1, 1], Path::new("x.dat")).unwrap();
        assert_eq!(sig, vec![vec![995, -1], vec![1011, 2047]]);
        let sig16 = decode_signals(&[0xff, 0xff, 0x02, 0x00, 0x01], 16, &[1], Path::new("x.dat")).unwrap();
        assert_eq!(sig16, vec![vec![-1, 2]]);
        assert!(decode_signals(&[0; 4], 80, &[1], Path::new("x.dat")).is_err());
        // drivedb-style frames: signal 0 has 3 samples per frame, signal 1 one; a partial frame is dropped.
        let le = |v: &[i16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let framed = decode_signals(&le(&[1, 2, 3, 10, 4, 5, 6, 20, 7]), 16, &[3, 1], Path::new("x.dat")).unwrap();
        assert_eq!(framed, vec![vec![1, 2, 3, 4, 5, 6], vec![10, 20]]);
    }

    #[test]
    fn annotations_with_skip_aux_and_end() {
        let w = |a: u16, i: u16| ((a << 10) | i).to_le_bytes();
        let mut b = Vec::new();
        b.extend(w(28, 18)); // rhythm at 18
        b.extend(w(63, 3)); // AUX of 3 bytes (+1 pad)
        b.extend(b"(N\0\0");
        b.extend(w(1, 77)); // N at 95
        b.extend(w(59, 0)); // SKIP 100000
        b.extend(1u16.to_le_bytes());
        b.extend(((100000u32 & 0xffff) as u16).to_le_bytes());
        b.extend(w(5, 5)); // V at 95 + 65536 + 100000 - 65536... computed below
        b.extend(w(0, 0));
        let anns = parse_annotations(&b, Path::new("x.atr")).unwrap();
        assert_eq!(anns.len(), 3);
        assert_eq!((anns[1].sample, anns[1].code), (95, 1));
        assert_eq!(anns[2].sample, 95 + 65536 + (100000 & 0xffff) as u64 + 5);
        assert!(is_beat(anns[1].code) && is_beat(anns[2].code) && !is_beat(anns[0].code));
        assert!(parse_annotations(&w(59, 0), Path::new("x.atr")).is_err());
    }
}
