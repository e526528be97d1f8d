//! OpenBCI Cyton packets: any bytes, cut anywhere, decode the same way, with counted errors and
//! well-formed runs, never a panic.
#![no_main]

mod decoder_check;

use biofeedd::ingest::protocol::cyton::{CytonConfig, Gain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let cfg = CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: true };
    decoder_check::check(|| Box::new(cfg.decoder()), bytes);
});
