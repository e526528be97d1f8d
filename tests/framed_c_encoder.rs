//! The C encoder of `docs/examples/biofeedd_framed.c` (what firmware authors copy) and the Rust
//! encoder the simulator uses write the same bytes for the same frames, and biofeedd decodes
//! them: compiled with the system C compiler into a temporary directory and run.

use biofeedd::ingest::protocol::framed::{encode_frame, Block, Crc, FramedConfig};
use biofeedd::ingest::protocol::{Decoded, Decoder};
use std::path::Path;
use std::process::Command;

/// The frames the C program's `main` prints, built in Rust.
fn rust_frames() -> Vec<Vec<u8>> {
    let ones = [0x0101i16; 200];
    let zeros = [0i16; 200];
    let i16s = [0, 1, -1, 32767, -32768];
    let i24s = [0, 8_388_607, -8_388_608, -1, 256];
    let i32s = [i32::MIN, i32::MAX, 0, 65536];
    let f32s = [0.0f32, -1.5, 1.2345, 1e-38, f32::MAX, -0.0];
    let frames: Vec<(u16, Vec<Block>, Crc)> = vec![
        (42, vec![Block::i16(0, 1000, &[100, -100])], Crc::Crc16),
        (0, vec![Block::i16(0, 0, &i16s)], Crc::Crc16),
        (1, vec![Block::i24(1, u32::MAX, &i24s), Block::i32(2, 100, &i32s)], Crc::Crc32),
        (65535, vec![Block::f32(3, 7, &f32s), Block::i16(200, 0, &[])], Crc::Crc16),
        (2, vec![], Crc::Crc32),
        (513, vec![Block::i16(255, 123_456, &ones), Block::i16(0, 0, &zeros)], Crc::Crc32),
        (3, vec![Block::i16(9, 1, &ones[..127])], Crc::Crc16),
    ];
    frames
        .iter()
        .map(|(seq, blocks, crc)| {
            let mut out = Vec::new();
            encode_frame(*seq, blocks, *crc, &mut out);
            out
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_c_encoder_writes_the_same_bytes_as_the_rust_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("biofeedd_framed");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/biofeedd_framed.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-DBIOFEEDD_FRAMED_MAIN", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e}"));
    assert!(built.status.success(), "C compile failed:\n{}", String::from_utf8_lossy(&built.stderr));
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let printed = String::from_utf8(run.stdout).unwrap();
    let c_lines: Vec<&str> = printed.lines().collect();
    let rust = rust_frames();
    assert_eq!(c_lines.len(), rust.len());
    for (k, (c, r)) in c_lines.iter().zip(&rust).enumerate() {
        assert_eq!(*c, hex(r), "frame {k}");
    }
    // The worked example of docs/serial-protocol.md.
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/serial-protocol.md")).unwrap();
    let spaced: Vec<String> = rust[0].iter().map(|b| format!("{b:02x}")).collect();
    assert!(doc.contains(&spaced.join(" ")), "the doc's worked example is the first frame: {}", spaced.join(" "));
}

#[test]
fn biofeedd_decodes_every_frame_of_the_c_program() {
    let cfg = FramedConfig::plain(&[0, 1, 2, 3, 9, 255], 100.0);
    let decoded: Vec<Decoded> = rust_frames()
        .iter()
        .map(|f| {
            let mut d = cfg.decoder();
            let mut out = Decoded::new(6);
            d.push(&[0], &mut out);
            d.push(f, &mut out);
            d.finish(&mut out);
            assert_eq!(out.decode_errors, 0);
            out
        })
        .collect();
    assert_eq!(decoded[0].channels[0].values, [100.0, -100.0]);
    assert_eq!(decoded[1].channels[0].values, [0.0, 1.0, -1.0, 32767.0, -32768.0]);
    assert_eq!(decoded[2].channels[1].values, [0.0, 8_388_607.0, -8_388_608.0, -1.0, 256.0]);
    assert_eq!(decoded[2].channels[2].values, [i32::MIN as f32, i32::MAX as f32, 0.0, 65536.0]);
    assert_eq!(decoded[3].channels[3].values, [0.0, -1.5, 1.2345, 1e-38, f32::MAX, -0.0]);
    assert_eq!(decoded[4].sample_count(), 0);
    assert_eq!(decoded[5].channels[5].values, [257.0; 200]);
    assert_eq!(decoded[6].channels[4].values.len(), 127);
}
