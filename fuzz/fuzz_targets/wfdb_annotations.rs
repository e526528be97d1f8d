//! MIT-format annotation files: any bytes give annotations in time order or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = biofeedd::ingest::replay::wfdb::parse_annotations(bytes, Path::new("r.atr"));
});
