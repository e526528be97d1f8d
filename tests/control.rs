//! The control channel reaches the running pipeline: a variant switch sent from outside while a
//! replay streams shows up in the feedback that follows, and a snapshot reports it.

mod common;

use biofeedd::config::Config;
use biofeedd::control::Control;
use biofeedd::daemon;
use biofeedd::fusion::Variant;
use biofeedd::ingest::LinkState;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The E4 excerpt (150 s) at 10× real time, with a 75 s baseline so answers start half-way.
fn config(port: u16, hub: &str) -> Config {
    let excerpt = common::repo_path("tests/data/e4-S05-excerpt");
    let text = format!(
        r#"
[hub]
id = "{hub}"
[features]
baseline_s = 75.0
[[sensor]]
id = "wrist"
subject = "s05"
[sensor.source]
kind = "replay"
format = "e4"
path = "{}"
speed = 10
"#,
        excerpt.display()
    );
    let mut config = Config::parse(&text, Path::new("control.toml"), Path::new(".")).expect("test config");
    config.mqtt = Some(common::loopback_mqtt(port));
    config
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>) -> Option<Value> {
    let message = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("feedback in time");
    message.map(|(_, payload)| payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_switch_sent_while_a_replay_runs_changes_the_feedback_that_follows() {
    let port = common::broker_port();
    let hub = format!("control-{}", std::process::id());
    let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    let options = common::quiet_run();
    let running = daemon::start(config(port, &hub), options).await.expect("daemon starts");
    let control = running.control();

    // Until the switch every stage runs its manifest's own variant.
    let before = control.snapshot().await.expect("pipeline answers");
    assert_eq!(before.variants, [Variant::Fp32, Variant::Fp32, Variant::Fp32]);
    loop {
        let f = next(&mut feedback).await.expect("a feedback message before the replay ends");
        if f["source"] == "edge" {
            assert_eq!(f["variant"], "fp32", "{f}");
            break;
        }
    }
    let (_, health) = &running.health()[0];
    assert_eq!(health.state, LinkState::Streaming, "the switch happens while the replay streams");

    control.send(Control::SetVariant(Variant::Int8)).expect("pipeline alive");
    let after = control.snapshot().await.expect("pipeline answers");
    assert_eq!(after.variants, [Variant::Fp32, Variant::Int8, Variant::Int8], "stage 0 has no int8");
    assert!(after.windows > before.windows);

    // Every window closed after the snapshot answered at a stage with an int8 variant says so.
    let mut switched = 0;
    while let Some(f) = next(&mut feedback).await {
        let seq = f["seq"].as_u64().unwrap();
        if f["source"] == "edge" && f["exit_stage"].as_u64().unwrap() >= 1 && seq >= after.windows {
            assert_eq!(f["variant"], "int8", "{f}");
            switched += 1;
        }
        if seq == 18 {
            break; // (150 s - 60 s) / 5 s + 1 = 19 windows: 0..=18.
        }
    }
    assert!(switched > 0, "some window after the switch exited at stage 1 or 2");
    let summary = running.wait().await.expect("clean end");
    assert_eq!(summary.counters.windows, 19);
}
