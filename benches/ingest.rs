//! Ingest path cost in ns/sample: decode (CSV text → samples), ring push and drain, and the
//! three together, on the bundled real recording. Run: `cargo bench --bench ingest`.

mod common;

use biofeedd::ingest::replay::csv::parse_csv;
use biofeedd::ring::{channel, Waker};
use biofeedd::signal::ChunkStamp;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

/// Push every channel's samples in 40 ms chunks (4 samples at 100 Hz) and drain them, as the
/// replay task and the pipeline thread do.
fn push_and_drain(columns: &[&[f32]]) -> usize {
    let chunk = 4;
    let mut drained = 0;
    let mut out = Vec::with_capacity(chunk);
    for col in columns {
        let (mut p, mut c) = channel(4096, 1024, Waker::default());
        let arrival = Instant::now();
        for (i, part) in col.chunks(chunk).enumerate() {
            p.push(ChunkStamp { source_time: i as f64 * 0.04, arrival }, part).expect("room: drained every chunk");
            while c.pop_chunk(&mut out).is_some() {
                drained += out.len();
            }
        }
    }
    drained
}

fn bench(c: &mut Criterion) {
    let text = common::demo_text();
    let chans = common::demo_channels();
    let opts = common::demo_options(&chans);
    let rec = parse_csv(&text, Path::new("demo.csv"), &opts).unwrap();
    let n = rec.total_samples() as u64;
    let columns: Vec<&[f32]> = rec.channels.iter().map(|c| c.segments[0].samples.as_slice()).collect();

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode_csv", |b| {
        b.iter(|| black_box(parse_csv(black_box(&text), Path::new("demo.csv"), &opts).unwrap()))
    });
    g.bench_function("ring_push_drain", |b| b.iter(|| black_box(push_and_drain(black_box(&columns)))));
    g.bench_function("decode_push_drain", |b| {
        b.iter(|| {
            let rec = parse_csv(black_box(&text), Path::new("demo.csv"), &opts).unwrap();
            let cols: Vec<&[f32]> = rec.channels.iter().map(|c| c.segments[0].samples.as_slice()).collect();
            black_box(push_and_drain(&cols))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
