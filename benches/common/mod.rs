//! The bundled demo recording, parsed the way the daemon parses it, for the benches.
#![allow(dead_code)] // each bench uses a part of it

use biofeedd::ingest::replay::recording::{parse_csv, CsvOptions};
use biofeedd::ingest::replay::{CsvChannel, OnBadRow, Recording};
use biofeedd::signal::Modality;
use std::path::Path;

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
    biofeedd::ingest::replay::recording::load_e4(dir, OnBadRow::Error).unwrap()
}
