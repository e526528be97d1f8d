//! `[fusion]` of the config file: which models to run, and how (deadline, cache, variant).

use super::Variant;
use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use serde::Deserialize;
use std::path::PathBuf;

/// `[fusion]`: which model to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Path of a model manifest (`.toml`), relative to the config file. Default: the bundled
    /// stress cascade (models/stress-s0, -s1, -s2).
    pub model: Option<PathBuf>,
    /// A cascade instead: stage manifests, cheapest first. Each stage but the last has an
    /// `[exit] confidence`; a window stops at the first stage that reaches it.
    pub stages: Option<Vec<PathBuf>>,
    /// Time budget per window, ms. A later stage whose usual latency would overrun it is skipped
    /// and the best answer so far is given with `source = "fallback"`.
    pub deadline_ms: Option<f64>,
    /// Prediction cache: how many recent answers to keep (least recently used go first). A
    /// window whose inputs, quantised, match a cached one gets its answer with
    /// `source = "cache"` and runs no model. Needs `inputs.scale` in every stage manifest.
    pub cache: Option<usize>,
    /// Quantisation step of the cache key, in units of each input's training spread.
    #[serde(default = "default_quantum")]
    pub cache_quantum: f64,
    /// Variant to start with where a stage has it (fp32, int8, pruned); default: each
    /// manifest's own. The governor switches at run time.
    pub variant: Option<Variant>,
    /// Refuse to start when a subject's sensors cannot feed the first stage. By default such a
    /// subject (an ECG chest strap alone, under the wrist stress model) still gets its features
    /// and quality every window, with `unknown` and the reason as its prediction.
    #[serde(default)]
    pub required: bool,
}

fn default_quantum() -> f64 {
    0.05
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            model: None,
            stages: None,
            deadline_ms: None,
            cache: None,
            cache_quantum: default_quantum(),
            variant: None,
            required: false,
        }
    }
}

impl FusionConfig {
    /// Check the fields on their own; key paths are relative to `[fusion]`. Whether the named
    /// manifests load is checked when the models are loaded.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.model.is_some() && self.stages.is_some() {
            return Err(Invalid::new(key_path!["stages"], "give either `model` or `stages`, not both")
                .help("`model` runs one model; `stages` runs a cascade of them"));
        }
        if let Some(stages) = &self.stages {
            if stages.is_empty() {
                return Err(Invalid::new(key_path!["stages"], "names no stage"));
            }
            if let Some(k) = stages.iter().position(|m| m.extension().is_none_or(|e| e != "toml")) {
                return Err(Invalid::new(key_path!["stages", k], "expects a stage's manifest (.toml), not the .onnx"));
            }
        }
        Invalid::bounded(key_path!["cache_quantum"], bounds::CACHE_QUANTUM, self.cache_quantum)?;
        if let Some(entries) = self.cache {
            Invalid::bounded(key_path!["cache"], bounds::CACHE_ENTRIES, entries as f64)
                .map_err(|e| e.help("leave `cache` out to turn the cache off"))?;
        }
        if let Some(d) = self.deadline_ms {
            Invalid::bounded(key_path!["deadline_ms"], bounds::DEADLINE_MS, d)?;
        }
        if let Some(m) = &self.model {
            if m.extension().is_none_or(|e| e != "toml") {
                return Err(Invalid::new(key_path!["model"], "expects the model's manifest (.toml), not the .onnx")
                    .help("point at e.g. models/stress-s1.toml; the manifest names its .onnx file"));
            }
        }
        Ok(())
    }
}
