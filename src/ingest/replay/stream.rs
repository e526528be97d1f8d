//! A recording read a piece at a time. The player asks for the samples before a time and pushes
//! them; only those are in memory, so a replay's memory does not grow with the recording's length.
//!
//! - [`SampleSource`]: channels that yield their samples in time order ([`RowStream`] over a
//!   text table's rows, [`InMemory`] over a [`Recording`] already read).
//! - [`RecordingStream`]: the sources of one recording side by side (an E4 folder is one per
//!   file), with what is worth telling the user about how they line up.
//!
//! [`RecordingStream::into_recording`] reads everything, for the tools that need a whole
//! recording (`eval`, `features`).

use super::recording::{ReadError, RecordedChannel, Recording, Segment};
use crate::signal::ChannelSpec;

/// Channels that yield their samples in time order, a piece at a time.
pub trait SampleSource {
    fn specs(&self) -> &[ChannelSpec];

    /// Time of the next unread sample; `None` once every sample was read.
    fn next_time(&mut self) -> Result<Option<f64>, ReadError>;

    /// Append every unread sample before `t_end` to `out` (one list per channel): onto a
    /// channel's last segment when it follows that segment without a gap, else as a new segment.
    fn read_before(&mut self, t_end: f64, out: &mut [Vec<Segment>]) -> Result<(), ReadError>;

    /// Malformed rows dropped so far under `on_bad_row = "skip"`.
    fn skipped_rows(&self) -> u64;

    /// What reading found worth telling the user once it is over (a file cut short).
    fn end_notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Read what is left of `source` into whole channels.
pub fn drain(source: &mut impl SampleSource) -> Result<Vec<RecordedChannel>, ReadError> {
    let mut segments = vec![Vec::new(); source.specs().len()];
    source.read_before(f64::INFINITY, &mut segments)?;
    Ok(source
        .specs()
        .iter()
        .cloned()
        .zip(segments)
        .map(|(spec, segments)| RecordedChannel { spec, segments })
        .collect())
}

/// What a row reader found in one data row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Row {
    /// A sample time; the row's values are in the caller's buffer.
    At(f64),
    /// A malformed row dropped under `on_bad_row = "skip"`; it leaves a gap.
    Skipped,
}

/// A table's data rows, one sample time each (E4 files, generic CSV).
pub trait Rows {
    /// The next data row, its values written to `values` (one per channel, scaled); `None` at
    /// the end.
    fn next_row(&mut self, values: &mut [f32]) -> Result<Option<Row>, ReadError>;

    /// An error about the row [`Rows::next_row`] returned last, at its place in the file.
    fn error_at_row(&self, message: String) -> ReadError;
}

/// Rows cut into gap-free segments: a row continues the segment when it comes one period after
/// the previous row (within half a period); a skipped row or a jump in time starts a new one.
pub struct RowStream<R> {
    rows: R,
    specs: Vec<ChannelSpec>,
    period: f64,
    /// The values of the row at `pending`, read but not yet handed out.
    values: Vec<f32>,
    pending: Option<f64>,
    ended: bool,
    /// Time the next row has when it continues the current segment (one period after this row).
    expected_next: Option<f64>,
    /// The current segment's first row time and the rows in it so far.
    segment: (f64, u64),
    skipped: u64,
}

impl<R: Rows> RowStream<R> {
    /// `specs` all share one rate: the rows' period.
    pub fn new(rows: R, specs: Vec<ChannelSpec>) -> Self {
        let period = specs.first().map_or(1.0, ChannelSpec::period_s);
        let values = vec![0.0; specs.len()];
        RowStream {
            rows,
            specs,
            period,
            values,
            pending: None,
            ended: false,
            expected_next: None,
            segment: (0.0, 0),
            skipped: 0,
        }
    }

    fn peek(&mut self) -> Result<Option<f64>, ReadError> {
        while self.pending.is_none() && !self.ended {
            match self.rows.next_row(&mut self.values)? {
                None => self.ended = true,
                Some(Row::Skipped) => {
                    self.skipped += 1;
                    self.expected_next = None;
                }
                Some(Row::At(t)) => {
                    if let Some(expected) = self.expected_next.filter(|e| t < e - 0.5 * self.period) {
                        let previous = expected - self.period;
                        return Err(self
                            .rows
                            .error_at_row(format!("time goes backwards: {t:.6} s after a row at {previous:.6} s")));
                    }
                    self.pending = Some(t);
                }
            }
        }
        Ok(self.pending)
    }
}

