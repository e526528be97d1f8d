//! biofeedd: an edge biofeedback daemon. Wearable streams in; validated features and model
//! predictions out, on stdout and MQTT.
//!
//! Data flows one way (see ARCHITECTURE.md):
//!
//! ```text
//! ingest ──► ring ──► window ──► features ──► fusion ──► sink (stdout, tensors) / bridge (MQTT)
//! (sources)  (SPSC)   (per subject) (pure)    (tract)
//! ```
//!
//! `signal` holds the vocabulary every stage shares; `diagnostic` the words for config problems;
//! `config` parses and validates once; `daemon` wires the stages from config; `control` reaches
//! into the running pipeline; `metrics` measures it all.

pub mod biofeedback;
pub mod bounds;
pub mod bridge;
pub mod config;
pub mod control;
pub mod daemon;
pub mod diagnostic;
pub mod eval;
pub mod features;
pub mod fusion;
pub mod governor;
pub mod ingest;
pub mod metrics;
pub mod ring;
pub mod service;
pub mod signal;
#[cfg(feature = "serial")]
pub mod sim;
pub mod sink;
pub mod window;
#[cfg(feature = "worker")]
pub mod worker;
