//! Paces a [`RecordingStream`] onto channel rings as a device would send it.
//!
//! Every `chunk_ms` of recording time, each channel pushes the samples acquired in that span as one
//! chunk, stamped with the recording time of its first sample and the host instant it was pushed.
//! At `Speed::Times(x)` the chunk ending at recording time `t` is pushed at host time
//! `start + (t - t0) / x`, so latency figures mean what they would with a live device. The
//! stream is read one step ahead of nothing: only the current chunk of each channel is in memory.

use super::config::Speed;
use super::recording::{ReadError, Segment};
use super::stream::RecordingStream;
use crate::ingest::{Health, LinkState, SourceReport};
use crate::ring::ChannelProducer;
use crate::signal::ChunkStamp;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Play `stream` onto `producers` (one per channel, same order). Returns when the recording
/// ends, a read fails (the report says why; everything before was delivered) or `shutdown`
/// turns true; dropping the producers then tells the pipeline the stream ended.
pub async fn play(
    mut stream: RecordingStream,
    producers: Vec<ChannelProducer>,
    speed: Speed,
    chunk_ms: f64,
    shutdown: watch::Receiver<bool>,
    health: Health,
) -> SourceReport {
    let mut report = SourceReport::default();
    health.set_state(LinkState::Streaming);
    let played = play_into(&mut stream, producers, speed, chunk_ms, shutdown, &health, &mut report).await;
    // Rows skipped since the last count reached the health (the tail of the file).
    health.decode_errors(stream.skipped_rows() - report.skipped_records);
    report.skipped_records = stream.skipped_rows();
    if report.completed {
        // How the channels end is known only when they did (not after a stop or an error).
        report.notes = stream.end_notes();
    }
    match played {
        Ok(()) => health.set_state(LinkState::Ended),
        Err(e) => {
            report.failure = Some(e.to_string());
            health.set_state(LinkState::Failed);
        }
    }
    report
}

