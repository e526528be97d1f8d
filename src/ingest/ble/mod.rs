//! Bluetooth LE wearables through BlueZ (btleplug over D-Bus): Heart Rate straps and Polar's
//! PMD streams (H10 ECG/ACC, Verity Sense PPG).
//!
//! - `config.rs`: `[sensor.source]` of `kind = "ble"` ([`BleConfig`]).
//! - `link.rs`: the thin btleplug layer (adapter, scan, connect, characteristics).
//! - `source.rs`: the per-device supervisor task; `session.rs`: one connection's life in it.
//! - [`scan`]: `biofeedd scan`.
//!
//! What the bytes mean is in `ingest::protocol::ble` (pure decoders and the assembler that
//! times samples); a capture replay drives the same assembler without any radio.

mod config;
mod link;
pub mod scan;
mod session;
mod source;

pub use config::{BleConfig, StreamEntry};
