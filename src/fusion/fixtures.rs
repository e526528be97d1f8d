//! Test fixtures for the fusion unit tests: feature-only windows, constant feature vectors,
//! and the bundled manifests edited line by line.

use super::{builtin, Manifest, Stage};
use crate::features::{FeatureVector, FEATURE_NAMES};
use crate::window::Window;
use std::path::Path;

/// A window with no channels: enough for stages that read features only.
pub fn window() -> Window {
    Window {
        subject: "s".into(),
        seq: 0,
        start: 0.0,
        end: 60.0,
        channels: Vec::new(),
        last_arrival: std::time::Instant::now(),
    }
}

/// Every feature `value`.
pub fn fv(value: f32) -> FeatureVector {
    FeatureVector { values: [value; FEATURE_NAMES.len()], ..FeatureVector::empty() }
}

/// A bundled manifest's text.
pub fn bundled(name: &str) -> String {
    String::from_utf8(builtin::read(Path::new(name)).unwrap()).unwrap()
}

/// `text` with the line starting `key =` replaced by `line`.
pub fn with_line(text: &str, key: &str, line: &str) -> String {
    text.lines().map(|l| if l.starts_with(&format!("{key} =")) { line } else { l }).collect::<Vec<_>>().join("\n")
}

/// A stage from manifest `text` and the bundled model `onnx`.
pub fn stage_from(text: &str, onnx: &str) -> Stage {
    let manifest = Manifest::parse(text, Path::new("m.toml")).unwrap_or_else(|e| panic!("{e}"));
    Stage::load(manifest, &builtin::read(Path::new(onnx)).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}
