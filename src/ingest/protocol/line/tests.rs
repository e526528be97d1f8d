use super::*;
use crate::ingest::protocol::testing::{check_like_the_fuzzers, decode_in_chunks, decode_whole};
use crate::ingest::protocol::Decoded;
use crate::signal::Modality;
use proptest::prelude::*;

fn cfg(text: &str) -> LineConfig {
    let c: LineConfig = toml::from_str(text).unwrap();
    c.validate().unwrap();
    c
}

fn decode(cfg: &LineConfig, bytes: &[u8]) -> Decoded {
    decode_whole(cfg.decoder(), bytes)
}

const TWO: &str = "rate_hz = 100\nchannels = [{ column = 1, name = \"ecg\", modality = \"ecg\", unit = \"mV\", scale = 2.0, offset = 1.0 }, { column = 2, modality = \"eda\", unit = \"uS\" }]";

#[test]
fn crlf_blank_lines_and_a_partial_first_line_are_tolerated() {
    let c = cfg(TWO);
    assert_eq!(c.specs()[1].name, "col2");
    let out = decode(&c, b"9,3,4\r\n0,1,2\r\n\r\n\n1,2,3\n2, 3 ,4\r\n");
    assert_eq!(out.channels[0].values, [3.0, 5.0, 7.0]);
    assert_eq!(out.channels[1].values, [2.0, 3.0, 4.0]);
    assert_eq!(out.channels[0].runs, [(0, 0)]);
    assert_eq!(out.decode_errors, 0);
}

#[test]
fn a_non_numeric_field_is_one_error_and_a_missing_column_too() {
    let out = decode(&cfg(TWO), b"\n0,1,2\n1,x,3\n2,3\n3,nan,1\n4,5,6\n");
    assert_eq!(out.decode_errors, 3);
    assert_eq!(out.channels[1].values, [2.0, 6.0]);
}

#[test]
fn counters_give_indices_and_lost_samples_and_wrap_at_the_modulus() {
    let c = cfg(&format!("{TWO}\ncounter_column = 0\ncounter_modulus = 256"));
    let out = decode(&c, b"\n254,0,0\n255,0,0\n0,0,0\n3,0,0\n4,0,0\n");
    assert_eq!(out.channels[0].runs, [(0, 0), (3, 5)]);
    assert_eq!(out.lost_samples, 2);
    let out = decode(&c, b"\n256,0,0\n1.5,0,0\n-1,0,0\n");
    assert_eq!(out.decode_errors, 3, "counters outside 0..modulus or fractional are errors");
}

#[test]
fn timestamps_give_indices_at_the_rate() {
    let c = cfg(&format!("{TWO}\ntimestamp_column = 0\ntimestamp_unit = \"ms\""));
    let out = decode(&c, b"\n1000,0,0\n1010,0,0\n1021,0,0\n1060,0,0\n");
    assert_eq!(out.channels[0].runs, [(0, 0), (3, 6)]);
    assert_eq!(out.lost_samples, 3);
}

#[test]
fn a_header_names_columns_and_may_be_printed_again() {
    let c = cfg("rate_hz = 50\nheader = true\nseparator = \" \"\ncounter_column = \"n\"\nchannels = [{ column = \"PPG\", modality = \"ppg\", unit = \"a.u.\" }]");
    assert_eq!(c.specs()[0].name, "ppg");
    let out = decode(&c, b"n  PPG  x\n0  5  1\n1 6 1\nn PPG x\n  2\t7 1  \n");
    assert_eq!(out.channels[0].values, [5.0, 6.0, 7.0]);
    assert_eq!(out.decode_errors, 0);
    let out = decode(&c, b"junk\n0 5 1\nPPG x n\n1 1 6\n");
    assert_eq!(
        (out.decode_errors, out.channels[0].values.clone()),
        (1, vec![1.0]),
        "data before the header is an error"
    );
}

#[test]
fn a_ten_megabyte_line_is_one_error_and_memory_stays_bounded() {
    let c = cfg(TWO);
    let mut d = c.decoder();
    let mut out = Decoded::new(2);
    d.push(b"\n0,1,2\n", &mut out);
    let chunk = vec![b'7'; 64 * 1024];
    for _ in 0..160 {
        d.push(&chunk, &mut out);
        assert!(d.lines.capacity() <= MAX_LINE);
    }
    d.push(b"\n1,2,3\n", &mut out);
    assert_eq!(out.decode_errors, 1);
    assert_eq!(out.channels[1].values, [2.0, 3.0]);
}

