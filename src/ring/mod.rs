//! Per-channel lock-free SPSC rings between an ingest task and the pipeline thread.
//!
//! A channel's samples travel as plain `f32`s in one ring; beside it a small ring of
//! [`ChunkMark`]s tells the consumer how many samples each pushed chunk held and when (recording
//! clock) and where (host arrival instant) they were stamped. Sample times between marks follow
//! the nominal rate, as in LSL. Carrying 4 bytes per sample instead of a timestamp per sample keeps
//! the hot path to two `memcpy`s.
//!
//! Architecture invariants:
//! - `push` never blocks and never allocates. A chunk that does not fit whole is dropped whole and
//!   counted in [`RingStats::overrun_samples`]; the next accepted chunk is marked `gap_before` so
//!   the window stage can flag the hole instead of silently stitching across it.
//! - Samples are pushed before their mark, so a consumer that sees a mark always finds its samples.

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Instant;

use crate::signal::ChunkStamp;

/// Describes one accepted chunk in a channel's sample ring.
#[derive(Debug, Clone, Copy)]
pub struct ChunkMark {
    /// Number of samples of this chunk in the sample ring.
    pub len: u32,
    /// Recording-clock time of the chunk's first sample (unix seconds).
    pub source_time: f64,
    /// Host monotonic arrival of the bytes carrying the chunk.
    pub arrival: Instant,
    /// Samples were dropped just before this chunk (ring overrun); time continuity is broken.
    /// The windower flags every window spanning the hole, however short it was.
    pub gap_before: bool,
}

/// Counters shared between the producer, the consumer and whoever reports metrics.
#[derive(Debug, Default)]
pub struct RingStats {
    pub pushed_samples: AtomicU64,
    pub overrun_samples: AtomicU64,
    pub overrun_chunks: AtomicU64,
    /// Set by the producer when its source has ended (finite replay) or was dropped.
    pub closed: AtomicBool,
}

/// Wakes the pipeline thread when new data is pushed, so it need not poll with a short timer.
#[derive(Debug, Clone, Default)]
pub struct Waker(Arc<OnceLock<Thread>>);

impl Waker {
    /// Called once by the pipeline thread before it starts waiting.
    pub fn register_current_thread(&self) {
        let _ = self.0.set(std::thread::current());
    }
    pub fn wake(&self) {
        if let Some(thread) = self.0.get() {
            thread.unpark();
        }
    }
}

/// The ingest side of one channel.
pub struct ChannelProducer {
    samples: HeapProd<f32>,
    marks: HeapProd<ChunkMark>,
    stats: Arc<RingStats>,
    pending_gap: bool,
    waker: Waker,
}

/// The pipeline side of one channel.
pub struct ChannelConsumer {
    samples: HeapCons<f32>,
    marks: HeapCons<ChunkMark>,
    stats: Arc<RingStats>,
}

/// The chunk did not fit and was dropped (already counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    pub dropped: usize,
}

/// Create the ring pair for one channel, holding up to `capacity` samples and `max_chunks` marks.
pub fn channel(capacity: usize, max_chunks: usize, waker: Waker) -> (ChannelProducer, ChannelConsumer) {
    let (sp, sc) = HeapRb::<f32>::new(capacity.max(1)).split();
    let (mp, mc) = HeapRb::<ChunkMark>::new(max_chunks.max(1)).split();
    let stats = Arc::new(RingStats::default());
    (
        ChannelProducer { samples: sp, marks: mp, stats: stats.clone(), pending_gap: false, waker },
        ChannelConsumer { samples: sc, marks: mc, stats },
    )
}

impl ChannelProducer {
    /// Push one chunk. Never blocks: when the chunk does not fit whole it is dropped and counted.
    pub fn push(&mut self, stamp: ChunkStamp, chunk: &[f32]) -> Result<(), Overrun> {
        if chunk.is_empty() {
            return Ok(());
        }
        if chunk.len() > self.samples.vacant_len() || self.marks.is_full() || chunk.len() > u32::MAX as usize {
            self.stats.overrun_samples.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.stats.overrun_chunks.fetch_add(1, Ordering::Relaxed);
            self.pending_gap = true;
            return Err(Overrun { dropped: chunk.len() });
        }
        let pushed = self.samples.push_slice(chunk);
        debug_assert_eq!(pushed, chunk.len());
        let mark = ChunkMark {
            len: chunk.len() as u32,
            source_time: stamp.source_time,
            arrival: stamp.arrival,
            gap_before: std::mem::take(&mut self.pending_gap),
        };
        // Cannot fail: fullness was checked above and only this producer pushes.
        let _ = self.marks.try_push(mark);
        self.stats.pushed_samples.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.waker.wake();
        Ok(())
    }

