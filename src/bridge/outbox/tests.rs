use super::record::Class;
use super::*;

const T0: u64 = 1_700_000_000_000;
const MB: u64 = 1 << 20;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn put(o: &mut Outbox, class: Class, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let payload = format!("{{\"seq\":{i},\"pad\":\"{}\"}}", "x".repeat(200));
            o.append(class, false, "biofeedd/v1/h/s01/feedback", payload.as_bytes(), None, T0).unwrap()
        })
        .collect()
}

fn drain(o: &mut Outbox, now: u64) -> Vec<u64> {
    std::iter::from_fn(|| o.next_to_send(now).unwrap()).map(|m| m.id).collect()
}

fn segment_files(d: &Path) -> usize {
    std::fs::read_dir(d).unwrap().filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref())).count()
}

fn newest_nonempty_segment(d: &Path) -> std::path::PathBuf {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("seg".as_ref()) && std::fs::metadata(p).unwrap().len() > 0)
        .max()
        .unwrap()
}

#[test]
fn acknowledged_messages_are_gone_after_a_restart_and_the_rest_come_back_in_order() {
    let d = dir();
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    let ids = put(&mut o, Class::Live, 10);
    assert_eq!(drain(&mut o, T0), ids);
    for &id in &ids[..4] {
        o.acknowledged(id);
    }
    o.acknowledged(ids[7]);
    o.sync().unwrap();
    drop(o);

    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    assert_eq!(o.stats().recovered, 5);
    let left: Vec<u64> = [4, 5, 6, 8, 9].iter().map(|&i| ids[i]).collect();
    assert_eq!(drain(&mut o, T0), left);
    let next = put(&mut o, Class::Live, 1)[0];
    assert!(next > ids[9], "ids are never reused while older ones exist");
}

#[test]
fn a_process_killed_before_sync_loses_no_accepted_message() {
    // No sync and no drop: the outbox is forgotten as a killed process would forget it. Each
    // append is already in the kernel, so reopening finds all of them.
    let d = dir();
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    let ids = put(&mut o, Class::Durable, 5);
    o.acknowledged(ids[0]); // batched, not yet written: comes back as a duplicate, never lost
    std::mem::forget(o);
    std::fs::remove_file(d.path().join("lock")).unwrap(); // the dead process's lock went with it
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    assert_eq!(drain(&mut o, T0), ids);
}

#[test]
fn rewind_offers_every_pending_message_again() {
    let d = dir();
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    let ids = put(&mut o, Class::Live, 3);
    assert_eq!(drain(&mut o, T0), ids);
    assert!(drain(&mut o, T0).is_empty(), "in flight, not offered twice");
    o.acknowledged(ids[1]);
    o.rewind();
    assert_eq!(drain(&mut o, T0), [ids[0], ids[2]]);
}

#[test]
fn a_torn_tail_is_cut_with_a_warning_and_appends_go_on() {
    let d = dir();
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    let ids = put(&mut o, Class::Durable, 3);
    drop(o);
    let seg = newest_nonempty_segment(d.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();

    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    assert_eq!(o.stats().torn_segments, 1);
    assert_eq!(drain(&mut o, T0), ids[..2]);
    let more = put(&mut o, Class::Durable, 1);
    drop(o);
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    assert_eq!(o.stats().torn_segments, 0, "the cut left no damage behind");
    assert_eq!(drain(&mut o, T0), [ids[0], ids[1], more[0]]);
}

#[test]
fn expired_live_messages_are_never_offered_and_are_counted() {
    let d = dir();
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    let ttl = Some(Duration::from_secs(30));
    let a = o.append(Class::Live, false, "t", b"a", ttl, T0).unwrap();
    let b = o.append(Class::Live, false, "t", b"b", ttl, T0 + 20_000).unwrap();
    let c = o.append(Class::Durable, true, "t", b"c", None, T0).unwrap();
    assert_eq!(drain(&mut o, T0 + 40_000), [b, c]);
    assert_eq!(o.stats().expired, 1);
    o.rewind();
    o.expire(T0 + 60_000);
    assert_eq!((o.stats().expired, o.depth()), (2, 1));
    assert_eq!(drain(&mut o, T0 + 60_000), [c]);
    let _ = a;
}

#[test]
fn at_the_bound_live_messages_go_first_and_durable_ones_only_when_nothing_else_is_left() {
    let d = dir();
    let max = 256 * 1024;
    let mut o = Outbox::open(d.path(), max).unwrap();
    let durable = put(&mut o, Class::Durable, 50);
    for _ in 0..40 {
        put(&mut o, Class::Live, 50);
        assert!(o.disk_bytes() <= max, "{} bytes on disk", o.disk_bytes());
    }
    assert!(o.stats().dropped_live > 0);
    assert_eq!(o.stats().dropped_durable, 0, "durable messages were kept while live ones could go");
    assert!(segment_files(d.path()) <= 10);
    let sent = drain(&mut o, T0);
    assert_eq!(sent[..50], durable[..], "the durable messages survive compaction, in order");
    assert!(sent.windows(2).all(|w| w[0] < w[1]));

    let more_durable = put(&mut o, Class::Durable, 2000);
    assert!(o.disk_bytes() <= max);
    assert!(o.stats().dropped_durable > 0, "only durable left: the oldest ones go");
    o.rewind();
    let left = drain(&mut o, T0);
    assert_eq!(left.last(), more_durable.last(), "the newest durable message is kept");
    assert!(!left.contains(&durable[0]), "the oldest went first");
}

#[test]
fn a_second_process_cannot_open_the_same_outbox() {
    let d = dir();
    let _first = Outbox::open(d.path(), MB).unwrap();
    assert!(matches!(Outbox::open(d.path(), MB), Err(OutboxError::Locked(_))));
}

#[test]
fn a_message_larger_than_the_bound_allows_is_refused_with_its_size() {
    let d = dir();
    let mut o = Outbox::open(d.path(), 64 * 1024).unwrap();
    let err = o.append(Class::Live, false, "t", &[b'x'; 40_000], None, T0).unwrap_err();
    assert!(err.to_string().contains("cannot fit"), "{err}");
}

#[test]
fn finished_segments_are_deleted() {
    let d = dir();
    let mut o = Outbox::open(d.path(), 256 * 1024).unwrap();
    for _ in 0..10 {
        let ids = put(&mut o, Class::Live, 100);
        drain(&mut o, T0);
        for id in ids {
            o.acknowledged(id);
        }
        o.sync().unwrap();
    }
    assert_eq!(o.depth(), 0);
    assert!(segment_files(d.path()) <= 2, "{} segments left", segment_files(d.path()));
    assert_eq!(o.stats().acknowledged, 1000);
}

#[test]
fn the_same_message_twice_in_one_segment_counts_once_and_its_segment_still_goes() {
    let d = dir();
    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    let id = put(&mut o, Class::Durable, 1)[0];
    drop(o);
    let seg = newest_nonempty_segment(d.path());
    let once = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, [once.clone(), once].concat()).unwrap();
    std::fs::write(d.path().join("5.seg"), b"not ours").unwrap();

    let mut o = Outbox::open(d.path(), 64 * MB).unwrap();
    assert_eq!(drain(&mut o, T0), [id]);
    o.acknowledged(id);
    o.sync().unwrap();
    drop(o);
    let o = Outbox::open(d.path(), 64 * MB).unwrap();
    assert_eq!(o.depth(), 0);
    assert!(!seg.exists(), "its only message is done: the segment is deleted");
    assert!(d.path().join("5.seg").exists(), "a file the outbox did not write is left alone");
}
