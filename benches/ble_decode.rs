//! BLE decode cost, in samples/s (criterion's elements): real notifications through the
//! `Assembler` the live source and the capture replay share (parse, decode, time, scale). Run:
//! `cargo bench --bench ble_decode`.
//!
//! - H10 ECG: ECG-G6 of VECTORS.md (a real 229-byte notification, 73 samples), restamped as a
//!   continuing stream.
//! - Verity Sense ACC, delta-compressed: ACC-1 (polar-ble-sdk issue #443, 58 samples × 3 axes).
//! - Heart Rate Measurement: HRS-4b (three RR intervals).

use biofeedd::ingest::protocol::ble::stream::{Assembler, Gatt, StreamKind, StreamSpec, TimeBase, Timed};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

fn ecg_frame() -> Vec<u8> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ble/h10-ecg-gatttool.hex")).unwrap();
    let line = text.lines().filter(|l| !l.starts_with('#')).nth(5).expect("six frames");
    (0..line.len()).step_by(2).map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap()).collect()
}

const ACC_1: &str = "02 00 41 6F C4 12 45 93 0A 81 EE 02 1F FE 82 FF 08 0A 10 DA 20 D6 A3 0B D9 CB E7 D6 F6 C4 E6 F1 \
E1 F3 E0 15 1A FE 28 1B F8 37 2C 25 20 13 19 11 0A 2F ED 4F C0 7E F4 E9 BB 6E 80 0D C8 2F B0 3E \
14 D1 AF B0 7F 16 C4 CC 20 87 34 03 54 12 8B FF 8D 00 C1 42 FB E6 D3 DF B5 E1 91 53 2F BE F9 ED \
43 B0 3E FD DB 9B 90 3D F5 03 60 5F 7B FA D9 DF AE 00 0B 24 64 70 40 12 CC CF BF 04 E4 C5 33 B0 \
38 08 41 80 EF C2 12 EC 17 81 46 FD FE 5B B0 01 F3 D1 D7 6F 81 FF CD 7B 0F C2 01 36 60 7F 43 D3 \
5F 3F 3F 78 CB 06 48 4E FF 00 0E FC 82 05 51 AB 55 E3 4A 2D 1D 0C 5F BD E8 58 73 4D BD EB A0 67 \
51 02 0C C4 70 41 CA 26 7F A0 02 89 19 FE 3F 5F 74 E7 22 44 20 3F 15 66 B0 52 4D 05 5C A4 1F BE \
E9 68 00";

/// `frames` notifications of `frame`, timestamps advanced by `step_ns`, through a fresh
/// assembler; returns the samples decoded.
fn run(kind: StreamKind, source: Gatt, frame: &[u8], frames: u64, step_ns: u64, timed: bool) -> usize {
    let spec = StreamSpec {
        rate_hz: if kind == StreamKind::Acc { 52.0 } else { StreamSpec::default_for(kind).rate_hz },
        ..StreamSpec::default_for(kind)
    };
    let mut a = Assembler::new(&[spec], TimeBase::Arrival);
    let mut out = Timed::default();
    let mut frame = frame.to_vec();
    let first = if timed { u64::from_le_bytes(frame[1..9].try_into().unwrap()) } else { 0 };
    let mut samples = 0;
    for k in 0..frames {
        if timed {
            frame[1..9].copy_from_slice(&(first + k * step_ns).to_le_bytes());
        }
        out.clear();
        a.push(source, black_box(&frame), 1.7e9 + k as f64 * step_ns as f64 / 1e9, &mut out);
        samples += out.values.len();
    }
    black_box(&out);
    samples
}

/// (name, stream, characteristic, notification, ns between notifications, stamped frames).
type Case = (&'static str, StreamKind, Gatt, Vec<u8>, u64, bool);

fn ble_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ble_decode");
    let cases: [Case; 3] = [
        ("h10_ecg", StreamKind::Ecg, Gatt::PmdData, ecg_frame(), 561_347_000, true),
        ("verity_acc_delta", StreamKind::Acc, Gatt::PmdData, hex(ACC_1), 1_115_000_000, true),
        ("hrs_rr", StreamKind::Hr, Gatt::HeartRate, hex("16 78 FF 01 FF 01 0C 01"), 1_000_000_000, false),
    ];
    for (name, kind, source, frame, step, timed) in cases {
        let frames = 1000;
        let samples = run(kind, source, &frame, frames, step, timed);
        assert!(samples > 0, "{name} decodes");
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function(name, |b| b.iter(|| run(kind, source, &frame, frames, step, timed)));
    }
    group.finish();
}

criterion_group!(benches, ble_decode);
criterion_main!(benches);
