//! stdout as a sink: text lines, JSON lines or CSV feature rows, flushed per record.

use super::{FeatureRow, OutputFormat};
use crate::bridge::Feedback;
use crate::features::FEATURE_NAMES;
use std::io::Write;

/// Writes records to stdout and never panics: a closed pipe (`| head`) stops the output, not the
/// daemon.
pub struct Stdout {
    format: OutputFormat,
    out: std::io::BufWriter<std::io::Stdout>,
    broken: bool,
    wrote_csv_header: bool,
}

impl Stdout {
    pub fn new(format: OutputFormat) -> Self {
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

    pub fn feedback(&mut self, f: &Feedback) {
        match self.format {
            OutputFormat::Text => self.line(&f.to_text()),
            OutputFormat::Jsonl | OutputFormat::Csv => self.line(&f.to_json()),
            OutputFormat::Quiet => {}
        }
    }

    pub fn features(&mut self, row: &FeatureRow) {
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

    pub fn flush(&mut self) {
        if !self.broken {
            let _ = self.out.flush();
        }
    }
}
