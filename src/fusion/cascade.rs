//! The cascade: `Fusion` runs one `Slot` per position, cheapest first, and answers each window
//! with the first stage confident enough to exit.
//!
//! A stage that cannot run (a required feature is `NaN`, a raw channel the window lacks) is
//! skipped and the best answer so far stands; when none can run the answer is `unknown` with
//! the missing inputs named (or, for `z_` features, the baseline's remaining calibration time).
//! With a deadline, a later stage whose usual latency (exponential average) would overrun the
//! budget is skipped and the best answer so far goes out with `source = "fallback"`. With a
//! cache, a window whose quantised inputs match a recent one gets that answer and runs no model.

use super::cache::PredictionCache;
use super::{builtin, FusionConfig, ModelError, Prediction, Slot, Source, Stage, Variant};
use crate::features::FeatureVector;
use crate::window::Window;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to run the cascade for one window: the governor's plan for its subject.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunPlan {
    /// Run only the stages before this index here (`None`: all of them).
    pub local_stages: Option<usize>,
    /// Hand this stage to an offload worker instead of running it, when the cascade gets there
    /// (no earlier stage exited) and the window has what it needs.
    pub offload_stage: Option<usize>,
    /// The window's deadline (its subject's tier): a stage that would end past it is not run.
    pub deadline: Option<Instant>,
}

/// What the cascade made of a window.
#[derive(Debug)]
pub enum Answer {
    /// Answered here.
    Here(Prediction),
    /// Stage `stage` is to run on a worker; its inputs are prepared in that stage
    /// ([`Stage::last_inputs`]). `local` is the best answer of the stages that ran here, to give
    /// if the worker does not answer in time (`source = "fallback"`, or `unknown` when none ran).
    Offload { local: Prediction, stage: usize },
}

