//! Model manifests: what a model takes, what it says, where it came from and how good it is.

use crate::bounds;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// A model manifest (`models/NAME.toml`). Unknown keys are errors, like the config's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// What the model predicts, e.g. `stress`.
    pub task: String,
    /// Position in the cascade (0 = cheapest).
    pub stage: u32,
    pub variant: Variant,
    /// ONNX file, relative to the manifest.
    pub onnx: PathBuf,
    /// SHA-256 of the ONNX file, hex; checked at load.
    pub sha256: String,
    pub inputs: Inputs,
    pub outputs: Outputs,
    pub calibration: Option<Calibration>,
    /// Present on every cascade stage but the last.
    pub exit: Option<Exit>,
    /// Other variants of this stage (`int8 = "stress-s1-int8.toml"`), paths relative to this
    /// manifest; loaded with it so the governor can switch at run time.
    #[serde(default)]
    pub variants: std::collections::BTreeMap<Variant, PathBuf>,
    /// The window the model was trained on; a config using another one gets a warning.
    pub window: Option<WindowHint>,
    pub training: Training,
    /// Leave-subjects-out metrics as measured by the training script.
    #[serde(default)]
    pub metrics: toml::Table,
    pub size_bytes: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Where the manifest was read from, for messages.
    #[serde(skip)]
    pub origin: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Feature names in the model's input order (see `biofeedd features --list`); the model's
    /// first input, `[1, features]`. May be empty when the stage reads only the raw window.
    #[serde(default)]
    pub features: Vec<String>,
    /// Raw signals of the window, the model's next input `[1, channels, length]`.
    pub raw: Option<super::raw::RawSpec>,
    /// Inputs that must be present; the others may be filled. Default: all of them.
    pub required: Option<Vec<String>>,
    /// Per input, the value a missing (NaN) input takes (the training median). Without it every
    /// input is required.
    pub fill: Option<Vec<f32>>,
    /// Per input, its spread in the training data (standard deviation); the prediction cache
    /// quantises inputs in fractions of it.
    pub scale: Option<Vec<f32>>,
}

/// `[calibration]`: how the model's probabilities were calibrated (already applied in the graph).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// e.g. `temperature` (Guo et al. 2017): logits divided by `temperature` before the softmax.
    pub method: String,
    pub temperature: Option<f64>,
}

/// `[exit]`: when a cascade may stop at this stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exit {
    /// Stop here when the top calibrated probability reaches this, (0, 1]; at or below 1/classes
    /// every window stops here.
    pub confidence: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// Class names in output order; the output is one probability per class.
    pub classes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowHint {
    pub length_s: f64,
    pub hop_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Data set and subjects used.
    pub data: String,
    /// Command that rebuilds the model from the data.
    pub command: String,
    /// Git commit of the code the features were computed with.
    pub commit: String,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Fp32,
    Int8,
    Pruned,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Fp32 => "fp32",
            Variant::Int8 => "int8",
            Variant::Pruned => "pruned",
        })
    }
}

/// A model that cannot be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ModelError {
    pub file: PathBuf,
    pub message: String,
}

impl ModelError {
    pub fn at(file: &Path, message: impl Into<String>) -> Self {
        ModelError { file: file.to_path_buf(), message: message.into() }
    }
}

impl Manifest {
    /// Parse and check a manifest's text; `origin` names it in errors (with line:column).
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest, ModelError> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| {
            let loc = e.span().map(|s| crate::diagnostic::Location::of_offset(text, s.start));
            let at = loc.map(|l| format!("{}:{}: ", l.line, l.column)).unwrap_or_default();
            ModelError::at(origin, format!("{at}{}", e.message().trim()))
        })?;
        m.origin = origin.to_path_buf();
        if m.inputs.features.is_empty() && m.inputs.raw.is_none() {
            return Err(ModelError::at(origin, "the model takes no input: give inputs.features, inputs.raw or both"));
        }
        if let Some(problem) = m.inputs.raw.as_ref().and_then(|r| r.problem()) {
            return Err(ModelError::at(origin, problem));
        }
        if m.outputs.classes.len() < 2 {
            return Err(ModelError::at(origin, "outputs.classes needs at least two classes"));
        }
        let n = m.inputs.features.len();
        if let Some(fill) = &m.inputs.fill {
            if fill.len() != n || fill.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::at(
                    origin,
                    format!("inputs.fill needs one finite value per input feature ({n}), it has {}", fill.len()),
                ));
            }
        }
        if let Some(scale) = &m.inputs.scale {
            if scale.len() != n || scale.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(ModelError::at(
                    origin,
                    format!("inputs.scale needs one positive value per input feature ({n}), it has {}", scale.len()),
                ));
            }
        }
        if let Some(unknown) = m.inputs.required.iter().flatten().find(|r| !m.inputs.features.contains(r)) {
            return Err(ModelError::at(
                origin,
                format!("inputs.required names `{unknown}`, which is not an input feature"),
            ));
        }
        if let Some((v, _)) = m.variants.iter().find(|(v, _)| **v == m.variant) {
            return Err(ModelError::at(
                origin,
                format!("variants lists `{v}`, the variant this manifest describes itself"),
            ));
        }
        if let Some(e) = &m.exit {
            if !(e.confidence > 0.0 && e.confidence <= 1.0) {
                return Err(ModelError::at(origin, format!("exit.confidence {} is outside (0, 1]", e.confidence)));
            }
        }
        // The calibration is applied inside the graph; the manifest records it, so what it records
        // must be a calibration that exists.
        if let Some(c) = &m.calibration {
            match (c.method.as_str(), c.temperature) {
                ("temperature", Some(t)) => {
                    bounds::TEMPERATURE
                        .check(t)
                        .map_err(|why| ModelError::at(origin, format!("calibration.temperature {why}")))?;
                }
                ("temperature", None) => {
                    return Err(ModelError::at(
                        origin,
                        "calibration.method = \"temperature\" needs calibration.temperature",
                    ))
                }
                (other, _) => {
                    return Err(ModelError::at(
                        origin,
                        format!(
                        "calibration.method `{other}` is not known (temperature scaling is: method = \"temperature\")"
                    ),
                    ))
                }
            }
        }
        if let Some(w) = &m.window {
            bounds::WINDOW_S
                .check(w.length_s)
                .map_err(|why| ModelError::at(origin, format!("window.length_s {why}")))?;
        }
        Ok(m)
    }

    /// Refuse an ONNX file that is not the one the manifest describes.
    pub fn verify_onnx(&self, onnx: &[u8]) -> Result<(), ModelError> {
        let digest = Sha256::digest(onnx);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if !hex.eq_ignore_ascii_case(self.sha256.trim()) {
            return Err(ModelError::at(
                &self.origin,
                format!(
                    "{} has SHA-256 {hex}, the manifest expects {}; the model and its manifest are out of step (rebuild both with models/train)",
                    self.onnx.display(),
                    self.sha256
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::fixtures::{bundled, with_line};

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
}
