//! Serial ingest over real pseudo-terminals: the simulator (the same code `biofeedd sim serial`
//! runs) plays the bundled recording as a device, the daemon reads it through its serial source,
//! and feedback arrives on a real MQTT broker. Unplugging (closing the pty) and replugging (a new
//! one behind the same link) recover, and the windows across the hole carry the `gap` flag.

#![cfg(feature = "serial")]

mod common;

use biofeedd::config::Config;
use biofeedd::daemon::{self, RunOptions};
use biofeedd::ingest::protocol::ProtocolConfig;
use biofeedd::ingest::replay::{self, CsvChannel, RecordingStream, ReplayConfig, ReplayFormat, StartTime};
use biofeedd::ingest::serial::SerialConfig;
use biofeedd::ingest::{LinkState, SourceConfig};
use biofeedd::signal::Modality;
use biofeedd::sim::{DeviceFrames, Impairments, SimPort, SimProtocol, SimReport};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The bundled 150 s demo recording (ECG, EDA, respiration at 100 Hz) as a stream.
fn demo() -> RecordingStream {
    let channel = |column: &str, modality, unit: &str| CsvChannel {
        column: column.into(),
        name: None,
        modality,
        unit: unit.into(),
        scale: 1.0,
    };
    let config = ReplayConfig {
        format: ReplayFormat::Csv,
        rate_hz: Some(100.0),
        start_time: StartTime::Zero,
        channels: vec![
            channel("ECG", Modality::Ecg, "mV"),
            channel("EDA", Modality::Eda, "uS"),
            channel("RSP", Modality::Resp, "a.u."),
        ],
        ..ReplayConfig::e4(common::repo_path("data/demo/bio_eventrelated_100hz.csv"))
    };
    replay::open(&config, &config.path, 0.0).expect("the demo recording opens")
}

/// A simulated device behind `link`, playing the demo at `speed`× until stopped or done.
struct Device {
    stop: watch::Sender<bool>,
    task: JoinHandle<SimReport>,
}

fn plug(protocol: SimProtocol, link: &Path, speed: f64, impairments: Impairments) -> (Device, ProtocolConfig) {
    let stream = demo();
    let frames = DeviceFrames::new(protocol, stream.specs()).unwrap();
    let config = frames.protocol_config();
    let port = SimPort::open(Some(link)).expect("a pseudo-terminal");
    let (stop, stopped) = watch::channel(false);
    let task =
        tokio::spawn(async move { port.play(stream, frames, speed, impairments, stopped).await.expect("plays") });
    (Device { stop, task }, config)
}

impl Device {
    /// Close the pty: the daemon sees the device go away.
    async fn unplug(self) -> SimReport {
        let _ = self.stop.send(true);
        self.task.await.expect("the simulator task")
    }
}

fn daemon_config(port: u16, hub: &str, link: &Path, protocol: ProtocolConfig) -> Config {
    // The demo's settings (the bundled cascade's 60 s windows every 5 s, a 75 s baseline), its
    // replayed sensor swapped for the serial device.
    let text = std::fs::read_to_string(common::repo_path("config/demo.toml")).unwrap();
    let mut config = Config::parse(&text, Path::new("demo.toml"), &common::repo_path("config")).expect("demo config");
    config.hub.id = hub.into();
    config.sensors.clear();
    let mut source = SerialConfig::new(link, protocol);
    source.silence_timeout_s = 1.0;
    source.backoff_initial_s = 0.05;
    source.backoff_max_s = 0.2;
    config.sensors.push(biofeedd::config::SensorConfig {
        id: "chest".into(),
        subject: "s01".into(),
        source: SourceConfig::Serial(source),
    });
    config.mqtt = Some(common::loopback_mqtt(port));
    config
}

fn options() -> RunOptions {
    common::quiet_run()
}

/// The pty tests take turns. Each runs a simulator at up to 20× and a daemon with its models;
/// side by side on two cores they starve each other, and a simulator that cannot write for
/// 50 ms drops bytes as a device would, so windows then rightly carry `gap` (seen once in a
/// loaded `cargo test`).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>) -> Value {
    let (_, payload) =
        tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("feedback in time").expect("open");
    payload
}

