//! Readers that turn recording files into samples. Pure: text in, [`Recording`] out; only
//! [`load`] touches the file system.

use super::{CsvChannel, OnBadRow, ReplayConfig, ReplayFormat, StartTime};
use crate::signal::{ChannelSpec, Modality};
use std::io::Read;
use std::path::{Path, PathBuf};

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

/// Read the recording a replay source names. `now_unix` stands in for `start_time = "now"`.
pub fn load(config: &ReplayConfig, path: &Path, now_unix: f64) -> Result<Recording, ReadError> {
    match config.format {
        ReplayFormat::Csv => {
            let text = read_text(path)?;
            let start = match config.start_time {
                StartTime::Zero => 0.0,
                StartTime::Unix(t) => t,
                StartTime::Now => now_unix,
            };
            let opts = CsvOptions {
                channels: &config.channels,
                rate_hz: config.rate_hz,
                time_column: config.time_column.as_deref(),
                start_time: start,
                on_bad_row: config.on_bad_row,
            };
            parse_csv(&text, path, &opts)
        }
        ReplayFormat::E4 => load_e4(path, config.on_bad_row),
        ReplayFormat::Wfdb => super::wfdb::load(path),
    }
}

/// Read a file as text, transparently gunzipping `*.gz`.
fn read_text(path: &Path) -> Result<String, ReadError> {
    let io = |source| ReadError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text).map_err(io)?;
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text).map_err(io)?;
    }
    Ok(text)
}

/// How to read a CSV recording.
pub struct CsvOptions<'a> {
    pub channels: &'a [CsvChannel],
    pub rate_hz: Option<f64>,
    pub time_column: Option<&'a str>,
    pub start_time: f64,
    pub on_bad_row: OnBadRow,
}

/// Split a line on the file's separator, yielding each field with its 1-based column.
fn fields(line: &str, sep: char) -> impl Iterator<Item = (usize, &str)> {
    let mut col = 1;
    line.split(sep).map(move |f| {
        let at = col + (f.len() - f.trim_start().len());
        col += f.chars().count() + 1;
        (at, f.trim())
    })
}

fn detect_separator(header: &str) -> char {
    [',', '\t', ';'].into_iter().max_by_key(|c| header.matches(*c).count()).unwrap_or(',')
}

