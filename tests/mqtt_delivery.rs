//! Fault tests of MQTT delivery, with the real daemon binary, a real broker (rumqttd here,
//! Mosquitto under `.ci/run`) and a proxy between them that the test breaks: an outage with a
//! `kill -9` in the middle, a broker that withholds its PUBACKs while SIGTERM arrives, and an
//! outbox driven into its disk bound while its messages expire. A subscriber connected straight
//! to the broker counts `(run, seq)` of every feedback message; every line the daemon printed
//! (it prints a message only after the outbox accepted it) must reach it.

mod common;
#[path = "support/mqtt_proxy.rs"]
mod mqtt_proxy;

use mqtt_proxy::Proxy;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// The daemon on a config, its stdout's feedback lines collected as they come.
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: std::thread::JoinHandle<String>,
}

impl Daemon {
    fn spawn(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
            .args(["run", "--config", config.to_str().unwrap(), "--output", "jsonl"])
            .env("BIOFEEDD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run biofeedd");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(serde_json::from_str(&line).expect("a JSON feedback line"));
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Daemon { child, lines, stderr }
    }

    fn printed(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Wait until `n` lines were printed (or the daemon ended).
    fn wait_printed(&mut self, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.printed() < n && self.child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < limit, "only {} of {n} feedback lines within {limit:?}", self.printed());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: what it printed, and nothing else.
    fn kill9(mut self) -> Vec<Value> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let _ = self.stderr.join();
        std::thread::sleep(Duration::from_millis(100)); // the stdout reader reads the pipe's last bytes
        let lines = self.lines.lock().unwrap().clone();
        lines
    }

