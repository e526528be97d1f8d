//! Empatica E4 signal files: any bytes give channels at a bounded rate or a located error.
#![no_main]

use biofeedd::ingest::replay::e4::parse_signal_file;
use biofeedd::ingest::replay::OnBadRow;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: (u8, bool, &[u8])| {
    let (which, skip, bytes) = input;
    let stem = ["BVP", "ACC", "EDA", "TEMP"][which as usize % 4];
    let on_bad_row = if skip { OnBadRow::Skip } else { OnBadRow::Error };
    match parse_signal_file(stem, bytes, Path::new("E4.csv"), on_bad_row).expect("a known stem") {
        Ok((channels, _)) => {
            for c in &channels {
                assert!((0.01..=100_000.0).contains(&c.spec.rate_hz), "{}", c.spec.rate_hz);
            }
        }
        Err(e) => assert!(e.to_string().starts_with("E4.csv"), "{e}"),
    }
});
