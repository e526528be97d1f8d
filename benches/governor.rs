//! What the governor and the worker cost.
//!
//! - `governor/sample`: one [`Sampler::sample`] — the machine's and the daemon's CPU and memory
//!   (sysinfo), the load average, the thermal zones and the cgroup files — what the governor
//!   does once per `[governor] interval_s` (1 s by default), so its cost per second is its share
//!   of a core. Followed by `governor/pressure`: one [`Pressure::update`] on a reading.
//! - `worker/stress-s2/batch_1` vs `worker/stress-s2/batch_8_whole_run` (divide by 8): the offloaded stage
//!   (the raw-window CNN) run one window at a time, as `biofeedd worker` does, against eight
//!   windows in one tract run (the batch dimension set to 8), per window: whether micro-batching
//!   concurrent requests would raise a worker's throughput.
//!
//! Run: `cargo bench --bench governor`.

use biofeedd::fusion::{Fusion, FusionConfig};
use biofeedd::governor::{GovernorConfig, PipelineLoad, Pressure, Sampler};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Instant;
use tract_onnx::prelude::*;

fn governor(c: &mut Criterion) {
    let config = GovernorConfig::default();
    let mut sampler = Sampler::new(&config);
    let mut load = PipelineLoad::default();
    c.bench_function("governor/sample", |b| {
        b.iter(|| {
            load.windows += 1;
            black_box(sampler.sample(load))
        })
    });
    let reading = sampler.sample(load);
    let mut pressure = Pressure::new(&config, Instant::now());
    c.bench_function("governor/pressure", |b| b.iter(|| black_box(pressure.update(&reading, Instant::now()))));
}

/// Stage 2 of the bundled cascade with its inputs' batch dimension set to `batch`.
fn stage2(batch: usize) -> TractResult<std::sync::Arc<TypedRunnableModel>> {
    let fusion = Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).unwrap();
    let m = &fusion.stage().manifest;
    let raw = m.inputs.raw.as_ref().unwrap();
    let onnx = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/stress-s2.onnx"))?;
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(onnx))?
        .with_input_fact(0, f32::fact([batch, m.inputs.features.len()]).into())?
        .with_input_fact(1, f32::fact([batch, raw.channels.len(), raw.length]).into())?;
    model.into_optimized()?.into_runnable()
}

fn batching(c: &mut Criterion) {
    let one = stage2(1).expect("stage 2 at batch 1");
    let inputs = |b: usize| -> TVec<TValue> {
        tvec![Tensor::zero::<f32>(&[b, 51]).unwrap().into(), Tensor::zero::<f32>(&[b, 4, 480]).unwrap().into()]
    };
    let mut group = c.benchmark_group("worker/stress-s2");
    group.bench_function("batch_1", |b| b.iter(|| black_box(one.run(inputs(1)).unwrap())));
    match stage2(8) {
        Ok(eight) => {
            // Per window: criterion's time divided by 8 is the figure to compare.
            group.bench_function("batch_8_whole_run", |b| b.iter(|| black_box(eight.run(inputs(8)).unwrap())));
        }
        Err(e) => println!("worker/stress-s2/batch_8: the model does not take a batch of 8: {e:#}"),
    }
    group.finish();
}

criterion_group!(benches, governor, batching);
criterion_main!(benches);
