//! BLE notification-to-ring latency and reconnect time of the real BLE source (btleplug →
//! libdbus → the supervisor → the assembler → the ring), against the fake BlueZ of
//! `tests/support/fake_bluez.rs` on a private D-Bus bus (the radio is the only fake).
//!
//! A Polar H10 model streams ECG notifications (ECG-G6 of VECTORS.md, each frame's samples set
//! to its number so it can be recognised on the ring) every 20 ms; a spinning reader takes the
//! chunks off the ring. Reported per notification, with hdrhistogram:
//! - fake BlueZ emits → on the ring (the D-Bus daemon's hop, libdbus, btleplug, our code);
//! - btleplug hands it over (the source's arrival stamp) → on the ring (our code alone).
//!
//! Then reconnects: the strap goes out of range (link dropped, no longer advertising) for 3 s
//! and comes back; the time from its return to its next samples on the ring, over 5 returns.
//! Neither includes the device's own packetisation (73 samples per notification: 0.56 s).
//!
//!   cargo bench --bench ble_latency            (3000 notifications, about 90 s)
//!   cargo bench --bench ble_latency -- 500

#[path = "../tests/support/ble_devices.rs"]
mod ble_devices;
#[path = "../tests/support/fake_bluez.rs"]
mod fake_bluez;

use biofeedd::ingest::ble::BleConfig;
use biofeedd::ingest::{Health, SourceConfig, SourceContext};
use biofeedd::ring::{self, Waker};
use ble_devices::{pmd_control_point, polar_h10, Streaming, PMD_DATA};
use fake_bluez::{AdapterSpec, FakeBluez, FakeBus};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const H10: &str = "A0:9E:1A:00:00:01";
const EVERY: Duration = Duration::from_millis(20);

/// ECG-G6 with timestamp `ns` and every sample set to `k` µV.
fn frame(template: &[u8], k: u64, ns: u64) -> Vec<u8> {
    let mut f = template.to_vec();
    f[1..9].copy_from_slice(&ns.to_le_bytes());
    for s in f[10..].chunks_exact_mut(3) {
        s.copy_from_slice(&(k as u32).to_le_bytes()[..3]);
    }
    f
}

fn main() {
    let notifications: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3000);
    let bus = FakeBus::start().expect("start a private dbus-daemon (apt-get install dbus-daemon)");
    // SAFETY: set before any thread of ours or of btleplug exists.
    unsafe { std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", bus.address()) };
    let bluez =
        FakeBluez::serve(bus.address(), &[AdapterSpec { name: "hci0".into(), address: "00:1A:7D:DA:71:13".into() }]);
    bluez.add_device(polar_h10(H10));
    let streaming = Streaming::default();
    bluez.set_write_handler(pmd_control_point(streaming.clone()));
    let on = || streaming.lock().unwrap().get(H10).copied().unwrap_or(false) && bluez.subscribed(H10, PMD_DATA);

    let config: BleConfig =
        toml::from_str(&format!("address = \"{H10}\"\nstreams = [\"ecg\"]\nscan_timeout_s = 1.0\nbackoff_max_s = 0.5"))
            .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (producer, mut consumer) = ring::channel(1 << 20, 1 << 14, Waker::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let context = SourceContext {
        sensor: "bench".into(),
        base_dir: ".".into(),
        health: Health::new(vec![producer.stats().clone()]),
        producers: vec![producer],
        shutdown,
    };
    let running = runtime.block_on(async { SourceConfig::Ble(config).build(context) }).expect("the BLE source builds");
    let task = runtime.spawn(running.task);

    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<(u64, Instant, Instant)>();
    let done = Arc::new(AtomicBool::new(false));
    let reader_done = done.clone();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        while !reader_done.load(Ordering::Relaxed) {
            let Some(mark) = consumer.pop_chunk(&mut out) else {
                std::hint::spin_loop();
                continue;
            };
            let visible = Instant::now();
            let _ = seen_tx.send(((out[0] * 1000.0).round() as u64, mark.arrival, visible));
        }
    });

    let template = {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ble/h10-ecg-gatttool.hex"))
            .unwrap();
        let line = text.lines().filter(|l| !l.starts_with('#')).nth(5).unwrap().to_string();
        (0..line.len()).step_by(2).map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap()).collect::<Vec<u8>>()
    };
    let t0_ns = 599_622_176_564_550_314u64;
    let wait_on = |limit: Duration| {
        let since = Instant::now();
        while !on() {
            assert!(since.elapsed() < limit, "the source never started the stream");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_on(Duration::from_secs(20));
    let mut sent = vec![None; notifications as usize + 1];
    let mut next = Instant::now();
    for k in 1..=notifications {
        next += EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let f = frame(&template, k, t0_ns + k * 561_347_000);
        let at = Instant::now();
        if bluez.notify(H10, PMD_DATA, &f) {
            sent[k as usize] = Some(at);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut emit_to_ring = Histogram::<u64>::new(3).unwrap();
    let mut arrival_to_ring = Histogram::<u64>::new(3).unwrap();
    for (k, arrival, visible) in seen_rx.try_iter() {
        if let Some(Some(at)) = sent.get(k as usize) {
            emit_to_ring.record(visible.saturating_duration_since(*at).as_micros() as u64).unwrap();
            arrival_to_ring.record(visible.saturating_duration_since(arrival).as_nanos() as u64).unwrap();
        }
    }

    // Out of range for 3 s, then back: time to the next samples on the ring.
    let mut returns = Vec::new();
    let mut k = 10_000_000u64;
    for _ in 0..5 {
        bluez.set_reachable(H10, false);
        bluez.drop_connection(H10);
        std::thread::sleep(Duration::from_secs(3));
        let _ = seen_rx.try_iter().count();
        let back = Instant::now();
        bluez.set_reachable(H10, true);
        let first = k;
        let visible = loop {
            k += 1;
            bluez.notify(H10, PMD_DATA, &frame(&template, k % 8_000_000, t0_ns + k * 561_347_000));
            std::thread::sleep(Duration::from_millis(5));
            if let Some((_, _, visible)) = seen_rx.try_iter().find(|(v, _, _)| *v > first % 8_000_000) {
                break visible;
            }
            assert!(back.elapsed() < Duration::from_secs(30), "no reconnect within 30 s");
        };
        returns.push(visible.duration_since(back).as_secs_f64() * 1000.0);
    }
    let _ = stop.send(true);
    done.store(true, Ordering::Relaxed);
    let _ = runtime.block_on(task);
    reader.join().unwrap();

    let show = |name: &str, h: &Histogram<u64>, unit: &str, div: f64| {
        println!(
            "{name:<34} n {:>5}  p50 {:>8.1} {unit}  p99 {:>8.1} {unit}  p99.9 {:>8.1} {unit}  max {:>8.1} {unit}",
            h.len(),
            h.value_at_quantile(0.5) as f64 / div,
            h.value_at_quantile(0.99) as f64 / div,
            h.value_at_quantile(0.999) as f64 / div,
            h.max() as f64 / div
        );
    };
    println!("BLE notification-to-ring latency, one H10 ECG notification every {} ms", EVERY.as_millis());
    show("fake BlueZ emits -> on the ring", &emit_to_ring, "µs", 1.0);
    show("btleplug delivers -> on the ring", &arrival_to_ring, "µs", 1000.0);
    returns.sort_by(f64::total_cmp);
    println!(
        "reconnect (device back in range -> its samples on the ring), 5 returns: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        returns[returns.len() / 2],
        returns[0],
        returns[returns.len() - 1]
    );
}