    /// Free room in samples; replay at `--speed max` waits on this instead of overrunning.
    pub fn vacant_samples(&self) -> usize {
        if self.marks.is_full() {
            0
        } else {
            self.samples.vacant_len()
        }
    }

    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }
}

/// Dropping the producer marks the stream as ended: the pipeline finishes what is buffered and
/// stops waiting for more.
impl Drop for ChannelProducer {
    fn drop(&mut self) {
        self.stats.closed.store(true, Ordering::Release);
        self.waker.wake();
    }
}

impl ChannelConsumer {
    /// Pop the next whole chunk into `out` (cleared first) and return its mark.
    pub fn pop_chunk(&mut self, out: &mut Vec<f32>) -> Option<ChunkMark> {
        let mark = self.marks.try_pop()?;
        let len = mark.len as usize;
        out.clear();
        out.resize(len, 0.0);
        let got = self.samples.pop_slice(out);
        // Samples are pushed before their mark, so they are all there.
        debug_assert_eq!(got, len);
        out.truncate(got);
        Some(mark)
    }

    /// True when a pushed chunk is waiting to be popped.
    pub fn has_pending(&self) -> bool {
        !self.marks.is_empty()
    }

    /// True once the producer is gone and everything it pushed has been popped.
    pub fn is_finished(&self) -> bool {
        // Read `closed` first: if it is set, every push happened before it.
        self.stats.closed.load(Ordering::Acquire) && self.marks.is_empty()
    }

    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(t: f64) -> ChunkStamp {
        ChunkStamp { source_time: t, arrival: Instant::now() }
    }

    #[test]
    fn chunks_come_out_whole_and_in_order() {
        let (mut p, mut c) = channel(16, 4, Waker::default());
        p.push(stamp(0.0), &[1.0, 2.0, 3.0]).unwrap();
        p.push(stamp(0.03), &[4.0, 5.0]).unwrap();
        let mut out = Vec::new();
        let m = c.pop_chunk(&mut out).unwrap();
        assert_eq!((m.len, out.as_slice()), (3, &[1.0, 2.0, 3.0][..]));
        let m = c.pop_chunk(&mut out).unwrap();
        assert_eq!((m.source_time, out.as_slice()), (0.03, &[4.0, 5.0][..]));
        assert!(c.pop_chunk(&mut out).is_none());
        assert!(!c.is_finished());
        drop(p);
        assert!(c.is_finished());
    }

    #[test]
    fn overrun_drops_whole_chunk_counts_and_flags_the_gap() {
        let (mut p, mut c) = channel(4, 8, Waker::default());
        p.push(stamp(0.0), &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(p.push(stamp(0.1), &[4.0, 5.0]), Err(Overrun { dropped: 2 }));
        assert_eq!(c.stats().overrun_samples.load(Ordering::Relaxed), 2);
        let mut out = Vec::new();
        assert!(!c.pop_chunk(&mut out).unwrap().gap_before);
        p.push(stamp(0.2), &[6.0]).unwrap();
        let m = c.pop_chunk(&mut out).unwrap();
        assert!(m.gap_before, "the chunk after a drop carries the gap flag");
        assert_eq!(out, vec![6.0]);
    }

    #[test]
    fn full_mark_ring_is_an_overrun_too() {
        let (mut p, _c) = channel(100, 2, Waker::default());
        p.push(stamp(0.0), &[1.0]).unwrap();
        p.push(stamp(0.1), &[1.0]).unwrap();
        assert_eq!(p.vacant_samples(), 0);
        assert!(p.push(stamp(0.2), &[1.0]).is_err());
    }

    #[test]
    fn works_across_threads() {
        let (mut p, mut c) = channel(1024, 64, Waker::default());
        let producer = std::thread::spawn(move || {
            let mut sent = 0u64;
            let mut i = 0;
            while i < 10_000 {
                let chunk: Vec<f32> = (i..i + 10).map(|v| v as f32).collect();
                if p.push(stamp(i as f64), &chunk).is_ok() {
                    i += 10;
                    sent += 10;
                } else {
                    std::thread::yield_now();
                }
            }
            sent
        });
        let mut expected = 0.0f32;
        let mut out = Vec::new();
        loop {
            if let Some(m) = c.pop_chunk(&mut out) {
                assert_eq!(m.source_time as f32, expected);
                for v in &out {
                    assert_eq!(*v, expected);
                    expected += 1.0;
                }
            } else if c.is_finished() {
                break;
            }
        }
        assert_eq!(producer.join().unwrap(), 10_000);
        assert_eq!(expected, 10_000.0);
    }
}
