//! Empatica E4 export folders: `BVP.csv`, `ACC.csv`, `EDA.csv`, `TEMP.csv` (each optionally
//! `.gz`). Each file is a CSV without a header row: line 1 holds the start time (unix seconds)
//! per column, line 2 the rate (Hz) per column, then one row of samples per sample time.

use super::config::OnBadRow;
use super::csv_table::{CsvTable, Separator};
use super::recording::{ReadError, RecordedChannel, Recording};
use super::stream::{drain, RecordingStream, Row, RowStream, Rows, SampleSource};
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

/// Read an E4 export folder whole.
pub fn load(dir: &Path, on_bad_row: OnBadRow) -> Result<Recording, ReadError> {
    open(dir, on_bad_row)?.into_recording()
}

/// Open an E4 export folder as a stream: one source per signal file, read row by row.
pub fn open(dir: &Path, on_bad_row: OnBadRow) -> Result<RecordingStream, ReadError> {
    let mut notes = Vec::new();
    let mut sources: Vec<Box<dyn SampleSource + Send>> = Vec::new();
    for (file, path) in files(dir, &mut notes)? {
        let mut source = open_file(super::csv_table::open(&path)?, &path, file, on_bad_row)?;
        if source.next_time()?.is_none() {
            notes.push(format!("{}: the two header lines and no sample; that signal is empty", path.display()));
        }
        sources.push(Box::new(source));
    }
    RecordingStream::new(sources, notes)
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

fn parse_file(
    source: impl Read,
    path: &Path,
    file: &'static E4File,
    on_bad_row: OnBadRow,
) -> Result<(Vec<RecordedChannel>, u64), ReadError> {
    let mut stream = open_file(source, path, file, on_bad_row)?;
    let channels = drain(&mut stream)?;
    Ok((channels, stream.skipped_rows()))
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

/// One E4 file as a stream of its rows, after its two header lines.
fn open_file<R: Read>(
    source: R,
    path: &Path,
    file: &'static E4File,
    on_bad_row: OnBadRow,
) -> Result<RowStream<E4Rows<R>>, ReadError> {
    let mut table = CsvTable::new(source, path, Separator::Comma)?;
    let (start, rate) = read_headers(&mut table)?;
    let specs = file.columns.iter().map(|name| ChannelSpec::new(*name, file.modality, file.unit, rate)).collect();
    Ok(RowStream::new(E4Rows { table, file, start, rate, row_index: 0, on_bad_row }, specs))
}

/// The sample rows of one E4 file: row `i` was sampled at `start + i / rate`.
struct E4Rows<R: Read> {
    table: CsvTable<R>,
    file: &'static E4File,
    start: f64,
    rate: f64,
    /// Sample index since `start`, counting skipped rows.
    row_index: usize,
    on_bad_row: OnBadRow,
}

impl<R: Read> E4Rows<R> {
    /// Parse the current record into `values`; a malformed one gives its column and why.
    fn parse(&self, values: &mut [f32]) -> Result<(), (usize, String)> {
        let (table, n) = (&self.table, self.file.columns.len());
        let record = table.record();
        for (i, f) in record.iter().enumerate() {
            if i == n {
                return Err((table.column(i), format!("more than {n} values in a row")));
            }
            let v = f.parse::<f32>().map_err(|_| (table.column(i), format!("`{f}` is not a number")))?;
            values[i] = v * self.file.scale;
        }
        if record.len() < n {
            return Err((
                table.end_column(),
                format!("row has {} values, expected {n} (truncated row?)", record.len()),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Rows for E4Rows<R> {
    fn next_row(&mut self, values: &mut [f32]) -> Result<Option<Row>, ReadError> {
        if !self.table.next_record()? {
            return Ok(None);
        }
        let t = self.start + self.row_index as f64 / self.rate;
        self.row_index += 1;
        match self.parse(values) {
            Ok(()) => Ok(Some(Row::At(t))),
            Err(_) if self.on_bad_row == OnBadRow::Skip => Ok(Some(Row::Skipped)),
            Err((column, message)) => Err(self.table.error(column, message)),
        }
    }

    fn error_at_row(&self, message: String) -> ReadError {
        self.table.error(1, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::replay::Segment;

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
