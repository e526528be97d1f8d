//! Sources: transports that turn bytes from a device or a file into chunks on the channel rings.
//!
//! Each source kind lives in its own folder with its config struct beside it (Vector's shape):
//! `replay/`, `serial/` and `ble/` as siblings, each live one with a supervisor that reconnects
//! with `backoff.rs`'s delays. A kind plugs in by adding a variant to
//! [`SourceConfig`] and answering its three questions — which channels will you produce
//! ([`SourceConfig::channels`]), how large is your largest chunk, and build yourself onto these
//! rings ([`SourceConfig::build`]) — so the daemon wires every kind the same way and never names
//! one.
//!
//! Architecture invariants: decoders and file readers are pure (bytes/text in, samples out, no
//! tokio); only the task that paces or reads a transport does I/O; a live source never waits for
//! ring space (a full ring is an overrun); a finite replay at `--speed max` waits for space, since
//! it is the clock. Every source keeps its [`Health`] current and ends with a [`SourceReport`].

#[cfg(any(feature = "serial", feature = "ble"))]
mod backoff;
#[cfg(feature = "ble")]
pub mod ble;
pub mod health;
pub mod protocol;
pub mod replay;
#[cfg(feature = "serial")]
pub mod serial;
mod source;

pub use health::{Health, HealthSnapshot, LinkState};
pub use source::{RunningSource, SourceConfig, SourceContext, SourceError, SourceReport};
