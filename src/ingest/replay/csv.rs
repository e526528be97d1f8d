//! Generic CSV recordings: a header row naming the columns, then one row per sample time. The
//! separator is the most frequent of `,` `\t` `;` in the header. Rows are timed by `rate_hz` or
//! by a time column; a malformed row is an error at its line and column, or (`on_bad_row =
//! "skip"`) a counted gap. Also the header sniffing the CLI uses to replay a CSV without a
//! config ([`read_header`], [`auto_channels`]).

use super::config::{CsvChannel, OnBadRow};
use super::csv_table::{CsvTable, Separator};
use super::recording::{ReadError, Recording};
use super::stream::{drain, Row, RowStream, Rows, SampleSource};
use crate::bounds;
use crate::signal::{ChannelSpec, Modality};
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

/// Times from this on (September 2001) in a time column are unix times, not offsets.
const ABSOLUTE_TIME_S: f64 = 1e9;

/// How to read a CSV recording.
pub struct CsvOptions<'a> {
    pub channels: &'a [CsvChannel],
    pub rate_hz: Option<f64>,
    pub time_column: Option<&'a str>,
    pub start_time: f64,
    pub on_bad_row: OnBadRow,
}

/// Rows whose times estimate the rate of a CSV timed by its time column.
const RATE_ESTIMATE_ROWS: usize = 1001;
/// Rows read ahead at most while looking for those (skipped ones included).
const MAX_READ_AHEAD_ROWS: usize = 10 * RATE_ESTIMATE_ROWS;

/// Parse a CSV held in memory. Pure.
pub fn parse_csv(text: &str, path: &Path, opts: &CsvOptions) -> Result<Recording, ReadError> {
    read_csv(text.as_bytes(), path, opts)
}

/// Read a whole CSV recording from `source`, named `path` in errors.
pub fn read_csv(source: impl Read, path: &Path, opts: &CsvOptions) -> Result<Recording, ReadError> {
    let mut stream = open(source, path, opts)?;
    let channels = drain(&mut stream)?;
    Ok(Recording { channels, skipped_rows: stream.skipped_rows(), notes: Vec::new() })
}

/// The channel specs [`read_csv`] would give `source`, reading only the header and the first
/// data row (for a CSV timed by its time column alone, the rows that estimate its rate).
pub fn probe(source: impl Read, path: &Path, opts: &CsvOptions) -> Result<Vec<ChannelSpec>, ReadError> {
    Ok(open(source, path, opts)?.specs().to_vec())
}

/// Open a CSV recording as a stream of its rows: reads the header, the rows that estimate the
/// rate when the time column alone gives it, and the first data row.
pub fn open<R: Read>(source: R, path: &Path, opts: &CsvOptions) -> Result<RowStream<CsvRows<R>>, ReadError> {
    let no_rows =
        || ReadError::Invalid { path: path.to_path_buf(), message: "the file has a header but no data rows".into() };
    let mut table = CsvTable::new(source, path, Separator::Sniff)?;
    let columns = Columns::read(&mut table, opts)?;
    let mut ahead = VecDeque::new();
    if opts.rate_hz.is_none() && columns.time.is_some() {
        let mut accepted = 0;
        // Skipped rows count towards the bound too, so a file of mostly bad rows cannot make
        // this read-ahead grow.
        while accepted < RATE_ESTIMATE_ROWS && ahead.len() < MAX_READ_AHEAD_ROWS {
            let mut values = vec![0f32; columns.wanted.len()];
            let Some(row) = columns.next_row(&mut table, opts.on_bad_row, &mut values)? else { break };
            accepted += usize::from(row.is_some());
            let column = columns.time.map_or(1, |i| table.column(i));
            ahead.push_back(((table.line(), column), row, values));
        }
        if accepted == 0 {
            return Err(no_rows());
        }
    }
    let times: Vec<Option<f64>> = ahead.iter().map(|(_, t, _)| *t).collect();
    let rate = columns.rate(opts, &times, path)?;
    let rows = CsvRows {
        table,
        scales: opts.channels.iter().map(|c| c.scale as f32).collect(),
        columns,
        start_time: opts.start_time,
        period: 1.0 / rate,
        on_bad_row: opts.on_bad_row,
        ahead,
        place: (0, 1),
        row_index: 0,
        checked_time_base: false,
    };
    let mut stream = RowStream::new(rows, specs(opts, rate));
    if stream.next_time()?.is_none() {
        return Err(no_rows());
    }
    Ok(stream)
}

