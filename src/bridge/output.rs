//! The output task: feedback to stdout and MQTT, delivery latency, clean goodbye.

use super::mqtt::{LinkEvent, MqttLink};
use super::payload::{Feedback, Status};
use super::Topics;
use crate::features::FEATURE_NAMES;
use crate::metrics::{SharedMetrics, Stage};
use anyhow::Context;
use rumqttc::v5::mqttbytes::QoS;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How records are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One readable line per window.
    Text,
    /// One JSON object per line (the feedback payload, or the feature row).
    Jsonl,
    /// Comma-separated feature rows with a header (`biofeedd features`).
    Csv,
    /// Nothing on stdout (MQTT only).
    Quiet,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(OutputFormat::Text),
            "jsonl" => Ok(OutputFormat::Jsonl),
            "csv" => Ok(OutputFormat::Csv),
            "quiet" => Ok(OutputFormat::Quiet),
            _ => Err(format!("unknown output `{s}`; use text, jsonl, csv or quiet")),
        }
    }
}

#[derive(Debug)]
pub struct OutputOptions {
    pub format: OutputFormat,
    /// `biofeedd features --raw-output`: each row's raw tensor, appended as little-endian f32.
    pub raw_output: Option<(std::path::PathBuf, std::fs::File)>,
}

/// The features of one window, for `biofeedd features` (training reads exactly this).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeatureRow {
    pub subject: String,
    pub seq: u64,
    pub window_start: f64,
    pub window_end: f64,
    pub features: Vec<(&'static str, Option<f32>)>,
    /// The raw-window tensor (`--raw-spec`), NaN where the window lacked a channel.
    pub raw: Option<Vec<f32>>,
}

/// What the pipeline hands to the output task.
#[derive(Debug)]
pub enum Record {
    Feedback {
        feedback: Box<Feedback>,
        /// Arrival of the window's last bytes (end-to-end latency starts here).
        arrival: Instant,
        /// When fusion finished and the message was handed over (output latency starts here).
        handed: Instant,
    },
    Features(FeatureRow),
}

/// Timing of a publish waiting for its PUBACK.
type Pending = Option<(Instant, Instant)>;

/// Run until the pipeline closes `records`; then say goodbye on MQTT and return.
pub async fn run(
    mut records: mpsc::UnboundedReceiver<Record>,
    mut link: Option<MqttLink>,
    topics: Topics,
    status: Status,
    options: OutputOptions,
    metrics: SharedMetrics,
) -> anyhow::Result<()> {
    let mut stdout = Stdout::new(options.format);
    let mut raw_out = options.raw_output.map(|(path, file)| (path, std::io::BufWriter::new(file)));
    // Publishes requested but not yet given a packet id, in order; and those in flight by id.
    let mut queued: VecDeque<Pending> = VecDeque::new();
    let mut in_flight: HashMap<u16, Pending> = HashMap::new();
    if let Some(l) = &link {
        if l.client.publish(topics.status(), QoS::AtLeastOnce, true, status.to_json()).await.is_ok() {
            queued.push_back(None);
        }
    }
    loop {
        tokio::select! {
            record = records.recv() => {
                let Some(record) = record else { break };
                match record {
                    Record::Features(row) => {
                        stdout.features(&row);
                        if let (Some((path, out)), Some(raw)) = (&mut raw_out, &row.raw) {
                            // Training data: a short file would misalign every later row, so stop.
                            let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_le_bytes()).collect();
                            out.write_all(&bytes)
                                .with_context(|| format!("cannot write raw windows to {}", path.display()))?;
                        }
                    }
                    Record::Feedback { feedback, arrival, handed } => {
                        stdout.feedback(&feedback);
                        if let Some(l) = &link {
                            let topic = topics.feedback(&feedback.subject);
                            if l.client.publish(topic, QoS::AtLeastOnce, false, feedback.to_json()).await.is_ok() {
                                queued.push_back(Some((arrival, handed)));
                                metrics.lock().expect("metrics lock").counters.published += 1;
                            }
                        } else {
                            let now = Instant::now();
                            let mut m = metrics.lock().expect("metrics lock");
                            m.record(Stage::Output, now - handed);
                            m.record(Stage::EndToEnd, now - arrival);
                        }
                    }
                }
            }
            Some(event) = next_event(&mut link) => on_link_event(event, &mut queued, &mut in_flight, &metrics),
        }
    }
    stdout.flush();
    if let Some((path, mut out)) = raw_out {
        out.flush().with_context(|| format!("cannot write raw windows to {}", path.display()))?;
    }
    let Some(mut l) = link else { return Ok(()) };
    let offline = Status { state: "offline", ..status };
    if l.client.publish(topics.status(), QoS::AtLeastOnce, true, offline.to_json()).await.is_ok() {
        queued.push_back(None);
    }
    // Wait (bounded) for every PUBACK so the summary counts what the broker really took.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !(queued.is_empty() && in_flight.is_empty()) {
        match tokio::time::timeout_at(deadline, l.events.recv()).await {
            Ok(Some(event)) => on_link_event(event, &mut queued, &mut in_flight, &metrics),
            _ => {
                tracing::warn!(
                    "{} publishes not acknowledged by the broker at shutdown",
                    queued.len() + in_flight.len()
                );
                break;
            }
        }
    }
    l.close().await;
    Ok(())
}

