//! Offload load test, loopback only, bounded in count and time: simulated hubs send real
//! windows' heavy-stage requests through Mosquitto (`set_tcp_nodelay true`) to 1 and then 2
//! `biofeedd worker` processes, and measure every round trip (request handed to the hub's
//! link → reply received, through the broker both ways).
//!
//! 1. Target load: `HUBS` hubs × `SUBJECTS` subjects (1,000 concurrent subjects), each sending
//!    one request per 5 s hop at its own phase, for `STEADY_S` seconds: round trip p50/p99/max,
//!    replies over 25 ms, and losses (no reply within 2 s of the end).
//! 2. Saturation: every hub keeps `IN_FLIGHT` requests outstanding for `SATURATE_S` seconds:
//!    replies per second, 1 worker then 2, and their ratio, with the CPU each process used.
//! 3. Saturation again with each worker held to a quarter of a core (a cgroup CPU quota, when
//!    the machine lets us set one): the workers, not the broker or the load generator, run out
//!    first, as when each worker has a machine of its own.
//!
//! The requests are real: the 22 min S05 evaluation excerpt (tests/data/stress-eval) cut into
//! 60 s windows every 5 s, features extracted and the raw window prepared by the bundled
//! stage 2 (`stress-s2`, the CNN) exactly as the daemon does, encoded with `bridge::offload`.
//!
//! `cargo bench --bench offload_load` (needs `mosquitto` on PATH; builds `biofeedd` in release).

#[path = "common/mod.rs"]
mod recordings;

use biofeedd::bridge::offload::link::{self, OffloadLink};
use biofeedd::bridge::offload::reply::{OffloadReply, Outcome};
use biofeedd::bridge::offload::request_for;
use biofeedd::bridge::{MqttConfig, Topics};
use biofeedd::features::FeatureExtractor;
use biofeedd::fusion::{Fusion, FusionConfig};
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HUBS: usize = 10;
const SUBJECTS: usize = 100;
const HOP: Duration = Duration::from_secs(5);
const STEADY_S: u64 = 30;
const SATURATE_S: u64 = 10;
const IN_FLIGHT: usize = 16;
const DEADLINE: Duration = Duration::from_millis(25);

/// Every window of the excerpt with what stage 2 needs, as a request template.
fn requests() -> Vec<biofeedd::bridge::offload::OffloadRequest> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stress-eval/S05"));
    let rec = biofeedd::ingest::replay::e4::load(dir, biofeedd::ingest::replay::OnBadRow::Error).unwrap();
    let mut fusion = Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).unwrap();
    let stage = fusion.slots_mut().last_mut().unwrap().variants_mut().first_mut().unwrap();
    let mut extractor = FeatureExtractor::with_hop(recordings::HOP_S).with_baseline(120.0);
    let mut out = Vec::new();
    for window in recordings::hops(&rec) {
        let features = extractor.extract(&window).clone();
        if stage.prepare(&window, &features).is_ok() {
            out.push(request_for(stage, "hub", &window, DEADLINE));
        }
    }
    assert!(out.len() > 100, "{} windows with stage 2's inputs", out.len());
    out
}

