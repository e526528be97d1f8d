//! The BLE source end to end: the real `biofeedd` binary, btleplug and libdbus, talking to a fake
//! BlueZ on a private D-Bus bus (`support/fake_bluez.rs`) — the radio is the only fake. The
//! devices send real captured bytes: six consecutive Polar H10 ECG notifications from a gatttool
//! session (tests/data/ble/h10-ecg-gatttool.hex, restamped as one continuing stream) and Heart
//! Rate Measurements logged from a strap (VECTORS.md HRS-3a..d, Stack Overflow q. 60599696).
//!
//! Needs `dbus-daemon` on the PATH (.ci/run installs it).
#![cfg(feature = "ble")]

#[path = "support/ble_devices.rs"]
mod ble_devices;
mod common;
#[path = "support/fake_bluez.rs"]
mod fake_bluez;

use ble_devices::{hr_strap, pmd_control_point, polar_h10, Streaming, PMD_DATA};
use fake_bluez::{uuid16, AdapterSpec, DeviceSpec, FakeBluez, FakeBus};
use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const H10: &str = "A0:9E:1A:00:00:01";
const STRAP: &str = "C0:FF:EE:00:00:02";
/// Nanoseconds between the H10's ECG notifications (73 samples at 130.045 Hz).
const FRAME_NS: u64 = 561_347_000;

/// The six real H10 notifications, in order.
fn h10_frames() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(common::repo_path("tests/data/ble/h10-ecg-gatttool.hex")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| (0..l.len()).step_by(2).map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap()).collect())
        .collect()
}

/// Frame `k` of an endless stream cycling the real frames, stamped as continuing.
fn h10_frame(frames: &[Vec<u8>], k: u64) -> Vec<u8> {
    let mut f = frames[(k % frames.len() as u64) as usize].clone();
    let first = u64::from_le_bytes(frames[0][1..9].try_into().unwrap());
    f[1..9].copy_from_slice(&(first + k * FRAME_NS).to_le_bytes());
    f
}

/// A private bus, the fake BlueZ on it, and a model of Polar's control point: a start request
/// is answered with success and turns the device's ECG on, a stop turns it off.
struct Rig {
    bus: FakeBus,
    bluez: FakeBluez,
    streaming: Streaming,
    dir: tempfile::TempDir,
    /// When the sensors' clocks started.
    epoch: Instant,
}

impl Rig {
    fn new(devices: Vec<DeviceSpec>) -> Rig {
        let bus = FakeBus::start().expect("start a private dbus-daemon (install the dbus-daemon package)");
        let bluez = FakeBluez::serve(
            bus.address(),
            &[AdapterSpec { name: "hci0".into(), address: "00:1A:7D:DA:71:13".into() }],
        );
        for d in devices {
            bluez.add_device(d);
        }
        let streaming = Streaming::default();
        bluez.set_write_handler(pmd_control_point(streaming.clone()));
        Rig { bus, bluez, streaming, dir: tempfile::tempdir().unwrap(), epoch: Instant::now() }
    }

    fn ecg_on(&self, device: &str) -> bool {
        self.streaming.lock().unwrap().get(device).copied().unwrap_or(false) && self.bluez.subscribed(device, PMD_DATA)
    }

    /// `biofeedd run` on `sensors` (TOML of [[sensor]] tables) for `seconds`, on the fake's bus.
    fn run(&self, sensors: &str, seconds: f64) -> Child {
        let config = format!(
            "[hub]\nid = \"ble-test\"\n[window]\nlength_s = 8.0\nhop_s = 4.0\n[features]\nbaseline_s = 30.0\n{sensors}"
        );
        let path = self.dir.path().join("ble.toml");
        std::fs::write(&path, config).unwrap();
        Command::new(env!("CARGO_BIN_EXE_biofeedd"))
            .args(["run", "--config", path.to_str().unwrap(), "--output", "jsonl", "--duration", &seconds.to_string()])
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            .env("BIOFEEDD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run biofeedd")
    }
}

fn sensor(id: &str, subject: &str, address: &str, streams: &str) -> String {
    format!(
        "[[sensor]]\nid = \"{id}\"\nsubject = \"{subject}\"\n[sensor.source]\nkind = \"ble\"\naddress = \"{address}\"\nstreams = {streams}\nscan_timeout_s = 1.0\nbackoff_max_s = 0.5\n"
    )
}

