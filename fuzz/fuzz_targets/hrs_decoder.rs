//! Heart Rate Measurement and Battery Level notifications: any bytes decode to values that fit
//! the notification, or a named error, never a panic.
#![no_main]

use biofeedd::ingest::protocol::ble::hrs::{parse_battery, parse_measurement};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match parse_measurement(bytes) {
        Ok(m) => {
            let fixed = 2 + usize::from(bytes[0] & 0x01) + 2 * usize::from(bytes[0] & 0x08 != 0);
            assert_eq!(fixed + 2 * m.rr_count(), bytes.len(), "every byte is a field");
            assert_eq!(m.rr_ms().count(), m.rr_count());
            assert!(m.rr_ms().all(|ms| (0.0..64_000.0).contains(&ms)));
            let _ = m.to_string();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(level) = parse_battery(bytes) {
        assert!(level <= 100 && bytes.len() == 1);
    }
});