    /// SIGTERM (`signal` true) or wait for the end; it must exit within `limit`.
    fn finish(mut self, signal: bool, limit: Duration) -> (ExitStatus, Vec<Value>, String) {
        if signal {
            let pid = self.child.id().to_string();
            assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        }
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                self.child.kill().unwrap();
                panic!("biofeedd did not stop within {limit:?}: {}", self.stderr.join().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.stderr.join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.lines.lock().unwrap().clone();
        (status, lines, log)
    }
}

/// The bundled demo recording (150 s, 100 Hz ECG/EDA/resp) on 10 s windows every `hop_s`.
fn write_config(dir: &Path, hub: &str, proxy: u16, hop_s: f64, speed: &str, mqtt_extra: &str) -> PathBuf {
    let csv = common::repo_path("data/demo/bio_eventrelated_100hz.csv");
    let text = format!(
        r#"
[hub]
id = "{hub}"
[window]
length_s = 10.0
hop_s = {hop_s}
[features]
baseline_s = 75.0
[[sensor]]
id = "chest"
subject = "s01"
[sensor.source]
kind = "replay"
format = "csv"
path = "{csv}"
rate_hz = 100.0
start_time = "now"
speed = {speed}
chunk_ms = 40
channels = [
  {{ column = "ECG", modality = "ecg", unit = "mV" }},
  {{ column = "EDA", modality = "eda", unit = "uS" }},
  {{ column = "RSP", name = "resp", modality = "resp", unit = "a.u." }},
]
[mqtt]
url = "mqtt://127.0.0.1:{proxy}"
outbox_dir = "{outbox}"
connect_timeout_s = 1.0
keep_alive_s = 5
metrics_interval_s = 1.0
{mqtt_extra}
"#,
        csv = csv.display(),
        outbox = dir.join("outbox").display(),
    );
    let path = dir.join("fault.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Everything the subscriber has received so far, by topic kind.
#[derive(Default)]
struct Received {
    /// (run, seq) of each feedback message, in arrival order (duplicates included).
    feedback: Vec<(String, u64)>,
    /// Sensor-state payloads.
    states: Vec<Value>,
    metrics: Vec<Value>,
}

impl Received {
    fn take(&mut self, rx: &mut UnboundedReceiver<(String, Value)>) {
        while let Ok((topic, payload)) = rx.try_recv() {
            if topic.ends_with("/feedback") {
                common::assert_schema(&payload, "feedback.v1.json");
                self.feedback.push((payload["run"].as_str().unwrap().to_string(), payload["seq"].as_u64().unwrap()));
            } else if topic.contains("/sensor/") {
                common::assert_schema(&payload, "sensor_state.v1.json");
                self.states.push(payload);
            } else if topic.ends_with("/metrics") {
                common::assert_schema(&payload, "metrics.v1.json");
                self.metrics.push(payload);
            }
        }
    }

    /// Wait until every `(run, seq)` of `expected` has arrived.
    async fn wait_for(
        &mut self,
        rx: &mut UnboundedReceiver<(String, Value)>,
        expected: &[(String, u64)],
        limit: Duration,
    ) {
        let start = Instant::now();
        loop {
            self.take(rx);
            let got: BTreeSet<&(String, u64)> = self.feedback.iter().collect();
            let missing: Vec<_> = expected.iter().filter(|k| !got.contains(k)).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{} messages never arrived, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Per run, the first arrivals of each seq come in increasing order (duplicates may repeat
    /// an earlier seq later, as QoS 1 allows).
    fn assert_in_order(&self) {
        let mut seen: HashMap<&str, (BTreeSet<u64>, u64)> = HashMap::new();
        for (run, seq) in &self.feedback {
            let (set, last) = seen.entry(run).or_default();
            if set.insert(*seq) {
                assert!(set.len() == 1 || *seq > *last, "run {run}: seq {seq} arrived after {last}");
                *last = *seq;
            }
        }
    }
}

fn keys(lines: &[Value]) -> Vec<(String, u64)> {
    lines.iter().map(|l| (l["run"].as_str().unwrap().to_string(), l["seq"].as_u64().unwrap())).collect()
}

fn run_of(lines: &[Value]) -> String {
    lines.first().expect("at least one line")["run"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_a_kill_9_in_the_middle_loses_no_accepted_message() {
    // BIOFEEDD_TEST_OUTAGE_S stretches the outage (.ci/run makes it 60 s against Mosquitto); the
    // replay is slowed so the daemon is still producing for all of it.
    let outage: f64 = std::env::var("BIOFEEDD_TEST_OUTAGE_S").map_or(6.0, |v| v.parse().unwrap());
    let speed = (140.0 / (outage + 20.0)).clamp(1.0, 8.0);
    let broker = common::broker_port();
    let proxy = Proxy::start(broker);
    let dir = tempfile::tempdir().unwrap();
    let hub = format!("outage-{}", std::process::id());
    let mut rx = common::subscribe(broker, &format!("biofeedd/v1/{hub}/#")).await;
    let config = write_config(dir.path(), &hub, proxy.port, 1.0, &format!("{speed:.2}"), "feedback_ttl_s = 0");

    let mut first = Daemon::spawn(&config);
    first.wait_printed(5, Duration::from_secs(60));
    proxy.down();
    let outage_started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(outage / 3.0)).await;
    let first_lines = first.kill9();
    assert!(first_lines.len() >= 5);

    let second = Daemon::spawn(&config);
    let rest = Duration::from_secs_f64(outage).saturating_sub(outage_started.elapsed());
    tokio::time::sleep(rest).await;
    proxy.up();
    let (status, second_lines, log) = second.finish(false, Duration::from_secs(240));
    assert!(status.success(), "{log}");
    assert!(log.contains("from an earlier run will be sent first"), "{log}");
    assert_eq!(second_lines.len(), 141, "(150 - 10) / 1 + 1 windows");

    let mut received = Received::default();
    let mut expected = keys(&first_lines);
    expected.extend(keys(&second_lines));
    received.wait_for(&mut rx, &expected, Duration::from_secs(30)).await;
    received.assert_in_order();
    assert_ne!(run_of(&first_lines), run_of(&second_lines), "each run has its own id");
    let states: Vec<&str> = received.states.iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states.last(), Some(&"ended"), "{states:?}");
    assert!(!received.metrics.is_empty(), "metrics reports every second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_pubacks_never_stall_the_daemon_and_sigterm_keeps_the_backlog() {
    let broker = common::broker_port();
    let proxy = Proxy::start(broker);
    let dir = tempfile::tempdir().unwrap();
    let hub = format!("withhold-{}", std::process::id());
    let mut rx = common::subscribe(broker, &format!("biofeedd/v1/{hub}/#")).await;
    // 2,801 windows as fast as the pipeline goes: far past the 1,024 requests that used to
    // freeze the daemon once the broker stopped acknowledging.
    let config = write_config(dir.path(), &hub, proxy.port, 0.05, "\"max\"", "feedback_ttl_s = 0");

    let mut first = Daemon::spawn(&config);
    first.wait_printed(1, Duration::from_secs(60));
    proxy.withhold();
    first.wait_printed(300, Duration::from_secs(120));
    let rss_early = rss_kb(first.child.id());
    first.wait_printed(1500, Duration::from_secs(120));
    let rss_late = rss_kb(first.child.id());
    // The backlog lives on disk; memory holds an index entry per message (tens of bytes).
    assert!(rss_late < rss_early + 30_000, "RSS grew from {rss_early} kB to {rss_late} kB with the backlog");
    let (status, first_lines, log) = first.finish(true, Duration::from_secs(15));
    assert!(status.success(), "SIGTERM during an outage is a clean stop: {log}");
    assert!(first_lines.len() >= 1500);
    assert!(log.contains("wait in the outbox"), "{log}");

    proxy.up();
    let second = Daemon::spawn(&config);
    let mut received = Received::default();
    received.wait_for(&mut rx, &keys(&first_lines), Duration::from_secs(60)).await;
    received.assert_in_order();
    let _ = second.finish(true, Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_cut_while_a_backlog_drains_resume_the_session_and_keep_the_order() {
    let broker = common::broker_port();
    let proxy = Proxy::start(broker);
    proxy.down();
    let dir = tempfile::tempdir().unwrap();
    let hub = format!("drain-{}", std::process::id());
    let mut rx = common::subscribe(broker, &format!("biofeedd/v1/{hub}/#")).await;
    let config = write_config(dir.path(), &hub, proxy.port, 0.05, "\"max\"", "feedback_ttl_s = 0");

    let mut daemon = Daemon::spawn(&config);
    daemon.wait_printed(800, Duration::from_secs(120));
    proxy.up();
    let mut received = Received::default();
    let start = Instant::now();
    while received.feedback.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "the backlog never started to drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
        received.take(&mut rx);
    }
    // Down and up while the backlog drains: each cut leaves publishes in flight (beyond the
    // broker's receive maximum, had the window not been held to it) to be resent in order.
    for _ in 0..4 {
        proxy.down();
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.up();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (status, lines, log) = daemon.finish(false, Duration::from_secs(180));
    assert!(status.success(), "{log}");
    assert_eq!(lines.len(), 2801);
    // What the bounded drain at shutdown did not get through waits for the next run.
    let next = Daemon::spawn(&config);
    received.wait_for(&mut rx, &keys(&lines), Duration::from_secs(60)).await;
    received.assert_in_order();
    let _ = next.finish(true, Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_disk_bound_live_feedback_goes_first_and_expired_feedback_is_never_sent() {
    let broker = common::broker_port();
    let proxy = Proxy::start(broker);
    proxy.down();
    let dir = tempfile::tempdir().unwrap();
    let hub = format!("bound-{}", std::process::id());
    let mut rx = common::subscribe(broker, &format!("biofeedd/v1/{hub}/#")).await;
    let config =
        write_config(dir.path(), &hub, proxy.port, 0.05, "\"max\"", "feedback_ttl_s = 1\noutbox_max_mb = 0.25");

    // The broker is never reached: the run does its work, keeps what it can, and says it failed.
    let (status, first_lines, log) = Daemon::spawn(&config).finish(false, Duration::from_secs(180));
    assert!(!status.success(), "a required broker never reached fails the run");
    assert!(log.contains("never reached"), "{log}");
    assert_eq!(first_lines.len(), 2801);
    let on_disk: u64 = walk(&dir.path().join("outbox"));
    assert!(on_disk <= 256 * 1024, "the outbox stayed under its bound: {on_disk} bytes");
    assert!(log.contains("live and 0 durable dropped for room"), "{log}");

    tokio::time::sleep(Duration::from_millis(1500)).await; // every feedback message is now stale
    proxy.up();
    let second = Daemon::spawn(&config);
    let first_run = run_of(&first_lines);
    let start = Instant::now();
    let mut received = Received::default();
    // The first run's last sensor state is durable: it arrives however long the outage.
    while !received.states.iter().any(|s| s["run"] == first_run.as_str() && s["state"] == "ended") {
        assert!(start.elapsed() < Duration::from_secs(30), "the first run's final sensor state never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
        received.take(&mut rx);
    }
    let (_, _, log) = second.finish(true, Duration::from_secs(15));
    received.take(&mut rx);
    assert!(
        !received.feedback.iter().any(|(run, _)| *run == first_run),
        "expired feedback of the first run was sent late"
    );
    assert!(!log.contains(" 0 expired"), "the second run counted the expired messages it found: {log}");
}

/// Resident memory of a process, kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn walk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}
