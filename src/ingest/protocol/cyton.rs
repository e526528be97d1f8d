//! OpenBCI Cyton over its USB dongle: 33-byte packets at 250 Hz.
//!
//! A packet is `A0`, a sample counter (u8, wrapping), 8 × 24-bit signed big-endian EEG counts,
//! 6 aux bytes and a footer `C0`–`CF` (high nibble `C`). Counts become µV as
//! `counts × 4.5 V / gain / (2^23 − 1) × 1e6`. With footer `C0` the aux bytes are the
//! accelerometer (3 × i16 big-endian, 0.002/16 g per count) in about one packet of ten (25 Hz);
//! all-zero aux means no new accelerometer sample.
//!
//! **Synchronisation.** `A0 … Cx` alone does not make a packet: a board/radio firmware mismatch
//! sends frames that are `A0 41 counter …` (`0x41` is the board's own header, left untranslated),
//! which pass that test (see `tests/data/serial/cyton-packets.txt`, items C and D). So the
//! decoder *acquires* sync only on two back-to-back packets whose counters are consecutive; the
//! first is held until its successor confirms it (one packet of latency, only while acquiring).
//! Once locked, each 33 bytes with a valid header and footer whose counter continues is a packet;
//! a counter jump must be confirmed the same way by the next packet, and then a jump of k > 1 is
//! k − 1 lost samples (a repeated counter is a decode error and is dropped). A frame with a bad
//! header or footer, or a jump that its successor does not confirm, loses the lock: one decode error per such resync episode, then the
//! decoder scans forward to the next `A0` and acquires again. At the start of a connection the
//! bytes of a partial packet (fewer than 33 skipped) are not an error; the transport removes the
//! banner (up to [`end_of_banner`]) before feeding packets.
//!
//! Sample indices: EEG index = packets since the first one, from the counter's unwrapped steps;
//! accelerometer index = EEG index / 10.

mod config;
#[cfg(test)]
mod tests;

pub use config::{CytonChannel, CytonConfig, Gain, GAINS};

use super::{Decoded, Decoder};
use crate::signal::ChannelSpec;

/// Bytes of one packet.
pub const PACKET_LEN: usize = 33;
/// Packets (EEG samples) per second.
pub const RATE_HZ: f64 = 250.0;
/// Accelerometer samples per second.
pub const ACCEL_RATE_HZ: f64 = 25.0;
/// g per accelerometer count (±4 g range).
pub const G_PER_COUNT: f64 = 0.002 / 16.0;
/// Soft reset: the board answers with its banner, ending in `$$$`.
pub const RESET: &[u8] = b"v";
/// Start streaming packets.
pub const START: &[u8] = b"b";
/// Stop streaming.
pub const STOP: &[u8] = b"s";
/// The banner a v3.1.1 board sends after [`RESET`], for simulators.
pub const SIMULATED_BANNER: &[u8] =
    b"OpenBCI V3 8-16 channel\nOn Board ADS1299 Device ID: 0x3E\nLIS3DH Device ID: 0x33\nFirmware: v3.1.1\n$$$";
/// The header byte of every packet.
pub const HEADER: u8 = 0xA0;
/// Largest stretch of bytes held between calls; keeps memory fixed whatever arrives.
const STASH: usize = 4096;

/// Index just past the first `$$$` (the end of the banner or of any text reply) in `buf`.
pub fn end_of_banner(buf: &[u8]) -> Option<usize> {
    buf.windows(3).position(|w| w == b"$$$").map(|i| i + 3)
}

/// µV per ADC count at `gain`.
pub fn microvolts_per_count(gain: f64) -> f64 {
    4.5 / gain / 8_388_607.0 * 1e6
}

/// The nearest 24-bit count for `microvolts` at `gain`, saturating at the rails (NaN → 0).
pub fn microvolts_to_counts(microvolts: f64, gain: f64) -> i32 {
    (microvolts / microvolts_per_count(gain)).round().clamp(-8_388_608.0, 8_388_607.0) as i32
}

/// Append one packet as the dongle sends it. Counts are clipped to 24 bits by taking their low
/// 24 bits (callers use [`microvolts_to_counts`], which saturates).
pub fn encode_packet(counter: u8, eeg_counts: [i32; 8], aux: [u8; 6], footer: u8, out: &mut Vec<u8>) {
    out.push(HEADER);
    out.push(counter);
    for c in eeg_counts {
        out.extend_from_slice(&c.to_be_bytes()[1..]);
    }
    out.extend_from_slice(&aux);
    out.push(footer);
}

impl CytonConfig {
    /// A fresh decoder for one connection.
    pub fn decoder(&self) -> CytonDecoder {
        CytonDecoder {
            specs: self.specs(),
            sync: Sync {
                factors: self.factors(),
                accelerometer: self.accelerometer,
                locked: false,
                locked_once: false,
                episode_counted: false,
                skipped: 0,
                last: None,
            },
            stash: vec![0; STASH].into_boxed_slice(),
            held: 0,
        }
    }
}

