//! End to end: a real recording → rings → windows → features → tract → a real MQTT broker →
//! a subscriber, checking the feedback payloads, their order and one message per hop.

mod common;

use biofeedd::bridge::MqttConfig;
use biofeedd::config::Config;
use biofeedd::daemon::{self, RunOptions};
use biofeedd::ingest::replay::Speed;
use biofeedd::ingest::SourceConfig;
use biofeedd::sink::OutputFormat;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn demo_config(port: u16, hub: &str) -> Config {
    let text = std::fs::read_to_string(common::repo_path("config/demo.toml")).unwrap();
    let mut config = Config::parse(&text, Path::new("demo.toml"), &common::repo_path("config")).expect("demo config");
    config.hub.id = hub.into();
    config.mqtt = Some(MqttConfig::loopback(port));
    let SourceConfig::Replay(replay) = &mut config.sensors[0].source else { panic!("the demo replays a recording") };
    replay.speed = Speed::Max;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_broker_delivers_every_window_in_order() {
    let port = common::broker_port();
    // A hub id of our own, so retained messages of earlier runs on a long-lived broker do not mix in.
    let hub = format!("test-hub-{}", std::process::id());
    let mut messages = common::subscribe(port, &format!("biofeedd/v1/{hub}/#")).await;
    let options = RunOptions { output: OutputFormat::Quiet, duration: None, features_only: false, raw_dump: None };
    let summary = tokio::time::timeout(Duration::from_secs(60), daemon::run(demo_config(port, &hub), options))
        .await
        .expect("replay finishes")
        .expect("replay succeeds");

    // 150 s recording, 60 s windows every 5 s: (150 - 60) / 5 + 1 = 19 windows.
    assert_eq!(summary.counters.windows, 19);
    assert_eq!(summary.counters.acked, 19, "the broker acknowledged every feedback message");

    let mut feedback = Vec::new();
    let mut status_states = Vec::new();
    while status_states.last().map(String::as_str) != Some("offline") {
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .expect("messages keep coming until offline status")
            .expect("subscriber alive");
        if topic == format!("biofeedd/v1/{hub}/status") {
            assert_eq!(payload["schema"], "biofeedd.status.v1");
            status_states.push(payload["state"].as_str().unwrap().to_string());
            let channels = &payload["sensors"][0]["channels"];
            assert_eq!(channels.as_array().unwrap().len(), 3, "{payload}");
            assert_eq!(channels[0]["type"], "ecg");
            assert_eq!(channels[0]["nominal_srate"], 100.0);
        } else {
            assert_eq!(topic, format!("biofeedd/v1/{hub}/s01/feedback"));
            feedback.push(payload);
        }
    }
    assert_eq!(status_states, ["online", "offline"]);
    assert_eq!(feedback.len(), 19, "one message per hop");

    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(common::repo_path("schemas/feedback.v1.json")).unwrap()).unwrap();
    for (i, f) in feedback.iter().enumerate() {
        assert_matches_schema(f, &schema);
        assert_eq!(f["seq"], i as u64, "in order, no gaps");
        assert_eq!(f["subject"], "s01");
        let (start, end) = (f["window_start"].as_f64().unwrap(), f["window_end"].as_f64().unwrap());
        assert!((end - start - 60.0).abs() < 1e-6);
        if i > 0 {
            let prev = feedback[i - 1]["window_start"].as_f64().unwrap();
            assert!((start - prev - 5.0).abs() < 1e-6, "one message per 5 s hop");
        }
        let label = f["label"].as_str().unwrap();
        if i < 4 {
            // The demo's first four windows are its 75 s baseline: the cascade waits for it.
            assert_eq!((label, &f["source"]), ("unknown", &Value::from("none")), "{f}");
            assert!(f["reason"].as_str().unwrap().contains("calibrating"), "{f}");
        } else {
            assert!(label == "rest" || label == "stress", "{label}");
            let p = f["probabilities"].as_object().unwrap();
            let sum: f64 = p.values().map(|v| v.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-4);
            let stage = f["exit_stage"].as_u64().unwrap();
            assert!(stage <= 1, "no raw PPG in the demo, so no stage 2: {f}");
            assert_eq!(f["model"], format!("stress-s{stage}"));
            assert_eq!(f["source"], "edge");
        }
        let hr = f["features"]["hr_mean_bpm"].as_f64().expect("heart rate from the ECG");
        assert!((40.0..120.0).contains(&hr), "{hr}");
    }
}

/// Check the keys of a payload against a JSON Schema's `required` and `properties` (with
/// `additionalProperties: false`) and the primitive `type` of each property. Enough to catch a
/// payload and its documented schema drifting apart.
fn assert_matches_schema(payload: &Value, schema: &Value) {
    let obj = payload.as_object().expect("object payload");
    let props = schema["properties"].as_object().unwrap();
    for key in schema["required"].as_array().unwrap() {
        assert!(obj.contains_key(key.as_str().unwrap()), "payload lacks required `{key}`: {payload}");
    }
    for (key, value) in obj {
        let prop = props.get(key).unwrap_or_else(|| panic!("payload key `{key}` is not in the schema"));
        let types: Vec<&str> = match &prop["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            _ => continue,
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert!(
            types.contains(&actual) || (actual == "integer" && types.contains(&"number")),
            "`{key}` is {actual}, the schema says {types:?}"
        );
    }
}
