//! Keeping the outbox under its disk bound (the policy is in the module docs of `outbox`).

use super::record::{Class, Done};
use super::{io, Entry, Outbox, OutboxError};
use std::os::unix::fs::FileExt;

impl Outbox {
    /// Make room for a record of `needed` bytes under the bound.
    ///
    /// Messages may fill the bound up to three segments short of it: that reserve is where
    /// compaction copies the oldest segment's durable messages (a segment is at most two
    /// segment sizes: it rotates once past one, and no record is larger than one), so copying
    /// them never pushes the files past the bound and never needs a durable message dropped
    /// while live ones could go.
    pub(super) fn make_room(&mut self, needed: u64) -> Result<(), OutboxError> {
        if needed > self.segment_bytes {
            return Err(OutboxError::TooLarge { len: needed, max: self.segment_bytes });
        }
        let limit = self.max_bytes - 3 * self.segment_bytes;
        // Compactions of segments dense with durable messages (they free little): once every
        // segment has been through one, nothing but durable messages is left to make room from.
        let mut dense_moves = 0;
        while self.disk_bytes() + needed > limit {
            self.flush_done()?;
            if self.collect_empty_segments()? {
                continue;
            }
            let oldest = *self.segments.keys().next().expect("the active segment exists");
            if oldest == self.active {
                // Everything is in one segment: start another so the old one can be retired.
                self.sync()?;
                self.start_segment(self.active + 1)?;
                continue;
            }
            let in_oldest: Vec<(u64, Entry)> =
                self.index.iter().filter(|(_, e)| e.segment == oldest).map(|(&id, &e)| (id, e)).collect();
            let live: Vec<u64> = in_oldest.iter().filter(|(_, e)| e.class == Class::Live).map(|(id, _)| *id).collect();
            if !live.is_empty() {
                for id in live {
                    self.drop_live(id);
                }
                continue;
            }
            // Only durable messages hold the oldest segment: copy them forward (into the reserve)
            // and delete it. A dense one frees little, but moves the next segment — perhaps one
            // with live messages to drop — to the front.
            let copy: u64 = in_oldest.iter().map(|(_, e)| e.len as u64).sum();
            let dense = copy * 2 > self.segments[&oldest].bytes;
            if !dense || dense_moves < self.segments.len() {
                dense_moves += dense as usize;
                self.compact(oldest, &in_oldest)?;
                continue;
            }
            // Nothing but durable messages: the oldest segment's go, together (one at a time would
            // free no disk until the last of them).
            tracing::error!(
                "outbox {} is full of durable messages ({} bytes bound): dropping the {} oldest; raise outbox_max_mb or restore the broker link",
                self.dir.display(),
                self.max_bytes,
                in_oldest.len()
            );
            for (id, _) in in_oldest {
                self.retire(id, Done::Dropped);
            }
        }
        Ok(())
    }

    fn drop_live(&mut self, id: u64) {
        if self.stats.dropped_live == 0 {
            tracing::warn!(
                "outbox {} reached its bound of {} bytes: dropping the oldest live messages (counted in the metrics)",
                self.dir.display(),
                self.max_bytes
            );
        }
        self.retire(id, Done::Dropped);
    }

    /// Copy the pending messages of segment `n` to the active segment, then delete `n`. Their ids
    /// (and so their sending order) stay; a crash between the copy and the delete leaves two
    /// copies of each, which opening the outbox folds into one.
    fn compact(&mut self, n: u64, pending: &[(u64, Entry)]) -> Result<(), OutboxError> {
        for &(id, e) in pending {
            let source = &self.segments[&n];
            let mut bytes = vec![0; e.len as usize];
            source.file.read_exact_at(&mut bytes, e.offset).map_err(io(&source.path, "cannot read for compaction"))?;
            let moved = self.write(&bytes, e.class, e.created_ms, e.expires_ms)?;
            self.index.insert(id, moved);
        }
        // Everything indexed in it has moved: it goes now, whatever its count said.
        self.segments.get_mut(&n).expect("compacted segment").pending = 0;
        self.sync()?;
        Ok(())
    }
}
