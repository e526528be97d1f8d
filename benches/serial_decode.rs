//! Serial decode throughput per protocol, in samples/s (criterion's elements), on a minute of
//! realistic stream made with each protocol's encoder and fed in 4 KiB reads as a serial port
//! delivers them. Run: `cargo bench --bench serial_decode` (targets: ≥ 100 M samples/s for
//! Cyton and framed, ≥ 20 M for line).

use biofeedd::ingest::protocol::cyton::{self, CytonConfig, Gain};
use biofeedd::ingest::protocol::framed::{self, Block, Crc, FramedConfig};
use biofeedd::ingest::protocol::line::{self, LineConfig, Separator};
use biofeedd::ingest::protocol::{Decoded, Decoder};
use biofeedd::signal::{ChannelSpec, Modality};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const SECONDS: usize = 60;
const RATE: usize = 250;

/// A plausible EEG-like value of channel `c` at sample `k`, in µV.
fn wave(c: usize, k: usize) -> f64 {
    let t = k as f64 / RATE as f64;
    40.0 * (2.0 * std::f64::consts::PI * (10.0 + c as f64) * t).sin() + 5.0 * ((k * 7919 + c * 104_729) % 17) as f64
}

fn cyton_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for k in 0..SECONDS * RATE {
        let counts: [i32; 8] = std::array::from_fn(|c| cyton::microvolts_to_counts(wave(c, k), 24.0));
        let aux = if k % 10 == 9 { [0, 64, 0, 32, 0x1f, 0x40] } else { [0; 6] };
        cyton::encode_packet(k as u8, counts, aux, 0xC0, &mut out);
    }
    out
}

fn framed_stream() -> Vec<u8> {
    let mut out = vec![0];
    let per_frame = RATE / 25;
    let mut samples = vec![[0i32; 10]; 8];
    for f in 0..SECONDS * 25 {
        for (c, s) in samples.iter_mut().enumerate() {
            for (j, v) in s.iter_mut().enumerate() {
                *v = (wave(c, f * per_frame + j) / 0.0223).round() as i32;
            }
        }
        let blocks: Vec<Block> =
            samples.iter().enumerate().map(|(c, s)| Block::i24(c as u8, (f * per_frame) as u32, s)).collect();
        framed::encode_frame(f as u16, &blocks, Crc::Crc16, &mut out);
    }
    out
}

fn line_stream() -> Vec<u8> {
    // A newline first, as a sketch prints on start: the bytes before it are a partial line.
    let mut out = b"\n".to_vec();
    for k in 0..SECONDS * RATE {
        let values: Vec<f64> = (0..3).map(|c| (wave(c, k) * 1000.0).round() / 1000.0).collect();
        line::encode_line(k as u64 % 256, &values, Separator::Comma, &mut out);
    }
    out
}

/// (samples, decode errors) of the whole stream.
fn decode_all(decoder: &mut dyn Decoder, stream: &[u8], out: &mut Decoded) -> (usize, u64) {
    decoder.reset();
    let (mut samples, mut errors) = (0, 0);
    for read in stream.chunks(4096) {
        decoder.push(read, out);
        samples += out.sample_count();
        errors += out.decode_errors;
        out.clear();
    }
    decoder.finish(out);
    (samples, errors + out.decode_errors)
}

fn bench(c: &mut Criterion) {
    let specs: Vec<ChannelSpec> =
        (0..3).map(|i| ChannelSpec::new(format!("c{i}"), Modality::Other, "a.u.", RATE as f64)).collect();
    let cases: [(&str, Box<dyn Decoder>, Vec<u8>); 3] = [
        (
            "cyton",
            Box::new(CytonConfig { gain: Gain::All(24), channels: vec![], accelerometer: true }.decoder()),
            cyton_stream(),
        ),
        ("framed", Box::new(FramedConfig::plain(&[0, 1, 2, 3, 4, 5, 6, 7], RATE as f64).decoder()), framed_stream()),
        ("line", Box::new(LineConfig::for_encoder(&specs, Separator::Comma, Some(256)).decoder()), line_stream()),
    ];
    let mut group = c.benchmark_group("serial_decode");
    for (name, mut decoder, stream) in cases {
        let mut out = Decoded::new(decoder.specs().len());
        let (samples, errors) = decode_all(decoder.as_mut(), &stream, &mut out);
        assert_eq!(errors, 0, "{name}: the encoder's stream decodes cleanly");
        assert!(samples >= SECONDS * RATE * 3, "{name}: {samples} samples");
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function(name, |b| b.iter(|| decode_all(decoder.as_mut(), black_box(&stream), &mut out)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