impl<R: Rows> SampleSource for RowStream<R> {
    fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    fn next_time(&mut self) -> Result<Option<f64>, ReadError> {
        self.peek()
    }

    fn read_before(&mut self, t_end: f64, out: &mut [Vec<Segment>]) -> Result<(), ReadError> {
        while let Some(t) = self.peek()? {
            if t >= t_end {
                break;
            }
            let continues = self.expected_next.is_some_and(|e| (t - e).abs() < 0.5 * self.period);
            // Where the segment's own clock (its first row's time + n periods) puts this row,
            // multiplied out as a whole read does, not summed (which drifts).
            if !continues {
                self.segment = (t, 0);
            }
            let on_clock = self.segment.0 + self.segment.1 as f64 * self.period;
            for (segments, &v) in out.iter_mut().zip(&self.values) {
                match segments.last_mut() {
                    Some(segment) if continues => segment.samples.push(v),
                    // A segment continued in a new piece starts on the segment's clock, as a
                    // whole read would place it, not at the row's own (jittered) time.
                    _ => segments.push(Segment { start_time: on_clock, samples: vec![v] }),
                }
            }
            self.expected_next = Some(t + self.period);
            self.segment.1 += 1;
            self.pending = None;
        }
        Ok(())
    }

    fn skipped_rows(&self) -> u64 {
        self.skipped
    }
}

/// A recording already in memory (WFDB records, whose signal files are binary frames).
pub struct InMemory {
    channels: Vec<RecordedChannel>,
    specs: Vec<ChannelSpec>,
    /// Per channel: the segment and the sample in it to read next.
    cursors: Vec<(usize, usize)>,
    skipped: u64,
}

impl InMemory {
    pub fn new(recording: Recording) -> Self {
        let specs = recording.channels.iter().map(|c| c.spec.clone()).collect();
        let cursors = vec![(0, 0); recording.channels.len()];
        InMemory { channels: recording.channels, specs, cursors, skipped: recording.skipped_rows }
    }
}

impl SampleSource for InMemory {
    fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    fn next_time(&mut self) -> Result<Option<f64>, ReadError> {
        Ok(self
            .channels
            .iter()
            .zip(&self.cursors)
            .filter_map(|(c, &(segment, index))| {
                c.segments.get(segment).map(|s| s.start_time + index as f64 * c.spec.period_s())
            })
            .min_by(f64::total_cmp))
    }

    fn read_before(&mut self, t_end: f64, out: &mut [Vec<Segment>]) -> Result<(), ReadError> {
        for ((channel, (segment, index)), out) in self.channels.iter().zip(&mut self.cursors).zip(out) {
            let period = channel.spec.period_s();
            while let Some(s) = channel.segments.get(*segment) {
                // Samples of this segment strictly before t_end.
                let until = (((t_end - s.start_time) / period).ceil().max(0.0) as usize).min(s.samples.len());
                if until > *index {
                    let start_time = s.start_time + *index as f64 * period;
                    out.push(Segment { start_time, samples: s.samples[*index..until].to_vec() });
                    *index = until;
                }
                if *index < s.samples.len() {
                    break;
                }
                (*segment, *index) = (*segment + 1, 0);
            }
        }
        Ok(())
    }

    fn skipped_rows(&self) -> u64 {
        self.skipped
    }
}

/// The sources of one recording, their channels side by side in order.
pub struct RecordingStream {
    parts: Vec<Part>,
    specs: Vec<ChannelSpec>,
    /// Things worth telling the user found while opening (a missing file, misaligned starts).
    pub notes: Vec<String>,
}

struct Part {
    source: Box<dyn SampleSource + Send>,
    /// Time of the first sample and just past the last one read so far.
    span: Option<(f64, f64)>,
}