/// Wait for the daemon (at most `limit`), then its feedback lines and its log; it must succeed.
fn finish(child: Child, limit: Duration) -> (Vec<Value>, String) {
    let (ok, lines, log) = finish_any(child, limit);
    assert!(ok, "biofeedd failed: {log}");
    (lines, log)
}

/// The same, however it ended: (exit 0, feedback lines, log).
fn finish_any(mut child: Child, limit: Duration) -> (bool, Vec<Value>, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("biofeedd did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.success(), out.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), err)
}

/// Send ECG frames at the H10's pace while the device streams, until `until` says stop (given
/// the frames sent so far); returns how many were delivered. The sensor's clock runs on while
/// it is not streaming, as a real one does.
fn feed_ecg(rig: &Rig, device: &str, mut until: impl FnMut(u64) -> bool) -> u64 {
    let frames = h10_frames();
    let mut sent = 0;
    let start = Instant::now();
    // Frame k is due k frame spans after the rig started: the sensor's clock.
    let mut k = rig.epoch.elapsed().as_nanos() as u64 / FRAME_NS;
    while !until(sent) && start.elapsed() < Duration::from_secs(60) {
        k += 1;
        std::thread::sleep((rig.epoch + Duration::from_nanos(k * FRAME_NS)).saturating_duration_since(Instant::now()));
        if rig.ecg_on(device) && rig.bluez.notify(device, PMD_DATA, &h10_frame(&frames, k)) {
            sent += 1;
        }
    }
    sent
}

#[test]
fn an_h10_found_by_scanning_streams_ecg_into_feedback_with_heart_rate() {
    let rig = Rig::new(vec![polar_h10(H10)]);
    let child = rig.run(&sensor("h10", "s1", H10, "[\"ecg\"]"), 15.0);
    // At the H10's own pace: a notification every 0.56 s, stamped as it would stamp it.
    let start = Instant::now();
    let sent = feed_ecg(&rig, H10, |_| start.elapsed() > Duration::from_secs(16));
    let (lines, log) = finish(child, Duration::from_secs(30));
    assert!(sent > 15, "only {sent} frames were asked for: {log}");
    assert!(lines.len() >= 2, "{} windows from {sent} frames: {log}", lines.len());
    for w in &lines {
        assert_eq!(w["label"], "unknown", "{w}");
        assert!(w["reason"].as_str().unwrap().contains("no configured model can be fed"), "{w}");
        // The six frames hold beats 122, 125 and 125 samples apart (≈ 62 bpm) and one short
        // interval where the cycle wraps, which the ectopic correction drops.
        let hr = w["features"]["hr_mean_bpm"].as_f64().unwrap_or(f64::NAN);
        assert!((55.0..70.0).contains(&hr), "heart rate {hr} in {w}");
    }
    assert!(log.contains("connected to Polar H10 8AA87D20 (A0:9E:1A:00:00:01)"), "{log}");
    // Asked what it offers (CP-3), started with it (CP-5), and stopped at shutdown: Polar
    // streams run until the central stops them.
    let writes: Vec<Vec<u8>> = rig.bluez.writes(H10).into_iter().map(|w| w.1).collect();
    assert_eq!(writes[0], [0x01, 0x00], "{writes:?}");
    assert_eq!(writes[1], [0x02, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00], "{writes:?}");
    assert_eq!(writes.last().unwrap(), &[0x03, 0x00], "{writes:?}");
}

#[test]
fn a_dropped_link_is_reconnected_and_the_stream_goes_on() {
    let rig = Rig::new(vec![polar_h10(H10)]);
    let child = rig.run(&sensor("h10", "s1", H10, "[\"ecg\"]"), 20.0);
    let start = Instant::now();
    // Stream, then drop the link (out of range and back at once), then stream again.
    let before = feed_ecg(&rig, H10, |k| k >= 16);
    rig.bluez.drop_connection(H10);
    let dropped = Instant::now();
    let dropped_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    while !rig.ecg_on(H10) && dropped.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let back = dropped.elapsed();
    let after = feed_ecg(&rig, H10, |_| start.elapsed() > Duration::from_secs(21));
    let (lines, log) = finish(child, Duration::from_secs(30));
    eprintln!("reconnected and streaming {back:?} after the drop");
    assert!(before == 16 && after > 10, "{before} frames before the drop, {after} after: {log}");
    let starts = rig.bluez.writes(H10).iter().filter(|w| w.1.starts_with(&[0x02, 0x00])).count();
    assert_eq!(starts, 2, "the stream is started again on the new link");
    assert!(log.contains("disconnected; retrying"), "{log}");
    // Windows go on after the drop, from the samples of the new link.
    let last_end = lines.last().map_or(0.0, |w| w["window_end"].as_f64().unwrap());
    assert!(last_end > dropped_unix + 4.0, "no window after the drop at {dropped_unix}: last ends {last_end}; {log}");
    for w in &lines {
        let hr = w["features"]["hr_mean_bpm"].as_f64().unwrap_or(f64::NAN);
        assert!((55.0..70.0).contains(&hr), "heart rate {hr} in {w}");
    }
}

#[test]
fn one_device_failing_never_stalls_another() {
    // A heart-rate strap streaming, and an H10 that is out of range the whole time.
    let rig = Rig::new(vec![hr_strap(STRAP), polar_h10(H10)]);
    rig.bluez.set_reachable(H10, false);
    let sensors = format!("{}{}", sensor("strap", "s1", STRAP, "[\"hr\"]"), sensor("h10", "s2", H10, "[\"ecg\"]"));
    let child = rig.run(&sensors, 13.0);
    // HRS-3a..d, a strap's real notifications: 52/51 bpm with RR 1252, 1189, 1258, 1246 /1024 s.
    let notifications: [[u8; 4]; 4] =
        [[0x16, 0x34, 0xE4, 0x04], [0x16, 0x34, 0xA5, 0x04], [0x16, 0x33, 0xEA, 0x04], [0x16, 0x33, 0xDE, 0x04]];
    let start = Instant::now();
    let mut k = 0;
    while start.elapsed() < Duration::from_secs(14) {
        let n = notifications[k % 4];
        if rig.bluez.notify(STRAP, &uuid16(0x2A37), &n) {
            k += 1;
            // Paced by the interval each carries (a real strap notifies about once a second,
            // with the beats since the last; these each carry one).
            std::thread::sleep(Duration::from_secs_f64(f64::from(u16::from_le_bytes([n[2], n[3]])) / 1024.0));
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (lines, log) = finish(child, Duration::from_secs(30));
    assert!(k >= 8, "only {k} heart-rate notifications delivered: {log}");
    let strap: Vec<&Value> = lines.iter().filter(|w| w["subject"] == "s1").collect();
    assert!(!strap.is_empty(), "the streaming strap gave no window while the other failed: {log}");
    for w in &strap {
        // RR intervals of 1.16–1.23 s: 49–52 bpm, from the strap's own RR values (no ECG).
        let hr = w["features"]["hr_mean_bpm"].as_f64().unwrap_or(f64::NAN);
        assert!((48.0..53.0).contains(&hr), "heart rate {hr} in {w}");
        assert!(w["features"]["hrv_rmssd_ms"].as_f64().is_some(), "{w}");
    }
    assert!(lines.iter().all(|w| w["subject"] != "s2"));
    assert!(log.contains("A0:9E:1A:00:00:01: A0:9E:1A:00:00:01 not found within 1 s of scanning; retrying"), "{log}");
}

#[test]
fn a_device_without_the_service_a_stream_needs_fails_its_source_once() {
    // An ECG stream asked of a plain heart-rate strap: no retry can help.
    let rig = Rig::new(vec![hr_strap(STRAP)]);
    let child = rig.run(&sensor("strap", "s1", STRAP, "[\"ecg\"]"), 4.0);
    let (ok, lines, log) = finish_any(child, Duration::from_secs(30));
    assert!(!ok && lines.is_empty(), "{log}");
    assert!(log.contains("the device has no Polar's PMD service, which stream `Ecg` needs; giving up"), "{log}");
    assert_eq!(log.matches("connected to").count() + log.matches("retrying").count(), 0, "{log}");
    assert!(log.contains("1 source(s) failed"), "{log}");
}

#[test]
fn scan_lists_devices_with_signal_and_profiles() {
    let rig = Rig::new(vec![polar_h10(H10), hr_strap(STRAP)]);
    let out = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(["scan", "--seconds", "1"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", rig.bus.address())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    // Strongest first.
    assert!(lines[1].starts_with(H10) && lines[1].contains("-61") && lines[1].contains("Polar H10 8AA87D20"), "{text}");
    assert!(lines[1].contains("hr, pmd (ecg/acc/ppg)"), "{text}");
    assert!(lines[2].starts_with(STRAP) && lines[2].contains("-70") && lines[2].ends_with("hr"), "{text}");
}
