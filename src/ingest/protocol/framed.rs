//! biofeedd's framed binary protocol for custom firmware; `docs/serial-protocol.md` is its
//! specification, written so a firmware author needs nothing else.
//!
//! On the wire each frame is COBS-encoded and followed by a 0x00. Decoded, a frame is: version
//! (1), flags (bit 0: CRC-32 instead of CRC-16), sequence (u16 LE), block count, then per block
//! channel id, sample type (i16, i24, i32, f32; little-endian), sample count and the first
//! sample's device index (u32 LE, wrapping), the samples; then the CRC (LE) of all before it.
//!
//! A frame that is not valid COBS, longer than [`MAX_FRAME`], of another version, with reserved
//! flags set, a CRC other than the configured one, a wrong CRC, or blocks that do not fill it
//! exactly, is one decode error and is dropped whole; decoding resumes after the next 0x00. The
//! bytes before a connection's first 0x00 are dropped without an error when they do not decode
//! (the port may open mid-frame). Blocks of ids the config does not name are skipped without an
//! error (firmware may send more than a config keeps). Each channel's sample index follows its
//! blocks' first indices: a jump of n is n lost samples for that channel, and a frame adds the
//! largest jump of its blocks to [`Decoded::lost_samples`]. A block whose first index goes back
//! (a device restart) is a decode error and is dropped; the channel continues from it. Non-finite
//! f32 samples are dropped, which leaves a one-sample gap in the run.

mod config;
#[cfg(test)]
mod tests;
mod wire;

pub use config::{FramedChannel, FramedConfig};
pub use wire::{
    cobs_decode, cobs_encode, encode_frame, frame_len, sample_size, Block, Crc, Samples, BLOCK_HEADER, FLAG_CRC32,
    FRAME_HEADER, MAX_BLOCK_SAMPLES, MAX_ENCODED, MAX_FRAME, VERSION,
};

use super::delimited::Delimited;
use super::{Decoded, Decoder};
use crate::signal::ChannelSpec;

const NO_SLOT: u16 = u16::MAX;

impl FramedConfig {
    /// A fresh decoder for one connection.
    pub fn decoder(&self) -> FramedDecoder {
        let mut slot = Box::new([NO_SLOT; 256]);
        for (k, c) in self.channels.iter().enumerate() {
            slot[usize::from(c.id)] = k as u16;
        }
        FramedDecoder {
            specs: self.specs(),
            frames: Delimited::new(0, MAX_ENCODED),
            parser: FrameParser {
                crc: self.crc,
                scale: self.channels.iter().map(|c| (c.scale, c.offset)).collect(),
                slot,
                frame: Vec::with_capacity(MAX_ENCODED),
                next: vec![None; self.channels.len()],
            },
        }
    }
}

/// Decodes framed-protocol frames; see the module docs.
pub struct FramedDecoder {
    specs: Vec<ChannelSpec>,
    /// COBS-encoded frames between 0x00 delimiters.
    frames: Delimited,
    parser: FrameParser,
}

/// What reads one frame, apart from the frame assembly so both can be borrowed.
struct FrameParser {
    crc: Option<Crc>,
    /// (scale, offset) per channel.
    scale: Vec<(f64, f64)>,
    /// Channel position of each id, or [`NO_SLOT`].
    slot: Box<[u16; 256]>,
    /// The current frame, COBS-decoded.
    frame: Vec<u8>,
    /// Per channel: the next device index expected, and the sample index it maps to.
    next: Vec<Option<(u32, u64)>>,
}

impl FrameParser {
    fn decode(&mut self, encoded: &[u8], first: bool, out: &mut Decoded) {
        if encoded.is_empty() {
            return; // back-to-back delimiters: idle, or a sender's resync
        }
        let mut frame = std::mem::take(&mut self.frame);
        match cobs_decode(encoded, &mut frame).and_then(|()| self.check(&frame)) {
            Some(body) => self.emit(&frame[..body], out),
            None if first => {}
            None => out.decode_errors += 1,
        }
        self.frame = frame;
    }

