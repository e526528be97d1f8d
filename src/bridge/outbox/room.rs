//! Keeping the outbox under its disk bound (the policy is in the module docs of `outbox`).

use super::record::{Class, Done};
use super::{io, Entry, Outbox, OutboxError};
use std::os::unix::fs::FileExt;

impl Outbox {
    /// Make room for a record of `needed` bytes under the bound.
    pub(super) fn make_room(&mut self, needed: u64) -> Result<(), OutboxError> {
        if needed > self.max_bytes / 2 {
            return Err(OutboxError::TooLarge { len: needed, max: self.max_bytes });
        }
        while self.disk_bytes() + needed > self.max_bytes {
            self.flush_done()?;
            if self.collect_empty_segments()? {
                continue;
            }
            let oldest = *self.segments.keys().next().expect("the active segment exists");
            if oldest == self.active {
                // Everything is in one segment: start another so the old one can be retired.
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
            let pending_bytes: u64 = self.index.values().map(|e| e.len as u64).sum();
            if pending_bytes + needed + self.segment_bytes <= self.max_bytes {
                self.compact(oldest, &in_oldest)?;
                continue;
            }
            // Compaction cannot make room yet: live messages anywhere go before any durable one.
            let oldest_live = self.index.iter().find(|(_, e)| e.class == Class::Live).map(|(&id, _)| id);
            if let Some(id) = oldest_live {
                self.drop_live(id);
                continue;
            }
            let (&id, _) = self.index.iter().next().expect("a pending message holds the oldest segment");
            tracing::error!(
                "outbox {} is full of durable messages ({} bytes bound): dropping durable message {id}, the oldest; raise outbox_max_mb or restore the broker link",
                self.dir.display(),
                self.max_bytes
            );
            self.retire(id, Done::Dropped);
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
            self.segments.get_mut(&n).expect("compacted segment").pending -= 1;
            self.index.insert(id, moved);
        }
        self.sync()?;
        Ok(())
    }
}
