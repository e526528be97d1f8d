//! Property tests: hostile input never panics and never breaks an invariant.

use biofeedd::features::beats::{detect_ecg, detect_ppg};
use biofeedd::features::hrv::{from_peaks, HrvOptions, HrvScratch};
use biofeedd::features::FeatureExtractor;
use biofeedd::ingest::replay::csv::{parse_csv, CsvOptions};
use biofeedd::ingest::replay::{CsvChannel, OnBadRow, ReadError};
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

/// A generated CSV: its text and, per data line, what a reader must make of it.
#[derive(Debug, Clone)]
struct Csv {
    text: String,
    /// Lines up to and including the header.
    header_line: usize,
    rows: Vec<Row>,
}

#[derive(Debug, Clone)]
struct Row {
    /// 1-based line in the text.
    line: usize,
    /// Only whitespace: no record at all.
    blank: bool,
    fields: Vec<String>,
}

impl Row {
    /// Whether a reader accepts the row (meaningful for rows without quotes): four fields (more
    /// only if empty), `a` and `b` numbers, `t` a finite number when it times the rows.
    fn valid(&self, timed: bool) -> bool {
        let f = |i: usize| self.fields.get(i).map(|s| s.trim()).unwrap_or("");
        self.fields.len() >= 4
            && self.fields[4..].iter().all(|x| x.trim().is_empty())
            && f(1).parse::<f32>().is_ok()
            && f(3).parse::<f32>().is_ok()
            && (!timed || f(0).parse::<f64>().is_ok_and(f64::is_finite))
    }
}

/// Numbers, garbage, empty and blank fields, quotes (balanced and not).
fn any_field() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (-1e6f32..1e6).prop_map(|v| format!("{v}")),
        1 => any::<i32>().prop_map(|v| v.to_string()),
        1 => Just(String::new()),
        1 => Just("  ".to_string()),
        1 => "[a-zé]{1,3}",
        1 => prop_oneof![Just("NaN"), Just("inf"), Just("1e40"), Just("-0"), Just(" 2.5 ")].prop_map(String::from),
        1 => (-10f32..10.0).prop_map(|v| format!("\"{v}\"")),
        1 => Just("\"".to_string()),
    ]
}

