//! Feature extraction cost for one 60 s window of the bundled recording (ECG + EDA + RSP at
//! 100 Hz), the window `benches/validation/features_speed.py` times NeuroKit2 on.
//! Run: `cargo bench --bench features`.

mod common;

use biofeedd::features::beats::{detect_ecg, BeatScratch};
use biofeedd::features::hrv::{self, HrvOptions, HrvScratch};
use biofeedd::features::FeatureExtractor;
use biofeedd::window::{ChannelWindow, Window};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Instant;

/// Seconds 30–90 of the demo recording: the window the peer script uses.
fn demo_window() -> Window {
    let rec = common::demo_recording();
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

    // Components on the same window's ECG: the beat detector and HRV from its beats.
    let ecg = &window.channels[0].values;
    let mut scratch = BeatScratch::default();
    let mut peaks = Vec::new();
    c.bench_function("features/detect_ecg_60s_100hz", |b| {
        b.iter(|| detect_ecg(black_box(ecg), 100.0, &mut scratch, &mut peaks))
    });
    detect_ecg(ecg, 100.0, &mut scratch, &mut peaks);
    let mut hrv_scratch = HrvScratch::default();
    c.bench_function("features/hrv_60s", |b| {
        b.iter(|| black_box(hrv::from_peaks(black_box(&peaks), 100.0, HrvOptions::default(), &mut hrv_scratch)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
