use super::*;
use crate::ingest::protocol::testing::{decode_in_chunks, decode_whole};
use crate::ingest::protocol::Decoded;
use proptest::prelude::*;

/// The real packets of `tests/data/serial/cyton-packets.txt`, by item letter.
fn item(letter: char) -> Vec<Vec<u8>> {
    let text = include_str!("../../../../tests/data/serial/cyton-packets.txt");
    let mut current = ' ';
    let mut packets = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# [") {
            current = rest.chars().next().unwrap_or(' ');
        } else if !line.starts_with('#') && !line.trim().is_empty() && current == letter {
            packets.push(line.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()).collect());
        }
    }
    packets
}

fn decode(cfg: &CytonConfig, bytes: &[u8]) -> Decoded {
    decode_whole(cfg.decoder(), bytes)
}

fn packet(counter: u8, counts: [i32; 8], aux: [u8; 6]) -> Vec<u8> {
    let mut p = Vec::new();
    encode_packet(counter, counts, aux, 0xC0, &mut p);
    p
}

fn close(got: f32, want: f64, tol: f64) {
    assert!((f64::from(got) - want).abs() <= tol, "{got} vs {want}");
}

#[test]
fn real_packet_a_decodes_to_the_values_computed_from_its_counts() {
    let a = item('A');
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].len(), PACKET_LEN);
    // Item A stands alone; sync is confirmed by a successor, so one synthetic packet follows.
    let mut bytes = a[0].clone();
    bytes.extend(packet(1, [0; 8], [0; 6]));
    let out = decode(&CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: true }, &bytes);
    let want = [-164141.20, -164245.89, -163812.40, -164430.18, 187500.00, 187500.00, -157990.27, 47919.21];
    for (ch, w) in out.channels.iter().zip(want) {
        close(ch.values[0], w, 0.02);
        assert_eq!(ch.runs, [(0, 0)]);
    }
    for (k, w) in [0.028, 0.028, 0.494].into_iter().enumerate() {
        assert_eq!(out.channels[8 + k].values.len(), 1, "one accelerometer sample");
        close(out.channels[8 + k].values[0], w, 1e-6);
    }
    assert_eq!((out.decode_errors, out.lost_samples), (0, 0));
}

#[test]
fn real_packets_b_are_consecutive_and_scale_with_the_gain() {
    let bytes: Vec<u8> = item('B').concat();
    let out = decode(&CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: true }, &bytes);
    let want = [-7974.68, -7951.03, -7909.97, -8141.85, -32083.52, -48242.51, -75959.90, -187500.02];
    for (ch, w) in out.channels.iter().zip(want) {
        assert_eq!(ch.values.len(), 3);
        assert_eq!(ch.runs, [(0, 0)], "counters 241, 242, 243 are one run");
        close(ch.values[0], w, 0.02);
    }
    assert!(out.channels[8..].iter().all(|c| c.values.is_empty()), "all-zero aux is no accelerometer sample");
    assert_eq!((out.decode_errors, out.lost_samples), (0, 0));
    // Gain 12 doubles every value; a channel in mV scales after the µV conversion.
    let cfg: CytonConfig = toml::from_str(
        "gain = 12\naccelerometer = false\nchannels = [{ index = 8, name = \"ecg\", modality = \"ecg\", unit = \"mV\", scale = 0.001 }]",
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.specs().len(), 1);
    let out = decode(&cfg, &bytes);
    close(out.channels[0].values[0], -375.00004, 1e-4);
}

#[test]
fn the_malformed_a0_41_streams_are_rejected_and_a_following_good_packet_decodes() {
    let cfg = CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: true };
    for bad in [item('C').concat(), item('D').concat(), [item('C').concat(), item('D').concat()].concat()] {
        assert!(bad.len() >= PACKET_LEN);
        let mut bytes = bad.clone();
        bytes.extend(item('B').concat());
        let out = decode(&cfg, &bytes);
        assert_eq!(out.decode_errors, 1, "one resync episode");
        assert!(out.channels[..8].iter().all(|c| c.values.len() == 3 && c.runs == [(0, 0)]), "only item B decodes");
        let alone = decode(&cfg, &bad);
        assert_eq!(alone.sample_count(), 0, "nothing of the malformed stream is a sample");
        assert!(alone.decode_errors >= 1);
    }
}

#[test]
fn counter_jumps_are_lost_samples_and_wrap_at_256() {
    let cfg = CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: false };
    let counters = [254u8, 255, 0, 1, 4, 5];
    let bytes: Vec<u8> = counters.iter().flat_map(|&c| packet(c, [i32::from(c); 8], [0; 6])).collect();
    let out = decode(&cfg, &bytes);
    assert_eq!(out.lost_samples, 2);
    assert_eq!(out.channels[0].runs, [(0, 0), (4, 6)]);
    assert_eq!(out.decode_errors, 0);
}

