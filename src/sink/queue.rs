//! The bounded queue from the pipeline thread to the output task, and its overflow policy.
//!
//! The pipeline must never stall behind a slow terminal or a broker: a live sensor keeps sending
//! and its ring would overrun. So with any live source the policy is [`Overflow::Drop`]: a record
//! that finds the queue full is dropped, counted, and the first drop is logged. When every source
//! is a file played as fast as possible, the file is its own clock and nothing is gained by
//! dropping, so the policy is [`Overflow::Wait`]: the pipeline waits for room, its rings fill, and
//! the replay waits for ring space in turn — back-pressure all the way to the file.

use super::Record;
use tokio::sync::mpsc;

/// Records the queue holds before the policy applies: minutes of feedback at one window per hop.
pub const CAPACITY: usize = 1024;

/// What the pipeline does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the record and count it (live sources: the pipeline must keep pace with them).
    Drop,
    /// Wait for room (only when every source waits for ring space too).
    Wait,
}

/// The pipeline's end of the queue.
pub struct RecordSender {
    tx: mpsc::Sender<Record>,
    policy: Overflow,
    dropped: u64,
}

/// The output side has gone away (shutdown, or a fatal error there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputGone;

/// A bounded record queue with `policy` for overflow.
pub fn channel(capacity: usize, policy: Overflow) -> (RecordSender, mpsc::Receiver<Record>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (RecordSender { tx, policy, dropped: 0 }, rx)
}

impl RecordSender {
    /// Hand a record over. Called from the pipeline thread, never from async code.
    pub fn send(&mut self, record: Record) -> Result<(), OutputGone> {
        match self.policy {
            Overflow::Wait => self.tx.blocking_send(record).map_err(|_| OutputGone),
            Overflow::Drop => match self.tx.try_send(record) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if self.dropped == 0 {
                        tracing::warn!("output queue full ({CAPACITY} records): dropping records until it drains");
                    }
                    self.dropped += 1;
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(OutputGone),
            },
        }
    }

    /// A way to read how full the queue is without keeping it open (the governor's view).
    pub fn depth_gauge(&self) -> DepthGauge {
        DepthGauge(self.tx.downgrade())
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::FeatureRow;

    fn row(seq: u64) -> Record {
        Record::Features(FeatureRow {
            subject: "s".into(),
            seq,
            window_start: 0.0,
            window_end: 1.0,
            features: Vec::new(),
            raw: None,
        })
    }

    #[test]
    fn a_full_queue_drops_and_counts_under_drop_and_never_blocks() {
        let (mut tx, mut rx) = channel(2, Overflow::Drop);
        for seq in 0..5 {
            tx.send(row(seq)).unwrap();
        }
        assert_eq!(tx.dropped(), 3);
        let Some(Record::Features(first)) = rx.try_recv().ok() else { panic!("a record") };
        assert_eq!(first.seq, 0, "the oldest records are kept, the overflow is dropped");
        drop(rx);
        assert_eq!(tx.send(row(9)), Err(OutputGone));
    }

    #[test]
    fn wait_delivers_everything_once_the_reader_drains() {
        let (mut tx, mut rx) = channel(2, Overflow::Wait);
        let reader = std::thread::spawn(move || {
            let mut seqs = Vec::new();
            while let Some(Record::Features(r)) = rx.blocking_recv() {
                seqs.push(r.seq);
            }
            seqs
        });
        for seq in 0..50 {
            tx.send(row(seq)).unwrap();
        }
        drop(tx);
        assert_eq!(reader.join().unwrap(), (0..50).collect::<Vec<_>>());
    }
}

/// Reads the queue's depth; does not keep the queue open (the output task still sees it close).
#[derive(Debug, Clone)]
pub struct DepthGauge(mpsc::WeakSender<Record>);

impl DepthGauge {
    /// Records waiting for the output task (0 once the queue has closed).
    pub fn depth(&self) -> usize {
        self.0.upgrade().map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }
}