/// A header naming t, a, x, b (maybe quoted, maybe after a BOM and blank lines) on one of the
/// three separators, then rows of any field count with increasing times, and blank lines.
fn any_csv() -> impl Strategy<Value = Csv> {
    let row = (proptest::collection::vec(any_field(), 0..7), any::<bool>(), 0u8..8);
    (
        prop_oneof![Just(','), Just('\t'), Just(';')],
        any::<bool>(),
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(row, 0..40),
    )
        .prop_map(|(sep, bom, leading_blank, quoted, crlf, rows)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::from(if bom { "\u{feff}" } else { "" });
            for _ in 0..leading_blank {
                text.push_str(nl);
            }
            let names: Vec<String> =
                ["t", "a", "x", "b"].iter().map(|n| if quoted { format!("\"{n}\"") } else { n.to_string() }).collect();
            text.push_str(&names.join(&sep.to_string()));
            let header_line = leading_blank + 1;
            let mut out = Vec::new();
            for (i, (mut fields, good_time, kind)) in rows.into_iter().enumerate() {
                text.push_str(nl);
                let line = header_line + 1 + i;
                if kind == 0 {
                    // A blank line: nothing, or whitespace.
                    let blank = if i % 2 == 0 { String::new() } else { " \t ".to_string() };
                    text.push_str(&blank);
                    out.push(Row { line, blank: true, fields: Vec::new() });
                    continue;
                }
                // Times that parse always increase; the others are no number, or quoted.
                if let Some(t) = fields.first_mut() {
                    *t = if good_time {
                        format!("{:.2}", i as f64 * 0.01)
                    } else {
                        ["", "late", "NaN", "inf", "\"0.5\""][kind as usize % 5].to_string()
                    };
                }
                let joined = fields.join(&sep.to_string());
                text.push_str(&joined);
                let blank = joined.trim().is_empty();
                out.push(Row { line, blank, fields });
            }
            Csv { text, header_line, rows: out }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn csv_parser_never_panics(csv in any_csv(), skip in any::<bool>(), time_mode in 0u8..3) {
        // Columns t, a, x, b; channels a and b; timed by rate_hz, by t, or by both.
        let chans: Vec<CsvChannel> = ["a", "b"]
            .iter()
            .map(|c| CsvChannel { column: c.to_string(), name: None, modality: Modality::Ecg, unit: "u".into(), scale: 1.0 })
            .collect();
        let opts = CsvOptions {
            channels: &chans,
            rate_hz: (time_mode != 1).then_some(100.0),
            time_column: (time_mode != 0).then_some("t"),
            start_time: 0.0,
            on_bad_row: if skip { OnBadRow::Skip } else { OnBadRow::Error },
        };
        let result = parse_csv(&csv.text, Path::new("fuzz.csv"), &opts);
        let lines = csv.text.lines().count();
        match &result {
            Ok(rec) => {
                prop_assert_eq!(rec.channels.len(), 2);
                let samples: Vec<usize> =
                    rec.channels.iter().map(|c| c.segments.iter().map(|s| s.samples.len()).sum()).collect();
                prop_assert_eq!(samples[0], samples[1]);
                prop_assert!(samples[0] > 0);
                prop_assert!(rec.channels.iter().flat_map(|c| &c.segments).all(|s| !s.samples.is_empty()));
                prop_assert!(samples[0] + rec.skipped_rows as usize <= csv.rows.iter().filter(|r| !r.blank).count());
                if !skip {
                    prop_assert_eq!(rec.skipped_rows, 0);
                }
            }
            Err(e) => {
                prop_assert!(e.to_string().starts_with("fuzz.csv"), "{e}");
                if let ReadError::Parse { line, column, .. } = e {
                    prop_assert!(*line >= 1 && *line <= lines + 1 && *column >= 1, "{e}");
                }
            }
        }
        // Without quotes in the rows, every line is one record: the outcome is known exactly.
        if !csv.text.lines().skip(csv.header_line).any(|l| l.contains('"')) {
            let timed = opts.time_column.is_some();
            let data: Vec<&Row> = csv.rows.iter().filter(|r| !r.blank).collect();
            let accepted = data.iter().filter(|r| r.valid(timed)).count();
            let first_bad = data.iter().find(|r| !r.valid(timed));
            match (skip, first_bad) {
                (false, Some(bad)) => {
                    let e = result.as_ref().unwrap_err().to_string();
                    prop_assert!(e.starts_with(&format!("fuzz.csv:{}:", bad.line)), "{e}");
                }
                _ if accepted == 0 || (opts.rate_hz.is_none() && accepted < 2) => prop_assert!(result.is_err()),
                _ => match &result {
                    Ok(rec) => {
                        prop_assert_eq!(rec.skipped_rows as usize, data.len() - accepted);
                        for c in &rec.channels {
                            prop_assert_eq!(c.segments.iter().map(|s| s.samples.len()).sum::<usize>(), accepted);
                        }
                    }
                    // An estimated rate can be slower than a step between two rows.
                    Err(e) => prop_assert!(opts.rate_hz.is_none() && e.to_string().contains("backwards"), "{e}"),
                },
            }
        }
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
        // The module's memory bound: `length + stall_timeout` of time per channel, in which kept
        // samples are at least half a period apart (jittered chunk stamps may overlap the previous
        // chunk by less than that), one more for boundary rounding, plus the chunk just pushed and
        // not yet cut into windows. Found by this test: 1-sample chunks stamped 0.5–0.9 periods
        // apart hold more than the nominal count.
        let bound = |ch: usize, chunk: usize| (2.0 * (config.length_s + config.stall_timeout_s) * rates[ch]).ceil() as usize + 1 + chunk;
        let mut w = SubjectWindower::new("p", specs, config.clone());
        let mut last_end = f64::NEG_INFINITY;
        for (ch, t, n) in chunks {
            let mark = ChunkMark { len: n as u32, source_time: t, arrival: Instant::now(), gap_before: false };
            w.push(ch, &mark, &vec![1.0; n]);
            prop_assert!(w.buffered_samples(ch) <= bound(ch, n), "after a push: {} samples", w.buffered_samples(ch));
            while let Some(win) = w.next_window() {
                prop_assert!(win.end > last_end, "windows advance");
                last_end = win.end;
                for c in &win.channels {
                    prop_assert!(c.values.len() <= (2.0 * 10.0 * c.spec.rate_hz) as usize + 1);
                }
            }
            for c in 0..rates.len() {
                prop_assert!(w.buffered_samples(c) <= bound(c, 0), "channel {c}: {} samples", w.buffered_samples(c));
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The beat stream under any chunk timing (steps back, overlaps, gaps, overruns) and any values:
    /// no panic, beats numbered in order, strictly later each time, every interval finite and
    /// positive and equal to the time since the previous beat.
    #[test]
    fn beat_stream_stays_ordered_under_any_chunks(
        modality in prop_oneof![Just(Modality::Ecg), Just(Modality::Ppg), Just(Modality::Rr)],
        fs in prop_oneof![Just(1.0f64), Just(64.0), Just(130.0), Just(360.0), 0.5f64..2000.0],
        chunks in proptest::collection::vec(
            (-2.0f64..3.0, any::<bool>(), proptest::collection::vec(any_sample(), 0..400)), 0..60),
    ) {
        use biofeedd::biofeedback::BeatTracker;
        let mut tracker = BeatTracker::new(modality, fs).expect("a cardiac modality");
        let mut out = Vec::new();
        let mut t = 1_700_000_000.0;
        for (step, overrun, samples) in &chunks {
            let mark = ChunkMark { len: samples.len() as u32, source_time: t, arrival: Instant::now(), gap_before: *overrun };
            tracker.push(&mark, samples, &mut out);
            // The next chunk starts where this one ended, give or take a step of up to 3 s.
            t += samples.len() as f64 / fs + step;
        }
        tracker.finish(Instant::now(), &mut out);
        for (k, b) in out.iter().enumerate() {
            prop_assert_eq!(b.seq, k as u64);
            prop_assert!(b.t.is_finite());
            if k > 0 {
                prop_assert!(b.t > out[k - 1].t, "beat {} not after the previous", k);
            }
            if let Some(rr) = b.rr_ms {
                prop_assert!(rr.is_finite() && rr > 0.0, "rr {}", rr);
                if modality != Modality::Rr {
                    prop_assert!((rr - (b.t - out[k - 1].t) * 1000.0).abs() < 1e-6);
                }
            }
            prop_assert_eq!(b.hr_bpm.is_some(), b.rr_ms.is_some());
        }
    }
}

/// The serial decoders the daemon runs, as the fuzz targets drive them (the stable-toolchain
/// stand-in for `fuzz/run.sh` in CI).
#[cfg(feature = "serial")]
fn serial_decoders() -> Vec<Box<dyn biofeedd::ingest::protocol::Decoder>> {
    use biofeedd::ingest::protocol::{cyton, framed, line, ProtocolConfig};
    let specs = [ChannelSpec::new("a", Modality::Ecg, "mV", 100.0), ChannelSpec::new("b", Modality::Eda, "uS", 4.0)];
    [
        ProtocolConfig::Line(line::LineConfig::for_encoder(&specs, line::Separator::Comma, Some(256))),
        ProtocolConfig::Cyton(cyton::CytonConfig::for_simulator(&specs)),
        ProtocolConfig::Framed(framed::FramedConfig::for_encoder(&specs)),
    ]
    .iter()
    .map(ProtocolConfig::decoder)
    .collect()
}

#[cfg(feature = "serial")]
proptest! {
    #[test]
    fn serial_decoders_take_any_bytes_in_any_pieces(
        bytes in prop::collection::vec(prop_oneof![3 => any::<u8>(), 1 => Just(0u8), 1 => Just(b'\n'), 1 => Just(0xA0u8), 1 => Just(0xC0u8)], 0..3000),
        cuts in prop::collection::vec(0usize..3000, 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        for mut decoder in serial_decoders() {
            let mut out = biofeedd::ingest::protocol::Decoded::new(decoder.specs().len());
            let mut from = 0;
            for &cut in &cuts {
                decoder.push(&bytes[from..cut], &mut out);
                from = cut;
            }
            decoder.finish(&mut out);
            for channel in &out.channels {
                // Runs start at increasing offsets inside the values.
                prop_assert!(channel.runs.windows(2).all(|w| w[0].0 < w[1].0));
                prop_assert!(channel.runs.iter().all(|r| r.0 < channel.values.len()));
                prop_assert_eq!(channel.runs.is_empty(), channel.values.is_empty());
            }
        }
    }
}

/// A notification: which characteristic, seconds since the last, a reconnect before it, and
/// its bytes — biased toward real frame shapes (ECG and PPI headers, heart-rate flags).
fn any_notification() -> impl Strategy<Value = (u8, f64, bool, Vec<u8>)> {
    let frame = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..240),
        (0u8..4, any::<u64>(), 0u8..3, prop::collection::vec(any::<u8>(), 0..230)).prop_map(|(m, ts, t, body)| {
            let mut f = vec![m];
            f.extend((ts % 1_000_000_000_000_000_000).to_le_bytes());
            f.push(t);
            f.extend(body);
            f
        }),
        (0u8..0x20, prop::collection::vec(any::<u8>(), 1..12)).prop_map(|(flags, rest)| {
            let mut f = vec![flags];
            f.extend(rest);
            f
        }),
    ];
    (0u8..4, 0.0f64..3.0, prop::bool::weighted(0.05), frame)
}

proptest! {
    #[test]
    fn ble_notifications_in_any_order_keep_every_channel_in_time_order(
        streams in prop::sample::subsequence(vec![0usize, 1, 2, 3, 4], 1..=5),
        sensor_time in any::<bool>(),
        notifications in prop::collection::vec(any_notification(), 0..120),
    ) {
        use biofeedd::ingest::protocol::ble::stream::{Assembler, Gatt, StreamKind, StreamSpec, TimeBase, Timed};
        let kinds = [StreamKind::Hr, StreamKind::Ecg, StreamKind::Acc, StreamKind::Ppg, StreamKind::Ppi];
        let specs: Vec<StreamSpec> = streams.iter().map(|&k| StreamSpec::default_for(kinds[k])).collect();
        let mut a = Assembler::new(&specs, if sensor_time { TimeBase::Sensor } else { TimeBase::Arrival });
        let mut last = vec![f64::NEG_INFINITY; a.specs().len()];
        let mut out = Timed::default();
        let mut arrival = 1.7e9;
        for (source, step, reconnect, bytes) in notifications {
            arrival += step;
            if reconnect {
                a.reconnect();
            }
            out.clear();
            let source = [Gatt::HeartRate, Gatt::Battery, Gatt::PmdControl, Gatt::PmdData][usize::from(source)];
            a.push(source, &bytes, arrival, &mut out);
            for c in &out.chunks {
                prop_assert!(c.start + c.len <= out.values.len() && c.len > 0);
                prop_assert!(c.time.is_finite());
                prop_assert!(c.time >= last[c.channel] - 1e-6, "{:?} after {}", c, last[c.channel]);
                let span = if a.evenly_sampled(c.channel) { c.len as f64 * a.specs()[c.channel].period_s() } else { 0.0 };
                last[c.channel] = last[c.channel].max(c.time + span);
            }
            prop_assert!(out.values.iter().all(|v| v.is_finite()));
        }
    }
}
