//! Polar PMD control-point responses, feature reads and settings lists: any bytes parse or give
//! a named error; whatever parses re-encodes to what a start request may carry.
#![no_main]

use biofeedd::ingest::protocol::ble::pmd::control::{self, StreamSettings};
use biofeedd::ingest::protocol::ble::pmd::Measurement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(r) = control::parse_response(bytes) {
        let checked = r.check();
        assert_eq!(checked.is_ok(), r.status == 0);
        if let Err(e) = checked {
            assert!(e.to_string().contains("refused"), "{e}");
        }
        let _ = r.settings();
        if let Some(f) = r.start_factor() {
            assert!(f.is_finite() && f != 0.0);
        }
    }
    if let Ok(features) = control::parse_features(bytes) {
        assert!(features.len() <= Measurement::ALL.len());
    }
    if let Ok(s) = control::parse_settings(bytes) {
        // A parsed list starts a stream with its first values, and the request says so.
        if let (Some(&rate), Some(&resolution)) = (s.sample_rates.first(), s.resolutions.first()) {
            let start = StreamSettings { sample_rate: rate, resolution, range: s.ranges.first().copied(), channels: s.channels.first().copied() };
            let request = control::start_request(Measurement::Acc, &start);
            let back = control::parse_settings(&request[2..]).expect("our own request parses");
            assert_eq!((back.sample_rates[0], back.resolutions[0]), (rate, resolution));
        }
    }
});
