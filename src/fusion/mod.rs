//! Model execution: manifests, tract plans, and the prediction each window gets.
//!
//! A model is described by its manifest (`models/*.toml` beside the `.onnx`): the feature names
//! it takes in order, the classes it outputs, its provenance and its measured metrics. The
//! runtime refuses a manifest whose inputs the configured channels cannot produce, verifies the
//! ONNX file's SHA-256, optimises the plan once at start-up and runs it many times.
//!
//! This issue runs one stage; the fusion issue grows it into a cascade with early exit,
//! deadlines, variants and a cache behind the same [`Fusion::predict`] call.
//!
//! Architecture invariant: tract runs on the pipeline thread, never on a tokio worker.

mod manifest;
pub mod raw;

use crate::diagnostic::Invalid;
use crate::features::{feature_index, feature_sources, FeatureVector};
use crate::key_path;
use crate::signal::Modality;
use crate::window::Window;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;

pub use manifest::{Manifest, ModelError, Variant};

/// The cascade bundled into the binary (models/stress-s*), so `biofeedd replay` and the demo
/// work from any folder.
pub mod builtin {
    use super::{ModelError, Slot};
    use std::path::Path;

    macro_rules! bundle {
        ($($name:literal),* $(,)?) => {
            &[$(($name, include_bytes!(concat!("../../models/", $name)) as &[u8])),*]
        };
    }

    /// (file name, bytes) of every bundled manifest and model.
    pub const FILES: &[(&str, &[u8])] = bundle![
        "stress-s0.toml",
        "stress-s0.onnx",
        "stress-s1.toml",
        "stress-s1.onnx",
        "stress-s1-pruned.toml",
        "stress-s1-pruned.onnx",
        "stress-s1-int8.toml",
        "stress-s1-int8.onnx",
        "stress-s2.toml",
        "stress-s2.onnx",
        "stress-s2-int8.toml",
        "stress-s2-int8.onnx",
    ];

    /// The stage manifests of the bundled cascade, cheapest first.
    pub const STAGES: [&str; 3] = ["stress-s0.toml", "stress-s1.toml", "stress-s2.toml"];

    /// A bundled file by name (`<builtin>/stress-s0.toml` or `stress-s0.toml`).
    pub fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| bytes.to_vec())
            .ok_or_else(|| ModelError::at(path, "is not among the bundled model files"))
    }

    /// One bundled stage (e.g. `stress-s2.toml`) with its variants.
    pub fn slot(name: &str) -> Result<Slot, ModelError> {
        Slot::load_with(&Path::new("<builtin>").join(name), &read)
    }

    /// The bundled cascade with all its variants.
    pub fn cascade() -> Result<Vec<Slot>, ModelError> {
        STAGES.iter().map(|name| slot(name)).collect()
    }
}

/// Reads a model file (from disk, or from the bundle).
pub type Reader<'a> = &'a dyn Fn(&Path) -> Result<Vec<u8>, ModelError>;

/// Reads from disk.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|e| ModelError::at(path, format!("cannot read: {e}")))
}

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
        }
    }
}

impl FusionConfig {
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
        if !(self.cache_quantum.is_finite() && self.cache_quantum > 0.0 && self.cache_quantum <= 10.0) {
            return Err(Invalid::new(key_path!["cache_quantum"], "must be between 0 and 10 (spreads)"));
        }
        if self.cache.is_some_and(|c| c > 1_000_000) {
            return Err(Invalid::new(key_path!["cache"], "at most 1000000 entries"));
        }
        if let Some(d) = self.deadline_ms {
            if !(d.is_finite() && d > 0.0 && d <= 60_000.0) {
                return Err(Invalid::new(key_path!["deadline_ms"], "must be between 0 and 60000 ms"));
            }
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

/// Where a prediction came from. Later issues add `cloud` and `cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Computed on this hub.
    Edge,
    /// The deadline cut the cascade short: the best answer of the stages that ran.
    Fallback,
    /// A recent window with the same quantised inputs: its answer, no model run.
    Cache,
    /// No model could run: the window lacked the features it needs.
    None,
}

/// What fusion says about one window.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// A class name, or `unknown` when the model could not run.
    pub label: String,
    /// (class, probability) in the manifest's class order; empty when the model could not run.
    pub probabilities: Vec<(String, f32)>,
    pub model: String,
    pub variant: Variant,
    pub exit_stage: u32,
    pub source: Source,
    /// Why there is no answer, when there is none.
    pub reason: Option<String>,
    /// Time spent in each stage that ran.
    pub stage_latency: Vec<Duration>,
}

