//! Property tests: hostile input never panics and never breaks an invariant.

use biofeedd::features::beats::{detect_ecg, detect_ppg};
use biofeedd::features::hrv::{from_peaks, HrvOptions, HrvScratch};
use biofeedd::features::FeatureExtractor;
use biofeedd::ingest::replay::recording::{parse_csv, CsvOptions};
use biofeedd::ingest::replay::{CsvChannel, OnBadRow};
use biofeedd::ring::ChunkMark;
use biofeedd::signal::{ChannelSpec, Modality};
use biofeedd::window::{ChannelWindow, SubjectWindower, Window, WindowConfig};
use proptest::prelude::*;
use std::path::Path;
use std::time::Instant;

fn any_sample() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -10.0f32..10.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MAX),
        1 => Just(0.0f32),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn csv_parser_never_panics(text in "(?s).{0,400}", skip in any::<bool>()) {
        let chans = [CsvChannel { column: "a".into(), name: None, modality: Modality::Ecg, unit: "u".into(), scale: 1.0 }];
        let opts = CsvOptions {
            channels: &chans,
            rate_hz: Some(100.0),
            time_column: None,
            start_time: 0.0,
            on_bad_row: if skip { OnBadRow::Skip } else { OnBadRow::Error },
        };
        let _ = parse_csv(&text, Path::new("fuzz.csv"), &opts);
        let _ = parse_csv(&format!("a,b\n{text}"), Path::new("fuzz.csv"), &opts);
    }

    #[test]
    fn features_never_panic_across_windows_and_rate_changes(
        values in proptest::collection::vec(any_sample(), 0..3000),
        rates in proptest::collection::vec(
            prop_oneof![Just(4.0f64), Just(32.0), Just(64.0), Just(100.0), Just(360.0), Just(1000.0)], 1..4),
        fresh_share in 0.0f64..=1.0,
    ) {
        // One extractor sees several windows in a row; the sampling rate may change between them
        // (a device reconfigured mid-stream) and any number of samples may be fresh.
        let mut extractor = FeatureExtractor::new();
        for (seq, rate) in rates.iter().enumerate() {
            let fresh = (values.len() as f64 * fresh_share) as usize;
            let channels = [Modality::Ecg, Modality::Ppg, Modality::Eda, Modality::Resp, Modality::Temp, Modality::Acc]
                .iter()
                .map(|m| ChannelWindow {
                    spec: ChannelSpec::new(m.as_str(), *m, "u", *rate),
                    values: values.clone(),
                    missing: 3,
                    fresh,
                })
                .collect();
            let w = Window { subject: "p".into(), seq: seq as u64, start: 0.0, end: 60.0, channels, last_arrival: Instant::now() };
            let fv = extractor.extract(&w);
            for q in &fv.quality {
                prop_assert!((0.0..=1.0).contains(&q.score), "{q:?}");
            }
        }
    }

    #[test]
    fn windower_survives_any_chunk_order_and_stays_bounded(
        chunks in proptest::collection::vec((0usize..2, -5.0f64..200.0, 0usize..50), 0..200),
    ) {
        let rates = [10.0, 4.0];
        let specs = vec![ChannelSpec::new("a", Modality::Ecg, "u", rates[0]), ChannelSpec::new("b", Modality::Eda, "u", rates[1])];
        let config = WindowConfig { length_s: 10.0, hop_s: 2.0, stall_timeout_s: 3.0 };
        // The module's memory bound: `length + stall_timeout` of samples per channel (one more for
        // boundary rounding), plus the chunk just pushed and not yet cut into windows.
        let bound = |ch: usize, chunk: usize| ((config.length_s + config.stall_timeout_s) * rates[ch]).ceil() as usize + 1 + chunk;
        let mut w = SubjectWindower::new("p", specs, config.clone());
        let mut last_end = f64::NEG_INFINITY;
        // The first window waits until every channel has delivered a sample, and until then
        // nothing is released: the bound holds from that point on (a channel that never speaks
        // lets the others grow).
        let mut spoken = [false; 2];
        for (ch, t, n) in chunks {
            let mark = ChunkMark { len: n as u32, source_time: t, arrival: Instant::now(), gap_before: false };
            w.push(ch, &mark, &vec![1.0; n]);
            spoken[ch] |= n > 0;
            let started = spoken.iter().all(|&s| s);
            prop_assert!(!started || w.buffered_samples(ch) <= bound(ch, n), "after a push: {} samples", w.buffered_samples(ch));
            while let Some(win) = w.next_window() {
                prop_assert!(win.end > last_end, "windows advance");
                last_end = win.end;
                for c in &win.channels {
                    prop_assert!(c.values.len() <= (10.0 * c.spec.rate_hz) as usize + 1);
                }
            }
            for c in 0..rates.len() {
                prop_assert!(!started || w.buffered_samples(c) <= bound(c, 0), "channel {c}: {} samples", w.buffered_samples(c));
            }
        }
        w.finish_channel(0);
        w.finish_channel(1);
        while w.next_window().is_some() {}
    }

    #[test]
    fn detectors_and_hrv_never_panic_at_any_rate(
        values in proptest::collection::vec(any_sample(), 0..20_000),
        fs in 0.5f64..2000.0,
        correct in any::<bool>(),
    ) {
        let peaks = detect_ecg(&values, fs);
        prop_assert!(peaks.windows(2).all(|w| w[0] < w[1]), "R peaks strictly increasing");
        prop_assert!(peaks.iter().all(|&p| p < values.len().max(1)));
        let hrv = from_peaks(&peaks, fs, HrvOptions { correct }, &mut HrvScratch::default());
        prop_assert!(hrv.sdnn_ms.is_nan() || hrv.sdnn_ms >= 0.0);
        let pulses = detect_ppg(&values, fs);
        prop_assert!(pulses.windows(2).all(|w| w[0].index < w[1].index), "pulse peaks strictly increasing");
        prop_assert!(pulses.iter().all(|b| b.foot <= b.index && (b.index as usize) < values.len()));
    }
}