/// The fusion stage of one pipeline: one model, or a cascade of stages with early exit.
pub struct Fusion {
    slots: Vec<Slot>,
    cache: Option<PredictionCache>,
    deadline: Option<Duration>,
    /// Usual latency of each stage (exponential average), to decide before running it whether
    /// it fits in what is left of the deadline.
    usual: Vec<Duration>,
    /// Subjects no stage can be fed for (a chest strap alone, for a wrist model), and why: they
    /// get `unknown` with that reason every window, and their features as usual.
    unfed: HashMap<String, String>,
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
        Ok(Fusion { slots: stages, cache: None, deadline, usual, unfed: HashMap::new() })
    }

    /// Keep the last `capacity` answers, keyed on the inputs quantised to `quantum` of each
    /// input's training spread.
    pub fn with_cache(mut self, capacity: usize, quantum: f64) -> Result<Fusion, ModelError> {
        let mut inputs = Vec::new();
        for st in self.stages() {
            let Some(scale) = &st.manifest.inputs.scale else {
                return Err(ModelError::at(
                    &st.manifest.origin,
                    "[fusion] cache needs inputs.scale (each input's training spread) in every stage manifest",
                ));
            };
            inputs.extend(st.feature_indices().iter().zip(scale).map(|(&i, &s)| (i, s as f64 * quantum)));
        }
        let capacity = std::num::NonZeroUsize::new(capacity)
            .ok_or_else(|| ModelError::at(Path::new("[fusion]"), "cache = 0: leave `cache` out to turn it off"))?;
        self.cache = Some(PredictionCache::new(capacity, inputs));
        Ok(self)
    }

    /// (lookups, hits) of the prediction cache, if there is one.
    pub fn cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(PredictionCache::stats)
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

    /// No stage can be fed for `subject`: its windows answer `unknown` because of `reason`.
    pub fn set_unfed(&mut self, subject: &str, reason: String) {
        self.unfed.insert(subject.to_string(), reason);
    }

    /// The active stages, cheapest first.
    pub fn stages(&self) -> impl ExactSizeIterator<Item = &Stage> {
        self.slots.iter().map(Slot::active)
    }

    /// The cascade's positions with all their variants.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The same, to run their variants (`biofeedd eval` scores every variant alone).
    pub fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.slots
    }

    /// The last (most capable) active stage: what a window gets when nothing exits early.
    pub fn stage(&self) -> &Stage {
        self.slots.last().expect("a fusion has at least one stage").active()
    }

    /// Switch every stage that has `variant` to it (the others keep theirs); returns how many
    /// stages run `variant` now. For the governor: e.g. int8 everywhere under CPU pressure.
    pub fn set_variant(&mut self, variant: Variant) -> usize {
        (0..self.slots.len()).filter(|&k| self.set_stage_variant(k, variant)).count()
    }

    /// Switch stage `k` to `variant`; `false` (and no change) if it has no such variant.
    pub fn set_stage_variant(&mut self, k: usize, variant: Variant) -> bool {
        let Some(slot) = self.slots.get_mut(k) else { return false };
        if slot.active().manifest.variant == variant {
            return true;
        }
        if !slot.select(variant) {
            return false;
        }
        // The new variant's latency is not the old one's.
        self.usual[k] = Duration::ZERO;
        true
    }

    /// The active variant of each stage.
    pub fn variants(&self) -> Vec<Variant> {
        self.stages().map(|s| s.manifest.variant).collect()
    }

    /// What the cascade says about `window`, whose features are `fv`, every stage run here.
    pub fn predict(&mut self, window: &Window, fv: &FeatureVector) -> Prediction {
        match self.predict_planned(window, fv, &RunPlan::default()) {
            Answer::Here(p) | Answer::Offload { local: p, .. } => p,
        }
    }

    /// The same, run as `plan` says: fewer stages here, one offloaded, a deadline.
    pub fn predict_planned(&mut self, window: &Window, fv: &FeatureVector, plan: &RunPlan) -> Answer {
        if let Some(reason) = self.unfed.get(&window.subject) {
            let m = &self.slots[0].active().manifest;
            return Answer::Here(Prediction {
                label: "unknown".into(),
                probabilities: Vec::new(),
                model: m.name.clone(),
                variant: m.variant,
                exit_stage: m.stage,
                source: Source::None,
                reason: Some(reason.clone()),
                stage_latency: Vec::new(),
            });
        }
        let key = self.cache.as_ref().map(|c| c.key(fv, &self.variants()));
        if let (Some(cache), Some(key)) = (&mut self.cache, &key) {
            if let Some(p) = cache.get(key) {
                return Answer::Here(Prediction { source: Source::Cache, stage_latency: Vec::new(), ..p.clone() });
            }
        }
        let (prediction, offloaded) = self.run_cascade(window, fv, plan);
        if let Some(stage) = offloaded {
            return Answer::Offload { local: prediction, stage };
        }
        if let (Some(cache), Some(key)) = (&mut self.cache, key) {
            // Only full answers are worth repeating: not an `unknown`, not a deadline's fallback.
            if prediction.source == Source::Edge {
                cache.put(key, prediction.clone());
            }
        }
        Answer::Here(prediction)
    }

    /// The answer of the stages run here, and the stage handed to a worker, if one was.
    fn run_cascade(&mut self, window: &Window, fv: &FeatureVector, plan: &RunPlan) -> (Prediction, Option<usize>) {
        let started = Instant::now();
        let limit = match (self.deadline.map(|d| started + d), plan.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut latencies = Vec::with_capacity(self.slots.len());
        let mut best: Option<(usize, Vec<f32>)> = None;
        let mut missing_all: Vec<String> = Vec::new();
        let mut cut_short = false;
        let mut offloaded = None;
        for k in 0..self.slots.len() {
            if plan.local_stages.is_some_and(|n| k >= n) && plan.offload_stage != Some(k) {
                // The governor keeps this stage off the hub; the answer so far stands.
                cut_short = best.is_some();
                continue;
            }
            if plan.offload_stage == Some(k) {
                if limit.is_some_and(|l| Instant::now() >= l) {
                    cut_short = best.is_some();
                    break;
                }
                match self.slots[k].active_mut().prepare(window, fv) {
                    Ok(()) => {
                        offloaded = Some(k);
                        cut_short = true;
                        break;
                    }
                    Err(missing) => {
                        extend_unique(&mut missing_all, missing);
                        continue;
                    }
                }
            }
            if let (Some(limit), Some(_)) = (limit, &best) {
                if Instant::now() + self.usual[k] > limit {
                    cut_short = true;
                    break;
                }
            }
            let t = Instant::now();
            let outcome = self.slots[k].active_mut().run(window, fv);
            let took = t.elapsed();
            latencies.push(took);
            self.usual[k] = if self.usual[k].is_zero() { took } else { (self.usual[k] * 7 + took) / 8 };
            match outcome {
                Ok(probs) => {
                    let top = probs.iter().copied().fold(0.0f32, f32::max);
                    let exits = self.slots[k].active().manifest.exit.as_ref().is_some_and(|e| top >= e.confidence);
                    best = Some((k, probs));
                    if exits {
                        break;
                    }
                }
                Err(missing) => extend_unique(&mut missing_all, missing),
            }
        }
        let answering = best.as_ref().map_or(self.slots.len() - 1, |(k, _)| *k);
        let m = &self.slots[answering].active().manifest;
        let (name, variant, exit_stage) = (m.name.clone(), m.variant, m.stage);
        let prediction = match best {
            Some((k, probs)) => {
                let classes = &self.slots[k].active().manifest.outputs.classes;
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
        };
        (prediction, offloaded)
    }
}

fn extend_unique(all: &mut Vec<String>, more: Vec<String>) {
    for m in more {
        if !all.contains(&m) {
            all.push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::feature_index;
    use crate::fusion::fixtures::{bundled, fv, stage_from, window, with_line};

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
    fn a_cascade_stage_without_an_exit_is_refused() {
        let first = stage_from(&with_line(&bundled("stress-s2.toml"), "stage", "stage = 0"), "stress-s2.onnx");
        let second = stage_from(&with_line(&bundled("stress-s0.toml"), "stage", "stage = 1"), "stress-s0.onnx");
        let err = Fusion::new(vec![first, second], None).err().unwrap().to_string();
        assert!(err.contains("stage 0 of 2 has no [exit] confidence"), "{err}");
    }
}
