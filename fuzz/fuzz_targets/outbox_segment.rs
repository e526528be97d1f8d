//! Opening an outbox whose segment file holds any bytes (a torn write, a damaged disk, a file
//! that is not ours): it opens, offers what it can read in id order, keeps accepting messages,
//! and opens again afterwards — never a panic.
#![no_main]

use biofeedd::bridge::outbox::record::Class;
use biofeedd::bridge::outbox::Outbox;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0000000000000001.seg"), bytes).unwrap();
    let mut outbox = Outbox::open(dir.path(), 1 << 20).expect("opens whatever the segment holds");
    let mut last = 0;
    while let Some(m) = outbox.next_to_send(0).unwrap() {
        assert!(m.id > last, "ids offered in order");
        last = m.id;
    }
    let id = outbox.append(Class::Durable, true, "t", b"after", None, 0).unwrap();
    assert!(id > last);
    outbox.sync().unwrap();
    drop(outbox);
    let mut outbox = Outbox::open(dir.path(), 1 << 20).expect("opens again");
    let mut found = false;
    while let Some(m) = outbox.next_to_send(0).unwrap() {
        found |= m.id == id;
    }
    assert!(found, "the message accepted after the damage survives");
});
