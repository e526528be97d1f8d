//! Generic CSV recordings: any bytes give channels whose samples match the accepted rows, or an
//! error naming the file; with `skip`, malformed rows become counted gaps.
#![no_main]

use biofeedd::ingest::replay::csv::{read_csv, CsvOptions};
use biofeedd::ingest::replay::{CsvChannel, OnBadRow};
use biofeedd::signal::Modality;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: (bool, bool, &[u8])| {
    let (skip, timed, bytes) = input;
    let channels = [
        CsvChannel { column: "ECG".into(), name: None, modality: Modality::Ecg, unit: "mV".into(), scale: 1.0 },
        CsvChannel { column: "EDA".into(), name: None, modality: Modality::Eda, unit: "uS".into(), scale: 1.0 },
    ];
    let opts = CsvOptions {
        channels: &channels,
        rate_hz: if timed { None } else { Some(100.0) },
        time_column: timed.then_some("t"),
        start_time: 0.0,
        on_bad_row: if skip { OnBadRow::Skip } else { OnBadRow::Error },
    };
    match read_csv(bytes, Path::new("r.csv"), &opts) {
        Ok(rec) => {
            let n = |c: usize| rec.channels[c].segments.iter().map(|s| s.samples.len()).sum::<usize>();
            assert_eq!(n(0), n(1), "every accepted row feeds every channel");
            assert!(rec.channels.iter().all(|c| c.spec.rate_hz.is_finite() && c.spec.rate_hz > 0.0));
        }
        Err(e) => assert!(e.to_string().starts_with("r.csv"), "{e}"),
    }
});