/// A row read ahead: (line, time column's column), its time (`None`: skipped), its raw values.
type AheadRow = ((usize, usize), Option<f64>, Vec<f32>);

/// The data rows of a CSV recording, timed by the time column or by the row index.
pub struct CsvRows<R: Read> {
    table: CsvTable<R>,
    columns: Columns,
    scales: Vec<f32>,
    start_time: f64,
    period: f64,
    on_bad_row: OnBadRow,
    /// Rows read ahead to estimate the rate, handed out before the table's next ones: the
    /// line and time column's column, the time (`None`: skipped) and the raw values.
    ahead: VecDeque<AheadRow>,
    /// Line and time column's column of the row handed out last (0: the table's current row,
    /// found when needed).
    place: (usize, usize),
    /// Data rows handed out so far, skipped ones included.
    row_index: usize,
    checked_time_base: bool,
}

impl<R: Read> Rows for CsvRows<R> {
    fn next_row(&mut self, values: &mut [f32]) -> Result<Option<Row>, ReadError> {
        let row = match self.ahead.pop_front() {
            Some((place, row, ahead)) => {
                values.copy_from_slice(&ahead);
                self.place = place;
                row
            }
            None => match self.columns.next_row(&mut self.table, self.on_bad_row, values)? {
                Some(row) => {
                    // The column is found only if an error needs it (the row is still current).
                    self.place = (self.table.line(), 0);
                    row
                }
                None => return Ok(None),
            },
        };
        let index = self.row_index;
        self.row_index += 1;
        let Some(time) = row else { return Ok(Some(Row::Skipped)) };
        for (v, scale) in values.iter_mut().zip(&self.scales) {
            *v *= scale;
        }
        if self.columns.time.is_none() {
            return Ok(Some(Row::At(self.start_time + index as f64 * self.period)));
        }
        // A time column of unix times is absolute already; a start time on top would move the
        // whole recording decades ahead.
        if !self.checked_time_base && self.start_time != 0.0 && time >= ABSOLUTE_TIME_S {
            return Err(ReadError::Invalid {
                path: self.table.path().to_path_buf(),
                message: format!(
                    "the time column holds unix times (the first is {time}), so start_time = {} would shift them to {:.0}; remove start_time",
                    self.start_time,
                    self.start_time + time
                ),
            });
        }
        self.checked_time_base = true;
        Ok(Some(Row::At(self.start_time + time)))
    }

    fn error_at_row(&self, message: String) -> ReadError {
        let (line, mut column) = self.place;
        if column == 0 {
            column = self.columns.time.map_or(1, |i| self.table.column(i));
        }
        ReadError::Parse { path: self.table.path().to_path_buf(), line, column, message }
    }
}

fn specs(opts: &CsvOptions, rate: f64) -> Vec<ChannelSpec> {
    opts.channels.iter().map(|c| ChannelSpec::new(c.channel_name(), c.modality, c.unit.clone(), rate)).collect()
}

/// Where the wanted columns are in each row.
struct Columns {
    count: usize,
    wanted: Vec<usize>,
    time: Option<usize>,
}

