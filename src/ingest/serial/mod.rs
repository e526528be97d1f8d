//! Live devices on a serial port (USB CDC, FTDI/CP210x bridges, a pseudo-terminal): the
//! transport around the pure decoders of [`crate::ingest::protocol`].
//!
//! - `config.rs`: [`SerialConfig`], the `[sensor.source]` of `kind = "serial"`.
//! - `port.rs`: opening a port with its line settings, DTR/RTS and low latency.
//! - `clock.rs`: device sample indices to recording-clock times (gaps across reconnects).
//! - `source.rs`: `build` and the supervisor task: open → handshake → read/decode/push, and
//!   reconnect with backoff when the device goes away.
//!
//! Invariants: the task never waits for ring space (a full ring is an overrun); the only I/O is
//! the port; every way a connection ends (EOF, EIO, silence) leads back to reopening, and
//! shutdown is honoured at every wait.

mod clock;
pub mod config;
mod port;
mod source;

pub use config::{Parity, SerialConfig};
