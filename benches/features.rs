//! Feature extraction cost on the bundled recording (ECG + EDA + RSP at 100 Hz) and on the
//! committed E4 excerpt (BVP 64 Hz, EDA/TEMP 4 Hz, ACC 32 Hz).
//!
//! - `features/hop_5s_*`: the daemon's steady state — one more 5 s hop of a 60 s window through
//!   the streaming extractor. This is the per-window cost a running hub pays.
//! - `features/cold_window_60s_*`: a fresh extractor on one whole 60 s window, the same work
//!   `benches/validation/features_speed.py` times NeuroKit2 on (seconds 30–90).
//! - `features/hop_5s_window_{30,120}s_*`: the same hop under shorter and longer windows: the
//!   streaming claim (cost follows the hop, not the window) as a measurement.
//! - components: each streaming processor over 60 s of its signal, HRV and derived respiration
//!   from the window's beats.
//!
//! Run: `cargo bench --bench features`.

mod common;

use biofeedd::features::beats::{Beat, EcgDetector, PpgDetector};
use biofeedd::features::eda::EdaStream;
use biofeedd::features::hrv::{self, HrvOptions, HrvScratch};
use biofeedd::features::resp::{self, DerivedScratch, RespStream};
use biofeedd::features::FeatureExtractor;
use biofeedd::ingest::replay::Recording;
use biofeedd::window::Window;
use common::{hops, hops_of, window_at, HOP_S, LENGTH_S};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn bench_hops(c: &mut Criterion, name: &str, rec: &Recording) {
    bench_hop(c, &format!("features/hop_5s_{name}"), hops(rec));
    let cold = window_at(rec, 30.0_f64.min(hops(rec).len() as f64 * HOP_S - HOP_S), LENGTH_S);
    c.bench_function(&format!("features/cold_window_60s_{name}"), |b| {
        b.iter(|| black_box(FeatureExtractor::new().extract(black_box(&cold)).values[0]))
    });
}

/// One steady-state hop through `windows` (the first warms the extractor up).
fn bench_hop(c: &mut Criterion, id: &str, windows: Vec<Window>) {
    let mut extractor = FeatureExtractor::with_hop(HOP_S);
    extractor.extract(&windows[0]);
    // Cycle through the hops after the first; wrapping round only makes the signal jump once
    // per cycle, which costs the processors nothing extra.
    let mut k = 1;
    c.bench_function(id, |b| {
        b.iter(|| {
            let fv = extractor.extract(black_box(&windows[k])).values[0];
            k = if k + 1 == windows.len() { 1 } else { k + 1 };
            fv
        })
    });
}

fn bench(c: &mut Criterion) {
    let demo = common::demo_recording();
    let e4 = common::e4_recording();
    bench_hops(c, "ecg_eda_rsp_100hz", &demo);
    bench_hops(c, "e4_bvp_eda_temp_acc", &e4);
    // The streaming claim itself: a 5 s hop costs the same whatever the window's length.
    for length in [30.0, 120.0] {
        bench_hop(c, &format!("features/hop_5s_window_{length}s_ecg_eda_rsp_100hz"), hops_of(&demo, length));
    }

    // Components over 60 s of signal (seconds 30–90 of the demo; 0–60 of the E4 excerpt).
    let w = window_at(&demo, 30.0, LENGTH_S);
    let (ecg, eda, rsp) = (&w.channels[0].values, &w.channels[1].values, &w.channels[2].values);
    let mut beats: Vec<Beat> = Vec::new();
    c.bench_function("features/ecg_detector_60s_100hz", |b| {
        b.iter(|| {
            beats.clear();
            EcgDetector::new(100.0).process(black_box(ecg), &mut beats);
            beats.len()
        })
    });
    let peaks: Vec<usize> = beats.iter().map(|b| b.index as usize).collect();
    let mut hrv_scratch = HrvScratch::default();
    c.bench_function("features/hrv_60s", |b| {
        b.iter(|| black_box(hrv::from_peaks(black_box(&peaks), 100.0, HrvOptions::default(), &mut hrv_scratch)))
    });
    let mut derived = DerivedScratch::default();
    c.bench_function("features/derived_resp_60s", |b| {
        b.iter(|| black_box(resp::derived_rate_bpm(black_box(&beats), 100.0, &mut derived)))
    });
    let mut scrs = Vec::new();
    c.bench_function("features/eda_stream_60s_100hz", |b| {
        b.iter(|| {
            scrs.clear();
            let mut s = EdaStream::new(100.0);
            for &x in eda.iter() {
                black_box(s.push(x, &mut scrs));
            }
            scrs.len()
        })
    });
    let mut breaths = Vec::new();
    c.bench_function("features/resp_stream_60s_100hz", |b| {
        b.iter(|| {
            breaths.clear();
            RespStream::new(100.0).process(black_box(rsp), &mut breaths);
            breaths.len()
        })
    });
    let e4w = window_at(&e4, 0.0, LENGTH_S);
    let bvp = &e4w.channels.iter().find(|c| c.spec.rate_hz == 64.0).unwrap().values;
    c.bench_function("features/ppg_detector_60s_64hz", |b| {
        b.iter(|| {
            beats.clear();
            PpgDetector::new(64.0).process(black_box(bvp), &mut beats);
            beats.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