impl Columns {
    /// Read the header row and find the configured columns in it.
    fn read<R: Read>(table: &mut CsvTable<R>, opts: &CsvOptions) -> Result<Columns, ReadError> {
        let path = table.path().to_path_buf();
        let invalid = |message: String| ReadError::Invalid { path: path.clone(), message };
        if !table.next_record()? {
            return Err(invalid("the file is empty; expected a header row naming the columns".into()));
        }
        let names = header_names(table);
        let find = |col: &str| {
            names.iter().position(|n| n.eq_ignore_ascii_case(col)).ok_or_else(|| {
                invalid(format!("no column `{col}` in the header; the columns are: {}", names.join(", ")))
            })
        };
        let wanted = opts.channels.iter().map(|c| find(&c.column)).collect::<Result<_, _>>()?;
        let time = opts.time_column.map(find).transpose()?;
        Ok(Columns { count: names.len(), wanted, time })
    }

    /// The next data row: `Some(time)` (NaN without a time column) with the channels' raw
    /// values in `values`, `None` for a row skipped as a gap; `Ok(None)` at the end.
    fn next_row<R: Read>(
        &self,
        table: &mut CsvTable<R>,
        on_bad_row: OnBadRow,
        values: &mut [f32],
    ) -> Result<Option<Option<f64>>, ReadError> {
        if !table.next_record()? {
            return Ok(None);
        }
        match self.parse_row(table, values) {
            Ok(t) => Ok(Some(Some(t.unwrap_or(f64::NAN)))),
            Err((column, message)) => match on_bad_row {
                OnBadRow::Error => {
                    Err(table.error(column, format!("{message} (set on_bad_row = \"skip\" to drop such rows as gaps)")))
                }
                OnBadRow::Skip => Ok(Some(None)),
            },
        }
    }

    /// Parse the wanted fields of the current row. Errors carry the 1-based column.
    fn parse_row<R: Read>(&self, table: &CsvTable<R>, out: &mut [f32]) -> Result<Option<f64>, (usize, String)> {
        let record = table.record();
        if record.len() < self.count {
            return Err((
                table.end_column(),
                format!("row has {} fields, the header has {} (truncated row?)", record.len(), self.count),
            ));
        }
        // Values past the header's columns belong to no column: a shifted or merged row. Empty
        // ones (a trailing separator) carry nothing and pass.
        if let Some(extra) = (self.count..record.len()).find(|&i| !record[i].is_empty()) {
            return Err((
                table.column(extra),
                format!("row has {} fields, the header has {} (a value in no column)", record.len(), self.count),
            ));
        }
        for (slot, &i) in out.iter_mut().zip(&self.wanted) {
            let f = &record[i];
            *slot = f.parse::<f32>().map_err(|_| (table.column(i), format!("`{f}` is not a number")))?;
        }
        self.time
            .map(|i| {
                let f = &record[i];
                f.parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite())
                    .ok_or_else(|| (table.column(i), format!("time `{f}` is not a number")))
            })
            .transpose()
    }

    /// The sampling rate: configured, or the median spacing of the first accepted row times.
    fn rate(&self, opts: &CsvOptions, rows_time: &[Option<f64>], path: &Path) -> Result<f64, ReadError> {
        let invalid = |message: &str| ReadError::Invalid { path: path.to_path_buf(), message: message.into() };
        match (opts.rate_hz, self.time) {
            (Some(r), _) => Ok(r),
            (None, Some(_)) => {
                let rate = estimate_rate(rows_time)
                    .ok_or_else(|| invalid("cannot infer the sampling rate from the time column; set rate_hz"))?;
                // The estimate is a number from the file: it meets the rule a configured rate meets.
                bounds::SAMPLE_RATE_HZ.check(rate).map_err(|why| {
                    invalid(&format!("the time column's spacing gives a sampling rate that {why}; set rate_hz"))
                })
            }
            (None, None) => Err(invalid("neither rate_hz nor time_column is set")),
        }
    }
}

/// The column names of the table's current record (its header row).
fn header_names<R: Read>(table: &CsvTable<R>) -> Vec<String> {
    table.record().iter().map(|n| n.trim_matches('"').to_string()).collect()
}

