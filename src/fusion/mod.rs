//! Model execution: manifests, tract plans, and the prediction each window gets.
//!
//! A model is described by its manifest (`models/*.toml` beside the `.onnx`): the feature names
//! (and raw signals) it takes in order, the classes it outputs, its provenance and its measured
//! metrics. The runtime verifies the ONNX file's SHA-256, optimises each plan once at start-up
//! and runs it many times. [`Fusion::predict`] runs a cascade of such stages, cheapest first,
//! with early exit, an optional deadline, run-time variants and an optional prediction cache.
//!
//! - `manifest`: [`Manifest`] parsing and checks, [`Variant`], [`ModelError`].
//! - `stage`: [`Stage`], one loaded model and the inputs it is fed; [`Reader`], [`read_file`].
//! - [`raw`]: the raw-window input tensor of a stage that reads signals.
//! - `slot`: [`Slot`], one cascade position with its variants.
//! - `cascade`: [`Fusion`], the cascade; `cache`: its prediction cache.
//! - `prediction`: [`Prediction`] and its [`Source`]; `config`: [`FusionConfig`] (`[fusion]`).
//! - [`builtin`]: the bundled stress cascade.
//!
//! Architecture invariant: tract runs on the pipeline thread, never on a tokio worker.

pub mod builtin;
mod cache;
mod cascade;
mod config;
#[cfg(test)]
mod fixtures;
mod manifest;
mod prediction;
pub mod raw;
mod slot;
mod stage;

pub use cascade::{Answer, Fusion, RunPlan};
pub use config::FusionConfig;
pub use manifest::{Manifest, ModelError, Variant};
pub use prediction::{Prediction, Source};
pub use slot::Slot;
pub use stage::{read_file, Reader, Stage};
