//! Delivery latency against a real Mosquitto on loopback, in one run:
//!
//! 1. `rumqttc alone`: a bare rumqttc v5 client's QoS 1 publish → PUBACK (no outbox);
//! 2. `publisher + outbox`: biofeedd's publisher, every message appended to the durable outbox
//!    first (on disk before it is sent), submit → PUBACK;
//! 3. `daemon end to end`: the whole daemon on the demo recording (10 s windows every 50 ms,
//!    2,801 windows, 2× real time), from the arrival of each window's last sample to the broker's
//!    PUBACK (`end_to_end` in its summary), with the outbox on; and each beat event from the
//!    arrival of the ECG chunk that confirmed the beat to its PUBACK (`beat`), alongside.
//!
//! The peer, a Python paho-mqtt client's publish → PUBACK alone, is `benches/peers/paho_puback.py`
//! (run it against the same broker). Payloads are 1,600 bytes, the size of a feedback message.
//!
//! Each runs twice: against Mosquitto as installed (Nagle's algorithm on its sockets: a PUBACK can
//! wait for the TCP acknowledgement of the previous one, which the client's kernel delays until it
//! next sends — up to one message interval or 40 ms) and with `set_tcp_nodelay true`.
//!
//! `cargo bench --bench mqtt_delivery` (starts `mosquitto` from PATH on free ports).

use biofeedd::bridge::link::{self, Connect};
use biofeedd::bridge::outbox::record::Class;
use biofeedd::bridge::outbox::Outbox;
use biofeedd::bridge::publisher::{Publisher, StatusMessages};
use biofeedd::bridge::MqttConfig;
use biofeedd::config::Config;
use biofeedd::daemon::{self, RunOptions};
use biofeedd::ingest::replay::Speed;
use biofeedd::ingest::SourceConfig;
use biofeedd::sink::OutputFormat;
use hdrhistogram::Histogram;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WARMUP: usize = 200;
const N: usize = 2000;

fn payload() -> Vec<u8> {
    let mut p = br#"{"schema":"biofeedd.feedback.v1","seq":1,"#.to_vec();
    p.resize(1600, b'x');
    p
}

fn report(name: &str, h: &Histogram<u64>) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<22} n={:<5} p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        h.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
}

async fn rumqttc_alone(port: u16) -> Histogram<u64> {
    let mut options = MqttOptions::new("bench-rumqttc", "127.0.0.1", port);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    options.set_network_options(net);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let mut h = Histogram::new(3).unwrap();
    let body = payload();
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    for i in 0..WARMUP + N {
        let start = Instant::now();
        client.publish("bench/rumqttc", QoS::AtLeastOnce, false, body.clone()).await.unwrap();
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
                break;
            }
        }
        if i >= WARMUP {
            h.record(start.elapsed().as_micros() as u64).unwrap();
        }
    }
    h
}

async fn publisher_with_outbox(port: u16, dir: &Path, spacing: Duration) -> Histogram<u64> {
    let mut config = MqttConfig::loopback(port);
    config.client_id = Some(format!("bench-publisher-{}", spacing.as_millis()));
    let Connect::Link(link) =
        link::connect(&config, "bench", Path::new("."), "bench/status", "{}".into()).await.unwrap()
    else {
        panic!("broker unreachable")
    };
    let outbox = Outbox::open(&dir.join("outbox"), 64 << 20).unwrap();
    let status = StatusMessages { topic: "bench/status".into(), online: "{}".into(), offline: "{}".into() };
    let mut publisher: Publisher<Instant> = Publisher::new(link, outbox, status);
    let mut h = Histogram::new(3).unwrap();
    let body = payload();
    let mut sync = tokio::time::interval(biofeedd::bridge::outbox::SYNC_INTERVAL);
    for i in 0..WARMUP + N {
        let start = Instant::now();
        publisher.submit("bench/publisher", &body, Class::Live, false, None, Some(start)).unwrap();
        let acked = loop {
            tokio::select! {
                event = publisher.next_event() => if let Some(t) = event.expect("link alive") { break t },
                _ = sync.tick() => publisher.tick().unwrap(),
            }
        };
        if i >= WARMUP {
            h.record(acked.elapsed().as_micros() as u64).unwrap();
        }
        if !spacing.is_zero() {
            tokio::time::sleep(spacing).await;
        }
    }
    let _ = publisher.close(Duration::from_secs(1), |_| {}).await;
    h
}

async fn daemon_end_to_end(port: u16, dir: &Path) -> biofeedd::metrics::Summary {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join("config/demo.toml")).unwrap();
    let mut config = Config::parse(&text, Path::new("demo.toml"), &repo.join("config")).unwrap();
    config.hub.id = "bench-e2e".into();
    config.window.length_s = 10.0;
    config.window.hop_s = 0.05;
    let mut mqtt = MqttConfig::loopback(port);
    mqtt.outbox_dir = Some(dir.join("daemon-outbox"));
    config.mqtt = Some(mqtt);
    let SourceConfig::Replay(replay) = &mut config.sensors[0].source else { panic!("the demo replays") };
    replay.speed = Speed::Times(2.0);
    let options = RunOptions {
        output: OutputFormat::Quiet,
        duration: None,
        features_only: false,
        raw_dump: None,
        pressure: Some(biofeedd::governor::Level::Normal),
    };
    daemon::run(config, options).await.unwrap()
}

/// A Mosquitto on a free loopback port, with Nagle's algorithm on (its default) or off
/// (`set_tcp_nodelay true`).
fn mosquitto(dir: &Path, nodelay: bool) -> (u16, std::process::Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = dir.join(format!("mosquitto-{nodelay}.conf"));
    let extra = if nodelay { "set_tcp_nodelay true\n" } else { "" };
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}"))
        .unwrap();
    let child = std::process::Command::new("mosquitto")
        .args(["-c", conf.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto on PATH (apt-get install mosquitto)");
    std::thread::sleep(Duration::from_millis(500));
    (port, child)
}

fn main() {
    // `cargo bench` passes --bench; nothing here takes arguments.
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for nodelay in [false, true] {
        let (port, mut broker) = mosquitto(dir.path(), nodelay);
        let setting = if nodelay { "set_tcp_nodelay true" } else { "default settings (Nagle on)" };
        let run = dir.path().join(format!("run-{nodelay}"));
        runtime.block_on(async {
            println!("\nMosquitto, {setting}, on 127.0.0.1:{port}; {N} messages of 1,600 bytes after {WARMUP} warm-up");
            report("rumqttc alone", &rumqttc_alone(port).await);
            report("publisher + outbox", &publisher_with_outbox(port, &run.join("a"), Duration::ZERO).await);
            let spaced = publisher_with_outbox(port, &run.join("b"), Duration::from_millis(25)).await;
            report("  one per 25 ms", &spaced);
            let summary = daemon_end_to_end(port, &run).await;
            for s in summary.stages.iter().filter(|s| ["output", "end_to_end", "beat"].contains(&s.stage)) {
                println!(
                    "daemon {:<15} n={:<5} p50 {:.3} ms  p99 {:.3}  max {:.3}",
                    s.stage, s.count, s.p50_ms, s.p99_ms, s.max_ms
                );
            }
            println!("daemon: {} windows, {} acknowledged", summary.counters.windows, summary.counters.acked);
        });
        let _ = broker.kill();
    }
}
