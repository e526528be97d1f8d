//! The framed protocol's wire format: layout constants, CRCs, COBS and the encoder
//! (`docs/serial-protocol.md` is the specification; `docs/examples/biofeedd_framed.c` is the same
//! encoder in C, and a test checks the two agree byte for byte).
//!
//! COBS is written out here (about 30 lines each way) rather than taken from the `cobs` crate:
//! the decoder must work in place on a bounded buffer it owns, and the code reads side by side
//! with the C encoder a firmware author copies.

use serde::Deserialize;

/// The only version this decoder reads.
pub const VERSION: u8 = 1;
/// Flags bit 0: the CRC is CRC-32/ISO-HDLC (else CRC-16/CCITT-FALSE).
pub const FLAG_CRC32: u8 = 0x01;
/// Most samples one block carries (its count is a u8).
pub const MAX_BLOCK_SAMPLES: usize = 255;
/// Longest decoded frame, CRC included; longer frames are decode errors.
pub const MAX_FRAME: usize = 2048;
/// Longest COBS-encoded frame (without its 0x00 delimiter).
pub const MAX_ENCODED: usize = MAX_FRAME + MAX_FRAME / 254 + 1;
/// Version, flags, sequence (2), block count.
pub const FRAME_HEADER: usize = 5;
/// Channel id, sample type, sample count, first sample index (4).
pub const BLOCK_HEADER: usize = 7;

// Slice-by-16 tables (16 × 256 entries, built at compile time): the byte-wise default costs more
// than decoding the samples does.
const CRC16: crc::Crc<u16, crc::Table<16>> = crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_IBM_3740);
const CRC32: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// Which CRC ends a frame. `crc16` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no
/// reflection, no final XOR; check value 0x29B1); `crc32` is CRC-32/ISO-HDLC (the zlib/Ethernet
/// CRC; check value 0xCBF43926).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crc {
    Crc16,
    Crc32,
}

impl Crc {
    /// Bytes the CRC takes at the end of a frame.
    pub fn size(self) -> usize {
        match self {
            Crc::Crc16 => 2,
            Crc::Crc32 => 4,
        }
    }

    pub fn flag(self) -> u8 {
        match self {
            Crc::Crc16 => 0,
            Crc::Crc32 => FLAG_CRC32,
        }
    }

    /// The CRC of `data`, little-endian, as it goes on the wire (2 or 4 bytes used).
    pub fn of(self, data: &[u8]) -> [u8; 4] {
        match self {
            Crc::Crc16 => {
                let [a, b] = CRC16.checksum(data).to_le_bytes();
                [a, b, 0, 0]
            }
            Crc::Crc32 => CRC32.checksum(data).to_le_bytes(),
        }
    }
}

