//! Devices simulated from real recordings, so everything live can be tried (and tested) without
//! hardware: `biofeedd sim serial` plays a recording as a serial device on a pseudo-terminal.
//!
//! - `frames.rs`: pure — recording slices to a protocol's frames, with deliberate loss and
//!   garbage, and the daemon-side protocol config that reads them.
//! - `serial.rs`: the pty, its stable symlink, pacing and the Cyton's command replies.

pub mod frames;
pub mod serial;

pub use frames::{DeviceFrames, Impairments, SimProtocol, SimReport};
pub use serial::SimPort;
