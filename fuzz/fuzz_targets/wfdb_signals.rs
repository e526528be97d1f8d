//! WFDB signal files: any bytes decode (formats 212 and 16, any frame layout) or give an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: (u8, [u8; 3], &[u8])| {
    let (format, layout, bytes) = input;
    let format = if format % 2 == 0 { 212 } else { 16 };
    // One to three signals, each 1-4 samples per frame.
    let spf: Vec<usize> = layout.iter().take(1 + (layout[0] % 3) as usize).map(|b| 1 + (*b % 4) as usize).collect();
    if let Ok(signals) = biofeedd::ingest::replay::wfdb::decode_signals(bytes, format, &spf, Path::new("r.dat")) {
        let frames = signals[0].len() / spf[0];
        for (s, n) in signals.iter().zip(&spf) {
            assert_eq!(s.len(), frames * n, "whole frames only");
        }
    }
});
