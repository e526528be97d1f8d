//! `biofeedd hrv`: any text is a peak list or an error; HRV of any accepted list never panics.
#![no_main]

use biofeedd::features::hrv::{from_peaks, HrvOptions};
use biofeedd::ingest::replay::peaks::parse_peaks;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: (bool, &str)| {
    let (correct, text) = input;
    if let Ok(peaks) = parse_peaks(text, Path::new("peaks")) {
        assert!(peaks.windows(2).all(|w| w[0] < w[1]));
        if peaks.len() >= 2 {
            let _ = from_peaks(&peaks, 360.0, HrvOptions { correct }, &mut Default::default());
        }
    }
});