/// The type of a block's samples, all little-endian two's complement or IEEE 754.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Samples<'a> {
    /// Type code 0.
    I16(&'a [i16]),
    /// Type code 1: 3 bytes each; values are taken modulo 2^24 (keep them in −2^23 … 2^23 − 1).
    I24(&'a [i32]),
    /// Type code 2.
    I32(&'a [i32]),
    /// Type code 3.
    F32(&'a [f32]),
}

/// Bytes per sample of type code `code`, or `None` for an unknown code.
pub fn sample_size(code: u8) -> Option<usize> {
    [2, 3, 4, 4].get(usize::from(code)).copied()
}

impl Samples<'_> {
    pub fn len(&self) -> usize {
        match self {
            Samples::I16(s) => s.len(),
            Samples::I24(s) | Samples::I32(s) => s.len(),
            Samples::F32(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn code(&self) -> u8 {
        match self {
            Samples::I16(_) => 0,
            Samples::I24(_) => 1,
            Samples::I32(_) => 2,
            Samples::F32(_) => 3,
        }
    }
}

/// One channel's consecutive samples in a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block<'a> {
    pub channel: u8,
    /// Device sample index of the first sample (wrapping at 2^32).
    pub first_index: u32,
    /// At most [`MAX_BLOCK_SAMPLES`]; the encoder writes no more than that.
    pub samples: Samples<'a>,
}

impl<'a> Block<'a> {
    pub fn i16(channel: u8, first_index: u32, samples: &'a [i16]) -> Self {
        Block { channel, first_index, samples: Samples::I16(samples) }
    }
    pub fn i24(channel: u8, first_index: u32, samples: &'a [i32]) -> Self {
        Block { channel, first_index, samples: Samples::I24(samples) }
    }
    pub fn i32(channel: u8, first_index: u32, samples: &'a [i32]) -> Self {
        Block { channel, first_index, samples: Samples::I32(samples) }
    }
    pub fn f32(channel: u8, first_index: u32, samples: &'a [f32]) -> Self {
        Block { channel, first_index, samples: Samples::F32(samples) }
    }
}

/// Decoded length (CRC included) of a frame of `blocks`; decoders refuse frames over
/// [`MAX_FRAME`].
pub fn frame_len(blocks: &[Block], crc: Crc) -> usize {
    let body: usize = blocks
        .iter()
        .map(|b| BLOCK_HEADER + b.samples.len().min(MAX_BLOCK_SAMPLES) * sample_size(b.samples.code()).unwrap_or(4))
        .sum();
    FRAME_HEADER + body + crc.size()
}

/// Append one frame to `out` as it goes on the wire: COBS-encoded, then a 0x00 delimiter.
/// At most 255 blocks and [`MAX_BLOCK_SAMPLES`] samples per block are written. Returns the
/// decoded length ([`frame_len`]); keep it within [`MAX_FRAME`] or decoders will refuse it.
pub fn encode_frame(sequence: u16, blocks: &[Block], crc: Crc, out: &mut Vec<u8>) -> usize {
    let blocks = &blocks[..blocks.len().min(255)];
    let mut raw = Vec::with_capacity(frame_len(blocks, crc));
    raw.extend_from_slice(&[VERSION, crc.flag()]);
    raw.extend_from_slice(&sequence.to_le_bytes());
    raw.push(blocks.len() as u8);
    for b in blocks {
        let n = b.samples.len().min(MAX_BLOCK_SAMPLES);
        raw.extend_from_slice(&[b.channel, b.samples.code(), n as u8]);
        raw.extend_from_slice(&b.first_index.to_le_bytes());
        match b.samples {
            Samples::I16(s) => s[..n].iter().for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
            Samples::I24(s) => s[..n].iter().for_each(|v| raw.extend_from_slice(&v.to_le_bytes()[..3])),
            Samples::I32(s) => s[..n].iter().for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
            Samples::F32(s) => s[..n].iter().for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        }
    }
    let sum = crc.of(&raw);
    raw.extend_from_slice(&sum[..crc.size()]);
    cobs_encode(&raw, out);
    out.push(0);
    raw.len()
}

/// Append the COBS encoding of `data` (no zero byte in the output, no delimiter).
pub fn cobs_encode(data: &[u8], out: &mut Vec<u8>) {
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for (k, &b) in data.iter().enumerate() {
        if b != 0 {
            out.push(b);
            code += 1;
        }
        if b == 0 || code == 0xFF {
            out[code_at] = code;
            code = 1;
            if b != 0 && k + 1 == data.len() {
                // A full block ends the data: no trailing code byte (canonical COBS).
                return;
            }
            code_at = out.len();
            out.push(0);
        }
    }
    out[code_at] = code;
}

/// Decode one COBS-encoded frame (without its delimiter) into `out` (cleared first). `None` if
/// it is not valid COBS (a zero byte, or a code running past the end).
pub fn cobs_decode(data: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut i = 0;
    while i < data.len() {
        let code = usize::from(data[i]);
        if code == 0 || i + code > data.len() {
            return None;
        }
        let run = &data[i + 1..i + code];
        if run.contains(&0) {
            return None;
        }
        out.extend_from_slice(run);
        i += code;
        if code < 0xFF && i < data.len() {
            out.push(0);
        }
    }
    Some(())
}
