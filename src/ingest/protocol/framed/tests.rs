use super::*;
use crate::ingest::protocol::testing::{decode_in_chunks, decode_whole};
use crate::ingest::protocol::Decoded;
use proptest::prelude::*;

fn decode(cfg: &FramedConfig, bytes: &[u8]) -> Decoded {
    decode_whole(cfg.decoder(), bytes)
}

fn frame(seq: u16, blocks: &[Block], crc: Crc) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(seq, blocks, crc, &mut out);
    out
}

#[test]
fn the_crcs_are_the_named_catalogue_ones() {
    assert_eq!(Crc::Crc16.of(b"123456789")[..2], 0x29B1u16.to_le_bytes());
    assert_eq!(Crc::Crc32.of(b"123456789"), 0xCBF4_3926u32.to_le_bytes());
}

#[test]
fn cobs_matches_the_published_examples() {
    let enc = |d: &[u8]| {
        let mut o = Vec::new();
        cobs_encode(d, &mut o);
        o
    };
    assert_eq!(enc(&[]), [1]);
    assert_eq!(enc(&[0]), [1, 1]);
    assert_eq!(enc(&[0x11, 0x22, 0, 0x33]), [3, 0x11, 0x22, 2, 0x33]);
    let run: Vec<u8> = (1..=254).collect();
    assert_eq!(enc(&run), [&[0xFF][..], &run].concat(), "a full final block has no trailing code");
    let mut back = Vec::new();
    assert_eq!(cobs_decode(&[3, 0x11, 0x22, 2, 0x33], &mut back), Some(()));
    assert_eq!(back, [0x11, 0x22, 0, 0x33]);
    assert_eq!(cobs_decode(&[5, 1], &mut back), None, "a code past the end");
}

#[test]
fn bad_frames_are_one_error_each_and_the_next_frame_decodes() {
    let cfg = FramedConfig::plain(&[0], 100.0);
    let good = |seq: u16, first: u32| frame(seq, &[Block::i16(0, first, &[1, 2])], Crc::Crc16);
    let mut bytes = vec![0];
    bytes.extend(good(0, 0));
    let mut corrupt = good(1, 2);
    corrupt[5] ^= 0x40; // a flipped bit: the CRC fails
    bytes.extend(corrupt);
    bytes.extend(b"\x05garbage\x00");
    bytes.extend(frame(2, &[Block::i16(0, 4, &[1, 2])], Crc::Crc32));
    bytes.extend(good(3, 6));
    let out = decode(&cfg, &bytes);
    assert_eq!(out.decode_errors, 2);
    assert_eq!(out.channels[0].runs, [(0, 0), (2, 4)]);
    assert_eq!(out.lost_samples, 2);
    let strict = FramedConfig { crc: Some(Crc::Crc16), ..cfg.clone() };
    assert_eq!(decode(&strict, &bytes).decode_errors, 3, "the CRC-32 frame is refused too");
}

#[test]
fn unknown_ids_are_skipped_and_index_jumps_are_lost_samples() {
    let cfg = FramedConfig::plain(&[7], 100.0);
    let mut bytes = vec![0];
    bytes.extend(frame(0, &[Block::f32(3, 0, &[9.0]), Block::f32(7, u32::MAX, &[1.0, 2.0])], Crc::Crc16));
    bytes.extend(frame(1, &[Block::f32(7, 1, &[3.0, f32::NAN, 5.0])], Crc::Crc16));
    bytes.extend(frame(2, &[Block::f32(7, 0, &[6.0])], Crc::Crc16));
    let out = decode(&cfg, &bytes);
    assert_eq!(out.channels[0].values, [1.0, 2.0, 3.0, 5.0]);
    assert_eq!(out.channels[0].runs, [(0, 0), (3, 4)], "u32 wraps; a NaN is a one-sample gap");
    assert_eq!((out.lost_samples, out.decode_errors), (0, 1), "index going back is an error");
    let jump = [
        vec![0],
        frame(0, &[Block::f32(7, 10, &[1.0])], Crc::Crc16),
        frame(1, &[Block::f32(7, 15, &[1.0])], Crc::Crc16),
    ];
    let out = decode(&cfg, &jump.concat());
    assert_eq!((out.lost_samples, out.channels[0].runs.clone()), (4, vec![(0, 0), (1, 5)]));
}