/// Parse a CSV with a header row into channels. Pure.
pub fn parse_csv(text: &str, path: &Path, opts: &CsvOptions) -> Result<Recording, ReadError> {
    let invalid = |message: String| ReadError::Invalid { path: path.to_path_buf(), message };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(invalid("the file is empty; expected a header row naming the columns".into()));
    };
    let header = header.trim_start_matches('\u{feff}');
    let sep = detect_separator(header);
    let names: Vec<&str> = fields(header, sep).map(|(_, f)| f.trim_matches('"')).collect();
    let find = |col: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(col))
            .ok_or_else(|| invalid(format!("no column `{col}` in the header; the columns are: {}", names.join(", "))))
    };
    let wanted: Vec<usize> = opts.channels.iter().map(|c| find(&c.column)).collect::<Result<_, _>>()?;
    let time_idx = opts.time_column.map(find).transpose()?;

    // Parse every row into (time, values); malformed rows become gaps or errors.
    let mut rows_time: Vec<Option<f64>> = Vec::new();
    let mut rows: Vec<f32> = Vec::new(); // row-major, wanted.len() per row
    let mut skipped = 0u64;
    let mut row_vals = vec![0f32; wanted.len()];
    let mut parsed: Vec<(usize, &str)> = Vec::with_capacity(names.len());
    for (idx, line) in lines {
        parsed.clear();
        parsed.extend(fields(line, sep));
        let line_no = idx + 1;
        let result = parse_row(&parsed, names.len(), &wanted, time_idx, &mut row_vals);
        match result {
            Ok(t) => {
                rows_time.push(Some(t.unwrap_or(f64::NAN)));
                rows.extend_from_slice(&row_vals);
            }
            Err((column, message)) => match opts.on_bad_row {
                OnBadRow::Error => {
                    return Err(ReadError::Parse {
                        path: path.to_path_buf(),
                        line: line_no,
                        column,
                        message: format!("{message} (set on_bad_row = \"skip\" to drop such rows as gaps)"),
                    })
                }
                OnBadRow::Skip => {
                    skipped += 1;
                    rows_time.push(None);
                    rows.extend(std::iter::repeat_n(f32::NAN, wanted.len()));
                }
            },
        }
    }
    if rows_time.iter().all(Option::is_none) {
        return Err(invalid("the file has a header but no data rows".into()));
    }

    let rate = match (opts.rate_hz, time_idx) {
        (Some(r), _) => r,
        (None, Some(_)) => estimate_rate(&rows_time)
            .ok_or_else(|| invalid("cannot infer the sampling rate from the time column; set rate_hz".into()))?,
        (None, None) => return Err(invalid("neither rate_hz nor time_column is set".into())),
    };
    let period = 1.0 / rate;

    // Cut rows into gap-free segments. Row times come from the time column when there is one,
    // else from the row index; a skipped row always breaks the segment.
    let mut channels: Vec<RecordedChannel> = opts
        .channels
        .iter()
        .map(|c| RecordedChannel {
            spec: ChannelSpec::new(c.channel_name(), c.modality, c.unit.clone(), rate),
            segments: Vec::new(),
        })
        .collect();
    let mut expected_next: Option<f64> = None;
    for (r, t) in rows_time.iter().enumerate() {
        let Some(t) = t else {
            expected_next = None;
            continue;
        };
        let t = if time_idx.is_some() { opts.start_time + t } else { opts.start_time + r as f64 * period };
        let continues = expected_next.is_some_and(|e| (t - e).abs() < 0.5 * period);
        if !continues && expected_next.is_some_and(|e| t < e - 0.5 * period) {
            return Err(ReadError::Invalid {
                path: path.to_path_buf(),
                message: format!("time goes backwards at data row {} ({t:.6} s)", r + 1),
            });
        }
        for (c, ch) in channels.iter_mut().enumerate() {
            let v = rows[r * wanted.len() + c] * opts.channels[c].scale as f32;
            if continues {
                ch.segments.last_mut().expect("continuing segment").samples.push(v);
            } else {
                ch.segments.push(Segment { start_time: t, samples: vec![v] });
            }
        }
        expected_next = Some(t + period);
    }
    Ok(Recording { channels, skipped_rows: skipped, notes: Vec::new() })
}

/// Parse the wanted fields of one row. Errors carry the 1-based column.
fn parse_row(
    parsed: &[(usize, &str)],
    n_columns: usize,
    wanted: &[usize],
    time_idx: Option<usize>,
    out: &mut [f32],
) -> Result<Option<f64>, (usize, String)> {
    if parsed.len() < n_columns {
        let col = parsed.last().map(|(c, f)| c + f.len()).unwrap_or(1);
        return Err((col, format!("row has {} fields, the header has {n_columns} (truncated row?)", parsed.len())));
    }
    for (slot, &i) in out.iter_mut().zip(wanted) {
        let (col, f) = parsed[i];
        *slot = f.parse::<f32>().map_err(|_| (col, format!("`{f}` is not a number")))?;
    }
    time_idx
        .map(|i| {
            let (col, f) = parsed[i];
            f.parse::<f64>().ok().filter(|t| t.is_finite()).ok_or_else(|| (col, format!("time `{f}` is not a number")))
        })
        .transpose()
}

fn estimate_rate(times: &[Option<f64>]) -> Option<f64> {
    let ts: Vec<f64> = times.iter().flatten().copied().take(1001).collect();
    let mut diffs: Vec<f64> = ts.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_by(f64::total_cmp);
    Some(1.0 / diffs[diffs.len() / 2])
}