impl RecordingStream {
    /// Put `sources` side by side; `notes` are what opening them found. Reads the first row of
    /// each source to say which start well after the others.
    pub fn new(sources: Vec<Box<dyn SampleSource + Send>>, mut notes: Vec<String>) -> Result<Self, ReadError> {
        let mut parts = Vec::new();
        let mut specs = Vec::new();
        for mut source in sources {
            specs.extend_from_slice(source.specs());
            let span = source.next_time()?.map(|t| (t, t));
            parts.push(Part { source, span });
        }
        let starts = parts.iter().filter_map(|p| Some((p.name(), p.span?.0)));
        if let Some((first, start)) = starts.clone().min_by(|a, b| a.1.total_cmp(&b.1)) {
            for (name, s) in starts.filter(|(_, s)| s - start > 1.0) {
                notes.push(format!(
                    "channel `{name}` starts {:.0} s after `{first}`: are these files from one session?",
                    s - start
                ));
            }
        }
        Ok(RecordingStream { parts, specs, notes })
    }

    /// A recording already in memory as a stream.
    pub fn in_memory(recording: Recording) -> Self {
        let notes = recording.notes.clone();
        let specs = recording.channels.iter().map(|c| c.spec.clone()).collect();
        let mut source = InMemory::new(recording);
        let span = source.next_time().ok().flatten().map(|t| (t, t));
        RecordingStream { parts: vec![Part { source: Box::new(source), span }], specs, notes }
    }

