//! The assembler against real notification bytes (VECTORS.md, named in each test).

use super::*;
use crate::ingest::protocol::ble::pmd::control;
use crate::ingest::protocol::ble::pmd::tests::{hex, ECG_G6};

/// ECG_G6 with its timestamp moved to `ns`.
fn ecg_frame(ns: u64) -> Vec<u8> {
    let mut b = hex(&ECG_G6);
    b[1..9].copy_from_slice(&ns.to_le_bytes());
    b
}

#[test]
fn ecg_frames_become_chunks_ending_at_their_timestamp() {
    let mut a = Assembler::new(&[StreamSpec::default_for(StreamKind::Ecg)], TimeBase::Sensor);
    let mut out = Timed::default();
    let ts = 599_622_176_564_550_314u64;
    a.push(Gatt::PmdData, &ecg_frame(ts), 0.0, &mut out);
    assert_eq!(out.chunks.len(), 1);
    let c = out.chunks[0];
    assert_eq!((c.channel, c.len), (0, 73));
    let last = pmd::EPOCH_UNIX_S + ts as f64 / 1e9;
    assert!((c.time + 72.0 / 130.0 - last).abs() < 1e-6);
    assert_eq!(out.values_of(&c)[0], 117.0 * 1e-3);
    // A frame two frames later: one frame (73 samples) was lost.
    out.clear();
    a.push(Gatt::PmdData, &ecg_frame(ts + 2 * 561_538_461), 0.0, &mut out);
    assert_eq!(out.lost_samples, 73);
    // The same timestamp again is an error, not a sample.
    out.clear();
    a.push(Gatt::PmdData, &ecg_frame(ts + 2 * 561_538_461), 0.0, &mut out);
    assert_eq!((out.decode_errors, out.chunks.len()), (1, 0));
    assert!(out.errors[0].contains("not after the previous frame"), "{:?}", out.errors);
}

#[test]
fn control_responses_battery_and_heart_rate() {
    let streams = [StreamSpec::default_for(StreamKind::Hr), StreamSpec::default_for(StreamKind::Ppg)];
    let mut a = Assembler::new(&streams, TimeBase::Arrival);
    assert_eq!(a.specs().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["hr", "rr", "ppg", "ppg_ambient"]);
    let mut out = Timed::default();
    a.push(Gatt::PmdControl, &[0xF0, 0x02, 0x01, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x40], 0.0, &mut out);
    assert_eq!(
        out.responses,
        [ControlAnswer { op: control::Op::Start, measurement: 1, result: Ok(()), offered: None }]
    );
    a.push(Gatt::PmdControl, &[0xF0, 0x02, 0x00, 0x05, 0x00], 0.0, &mut out);
    assert!(out.responses[1].result.is_err());
    a.push(Gatt::Battery, &[0x5A], 0.0, &mut out);
    assert_eq!(out.battery, Some(90));
    a.push(Gatt::HeartRate, &[0x16, 0x4D, 0x16, 0x03], 1234.5, &mut out);
    // The heart rate at the arrival; the RR interval (790/1024 s) ends at the beat just then.
    assert_eq!(
        out.chunks,
        [
            TimedChunk { channel: 0, time: 1234.5, start: 0, len: 1 },
            TimedChunk { channel: 1, time: 1234.5, start: 1, len: 1 }
        ]
    );
    assert_eq!(out.values, [77.0, 790.0 * 1000.0 / 1024.0]);
    // The PPG factor 2.0 of the start response above scales the samples.
    out.clear();
    let mut frame = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    frame.extend(hex(&["01 00 00 02 00 00 03 00 00 07 00 00"]));
    frame[1] = 1;
    out.clear();
    a.push(Gatt::PmdData, &frame, 10.0, &mut out);
    assert_eq!(out.values, [4.0, 14.0]);
    a.push(Gatt::HeartRate, &[0x01], 0.0, &mut out);
    assert_eq!(out.decode_errors, 1);
}

