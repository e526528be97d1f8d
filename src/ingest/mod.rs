//! Sources: transports that turn bytes from a device or a file into chunks on the channel rings.
//!
//! Each source kind lives in its own folder with its config struct beside it (Vector's shape):
//! `replay/` now; `serial/` and `ble/` follow in their issues and plug into the same
//! [`crate::ring::ChannelProducer`] seam.
//!
//! Architecture invariants: decoders and file readers are pure (bytes/text in, samples out, no
//! tokio); only the task that paces or reads a transport does I/O; a live source never waits for
//! ring space (a full ring is an overrun); a finite replay at `--speed max` waits for space, since
//! it is the clock.

pub mod replay;