fn mosquitto(dir: &Path) -> (u16, Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = dir.join("mosquitto.conf");
    let text = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nmax_queued_messages 100000\n"
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("mosquitto")
        .args(["-c", conf.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto on PATH (apt-get install mosquitto)");
    std::thread::sleep(Duration::from_millis(500));
    (port, child)
}

fn worker(dir: &Path, port: u16, n: usize) -> Child {
    let conf = dir.join(format!("worker-{n}.toml"));
    std::fs::write(&conf, format!("[hub]\nid = \"load-worker-{n}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(["worker", "--config", conf.to_str().unwrap()])
        .env("BIOFEEDD_LOG", "warn")
        .spawn()
        .expect("biofeedd worker starts")
}

/// One simulated hub: its link and when each of its requests left.
struct Hub {
    id: String,
    link: OffloadLink,
    topics: Topics,
    sent: Arc<Mutex<HashMap<u64, Instant>>>,
}

async fn hub(port: u16, k: usize) -> Hub {
    let id = format!("load-hub-{k}");
    let settings = MqttConfig::loopback(port).settings(&id, Path::new(".")).unwrap();
    let topics = Topics::new(&id);
    let mut link = link::open(&settings, format!("{id}-offload"), topics.offload_response());
    while !link.is_connected() {
        link.connected.changed().await.unwrap();
    }
    Hub { id, link, topics, sent: Arc::default() }
}

/// What one phase measured.
#[derive(Default)]
struct Tally {
    rtt: Option<Histogram<u64>>,
    sent: u64,
    answered: u64,
    refused: u64,
}

impl Hub {
    fn send(&self, n: u64, request: &biofeedd::bridge::offload::OffloadRequest) {
        let bytes = request.encode().unwrap();
        let correlation = Bytes::from(format!("{}:{n}", self.id));
        self.sent.lock().unwrap().insert(n, Instant::now());
        let ok = self.link.try_publish(
            &self.topics.offload_request(),
            bytes,
            Some(self.topics.offload_response()),
            Some(correlation),
            Some(Duration::from_secs(2)),
        );
        assert!(ok, "rumqttc's queue took the request");
    }

    /// Take replies until `until`, recording round trips; `more` is called after each reply.
    async fn collect(&mut self, until: Instant, tally: &mut Tally, mut more: impl FnMut(&Hub)) {
        while let Ok(Some(m)) = tokio::time::timeout_at(until.into(), self.link.incoming.recv()).await {
            let Some(n) = m
                .correlation
                .as_deref()
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.rsplit(':').next().and_then(|n| n.parse::<u64>().ok()))
            else {
                continue;
            };
            let Some(at) = self.sent.lock().unwrap().remove(&n) else { continue };
            let us = at.elapsed().as_micros() as u64;
            tally.rtt.get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()).record(us).unwrap();
            match OffloadReply::parse(&m.payload).map(|r| r.outcome) {
                Ok(Outcome::Ok { .. }) => tally.answered += 1,
                _ => tally.refused += 1,
            }
            more(self);
        }
    }
}

/// Phase 1: every subject one request per hop, at its own phase.
async fn steady(hubs: Vec<Hub>, requests: Arc<Vec<biofeedd::bridge::offload::OffloadRequest>>) -> (Tally, Vec<Hub>) {
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(STEADY_S);
    let mut tasks = Vec::new();
    for (k, mut hub) in hubs.into_iter().enumerate() {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let sender = {
                // The subjects' schedule: subject s of hub k first sends at its phase in the hop.
                let (sent, link_client, topics, id) =
                    (hub.sent.clone(), hub.link.client.clone(), hub.topics.clone(), hub.id.clone());
                let requests = requests.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    let mut schedule: Vec<(Instant, usize)> = (0..SUBJECTS)
                        .map(|s| {
                            let phase = (k * SUBJECTS + s) as f64 / (HUBS * SUBJECTS) as f64;
                            (start + HOP.mul_f64(phase), s)
                        })
                        .collect();
                    loop {
                        schedule.sort();
                        let (at, s) = schedule[0];
                        if at >= end {
                            return n;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        let mut request = requests[(s * 7 + n as usize) % requests.len()].clone();
                        request.subject = format!("s{s:03}");
                        request.hub = id.clone();
                        let correlation = Bytes::from(format!("{id}:{n}"));
                        sent.lock().unwrap().insert(n, Instant::now());
                        let ok = link::publish(
                            &link_client,
                            &topics.offload_request(),
                            request.encode().unwrap(),
                            Some(topics.offload_response()),
                            Some(correlation),
                            Some(Duration::from_secs(2)),
                        );
                        assert!(ok, "rumqttc's queue took the request");
                        n += 1;
                        schedule[0].0 = at + HOP;
                    }
                })
            };
            hub.collect(end + Duration::from_secs(2), &mut tally, |_| {}).await;
            tally.sent = sender.await.unwrap();
            (tally, hub)
        }));
    }
    gather(tasks).await
}

