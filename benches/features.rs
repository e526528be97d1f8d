//! Feature extraction cost for one 60 s window of the bundled recording (ECG + EDA + RSP at
//! 100 Hz), the window `benches/validation/features_speed.py` times NeuroKit2 on.
//! Run: `cargo bench --bench features`.

use biofeedd::features::FeatureExtractor;
use biofeedd::ingest::replay::recording::{parse_csv, CsvOptions};
use biofeedd::ingest::replay::{CsvChannel, OnBadRow};
use biofeedd::signal::Modality;
use biofeedd::window::{ChannelWindow, Window};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

/// Seconds 30–90 of the demo recording: the window the peer script uses.
pub fn demo_window() -> Window {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo/bio_eventrelated_100hz.csv")).unwrap();
    let chans: Vec<CsvChannel> = [("ECG", Modality::Ecg), ("EDA", Modality::Eda), ("RSP", Modality::Resp)]
        .into_iter()
        .map(|(c, m)| CsvChannel { column: c.into(), name: None, modality: m, unit: "u".into(), scale: 1.0 })
        .collect();
    let opts = CsvOptions {
        channels: &chans,
        rate_hz: Some(100.0),
        time_column: None,
        start_time: 0.0,
        on_bad_row: OnBadRow::Error,
    };
    let rec = parse_csv(&text, Path::new("demo.csv"), &opts).unwrap();
    Window {
        subject: "s01".into(),
        seq: 0,
        start: 30.0,
        end: 90.0,
        channels: rec
            .channels
            .iter()
            .map(|c| ChannelWindow {
                spec: c.spec.clone(),
                values: c.segments[0].samples[3000..9000].to_vec(),
                missing: 0,
            })
            .collect(),
        last_arrival: Instant::now(),
    }
}

fn bench(c: &mut Criterion) {
    let window = demo_window();
    let mut extractor = FeatureExtractor::new();
    c.bench_function("features/ecg_eda_rsp_60s_100hz", |b| b.iter(|| black_box(extractor.extract(black_box(&window)))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
