//! Turns the stream of closed [`Window`](crate::window::Window)s into named feature vectors with
//! per-modality quality.
//!
//! The feature set is fixed and named ([`FEATURE_NAMES`], with the typed index [`Feature`]); a
//! model manifest lists the names it needs, and the daemon checks at start-up that the configured
//! channels can produce them. A feature that cannot be computed in a window (channel absent, too
//! few beats, signal flat) is `NaN`, never a guess; the fusion stage decides what to do with it.
//!
//! Streaming: each channel has a processor (beat detector, EDA, respiration, running block
//! statistics) that sees only the window's *fresh* samples — those no earlier window held — and
//! keeps the events it found (beats, SCRs, breaths) for as long as a window can still contain
//! them. A window's features are then read from events and block summaries: a hop costs what its
//! new samples cost plus a pass over the window's events (tens of beats), never a pass over the
//! window's samples. Nothing is allocated per hop once the buffers have grown to a window's worth.
//!
//! Where things are:
//! - `names.rs`: [`FEATURE_NAMES`], [`Feature`], [`feature_index`], [`feature_sources`];
//!   `vector.rs`: [`FeatureVector`]; `quality.rs`: [`Flags`], [`Quality`] and the flags any
//!   channel can raise.
//! - `extract/`: [`FeatureExtractor`] and one reader per modality; `channel.rs`: the streaming
//!   state of one window channel.
//! - Signal processing, each usable on its own: `beats` (ECG and PPG detectors), `eda`, `resp`,
//!   `hrv`, `rr` (the RR series and beat spectra HRV and derived respiration share), `spectrum`
//!   (sliding Lomb–Scargle), `stats` (block statistics), `dsp` (filters), `baseline` (`z_`
//!   features).
//!
//! Architecture invariant: pure and synchronous — no I/O, no tokio.

pub mod baseline;
pub mod beats;
pub mod dsp;
pub mod eda;
pub mod hrv;
pub mod resp;
pub mod rr;
pub mod spectrum;
pub mod stats;

mod channel;
mod extract;
mod names;
mod quality;
mod vector;

pub use extract::FeatureExtractor;
pub use names::{feature_index, feature_sources, Feature, FEATURE_NAMES};
pub use quality::{Flags, Quality};
pub use vector::FeatureVector;
