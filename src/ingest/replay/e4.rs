//! Empatica E4 export folders: `BVP.csv`, `ACC.csv`, `EDA.csv`, `TEMP.csv` (each optionally
//! `.gz`). Each file is a CSV without a header row: line 1 holds the start time (unix seconds)
//! per column, line 2 the rate (Hz) per column, then one row of samples per sample time.

use super::config::OnBadRow;
use super::csv_table::{CsvTable, Separator};
use super::recording::{ReadError, RecordedChannel, Recording, Segment};
use crate::bounds::{self, Bound};
use crate::signal::{ChannelSpec, Modality};
use std::io::Read;
use std::path::{Path, PathBuf};

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

/// Read an E4 export folder.
pub fn load(dir: &Path, on_bad_row: OnBadRow) -> Result<Recording, ReadError> {
    let mut rec = Recording { channels: Vec::new(), skipped_rows: 0, notes: Vec::new() };
    for (file, path) in files(dir, &mut rec.notes)? {
        let (channels, skipped) = parse_file(super::csv_table::open(&path)?, &path, file, on_bad_row)?;
        if channels.iter().all(|c| c.segments.is_empty()) {
            rec.notes.push(format!("{}: the two header lines and no sample; that signal is empty", path.display()));
        }
        rec.skipped_rows += skipped;
        rec.channels.extend(channels);
    }
    rec.notes.extend(misaligned(&rec));
    Ok(rec)
}

/// The files of one export start and end together (the wristband writes them all); say by how
/// much they do not, so a folder assembled from different sessions is noticed.
fn misaligned(rec: &Recording) -> Vec<String> {
    fn span(c: &RecordedChannel) -> Option<(&str, f64, f64)> {
        let first = c.segments.first()?;
        let last = c.segments.last()?;
        Some((c.spec.name.as_str(), first.start_time, last.start_time + last.samples.len() as f64 * c.spec.period_s()))
    }
    let spans: Vec<(&str, f64, f64)> = rec.channels.iter().filter_map(span).collect();
    let mut notes = Vec::new();
    let Some(&(first, start, _)) = spans.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else { return notes };
    for &(name, s, _) in &spans {
        if s - start > 1.0 {
            notes.push(format!(
                "channel `{name}` starts {:.0} s after `{first}`: are these files from one session?",
                s - start
            ));
        }
    }
    let Some(&(last, _, end)) = spans.iter().max_by(|a, b| a.2.total_cmp(&b.2)) else { return notes };
    for &(name, _, e) in &spans {
        if end - e > 60.0 {
            notes.push(format!("channel `{name}` ends {:.0} s before `{last}`", end - e));
        }
    }
    notes
}

/// Parse one E4 signal file named by its stem (`BVP`, `ACC`, `EDA`, `TEMP`) from `source`;
/// `None` for another stem. For fuzzing and tools that hold the bytes already.
pub fn parse_signal_file(
    stem: &str,
    source: impl Read,
    path: &Path,
    on_bad_row: OnBadRow,
) -> Option<Result<(Vec<RecordedChannel>, u64), ReadError>> {
    let file = E4_FILES.iter().find(|f| f.stem == stem)?;
    Some(parse_file(source, path, file, on_bad_row))
}

/// The channel specs [`load`] would give, from the two header lines of each file.
pub fn probe(dir: &Path) -> Result<Vec<ChannelSpec>, ReadError> {
    let mut specs = Vec::new();
    for (file, path) in files(dir, &mut Vec::new())? {
        let (_, rate) = read_headers(&mut CsvTable::open(&path, Separator::Comma)?)?;
        specs.extend(file.columns.iter().map(|name| ChannelSpec::new(*name, file.modality, file.unit, rate)));
    }
    Ok(specs)
}

/// The signal files present in `dir`, in [`E4_FILES`] order; a note for each one absent.
fn files(dir: &Path, notes: &mut Vec<String>) -> Result<Vec<(&'static E4File, PathBuf)>, ReadError> {
    if !dir.is_dir() {
        return Err(ReadError::Invalid {
            path: dir.to_path_buf(),
            message: "not a folder; an E4 export is a folder holding BVP.csv, ACC.csv, EDA.csv, TEMP.csv".into(),
        });
    }
    let mut found = Vec::new();
    for f in &E4_FILES {
        let plain = dir.join(format!("{}.csv", f.stem));
        let gz = dir.join(format!("{}.csv.gz", f.stem));
        if plain.exists() {
            found.push((f, plain));
        } else if gz.exists() {
            found.push((f, gz));
        } else {
            notes.push(format!("{}: no {}.csv(.gz); that signal is absent", dir.display(), f.stem));
        }
    }
    if found.is_empty() {
        return Err(ReadError::Invalid {
            path: dir.to_path_buf(),
            message: "no E4 signal files found (expected BVP.csv, ACC.csv, EDA.csv or TEMP.csv, plain or .gz)".into(),
        });
    }
    Ok(found)
}