/// One Empatica E4 signal file: what it holds and how to name its columns.
struct E4File {
    stem: &'static str,
    modality: Modality,
    unit: &'static str,
    scale: f32,
    columns: &'static [&'static str],
}

/// The E4 signals a replay takes (HR and IBI are Empatica's own derivations; we compute ours).
const E4_FILES: [E4File; 4] = [
    E4File { stem: "BVP", modality: Modality::Ppg, unit: "a.u.", scale: 1.0, columns: &["bvp"] },
    // E4 accelerometer counts are 1/64 g (range ±2 g).
    E4File {
        stem: "ACC",
        modality: Modality::Acc,
        unit: "g",
        scale: 1.0 / 64.0,
        columns: &["acc_x", "acc_y", "acc_z"],
    },
    E4File { stem: "EDA", modality: Modality::Eda, unit: "uS", scale: 1.0, columns: &["eda"] },
    E4File { stem: "TEMP", modality: Modality::Temp, unit: "degC", scale: 1.0, columns: &["temp"] },
];

/// Read an E4 export folder (`BVP.csv`, `ACC.csv`, `EDA.csv`, `TEMP.csv`, each optionally `.gz`).
pub fn load_e4(dir: &Path, on_bad_row: OnBadRow) -> Result<Recording, ReadError> {
    if !dir.is_dir() {
        return Err(ReadError::Invalid {
            path: dir.to_path_buf(),
            message: "not a folder; an E4 export is a folder holding BVP.csv, ACC.csv, EDA.csv, TEMP.csv".into(),
        });
    }
    let mut rec = Recording { channels: Vec::new(), skipped_rows: 0, notes: Vec::new() };
    for f in &E4_FILES {
        let plain = dir.join(format!("{}.csv", f.stem));
        let gz = dir.join(format!("{}.csv.gz", f.stem));
        let path = if plain.exists() {
            plain
        } else if gz.exists() {
            gz
        } else {
            rec.notes.push(format!("{}: no {}.csv(.gz); that signal is absent", dir.display(), f.stem));
            continue;
        };
        let text = read_text(&path)?;
        let (channels, skipped) = parse_e4_file(&text, &path, f, on_bad_row)?;
        rec.skipped_rows += skipped;
        rec.channels.extend(channels);
    }
    if rec.channels.is_empty() {
        return Err(ReadError::Invalid {
            path: dir.to_path_buf(),
            message: "no E4 signal files found (expected BVP.csv, ACC.csv, EDA.csv or TEMP.csv, plain or .gz)".into(),
        });
    }
    Ok(rec)
}

