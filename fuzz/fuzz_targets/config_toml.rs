//! The daemon's config: any text parses to a config or to an error with a place, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    if let Err(e) = biofeedd::config::Config::parse(text, Path::new("fuzz.toml"), Path::new(".")) {
        assert!(e.to_string().starts_with("fuzz.toml"), "{e}");
    }
});