/// Phase 2: `IN_FLIGHT` outstanding per hub, refilled at every reply. Capacity, not deadlines,
/// is measured: the requests' budget is long, so a worker never drops one as expired in its
/// queue (which would leave its slot empty for the rest of the phase).
async fn saturate(hubs: Vec<Hub>, requests: Arc<Vec<biofeedd::bridge::offload::OffloadRequest>>) -> (Tally, Vec<Hub>) {
    let requests: Arc<Vec<_>> = Arc::new(
        requests
            .iter()
            .cloned()
            .map(|mut r| {
                r.budget_ms = 10_000.0;
                r
            })
            .collect(),
    );
    let end = Instant::now() + Duration::from_secs(SATURATE_S);
    let mut tasks = Vec::new();
    for mut hub in hubs {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = 1_000_000u64;
            for _ in 0..IN_FLIGHT {
                hub.send(n, &requests[n as usize % requests.len()]);
                n += 1;
            }
            tally.sent = IN_FLIGHT as u64;
            let mut sent = 0;
            hub.collect(end, &mut tally, |h| {
                h.send(n + sent, &requests[(n + sent) as usize % requests.len()]);
                sent += 1;
            })
            .await;
            tally.sent += sent;
            // Let the last ones land so the next phase starts clean.
            tokio::time::sleep(Duration::from_millis(500)).await;
            while hub.link.incoming.try_recv().is_ok() {}
            (tally, hub)
        }));
    }
    gather(tasks).await
}

/// Every hub's tally summed, and the hubs back for the next phase, nothing left waiting.
async fn gather(tasks: Vec<tokio::task::JoinHandle<(Tally, Hub)>>) -> (Tally, Vec<Hub>) {
    let mut total = Tally::default();
    let mut hubs = Vec::new();
    for t in tasks {
        let (tally, hub) = t.await.unwrap();
        merge(&mut total, tally);
        hub.sent.lock().unwrap().clear();
        hubs.push(hub);
    }
    (total, hubs)
}

