//! The framed protocol (COBS, CRC): any bytes, cut anywhere, decode the same way, with counted
//! errors and well-formed runs, never a panic; the first byte picks the CRC the config demands.
#![no_main]

mod decoder_check;

use biofeedd::ingest::protocol::framed::{Crc, FramedConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut cfg = FramedConfig::plain(&[0, 1, 2, 3, 9, 255], 100.0);
    cfg.crc = match bytes.first().map(|b| b % 3) {
        Some(1) => Some(Crc::Crc16),
        Some(2) => Some(Crc::Crc32),
        _ => None,
    };
    decoder_check::check(|| Box::new(cfg.decoder()), bytes);
});
