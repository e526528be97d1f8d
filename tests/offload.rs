//! Offload end to end through a real broker (embedded rumqttd; Mosquitto in `.ci/run`): a hub
//! pinned at critical pressure sends its heavy stage to `biofeedd worker`, merges the answers
//! (`source = "cloud"`), falls back when the worker is late or gone and recovers when it
//! returns; a worker refuses a model it does not have, clearly.
//!
//! Each test serves only its own hub (`[offload] hubs`), so workers of parallel tests sharing
//! the broker never take each other's requests.

#![cfg(feature = "worker")]

mod common;

use biofeedd::bridge::offload::link;
use biofeedd::bridge::offload::reply::{hex, OffloadReply, Outcome, REPLY_SCHEMA};
use biofeedd::bridge::offload::wire::{OffloadRequest, WireChannel};
use biofeedd::bridge::Topics;
use biofeedd::config::Config;
use biofeedd::daemon::{self, RunOptions};
use biofeedd::governor::Level;
use biofeedd::signal::Modality;
use bytes::Bytes;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A hub replaying S05 (the 22 min evaluation excerpt, or the 150 s one) with offload to the
/// group `group` and every tier's deadline at `deadline_ms`.
fn hub_config(port: u16, hub: &str, long: bool, speed: f64, deadline_ms: f64) -> Config {
    let path = common::repo_path(if long { "tests/data/stress-eval/S05" } else { "tests/data/e4-S05-excerpt" });
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
speed = {speed}
[mqtt]
url = "mqtt://127.0.0.1:{port}"
[offload]
hubs = "{hub}"
[tiers.deadline_ms]
premium = {deadline_ms}
standard = {deadline_ms}
basic = {deadline_ms}
"#,
        path.display()
    );
    let mut config = Config::parse(&text, Path::new("offload.toml"), Path::new(".")).expect("hub config");
    // The same broker, with an outbox of this test's own.
    config.mqtt = Some(common::loopback_mqtt(port));
    config
}

/// What a worker for `hub` reads: the broker, the bundled models, the hub it serves.
fn worker_toml(port: u16, hub: &str) -> String {
    format!("[hub]\nid = \"{hub}-w\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n[offload]\nhubs = \"{hub}\"\n")
}

/// A worker needs no sensors: loaded as `biofeedd worker` loads it, from a file.
fn worker_config(port: u16, hub: &str) -> Config {
    Config::load_settings(&worker_file(port, hub)).expect("worker config")
}

fn worker_file(port: u16, hub: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("worker-{hub}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("worker.toml");
    std::fs::write(&file, worker_toml(port, hub)).unwrap();
    file
}

/// The daemon pinned at critical: the cheapest stage here, the heavy one offloaded.
fn critical() -> RunOptions {
    RunOptions { pressure: Some(Level::Critical), ..common::quiet_run() }
}

/// An in-process worker; `stop` drains it.
fn spawn_worker(config: Config) -> (watch::Sender<bool>, tokio::task::JoinHandle<u64>) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let stats = biofeedd::worker::serve(&config, stopped, &Default::default()).await.expect("worker runs");
        stats.answered.load(std::sync::atomic::Ordering::Relaxed)
    });
    (stop, task)
}

/// The next feedback message, or `None` once `wait` passes without one.
async fn next_feedback(rx: &mut mpsc::UnboundedReceiver<(String, Value)>, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, rx.recv()).await.ok().flatten().map(|(_, v)| v)
}