    /// Every channel, in order.
    pub fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    /// Time of the earliest unread sample of any channel; `None` at the end of the recording.
    pub fn next_time(&mut self) -> Result<Option<f64>, ReadError> {
        let mut next: Option<f64> = None;
        for part in &mut self.parts {
            if let Some(t) = part.source.next_time()? {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        Ok(next)
    }

    /// Append every unread sample before `t_end` to `out`, one list per channel.
    pub fn read_before(&mut self, t_end: f64, out: &mut [Vec<Segment>]) -> Result<(), ReadError> {
        let mut rest = out;
        for part in &mut self.parts {
            let (mine, others) = rest.split_at_mut(part.source.specs().len().min(rest.len()));
            part.source.read_before(t_end, mine)?;
            let period = part.source.specs().first().map_or(0.0, ChannelSpec::period_s);
            let end = mine.iter().filter_map(|s| s.last()).map(|s| s.start_time + s.samples.len() as f64 * period);
            if let (Some((start, _)), Some(end)) = (part.span, end.max_by(f64::total_cmp)) {
                part.span = Some((start, end));
            }
            rest = others;
        }
        Ok(())
    }

    /// Malformed rows dropped so far under `on_bad_row = "skip"`.
    pub fn skipped_rows(&self) -> u64 {
        self.parts.iter().map(|p| p.source.skipped_rows()).sum()
    }

    /// What the read so far says about how the channels end: one ending a minute or more before
    /// another suggests files from different sessions.
    pub fn end_notes(&self) -> Vec<String> {
        let ends = self.parts.iter().filter_map(|p| Some((p.name(), p.span?.1)));
        let mut notes: Vec<String> = self.parts.iter().flat_map(|p| p.source.end_notes()).collect();
        let Some((last, end)) = ends.clone().max_by(|a, b| a.1.total_cmp(&b.1)) else { return notes };
        notes.extend(
            ends.filter(|(_, e)| end - e > 60.0)
                .map(|(name, e)| format!("channel `{name}` ends {:.0} s before `{last}`", end - e)),
        );
        notes
    }

    /// Read everything left into a whole [`Recording`].
    pub fn into_recording(mut self) -> Result<Recording, ReadError> {
        let mut segments = vec![Vec::new(); self.specs.len()];
        self.read_before(f64::INFINITY, &mut segments)?;
        let mut notes = std::mem::take(&mut self.notes);
        notes.extend(self.end_notes());
        let channels = self.specs.iter().cloned().zip(segments);
        Ok(Recording {
            channels: channels.map(|(spec, segments)| RecordedChannel { spec, segments }).collect(),
            skipped_rows: self.skipped_rows(),
            notes,
        })
    }
}

impl Part {
    fn name(&self) -> &str {
        self.source.specs().first().map_or("?", |s| s.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Modality;

    /// Rows at the given times (`None`: a skipped row), one channel whose value is the row index.
    struct Listed(Vec<Option<f64>>, usize);

    impl Rows for Listed {
        fn next_row(&mut self, values: &mut [f32]) -> Result<Option<Row>, ReadError> {
            let Some(&row) = self.0.get(self.1) else { return Ok(None) };
            values[0] = self.1 as f32;
            self.1 += 1;
            Ok(Some(row.map_or(Row::Skipped, Row::At)))
        }

        fn error_at_row(&self, message: String) -> ReadError {
            ReadError::Parse { path: "t.csv".into(), line: self.1 + 1, column: 1, message }
        }
    }

    fn stream(times: &[Option<f64>]) -> RowStream<Listed> {
        RowStream::new(Listed(times.to_vec(), 0), vec![ChannelSpec::new("x", Modality::Ecg, "mV", 10.0)])
    }

    #[test]
    fn rows_become_segments_split_at_gaps_and_skips_in_any_pieces() {
        let times = [Some(0.0), Some(0.1), Some(0.2), Some(5.0), None, Some(5.2), Some(5.3)];
        let whole = drain(&mut stream(&times)).unwrap().remove(0).segments;
        assert_eq!(
            whole.iter().map(|s| (s.start_time, s.samples.len())).collect::<Vec<_>>(),
            [(0.0, 3), (5.0, 1), (5.2, 2)]
        );
        // Read in 0.15 s pieces, the same samples with the same times come out.
        let mut s = stream(&times);
        let mut got = Vec::new();
        let mut t = 0.0;
        while let Some(next) = s.next_time().unwrap() {
            assert!(next >= t - 1e-9);
            t += 0.15;
            let mut out = vec![Vec::new()];
            s.read_before(t, &mut out).unwrap();
            got.extend(out.remove(0).into_iter().flat_map(|seg| {
                seg.samples.into_iter().enumerate().map(move |(i, v)| (seg.start_time + i as f64 * 0.1, v))
            }));
        }
        let flat: Vec<(f64, f32)> = whole
            .iter()
            .flat_map(|seg| seg.samples.iter().enumerate().map(move |(i, v)| (seg.start_time + i as f64 * 0.1, *v)))
            .collect();
        assert_eq!(got.len(), flat.len());
        for (a, b) in got.iter().zip(&flat) {
            assert!((a.0 - b.0).abs() < 1e-9 && a.1 == b.1, "{a:?} vs {b:?}");
        }
        assert_eq!(s.skipped_rows(), 1);
    }

    #[test]
    fn jittered_rows_read_in_pieces_keep_the_segment_clock_a_whole_read_gives() {
        let times: Vec<Option<f64>> =
            (0..50).map(|i| Some(i as f64 * 0.1 + if i % 3 == 1 { 0.02 } else { 0.0 })).collect();
        let whole = drain(&mut stream(&times)).unwrap().remove(0).segments;
        assert_eq!(whole.len(), 1);
        let mut s = stream(&times);
        let mut t = 0.0;
        while s.next_time().unwrap().is_some() {
            t += 0.33;
            let mut out = vec![Vec::new()];
            s.read_before(t, &mut out).unwrap();
            for piece in &out[0] {
                let n = (piece.samples[0] as usize) as f64; // each value is its row index
                assert!((piece.start_time - (whole[0].start_time + n * 0.1)).abs() < 1e-9, "{piece:?}");
            }
        }
    }

    #[test]
    fn time_going_backwards_is_an_error_at_the_row() {
        let e = drain(&mut stream(&[Some(1.0), Some(1.1), Some(0.5)])).unwrap_err().to_string();
        assert_eq!(e, "t.csv:4:1: time goes backwards: 0.500000 s after a row at 1.100000 s");
    }

    #[test]
    fn parts_that_start_or_end_apart_are_noted() {
        let a = stream(&(0..1000).map(|i| Some(i as f64 * 0.1)).collect::<Vec<_>>());
        let b = RowStream::new(
            Listed(vec![Some(30.0), Some(30.1)], 0),
            vec![ChannelSpec::new("y", Modality::Eda, "uS", 10.0)],
        );
        let s = RecordingStream::new(vec![Box::new(a), Box::new(b)], Vec::new()).unwrap();
        assert_eq!(s.notes, ["channel `y` starts 30 s after `x`: are these files from one session?"]);
        let rec = s.into_recording().unwrap();
        assert_eq!(rec.notes[1], "channel `y` ends 70 s before `x`");
        assert_eq!(rec.total_samples(), 1002);
    }
}