#[test]
fn an_endless_frame_is_one_error_and_memory_stays_bounded() {
    let cfg = FramedConfig::plain(&[0], 100.0);
    let mut d = cfg.decoder();
    let mut out = Decoded::new(1);
    d.push(&[0], &mut out);
    for _ in 0..160 {
        d.push(&[0x55; 65536], &mut out);
        assert!(d.frames.capacity() <= MAX_ENCODED);
    }
    d.push(&[0], &mut out);
    d.push(&frame(0, &[Block::i32(0, 0, &[5])], Crc::Crc32), &mut out);
    assert_eq!(out.decode_errors, 1);
    assert_eq!(out.channels[0].values, [5.0]);
    let big = [0i32; 255];
    let too_long: Vec<Block> = (0..3).map(|_| Block::i32(0, 0, &big)).collect();
    assert!(frame_len(&too_long, Crc::Crc16) > MAX_FRAME);
    let bytes = [vec![0], frame(0, &too_long, Crc::Crc16)].concat();
    assert_eq!(decode(&cfg, &bytes).decode_errors, 1);
}

#[test]
fn configs_name_the_key_that_is_wrong() {
    let bad = |t: &str| toml::from_str::<FramedConfig>(t).unwrap().validate().unwrap_err().to_string();
    let ch =
        |extra: &str| format!("channels = [{{ id = 1, modality = \"ecg\", unit = \"mV\", rate_hz = 250{extra} }}]");
    assert!(bad(&ch(", scale = 0")).starts_with("channels[0].scale:"));
    assert!(bad("channels = [{ id = 1, modality = \"ecg\", unit = \"mV\", rate_hz = 0 }]")
        .starts_with("channels[0].rate_hz:"));
    assert!(bad("channels = []").starts_with("channels:"));
    let twice = "channels = [{ id = 1, modality = \"ecg\", unit = \"mV\", rate_hz = 1 }, { id = 1, name = \"b\", modality = \"ecg\", unit = \"mV\", rate_hz = 1 }]";
    assert!(bad(twice).contains("id 1 is used twice"));
    assert!(toml::from_str::<FramedConfig>(&format!("crc = \"crc8\"\n{}", ch(""))).is_err());
    let ok: FramedConfig = toml::from_str(&format!("crc = \"crc32\"\n{}", ch(", offset = -1"))).unwrap();
    ok.validate().unwrap();
    assert_eq!(ok.specs()[0].name, "ch1");
}

proptest! {
    #[test]
    fn cobs_round_trips(data in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..700)) {
        let mut enc = Vec::new();
        cobs_encode(&data, &mut enc);
        prop_assert!(!enc.contains(&0));
        let mut back = Vec::new();
        prop_assert_eq!(cobs_decode(&enc, &mut back), Some(()));
        prop_assert_eq!(back, data);
    }

    #[test]
    fn encode_then_decode_round_trips_in_any_chunking(
        frames in prop::collection::vec((prop::collection::vec(any::<i16>(), 0..40), prop::collection::vec(-1e6f32..1e6, 0..40), any::<bool>()), 1..12),
        garbage in prop::collection::vec(any::<u8>(), 0..40),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let cfg = FramedConfig::plain(&[1, 2], 100.0);
        // Before the first delimiter, garbage is a partial frame: no error.
        let mut bytes: Vec<u8> = garbage.iter().map(|&g| g.max(1)).collect();
        bytes.push(0);
        let (mut a, mut b) = (0u32, 0u32);
        for (seq, (ints, floats, crc32)) in frames.iter().enumerate() {
            let crc = if *crc32 { Crc::Crc32 } else { Crc::Crc16 };
            encode_frame(seq as u16, &[Block::i16(1, a, ints), Block::f32(2, b, floats)], crc, &mut bytes);
            a += ints.len() as u32;
            b += floats.len() as u32;
        }
        let whole = decode(&cfg, &bytes);
        prop_assert_eq!(whole.decode_errors, 0);
        let ints: Vec<f32> = frames.iter().flat_map(|f| f.0.iter().map(|&v| f32::from(v))).collect();
        let floats: Vec<f32> = frames.iter().flat_map(|f| f.1.clone()).collect();
        prop_assert_eq!(&whole.channels[0].values, &ints);
        prop_assert_eq!(&whole.channels[1].values, &floats);
        prop_assert!(whole.channels.iter().all(|c| c.runs.len() <= 1));
        let parts = decode_in_chunks(cfg.decoder(), &bytes, &splits);
        prop_assert_eq!(whole, parts);
    }
}