fn merge(total: &mut Tally, t: Tally) {
    total.sent += t.sent;
    total.answered += t.answered;
    total.refused += t.refused;
    if let Some(h) = t.rtt {
        total.rtt.get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()).add(h).unwrap();
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/{pid}/stat`.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let f: Vec<f64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
    f.get(11).zip(f.get(12)).map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// Hold process `pid` to `quota` of one core in a cgroup of its own (v2 `cpu.max`, else v1
/// `cpu.cfs_quota_us`): a stand-in for a worker on a small machine of its own. `Err` says why not.
fn limit(pid: u32, name: &str, quota: f64) -> Result<std::path::PathBuf, String> {
    // A short period, so a throttled worker pauses for milliseconds, not for most of 100 ms.
    let period = 10_000u64;
    let quota_us = (quota * period as f64) as u64;
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let dir = if v2 { Path::new("/sys/fs/cgroup").join(name) } else { Path::new("/sys/fs/cgroup/cpu").join(name) };
    let _ = std::fs::create_dir(&dir);
    let write = |file: &str, text: String| std::fs::write(dir.join(file), text).map_err(|e| format!("{file}: {e}"));
    if v2 {
        write("cpu.max", format!("{quota_us} {period}"))?;
    } else {
        write("cpu.cfs_period_us", period.to_string())?;
        write("cpu.cfs_quota_us", quota_us.to_string())?;
    }
    write("cgroup.procs", pid.to_string())?;
    Ok(dir)
}

fn rtt_line(h: &Histogram<u64>) -> String {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "round trip p50 {:.2} ms  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let requests = Arc::new(requests());
    let bytes = requests[0].encode().unwrap().len();
    println!("{} real S05 windows with stage 2's inputs; a request is {bytes} bytes", requests.len());
    let (port, mut broker) = mosquitto(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut workers: Vec<Child> = Vec::new();
    let mut throughput = Vec::new();
    runtime.block_on(async {
        let mut hubs = Vec::new();
        for k in 0..HUBS {
            hubs.push(hub(port, k).await);
        }
        for n in 1..=2 {
            workers.push(worker(dir.path(), port, n));
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!("\n{n} worker(s), Mosquitto on 127.0.0.1:{port}");
            let (t, back) = steady(hubs, requests.clone()).await;
            hubs = back;
            let h = t.rtt.as_ref();
            let over = h.map_or(0, |h| h.len() - h.count_between(0, DEADLINE.as_micros() as u64));
            println!(
                "  steady, {} subjects every {} s for {STEADY_S} s: {} sent, {} answered, {} refused, {} lost; {}; {over} over {} ms",
                HUBS * SUBJECTS,
                HOP.as_secs(),
                t.sent,
                t.answered,
                t.refused,
                t.sent - t.answered - t.refused,
                h.map_or("no replies".into(), rtt_line),
                DEADLINE.as_millis()
            );
            let pids: Vec<(String, u32)> = [("broker".to_string(), broker.id()), ("hub simulator".into(), std::process::id())]
                .into_iter()
                .chain(workers.iter().enumerate().map(|(k, w)| (format!("worker {}", k + 1), w.id())))
                .collect();
            let before: Vec<f64> = pids.iter().map(|(_, p)| cpu_s(*p)).collect();
            let t0 = Instant::now();
            let (t, back) = saturate(hubs, requests.clone()).await;
            hubs = back;
            let wall = t0.elapsed().as_secs_f64();
            let shares: Vec<String> = pids
                .iter()
                .zip(&before)
                .map(|((name, p), b)| format!("{name} {:.0} %", (cpu_s(*p) - b) / wall * 100.0))
                .collect();
            let per_s = t.answered as f64 / SATURATE_S as f64;
            throughput.push(per_s);
            println!(
                "  saturated, {IN_FLIGHT} in flight per hub for {SATURATE_S} s: {per_s:.0} replies/s; {}",
                t.rtt.as_ref().map_or("no replies".into(), rtt_line)
            );
            println!("  CPU while saturated (of one core; the machine has 2): {}", shares.join(", "));
        }
    });
    println!("\nscaling: 2 workers give {:.2}x the replies per second of 1", throughput[1] / throughput[0]);
    for mut w in workers.drain(..) {
        let _ = w.kill();
        let _ = w.wait();
    }

    // The same saturation with each worker held to a quarter of a core, so that the workers, not
    // the broker or the load generator, are what runs out: how throughput grows per worker.
    const QUARTER: f64 = 0.25;
    let mut limited = Vec::new();
    let mut groups = Vec::new();
    runtime.block_on(async {
        let mut hubs = Vec::new();
        for k in 0..HUBS {
            hubs.push(hub(port, 100 + k).await);
        }
        for n in 1..=2 {
            let mut w = worker(dir.path(), port, 10 + n);
            match limit(w.id(), &format!("biofeedd-load-worker-{n}"), QUARTER) {
                Ok(group) => groups.push(group),
                Err(why) => {
                    println!("\nworkers held to a quarter core: skipped, cannot set a CPU quota ({why})");
                    let _ = w.kill();
                    let _ = w.wait();
                    break;
                }
            }
            limited.push(w);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (t, back) = saturate(hubs, requests.clone()).await;
            hubs = back;
            let per_s = t.answered as f64 / SATURATE_S as f64;
            println!(
                "\n{n} worker(s) held to {QUARTER} of a core each, saturated: {per_s:.0} replies/s; {}",
                t.rtt.as_ref().map_or("no replies".into(), rtt_line)
            );
            throughput.push(per_s);
        }
    });
    if throughput.len() == 4 {
        println!(
            "scaling, quarter-core workers: 2 give {:.2}x the replies per second of 1",
            throughput[3] / throughput[2]
        );
    }
    for mut w in limited {
        let _ = w.kill();
        let _ = w.wait();
    }
    for g in groups {
        let _ = std::fs::remove_dir(g);
    }
    let _ = broker.kill();
    let _ = broker.wait();
}