    /// The length of the frame without its CRC, if the frame is well formed.
    fn check(&self, frame: &[u8]) -> Option<usize> {
        if frame.len() < FRAME_HEADER + 2 || frame.len() > MAX_FRAME || frame[0] != VERSION {
            return None;
        }
        if frame[1] & !FLAG_CRC32 != 0 {
            return None;
        }
        let crc = if frame[1] & FLAG_CRC32 != 0 { Crc::Crc32 } else { Crc::Crc16 };
        if self.crc.is_some_and(|want| want != crc) || frame.len() < FRAME_HEADER + crc.size() {
            return None;
        }
        let body = frame.len() - crc.size();
        if crc.of(&frame[..body])[..crc.size()] != frame[body..] {
            return None;
        }
        let mut at = FRAME_HEADER;
        for _ in 0..frame[4] {
            if at + BLOCK_HEADER > body {
                return None;
            }
            at += BLOCK_HEADER + sample_size(frame[at + 1])? * usize::from(frame[at + 2]);
        }
        (at == body).then_some(body)
    }

    /// Samples of a checked frame body.
    fn emit(&mut self, body: &[u8], out: &mut Decoded) {
        let mut gap = 0u64;
        let mut at = FRAME_HEADER;
        for _ in 0..body[4] {
            let (id, code, count) = (body[at], body[at + 1], usize::from(body[at + 2]));
            let first = u32::from_le_bytes([body[at + 3], body[at + 4], body[at + 5], body[at + 6]]);
            let size = sample_size(code).unwrap_or(4);
            let data = &body[at + BLOCK_HEADER..at + BLOCK_HEADER + size * count];
            at += BLOCK_HEADER + size * count;
            let slot = self.slot[usize::from(id)];
            if slot == NO_SLOT {
                continue;
            }
            let slot = usize::from(slot);
            let index = match self.next[slot] {
                None => 0,
                Some((expected, index)) => {
                    let jump = first.wrapping_sub(expected);
                    if jump >= 1 << 31 {
                        out.decode_errors += 1;
                        self.next[slot] = Some((first.wrapping_add(count as u32), index));
                        continue;
                    }
                    gap = gap.max(u64::from(jump));
                    index + u64::from(jump)
                }
            };
            self.next[slot] = Some((first.wrapping_add(count as u32), index + count as u64));
            let (scale, offset) = self.scale[slot];
            let samples = &mut out.channels[slot];
            // Integers scale to finite values (scale and offset are bounded): a block is one run.
            let scaled = move |raw: f64| (raw * scale + offset) as f32;
            match code {
                0 => samples
                    .push_run(index, data.chunks_exact(2).map(|c| scaled(f64::from(i16::from_le_bytes([c[0], c[1]]))))),
                1 => samples.push_run(
                    index,
                    data.chunks_exact(3).map(|c| scaled(f64::from(i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8))),
                ),
                2 => samples.push_run(
                    index,
                    data.chunks_exact(4).map(|c| scaled(f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))),
                ),
                // A float may be NaN or infinite: dropped, leaving a one-sample gap.
                _ => data.chunks_exact(4).enumerate().for_each(|(j, c)| {
                    let v = scaled(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                    if v.is_finite() {
                        samples.push(index + j as u64, v);
                    }
                }),
            }
        }
        out.lost_samples += gap;
    }
}

impl Decoder for FramedDecoder {
    fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    fn push(&mut self, bytes: &[u8], out: &mut Decoded) {
        out.fit(self.specs.len());
        let parser = &mut self.parser;
        self.frames.push(bytes, out, |frame, first, out| parser.decode(frame, first, out));
    }

    fn finish(&mut self, out: &mut Decoded) {
        if self.frames.finish(|_| true) {
            out.decode_errors += 1;
        }
    }

    fn reset(&mut self) {
        self.frames.reset();
        self.parser.next.iter_mut().for_each(|n| *n = None);
    }
}
