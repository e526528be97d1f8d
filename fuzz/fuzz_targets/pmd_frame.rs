//! Polar PMD data frames, raw and delta-compressed, for any layout: the samples decoded are
//! exactly samples × channels values, an error appends nothing, never a panic.
#![no_main]

use biofeedd::ingest::protocol::ble::pmd::{decode_ppi, decode_samples, parse_frame, Layout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, &[u8])| {
    let (channels, resolution, bytes) = input;
    let layout = Layout { channels: usize::from(channels % 26), resolution: resolution % 34 };
    let Ok(frame) = parse_frame(bytes) else { return };
    assert_eq!(frame.payload.len() + 10, bytes.len());
    let mut out = vec![7];
    match decode_samples(&frame, layout, &mut out) {
        Ok((samples, channels)) => {
            assert!(samples >= 1 && channels >= 1);
            assert_eq!(out.len(), 1 + samples * channels);
        }
        Err(e) => {
            assert_eq!(out, [7], "an error appends nothing");
            assert!(!e.to_string().is_empty());
        }
    }
    if let Ok(ppi) = decode_ppi(frame.payload) {
        assert_eq!(ppi.count(), frame.payload.len() / 6);
    }
});