/// Decodes Cyton packets; see the module docs.
pub struct CytonDecoder {
    specs: Vec<ChannelSpec>,
    sync: Sync,
    /// Bytes not yet decided: a partial packet, or a candidate awaiting its successor.
    stash: Box<[u8]>,
    held: usize,
}

/// Framing state and the per-channel scale, apart from the stash so both can be borrowed.
struct Sync {
    factors: Vec<(usize, f64)>,
    accelerometer: bool,
    locked: bool,
    locked_once: bool,
    /// This resync episode has been counted as a decode error.
    episode_counted: bool,
    /// Bytes skipped in this episode.
    skipped: usize,
    /// Counter and index of the last accepted packet.
    last: Option<(u8, u64)>,
}

fn framed(p: &[u8]) -> bool {
    p[0] == HEADER && p[PACKET_LEN - 1] >> 4 == 0xC
}

impl Sync {
    /// Decode what `data` holds; returns the bytes consumed. What is left (under two packets)
    /// waits for more bytes.
    fn scan(&mut self, data: &[u8], out: &mut Decoded) -> usize {
        let mut i = 0;
        while data.len() - i >= PACKET_LEN {
            let p = &data[i..i + PACKET_LEN];
            if !framed(p) {
                self.lose_lock(out);
                let next = data[i + 1..].iter().position(|&b| b == HEADER).map_or(data.len() - i, |k| k + 1);
                let step = next.min(data.len() - i - PACKET_LEN + 1);
                self.skip(step, out);
                i += step;
                continue;
            }
            if self.locked && self.last.is_some_and(|(c, _)| p[1] == c.wrapping_add(1)) {
                self.accept(p, out);
                i += PACKET_LEN;
                continue;
            }
            // Acquiring, or a counter jump while locked: the successor must confirm the packet.
            if data.len() - i < 2 * PACKET_LEN {
                break;
            }
            let q = &data[i + PACKET_LEN..i + 2 * PACKET_LEN];
            if framed(q) && q[1] == p[1].wrapping_add(1) {
                self.locked = true;
                self.locked_once = true;
                self.episode_counted = false;
                self.skipped = 0;
                self.accept(p, out);
                self.accept(q, out);
                i += 2 * PACKET_LEN;
            } else {
                self.lose_lock(out);
                self.skip(1, out);
                i += 1;
            }
        }
        i
    }

    /// A frame that is no packet, or a jump its successor does not confirm, while locked.
    fn lose_lock(&mut self, out: &mut Decoded) {
        if self.locked {
            self.locked = false;
            self.episode_counted = true;
            self.skipped = 0;
            out.decode_errors += 1;
        }
    }

    fn skip(&mut self, n: usize, out: &mut Decoded) {
        self.skipped = self.skipped.saturating_add(n);
        if !self.episode_counted && (self.locked_once || self.skipped >= PACKET_LEN) {
            self.episode_counted = true;
            out.decode_errors += 1;
        }
    }

    fn accept(&mut self, p: &[u8], out: &mut Decoded) {
        let counter = p[1];
        let index = match self.last {
            None => 0,
            Some((prev, prev_index)) => {
                let step = counter.wrapping_sub(prev);
                if step == 0 {
                    out.decode_errors += 1;
                    return;
                }
                out.lost_samples += u64::from(step - 1);
                prev_index + u64::from(step)
            }
        };
        self.last = Some((counter, index));
        let n = self.factors.len();
        for (&(at, factor), samples) in self.factors.iter().zip(&mut out.channels) {
            let counts = i32::from_be_bytes([p[at], p[at + 1], p[at + 2], 0]) >> 8;
            samples.push(index, (f64::from(counts) * factor) as f32);
        }
        let aux = &p[26..32];
        if self.accelerometer && p[32] == 0xC0 && aux.iter().any(|&b| b != 0) {
            for (axis, samples) in aux.chunks_exact(2).zip(&mut out.channels[n..]) {
                let counts = i16::from_be_bytes([axis[0], axis[1]]);
                samples.push(index / 10, (f64::from(counts) * G_PER_COUNT) as f32);
            }
        }
    }
}

impl Decoder for CytonDecoder {
    fn specs(&self) -> &[ChannelSpec] {
        &self.specs
    }

    fn push(&mut self, bytes: &[u8], out: &mut Decoded) {
        out.fit(self.specs.len());
        let mut input = bytes;
        loop {
            let take = input.len().min(STASH - self.held);
            self.stash[self.held..self.held + take].copy_from_slice(&input[..take]);
            self.held += take;
            input = &input[take..];
            let used = self.sync.scan(&self.stash[..self.held], out);
            self.stash.copy_within(used..self.held, 0);
            self.held -= used;
            if input.is_empty() {
                break;
            }
        }
    }

    fn finish(&mut self, out: &mut Decoded) {
        if self.held > 0 {
            out.decode_errors += 1;
            self.held = 0;
        }
        self.sync.locked = false;
    }

    fn reset(&mut self) {
        self.held = 0;
        let s = &mut self.sync;
        (s.locked, s.locked_once, s.episode_counted, s.skipped, s.last) = (false, false, false, 0, None);
    }
}
