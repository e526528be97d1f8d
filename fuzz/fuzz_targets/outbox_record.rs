//! Outbox records: any bytes decode record by record into messages and done notes, or stop with
//! a reason, never a panic; whatever decodes re-encodes to exactly the bytes it came from.
#![no_main]

use biofeedd::bridge::outbox::record::{self, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut at = 0;
    while let Ok(Some((r, len))) = record::decode(&bytes[at..]) {
        assert!(len >= 8 && at + len <= bytes.len());
        let again = match &r {
            Record::Message(m) => m.encode(),
            Record::Done { id, why } => record::encode_done(*id, *why),
        };
        assert_eq!(again, &bytes[at..at + len], "{r:?} re-encodes differently");
        at += len;
    }
});
