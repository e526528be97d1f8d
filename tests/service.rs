//! The service-manager side: `READY=1` once up, watchdog pings only while the pipeline thread
//! progresses, SIGHUP reloading the log filter and the governor's thresholds, `STOPPING=1` at
//! shutdown. A real `NOTIFY_SOCKET` (a Unix datagram socket, as systemd binds) and, for the
//! stall, the real pipeline thread blocked on a full record queue.

mod common;

use biofeedd::daemon::pipeline::{Binding, Governed, Pipeline, SubjectPipeline};
use biofeedd::metrics::Metrics;
use biofeedd::ring::{self, Waker};
use biofeedd::service::{self, Liveness, Notifier, Phase};
use biofeedd::signal::{ChannelSpec, ChunkStamp, Modality};
use biofeedd::sink::queue::{self, Overflow};
use biofeedd::window::{SubjectWindower, WindowConfig};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The service manager's end: a datagram socket the notifier sends to.
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager { socket, path: path.to_str().expect("utf-8 path").to_string(), _dir: dir }
    }

    /// Every message that arrives within `window`.
    fn messages_for(&self, window: Duration) -> Vec<String> {
        let end = Instant::now() + window;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            match self.socket.recv(&mut buf) {
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => return out,
            }
        }
    }

    /// Wait (up to `limit`) for a message containing `what`; the messages seen until then.
    fn wait_for(&self, what: &str, limit: Duration) -> Vec<String> {
        let end = Instant::now() + limit;
        let mut seen = Vec::new();
        while Instant::now() < end {
            let got = self.messages_for(Duration::from_millis(50));
            let found = got.iter().any(|m| m.contains(what));
            seen.extend(got);
            if found {
                return seen;
            }
        }
        panic!("no `{what}` within {limit:?}; got {seen:?}");
    }
}

fn pings(messages: &[String]) -> usize {
    messages.iter().filter(|m| m.as_str() == "WATCHDOG=1").count()
}

