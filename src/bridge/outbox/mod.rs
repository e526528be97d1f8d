//! The durable outbox: every message bound for the broker is written here before it is sent and
//! stays until the broker acknowledges it, so an outage, a restart or `kill -9` loses nothing.
//!
//! Storage is append-only segment files (`NNNNNNNNNNNNNNNN.seg` in the outbox directory) of
//! checksummed records ([`record`]): a message when it is accepted, a short "done" record when it
//! is acknowledged, expires or is dropped for room. Opening the outbox reads every segment and
//! keeps an index of the messages not yet done (id → where it is), never their payloads, so
//! memory stays small however long the outage; payloads are read back when they are sent.
//!
//! Why segment files and not an embedded database: the access pattern is a queue (append at the
//! tail, retire at the head) and the guarantee needed is "accepted means written": one `write(2)`
//! per message gives that against a killed process at a few microseconds each; the benches in
//! `benches/outbox.rs` measure append and drain together (see benches/README.md).
//!
//! Durability: [`Outbox::append`] returns once the record is in the kernel (a process killed at
//! any moment after that loses nothing); [`Outbox::sync`] forces it to the disk (`fdatasync`),
//! which the bridge does every [`SYNC_INTERVAL`] and at shutdown, so a power cut loses at most
//! that interval. Done records are batched into the same sync: a crash may resend a message the
//! broker already acknowledged (a QoS 1 duplicate, recognisable by its `seq`), never lose one.
//!
//! Bound: the segment files never grow past `max_bytes`; messages fill it up to three segments
//! (3/8) short, the reserve compaction copies into. To make room, in order: whole segments
//! whose messages are all done are deleted; live messages in the oldest segment are dropped
//! (counted); the oldest segment's durable messages are copied forward into the reserve
//! (compaction), which also brings the next segment, and its live messages, to the front; only
//! when every segment is dense with durable messages are the oldest segment's dropped (a
//! segment's worth, about an eighth of the bound), with an error in the log.
//!
//! Invariants: ids increase in acceptance order and are never reused while a segment holding
//! them exists; messages are offered for sending in id order; only the oldest segment is ever
//! deleted, so a done record is never lost while the message it retires is still on disk.

pub mod record;

use record::{Class, Done, Message, Record, Torn};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the bridge forces the outbox to disk.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// The outbox could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {what}: {source}")]
    Io { path: PathBuf, what: &'static str, source: std::io::Error },
    #[error("outbox {0}: another biofeedd process is using it (its lock file is held)")]
    Locked(PathBuf),
    #[error("a message of {len} bytes cannot fit an outbox segment ({max} bytes, an eighth of outbox_max_mb)")]
    TooLarge { len: u64, max: u64 },
}

/// What the outbox has done since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Messages found on disk, not yet done, when the outbox was opened.
    pub recovered: u64,
    pub appended: u64,
    pub acknowledged: u64,
    /// Live messages that reached their expiry before they could be sent.
    pub expired: u64,
    pub dropped_live: u64,
    pub dropped_durable: u64,
    /// Segments whose tail was unreadable when opened (cut short or damaged).
    pub torn_segments: u64,
}

/// Where a pending message is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u64,
    offset: u64,
    len: u32,
    class: Class,
    created_ms: u64,
    expires_ms: Option<u64>,
}

struct Segment {
    file: File,
    path: PathBuf,
    bytes: u64,
    /// Messages in this segment not yet done.
    pending: usize,
}

/// The outbox of one MQTT client.
pub struct Outbox {
    dir: PathBuf,
    _lock: File,
    max_bytes: u64,
    segment_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    active: u64,
    index: BTreeMap<u64, Entry>,
    next_id: u64,
    /// Messages with ids below this have been offered for sending (in flight).
    cursor: u64,
    done_buffer: Vec<u8>,
    unsynced: bool,
    stats: OutboxStats,
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> OutboxError + 'a {
    move |source| OutboxError::Io { path: path.to_path_buf(), what, source }
}

