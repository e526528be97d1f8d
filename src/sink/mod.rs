//! Where finished windows go: the records the pipeline hands over, and the local writers for them.
//!
//! The pipeline thread puts a [`Record`] per window on a bounded [`queue`]; the daemon's output
//! task takes them off and gives each to the sinks: [`stdout`] (text, JSON lines or CSV feature
//! rows), [`tensor`] (raw-window tensors for training) and, when a broker is configured, the MQTT
//! publisher in `bridge`. Sinks only write; what a record means was settled upstream.
//!
//! Architecture invariant: sinks never block the pipeline. The queue between them is bounded; on a
//! live stream an overflowing record is dropped and counted, never waited for (see [`queue`]).

pub mod queue;
pub mod stdout;
pub mod tensor;

use crate::biofeedback::BeatEvent;
use crate::bridge::offload::OffloadRequest;
use crate::bridge::Feedback;
use std::str::FromStr;
use std::time::Instant;

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
    /// A heartbeat of one subject, as soon as its detector confirmed it (`biofeedback::beats`).
    Beat {
        subject: String,
        beat: BeatEvent,
    },
    /// A window whose heavy stage goes to an offload worker (the output task sends it).
    Offload(Box<OffloadJob>),
}

/// A window to offload, with the hub's own answer to give if no worker answers in time.
#[derive(Debug)]
pub struct OffloadJob {
    pub request: OffloadRequest,
    /// The best answer of the stages run here (`source = "fallback"`, or `unknown`).
    pub feedback: Feedback,
    /// The offloaded stage's classes: a worker's reply must give exactly these.
    pub classes: Vec<String>,
    /// The subject's tier deadline, counted from `arrival`.
    pub deadline: Instant,
    pub arrival: Instant,
    pub handed: Instant,
    /// The share of the in-flight bound the subject's tier may take.
    pub share: f64,
}