/// Wait for a feedback message whose source is `source`, checking each against the schema.
async fn until_source(rx: &mut mpsc::UnboundedReceiver<(String, Value)>, source: &str, within: Duration) -> Value {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let f = next_feedback(rx, left).await.unwrap_or_else(|| panic!("no `{source}` feedback within {within:?}"));
        common::assert_schema(&f, "feedback.v1.json");
        if f["source"] == source {
            return f;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_answers_the_heavy_stage_and_the_feedback_says_cloud() {
    let port = common::broker_port();
    let hub = format!("offload-ok-{}", std::process::id());
    let (stop, worker) = spawn_worker(worker_config(port, &hub));
    // The worker's subscription must be in place before the first request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    let mut status = common::subscribe(port, &format!("biofeedd/v1/{hub}/status")).await;
    let running = daemon::start(hub_config(port, &hub, false, 10.0, 2000.0), critical()).await.unwrap();
    let snapshot = running.control().snapshot().await.unwrap();
    assert_eq!(snapshot.plan.as_ref().map(|p| (p.level, p.local_stages)), Some((Level::Critical, Some(1))));

    let cloud = until_source(&mut feedback, "cloud", Duration::from_secs(40)).await;
    // Critical pressure runs int8 variants where a stage has one, on the worker too.
    assert_eq!((cloud["model"].as_str(), cloud["exit_stage"].as_u64()), (Some("stress-s2-int8"), Some(2)), "{cloud}");
    let p: f64 = cloud["probabilities"].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
    assert!((p - 1.0).abs() < 1e-3, "{cloud}");
    let summary = running.wait().await.unwrap();
    let o = summary.counters.offload;
    assert!(o.answered >= 1 && o.sent >= o.answered, "{o:?}");
    assert_eq!(summary.counters.published, summary.counters.windows, "every window gets its feedback: {o:?}");

    // The retained status carries the pinned level.
    let mut saw = None;
    while let Some((_, s)) = tokio::time::timeout(Duration::from_secs(3), status.recv()).await.ok().flatten() {
        common::assert_schema(&s, "status.v1.json");
        if s["state"] == "online" && s["pressure"].is_string() {
            saw = s["pressure"].as_str().map(str::to_string);
            break;
        }
    }
    assert_eq!(saw.as_deref(), Some("critical"));

    stop.send(true).unwrap();
    let answered = worker.await.unwrap();
    assert!(answered >= o.answered, "the worker answered {answered}, the hub merged {}", o.answered);
}

/// `biofeedd worker` as its own process, to be killed; killed when dropped too, so a failing
/// test leaves no worker behind.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn worker_process(port: u16, hub: &str) -> WorkerProcess {
    let file = worker_file(port, hub);
    let child = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(["worker", "--config"])
        .arg(&file)
        .env("BIOFEEDD_LOG", "warn")
        .spawn()
        .expect("worker process starts");
    WorkerProcess(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_means_fallback_without_a_stall_then_cloud_again() {
    let port = common::broker_port();
    let hub = format!("offload-kill-{}", std::process::id());
    let mut first = worker_process(port, &hub);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    // The 22 min excerpt at 10x: a window every 0.5 s for as long as the test needs.
    let running = daemon::start(hub_config(port, &hub, true, 10.0, 500.0), critical()).await.unwrap();

    until_source(&mut feedback, "cloud", Duration::from_secs(60)).await;
    first.kill();
    // Windows keep coming, answered here: the deadline, not the dead worker, decides.
    let fallback = until_source(&mut feedback, "fallback", Duration::from_secs(20)).await;
    assert!(fallback["latency_ms"].as_f64().unwrap() >= 500.0 - 1.0, "held until the deadline: {fallback}");
    let mut second = worker_process(port, &hub);
    let again = until_source(&mut feedback, "cloud", Duration::from_secs(30)).await;
    assert_eq!(again["model"], "stress-s2-int8", "{again}");
    running.stop();
    let summary = running.wait().await.unwrap();
    second.kill();
    let o = summary.counters.offload;
    assert!(o.answered >= 2 && o.timed_out >= 1, "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_is_dropped_and_counted_and_the_local_answer_goes_out() {
    let port = common::broker_port();
    let hub = format!("offload-late-{}", std::process::id());
    // A worker that answers correctly but 300 ms late, against a 100 ms deadline.
    let settings = common::loopback_mqtt(port).settings(&hub, Path::new(".")).unwrap();
    let filter = Topics::offload_worker_filter("slow", &hub);
    let mut slow = link::open(&settings, format!("slow-{hub}"), filter);
    let client = slow.client.clone();
    tokio::spawn(async move {
        while let Some(m) = slow.incoming.recv().await {
            let request = OffloadRequest::decode(&m.payload).expect("the hub's request decodes");
            let reply = OffloadReply {
                schema: REPLY_SCHEMA.into(),
                worker: "slow".into(),
                model: request.model,
                sha256: hex(&request.sha256),
                outcome: Outcome::Ok {
                    variant: biofeedd::fusion::Variant::Fp32,
                    stage: 2,
                    classes: vec!["rest".into(), "stress".into()],
                    probabilities: vec![0.5, 0.5],
                    compute_ms: 300.0,
                },
            };
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                link::publish(&client, &m.response_topic.unwrap(), reply.to_json(), None, m.correlation, None);
            });
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut feedback = common::subscribe(port, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    let running = daemon::start(hub_config(port, &hub, false, 10.0, 100.0), critical()).await.unwrap();
    let f = until_source(&mut feedback, "fallback", Duration::from_secs(40)).await;
    assert_eq!(f["model"], "stress-s0", "the hub's own cheapest stage: {f}");
    let summary = running.wait().await.unwrap();
    let o = summary.counters.offload;
    assert_eq!(o.answered, 0, "{o:?}");
    assert!(o.timed_out >= 1 && o.late >= 1, "{o:?}");
}

/// Send `request` to `hub`'s workers and wait for the reply.
async fn ask(port: u16, hub: &str, request: &OffloadRequest) -> OffloadReply {
    let settings = common::loopback_mqtt(port).settings(hub, Path::new(".")).unwrap();
    let topics = Topics::new(hub);
    let mut asker = link::open(&settings, format!("asker-{hub}"), topics.offload_response());
    while !asker.is_connected() {
        asker.connected.changed().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let correlation = Bytes::from_static(b"ask:1");
    let bytes = request.encode().unwrap();
    let resp = Some(topics.offload_response());
    assert!(asker.try_publish(&topics.offload_request(), bytes, resp, Some(correlation.clone()), None));
    let m = tokio::time::timeout(Duration::from_secs(10), asker.incoming.recv()).await.expect("a reply").unwrap();
    assert_eq!(m.correlation, Some(correlation));
    let json: Value = serde_json::from_slice(&m.payload).unwrap();
    common::assert_schema(&json, "offload_reply.v1.json");
    OffloadReply::parse(&m.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_a_model_it_does_not_have_and_inputs_of_the_wrong_shape() {
    let port = common::broker_port();
    let hub = format!("offload-refuse-{}", std::process::id());
    let (stop, worker) = spawn_worker(worker_config(port, &hub));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut request = OffloadRequest {
        model: "stress-s2".into(),
        sha256: [0x5a; 32],
        hub: hub.clone(),
        subject: "s05".into(),
        seq: 7,
        window_start: 0.0,
        window_end: 60.0,
        budget_ms: 25.0,
        features: vec![0.0; 51],
        channels: vec![WireChannel { name: "ppg:zscore".into(), modality: Modality::Ppg, rate_hz: 8.0, len: 4 }],
        samples: vec![0.0; 4],
    };
    let reply = ask(port, &hub, &request).await;
    let Outcome::Refused { reason } = &reply.outcome else { panic!("{reply:?}") };
    assert!(reason.contains(&format!("no model `stress-s2` with SHA-256 {}", hex(&[0x5a; 32]))), "{reason}");
    assert!(reason.contains("stress-s2@"), "names what it serves: {reason}");

    // The right model, the wrong shape.
    let manifest = std::fs::read_to_string(common::repo_path("models/stress-s2.toml")).unwrap();
    let sha = manifest.lines().find_map(|l| l.strip_prefix("sha256 = ")).unwrap().trim_matches('"').to_string();
    request.sha256 = biofeedd::bridge::offload::reply::unhex(&sha).unwrap();
    let reply = ask(port, &hub, &request).await;
    let Outcome::Refused { reason } = &reply.outcome else { panic!("{reply:?}") };
    assert!(reason.contains("takes raw rows") && reason.contains("ppg:zscore 4@8Hz"), "{reason}");

    stop.send(true).unwrap();
    assert_eq!(worker.await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_drains_on_sigterm_and_says_what_it_did() {
    let port = common::broker_port();
    let hub = format!("offload-term-{}", std::process::id());
    let child = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(["worker", "--config"])
        .arg(worker_file(port, &hub))
        .env("BIOFEEDD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("worker process starts");
    let mut worker = WorkerProcess(child);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // It serves: a request for a model it does not have comes back refused.
    let request = OffloadRequest {
        model: "nobody".into(),
        sha256: [1; 32],
        hub: hub.clone(),
        subject: "s05".into(),
        seq: 0,
        window_start: 0.0,
        window_end: 60.0,
        budget_ms: 1000.0,
        features: Vec::new(),
        channels: Vec::new(),
        samples: Vec::new(),
    };
    assert!(matches!(ask(port, &hub, &request).await.outcome, Outcome::Refused { .. }));

    let term = Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut worker.0.stderr.take().unwrap(), &mut log).unwrap();
    let exit = worker.0.wait().unwrap();
    assert!(exit.success(), "exit 0 after SIGTERM: {exit:?}\n{log}");
    assert!(log.contains("draining (unsubscribed"), "{log}");
    assert!(log.contains("worker: 1 requests, 0 answered, 1 refused"), "{log}");
}
