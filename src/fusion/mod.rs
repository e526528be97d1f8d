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

use crate::config::Invalid;
use crate::features::{feature_index, feature_sources, FeatureVector};
use crate::path;
use crate::signal::Modality;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;

pub use manifest::{Manifest, ModelError, Variant};

/// The model bundled into the binary, so `biofeedd replay` works from any folder.
pub const BUILTIN_MANIFEST: &str = include_str!("../../models/stress-v0.toml");
pub const BUILTIN_ONNX: &[u8] = include_bytes!("../../models/stress-v0.onnx");

/// `[fusion]`: which model to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Path of a model manifest (`.toml`), relative to the config file. Default: the bundled
    /// `stress-v0` model.
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
}

fn default_quantum() -> f64 {
    0.05
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig { model: None, stages: None, deadline_ms: None, cache: None, cache_quantum: default_quantum() }
    }
}

impl FusionConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.model.is_some() && self.stages.is_some() {
            return Err(Invalid::new(path!["fusion", "stages"], "give either `model` or `stages`, not both")
                .help("`model` runs one model; `stages` runs a cascade of them"));
        }
        if let Some(stages) = &self.stages {
            if stages.is_empty() {
                return Err(Invalid::new(path!["fusion", "stages"], "names no stage"));
            }
            if let Some(k) = stages.iter().position(|m| m.extension().is_none_or(|e| e != "toml")) {
                return Err(Invalid::new(
                    path!["fusion", "stages", k],
                    "expects a stage's manifest (.toml), not the .onnx",
                ));
            }
        }
        if !(self.cache_quantum.is_finite() && self.cache_quantum > 0.0 && self.cache_quantum <= 10.0) {
            return Err(Invalid::new(path!["fusion", "cache_quantum"], "must be between 0 and 10 (spreads)"));
        }
        if self.cache.is_some_and(|c| c > 1_000_000) {
            return Err(Invalid::new(path!["fusion", "cache"], "at most 1000000 entries"));
        }
        if let Some(d) = self.deadline_ms {
            if !(d.is_finite() && d > 0.0 && d <= 60_000.0) {
                return Err(Invalid::new(path!["fusion", "deadline_ms"], "must be between 0 and 60000 ms"));
            }
        }
        if let Some(m) = &self.model {
            if m.extension().is_none_or(|e| e != "toml") {
                return Err(Invalid::new(
                    path!["fusion", "model"],
                    "expects the model's manifest (.toml), not the .onnx",
                )
                .help("point at e.g. models/stress-v0.toml; the manifest names its .onnx file"));
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
        let plan = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(tract_err)?
            .with_input_fact(0, f32::fact([1, n]).into())
            .map_err(tract_err)?
            .into_optimized()
            .map_err(tract_err)?
            .into_runnable()
            .map_err(tract_err)?;
        let state = plan.spawn().map_err(tract_err)?;
        let mut stage = Stage { manifest, state, inputs, input: vec![0.0; n] };
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
        let manifest = Manifest::load(manifest_path)?;
        let onnx_path = manifest_path.parent().unwrap_or(Path::new(".")).join(&manifest.onnx);
        let onnx = std::fs::read(&onnx_path)
            .map_err(|e| ModelError::at(manifest_path, format!("cannot read model {}: {e}", onnx_path.display())))?;
        Stage::load(manifest, &onnx)
    }

    /// The model bundled into the binary.
    pub fn builtin() -> Result<Stage, ModelError> {
        let manifest = Manifest::parse(BUILTIN_MANIFEST, Path::new("<builtin>/stress-v0.toml"))?;
        Stage::load(manifest, BUILTIN_ONNX)
    }

    fn run_raw(&mut self) -> TractResult<Vec<f32>> {
        let input = Tensor::from_shape(&[1, self.input.len()], &self.input)?;
        let outputs = self.state.run(tvec!(input.into()))?;
        Ok(outputs[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
    }

    /// Run the model on a feature vector; `Err` lists the required inputs that are missing (NaN).
    /// Other missing inputs take the manifest's `fill` values.
    pub fn run(&mut self, fv: &FeatureVector) -> Result<Vec<f32>, Vec<String>> {
        let spec = &self.manifest.inputs;
        let required = |name: &String| match (&spec.fill, &spec.required) {
            (None, _) | (Some(_), None) => true,
            (Some(_), Some(req)) => req.contains(name),
        };
        let missing: Vec<String> = self
            .inputs
            .iter()
            .zip(&spec.features)
            .filter(|(i, name)| !fv.values[**i].is_finite() && required(name))
            .map(|(_, name)| name.clone())
            .collect();
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

    /// Modalities a subject must wear for this model's required inputs (inputs with a `fill`
    /// value are optional), as (feature, acceptable sources).
    pub fn required_sources(&self) -> impl Iterator<Item = (&str, &'static [Modality])> {
        let spec = &self.manifest.inputs;
        spec.features
            .iter()
            .filter(|f| spec.fill.is_none() || spec.required.as_ref().is_none_or(|r| r.contains(f)))
            .map(|f| (f.as_str(), feature_sources(f)))
    }

    /// Check that channels of `modalities` can produce every input; the error says what is missing.
    pub fn check_inputs(&self, subject: &str, modalities: &[Modality]) -> Result<(), String> {
        for (feature, sources) in self.required_sources() {
            if !sources.iter().any(|m| modalities.contains(m)) {
                let need: Vec<&str> = sources.iter().map(|m| m.as_str()).collect();
                let have: Vec<&str> = modalities.iter().map(|m| m.as_str()).collect();
                return Err(format!(
                    "model `{}` needs feature `{feature}`, computed from a {} channel, but subject `{subject}` has only: {}",
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
    fn key(&self, fv: &FeatureVector) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for &(i, step) in &self.keys {
            let v = fv.values[i];
            // A missing input is part of the key: it changes what the stages do.
            let q = if v.is_finite() { (v as f64 / step).round() as i64 } else { i64::MIN };
            q.hash(&mut h);
        }
        h.finish()
    }
}

/// The fusion stage of one pipeline: one model, or a cascade of stages with early exit.
pub struct Fusion {
    stages: Vec<Stage>,
    cache: Option<PredictionCache>,
    deadline: Option<Duration>,
    /// Usual latency of each stage (exponential average), to decide before running it whether
    /// it fits in what is left of the deadline.
    usual: Vec<Duration>,
}

impl Fusion {
    /// A cascade of `stages`, cheapest first; a single stage is a cascade of one.
    pub fn new(stages: Vec<Stage>, deadline: Option<Duration>) -> Result<Fusion, ModelError> {
        let Some(first) = stages.first() else {
            return Err(ModelError::at(Path::new("[fusion]"), "no model stage"));
        };
        let (task, classes) = (&first.manifest.task, &first.manifest.outputs.classes);
        for (k, st) in stages.iter().enumerate() {
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
        for st in &self.stages {
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

    /// Load what `[fusion]` names (paths resolved by the caller), or the bundled model.
    pub fn from_config(config: &FusionConfig, resolve: impl Fn(&Path) -> PathBuf) -> Result<Fusion, ModelError> {
        let stages = match (&config.model, &config.stages) {
            (_, Some(paths)) => paths.iter().map(|p| Stage::load_file(&resolve(p))).collect::<Result<Vec<_>, _>>()?,
            (Some(p), None) => vec![Stage::load_file(&resolve(p))?],
            (None, None) => vec![Stage::builtin()?],
        };
        let fusion = Fusion::new(stages, config.deadline_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0)))?;
        match config.cache {
            Some(capacity) => fusion.with_cache(capacity, config.cache_quantum),
            None => Ok(fusion),
        }
    }

    /// The stages, cheapest first.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The last (most capable) stage: what a window gets when nothing exits early.
    pub fn stage(&self) -> &Stage {
        self.stages.last().expect("a fusion has at least one stage")
    }

    pub fn predict(&mut self, fv: &FeatureVector) -> Prediction {
        let key = self.cache.as_ref().map(|c| c.key(fv));
        if let (Some(cache), Some(key)) = (&mut self.cache, key) {
            cache.lookups += 1;
            if let Some(p) = cache.lru.get(&key) {
                cache.hits += 1;
                return Prediction { source: Source::Cache, stage_latency: Vec::new(), ..p.clone() };
            }
        }
        let prediction = self.run_cascade(fv);
        if let (Some(cache), Some(key)) = (&mut self.cache, key) {
            // Only full answers are worth repeating: not an `unknown`, not a deadline's fallback.
            if prediction.source == Source::Edge {
                cache.lru.put(key, prediction.clone());
            }
        }
        prediction
    }

    fn run_cascade(&mut self, fv: &FeatureVector) -> Prediction {
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
            let outcome = self.stages[k].run(fv);
            let took = t.elapsed();
            latencies.push(took);
            self.usual[k] = if self.usual[k].is_zero() { took } else { (self.usual[k] * 7 + took) / 8 };
            match outcome {
                Ok(probs) => {
                    let top = probs.iter().copied().fold(0.0f32, f32::max);
                    let exits = self.stages[k].manifest.exit.as_ref().is_some_and(|e| top >= e.confidence);
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
        let m = &self.stages[answering].manifest;
        let (name, variant, exit_stage) = (m.name.clone(), m.variant, m.stage);
        match best {
            Some((k, probs)) => {
                let classes = &self.stages[k].manifest.outputs.classes;
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

    fn fv(value: f32) -> FeatureVector {
        FeatureVector { values: [value; FEATURE_NAMES.len()], ..FeatureVector::empty() }
    }

    #[test]
    fn builtin_model_loads_and_outputs_probabilities() {
        let mut fusion =
            Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).expect("bundled model loads");
        let mut v = fv(0.0);
        for (name, value) in [
            ("hr_mean_bpm", 75.0),
            ("hr_std_bpm", 4.0),
            ("hrv_sdnn_ms", 50.0),
            ("hrv_rmssd_ms", 35.0),
            ("hrv_pnn50", 0.1),
            ("eda_mean_us", 2.0),
            ("eda_std_us", 0.1),
            ("eda_slope_us_per_min", 0.05),
            ("scr_rate_per_min", 2.0),
            ("temp_mean_c", 32.0),
            ("temp_slope_c_per_min", 0.0),
            ("acc_mag_mean_g", 1.0),
            ("acc_mag_std_g", 0.02),
        ] {
            v.values[feature_index(name).unwrap()] = value;
        }
        let p = fusion.predict(&v);
        assert_eq!(p.source, Source::Edge, "{:?}", p.reason);
        assert_eq!(p.probabilities.len(), 2);
        let sum: f32 = p.probabilities.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        assert!(p.probabilities.iter().all(|(_, p)| (0.0..=1.0).contains(p)));
        assert!(p.label == "stress" || p.label == "rest");
    }

    #[test]
    fn missing_features_give_unknown_with_the_reason() {
        let mut fusion = Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).unwrap();
        let p = fusion.predict(&fv(f32::NAN));
        assert_eq!((p.label.as_str(), p.source), ("unknown", Source::None));
        assert!(p.reason.unwrap().contains("hr_mean_bpm"));
    }

    #[test]
    fn manifest_fill_required_and_exit_are_checked() {
        let with = |extra: &str, exit: &str| {
            let text = BUILTIN_MANIFEST.replacen("[outputs]", &format!("{extra}\n[outputs]"), 1) + exit;
            Manifest::parse(&text, Path::new("m.toml"))
        };
        let err = with("fill = [1.0, 2.0]", "").unwrap_err().to_string();
        assert!(err.contains("one finite value per input feature (9), it has 2"), "{err}");
        let err = with("required = [\"eda_tonic_us\"]", "").unwrap_err().to_string();
        assert!(err.contains("`eda_tonic_us`, which is not an input feature"), "{err}");
        let err = with("", "\n[exit]\nconfidence = 0.4\n").unwrap_err().to_string();
        assert!(err.contains("exit.confidence 0.4 is outside"), "{err}");
        let ok =
            with("required = [\"hr_mean_bpm\"]\nfill = [0, 0, 0, 0, 0, 0, 0, 0, 0]", "\n[exit]\nconfidence = 0.8\n");
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn only_required_inputs_make_a_stage_refuse() {
        let text = BUILTIN_MANIFEST.replacen(
            "[outputs]",
            "required = [\"hr_mean_bpm\"]\nfill = [70, 5, 50, 40, 0.1, 2, 0.2, 0, 1]\n[outputs]",
            1,
        );
        let manifest = Manifest::parse(&text, Path::new("m.toml")).unwrap();
        let mut stage = Stage::load(manifest, BUILTIN_ONNX).unwrap();
        let mut v = fv(f32::NAN);
        assert_eq!(stage.run(&v).unwrap_err(), vec!["hr_mean_bpm".to_string()]);
        v.values[feature_index("hr_mean_bpm").unwrap()] = 72.0;
        let p = stage.run(&v).expect("the rest is filled");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_cascade_stage_without_an_exit_is_refused() {
        let first = Stage::builtin().unwrap();
        let text = BUILTIN_MANIFEST.replacen("stage = 0", "stage = 1", 1);
        let second = Stage::load(Manifest::parse(&text, Path::new("b.toml")).unwrap(), BUILTIN_ONNX).unwrap();
        let err = Fusion::new(vec![first, second], None).err().unwrap().to_string();
        assert!(err.contains("stage 0 of 2 has no [exit] confidence"), "{err}");
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