async fn play_into(
    stream: &mut RecordingStream,
    mut producers: Vec<ChannelProducer>,
    speed: Speed,
    chunk_ms: f64,
    mut shutdown: watch::Receiver<bool>,
    health: &Health,
    report: &mut SourceReport,
) -> Result<(), ReadError> {
    assert_eq!(stream.specs().len(), producers.len(), "one producer per recorded channel");
    let Some(t0) = stream.next_time()? else {
        report.completed = true;
        return Ok(());
    };
    let chunk_s = chunk_ms / 1000.0;
    let host_start = tokio::time::Instant::now();
    let mut chunks: Vec<Vec<Segment>> = vec![Vec::new(); producers.len()];
    let mut step: u64 = 1;
    loop {
        // Chunk boundary k is computed from t0, not accumulated, so rounding never drifts.
        let t_end = t0 + step as f64 * chunk_s;
        if let Speed::Times(x) = speed {
            let due = host_start + Duration::from_secs_f64((t_end - t0) / x);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            }
        } else if *shutdown.borrow() {
            return Ok(());
        }
        // Rows read before an error in this step are delivered before the error ends the play.
        let read = stream.read_before(t_end, &mut chunks);
        health.decode_errors(stream.skipped_rows() - report.skipped_records);
        report.skipped_records = stream.skipped_rows();
        let arrival = Instant::now();
        for (segments, producer) in chunks.iter_mut().zip(&mut producers) {
            for segment in segments.drain(..) {
                let stamp = ChunkStamp { source_time: segment.start_time, arrival };
                if speed == Speed::Max {
                    // A file is its own clock: wait for room rather than lose data. Polled, not
                    // signalled: a ring has no "room freed" wake-up (adding one would cost every
                    // pop of a live stream an atomic and a wake), and this loop only spins while
                    // a replay at `--speed max` is ahead of a pipeline running flat out: then at
                    // most ~1000 wake-ups a second (tokio's timer has a 1 ms grain) of one check
                    // each, and never in any other mode or when idle (docs/footprint.md).
                    while producer.vacant_samples() < segment.samples.len() {
                        if *shutdown.borrow() {
                            return Ok(());
                        }
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    }
                }
                match producer.push(stamp, &segment.samples) {
                    Ok(()) => {
                        report.chunks += 1;
                        report.samples += segment.samples.len() as u64;
                        health.arrived(arrival);
                    }
                    Err(overrun) => report.overrun_samples += overrun.dropped as u64,
                }
            }
        }
        read?;
        let Some(next) = stream.next_time()? else {
            report.completed = true;
            return Ok(());
        };
        if speed == Speed::Max && next >= t_end + chunk_s {
            // Flat out, a recording gap (a channel starting days after the others) is crossed in
            // one step instead of millions of empty ones.
            step = step.max(((next - t0) / chunk_s).floor() as u64);
        }
        step += 1;
        if speed == Speed::Max && step.is_multiple_of(64) {
            // Let the other tasks on this worker run during a flat-out replay.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::replay::{RecordedChannel, Recording};
    use crate::ring::{channel, Waker};
    use crate::signal::{ChannelSpec, Modality};

    fn rec() -> Recording {
        Recording {
            channels: vec![
                RecordedChannel {
                    spec: ChannelSpec::new("a", Modality::Ecg, "mV", 100.0),
                    segments: vec![
                        Segment { start_time: 10.0, samples: (0..50).map(|v| v as f32).collect() },
                        Segment { start_time: 11.0, samples: (100..150).map(|v| v as f32).collect() },
                    ],
                },
                RecordedChannel {
                    spec: ChannelSpec::new("b", Modality::Eda, "uS", 4.0),
                    segments: vec![Segment { start_time: 10.0, samples: vec![1.0; 6] }],
                },
            ],
            skipped_rows: 0,
            notes: vec![],
        }
    }

    #[tokio::test]
    async fn max_speed_delivers_every_sample_with_its_time() {
        let rec = rec();
        let (pa, mut ca) = channel(1000, 100, Waker::default());
        let (pb, mut cb) = channel(1000, 100, Waker::default());
        let (_tx, rx) = watch::channel(false);
        let report =
            play(RecordingStream::in_memory(rec), vec![pa, pb], Speed::Max, 40.0, rx, Health::new(Vec::new())).await;
        assert!(report.completed);
        assert_eq!(report.samples, 106);
        let mut out = Vec::new();
        let mut got = Vec::new();
        while let Some(m) = ca.pop_chunk(&mut out) {
            for (i, v) in out.iter().enumerate() {
                got.push((m.source_time + i as f64 * 0.01, *v));
            }
        }
        assert_eq!(got.len(), 100);
        assert!((got[50].0 - 11.0).abs() < 1e-9, "second segment keeps its own start time");
        assert_eq!(got[50].1, 100.0);
        assert!(ca.is_finished());
        let mut n = 0;
        while cb.pop_chunk(&mut out).is_some() {
            n += out.len();
        }
        assert_eq!(n, 6);
    }

    #[tokio::test]
    async fn max_speed_crosses_a_long_gap_in_one_step() {
        let mut rec = rec();
        // The second channel starts a year later.
        rec.channels[1].segments[0].start_time += 365.0 * 86_400.0;
        let (pa, _ca) = channel(1000, 100, Waker::default());
        let (pb, mut cb) = channel(1000, 100, Waker::default());
        let (_tx, rx) = watch::channel(false);
        // 40 ms steps across a year would be 788 million loop turns: minutes, not milliseconds.
        let played = play(RecordingStream::in_memory(rec), vec![pa, pb], Speed::Max, 40.0, rx, Health::new(Vec::new()));
        let report = tokio::time::timeout(Duration::from_secs(5), played).await.expect("no step-by-step spin");
        assert!(report.completed);
        assert_eq!(report.samples, 106);
        let mut out = Vec::new();
        let m = cb.pop_chunk(&mut out).unwrap();
        assert_eq!(m.source_time, 10.0 + 365.0 * 86_400.0);
    }

    #[tokio::test(start_paused = true)]
    async fn real_time_paces_chunks_by_the_recording_clock() {
        let rec = rec();
        let (pa, mut ca) = channel(1000, 100, Waker::default());
        let (pb, _cb) = channel(1000, 100, Waker::default());
        let (_tx, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let report =
            play(RecordingStream::in_memory(rec), vec![pa, pb], Speed::Times(2.0), 100.0, rx, Health::new(Vec::new()))
                .await;
        // 1.5 s of recording at 2x takes 0.75 s of (virtual) host time, plus at most one chunk.
        let took = start.elapsed().as_secs_f64();
        assert!((0.7..=0.85).contains(&took), "took {took}");
        assert!(report.completed);
        let mut out = Vec::new();
        let m = ca.pop_chunk(&mut out).unwrap();
        assert_eq!((m.source_time, out.len()), (10.0, 10), "100 ms chunks of a 100 Hz channel");
    }

    #[tokio::test]
    async fn shutdown_stops_replay() {
        let rec = rec();
        let (pa, _ca) = channel(1000, 100, Waker::default());
        let (pb, _cb) = channel(1000, 100, Waker::default());
        let (tx, rx) = watch::channel(false);
        tx.send(true).unwrap();
        let report =
            play(RecordingStream::in_memory(rec), vec![pa, pb], Speed::Times(1.0), 40.0, rx, Health::new(Vec::new()))
                .await;
        assert!(!report.completed);
    }
}
