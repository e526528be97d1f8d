//! PMD data frames against real notification bytes from ../shared/data/ble-captures/VECTORS.md
//! (each test names the vector and where its bytes come from).

use super::*;

pub(crate) fn hex(lines: &[&str]) -> Vec<u8> {
    lines.iter().flat_map(|l| l.split_whitespace()).map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

/// ECG-G6: the sixth of six consecutive notifications from an H10 in a gatttool session,
/// phdiethelm/h10_ecg `exploration/gatttool.md` @93606ede (no licence: bytes quoted as facts).
pub(crate) const ECG_G6: [&str; 8] = [
    "00 AA 9A 93 51 31 49 52 08 00 75 00 00 73 00 00 63 00 00 5E 00 00 77 00 00 8C 00 00 8C 00 00 85",
    "00 00 7C 00 00 83 00 00 98 00 00 9C 00 00 8E 00 00 57 00 00 FC FF FF F5 FF FF 30 00 00 37 00 00",
    "27 00 00 04 00 00 D0 FF FF 7A 00 00 0A 03 00 9F 06 00 52 08 00 EB 05 00 4B 01 00 C7 FE FF 26 FF",
    "FF 92 FF FF 3F FF FF 4F FF FF 90 FF FF 90 FF FF 94 FF FF B2 FF FF D5 FF FF E5 FF FF E3 FF FF F5",
    "FF FF 09 00 00 0D 00 00 19 00 00 19 00 00 04 00 00 FC FF FF 0B 00 00 2B 00 00 30 00 00 1D 00 00",
    "12 00 00 24 00 00 42 00 00 45 00 00 22 00 00 0B 00 00 F7 FF FF B7 FF FF 9D FF FF C7 FF FF D0 FF",
    "FF C5 FF FF E3 FF FF 00 00 00 0B 00 00 24 00 00 42 00 00 45 00 00 32 00 00 2B 00 00 32 00 00 34",
    "00 00 27 00 00",
];

#[test]
fn h10_ecg_frame_gives_the_samples_its_source_states() {
    let bytes = hex(&ECG_G6);
    let frame = parse_frame(&bytes).unwrap();
    assert_eq!((frame.measurement, frame.frame_type, frame.compressed), (0, 0, false));
    // The source: "1..8 0xaa 0x9a 0x93 0x51 0x31 0x49 0x52 0x08 Timestamp (in ns)".
    assert_eq!(frame.timestamp_ns, 0x0852_4931_5193_9AAA);
    // An H10 whose clock was never set counts from 2019-01-01 (Polar's TimeSystemExplained.md).
    let unix = EPOCH_UNIX_S + frame.timestamp_ns as f64 / 1e9;
    assert!((1_546_300_800.0..1_546_387_200.0).contains(&unix), "{unix}");
    let mut out = Vec::new();
    assert_eq!(decode_samples(&frame, Layout { channels: 1, resolution: 14 }, &mut out), Ok((73, 1)));
    // The source: "Sample 0: 0x000075 = 117; Sample 1: 0x000073 = 115; … Sample 14: 0xfffffc = −4".
    assert_eq!((out[0], out[1], out[14]), (117, 115, -4));
    // The R peak the ECG shows (2130 µV, computed here), and the last sample.
    assert_eq!(*out.iter().max().unwrap(), 2130);
    assert_eq!(out[72], 39);
}

/// ACC-1: a complete delta-compressed Verity Sense ACC notification (frame type 0x81, 16 bit,
/// 3 channels), polar-ble-sdk issue #443 (full text from the githubissues.com mirror); its
/// timestamp decodes to the day the issue was posted.
const ACC_1: [&str; 8] = [
    "02 00 41 6F C4 12 45 93 0A 81 EE 02 1F FE 82 FF 08 0A 10 DA 20 D6 A3 0B D9 CB E7 D6 F6 C4 E6 F1",
    "E1 F3 E0 15 1A FE 28 1B F8 37 2C 25 20 13 19 11 0A 2F ED 4F C0 7E F4 E9 BB 6E 80 0D C8 2F B0 3E",
    "14 D1 AF B0 7F 16 C4 CC 20 87 34 03 54 12 8B FF 8D 00 C1 42 FB E6 D3 DF B5 E1 91 53 2F BE F9 ED",
    "43 B0 3E FD DB 9B 90 3D F5 03 60 5F 7B FA D9 DF AE 00 0B 24 64 70 40 12 CC CF BF 04 E4 C5 33 B0",
    "38 08 41 80 EF C2 12 EC 17 81 46 FD FE 5B B0 01 F3 D1 D7 6F 81 FF CD 7B 0F C2 01 36 60 7F 43 D3",
    "5F 3F 3F 78 CB 06 48 4E FF 00 0E FC 82 05 51 AB 55 E3 4A 2D 1D 0C 5F BD E8 58 73 4D BD EB A0 67",
    "51 02 0C C4 70 41 CA 26 7F A0 02 89 19 FE 3F 5F 74 E7 22 44 20 3F 15 66 B0 52 4D 05 5C A4 1F BE",
    "E9 68 00",
];

#[test]
fn verity_acc_delta_frame_with_two_block_widths_decodes_whole() {
    let bytes = hex(&ACC_1);
    assert_eq!(bytes.len(), 227);
    let frame = parse_frame(&bytes).unwrap();
    assert_eq!((frame.measurement, frame.frame_type, frame.compressed), (2, 1, true));
    assert_eq!(frame.timestamp_ns, 762_028_708_863_099_136);
    let mut out = Vec::new();
    // Blocks of 8 bits × 10 samples, then 10 bits × 47: 58 samples, every byte used (a
    // decoder reading only the first block, as issue #527 found, stops at 11).
    assert_eq!(decode_samples(&frame, Layout { channels: 3, resolution: 16 }, &mut out), Ok((58, 3)));
    // Values as VECTORS.md computed them with its reference decoder (the issue states none).
    assert_eq!(&out[..9], [750, -481, -126, 766, -519, -94, 724, -612, -83]);
    assert_eq!(&out[3 * 19..3 * 20], [1117, 49, -21]);
    assert_eq!(&out[3 * 57..], [923, 614, 644]);
}

#[test]
fn raw_acc_frame_of_the_polar_sdk_test() {
    // ACC-4: polar-ble-sdk AccDataTest.kt "process acc raw data frame type 1" (Polar SDK
    // License); the header is the test's own, the payload looks like a resting device. States:
    // sample 0 = (−9, −1, 999), sample 1 = (−8, −2, 997), payload / 6 samples.
    let mut bytes = hex(&["02 00 94 35 77 00 00 00 00 01"]);
    bytes.extend(hex(&[
        "F7 FF FF FF E7 03 F8 FF FE FF E5 03 F9 FF FF FF E5 03 FA FF FF FF E6 03 FA FF FE FF E6 03 F9 FF",
        "FF FF E5 03 F8 FF FF FF E6 03 F8 FF FE FF E6 03 FA FF FF FF E5 03 FA FF FF FF E7 03 FA FF FF FF",
        "E5 03 F8 FF FF FF E6 03 F7 FF FF FF E6 03 F8 FF FE FF E6 03 F9 FF FE FF E7 03 F9 FF 00 00 E6 03",
        "F9 FF FF FF E6 03 F7 FF FE FF E5 03 F9 FF FF FF E5 03 F9 FF FF FF E5 03 FA FF 00 00 E6 03 F9 FF",
        "FE FF E6 03 F8 FF FF FF E6 03 F8 FF FF FF E5 03 F9 FF FF FF E6 03 F9 FF FF FF E5 03 FA FF FF FF",
        "E6 03 F9 FF FF FF E5 03 F9 FF FF FF E5 03 F8 FF FE FF E6 03 F9 FF FF FF E6 03 F9 FF FF FF E6 03",
        "F9 FF 00 00 E5 03 F9 FF FE FF E6 03 F8 FF FE FF E6 03 F7 FF FE FF E6 03",
    ]));
    let frame = parse_frame(&bytes).unwrap();
    assert_eq!(frame.timestamp_ns, 2_000_000_000);
    let mut out = Vec::new();
    assert_eq!(decode_samples(&frame, Layout { channels: 3, resolution: 16 }, &mut out), Ok((36, 3)));
    assert_eq!(&out[..6], [-9, -1, 999, -8, -2, 997]);
}

#[test]
fn raw_ppg_frame_of_the_polar_sdk_test() {
    // PPG-4 raw type 0, hand-made (PpgDataTest.kt): (197121, 394500, 8388607, 0) and
    // (−1, −1052913, −8388608, −1052913).
    let mut bytes = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    bytes.extend(hex(&["01 02 03 04 05 06 FF FF 7F 00 00 00 FF FF FF 0F EF EF 00 00 80 0F EF EF"]));
    let mut out = Vec::new();
    assert_eq!(
        decode_samples(&parse_frame(&bytes).unwrap(), Layout { channels: 4, resolution: 22 }, &mut out),
        Ok((2, 4))
    );
    assert_eq!(out, [197121, 394500, 8388607, 0, -1, -1052913, -8388608, -1052913]);
}

#[test]
fn verity_ppi_frames_give_the_intervals_the_sdk_printed() {
    // PPI-1..3: Verity Sense frames and the SDK's own decode printed beside them in
    // polar-ble-sdk issue #311 (logcat).
    let frames: [(&str, u8, [u16; 5]); 3] = [
        (
            "03 00 00 00 00 00 00 00 00 00 3C 2C 04 06 00 06 3C 09 04 06 00 06 3C A2 03 07 00 06 3C 82 03 09 00 06 3C 23 04 0A 00 06",
            60,
            [1068, 1033, 930, 898, 1059],
        ),
        (
            "03 00 00 00 00 00 00 00 00 00 39 8D 04 09 00 06 39 5B 04 07 00 06 39 FB 03 07 00 06 39 29 04 07 00 06 39 34 04 06 00 06",
            57,
            [1165, 1115, 1019, 1065, 1076],
        ),
        (
            "03 00 00 00 00 00 00 00 00 00 3B C2 03 07 00 06 3B D7 03 06 00 06 3B FE 03 07 00 06 3B E5 03 06 00 06 3B 23 04 06 00 06",
            59,
            [962, 983, 1022, 997, 1059],
        ),
    ];
    for (bytes, hr, ppi) in frames {
        let bytes = hex(&[bytes]);
        let frame = parse_frame(&bytes).unwrap();
        assert_eq!((frame.measurement, frame.timestamp_ns), (3, 0));
        let samples: Vec<PpiSample> = decode_ppi(frame.payload).unwrap().collect();
        assert_eq!(samples.iter().map(|s| s.interval_ms).collect::<Vec<_>>(), ppi);
        assert!(samples.iter().all(|s| s.heart_rate_bpm == hr && !s.invalid() && s.contact() == Some(true)));
    }
    // The SDK's hand-made PpiDataTest: the flag bits.
    let s: Vec<PpiSample> = decode_ppi(&hex(&["80 80 80 80 80 FF 00 01 00 01 00 00"])).unwrap().collect();
    assert_eq!((s[0].interval_ms, s[0].invalid(), s[1].interval_ms, s[1].contact()), (32896, true, 1, None));
    assert!(decode_ppi(&[1, 2, 3]).is_err());
}

#[test]
fn malformed_frames_are_named_errors() {
    let layout = Layout { channels: 1, resolution: 14 };
    assert!(parse_frame(&[0; 9]).unwrap_err().to_string().contains("shorter than its 10-byte header"));
    let mut ecg = hex(&ECG_G6);
    ecg.pop();
    let e = decode_samples(&parse_frame(&ecg).unwrap(), layout, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("not a whole number of 3-byte samples"), "{e}");
    let e = decode_samples(&parse_frame(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3]).unwrap(), layout, &mut Vec::new());
    assert!(e.unwrap_err().to_string().contains("ECG frame type 5 is not supported"));
    let e = decode_samples(&parse_frame(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap(), layout, &mut Vec::new());
    assert!(e.unwrap_err().to_string().contains("type 9 frame type 0"));
    assert!(decode_samples(&parse_frame(&[0; 10]).unwrap(), layout, &mut Vec::new()).is_err());
}
