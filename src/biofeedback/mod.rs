//! Biofeedback: what a person is fed back beat by beat, beside the window pipeline.
//!
//! [`beats`]: the per-beat stream (`…/{subject}/beat`), each beat as soon as a detector confirms
//! it; [`config`]: `[beats]`. Pure, like `features`: no I/O, no tokio.

pub mod beats;
pub mod config;

pub use beats::{BeatEvent, BeatSource, BeatTracker};
pub use config::BeatsConfig;
