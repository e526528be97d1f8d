//! The bundled recordings, parsed the way the daemon parses them, and the windows a hub would cut
//! from them; for the benches and the allocation test.
#![allow(dead_code)] // each bench uses a part of it

use biofeedd::ingest::replay::csv::{parse_csv, CsvOptions};
use biofeedd::ingest::replay::{CsvChannel, OnBadRow, Recording};
use biofeedd::signal::Modality;
use biofeedd::window::{ChannelWindow, Window};
use std::path::Path;
use std::time::Instant;

pub fn demo_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo/bio_eventrelated_100hz.csv")).unwrap()
}

/// ECG, EDA and RSP columns at 100 Hz.
pub fn demo_channels() -> Vec<CsvChannel> {
    [("ECG", Modality::Ecg), ("EDA", Modality::Eda), ("RSP", Modality::Resp)]
        .into_iter()
        .map(|(c, m)| CsvChannel { column: c.into(), name: None, modality: m, unit: "u".into(), scale: 1.0 })
        .collect()
}

pub fn demo_options(channels: &[CsvChannel]) -> CsvOptions<'_> {
    CsvOptions { channels, rate_hz: Some(100.0), time_column: None, start_time: 0.0, on_bad_row: OnBadRow::Error }
}

pub fn demo_recording() -> Recording {
    let chans = demo_channels();
    parse_csv(&demo_text(), Path::new("demo.csv"), &demo_options(&chans)).unwrap()
}

/// The committed 150 s Empatica E4 excerpt (BVP 64 Hz, EDA and TEMP 4 Hz, ACC 32 Hz).
pub fn e4_recording() -> Recording {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/e4-S05-excerpt"));
    biofeedd::ingest::replay::e4::load(dir, OnBadRow::Error).unwrap()
}

pub const LENGTH_S: f64 = 60.0;
pub const HOP_S: f64 = 5.0;

/// The window `[start, start + 60 s)` of a recording (seconds from the start of its latest-starting
/// channel, so every channel covers it), with the newest `fresh_s` seconds marked fresh.
pub fn window_at(rec: &Recording, start_s: f64, fresh_s: f64) -> Window {
    window_of(rec, start_s, LENGTH_S, fresh_s)
}

/// The window `[start, start + length_s)`, as [`window_at`].
pub fn window_of(rec: &Recording, start_s: f64, length_s: f64, fresh_s: f64) -> Window {
    let t0 = common_span(rec).0;
    Window {
        subject: "s01".into(),
        seq: 0,
        start: t0 + start_s,
        end: t0 + start_s + length_s,
        channels: rec
            .channels
            .iter()
            .map(|c| {
                let fs = c.spec.rate_hz;
                let seg = &c.segments[0];
                let a = ((t0 + start_s - seg.start_time) * fs).round() as usize;
                let b = a + (length_s * fs).round() as usize;
                ChannelWindow {
                    spec: c.spec.clone(),
                    values: seg.samples[a..b].to_vec(),
                    missing: 0,
                    fresh: (fresh_s * fs) as usize,
                }
            })
            .collect(),
        last_arrival: Instant::now(),
    }
}

/// The span every channel's first segment covers: (latest start, earliest end), unix seconds.
fn common_span(rec: &Recording) -> (f64, f64) {
    rec.channels.iter().fold((f64::MIN, f64::MAX), |(a, b), c| {
        let seg = &c.segments[0];
        (a.max(seg.start_time), b.min(seg.start_time + seg.samples.len() as f64 / c.spec.rate_hz))
    })
}

/// Every hop of a recording, in order, each window marking its last hop as fresh.
pub fn hops(rec: &Recording) -> Vec<Window> {
    hops_of(rec, LENGTH_S)
}

/// Every hop of `length_s`-second windows.
pub fn hops_of(rec: &Recording, length_s: f64) -> Vec<Window> {
    let (t0, t1) = common_span(rec);
    let mut out = vec![window_of(rec, 0.0, length_s, length_s)];
    let mut start = HOP_S;
    // Half a second of slack: rounding must not ask for a sample past a channel's end.
    while start + length_s <= t1 - t0 - 0.5 {
        out.push(window_of(rec, start, length_s, HOP_S));
        start += HOP_S;
    }
    out
}

/// The committed 22-minute evaluation excerpt of subject S05 (tests/data/stress-eval).
pub fn eval_recording() -> Recording {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stress-eval/S05"));
    biofeedd::ingest::replay::e4::load(dir, OnBadRow::Error).unwrap()
}

/// Every window of the evaluation excerpt past its 300 s baseline, with its features, through
/// the daemon's windower and extractor (as `biofeedd eval` and the training script cut them).
pub fn calibrated_eval_windows() -> Vec<(Window, biofeedd::features::FeatureVector)> {
    let rec = eval_recording();
    let mut extractor = biofeedd::features::FeatureExtractor::with_hop(HOP_S).with_baseline(300.0);
    let mut out = Vec::new();
    biofeedd::eval::replay_windows(&rec, "S05", biofeedd::window::WindowConfig::default(), |w| {
        let fv = extractor.extract(w).clone();
        if fv.get("z_hr_mean_bpm").is_some_and(f32::is_finite) {
            out.push((w.clone(), fv));
        }
    });
    out
}
