//! The one CSV reader every text format here goes through: generic CSV recordings, Empatica E4
//! files, and the `eval` labels file. Fields are split and unquoted by the `csv` crate (quoted
//! fields, CRLF, a UTF-8 BOM); this module adds what the crate does not give: the 1-based line of
//! each record (blank lines counted, as an editor shows them), the character column of a field
//! for error messages, and the rule that a line holding only whitespace is no record.

use super::recording::ReadError;
use std::io::{BufRead, BufReader, Chain, Cursor, Read};
use std::path::{Path, PathBuf};

/// The longest line a table accepts. A physiological CSV row is a few hundred bytes and an E4
/// header line a few dozen; a line past this is not such a file (or is corrupt), and reading on
/// would only grow memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

fn line_too_long() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a line is longer than {MAX_LINE_BYTES} bytes"))
}

/// How the fields of a table are separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    /// Always `,` (E4 files, labels).
    Comma,
    /// The most frequent of `,` `\t` `;` in the first non-blank line (generic recordings).
    Sniff,
}

/// The separator a header line suggests: the most frequent of `,` `\t` `;` (on a tie the later
/// of them, which only matters for a one-column header).
pub fn detect_separator(header: &str) -> u8 {
    [b',', b'\t', b';'].into_iter().max_by_key(|&c| header.bytes().filter(|&b| b == c).count()).unwrap_or(b',')
}

/// Open a file for reading, transparently gunzipping `*.gz`.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>, ReadError> {
    let file = std::fs::File::open(path).map_err(|source| ReadError::Io { path: path.to_path_buf(), source })?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Ok(Box::new(file))
    }
}

/// The bytes a table reads: what was consumed to find the separator, then the rest.
type Source<R> = Chain<Cursor<Vec<u8>>, BufReader<R>>;

/// A CSV table read record by record. Only non-blank records are returned; each knows its line
/// and can locate its fields in the raw text.
pub struct CsvTable<R: Read> {
    reader: ::csv::Reader<Keep<Source<R>>>,
    record: ::csv::StringRecord,
    path: PathBuf,
    /// Stream offset of the current record's first byte (blank lines before it excluded).
    start: u64,
    end: u64,
    line: usize,
    separator: u8,
}

impl<R: Read> CsvTable<R> {
    /// Read `source` (named `path` in errors). A UTF-8 BOM at the start is dropped.
    pub fn new(source: R, path: &Path, separator: Separator) -> Result<Self, ReadError> {
        let io = |source| ReadError::Io { path: path.to_path_buf(), source };
        let mut source = BufReader::new(source);
        // Read up to the first non-blank line: it decides the separator. Those bytes are then
        // read again by the csv reader, so stream offsets stay those of the file.
        let mut head = Vec::new();
        loop {
            let from = head.len();
            let room = (MAX_LINE_BYTES + 1) as u64;
            if (&mut source).take(room).read_until(b'\n', &mut head).map_err(io)? == 0 {
                break;
            }
            if head.len() - from > MAX_LINE_BYTES {
                return Err(io(line_too_long()));
            }
            if from == 0 && head.starts_with("\u{feff}".as_bytes()) {
                head.drain(..3);
            }
            if !head[from.min(head.len())..].trim_ascii().is_empty() {
                break;
            }
        }
        let separator = match separator {
            Separator::Comma => b',',
            Separator::Sniff => {
                let last = head.iter().rev().skip(1).position(|&b| b == b'\n').map_or(0, |p| head.len() - 1 - p);
                detect_separator(&String::from_utf8_lossy(&head[last..]))
            }
        };
        let reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(separator)
            .trim(::csv::Trim::All)
            .from_reader(Keep { inner: Cursor::new(head).chain(source), kept: Vec::new(), kept_from: 0 });
        Ok(CsvTable {
            reader,
            record: ::csv::StringRecord::new(),
            path: path.to_path_buf(),
            start: 0,
            end: 0,
            line: 0,
            separator,
        })
    }

