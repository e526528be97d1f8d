//! BLE capture files (ours and the h10_ecg layout): any bytes give records no longer than a
//! notification may be, or an error, and reading stops at the end, never a panic.
#![no_main]

use biofeedd::ingest::protocol::ble::capture::{CaptureReader, MAX_NOTIFICATION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut reader) = CaptureReader::new(bytes) else { return };
    assert!(!reader.header.streams.is_empty());
    let mut records = 0;
    while let Ok(Some(r)) = reader.next_record() {
        assert!(r.bytes.len() <= MAX_NOTIFICATION);
        assert!(r.arrival_unix.is_none_or(|t| t.is_finite() && t >= 0.0));
        records += 1;
        assert!(records <= bytes.len(), "a record takes at least one byte");
    }
    assert!(reader.offset as usize <= bytes.len());
});