#[test]
fn beat_intervals_get_increasing_times_that_follow_the_arrivals() {
    // PPI-1 and PPI-2 of VECTORS.md (Verity Sense, polar-ble-sdk issue #311): five intervals
    // each, the second frame arriving when its last beat ends.
    let mut a = Assembler::new(&[StreamSpec::default_for(StreamKind::Ppi)], TimeBase::Arrival);
    let ppi = |payload: &str| {
        let mut f = vec![3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        f.extend(hex(&[payload]));
        f
    };
    let mut out = Timed::default();
    a.push(
        Gatt::PmdData,
        &ppi("3C 2C 04 06 00 06 3C 09 04 06 00 06 3C A2 03 07 00 06 3C 82 03 09 00 06 3C 23 04 0A 00 06"),
        100.0,
        &mut out,
    );
    assert_eq!(out.values, [1068.0, 1033.0, 930.0, 898.0, 1059.0]);
    assert!((out.chunks[4].time - 100.0).abs() < 1e-9, "the last beat at the arrival");
    assert!((out.chunks[3].time - (100.0 - 1.059)).abs() < 1e-9);
    let mut times: Vec<f64> = out.chunks.iter().map(|c| c.time).collect();
    out.clear();
    // 50 ms late: the clock is pulled 5 ms toward it, the beats keep their spacing.
    a.push(
        Gatt::PmdData,
        &ppi("39 8D 04 09 00 06 39 5B 04 07 00 06 39 FB 03 07 00 06 39 29 04 07 00 06 39 34 04 06 00 06"),
        105.49,
        &mut out,
    );
    times.extend(out.chunks.iter().map(|c| c.time));
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    assert!((times[5] - (100.0 + 0.005 + 1.165)).abs() < 1e-9, "{times:?}");
    // A frame arriving minutes later (lost notifications) re-anchors at its arrival.
    out.clear();
    a.push(Gatt::PmdData, &ppi("3B C2 03 07 00 06"), 400.0, &mut out);
    assert!((out.chunks[0].time - 400.0).abs() < 1e-9);
    // An interval flagged invalid is left out.
    out.clear();
    a.push(Gatt::PmdData, &ppi("3B C2 03 07 00 07"), 401.0, &mut out);
    assert!(out.chunks.is_empty());
}

#[test]
fn a_wrong_configured_rate_is_noted_once() {
    // Frames of 73 samples every 0.5615 s are 130 Hz; configured 135 Hz.
    let spec = StreamSpec { rate_hz: 135.0, ..StreamSpec::default_for(StreamKind::Ecg) };
    let mut a = Assembler::new(&[spec], TimeBase::Sensor);
    let mut out = Timed::default();
    let mut notes = Vec::new();
    for k in 0..120u64 {
        a.push(Gatt::PmdData, &ecg_frame(1_000_000_000_000 + k * 561_538_461), 0.0, &mut out);
        notes.append(&mut out.notes);
    }
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("come at 130.0 Hz, not the configured 135 Hz"), "{}", notes[0]);
}

#[test]
fn a_start_request_takes_what_the_sensor_offers() {
    // CP-7: a Verity Sense outside SDK mode offers PPG at 135 Hz only, 22 bit, 4 channels.
    let r = control::parse_response(&[
        0xF0, 0x01, 0x01, 0x00, 0x00, 0x00, 0x01, 0x87, 0x00, 0x01, 0x01, 0x16, 0x00, 0x04, 0x01, 0x04,
    ])
    .unwrap();
    let offered = r.settings().unwrap();
    let ppg = StreamSpec::default_for(StreamKind::Ppg);
    let (request, note) = ppg.start_request(Some(&offered)).unwrap();
    // CP-8's request, byte for byte.
    assert_eq!(request, [0x02, 0x01, 0x00, 0x01, 0x87, 0x00, 0x01, 0x01, 0x16, 0x00, 0x04, 0x01, 0x04]);
    let note = note.unwrap();
    assert!(note.contains("rate 55 → 135") && note.contains("timed at 55 Hz"), "{note}");
    // CP-3: an H10 offers ECG at 130 Hz, 14 bit: the configured values stand, no note.
    let r = control::parse_response(&[0xF0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00])
        .unwrap();
    let (request, note) = StreamSpec::default_for(StreamKind::Ecg).start_request(Some(&r.settings().unwrap())).unwrap();
    assert_eq!((request, note), (vec![0x02, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00], None));
    assert_eq!(StreamSpec::default_for(StreamKind::Ppi).start_request(None).unwrap().0, [0x02, 0x03]);
    assert!(StreamSpec::default_for(StreamKind::Hr).start_request(None).is_none());
}
