//! `biofeedd eval` labels: any bytes give labelled segments that end after they start, or an
//! error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    match biofeedd::eval::read_labels(bytes, Path::new("labels.csv")) {
        Ok(subjects) => {
            for segments in subjects.values() {
                assert!(segments.iter().all(|s| s.end > s.start));
            }
        }
        Err(e) => assert!(format!("{e:#}").contains("labels.csv"), "{e:#}"),
    }
});
