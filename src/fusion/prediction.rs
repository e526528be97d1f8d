//! What fusion answers for one window, and where that answer came from.

use super::Variant;
use serde::Serialize;
use std::time::Duration;

/// Where a prediction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Computed on this hub.
    Edge,
    /// The heavy stage ran on an offload worker and answered within the deadline.
    Cloud,
    /// The cascade was cut short — by the deadline, by the governor's plan, or by an offload
    /// that did not answer in time: the best answer of the stages that ran here.
    Fallback,
    /// A recent window with the same quantised inputs: its answer, no model run.
    Cache,
    /// No model could run: the window lacked the inputs it needs.
    None,
}

/// What fusion says about one window.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// A class name, or `unknown` when no stage could run.
    pub label: String,
    /// (class, probability) in the manifest's class order; empty when no stage could run.
    pub probabilities: Vec<(String, f32)>,
    /// Name of the manifest that answered (or, for `unknown`, of the last stage).
    pub model: String,
    pub variant: Variant,
    /// The `stage` of the answering manifest.
    pub exit_stage: u32,
    pub source: Source,
    /// Why there is no answer, when there is none.
    pub reason: Option<String>,
    /// Time spent in each stage that ran; empty for a cached answer.
    pub stage_latency: Vec<Duration>,
}
