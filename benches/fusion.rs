//! Model cost through tract, on real windows (the committed S05 evaluation excerpt, past its
//! baseline).
//!
//! - `fusion/stage/<model>`: one stage, one window: the per-stage latency (every variant),
//!   inputs prepared from the window (features filled, the raw window resampled) plus the model.
//! - `fusion/cascade` vs `fusion/always_stage_2`: the mean cost per window over all the
//!   excerpt's windows, with early exit and without it.
//! - `fusion/cache_hit`: a window answered from the prediction cache.
//!
//! Besides criterion's figures, the bench writes `target/fusion-latency.json`: p50/p99/max of
//! 20,000 single runs per stage (hdrhistogram), of the whole stage and of the model alone, and
//! the exact inputs the model got, which `benches/validation/onnx_speed.py` feeds to
//! onnxruntime for the tract/onnxruntime ratio (model against model).
//!
//! Run: `cargo bench --bench fusion`.

mod common;

use biofeedd::features::FeatureVector;
use biofeedd::fusion::{builtin, Fusion, FusionConfig};
use biofeedd::window::Window;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Instant;

fn cascade() -> Fusion {
    Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).expect("bundled cascade")
}

/// p50/p99/max (µs) of `run`, 20,000 single runs after 1,000 warm-up ones.
fn percentiles(mut run: impl FnMut()) -> serde_json::Value {
    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for _ in 0..1_000 {
        run();
    }
    for _ in 0..20_000 {
        let t = Instant::now();
        run();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({ "p50_us": us(0.5), "p99_us": us(0.99), "max_us": h.max() as f64 / 1000.0 })
}

/// Per stage variant on one window: the whole stage (inputs prepared from the window, then the
/// model) and the model alone on the same inputs, with those inputs.
fn latency_table(window: &Window, fv: &FeatureVector) -> serde_json::Value {
    let mut rows = serde_json::Map::new();
    for name in builtin::STAGES {
        let mut slot = builtin::slot(name).unwrap();
        for stage in slot.variants_mut() {
            let whole = percentiles(|| {
                black_box(stage.run(window, fv).expect("a calibrated window"));
            });
            let model = percentiles(|| {
                black_box(stage.rerun());
            });
            let (features, raw) = stage.last_inputs();
            rows.insert(
                stage.manifest.name.clone(),
                serde_json::json!({
                    "onnx": format!("models/{}", stage.manifest.onnx.display()),
                    "stage": whole, "model": model,
                    "features": features, "raw": raw,
                    "raw_shape": stage.manifest.inputs.raw.as_ref().map(|r| [1, r.channels.len(), r.length]),
                }),
            );
        }
    }
    serde_json::Value::Object(rows)
}

fn bench(c: &mut Criterion) {
    let windows = common::calibrated_eval_windows();
    let (w, fv) = &windows[windows.len() / 2];
    let table = latency_table(w, fv);
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fusion-latency.json");
    std::fs::write(&out, serde_json::to_string_pretty(&table).unwrap()).unwrap();
    // Each row holds the whole stage's and the model's own percentiles.
    let us = |v: &serde_json::Value, q: &str| v[q].as_f64().expect("percentiles are numbers");
    for (name, row) in table.as_object().unwrap() {
        let (stage, model) = (&row["stage"], &row["model"]);
        println!(
            "{name:<18} stage p50 {:>7.2} µs  p99 {:>7.2} µs  max {:>8.2} µs; model alone p50 {:>7.2} µs",
            us(stage, "p50_us"),
            us(stage, "p99_us"),
            us(stage, "max_us"),
            us(model, "p50_us")
        );
    }

    for name in builtin::STAGES {
        let mut slot = builtin::slot(name).unwrap();
        for stage in slot.variants_mut() {
            let id = format!("fusion/stage/{}", stage.manifest.name);
            c.bench_function(&id, |b| b.iter(|| black_box(stage.run(black_box(w), black_box(fv)).unwrap())));
        }
    }

    // The raw window alone: what stage 2 pays before its model runs.
    let spec = builtin::slot("stress-s2.toml").unwrap().active().manifest.inputs.raw.clone().unwrap();
    let mut scratch = biofeedd::fusion::raw::RawScratch::default();
    let mut out = vec![0.0; spec.len()];
    c.bench_function("fusion/raw_prepare", |b| {
        b.iter(|| biofeedd::fusion::raw::prepare(&spec, black_box(w), &mut scratch, &mut out).unwrap())
    });

    // Mean cost per window over every window of the excerpt: the cascade against always running
    // the last stage (one iteration = all windows).
    let mut fusion = cascade();
    let exits = windows.iter().fold(vec![0u32; 3], |mut n, (w, fv)| {
        n[fusion.predict(w, fv).exit_stage as usize] += 1;
        n
    });
    println!("cascade exits per stage over {} windows: {exits:?}", windows.len());
    c.bench_function("fusion/cascade", |b| {
        b.iter(|| windows.iter().map(|(w, fv)| fusion.predict(w, fv).exit_stage).sum::<u32>())
    });
    let mut last = builtin::slot("stress-s2.toml").unwrap();
    let heavy = &mut last.variants_mut()[0];
    c.bench_function("fusion/always_stage_2", |b| {
        b.iter(|| windows.iter().map(|(w, fv)| heavy.run(w, fv).unwrap()[1]).sum::<f32>())
    });

    let mut cached = cascade().with_cache(64, 0.05).unwrap();
    cached.predict(w, fv);
    c.bench_function("fusion/cache_hit", |b| b.iter(|| black_box(cached.predict(black_box(w), black_box(fv)))));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
