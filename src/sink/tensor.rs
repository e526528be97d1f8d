//! `biofeedd features --raw-output`: each row's raw-window tensor appended to a file.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

/// Appends tensors as little-endian f32, one per feature row, so row k of the CSV is tensor k.
pub struct TensorFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl TensorFile {
    pub fn create(path: PathBuf) -> anyhow::Result<Self> {
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TensorFile { path, out: std::io::BufWriter::new(file) })
    }

    /// Training data: a short file would misalign every later row, so a failed write is fatal.
    pub fn append(&mut self, tensor: &[f32]) -> anyhow::Result<()> {
        let bytes: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.out.write_all(&bytes).with_context(|| format!("cannot write raw windows to {}", self.path.display()))
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush().with_context(|| format!("cannot write raw windows to {}", self.path.display()))
    }
}