impl Outbox {
    /// Open (or create) the outbox in `dir`, recovering what an earlier run left there.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Outbox, OutboxError> {
        std::fs::create_dir_all(dir).map_err(io(dir, "cannot create the directory"))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "cannot open the lock file"))?;
        if lock.try_lock().is_err() {
            return Err(OutboxError::Locked(dir.to_path_buf()));
        }
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir, "cannot list the directory"))? {
            let name = entry.map_err(io(dir, "cannot list the directory"))?.file_name();
            let name = name.to_string_lossy();
            // Only names this outbox writes (16 digits): another file is left alone.
            let digits = name.strip_suffix(".seg").filter(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_digit()));
            if let Some(n) = digits.and_then(|n| n.parse::<u64>().ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let mut outbox = Outbox {
            dir: dir.to_path_buf(),
            _lock: lock,
            max_bytes,
            // Several segments fit under the bound, so the oldest can always be retired whole.
            segment_bytes: (max_bytes / 8).clamp(4096, 8 << 20),
            segments: BTreeMap::new(),
            active: 0,
            index: BTreeMap::new(),
            next_id: 1,
            cursor: 0,
            done_buffer: Vec::new(),
            unsynced: false,
            stats: OutboxStats::default(),
        };
        let mut done = Vec::new();
        for (i, &n) in numbers.iter().enumerate() {
            outbox.load_segment(n, i + 1 == numbers.len(), &mut done)?;
        }
        for id in done {
            if let Some(e) = outbox.index.remove(&id) {
                outbox.segments.get_mut(&e.segment).expect("indexed segment").pending -= 1;
            }
        }
        outbox.stats.recovered = outbox.index.len() as u64;
        outbox.collect_empty_segments()?;
        let next = numbers.last().map_or(1, |n| n + 1);
        outbox.start_segment(next)?;
        Ok(outbox)
    }

    /// Read one segment into the index; a torn tail ends it with a warning (and is cut off when it
    /// is the newest segment, where the next run's appends would otherwise follow the damage).
    fn load_segment(&mut self, n: u64, newest: bool, done: &mut Vec<u64>) -> Result<(), OutboxError> {
        let path = self.dir.join(format!("{n:016}.seg"));
        let bytes = std::fs::read(&path).map_err(io(&path, "cannot read a segment"))?;
        let mut at = 0usize;
        let mut pending = 0;
        let torn: Option<Torn> = loop {
            match record::decode(&bytes[at..]) {
                Ok(None) => break None,
                Ok(Some((Record::Message(m), len))) => {
                    let entry = Entry {
                        segment: n,
                        offset: at as u64,
                        len: len as u32,
                        class: m.class,
                        created_ms: m.created_ms,
                        expires_ms: m.expires_ms,
                    };
                    // A compacted copy replaces the original (same id, newer segment); the same id
                    // twice in one segment (damage) counts once.
                    match self.index.insert(m.id, entry).map(|old| old.segment) {
                        Some(old) if old == n => {}
                        Some(old) => {
                            if let Some(s) = self.segments.get_mut(&old) {
                                s.pending -= 1;
                            }
                            pending += 1;
                        }
                        None => pending += 1,
                    }
                    self.next_id = self.next_id.max(m.id + 1);
                    at += len;
                }
                Ok(Some((Record::Done { id, .. }, len))) => {
                    done.push(id);
                    self.next_id = self.next_id.max(id + 1);
                    at += len;
                }
                Err(t) => break Some(t),
            }
        };
        let file =
            OpenOptions::new().read(true).append(true).open(&path).map_err(io(&path, "cannot open a segment"))?;
        if let Some(t) = torn {
            self.stats.torn_segments += 1;
            let lost = bytes.len() - at;
            if newest {
                tracing::warn!(
                    "outbox {}: {t} at byte {at}; cut the last {lost} bytes (a write the process did not finish)",
                    path.display()
                );
                file.set_len(at as u64).map_err(io(&path, "cannot cut a torn tail"))?;
            } else {
                tracing::warn!(
                    "outbox {}: {t} at byte {at}; the last {lost} bytes of this segment are skipped",
                    path.display()
                );
            }
        }
        let bytes = file.metadata().map_err(io(&path, "cannot stat a segment"))?.len();
        self.segments.insert(n, Segment { file, path, bytes, pending });
        Ok(())
    }

    fn start_segment(&mut self, n: u64) -> Result<(), OutboxError> {
        let path = self.dir.join(format!("{n:016}.seg"));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path, "cannot create a segment"))?;
        let bytes = file.metadata().map_err(io(&path, "cannot stat a segment"))?.len();
        self.segments.insert(n, Segment { file, path, bytes, pending: 0 });
        self.active = n;
        self.sync_dir()
    }

    /// Make the folder's list of segments durable (a new or deleted segment file).
    fn sync_dir(&self) -> Result<(), OutboxError> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir, "cannot sync the directory"))
    }

    /// Accept a message: it is on its way to the disk when this returns. `ttl` (live messages)
    /// is how long it stays worth sending.
    pub fn append(
        &mut self,
        class: Class,
        retain: bool,
        topic: &str,
        payload: &[u8],
        ttl: Option<Duration>,
        now_ms: u64,
    ) -> Result<u64, OutboxError> {
        let id = self.next_id;
        let message = Message {
            id,
            class,
            retain,
            created_ms: now_ms,
            expires_ms: ttl.map(|t| now_ms + t.as_millis() as u64),
            topic: topic.to_string(),
            payload: payload.to_vec(),
        };
        let bytes = message.encode();
        self.make_room(bytes.len() as u64)?;
        let entry = self.write(&bytes, class, now_ms, message.expires_ms)?;
        self.index.insert(id, entry);
        self.next_id += 1;
        self.stats.appended += 1;
        Ok(id)
    }

    /// Write an encoded message to the active segment, rotating first when it is full.
    fn write(
        &mut self,
        bytes: &[u8],
        class: Class,
        created_ms: u64,
        expires_ms: Option<u64>,
    ) -> Result<Entry, OutboxError> {
        if self.segments[&self.active].bytes >= self.segment_bytes {
            self.sync()?;
            self.start_segment(self.active + 1)?;
        }
        self.append_bytes(bytes)?;
        let segment = self.segments.get_mut(&self.active).expect("active segment");
        let entry = Entry {
            segment: self.active,
            offset: segment.bytes - bytes.len() as u64,
            len: bytes.len() as u32,
            class,
            created_ms,
            expires_ms,
        };
        segment.pending += 1;
        Ok(entry)
    }

    /// The next message to send, in id order, skipping (and retiring) expired ones.
    pub fn next_to_send(&mut self, now_ms: u64) -> Result<Option<Message>, OutboxError> {
        loop {
            let Some((&id, &entry)) = self.index.range(self.cursor..).next() else { return Ok(None) };
            self.cursor = id + 1;
            if entry.expires_ms.is_some_and(|e| e <= now_ms) {
                self.retire(id, Done::Expired);
                continue;
            }
            let segment = &self.segments[&entry.segment];
            let mut bytes = vec![0; entry.len as usize];
            if let Err(e) = segment.file.read_exact_at(&mut bytes, entry.offset) {
                self.cursor = id; // offered again next time, not skipped
                return Err(io(&segment.path, "cannot read back")(e));
            }
            match record::decode(&bytes) {
                Ok(Some((Record::Message(m), _))) if m.id == id => return Ok(Some(m)),
                // The bytes were checked when written or loaded; damage since then is the disk's.
                other => {
                    tracing::error!(
                        "outbox {}: message {id} at byte {} no longer reads back ({other:?}); dropped",
                        segment.path.display(),
                        entry.offset
                    );
                    self.retire(id, Done::Dropped);
                }
            }
        }
    }

    /// Offer every pending message again from the oldest (the broker forgot what was in flight).
    pub fn rewind(&mut self) {
        self.cursor = 0;
    }

    /// Offer `id` (and everything after it) again: the client could not take it.
    pub fn unsend(&mut self, id: u64) {
        self.cursor = self.cursor.min(id);
    }

    /// The broker refused message `id` (it will refuse it again): retire it as dropped.
    pub fn refused(&mut self, id: u64) {
        self.retire(id, Done::Dropped);
    }

    pub fn is_pending(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// The broker acknowledged message `id`.
    pub fn acknowledged(&mut self, id: u64) {
        if self.retire(id, Done::Acknowledged) {
            self.stats.acknowledged += 1;
        }
    }

    /// Retire `id`: returns false when it was already done.
    fn retire(&mut self, id: u64, why: Done) -> bool {
        let Some(entry) = self.index.remove(&id) else { return false };
        self.segments.get_mut(&entry.segment).expect("indexed segment").pending -= 1;
        self.done_buffer.extend(record::encode_done(id, why));
        match (why, entry.class) {
            (Done::Expired, _) => self.stats.expired += 1,
            (Done::Dropped, Class::Live) => self.stats.dropped_live += 1,
            (Done::Dropped, Class::Durable) => self.stats.dropped_durable += 1,
            (Done::Acknowledged, _) => {}
        }
        true
    }

    /// Retire every live message past its expiry that is not in flight.
    pub fn expire(&mut self, now_ms: u64) {
        let expired: Vec<u64> = self
            .index
            .range(self.cursor..)
            .filter(|(_, e)| e.expires_ms.is_some_and(|x| x <= now_ms))
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.retire(id, Done::Expired);
        }
    }

    fn flush_done(&mut self) -> Result<(), OutboxError> {
        if self.done_buffer.is_empty() {
            return Ok(());
        }
        let done = std::mem::take(&mut self.done_buffer);
        if let Err(e) = self.append_bytes(&done) {
            self.done_buffer = done; // tried again at the next sync
            return Err(e);
        }
        Ok(())
    }

    /// Append whole records to the active segment. A failed write (a full disk, an I/O error)
    /// may have left part of them behind: the file is cut back to its last whole record, so the
    /// offsets of what follows stay right and a later open does not take the rest for a torn tail.
    fn append_bytes(&mut self, bytes: &[u8]) -> Result<(), OutboxError> {
        let segment = self.segments.get_mut(&self.active).expect("active segment");
        if let Err(e) = segment.file.write_all(bytes) {
            if segment.file.set_len(segment.bytes).is_err() {
                // Cannot even cut it: leave this segment as it is and write the next one.
                let next = self.active + 1;
                let err = io(&segment.path, "cannot append")(e);
                let _ = self.start_segment(next);
                return Err(err);
            }
            return Err(io(&segment.path, "cannot append")(e));
        }
        segment.bytes += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Whether [`Outbox::sync_later`] or [`Outbox::expire`] has anything to do: messages pending,
    /// done records to write, or appended bytes not yet forced to disk.
    pub fn needs_upkeep(&self) -> bool {
        self.unsynced || !self.done_buffer.is_empty() || self.depth() > 0
    }

    /// [`Outbox::sync`] for a caller that must not block on the disk: writes the batched done
    /// records and deletes finished segments now, and returns a handle of the active segment to
    /// `fdatasync` elsewhere (a blocking thread) when there is anything to force.
    pub fn sync_later(&mut self) -> Result<Option<File>, OutboxError> {
        self.flush_done()?;
        self.collect_empty_segments()?;
        if !self.unsynced {
            return Ok(None);
        }
        let segment = &self.segments[&self.active];
        let handle = segment.file.try_clone().map_err(io(&segment.path, "cannot open for sync"))?;
        self.unsynced = false;
        Ok(Some(handle))
    }

    /// Write the batched done records, force everything to disk, and delete segments that are
    /// wholly done.
    pub fn sync(&mut self) -> Result<(), OutboxError> {
        self.flush_done()?;
        // Unconditionally: a sync handed to another thread by `sync_later` may still be running.
        let segment = &self.segments[&self.active];
        segment.file.sync_data().map_err(io(&segment.path, "cannot sync"))?;
        self.unsynced = false;
        self.collect_empty_segments()?;
        Ok(())
    }

    /// Delete the oldest segments while every message in them is done (never the active one).
    fn collect_empty_segments(&mut self) -> Result<bool, OutboxError> {
        let mut any = false;
        while let Some((&n, s)) = self.segments.first_key_value() {
            if n == self.active || s.pending > 0 {
                break;
            }
            let s = self.segments.remove(&n).expect("first segment");
            std::fs::remove_file(&s.path).map_err(io(&s.path, "cannot delete a finished segment"))?;
            any = true;
        }
        if any {
            self.sync_dir()?;
        }
        Ok(any)
    }

    /// Messages accepted and not yet done.
    pub fn depth(&self) -> usize {
        self.index.len()
    }

    /// Age of the oldest message not yet done.
    pub fn oldest_age(&self, now_ms: u64) -> Option<Duration> {
        self.index.values().next().map(|e| Duration::from_millis(now_ms.saturating_sub(e.created_ms)))
    }

    /// Bytes of segment files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum::<u64>() + self.done_buffer.len() as u64
    }

    pub fn stats(&self) -> &OutboxStats {
        &self.stats
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

mod room;

#[cfg(test)]
mod tests;