#[test]
fn configs_name_the_key_that_is_wrong() {
    let bad = |t: &str| toml::from_str::<LineConfig>(t).unwrap().validate().unwrap_err().to_string();
    let ch = "channels = [{ column = 1, modality = \"ecg\", unit = \"mV\" }]";
    assert!(bad(&format!("rate_hz = 0\n{ch}")).starts_with("rate_hz: must be between 0.01"));
    assert!(bad("rate_hz = 1\nchannels = []").starts_with("channels:"));
    assert!(bad("rate_hz = 1\nchannels = [{ column = \"a\", modality = \"ecg\", unit = \"mV\" }]")
        .starts_with("channels[0].column: a column named by text needs a header"));
    assert!(bad(&format!("rate_hz = 1\ncounter_column = 0\ncounter_modulus = 1\n{ch}")).starts_with("counter_modulus:"));
    assert!(
        bad(&format!("rate_hz = 1\ncounter_column = 0\ntimestamp_column = 2\n{ch}")).starts_with("timestamp_column:")
    );
    assert!(bad("rate_hz = 1\nchannels = [{ column = 1, modality = \"ecg\", unit = \"mV\", offset = 1e12 }]")
        .starts_with("channels[0].offset:"));
    assert!(toml::from_str::<LineConfig>(&format!("rate_hz = 1\nseparator = \"|\"\n{ch}")).is_err());
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips_in_any_chunking(
        rows in prop::collection::vec(prop::collection::vec(-1e6f64..1e6, 3), 1..30),
        skip in 0u64..3,
        tab in any::<bool>(),
        garbage in prop::collection::vec(any::<u8>(), 0..30),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let sep = if tab { Separator::Tab } else { Separator::Comma };
        let specs: Vec<_> = (0..3).map(|i| ChannelSpec::new(format!("c{i}"), Modality::Other, "a.u.", 10.0)).collect();
        let c = LineConfig::for_encoder(&specs, sep, Some(256));
        c.validate().unwrap();
        let mut bytes = b"\n".to_vec();
        for (k, row) in rows.iter().enumerate() {
            let counter = if k == 0 { 0 } else { (k as u64 + skip) % 256 };
            encode_line(counter, row, sep, &mut bytes);
        }
        let whole = decode(&c, &bytes);
        prop_assert_eq!(whole.decode_errors, 0);
        prop_assert_eq!(whole.lost_samples, if rows.len() > 1 { skip } else { 0 });
        for (k, row) in rows.iter().enumerate() {
            for (ch, &v) in row.iter().enumerate() {
                prop_assert_eq!(whole.channels[ch].values[k], v as f32);
            }
        }
        bytes.extend(&garbage);
        let whole = decode(&c, &bytes);
        let parts = decode_in_chunks(c.decoder(), &bytes, &splits);
        prop_assert_eq!(whole, parts);
    }
}

#[test]
fn garbage_glued_to_a_counter_is_an_error_not_a_70_s_jump() {
    let cfg = LineConfig::for_encoder(
        &[crate::signal::ChannelSpec::new("x", crate::signal::Modality::Ecg, "mV", 100.0)],
        Separator::Comma,
        None,
    );
    let mut d = cfg.decoder();
    let mut out = Decoded::new(1);
    // A first line (dropped as partial), 120..123, then `7` glued before 124, then 125..
    d.push(b"119,0\n120,1\n121,2\n122,3\n123,4\n7124,5\n125,6\n126,7\n", &mut out);
    assert_eq!(out.decode_errors, 1);
    assert_eq!(out.lost_samples, 1, "the refused line is one lost sample");
    let runs: Vec<(u64, usize)> = out.channels[0].iter_runs().map(|(i, v)| (i, v.len())).collect();
    assert_eq!(runs, [(0, 4), (5, 2)]);
    // A device that really jumped is believed once the next line continues from the jump.
    d.push(b"50000,8\n50001,9\n", &mut out);
    assert_eq!(out.decode_errors, 2, "the first line of the jump is refused");
    assert_eq!(out.channels[0].end_index(), Some(7 + 49874 + 1));
}

/// The line_decoder fuzz target's config (fuzz/fuzz_targets/line_decoder.rs) for the two
/// modes its crashes used: blank-separated, with a counter column without modulus, or with
/// columns named by a header.
fn fuzz_config(named_by_header: bool) -> LineConfig {
    let specs: Vec<_> = (0..3)
        .map(|i| crate::signal::ChannelSpec::new(format!("c{i}"), crate::signal::Modality::Other, "a.u.", 100.0))
        .collect();
    let mut cfg = LineConfig::for_encoder(&specs, Separator::Whitespace, Some(256));
    if named_by_header {
        cfg.header = true;
        cfg.channels[1].column = Column::Name("b".into());
        cfg.counter_column = Some(Column::Name("n".into()));
    } else {
        (cfg.counter_column, cfg.counter_modulus) = (Some(Column::Index(0)), None);
    }
    cfg
}

/// Found by `fuzz/run.sh` (line_decoder, crash-1b1957663a…): a value of 60 digits became an
/// infinite f32 sample.
#[test]
fn fuzz_crash_1b1957663a() {
    let bytes: &[u8] = &[
        23, 23, 23, 0, 3, 1, 99, 255, 255, 255, 255, 255, 10, 53, 32, 49, 32, 50, 32, 51, 10, 49, 32, 52, 32, 51, 49,
        49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49,
        49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 49, 32, 54,
        10, 32, 99, 48, 255, 32, 255, 44, 255, 61, 0, 0, 0, 255,
    ];
    let cfg = fuzz_config(false);
    check_like_the_fuzzers(|| cfg.decoder(), bytes);
}

/// Found by `fuzz/run.sh` (line_decoder, crash-c30a923cf5…): `reset` kept the columns an
/// earlier connection's header had named.
#[test]
fn fuzz_crash_c30a923cf5() {
    let bytes: &[u8] = &[
        143, 110, 49, 32, 50, 32, 51, 10, 49, 32, 52, 255, 255, 255, 255, 50, 32, 120, 10, 48, 32, 49, 32, 50, 32, 51,
        10, 49, 32, 52, 32, 32, 53, 32, 54, 10, 32, 99, 48, 255, 32, 98, 32, 98, 0, 10, 0, 32, 13, 98, 32, 110, 32, 0,
        10, 48, 32, 98, 32, 110, 32, 0, 29, 118, 42, 111, 32, 32, 98, 32, 98, 0, 10, 0, 32, 44, 111, 32, 10, 48, 32,
        98, 32, 110, 32, 0, 10, 48, 32, 98, 32, 110, 32, 0, 29, 128, 42, 10,
    ];
    let cfg = fuzz_config(true);
    check_like_the_fuzzers(|| cfg.decoder(), bytes);
}