#[test]
fn a_stalled_pipeline_thread_stops_the_watchdog_pings() {
    let manager = Manager::new();
    // A watchdog of 1.2 s: a look every 300 ms, a ping while the thread beat in the last 600 ms
    // (its idle beat is every 250 ms). Real ones are 10 s.
    let watchdog = Duration::from_millis(1200);
    let look = watchdog / 4;
    let notifier = Arc::new(Notifier::at(&manager.path).expect("notifier").with_watchdog(watchdog));

    // The real pipeline thread over one 10 Hz channel, 1 s windows, and a record queue of one
    // that nobody reads (as when a replay's output stops taking records): its second window
    // blocks the thread in `send`.
    let waker = Waker::default();
    let (mut producer, consumer) = ring::channel(4096, 64, waker.clone());
    let spec = ChannelSpec::new("eda", Modality::Eda, "uS", 10.0);
    let window = WindowConfig { length_s: 1.0, hop_s: 1.0, stall_timeout_s: 5.0 };
    let subject = SubjectPipeline::new(SubjectWindower::new("s1", vec![spec], window), 1.0, 0.0);
    let liveness = Liveness::default();
    let pipeline = Pipeline {
        hub: "hub".into(),
        run: "run".into(),
        bindings: vec![Binding::new(consumer, 0, 0)],
        subjects: vec![subject],
        fusion: None,
        raw: None,
        governed: Governed::default(),
        liveness: liveness.clone(),
    };
    let (records, mut taken) = queue::channel(1, Overflow::Wait);
    let (_control, control_rx) = biofeedd::control::channel(waker.clone());
    let thread = std::thread::spawn(move || pipeline.run(waker, control_rx, records, Metrics::shared()));

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.spawn(service::supervise(notifier, liveness.clone(), "pipeline thread"));
    liveness.set(Phase::Ready);
    manager.wait_for("READY=1", Duration::from_secs(5));

    // Idle but alive: the thread wakes on its own and beats.
    let idle = manager.messages_for(look * 5);
    assert!(pings(&idle) >= 3, "an idle pipeline keeps the pings going: {idle:?}");

    // Ten seconds of data: ten windows, of which the queue takes one; the thread then waits.
    let start = 1_000_000.0;
    for k in 0..10 {
        let chunk: Vec<f32> = (0..10).map(|i| 1.0 + (i as f32) * 0.01).collect();
        let stamp = ChunkStamp { source_time: start + k as f64, arrival: Instant::now() };
        producer.push(stamp, &chunk).expect("room in the ring");
    }
    // The thread is vouched for until it has been quiet for half the watchdog, give or take a look.
    std::thread::sleep(watchdog / 2 + look * 2);
    let _ = manager.messages_for(Duration::from_millis(10));
    let stalled = manager.messages_for(look * 5);
    assert_eq!(pings(&stalled), 0, "a blocked pipeline thread must not be vouched for: {stalled:?}");

    // Unblock it: pings resume.
    let reader = std::thread::spawn(move || while taken.blocking_recv().is_some() {});
    let resumed = manager.messages_for(look * 5);
    assert!(pings(&resumed) >= 3, "the pings resume once the thread moves: {resumed:?}");

    drop(producer);
    thread.join().expect("the pipeline thread ends when its producer goes");
    reader.join().unwrap();
    // Ending is not stalling: the drain after the pipeline is vouched for.
    let after = manager.messages_for(look * 5);
    assert!(pings(&after) >= 3, "a finished pipeline keeps the pings through the drain: {after:?}");
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let csv = common::repo_path("data/demo/bio_eventrelated_100hz.csv");
    let text = format!(
        r#"
[hub]
id = "svc-hub"
[window]
length_s = 60.0
hop_s = 5.0
[features]
baseline_s = 75.0
[[sensor]]
id = "demo"
subject = "s01"
[sensor.source]
kind = "replay"
format = "csv"
path = "{}"
rate_hz = 100.0
start_time = "now"
speed = 1
chunk_ms = 40
channels = [{{ column = "ECG", modality = "ecg", unit = "mV" }}, {{ column = "EDA", modality = "eda", unit = "uS" }}]
{extra}
"#,
        csv.display()
    );
    let path = dir.join("biofeedd.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill").args(["-s", name, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

#[test]
fn the_daemon_notifies_ready_pings_reloads_on_sighup_and_says_stopping() {
    let manager = Manager::new();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--output", "quiet"])
        .env("NOTIFY_SOCKET", &manager.path)
        // A look every 250 ms.
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("BIOFEEDD_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start biofeedd");
    // Read stderr as it comes: at debug level a full pipe would block the daemon's logging.
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });

    let seen = manager.wait_for("READY=1", Duration::from_secs(60));
    assert!(seen.iter().any(|m| m.contains(&format!("MAINPID={}", child.id()))), "{seen:?}");
    let running = manager.messages_for(Duration::from_millis(1500));
    assert!(pings(&running) >= 3, "a running daemon pings: {running:?}");

    // A reload: a log level and a threshold apply; a window change needs a restart.
    write_config(dir.path(), "[log]\nlevel = \"debug\"\n[governor]\ndwell_s = 20\n");
    let text = std::fs::read_to_string(&config).unwrap().replace("hop_s = 5.0", "hop_s = 2.5");
    std::fs::write(&config, text).unwrap();
    signal(&child, "HUP");
    let reload = manager.wait_for("READY=1", Duration::from_secs(10));
    assert!(reload.iter().any(|m| m.starts_with("RELOADING=1")), "{reload:?}");

    // A broken file changes nothing and says why.
    std::fs::write(&config, "[hub]\nid = \"svc-hub\"\n[window]\nlength_s = -1\n").unwrap();
    signal(&child, "HUP");
    manager.wait_for("READY=1", Duration::from_secs(10));

    signal(&child, "TERM");
    manager.wait_for("STOPPING=1", Duration::from_secs(10));
    let status = child.wait().expect("biofeedd exits");
    let stderr = log.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("SIGHUP: log filter `debug`"), "{stderr}");
    assert!(stderr.contains("SIGHUP: governor thresholds reloaded"), "{stderr}");
    assert!(
        stderr.contains("changed since start, applied only by a restart (systemctl restart biofeedd): [window]"),
        "{stderr}"
    );
    assert!(stderr.contains("the configuration in use stays as it was"), "{stderr}");
    assert!(stderr.contains("length_s"), "the refused reload names the key: {stderr}");
}

#[test]
fn without_a_service_manager_nothing_is_sent_and_nothing_fails() {
    let notifier = Notifier::from_env().expect("no NOTIFY_SOCKET in tests");
    // Under a test harness the variable is unset unless a developer runs tests from a unit.
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        assert!(notifier.watchdog_timeout().is_none());
        notifier.ready().expect("a notifier without a socket accepts and drops");
    }
    // An abstract socket name is accepted (systemd uses them in containers).
    let abstract_name = format!("@biofeedd-test-{}", std::process::id());
    let listener = UnixDatagram::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            &abstract_name.as_bytes()[1..],
        )
        .unwrap(),
    )
    .expect("bind an abstract socket");
    Notifier::at(&abstract_name).unwrap().status("hello").unwrap();
    let mut buf = [0u8; 64];
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STATUS=hello");
}