fn estimate_rate(times: &[Option<f64>]) -> Option<f64> {
    let ts: Vec<f64> = times.iter().flatten().copied().take(RATE_ESTIMATE_ROWS).collect();
    let mut diffs: Vec<f64> = ts.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_by(f64::total_cmp);
    Some(1.0 / diffs[diffs.len() / 2])
}

/// The column names of a CSV file (plain or `.gz`) as the reader sees them: the first non-blank
/// row, split on the detected separator, unquoted and trimmed. Empty for an empty file.
pub fn read_header(path: &Path) -> Result<Vec<String>, ReadError> {
    let mut table = CsvTable::open(path, Separator::Sniff)?;
    Ok(if table.next_record()? { header_names(&table) } else { Vec::new() })
}

/// Map CSV column names to modalities by the words people use for them; columns no word
/// names are left out.
pub fn auto_channels(header: &[String]) -> Vec<CsvChannel> {
    header
        .iter()
        .filter_map(|col| {
            let l = col.to_ascii_lowercase();
            let (modality, unit) = if l.starts_with("ecg") {
                (Modality::Ecg, "mV")
            } else if l.starts_with("ppg") || l.starts_with("bvp") {
                (Modality::Ppg, "a.u.")
            } else if l.starts_with("eda") || l.starts_with("gsr") {
                (Modality::Eda, "uS")
            } else if l.starts_with("rsp") || l.starts_with("resp") {
                (Modality::Resp, "a.u.")
            } else if l.starts_with("acc") {
                (Modality::Acc, "g")
            } else if l.starts_with("temp") {
                (Modality::Temp, "degC")
            } else {
                return None;
            };
            Some(CsvChannel { column: col.clone(), name: None, modality, unit: unit.into(), scale: 1.0 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::replay::Segment;

    fn ch(column: &str, modality: Modality) -> CsvChannel {
        CsvChannel { column: column.into(), name: None, modality, unit: "a.u.".into(), scale: 1.0 }
    }

    fn opts<'a>(channels: &'a [CsvChannel], on_bad_row: OnBadRow) -> CsvOptions<'a> {
        CsvOptions { channels, rate_hz: Some(10.0), time_column: None, start_time: 100.0, on_bad_row }
    }

    #[test]
    fn a_value_in_no_column_is_an_error_but_a_trailing_separator_is_not() {
        let chans = [ch("ECG", Modality::Ecg)];
        let o = opts(&chans, OnBadRow::Error);
        let e = parse_csv("ECG,EDA\n1,2\n3,4,5\n", Path::new("r.csv"), &o).unwrap_err().to_string();
        assert!(e.starts_with("r.csv:3:5: row has 3 fields, the header has 2"), "{e}");
        let rec = parse_csv("ECG,EDA\n1,2,\n3,4,\n", Path::new("r.csv"), &o).unwrap();
        assert_eq!(rec.channels[0].segments[0].samples, vec![1.0, 3.0]);
    }

    #[test]
    fn unix_times_in_a_time_column_take_no_start_time() {
        let chans = [ch("v", Modality::Eda)];
        let o = CsvOptions { time_column: Some("t"), rate_hz: None, ..opts(&chans, OnBadRow::Error) };
        let e = parse_csv("t,v\n1644227574.0,1\n1644227574.1,2\n", Path::new("r.csv"), &o).unwrap_err().to_string();
        assert!(e.contains("holds unix times") && e.contains("remove start_time"), "{e}");
        let o = CsvOptions { start_time: 0.0, ..o };
        let rec = parse_csv("t,v\n1644227574.0,1\n1644227574.1,2\n", Path::new("r.csv"), &o).unwrap();
        assert_eq!(rec.channels[0].segments[0].start_time, 1644227574.0);
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
    fn quoted_fields_bom_and_semicolons() {
        let chans = [ch("E;G", Modality::Ecg)];
        let text = "\u{feff}\"E;G\";t;x\n\"1.5\";0;\"a;b\"\n2;0.1;c\n";
        let rec = parse_csv(text, Path::new("r.csv"), &opts(&chans, OnBadRow::Error)).unwrap();
        assert_eq!(rec.channels[0].segments[0].samples, vec![1.5, 2.0]);
    }

    #[test]
    fn garbled_value_is_an_error_with_line_and_column() {
        let chans = [ch("ECG", Modality::Ecg), ch("EDA", Modality::Eda)];
        let e = parse_csv("ECG,EDA\n1,2\n3,x7\n", Path::new("r.csv"), &opts(&chans, OnBadRow::Error)).unwrap_err();
        assert_eq!(e.to_string().split(':').take(3).collect::<Vec<_>>(), ["r.csv", "3", "3"], "{e}");
        assert!(e.to_string().contains("`x7` is not a number"));
        // Blank lines count, and the column is in characters.
        let e = parse_csv("ECG,EDA\n\n\"é\",  x7\n", Path::new("r.csv"), &opts(&chans, OnBadRow::Error)).unwrap_err();
        assert!(e.to_string().starts_with("r.csv:3:1: `é` is not a number"), "{e}");
        let e = parse_csv("ECG,EDA\n\n1,  x7\n", Path::new("r.csv"), &opts(&chans, OnBadRow::Error)).unwrap_err();
        assert!(e.to_string().starts_with("r.csv:3:5: `x7`"), "{e}");
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
        let text = "t,v\n0.0,1\n0.1,2\n0.2,3\n1.0,4\n1.1,5\n";
        let rec = parse_csv(text, Path::new("r.csv"), &o).unwrap();
        let segs = &rec.channels[0].segments;
        assert_eq!(segs.len(), 2);
        assert!((rec.channels[0].spec.rate_hz - 10.0).abs() < 1e-6);
        assert_eq!(segs[1].samples, vec![4.0, 5.0]);
        assert!((segs[1].start_time - 101.0).abs() < 1e-9);
        let probed = probe(text.as_bytes(), Path::new("r.csv"), &o).unwrap();
        assert_eq!(probed, rec.channels.iter().map(|c| c.spec.clone()).collect::<Vec<_>>());
    }

    #[test]
    fn time_going_backwards_is_refused() {
        let chans = [ch("v", Modality::Eda)];
        let o = CsvOptions { time_column: Some("t"), rate_hz: Some(10.0), ..opts(&chans, OnBadRow::Error) };
        let e = parse_csv("t,v\n0.0,1\n0.1,2\n0.0,3\n", Path::new("r.csv"), &o).unwrap_err();
        assert!(e.to_string().starts_with("r.csv:4:1: time goes backwards"), "{e}");
        // Past the rows read ahead to estimate the rate, at the time column's place too.
        let o = CsvOptions { time_column: Some("t"), rate_hz: None, ..o };
        let mut text = String::from("v;t\n");
        for i in 0..1100 {
            text.push_str(&format!("{i};{:.1}\n", if i == 1050 { 1.0 } else { i as f64 * 0.1 }));
        }
        let e = parse_csv(&text, Path::new("r.csv"), &o).unwrap_err();
        assert!(e.to_string().starts_with("r.csv:1052:6: time goes backwards"), "{e}");
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
    fn header_words_name_modalities() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(&path, "\u{feff}\n\"ECG_Raw\"\tTime\tGSR\tacc_x;y\n1\t2\t3\t4\n").unwrap();
        let header = read_header(&path).unwrap();
        assert_eq!(header, ["ECG_Raw", "Time", "GSR", "acc_x;y"]);
        let chans = auto_channels(&header);
        let got: Vec<_> = chans.iter().map(|c| (c.column.as_str(), c.modality, c.unit.as_str())).collect();
        assert_eq!(
            got,
            [("ECG_Raw", Modality::Ecg, "mV"), ("GSR", Modality::Eda, "uS"), ("acc_x;y", Modality::Acc, "g")]
        );
    }
}
