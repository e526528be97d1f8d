//! WFDB `.hea` headers: any text is a header within the bounds or an error, never a panic or a
//! huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    if let Ok(h) = biofeedd::ingest::replay::wfdb::parse_header(text, Path::new("r.hea")) {
        assert!(!h.signals.is_empty() && h.signals.len() <= 256);
        assert!(h.fs.is_finite() && h.fs > 0.0);
    }
});
