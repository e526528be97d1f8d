//! The cascade bundled into the binary (models/stress-s*), so `biofeedd replay` and the demo
//! work from any folder.

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