    /// Advance to the next record that is not blank; `false` at the end of the file.
    pub fn next_record(&mut self) -> Result<bool, ReadError> {
        loop {
            // Bytes before the current record are never looked at again.
            self.reader.get_mut().forget_before(self.start);
            let more = match self.reader.read_record(&mut self.record) {
                Ok(more) => more,
                Err(e) => return Err(self.csv_error(e)),
            };
            if !more {
                return Ok(false);
            }
            let pos = self.record.position().expect("the csv reader sets record positions");
            let (start, line) = (pos.byte(), pos.line() as usize);
            self.end = self.reader.position().byte();
            // The csv reader skips empty lines inside a record's span; step over them.
            let raw = self.reader.get_ref().since(start, self.end);
            let blank = raw.iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
            self.line = line + raw[..blank].iter().filter(|&&b| b == b'\n').count();
            self.start = start + blank as u64;
            if !raw[blank..].trim_ascii().is_empty() {
                return Ok(true);
            }
        }
    }

    /// The current record's fields, unquoted and trimmed.
    pub fn record(&self) -> &::csv::StringRecord {
        &self.record
    }

    /// The file the table reads, as errors name it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based line where the current record starts.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based character column of the first non-blank character of field `index`, or the
    /// column just past the record's first line when it has no such field.
    pub fn column(&self, index: usize) -> usize {
        #[derive(PartialEq)]
        enum State {
            Start,
            Unquoted,
            Quoted,
            AfterQuote,
        }
        let raw = String::from_utf8_lossy(self.reader.get_ref().since(self.start, self.end));
        let sep = self.separator as char;
        let (mut field, mut state) = (0, State::Start);
        // The same states as the csv crate's parser: a quote opens a quoted field only as the
        // field's first character.
        for (col, c) in raw.chars().enumerate() {
            let ends_line = (c == '\n' || c == '\r') && state != State::Quoted;
            if field == index && (!c.is_whitespace() || c == sep || ends_line) {
                return col + 1;
            }
            if ends_line {
                return col + 1;
            }
            state = match (state, c) {
                (State::Quoted, '"') => State::AfterQuote,
                (State::Quoted, _) => State::Quoted,
                (State::Start, '"') | (State::AfterQuote, '"') => State::Quoted,
                (_, c) if c == sep => {
                    field += 1;
                    State::Start
                }
                _ => State::Unquoted,
            };
        }
        raw.chars().count() + 1
    }

    /// The column just past the current record's first line.
    pub fn end_column(&self) -> usize {
        let raw = String::from_utf8_lossy(self.reader.get_ref().since(self.start, self.end));
        raw.lines().next().unwrap_or("").chars().count() + 1
    }

    /// A parse error at the current record's line and `column`.
    pub fn error(&self, column: usize, message: impl Into<String>) -> ReadError {
        ReadError::Parse { path: self.path.clone(), line: self.line, column, message: message.into() }
    }

    fn csv_error(&self, e: ::csv::Error) -> ReadError {
        let line = e.position().map_or(self.line + 1, |p| p.line() as usize);
        match e.into_kind() {
            ::csv::ErrorKind::Io(source) => ReadError::Io { path: self.path.clone(), source },
            ::csv::ErrorKind::Utf8 { err, .. } => ReadError::Parse {
                path: self.path.clone(),
                line,
                column: 1,
                message: format!("field {} is not UTF-8 text", err.field() + 1),
            },
            other => ReadError::Parse { path: self.path.clone(), line, column: 1, message: format!("{other:?}") },
        }
    }
}

impl CsvTable<Box<dyn Read + Send>> {
    /// Open a file (plain or `.gz`) as a table.
    pub fn open(path: &Path, separator: Separator) -> Result<Self, ReadError> {
        CsvTable::new(open(path)?, path, separator)
    }
}

/// A reader that keeps the bytes it hands out, from the current record on, so a field can be
/// located in the raw text after the csv crate has unquoted it.
struct Keep<R> {
    inner: R,
    kept: Vec<u8>,
    /// Stream offset of `kept[0]`.
    kept_from: u64,
}