async fn next_event(link: &mut Option<MqttLink>) -> Option<LinkEvent> {
    match link {
        Some(l) => l.events.recv().await,
        None => std::future::pending().await,
    }
}

fn on_link_event(
    event: LinkEvent,
    queued: &mut VecDeque<Pending>,
    in_flight: &mut HashMap<u16, Pending>,
    metrics: &SharedMetrics,
) {
    match event {
        // A resend after reconnecting reuses its packet id; only a new id consumes the queue.
        LinkEvent::Sent(pkid) if !in_flight.contains_key(&pkid) => {
            if let Some(p) = queued.pop_front() {
                in_flight.insert(pkid, p);
            }
        }
        LinkEvent::Acked(pkid) => {
            if let Some(pending) = in_flight.remove(&pkid) {
                let mut m = metrics.lock().expect("metrics lock");
                if let Some((arrival, handed)) = pending {
                    let now = Instant::now();
                    m.record(Stage::Output, now - handed);
                    m.record(Stage::EndToEnd, now - arrival);
                    m.counters.acked += 1;
                }
            }
        }
        LinkEvent::Sent(_) | LinkEvent::Connected | LinkEvent::Error(_) => {}
    }
}

/// Stdout writer that never panics: a closed pipe (`| head`) stops output, not the daemon.
struct Stdout {
    format: OutputFormat,
    out: std::io::BufWriter<std::io::Stdout>,
    broken: bool,
    wrote_csv_header: bool,
}

impl Stdout {
    fn new(format: OutputFormat) -> Self {
        Stdout { format, out: std::io::BufWriter::new(std::io::stdout()), broken: false, wrote_csv_header: false }
    }

    fn line(&mut self, text: &str) {
        if self.broken || self.format == OutputFormat::Quiet {
            return;
        }
        // Flush per line: a person or a pipe is waiting for each window.
        if let Err(e) = writeln!(self.out, "{text}").and_then(|_| self.out.flush()) {
            tracing::warn!("stdout closed ({e}); continuing without it");
            self.broken = true;
        }
    }

    fn feedback(&mut self, f: &Feedback) {
        match self.format {
            OutputFormat::Text => self.line(&f.to_text()),
            OutputFormat::Jsonl | OutputFormat::Csv => self.line(&f.to_json()),
            OutputFormat::Quiet => {}
        }
    }

    fn features(&mut self, row: &FeatureRow) {
        match self.format {
            OutputFormat::Csv => {
                if !self.wrote_csv_header {
                    self.wrote_csv_header = true;
                    self.line(&format!("subject,seq,window_start,window_end,{}", FEATURE_NAMES.join(",")));
                }
                let mut line = format!("{},{},{:.3},{:.3}", row.subject, row.seq, row.window_start, row.window_end);
                for (_, v) in &row.features {
                    line.push(',');
                    if let Some(v) = v {
                        line.push_str(&v.to_string());
                    }
                }
                self.line(&line);
            }
            OutputFormat::Jsonl | OutputFormat::Text => {
                let mut obj = serde_json::Map::new();
                obj.insert("subject".into(), row.subject.clone().into());
                obj.insert("seq".into(), row.seq.into());
                obj.insert("window_start".into(), row.window_start.into());
                obj.insert("window_end".into(), row.window_end.into());
                for (k, v) in &row.features {
                    obj.insert((*k).into(), v.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null));
                }
                self.line(&serde_json::Value::Object(obj).to_string());
            }
            OutputFormat::Quiet => {}
        }
    }

    fn flush(&mut self) {
        if !self.broken {
            let _ = self.out.flush();
        }
    }
}
