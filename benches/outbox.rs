//! The durable outbox: append and drain throughput with its crash-safety guarantee, beside an
//! embedded database (redb) giving the same guarantee, to justify segment files.
//!
//! Guarantee measured: a message counts as accepted only once a killed process can no longer
//! lose it. The outbox gives that with one `write(2)` per message (and `fdatasync` every 100 ms
//! against power loss, here every 1,000 messages, ≥ as often as 100 ms at these rates); redb gives
//! it only with a durable commit per message (fsync). redb with non-durable commits and a durable
//! one per 1,000 is shown too: faster, but then a killed process can lose up to 1,000 accepted
//! messages, which is the guarantee we will not give up.
//!
//! `cargo bench --bench outbox`

use biofeedd::bridge::outbox::record::Class;
use biofeedd::bridge::outbox::Outbox;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// A feedback-sized payload (the demo's messages are ~1.6 kB of JSON).
fn payload() -> Vec<u8> {
    let mut p = br#"{"schema":"biofeedd.feedback.v1","seq":1,"#.to_vec();
    p.resize(1600, b'x');
    p
}

const N: u64 = 1000;
const TOPIC: &str = "biofeedd/v1/hub/s01/feedback";

/// Append N, then drain them: next_to_send, acknowledge, sync — what the bridge does.
fn outbox_append_and_drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("outbox");
    group.throughput(Throughput::Elements(N));
    group.sample_size(20);
    let body = payload();
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(dir.path(), 256 << 20).unwrap();
    group.bench_function("append_1000", |b| {
        b.iter(|| {
            for _ in 0..N {
                outbox.append(Class::Live, false, TOPIC, &body, None, 1).unwrap();
            }
            outbox.sync().unwrap();
        });
        // Keep the outbox from growing across samples: drain what this sample appended.
        while let Some(m) = outbox.next_to_send(1).unwrap() {
            outbox.acknowledged(m.id);
        }
        outbox.sync().unwrap();
    });
    group.bench_function("append_and_drain_1000", |b| {
        b.iter(|| {
            for _ in 0..N {
                outbox.append(Class::Live, false, TOPIC, &body, None, 1).unwrap();
            }
            while let Some(m) = outbox.next_to_send(1).unwrap() {
                outbox.acknowledged(m.id);
            }
            outbox.sync().unwrap();
        })
    });
    group.finish();
}

const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("outbox");

fn redb_alternative(c: &mut Criterion) {
    let mut group = c.benchmark_group("redb");
    group.sample_size(10);
    let body = payload();
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("outbox.redb")).unwrap();
    let mut next = 0u64;
    let put = |durability: redb::Durability, ids: std::ops::Range<u64>| {
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(durability).unwrap();
        {
            let mut table = tx.open_table(TABLE).unwrap();
            for id in ids {
                table.insert(id, body.as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    };
    // The same guarantee as the outbox: each accepted message durable before the next.
    group.throughput(Throughput::Elements(100));
    group.bench_function("append_100_durable_commit_each", |b| {
        b.iter(|| {
            for _ in 0..100 {
                put(redb::Durability::Immediate, next..next + 1);
                next += 1;
            }
        })
    });
    // A weaker guarantee: 1,000 per durable commit.
    group.throughput(Throughput::Elements(N));
    group.bench_function("append_1000_one_durable_commit", |b| {
        b.iter_batched(
            || (),
            |_| {
                for _ in 0..N {
                    put(redb::Durability::None, next..next + 1);
                    next += 1;
                }
                put(redb::Durability::Immediate, next..next);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, outbox_append_and_drain, redb_alternative);
criterion_main!(benches);