impl<R> Keep<R> {
    /// The kept bytes between two stream offsets.
    fn since(&self, start: u64, end: u64) -> &[u8] {
        let from = (start.saturating_sub(self.kept_from) as usize).min(self.kept.len());
        let to = (end.saturating_sub(self.kept_from) as usize).clamp(from, self.kept.len());
        &self.kept[from..to]
    }

    /// Drop kept bytes before `offset`, in large steps so the cost stays linear.
    fn forget_before(&mut self, offset: u64) {
        let n = offset.saturating_sub(self.kept_from) as usize;
        if n >= 1 << 16 && n <= self.kept.len() {
            self.kept.drain(..n);
            self.kept_from = offset;
        }
    }
}

impl<R: Read> Read for Keep<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Kept bytes are the current record plus under 64 KiB before it (see `forget_before`)
        // and one read ahead: past that, the current record is longer than any line may be.
        if self.kept.len() > MAX_LINE_BYTES + (1 << 16) + buf.len() {
            return Err(line_too_long());
        }
        let n = self.inner.read(buf)?;
        self.kept.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(usize, Vec<String>)> {
        let mut t = CsvTable::new(text.as_bytes(), Path::new("t.csv"), Separator::Sniff).unwrap();
        let mut out = Vec::new();
        while t.next_record().unwrap() {
            out.push((t.line(), t.record().iter().map(String::from).collect()));
        }
        out
    }

    #[test]
    fn lines_count_blank_and_whitespace_lines_which_are_no_records() {
        let got = rows("\u{feff}a;b\n\n  \n1;2\r\n\r\n\t\n3;\"x;y\"\n");
        assert_eq!(got[0], (1, vec!["a".to_string(), "b".into()]));
        assert_eq!(got[1], (4, vec!["1".to_string(), "2".into()]));
        assert_eq!(got[2], (7, vec!["3".to_string(), "x;y".into()]));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn columns_are_characters_of_the_raw_line() {
        let mut t = CsvTable::new("h,i,j\n\n é,\"q,r\" ,x7".as_bytes(), Path::new("t.csv"), Separator::Comma).unwrap();
        assert!(t.next_record().unwrap() && t.next_record().unwrap());
        assert_eq!(t.line(), 3);
        assert_eq!(t.record().iter().collect::<Vec<_>>(), ["é", "q,r", "x7"]);
        assert_eq!((t.column(0), t.column(1), t.column(2), t.column(3)), (2, 4, 11, 13));
        assert_eq!(t.end_column(), 13);
        assert_eq!(t.error(11, "bad").to_string(), "t.csv:3:11: bad");
    }

    #[test]
    fn long_inputs_keep_locating_fields() {
        let text: String = (0..20_000).map(|i| format!("{i},{}\n", i * 2)).collect();
        let mut t = CsvTable::new(text.as_bytes(), Path::new("t.csv"), Separator::Comma).unwrap();
        let mut n = 0;
        while t.next_record().unwrap() {
            n += 1;
            assert_eq!(t.line(), n);
            assert_eq!(t.column(1), format!("{}", n - 1).len() + 2);
        }
        assert_eq!(n, 20_000);
    }

    #[test]
    fn a_line_longer_than_the_bound_is_an_error_not_a_memory_hog() {
        let header = "a".repeat(MAX_LINE_BYTES + 10);
        let e = CsvTable::new(header.as_bytes(), Path::new("t.csv"), Separator::Sniff).err().expect("refused");
        assert!(e.to_string().contains("longer than"), "{e}");
        let row = format!("a,b\n1,{}\n", "2".repeat(3 * MAX_LINE_BYTES));
        let mut t = CsvTable::new(row.as_bytes(), Path::new("t.csv"), Separator::Comma).unwrap();
        assert!(t.next_record().unwrap());
        let e = t.next_record().unwrap_err().to_string();
        assert!(e.starts_with("t.csv") && e.contains("longer than"), "{e}");
    }

    #[test]
    fn separator_is_the_most_frequent_of_three() {
        assert_eq!(detect_separator("a\tb\tc,d"), b'\t');
        assert_eq!(detect_separator("a;b,c;d"), b';');
        assert_eq!(detect_separator("a,b"), b',');
    }
}
