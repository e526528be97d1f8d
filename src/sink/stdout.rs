//! stdout as a sink: text lines, JSON lines or CSV feature rows, flushed per record.
//!
//! The writing happens on a thread of its own: a terminal paused with Ctrl-S or a pipe nobody
//! reads blocks that thread, never the output task that also publishes on MQTT.

use super::{FeatureRow, OutputFormat};
use crate::bridge::{BeatMessage, Feedback};
use crate::features::FEATURE_NAMES;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Lines handed to the writer thread and not yet written, at most.
const LINES_IN_FLIGHT: usize = 256;
/// How long the end of a run waits for the writer to write what it holds.
const FINISH_PATIENCE: Duration = Duration::from_secs(2);

/// Writes records to stdout and never panics: a closed pipe (`| head`) stops the output, not the
/// daemon.
pub struct Stdout {
    format: OutputFormat,
    /// To the writer thread; `None` when quiet.
    lines: Option<(mpsc::Sender<String>, JoinHandle<()>)>,
    broken: Arc<AtomicBool>,
    /// Wait for the writer rather than drop a line (a file replayed flat out: every row counts).
    wait: bool,
    dropped: u64,
    wrote_csv_header: bool,
}

impl Stdout {
    /// `wait`: block for room instead of dropping lines the writer has not caught up with.
    pub fn new(format: OutputFormat, wait: bool) -> std::io::Result<Self> {
        let broken = Arc::new(AtomicBool::new(false));
        let lines = (format != OutputFormat::Quiet).then(|| -> std::io::Result<_> {
            let (tx, mut rx) = mpsc::channel::<String>(LINES_IN_FLIGHT);
            let broken = broken.clone();
            let writer = std::thread::Builder::new().name("stdout".into()).spawn(move || {
                let mut out = std::io::BufWriter::new(std::io::stdout());
                while let Some(text) = rx.blocking_recv() {
                    // Flush per line: a person or a pipe is waiting for each window.
                    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
                        tracing::warn!("stdout closed ({e}); continuing without it");
                        broken.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            })?;
            Ok((tx, writer))
        });
        Ok(Stdout { format, lines: lines.transpose()?, broken, wait, dropped: 0, wrote_csv_header: false })
    }

    async fn line(&mut self, text: String) {
        let Some((tx, _)) = &self.lines else { return };
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        if self.wait {
            // Waits as a task, not a blocked worker thread.
            let _ = tx.send(text).await;
        } else if let Err(TrySendError::Full(_)) = tx.try_send(text) {
            self.dropped += 1;
        }
    }

    pub async fn feedback(&mut self, f: &Feedback) {
        match self.format {
            OutputFormat::Text => self.line(f.to_text()).await,
            OutputFormat::Jsonl | OutputFormat::Csv => self.line(f.to_json()).await,
            OutputFormat::Quiet => {}
        }
    }

    pub async fn beat(&mut self, b: &BeatMessage<'_>) {
        match self.format {
            OutputFormat::Text => self.line(b.to_text()).await,
            OutputFormat::Jsonl | OutputFormat::Csv => self.line(b.to_json()).await,
            OutputFormat::Quiet => {}
        }
    }

    pub async fn features(&mut self, row: &FeatureRow) {
        match self.format {
            OutputFormat::Csv => {
                if !self.wrote_csv_header {
                    self.wrote_csv_header = true;
                    self.line(format!("subject,seq,window_start,window_end,{}", FEATURE_NAMES.join(","))).await;
                }
                let mut line = format!("{},{},{:.3},{:.3}", row.subject, row.seq, row.window_start, row.window_end);
                for (_, v) in &row.features {
                    line.push(',');
                    if let Some(v) = v {
                        line.push_str(&v.to_string());
                    }
                }
                self.line(line).await;
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
                self.line(serde_json::Value::Object(obj).to_string()).await;
            }
            OutputFormat::Quiet => {}
        }
    }

    /// Let the writer write out what is in flight (waiting at most a few seconds: a stalled
    /// reader would hold the end of the run hostage) and end it. Returns the lines dropped
    /// because the writer could not keep up, and those still unwritten when waiting stopped.
    pub async fn finish(self) -> u64 {
        let Some((tx, writer)) = self.lines else { return self.dropped };
        let unwritten = LINES_IN_FLIGHT - tx.capacity();
        drop(tx);
        let join = tokio::task::spawn_blocking(move || writer.join());
        match tokio::time::timeout(FINISH_PATIENCE, join).await {
            Ok(_) => self.dropped,
            // The thread stays blocked in its write; the process ends without it.
            Err(_) => self.dropped + unwritten as u64,
        }
    }
}