/// Read the two header lines: (start time, rate), each the first value of its line.
fn read_headers<R: Read>(table: &mut CsvTable<R>) -> Result<(f64, f64), ReadError> {
    let mut header = |line: usize, what: &str, bound: Bound| -> Result<f64, ReadError> {
        if !table.next_record()? {
            return Err(ReadError::Parse {
                path: table.path().to_path_buf(),
                line,
                column: 1,
                message: format!("missing the {what} header line"),
            });
        }
        // A blank header line is a header line without a value.
        let (column, first) = if table.line() == line { (table.column(0), &table.record()[0]) } else { (1, "") };
        let at = |message: String| ReadError::Parse { path: table.path().to_path_buf(), line, column, message };
        let value = first.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
        let value = value.ok_or_else(|| at(format!("expected the {what} as a positive number, found `{first}`")))?;
        bound.check(value).map_err(|why| at(format!("the {what} {why}")))
    };
    let start = header(1, "start time (unix seconds)", bounds::UNIX_TIME_S)?;
    let rate = header(2, "sample rate (Hz)", bounds::SAMPLE_RATE_HZ)?;
    Ok((start, rate))
}

/// Parse one E4 file into its channels and the number of rows skipped as gaps.
fn parse_file(
    source: impl Read,
    path: &Path,
    file: &E4File,
    on_bad_row: OnBadRow,
) -> Result<(Vec<RecordedChannel>, u64), ReadError> {
    let n = file.columns.len();
    let mut table = CsvTable::new(source, path, Separator::Comma)?;
    let (start, rate) = read_headers(&mut table)?;
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
    while table.next_record()? {
        let record = table.record();
        let mut bad: Option<(usize, String)> = None;
        for (i, f) in record.iter().enumerate() {
            if i == n {
                bad = Some((table.column(i), format!("more than {n} values in a row")));
                break;
            }
            match f.parse::<f32>() {
                Ok(v) => vals[i] = v * file.scale,
                Err(_) => {
                    bad = Some((table.column(i), format!("`{f}` is not a number")));
                    break;
                }
            }
        }
        if bad.is_none() && record.len() < n {
            bad = Some((table.end_column(), format!("row has {} values, expected {n} (truncated row?)", record.len())));
        }
        if let Some((column, message)) = bad {
            match on_bad_row {
                OnBadRow::Error => return Err(table.error(column, message)),
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

    fn parse(
        text: &str,
        name: &str,
        file: usize,
        on_bad_row: OnBadRow,
    ) -> Result<(Vec<RecordedChannel>, u64), ReadError> {
        parse_file(text.as_bytes(), Path::new(name), &E4_FILES[file], on_bad_row)
    }

    #[test]
    fn e4_file_headers_rates_and_scale() {
        let text = "1644227574.000000, 1644227574.000000, 1644227574.000000\n32.000000, 32.000000, 32.000000\n64,0,-32\n32,16,0\n";
        let (chans, skipped) = parse(text, "ACC.csv", 1, OnBadRow::Error).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(chans.len(), 3);
        assert_eq!(chans[0].spec.rate_hz, 32.0);
        assert_eq!(chans[0].segments[0].start_time, 1644227574.0);
        assert_eq!(chans[0].segments[0].samples, vec![1.0, 0.5]);
        assert_eq!(chans[2].segments[0].samples, vec![-0.5, 0.0]);
    }

    #[test]
    fn e4_truncated_last_row_is_located_or_skipped() {
        assert!(parse("100\n4\n1.0\n2.0\n3.", "EDA.csv", 2, OnBadRow::Error).is_ok(), "`3.` is a number");
        let text = "100\n4\n1.0\n2.0\n3.0\n-\n5.0\n";
        let e = parse(text, "EDA.csv", 2, OnBadRow::Error).unwrap_err();
        assert!(e.to_string().starts_with("EDA.csv:6:1:"), "{e}");
        let (chans, skipped) = parse(text, "EDA.csv", 2, OnBadRow::Skip).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(chans[0].segments.len(), 2);
        assert_eq!(chans[0].segments[1], Segment { start_time: 101.0, samples: vec![5.0] });
    }

    #[test]
    fn e4_bad_header_names_the_line() {
        let e = parse("abc\n4\n1\n", "EDA.csv", 2, OnBadRow::Error).unwrap_err();
        assert!(e.to_string().starts_with("EDA.csv:1:1: expected the start time"), "{e}");
        let e = parse("100\n\n4\n1\n", "EDA.csv", 2, OnBadRow::Error).unwrap_err();
        assert!(
            e.to_string().starts_with("EDA.csv:2:1: expected the sample rate (Hz) as a positive number, found ``"),
            "{e}"
        );
        let e = parse("100\n4\n1,2\n", "EDA.csv", 2, OnBadRow::Error).unwrap_err();
        assert!(e.to_string().starts_with("EDA.csv:3:3: more than 1 values"), "{e}");
    }
}
