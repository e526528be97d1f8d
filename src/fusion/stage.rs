//! One loaded model: its manifest, its optimised tract plan, and the inputs it is fed.
//!
//! `Stage::load` verifies the ONNX SHA-256, maps the manifest's input feature names to feature
//! vector indices, fixes the input facts (features `[1, F]`, then the raw window `[1, C, L]`
//! when the manifest has `[inputs.raw]`), optimises once and keeps a spawned state for reuse.

use super::raw;
use super::{Manifest, ModelError};
use crate::features::{feature_index, feature_sources, FeatureVector};
use crate::signal::Modality;
use crate::window::Window;
use std::path::Path;
use tract_onnx::prelude::*;

/// Reads a model file (from disk, or from the bundle).
pub type Reader<'a> = &'a dyn Fn(&Path) -> Result<Vec<u8>, ModelError>;

/// Reads from disk.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|e| ModelError::at(path, format!("cannot read: {e}")))
}

/// One loaded model stage.
pub struct Stage {
    pub manifest: Manifest,
    /// The optimised plan's run state, spawned once and reused (it holds the plan).
    state: TypedSimpleState,
    /// Feature vector indices, in the model's input order.
    inputs: Vec<usize>,
    /// The feature input's tensor, missing optional features filled.
    input: Vec<f32>,
    /// The raw-window input's tensor (empty when the stage reads features only).
    raw: Vec<f32>,
    scratch: raw::RawScratch,
}

impl Stage {
    /// Load and optimise a model from its parsed manifest and the ONNX bytes; errors name the
    /// manifest's `origin`.
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
        self.prepare(window, fv)?;
        // A tract failure on a validated model and a finite input is a bug, not bad input.
        Ok(self.run_raw().expect("tract run on a validated plan"))
    }

    /// Fill the model's input tensors from a window and its features without running it (what
    /// an offload request carries: [`Stage::last_inputs`] then holds them); `Err` as for
    /// [`Stage::run`].
    pub fn prepare(&mut self, window: &Window, fv: &FeatureVector) -> Result<(), Vec<String>> {
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
        Ok(())
    }

    /// Run the model on inputs prepared elsewhere (an offload worker gets them from a hub): the
    /// feature tensor and the raw-window tensor, each of exactly the manifest's size and finite.
    pub fn run_inputs(&mut self, features: &[f32], raw: &[f32]) -> Result<Vec<f32>, String> {
        if features.len() != self.input.len() || raw.len() != self.raw.len() {
            return Err(format!(
                "`{}` takes {} features and {} raw samples, not {} and {}",
                self.manifest.name,
                self.input.len(),
                self.raw.len(),
                features.len(),
                raw.len()
            ));
        }
        if features.iter().chain(raw).any(|v| !v.is_finite()) {
            return Err("an input is not a finite number".into());
        }
        self.input.copy_from_slice(features);
        self.raw.copy_from_slice(raw);
        Ok(self.run_raw().expect("tract run on a validated plan"))
    }

    /// Feature vector indices of the model's feature inputs, in its input order.
    pub(super) fn feature_indices(&self) -> &[usize] {
        &self.inputs
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
    fn required_sources(&self) -> impl Iterator<Item = (String, &'static [Modality])> + '_ {
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

    /// Check that channels of `modalities` can produce every required input; the error says
    /// what is missing.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::builtin;
    use crate::fusion::fixtures::{bundled, fv, stage_from, window};

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
    fn input_check_names_the_missing_modality() {
        // The last stage of the bundled cascade: features from every wrist sensor and raw PPG.
        let slot = builtin::slot("stress-s2.toml").unwrap();
        let stage = slot.active();
        let err = stage.check_inputs("s07", &[Modality::Ecg]).unwrap_err();
        assert!(err.contains("subject `s07` has only: ecg"), "{err}");
        assert!(stage.check_inputs("s07", &[Modality::Ppg, Modality::Eda, Modality::Temp, Modality::Acc]).is_ok());
    }
}