#[test]
fn garbage_after_lock_is_one_error_then_the_decoder_resyncs() {
    let cfg = CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: false };
    let mut bytes: Vec<u8> = (0..3u8).flat_map(|c| packet(c, [1; 8], [0; 6])).collect();
    bytes.extend([0xA0, 0x11, 0xC0, 0x00, 0xA0].repeat(50));
    bytes.extend((3..6u8).flat_map(|c| packet(c, [1; 8], [0; 6])));
    let out = decode(&cfg, &bytes);
    assert_eq!(out.decode_errors, 1);
    assert_eq!(out.channels[0].values.len(), 6, "{:?}", out.channels[0]);
    assert_eq!(out.lost_samples, 0);
    // A partial packet at the start of a connection is no error.
    let out = decode(&cfg, &bytes[10..99]);
    assert_eq!((out.decode_errors, out.channels[0].values.len()), (0, 2));
}

#[test]
fn accelerometer_samples_come_at_a_tenth_of_the_packet_index() {
    let cfg = CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: true };
    let bytes: Vec<u8> = (0..30u8)
        .flat_map(|c| packet(c, [0; 8], if c % 10 == 9 { [0, 8, 0, 16, 0x1f, 0x40] } else { [0; 6] }))
        .collect();
    let out = decode(&cfg, &bytes);
    assert_eq!(out.channels[8].runs, [(0, 0)]);
    assert_eq!(out.channels[10].values, [1.0; 3]);
    assert_eq!(out.channels[8].values.len(), 3);
    assert_eq!(out.channels[9].runs[0], (0, 0));
}

#[test]
fn the_banner_ends_after_the_first_three_dollars() {
    assert_eq!(end_of_banner(SIMULATED_BANNER), Some(SIMULATED_BANNER.len()));
    assert_eq!(end_of_banner(b"abc$$"), None);
    assert_eq!(end_of_banner(b"x$$$\xa0"), Some(4));
    assert_eq!((RESET, START, STOP), (&b"v"[..], &b"b"[..], &b"s"[..]));
}

#[test]
fn configs_with_impossible_gains_or_channels_are_refused_by_key() {
    let bad = |t: &str| toml::from_str::<CytonConfig>(t).unwrap().validate().unwrap_err().to_string();
    assert!(bad("gain = 5").starts_with("gain: must be one of 1, 2, 4"), "{}", bad("gain = 5"));
    assert!(bad("gain = [24, 24]").starts_with("gain: needs 8 gains"));
    assert!(bad("gain = [24, 24, 24, 24, 24, 24, 24, 3]").starts_with("gain[7]:"));
    assert!(bad("channels = [{ index = 9 }]").starts_with("channels[0].index:"));
    assert!(bad("channels = [{ index = 1, scale = 0 }]").starts_with("channels[0].scale:"));
    assert!(bad("channels = [{ index = 1 }, { index = 1 }]").contains("used twice"));
    assert!(toml::from_str::<CytonConfig>("gian = 24").is_err(), "unknown keys are refused");
    let ok: CytonConfig = toml::from_str("gain = [1, 2, 4, 6, 8, 12, 24, 24]").unwrap();
    ok.validate().unwrap();
    assert_eq!(ok.specs().len(), 11);
    assert_eq!(ok.specs()[0].name, "eeg1");
}

#[test]
fn counts_saturate_at_the_rails() {
    assert_eq!(microvolts_to_counts(1e9, 24.0), 8_388_607);
    assert_eq!(microvolts_to_counts(-1e9, 24.0), -8_388_608);
    assert_eq!(microvolts_to_counts(f64::NAN, 24.0), 0);
    assert_eq!(microvolts_to_counts(187_500.0, 24.0), 8_388_607);
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips_in_any_chunking(
        start in any::<u8>(),
        microvolts in prop::collection::vec(prop::array::uniform8(-187_000.0f64..187_000.0), 2..40),
        garbage in prop::collection::vec(any::<u8>(), 0..40),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let cfg = CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: true };
        let mut bytes = garbage.clone();
        for (k, uv) in microvolts.iter().enumerate() {
            let counts = uv.map(|v| microvolts_to_counts(v, 24.0));
            encode_packet(start.wrapping_add(k as u8), counts, [0, 1, 0, 2, 0, 3], 0xC0, &mut bytes);
        }
        let whole = decode(&cfg, &bytes);
        let parts = decode_in_chunks(cfg.decoder(), &bytes, &splits);
        prop_assert_eq!(&whole, &parts);
        if garbage.is_empty() {
            let half = microvolts_per_count(24.0) / 2.0 + 1e-3;
            for (k, uv) in microvolts.iter().enumerate() {
                for (ch, &want) in whole.channels.iter().zip(uv) {
                    prop_assert!((f64::from(ch.values[k]) - want).abs() <= half + want.abs() * 1e-7);
                }
            }
            prop_assert_eq!(whole.decode_errors, 0);
        }
    }
}