fn has_gap(feedback: &Value) -> bool {
    feedback["quality"].as_array().unwrap().iter().any(|q| q["flags"].as_array().unwrap().iter().any(|f| f == "gap"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_protocol_streams_from_a_pty_into_feedback() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let port = common::broker_port();
    for protocol in [SimProtocol::Line, SimProtocol::Cyton, SimProtocol::Framed] {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("device");
        let hub = format!("serial-{protocol:?}-{}", std::process::id()).to_lowercase();
        let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
        let (device, protocol_config) = plug(protocol, &link, 20.0, Impairments::new(0.0, 0.0, 1));
        let running = daemon::start(daemon_config(port, &hub, &link, protocol_config), options()).await.unwrap();
        // Windows over a gap-free stream: clean, with the heart rate of the recording.
        for _ in 0..3 {
            let f = next(&mut feedback).await;
            assert!(!has_gap(&f), "{protocol:?}: {f}");
            let hr = f["features"]["hr_mean_bpm"].as_f64().unwrap_or(f64::NAN);
            assert!((40.0..150.0).contains(&hr), "{protocol:?}: heart rate {hr} in {f}");
        }
        let (_, health) = running.health().remove(0);
        assert_eq!(health.state, LinkState::Streaming, "{protocol:?}");
        assert_eq!((health.decode_errors, health.lost_samples), (0, 0), "{protocol:?}: {health:?}");
        running.stop();
        let summary = running.wait().await.unwrap();
        assert!(summary.failed_sources.is_empty());
        device.unplug().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_and_replug_recover_and_the_hole_is_a_gap() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let port = common::broker_port();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("device");
    let hub = format!("serial-replug-{}", std::process::id());
    let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    let (device, protocol_config) = plug(SimProtocol::Line, &link, 10.0, Impairments::new(0.0, 0.0, 1));
    let running = daemon::start(daemon_config(port, &hub, &link, protocol_config.clone()), options()).await.unwrap();
    // Two clean windows, then pull the plug for 1.5 s of host time.
    for _ in 0..2 {
        assert!(!has_gap(&next(&mut feedback).await));
    }
    device.unplug().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, health) = running.health().remove(0);
    assert_eq!(health.state, LinkState::Reconnecting, "{health:?}");
    let (device, _) = plug(SimProtocol::Line, &link, 10.0, Impairments::new(0.0, 0.0, 1));
    // Windows overlapping the hole carry the gap flag; later ones are clean again.
    let mut saw_gap = false;
    let mut clean_after = 0;
    while clean_after < 2 {
        let f = next(&mut feedback).await;
        if has_gap(&f) {
            saw_gap = true;
        } else if saw_gap {
            clean_after += 1;
        }
    }
    let (_, health) = running.health().remove(0);
    assert_eq!((health.state, health.reconnects), (LinkState::Streaming, 1), "{health:?}");
    running.stop();
    running.wait().await.unwrap();
    device.unplug().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_garbage_are_counted_and_streaming_goes_on() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let port = common::broker_port();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("device");
    let hub = format!("serial-garbage-{}", std::process::id());
    let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    for protocol in [SimProtocol::Line, SimProtocol::Cyton, SimProtocol::Framed] {
        let (device, protocol_config) = plug(protocol, &link, 20.0, Impairments::new(0.01, 0.01, 42));
        let running = daemon::start(daemon_config(port, &hub, &link, protocol_config), options()).await.unwrap();
        for _ in 0..2 {
            next(&mut feedback).await;
        }
        let (_, health) = running.health().remove(0);
        assert!(health.lost_samples > 0 && health.decode_errors > 0, "{protocol:?}: {health:?}");
        assert_eq!(health.state, LinkState::Streaming);
        running.stop();
        running.wait().await.unwrap();
        let report = device.unplug().await;
        assert!(report.lost_frames > 0 && report.garbled_frames > 0, "{report:?}");
        while tokio::time::timeout(Duration::from_millis(200), feedback.recv()).await.is_ok() {}
    }
}

#[test]
fn the_serial_sim_configs_read_what_the_readme_simulator_sends() {
    // The README's `sim serial --protocol P --format csv --rate 100 --input <demo>` picks the
    // demo's columns by their names, as `replay` does.
    let demo = common::repo_path("data/demo/bio_eventrelated_100hz.csv");
    let channels = replay::csv::auto_channels(&replay::csv::read_header(&demo).unwrap());
    let config = ReplayConfig { format: ReplayFormat::Csv, rate_hz: Some(100.0), channels, ..ReplayConfig::e4(demo) };
    for (protocol, file) in [
        (SimProtocol::Line, "config/serial-sim.toml"),
        (SimProtocol::Cyton, "config/serial-sim-cyton.toml"),
        (SimProtocol::Framed, "config/serial-sim-framed.toml"),
    ] {
        let stream = replay::open(&config, &config.path, 0.0).unwrap();
        let sent = DeviceFrames::new(protocol, stream.specs()).unwrap().protocol_config();
        let text = std::fs::read_to_string(common::repo_path(file)).unwrap();
        let parsed = Config::parse(&text, Path::new(file), Path::new(".")).expect(file);
        let SourceConfig::Serial(serial) = &parsed.sensors[0].source else { panic!("{file}: a serial source") };
        assert_eq!(serial.protocol, sent, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_line_without_newline_is_one_error_and_the_stream_goes_on() {
    let _turn = ONE_AT_A_TIME.lock().await;
    use biofeedd::ingest::protocol::line;
    use tokio::io::AsyncWriteExt;
    use tokio_serial::{SerialPort, SerialStream};
    let (mut master, slave) = SerialStream::pair().unwrap();
    let path = slave.name().unwrap();
    let spec = biofeedd::signal::ChannelSpec::new("x", Modality::Ecg, "mV", 250.0);
    let protocol = ProtocolConfig::Line(line::LineConfig::for_encoder(&[spec], line::Separator::Comma, None));
    let port = common::broker_port();
    let mut config = daemon_config(port, "serial-flood", Path::new(&path), protocol);
    config.mqtt = None;
    let features_only = RunOptions { features_only: true, ..options() };
    let running = daemon::start(config, features_only).await.unwrap();
    let mut buf = Vec::new();
    // A first line, then 10 MB of one line (a device gone mad, or the wrong baud rate), in 64 KiB
    // writes, then normal lines again.
    line::encode_line(0, &[0.0], line::Separator::Comma, &mut buf);
    master.write_all(&buf).await.unwrap();
    let junk = vec![b'7'; 64 * 1024];
    for _ in 0..160 {
        master.write_all(&junk).await.unwrap();
    }
    master.write_all(b"\n").await.unwrap();
    for k in 1..=500u64 {
        buf.clear();
        line::encode_line(k, &[k as f64], line::Separator::Comma, &mut buf);
        master.write_all(&buf).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let health = loop {
        let (_, health) = running.health().remove(0);
        if health.samples >= 499 || tokio::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(health.decode_errors, 1, "{health:?}");
    assert!(health.samples >= 499, "{health:?}");
    assert_eq!(health.state, LinkState::Streaming);
    running.stop();
    running.wait().await.unwrap();
    drop(slave);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_late_still_gets_the_cyton_stream() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // The board idles until `b`; the simulator went on through the recording meanwhile and must
    // not make the late host wait for the time it idled.
    let port = common::broker_port();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("device");
    let hub = format!("serial-late-{}", std::process::id());
    let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    let (device, protocol_config) = plug(SimProtocol::Cyton, &link, 20.0, Impairments::new(0.0, 0.0, 1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = daemon::start(daemon_config(port, &hub, &link, protocol_config), options()).await.unwrap();
    next(&mut feedback).await;
    running.stop();
    running.wait().await.unwrap();
    device.unplug().await;
}
