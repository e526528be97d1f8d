//! Pty line-to-ring latency of the serial source: a device writes one line per sample at 250 Hz
//! on a pseudo-terminal's master; the real serial source (open, read, decode, clock, push) puts
//! it on a ring; a spinning reader takes it off. Reported per sample, in µs, with hdrhistogram:
//! write → the source's arrival stamp (the read returned) and write → visible on the ring.
//!
//! Then recovery: the pty is closed (an unplug) and, 2 s later, a new one appears behind the same
//! symlink (a replug); the time from the new device's first line to its first sample on the ring,
//! over 5 replugs (the supervisor's backoff is capped at its default 1 s).
//!
//!   cargo bench --bench serial_latency            (10 000 samples, about 55 s)
//!   cargo bench --bench serial_latency -- 2500    (fewer samples)
//!
//! Not a criterion bench: the figure is a distribution over a paced stream, not a throughput.

use biofeedd::ingest::protocol::{line, ProtocolConfig};
use biofeedd::ingest::serial::SerialConfig;
use biofeedd::ingest::{Health, SourceConfig, SourceContext};
use biofeedd::ring::{self, Waker};
use biofeedd::signal::{ChannelSpec, Modality};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

const RATE_HZ: f64 = 250.0;

/// A device on a fresh pty behind `link`: the master to write on and the slave kept open.
fn plug(link: &std::path::Path) -> (SerialStream, SerialStream) {
    let (master, slave) = SerialStream::pair().expect("a pseudo-terminal");
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(slave.name().expect("pty path"), link).unwrap();
    (master, slave)
}

async fn write_line(master: &mut SerialStream, value: u64, line_buf: &mut Vec<u8>) -> Instant {
    line_buf.clear();
    line::encode_line(value, &[value as f64], line::Separator::Comma, line_buf);
    let at = Instant::now();
    master.write_all(line_buf).await.expect("write to the pty");
    at
}

fn main() {
    let samples: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("device");
    let (mut master, mut slave) = runtime.block_on(async { plug(&link) });

    let spec = ChannelSpec::new("x", Modality::Other, "a.u.", RATE_HZ);
    let protocol = ProtocolConfig::Line(line::LineConfig::for_encoder(&[spec], line::Separator::Comma, None));
    let source = SourceConfig::Serial(SerialConfig::new(&link, protocol));
    let (producer, mut consumer) = ring::channel(1 << 16, 4096, Waker::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let context = SourceContext {
        sensor: "bench".into(),
        base_dir: ".".into(),
        health: Health::new(vec![producer.stats().clone()]),
        producers: vec![producer],
        shutdown,
    };
    let running = runtime.block_on(async { source.build(context) }).expect("the serial source builds");
    let task = runtime.spawn(running.task);

    // The reader spins on the ring and reports (value, arrival stamp, visible) per sample.
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<(u64, Instant, Instant)>();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader_done = done.clone();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        while !reader_done.load(std::sync::atomic::Ordering::Relaxed) {
            let Some(mark) = consumer.pop_chunk(&mut out) else {
                std::hint::spin_loop();
                continue;
            };
            let visible = Instant::now();
            for &v in &out {
                let _ = seen_tx.send((v as u64, mark.arrival, visible));
            }
        }
    });

    let mut to_arrival = Histogram::<u64>::new(3).unwrap();
    let mut to_ring = Histogram::<u64>::new(3).unwrap();
    let mut recoveries = Vec::new();
    runtime.block_on(async {
        let mut buf = Vec::new();
        // Let the source open the port before the first line.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut written = vec![None; samples + 1];
        let start = tokio::time::Instant::now();
        for (k, slot) in written.iter_mut().enumerate() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / RATE_HZ)).await;
            *slot = Some(write_line(&mut master, k as u64, &mut buf).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok((v, arrival, visible)) = seen_rx.try_recv() {
            if let Some(Some(at)) = written.get(v as usize) {
                to_arrival.record(arrival.saturating_duration_since(*at).as_micros() as u64).unwrap();
                to_ring.record(visible.saturating_duration_since(*at).as_micros() as u64).unwrap();
            }
        }
        for cycle in 1..=5u64 {
            drop((master, slave)); // unplug
            tokio::time::sleep(Duration::from_secs(2)).await;
            (master, slave) = plug(&link); // replug
            let first_value = cycle * 1_000_000;
            let mut value = first_value;
            let first_line = write_line(&mut master, value, &mut buf).await;
            let back = loop {
                tokio::time::sleep(Duration::from_secs_f64(1.0 / RATE_HZ)).await;
                value += 1;
                write_line(&mut master, value, &mut buf).await;
                if let Some((_, _, visible)) = seen_rx.try_iter().find(|(v, _, _)| *v >= first_value) {
                    break visible;
                }
                assert!(first_line.elapsed() < Duration::from_secs(10), "no recovery within 10 s");
            };
            recoveries.push(back.duration_since(first_line).as_secs_f64() * 1000.0);
        }
        let _ = stop.send(true);
    });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = runtime.block_on(task);
    reader.join().unwrap();
    let show = |name: &str, h: &Histogram<u64>| {
        println!(
            "{name:<24} n {:>6}  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs  max {:>6} µs",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    };
    println!("pty line-to-ring latency at {RATE_HZ} Hz (the first line of a connection is dropped as partial)");
    show("write -> read returned", &to_arrival);
    show("write -> on the ring", &to_ring);
    recoveries.sort_by(f64::total_cmp);
    println!(
        "recovery after replug (first line written -> first sample on the ring), 5 replugs: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        recoveries[recoveries.len() / 2],
        recoveries[0],
        recoveries[recoveries.len() - 1]
    );
}
