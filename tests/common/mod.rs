//! Helpers shared by the integration tests: an embedded rumqttd broker and paths to fixtures.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
}

/// Start a real MQTT 5 broker (rumqttd) on a free loopback port; it lives until the test process ends.
pub fn start_broker() -> u16 {
    start_rumqttd("v5")
}

/// The broker for MQTT 3.1.1 tests: Mosquitto under `.ci/run` (it speaks both versions on one
/// port), else an embedded rumqttd listening for 3.1.1.
pub fn broker_port_v311() -> u16 {
    match std::env::var("BIOFEEDD_TEST_MQTT_PORT") {
        Ok(p) => p.parse().expect("BIOFEEDD_TEST_MQTT_PORT is a port number"),
        Err(_) => start_rumqttd("v4"),
    }
}

/// rumqttd with one listener of `version` (`v4` = MQTT 3.1.1, `v5`).
fn start_rumqttd(version: &str) -> u16 {
    let port = free_port();
    let config = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 1048576
max_segment_count = 10

[{version}.1]
name = "{version}-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[{version}.1.connections]
connection_timeout_ms = 5000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&config).expect("rumqttd config");
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        broker.start().expect("broker runs");
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    port
}

/// The broker the MQTT tests use: `.ci/run` points them at Mosquitto with
/// `BIOFEEDD_TEST_MQTT_PORT`; otherwise an embedded rumqttd serves them.
pub fn broker_port() -> u16 {
    match std::env::var("BIOFEEDD_TEST_MQTT_PORT") {
        Ok(p) => p.parse().expect("BIOFEEDD_TEST_MQTT_PORT is a port number"),
        Err(_) => start_broker(),
    }
}

/// Subscribe to `filter` on the broker at `port` and forward (topic, JSON payload) pairs; returns
/// once the broker has acknowledged the subscription.
pub async fn subscribe(port: u16, filter: &str) -> tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let id = format!("test-subscriber-{}", filter.replace(['/', '+', '#'], "_"));
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client; // keep the request channel open
        let mut subscribed = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8(p.topic.to_vec()).unwrap();
                    let payload = serde_json::from_slice(&p.payload).expect("payload is JSON");
                    if tx.send((topic, payload)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber connection failed: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await.expect("SUBACK in time").unwrap();
    rx
}

/// Check `payload` against `schemas/{file}` with a full JSON Schema (2020-12) validator.
pub fn assert_schema(payload: &serde_json::Value, file: &str) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path(&format!("schemas/{file}"))).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> =
        validator.iter_errors(payload).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "payload does not match schemas/{file}: {errors:?}\n{payload}");
}

/// `[mqtt]` for a broker on this machine, with a fresh outbox under cargo's temporary folder for
/// tests (never the user's state directory, never one an earlier test run left behind).
pub fn loopback_mqtt(port: u16) -> biofeedd::bridge::MqttConfig {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("outbox/{}-{nanos}-{n}", std::process::id()));
    let mut config = biofeedd::bridge::MqttConfig::loopback(port);
    config.outbox_dir = Some(dir);
    config
}

/// [`subscribe`] over MQTT 3.1.1.
pub async fn subscribe_v311(
    port: u16,
    filter: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options =
        MqttOptions::new(format!("test-subscriber-v311-{}", filter.replace(['/', '+', '#'], "_")), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut subscribed = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let payload = serde_json::from_slice(&p.payload).expect("payload is JSON");
                    if tx.send((p.topic.clone(), payload)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber connection failed: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await.expect("SUBACK in time").unwrap();
    rx
}

/// A run that writes nothing to stdout, with the governor pinned at normal: the machine's load
/// while the tests run must not change which variant answers.
pub fn quiet_run() -> biofeedd::daemon::RunOptions {
    biofeedd::daemon::RunOptions {
        output: biofeedd::sink::OutputFormat::Quiet,
        duration: None,
        features_only: false,
        raw_dump: None,
        pressure: Some(biofeedd::governor::Level::Normal),
    }
}
