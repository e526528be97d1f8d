//! Bluetooth LE wearables' GATT payloads, decoded without I/O: [`hrs`] (the Heart Rate service
//! every strap speaks) and [`pmd`] (Polar's measurement data: raw ECG, PPG, PPI, ACC).
//! Unlike the serial protocols these are messages, not byte streams: the link delivers each
//! notification whole, so a decoder sees one notification at a time.

pub mod capture;
pub mod clock;
pub mod hrs;
pub mod pmd;
pub mod spec;
pub mod stream;
