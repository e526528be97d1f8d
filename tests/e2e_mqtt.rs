//! End to end: a real recording → rings → windows → features → tract → a real MQTT broker →
//! a subscriber, checking the feedback payloads, their order and one message per hop.

mod common;

use biofeedd::config::Config;
use biofeedd::daemon;
use biofeedd::features::beats::detect_ecg;
use biofeedd::ingest::replay::Speed;
use biofeedd::ingest::SourceConfig;
use biofeedd::signal::Modality;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn demo_config(port: u16, hub: &str) -> Config {
    let text = std::fs::read_to_string(common::repo_path("config/demo.toml")).unwrap();
    let mut config = Config::parse(&text, Path::new("demo.toml"), &common::repo_path("config")).expect("demo config");
    config.hub.id = hub.into();
    config.mqtt = Some(common::loopback_mqtt(port));
    let SourceConfig::Replay(replay) = &mut config.sensors[0].source else { panic!("the demo replays a recording") };
    replay.speed = Speed::Max;
    config
}

/// Every beat the detector finds in the demo's ECG, once, in order, at its time on the
/// recording clock, with intervals that match those times.
fn assert_beats_complete_and_in_order(beats: &[Value], config: &Config) {
    let source = config.sensors[0].source.as_replay().unwrap();
    let rec = biofeedd::ingest::replay::load(source, &config.base_dir.join(&source.path), 0.0).expect("the demo loads");
    let ecg = rec.channels.iter().find(|c| c.spec.modality == Modality::Ecg).expect("the demo has ECG");
    let (segment, fs) = (&ecg.segments[0], ecg.spec.rate_hz);
    let expected: Vec<f64> =
        detect_ecg(&segment.samples, fs).iter().map(|&i| segment.start_time + i as f64 / fs).collect();
    assert!(expected.len() > 150, "{} beats in 150 s", expected.len());
    assert_eq!(beats.len(), expected.len(), "one message per beat");
    // The replay puts the recording at the current time: compare times from the first beat.
    let shift = beats[0]["t"].as_f64().unwrap() - expected[0];
    for (k, (b, &t)) in beats.iter().zip(&expected).enumerate() {
        assert_eq!(b["seq"], k as u64, "in order, no gaps");
        assert_eq!(b["source"], "ecg");
        assert!((b["t"].as_f64().unwrap() - shift - t).abs() < 1e-3, "beat {k}: {b} vs {t}");
        if k > 0 {
            let rr = b["rr_ms"].as_f64().expect("an interval after the first beat");
            assert!((rr - (t - expected[k - 1]) * 1000.0).abs() < 1.0, "{b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_broker_delivers_every_window_in_order() {
    let port = common::broker_port();
    // A hub id of our own, so retained messages of earlier runs on a long-lived broker do not mix in.
    let hub = format!("test-hub-{}", std::process::id());
    let mut messages = common::subscribe(port, &format!("biofeedd/v1/{hub}/#")).await;
    let options = common::quiet_run();
    let summary = tokio::time::timeout(Duration::from_secs(60), daemon::run(demo_config(port, &hub), options))
        .await
        .expect("replay finishes")
        .expect("replay succeeds");

    // 150 s recording, 60 s windows every 5 s: (150 - 60) / 5 + 1 = 19 windows.
    assert_eq!(summary.counters.windows, 19);
    assert_eq!(summary.counters.acked, 19, "the broker acknowledged every feedback message");

    let mut feedback = Vec::new();
    let mut beats = Vec::new();
    let mut status_states = Vec::new();
    let mut sensor_states = Vec::new();
    let mut reports = 0;
    while status_states.last().map(String::as_str) != Some("offline") {
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .expect("messages keep coming until offline status")
            .expect("subscriber alive");
        let root = format!("biofeedd/v1/{hub}");
        if topic == format!("{root}/status") {
            common::assert_schema(&payload, "status.v1.json");
            status_states.push(payload["state"].as_str().unwrap().to_string());
            let channels = &payload["sensors"][0]["channels"];
            assert_eq!(channels.as_array().unwrap().len(), 3, "{payload}");
            assert_eq!(channels[0]["type"], "ecg");
            assert_eq!(channels[0]["nominal_srate"], 100.0);
        } else if topic == format!("{root}/sensor/demo-replay/state") {
            common::assert_schema(&payload, "sensor_state.v1.json");
            sensor_states.push(payload["state"].as_str().unwrap().to_string());
        } else if topic == format!("{root}/metrics") {
            common::assert_schema(&payload, "metrics.v1.json");
            reports += 1;
        } else if topic == format!("{root}/s01/beat") {
            common::assert_schema(&payload, "beat.v1.json");
            beats.push(payload);
        } else {
            assert_eq!(topic, format!("{root}/s01/feedback"));
            common::assert_schema(&payload, "feedback.v1.json");
            feedback.push(payload);
        }
    }
    assert_beats_complete_and_in_order(&beats, &demo_config(port, &hub));
    assert_eq!(status_states, ["online", "offline"]);
    assert_eq!(feedback.len(), 19, "one message per hop");
    assert_eq!(sensor_states.last().map(String::as_str), Some("ended"), "{sensor_states:?}");
    let _ = reports; // a flat-out replay ends before the first 10 s report; tests/mqtt_delivery.rs checks them
    let runs: std::collections::BTreeSet<&str> = feedback.iter().map(|f| f["run"].as_str().unwrap()).collect();
    assert_eq!(runs.len(), 1, "one run id for the whole run");

    for (i, f) in feedback.iter().enumerate() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_1_delivers_every_window_too() {
    let port = common::broker_port_v311();
    let hub = format!("test-v311-{}", std::process::id());
    let mut feedback = common::subscribe_v311(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    let mut config = demo_config(port, &hub);
    config.mqtt.as_mut().unwrap().protocol = biofeedd::bridge::config::Protocol::V311;
    let options = common::quiet_run();
    let summary = tokio::time::timeout(Duration::from_secs(60), daemon::run(config, options))
        .await
        .expect("replay finishes")
        .expect("replay succeeds");
    assert_eq!(summary.counters.acked, 19, "the broker acknowledged every feedback message");
    for seq in 0..19u64 {
        let (_, payload) = tokio::time::timeout(Duration::from_secs(10), feedback.recv()).await.unwrap().unwrap();
        common::assert_schema(&payload, "feedback.v1.json");
        assert_eq!(payload["seq"], seq);
    }
}

/// A worker's reply, each outcome as `reply.rs` serialises it, matches `offload_reply.v1.json`;
/// one outcome's fields under the other's tag, or a required field missing, do not.
#[test]
fn offload_replies_match_their_schema() {
    use biofeedd::bridge::offload::reply::{hex, OffloadReply, Outcome, REPLY_SCHEMA};
    use biofeedd::fusion::Variant;

    let reply = |outcome| OffloadReply {
        schema: REPLY_SCHEMA.into(),
        worker: "worker-1".into(),
        model: "stress-s2".into(),
        sha256: hex(&[0xab; 32]),
        outcome,
    };
    let ok = reply(Outcome::Ok {
        variant: Variant::Int8,
        stage: 2,
        classes: vec!["rest".into(), "stress".into()],
        probabilities: vec![0.25, 0.75],
        compute_ms: 3.5,
    });
    let refused = reply(Outcome::Refused { reason: "no model with this SHA-256".into() });
    let as_value = |r: &OffloadReply| -> Value { serde_json::from_slice(&r.to_json()).expect("a reply is JSON") };
    for r in [&ok, &refused] {
        common::assert_schema(&as_value(r), "offload_reply.v1.json");
    }

    let text = std::fs::read_to_string(common::repo_path("schemas/offload_reply.v1.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let mut mixed = as_value(&refused);
    mixed["variant"] = Value::from("fp32");
    assert!(!jsonschema::is_valid(&schema, &mixed), "a refusal with a variant: {mixed}");
    let mut short = as_value(&ok);
    short.as_object_mut().unwrap().remove("compute_ms");
    assert!(!jsonschema::is_valid(&schema, &short), "an ok without compute_ms: {short}");
}