/// One loaded model stage.
pub struct Stage {
    pub manifest: Manifest,
    /// The optimised plan's run state, spawned once and reused (it holds the plan).
    state: TypedSimpleState,
    /// Feature vector indices, in the model's input order.
    inputs: Vec<usize>,
    input: Vec<f32>,
    /// The raw-window input's tensor (empty when the stage reads features only).
    raw: Vec<f32>,
    scratch: raw::RawScratch,
}

impl Stage {
    /// Load and optimise a model from its manifest text and ONNX bytes. `origin` names them in errors.
    pub fn load(manifest: Manifest, onnx: &[u8]) -> Result<Stage, ModelError> {
        manifest.verify_onnx(onnx)?;
        let origin = manifest.origin.clone();
        let inputs = manifest
            .inputs
            .features
            .iter()
            .map(|name| {
                feature_index(name).ok_or_else(|| ModelError::at(&origin, format!(
                    "input feature `{name}` is not produced by the feature stage; known features are listed by `biofeedd features --list`"
                )))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = inputs.len();
        let onnx_name = manifest.onnx.display().to_string();
        let tract_err = |e: anyhow::Error| ModelError::at(&origin, format!("tract cannot load {onnx_name}: {e:#}"));
        let mut model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(onnx)).map_err(tract_err)?;
        // Fixed shapes (batch 1) let tract optimise the plan for exactly what it will run.
        let mut facts = Vec::new();
        if n > 0 {
            facts.push(f32::fact([1, n]));
        }
        if let Some(r) = &manifest.inputs.raw {
            facts.push(f32::fact([1, r.channels.len(), r.length]));
        }
        if model.input_outlets().map_err(tract_err)?.len() != facts.len() {
            return Err(ModelError::at(
                &origin,
                format!(
                    "{onnx_name} has {} inputs but the manifest describes {} (features first, then the raw window)",
                    model.input_outlets().map_err(tract_err)?.len(),
                    facts.len()
                ),
            ));
        }
        for (k, fact) in facts.into_iter().enumerate() {
            model = model.with_input_fact(k, fact.into()).map_err(tract_err)?;
        }
        let plan = model.into_optimized().map_err(tract_err)?.into_runnable().map_err(tract_err)?;
        let state = plan.spawn().map_err(tract_err)?;
        let raw = vec![0.0; manifest.inputs.raw.as_ref().map_or(0, |r| r.len())];
        let mut stage = Stage { manifest, state, inputs, input: vec![0.0; n], raw, scratch: Default::default() };
        // Run once on zeros: checks the output shape now rather than on the first window.
        let probs = stage.run_raw().map_err(tract_err)?;
        let classes = stage.manifest.outputs.classes.len();
        if probs.len() != classes {
            return Err(ModelError::at(
                &origin,
                format!("the model outputs {} values but the manifest lists {classes} classes", probs.len()),
            ));
        }
        Ok(stage)
    }

    /// Load from a manifest file; its `onnx` path is relative to the manifest.
    pub fn load_file(manifest_path: &Path) -> Result<Stage, ModelError> {
        Stage::load_with(manifest_path, &read_file)
    }

    /// Load a manifest and its model through `read`.
    pub fn load_with(manifest_path: &Path, read: Reader) -> Result<Stage, ModelError> {
        let text = String::from_utf8(read(manifest_path)?)
            .map_err(|_| ModelError::at(manifest_path, "the manifest is not UTF-8 text"))?;
        let manifest = Manifest::parse(&text, manifest_path)?;
        let onnx_path = manifest_path.parent().unwrap_or(Path::new(".")).join(&manifest.onnx);
        let onnx = read(&onnx_path).map_err(|e| {
            ModelError::at(manifest_path, format!("cannot read model {}: {}", onnx_path.display(), e.message))
        })?;
        Stage::load(manifest, &onnx)
    }

    fn run_raw(&mut self) -> TractResult<Vec<f32>> {
        let mut inputs = TVec::new();
        if !self.input.is_empty() {
            inputs.push(Tensor::from_shape(&[1, self.input.len()], &self.input)?.into());
        }
        if let Some(r) = &self.manifest.inputs.raw {
            inputs.push(Tensor::from_shape(&[1, r.channels.len(), r.length], &self.raw)?.into());
        }
        let outputs = self.state.run(inputs)?;
        Ok(outputs[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
    }

    /// Run the model on a window and its feature vector; `Err` lists the required inputs that
    /// are missing (NaN features, raw channels the window lacks). Other missing features take
    /// the manifest's `fill` values.
    pub fn run(&mut self, window: &Window, fv: &FeatureVector) -> Result<Vec<f32>, Vec<String>> {
        let spec = &self.manifest.inputs;
        let required = |name: &String| match (&spec.fill, &spec.required) {
            (None, _) | (Some(_), None) => true,
            (Some(_), Some(req)) => req.contains(name),
        };
        let mut missing: Vec<String> = self
            .inputs
            .iter()
            .zip(&spec.features)
            .filter(|(i, name)| !fv.values[**i].is_finite() && required(name))
            .map(|(_, name)| name.clone())
            .collect();
        if let Some(r) = &spec.raw {
            if missing.is_empty() {
                if let Err(lacking) = raw::prepare(r, window, &mut self.scratch, &mut self.raw) {
                    missing.extend(lacking);
                }
            } else {
                // The stage will not run: name what the window lacks, but prepare nothing (a
                // subject still calibrating would pay for the raw window at every hop).
                missing.extend(raw::lacking(r, window));
            }
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        for (k, (d, &i)) in self.input.iter_mut().zip(&self.inputs).enumerate() {
            let v = fv.values[i];
            *d = if v.is_finite() { v } else { spec.fill.as_ref().map_or(f32::NAN, |f| f[k]) };
        }
        // A tract failure on a validated model and a finite input is a bug, not bad input.
        Ok(self.run_raw().expect("tract run on a validated plan"))
    }

    /// The inputs of the last run, as the model got them (missing features filled; the
    /// prepared raw window): for benches that feed the same values to another runtime.
    pub fn last_inputs(&self) -> (&[f32], &[f32]) {
        (&self.input, &self.raw)
    }

    /// Run the model again on the last run's inputs: the model's own cost, without preparing
    /// them (what a benchmark compares with another runtime).
    pub fn rerun(&mut self) -> Vec<f32> {
        self.run_raw().expect("tract run on a validated plan")
    }

    /// Modalities a subject must wear for this model's required inputs (inputs with a `fill`
    /// value are optional), as (feature, acceptable sources).
    pub fn required_sources(&self) -> impl Iterator<Item = (String, &'static [Modality])> + '_ {
        let spec = &self.manifest.inputs;
        let features = spec
            .features
            .iter()
            .filter(|f| spec.fill.is_none() || spec.required.as_ref().is_none_or(|r| r.contains(f)))
            .map(|f| (format!("feature `{f}`"), feature_sources(f)));
        let raw = spec.raw.iter().flat_map(|r| &r.channels).map(|c| {
            let m = Modality::ALL.iter().position(|m| *m == c.modality).expect("ALL lists every modality");
            (format!("the raw {} signal", c.modality), &Modality::ALL[m..=m])
        });
        features.chain(raw)
    }

    /// Check that channels of `modalities` can produce every input; the error says what is missing.
    pub fn check_inputs(&self, subject: &str, modalities: &[Modality]) -> Result<(), String> {
        for (feature, sources) in self.required_sources() {
            if !sources.iter().any(|m| modalities.contains(m)) {
                let need: Vec<&str> = sources.iter().map(|m| m.as_str()).collect();
                let have: Vec<&str> = modalities.iter().map(|m| m.as_str()).collect();
                return Err(format!(
                    "model `{}` needs {feature} (from a {} channel), but subject `{subject}` has only: {}",
                    self.manifest.name,
                    need.join(" or "),
                    if have.is_empty() { "no channels".to_string() } else { have.join(", ") }
                ));
            }
        }
        Ok(())
    }
}

/// Recent answers keyed on quantised inputs.
struct PredictionCache {
    /// (feature index, quantisation step) of every stage's inputs.
    keys: Vec<(usize, f64)>,
    lru: lru::LruCache<u64, Prediction>,
    lookups: u64,
    hits: u64,
}

impl PredictionCache {
    /// The key of `fv`'s quantised inputs under the `active` variants (another variant's answer
    /// is not this one's).
    fn key(&self, fv: &FeatureVector, active: &[usize]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        active.hash(&mut h);
        for &(i, step) in &self.keys {
            let v = fv.values[i];
            // A missing input is part of the key: it changes what the stages do.
            let q = if v.is_finite() { (v as f64 / step).round() as i64 } else { i64::MIN };
            q.hash(&mut h);
        }
        h.finish()
    }
}

/// One position of the cascade: its model's variants (the manifest's own first, then those its
/// `[variants]` table names), one of them active.
pub struct Slot {
    variants: Vec<Stage>,
    active: usize,
}

impl Slot {
    /// A stage and its variants.
    pub fn new(variants: Vec<Stage>) -> Slot {
        assert!(!variants.is_empty(), "a slot holds at least its own stage");
        Slot { variants, active: 0 }
    }

    /// Load a manifest file and every variant it names (relative to it).
    pub fn load_file(manifest_path: &Path) -> Result<Slot, ModelError> {
        Slot::load_with(manifest_path, &read_file)
    }

    /// Load a manifest and its variants through `read`.
    pub fn load_with(manifest_path: &Path, read: Reader) -> Result<Slot, ModelError> {
        let first = Stage::load_with(manifest_path, read)?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let mut variants = vec![first];
        for (variant, path) in variants[0].manifest.variants.clone() {
            let stage = Stage::load_with(&dir.join(&path), read)?;
            Self::check_variant(&variants[0], &stage, variant)?;
            variants.push(stage);
        }
        Ok(Slot::new(variants))
    }

    /// A variant must be a drop-in replacement: same stage, task, classes and inputs.
    fn check_variant(parent: &Stage, v: &Stage, listed_as: Variant) -> Result<(), ModelError> {
        let (p, m) = (&parent.manifest, &v.manifest);
        let problem = if m.variant != listed_as {
            Some(format!(
                "is listed as the `{listed_as}` variant of `{}` but says `variant = \"{}\"`",
                p.name, m.variant
            ))
        } else if m.stage != p.stage || m.task != p.task || m.outputs.classes != p.outputs.classes {
            Some(format!("is a variant of `{}` but its stage, task or classes differ", p.name))
        } else if m.inputs.features != p.inputs.features || m.inputs.raw != p.inputs.raw {
            Some(format!("is a variant of `{}` but takes other inputs; a variant must take the same ones", p.name))
        } else if m.exit.is_some() != p.exit.is_some() {
            // Switching to it would turn an exit stage into a last stage or back.
            let (own, parent) = if m.exit.is_some() { ("has an", "none") } else { ("has no", "one") };
            Some(format!("is a variant of `{}` but {own} [exit] while its parent has {parent}", p.name))
        } else {
            None
        };
        problem.map_or(Ok(()), |msg| Err(ModelError::at(&m.origin, msg)))
    }

    pub fn active(&self) -> &Stage {
        &self.variants[self.active]
    }

    fn active_mut(&mut self) -> &mut Stage {
        &mut self.variants[self.active]
    }

    /// Every variant loaded for this position, the manifest's own first.
    pub fn variants(&self) -> &[Stage] {
        &self.variants
    }

    /// The same, to run them (`biofeedd eval` scores every variant alone).
    pub fn variants_mut(&mut self) -> &mut [Stage] {
        &mut self.variants
    }
}

/// The fusion stage of one pipeline: one model, or a cascade of stages with early exit.
pub struct Fusion {
    stages: Vec<Slot>,
    cache: Option<PredictionCache>,
    deadline: Option<Duration>,
    /// Usual latency of each stage (exponential average), to decide before running it whether
    /// it fits in what is left of the deadline.
    usual: Vec<Duration>,
}

impl Fusion {
    /// A cascade of `stages` (each without variants), cheapest first; a single stage is a
    /// cascade of one.
    pub fn new(stages: Vec<Stage>, deadline: Option<Duration>) -> Result<Fusion, ModelError> {
        Fusion::with_variants(stages.into_iter().map(|s| Slot::new(vec![s])).collect(), deadline)
    }

    /// A cascade whose positions may each hold several variants.
    pub fn with_variants(stages: Vec<Slot>, deadline: Option<Duration>) -> Result<Fusion, ModelError> {
        let Some(first) = stages.first() else {
            return Err(ModelError::at(Path::new("[fusion]"), "no model stage"));
        };
        let (task, classes) = (&first.active().manifest.task, &first.active().manifest.outputs.classes);
        for (k, st) in stages.iter().map(Slot::active).enumerate() {
            let m = &st.manifest;
            if &m.task != task || &m.outputs.classes != classes {
                return Err(ModelError::at(
                    &m.origin,
                    format!(
                        "stage {k} predicts `{}` {:?}, but stage 0 predicts `{task}` {classes:?}",
                        m.task, m.outputs.classes
                    ),
                ));
            }
            if stages.len() > 1 && m.stage as usize != k {
                return Err(ModelError::at(
                    &m.origin,
                    format!("is listed as stage {k} of the cascade but says `stage = {}`", m.stage),
                ));
            }
            if k + 1 < stages.len() && m.exit.is_none() {
                return Err(ModelError::at(&m.origin, format!("stage {k} of {} has no [exit] confidence, so no window could stop there and the later stages would never run alone", stages.len())));
            }
        }
        let usual = vec![Duration::ZERO; stages.len()];
        Ok(Fusion { stages, cache: None, deadline, usual })
    }

    /// Keep the last `capacity` answers, keyed on the inputs quantised to `quantum` of each
    /// input's training spread.
    pub fn with_cache(mut self, capacity: usize, quantum: f64) -> Result<Fusion, ModelError> {
        let mut keys = Vec::new();
        for st in self.stages.iter().map(Slot::active) {
            let Some(scale) = &st.manifest.inputs.scale else {
                return Err(ModelError::at(
                    &st.manifest.origin,
                    "[fusion] cache needs inputs.scale (each input's training spread) in every stage manifest",
                ));
            };
            keys.extend(st.inputs.iter().zip(scale).map(|(&i, &s)| (i, s as f64 * quantum)));
        }
        let capacity = std::num::NonZeroUsize::new(capacity)
            .ok_or_else(|| ModelError::at(Path::new("[fusion]"), "cache = 0: leave `cache` out to turn it off"))?;
        self.cache = Some(PredictionCache { keys, lru: lru::LruCache::new(capacity), lookups: 0, hits: 0 });
        Ok(self)
    }

    /// (lookups, hits) of the prediction cache, if there is one.
    pub fn cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(|c| (c.lookups, c.hits))
    }

    /// Load what `[fusion]` names (paths resolved by the caller), or the bundled cascade.
    pub fn from_config(config: &FusionConfig, resolve: impl Fn(&Path) -> PathBuf) -> Result<Fusion, ModelError> {
        let stages = match (&config.model, &config.stages) {
            (_, Some(paths)) => paths.iter().map(|p| Slot::load_file(&resolve(p))).collect::<Result<Vec<_>, _>>()?,
            (Some(p), None) => vec![Slot::load_file(&resolve(p))?],
            (None, None) => builtin::cascade()?,
        };
        let mut fusion =
            Fusion::with_variants(stages, config.deadline_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0)))?;
        if let Some(v) = config.variant {
            fusion.set_variant(v);
        }
        match config.cache {
            Some(capacity) => fusion.with_cache(capacity, config.cache_quantum),
            None => Ok(fusion),
        }
    }

    /// The active stages, cheapest first.
    pub fn stages(&self) -> impl ExactSizeIterator<Item = &Stage> {
        self.stages.iter().map(Slot::active)
    }

    /// The cascade's positions with all their variants.
    pub fn slots(&self) -> &[Slot] {
        &self.stages
    }

    pub fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.stages
    }

    /// The last (most capable) active stage: what a window gets when nothing exits early.
    pub fn stage(&self) -> &Stage {
        self.stages.last().expect("a fusion has at least one stage").active()
    }

    /// Switch every stage that has `variant` to it (the others keep theirs); returns how many
    /// stages run `variant` now. For the governor: e.g. int8 everywhere under CPU pressure.
    pub fn set_variant(&mut self, variant: Variant) -> usize {
        (0..self.stages.len()).filter(|&k| self.set_stage_variant(k, variant)).count()
    }

    /// Switch stage `k` to `variant`; `false` (and no change) if it has no such variant.
    pub fn set_stage_variant(&mut self, k: usize, variant: Variant) -> bool {
        let Some(slot) = self.stages.get_mut(k) else { return false };
        match slot.variants.iter().position(|s| s.manifest.variant == variant) {
            Some(i) => {
                if slot.active != i {
                    slot.active = i;
                    // The new variant's latency is not the old one's.
                    self.usual[k] = Duration::ZERO;
                }
                true
            }
            None => false,
        }
    }

    /// The active variant of each stage.
    pub fn variants(&self) -> Vec<Variant> {
        self.stages().map(|s| s.manifest.variant).collect()
    }

    /// What the cascade says about `window`, whose features are `fv`.
    pub fn predict(&mut self, window: &Window, fv: &FeatureVector) -> Prediction {
        let active: Vec<usize> = self.stages.iter().map(|s| s.active).collect();
        let key = self.cache.as_ref().map(|c| c.key(fv, &active));
        if let (Some(cache), Some(key)) = (&mut self.cache, key) {
            cache.lookups += 1;
            if let Some(p) = cache.lru.get(&key) {
                cache.hits += 1;
                return Prediction { source: Source::Cache, stage_latency: Vec::new(), ..p.clone() };
            }
        }
        let prediction = self.run_cascade(window, fv);
        if let (Some(cache), Some(key)) = (&mut self.cache, key) {
            // Only full answers are worth repeating: not an `unknown`, not a deadline's fallback.
            if prediction.source == Source::Edge {
                cache.lru.put(key, prediction.clone());
            }
        }
        prediction
    }

    fn run_cascade(&mut self, window: &Window, fv: &FeatureVector) -> Prediction {
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(self.stages.len());
        let mut best: Option<(usize, Vec<f32>)> = None;
        let mut missing_all: Vec<String> = Vec::new();
        let mut cut_short = false;
        for k in 0..self.stages.len() {
            if let (Some(deadline), Some(_)) = (self.deadline, &best) {
                if started.elapsed() + self.usual[k] > deadline {
                    cut_short = true;
                    break;
                }
            }
            let t = Instant::now();
            let outcome = self.stages[k].active_mut().run(window, fv);
            let took = t.elapsed();
            latencies.push(took);
            self.usual[k] = if self.usual[k].is_zero() { took } else { (self.usual[k] * 7 + took) / 8 };
            match outcome {
                Ok(probs) => {
                    let top = probs.iter().copied().fold(0.0f32, f32::max);
                    let exits = self.stages[k].active().manifest.exit.as_ref().is_some_and(|e| top >= e.confidence);
                    best = Some((k, probs));
                    if exits {
                        break;
                    }
                }
                Err(missing) => {
                    for m in missing {
                        if !missing_all.contains(&m) {
                            missing_all.push(m);
                        }
                    }
                }
            }
        }
        let answering = best.as_ref().map_or(self.stages.len() - 1, |(k, _)| *k);
        let m = &self.stages[answering].active().manifest;
        let (name, variant, exit_stage) = (m.name.clone(), m.variant, m.stage);
        match best {
            Some((k, probs)) => {
                let classes = &self.stages[k].active().manifest.outputs.classes;
                let top = probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
                Prediction {
                    label: classes[top].clone(),
                    probabilities: classes.iter().cloned().zip(probs).collect(),
                    model: name,
                    variant,
                    exit_stage,
                    source: if cut_short { Source::Fallback } else { Source::Edge },
                    reason: None,
                    stage_latency: latencies,
                }
            }
            None => Prediction {
                label: "unknown".into(),
                probabilities: Vec::new(),
                model: name,
                variant,
                exit_stage,
                source: Source::None,
                reason: Some(match fv.baseline {
                    // The model compares with the subject's resting start, which is still being recorded.
                    crate::features::baseline::Phase::Calibrating { left_s }
                        if missing_all.iter().any(|m| m.starts_with("z_")) =>
                    {
                        format!("calibrating the subject's baseline: {left_s:.0} s left")
                    }
                    _ => format!("not computable in this window: {}", missing_all.join(", ")),
                }),
                stage_latency: latencies,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FEATURE_NAMES;

    /// A window with no channels: enough for stages that read features only.
    fn window() -> Window {
        Window {
            subject: "s".into(),
            seq: 0,
            start: 0.0,
            end: 60.0,
            channels: Vec::new(),
            last_arrival: std::time::Instant::now(),
        }
    }

    fn fv(value: f32) -> FeatureVector {
        FeatureVector { values: [value; FEATURE_NAMES.len()], ..FeatureVector::empty() }
    }

    fn bundled(name: &str) -> String {
        String::from_utf8(builtin::read(Path::new(name)).unwrap()).unwrap()
    }

    /// `text` with the line starting `key =` replaced by `line`.
    fn with_line(text: &str, key: &str, line: &str) -> String {
        text.lines().map(|l| if l.starts_with(&format!("{key} =")) { line } else { l }).collect::<Vec<_>>().join("\n")
    }

    fn stage_from(text: &str, onnx: &str) -> Stage {
        let manifest = Manifest::parse(text, Path::new("m.toml")).unwrap_or_else(|e| panic!("{e}"));
        Stage::load(manifest, &builtin::read(Path::new(onnx)).unwrap()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_bundled_cascade_loads_with_its_variants_and_answers() {
        let mut fusion = Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).expect("bundled cascade");
        let variants: Vec<Vec<Variant>> =
            fusion.slots().iter().map(|s| s.variants().iter().map(|v| v.manifest.variant).collect()).collect();
        assert_eq!(
            variants,
            vec![
                vec![Variant::Fp32],
                vec![Variant::Fp32, Variant::Int8, Variant::Pruned],
                vec![Variant::Fp32, Variant::Int8]
            ]
        );
        // Every input of stage 1 at its training median; no raw window, so stage 2 cannot run
        // and the answer comes from stage 0 or 1.
        let s1 = &fusion.slots()[1].variants()[0].manifest.inputs;
        let mut v = fv(f32::NAN);
        for (name, fill) in s1.features.iter().zip(s1.fill.as_ref().unwrap()) {
            v.values[feature_index(name).unwrap()] = *fill;
        }
        let p = fusion.predict(&window(), &v);
        assert_eq!(p.source, Source::Edge, "{:?}", p.reason);
        assert!(p.exit_stage <= 1, "{p:?}");
        let sum: f32 = p.probabilities.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        assert!(p.label == "stress" || p.label == "rest");
    }

    #[test]
    fn missing_features_give_unknown_with_the_reason() {
        let mut fusion = Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).unwrap();
        let p = fusion.predict(&window(), &fv(f32::NAN));
        assert_eq!((p.label.as_str(), p.source), ("unknown", Source::None));
        let reason = p.reason.unwrap();
        assert!(reason.contains("z_hr_mean_bpm") && reason.contains("raw ppg"), "{reason}");
    }

    #[test]
    fn manifest_fill_required_exit_and_variants_are_checked() {
        let s0 = bundled("stress-s0.toml");
        let parse = |text: String| Manifest::parse(&text, Path::new("m.toml"));
        let err = parse(with_line(&s0, "fill", "fill = [1.0, 2.0]")).unwrap_err().to_string();
        assert!(err.contains("one finite value per input feature (10), it has 2"), "{err}");
        let err = parse(with_line(&s0, "required", "required = [\"eda_tonic_us\"]")).unwrap_err().to_string();
        assert!(err.contains("`eda_tonic_us`, which is not an input feature"), "{err}");
        let err = parse(with_line(&s0, "confidence", "confidence = 1.5")).unwrap_err().to_string();
        assert!(err.contains("exit.confidence 1.5 is outside (0, 1]"), "{err}");
        let err = parse(s0.clone() + "\n[variants]\nfp32 = \"x.toml\"\n").unwrap_err().to_string();
        assert!(err.contains("variants lists `fp32`, the variant this manifest describes itself"), "{err}");
        let err = parse(with_line(&s0, "features", "features = []")).unwrap_err().to_string();
        assert!(err.contains("the model takes no input"), "{err}");
        let s2 = bundled("stress-s2.toml");
        let err = parse(with_line(&s2, "length", "length = 0")).unwrap_err().to_string();
        assert!(err.contains("inputs.raw.length 0"), "{err}");
    }

    #[test]
    fn only_required_inputs_make_a_stage_refuse() {
        let mut stage = stage_from(&bundled("stress-s0.toml"), "stress-s0.onnx");
        let mut v = fv(f32::NAN);
        assert_eq!(stage.run(&window(), &v).unwrap_err(), vec!["z_hr_mean_bpm".to_string(), "z_eda_mean_us".into()]);
        v.values[feature_index("z_hr_mean_bpm").unwrap()] = 1.0;
        v.values[feature_index("z_eda_mean_us").unwrap()] = 2.0;
        let p = stage.run(&window(), &v).expect("the rest is filled");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_cascade_stage_without_an_exit_is_refused() {
        let first = stage_from(&with_line(&bundled("stress-s2.toml"), "stage", "stage = 0"), "stress-s2.onnx");
        let second = stage_from(&with_line(&bundled("stress-s0.toml"), "stage", "stage = 1"), "stress-s0.onnx");
        let err = Fusion::new(vec![first, second], None).err().unwrap().to_string();
        assert!(err.contains("stage 0 of 2 has no [exit] confidence"), "{err}");
    }

    #[test]
    fn a_variant_with_other_inputs_is_refused() {
        let parent = stage_from(&bundled("stress-s1.toml"), "stress-s1.onnx");
        let other =
            stage_from(&with_line(&bundled("stress-s0.toml"), "variant", "variant = \"int8\""), "stress-s0.onnx");
        let err = Slot::check_variant(&parent, &other, Variant::Int8).unwrap_err().to_string();
        assert!(err.contains("is a variant of `stress-s1` but its stage, task or classes differ"), "{err}");
        let int8 = bundled("stress-s1-int8.toml");
        let text: Vec<&str> = int8.lines().filter(|l| *l != "[exit]" && !l.starts_with("confidence =")).collect();
        let no_exit = stage_from(&text.join("\n"), "stress-s1-int8.onnx");
        let err = Slot::check_variant(&parent, &no_exit, Variant::Int8).unwrap_err().to_string();
        assert!(err.contains("has no [exit] while its parent has one"), "{err}");
        let err = Slot::check_variant(&parent, &other, Variant::Pruned).unwrap_err().to_string();
        assert!(err.contains("listed as the `pruned` variant of `stress-s1` but says `variant = \"int8\"`"), "{err}");
    }

    #[test]
    fn input_check_names_the_missing_modality() {
        let fusion = Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).unwrap();
        let err = fusion.stage().check_inputs("s07", &[Modality::Ecg]).unwrap_err();
        assert!(err.contains("subject `s07` has only: ecg"), "{err}");
        assert!(fusion
            .stage()
            .check_inputs("s07", &[Modality::Ppg, Modality::Eda, Modality::Temp, Modality::Acc])
            .is_ok());
    }
}