/// Parse one E4 CSV: line 1 start time (unix s) per column, line 2 rate (Hz) per column, then samples.
fn parse_e4_file(
    text: &str,
    path: &Path,
    file: &E4File,
    on_bad_row: OnBadRow,
) -> Result<(Vec<RecordedChannel>, u64), ReadError> {
    let n = file.columns.len();
    let parse_err = |line: usize, column: usize, message: String| ReadError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let mut lines = text.lines().enumerate();
    let mut header =
        |what: &str| -> Result<f64, ReadError> {
            let (i, line) = lines.next().ok_or_else(|| parse_err(1, 1, format!("missing the {what} header line")))?;
            let (col, first) = fields(line, ',').next().unwrap_or((1, ""));
            first.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| {
                parse_err(i + 1, col, format!("expected the {what} as a positive number, found `{first}`"))
            })
        };
    let start = header("start time (unix seconds)")?;
    let rate = header("sample rate (Hz)")?;
    let mut channels: Vec<RecordedChannel> = file
        .columns
        .iter()
        .map(|name| RecordedChannel {
            spec: ChannelSpec::new(*name, file.modality, file.unit, rate),
            segments: vec![Segment { start_time: start, samples: Vec::new() }],
        })
        .collect();
    let mut skipped = 0;
    let mut row_index = 0usize; // sample index since start, counting skipped rows
    let mut vals = [0f32; 3];
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let mut bad: Option<(usize, String)> = None;
        let mut count = 0;
        for (col, f) in fields(line, ',') {
            if count == n {
                bad = Some((col, format!("more than {n} values in a row")));
                break;
            }
            match f.parse::<f32>() {
                Ok(v) => vals[count] = v * file.scale,
                Err(_) => {
                    bad = Some((col, format!("`{f}` is not a number")));
                    break;
                }
            }
            count += 1;
        }
        if bad.is_none() && count < n {
            bad = Some((line.len() + 1, format!("row has {count} values, expected {n} (truncated row?)")));
        }
        if let Some((col, message)) = bad {
            match on_bad_row {
                OnBadRow::Error => return Err(parse_err(i + 1, col, message)),
                OnBadRow::Skip => {
                    skipped += 1;
                    row_index += 1;
                    let t = start + row_index as f64 / rate;
                    for ch in &mut channels {
                        ch.segments.push(Segment { start_time: t, samples: Vec::new() });
                    }
                    continue;
                }
            }
        }
        for (ch, v) in channels.iter_mut().zip(vals) {
            ch.segments.last_mut().expect("segment").samples.push(v);
        }
        row_index += 1;
    }
    for ch in &mut channels {
        ch.segments.retain(|s| !s.samples.is_empty());
    }
    Ok((channels, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(column: &str, modality: Modality) -> CsvChannel {
        CsvChannel { column: column.into(), name: None, modality, unit: "a.u.".into(), scale: 1.0 }
    }

    fn opts<'a>(channels: &'a [CsvChannel], on_bad_row: OnBadRow) -> CsvOptions<'a> {
        CsvOptions { channels, rate_hz: Some(10.0), time_column: None, start_time: 100.0, on_bad_row }
    }

    #[test]
    fn csv_columns_are_picked_by_name() {
        let chans = [ch("EDA", Modality::Eda), ch("ECG", Modality::Ecg)];
        let rec = parse_csv("ECG,EDA,X\n1,10,0\n2,11,0\n", Path::new("r.csv"), &opts(&chans, OnBadRow::Error)).unwrap();
        assert_eq!(rec.channels[0].spec.name, "eda");
        assert_eq!(rec.channels[0].segments, vec![Segment { start_time: 100.0, samples: vec![10.0, 11.0] }]);
        assert_eq!(rec.channels[1].segments[0].samples, vec![1.0, 2.0]);
    }

    #[test]
    fn garbled_value_is_an_error_with_line_and_column() {
        let chans = [ch("ECG", Modality::Ecg), ch("EDA", Modality::Eda)];
        let e = parse_csv("ECG,EDA\n1,2\n3,x7\n", Path::new("r.csv"), &opts(&chans, OnBadRow::Error)).unwrap_err();
        assert_eq!(e.to_string().split(':').take(3).collect::<Vec<_>>(), ["r.csv", "3", "3"], "{e}");
        assert!(e.to_string().contains("`x7` is not a number"));
    }

    #[test]
    fn truncated_row_is_an_error_or_a_gap() {
        let chans = [ch("ECG", Modality::Ecg), ch("EDA", Modality::Eda)];
        let text = "ECG,EDA\n1,2\n3\n5,6\n";
        let e = parse_csv(text, Path::new("r.csv"), &opts(&chans, OnBadRow::Error)).unwrap_err();
        assert!(e.to_string().contains("r.csv:3:"), "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
        let rec = parse_csv(text, Path::new("r.csv"), &opts(&chans, OnBadRow::Skip)).unwrap();
        assert_eq!(rec.skipped_rows, 1);
        let segs = &rec.channels[0].segments;
        assert_eq!(segs.len(), 2, "the skipped row splits the channel");
        assert_eq!(segs[1], Segment { start_time: 100.2, samples: vec![5.0] });
    }

    #[test]
    fn time_column_gap_starts_a_new_segment() {
        let chans = [ch("v", Modality::Eda)];
        let o = CsvOptions { time_column: Some("t"), rate_hz: None, ..opts(&chans, OnBadRow::Error) };
        let rec = parse_csv("t,v\n0.0,1\n0.1,2\n0.2,3\n1.0,4\n1.1,5\n", Path::new("r.csv"), &o).unwrap();
        let segs = &rec.channels[0].segments;
        assert_eq!(segs.len(), 2);
        assert!((rec.channels[0].spec.rate_hz - 10.0).abs() < 1e-6);
        assert_eq!(segs[1].samples, vec![4.0, 5.0]);
        assert!((segs[1].start_time - 101.0).abs() < 1e-9);
    }

    #[test]
    fn time_going_backwards_is_refused() {
        let chans = [ch("v", Modality::Eda)];
        let o = CsvOptions { time_column: Some("t"), rate_hz: Some(10.0), ..opts(&chans, OnBadRow::Error) };
        let e = parse_csv("t,v\n0.0,1\n0.1,2\n0.0,3\n", Path::new("r.csv"), &o).unwrap_err();
        assert!(e.to_string().contains("backwards"), "{e}");
    }

    #[test]
    fn empty_and_header_only_files_are_clear_errors() {
        let chans = [ch("v", Modality::Eda)];
        let o = opts(&chans, OnBadRow::Error);
        assert!(parse_csv("", Path::new("r.csv"), &o).unwrap_err().to_string().contains("empty"));
        assert!(parse_csv("v\n", Path::new("r.csv"), &o).unwrap_err().to_string().contains("no data rows"));
        assert!(parse_csv("w\n1\n", Path::new("r.csv"), &o).unwrap_err().to_string().contains("no column `v`"));
    }

    #[test]
    fn e4_file_headers_rates_and_scale() {
        let text = "1644227574.000000, 1644227574.000000, 1644227574.000000\n32.000000, 32.000000, 32.000000\n64,0,-32\n32,16,0\n";
        let (chans, skipped) = parse_e4_file(text, Path::new("ACC.csv"), &E4_FILES[1], OnBadRow::Error).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(chans.len(), 3);
        assert_eq!(chans[0].spec.rate_hz, 32.0);
        assert_eq!(chans[0].segments[0].start_time, 1644227574.0);
        assert_eq!(chans[0].segments[0].samples, vec![1.0, 0.5]);
        assert_eq!(chans[2].segments[0].samples, vec![-0.5, 0.0]);
    }

    #[test]
    fn e4_truncated_last_row_is_located_or_skipped() {
        let text = "100\n4\n1.0\n2.0\n3.";
        assert!(parse_e4_file(text, Path::new("EDA.csv"), &E4_FILES[2], OnBadRow::Error).is_ok(), "`3.` is a number");
        let text = "100\n4\n1.0\n2.0\n3.0\n-\n5.0\n";
        let e = parse_e4_file(text, Path::new("EDA.csv"), &E4_FILES[2], OnBadRow::Error).unwrap_err();
        assert!(e.to_string().starts_with("EDA.csv:6:1:"), "{e}");
        let (chans, skipped) = parse_e4_file(text, Path::new("EDA.csv"), &E4_FILES[2], OnBadRow::Skip).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(chans[0].segments.len(), 2);
        assert_eq!(chans[0].segments[1], Segment { start_time: 101.0, samples: vec![5.0] });
    }

    #[test]
    fn e4_bad_header_names_the_line() {
        let e = parse_e4_file("abc\n4\n1\n", Path::new("EDA.csv"), &E4_FILES[2], OnBadRow::Error).unwrap_err();
        assert!(e.to_string().starts_with("EDA.csv:1:1: expected the start time"), "{e}");
    }
}
