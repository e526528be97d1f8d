//! Splitting a byte stream into records that end at a delimiter byte (a newline, COBS's 0x00),
//! with a bounded buffer: a record longer than the bound is one decode error and is discarded up
//! to the next delimiter. Shared by the line and framed decoders.

use super::Decoded;

/// Bounded record assembly across `push` calls.
pub(crate) struct Delimited {
    delimiter: u8,
    max: usize,
    /// The record being assembled (at most `max` bytes).
    buf: Vec<u8>,
    /// The record being assembled passed `max`: discard up to the next delimiter.
    overflow: bool,
    /// No delimiter yet on this connection.
    first: bool,
}

impl Delimited {
    pub(crate) fn new(delimiter: u8, max: usize) -> Self {
        Delimited { delimiter, max, buf: Vec::with_capacity(max), overflow: false, first: true }
    }

    /// Split `bytes`; `record(bytes, first, out)` gets each complete record without its
    /// delimiter, `first` telling whether it is the connection's first (possibly partial) one.
    /// Records that fit in `bytes` are passed in place, without a copy.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Decoded, mut record: impl FnMut(&[u8], bool, &mut Decoded)) {
        let mut rest = bytes;
        while let Some(end) = memchr::memchr(self.delimiter, rest) {
            let tail = &rest[..end];
            rest = &rest[end + 1..];
            let first = std::mem::replace(&mut self.first, false);
            if self.buf.is_empty() && !self.overflow && tail.len() <= self.max {
                record(tail, first, out);
                continue;
            }
            self.append(tail, out);
            if !std::mem::replace(&mut self.overflow, false) {
                record(&self.buf, first, out);
            }
            self.buf.clear();
        }
        self.append(rest, out);
    }

    fn append(&mut self, part: &[u8], out: &mut Decoded) {
        if self.overflow {
            return;
        }
        if self.buf.len() + part.len() > self.max {
            self.overflow = true;
            self.buf.clear();
            out.decode_errors += 1;
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    /// The stream ended: drop a partial record; true if `counts` says it is an error (an
    /// overflowing one was counted already).
    pub(crate) fn finish(&mut self, counts: impl Fn(&[u8]) -> bool) -> bool {
        let held = !self.overflow && !self.buf.is_empty() && counts(&self.buf);
        self.buf.clear();
        self.overflow = false;
        held
    }

    /// A new connection.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.overflow = false;
        self.first = true;
    }

    /// Bytes the buffer can hold without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}
