//! Polar's delta compression of PMD sample frames (frame type bit 7): one reference sample in
//! full, then blocks of bit-packed differences. As Polar's online-measurement document (§4.3)
//! and the SDK describe it:
//!
//! ```text
//! reference: channels × ceil(resolution / 8) bytes, little-endian, signed from bit resolution−1
//! block:     delta_bits (u8) | sample_count (u8) | ceil(delta_bits × channels × count / 8) bytes
//! ```
//! The packed bytes are one LSB-first bit stream; each value is `delta_bits` wide, two's
//! complement, channels interleaved; a sample is the previous one plus its deltas. A frame holds
//! as many blocks as fit (real Verity Sense frames mix 8- and 10-bit blocks), and gives
//! `1 + Σ sample_count` samples.

use super::PmdError;

/// The widest value a channel can hold: deltas and samples are `i32`.
const MAX_BITS: u8 = 32;

/// Decode a compressed payload of `channels` channels at `resolution` bits, appending the
/// samples to `out` channel-interleaved. Returns how many samples were decoded; on an error
/// nothing is appended.
pub fn decode(payload: &[u8], channels: usize, resolution: u8, out: &mut Vec<i32>) -> Result<usize, PmdError> {
    if channels == 0 || channels > super::MAX_CHANNELS || resolution == 0 || resolution > MAX_BITS {
        return Err(PmdError::Format(format!(
            "delta frame with {channels} channels of {resolution} bits (supported: 1–{} channels, 1–{MAX_BITS} bits)",
            super::MAX_CHANNELS
        )));
    }
    let width = usize::from(resolution).div_ceil(8);
    let reference_len = channels * width;
    let Some((reference, mut rest)) = payload.split_at_checked(reference_len) else {
        return Err(PmdError::Format(format!(
            "delta frame of {} bytes is shorter than its {reference_len}-byte reference sample",
            payload.len()
        )));
    };
    let start = out.len();
    let mut current = [0i32; super::MAX_CHANNELS];
    for (c, bytes) in reference.chunks_exact(width).enumerate() {
        current[c] = sign_extend(le_uint(bytes), resolution);
    }
    out.extend_from_slice(&current[..channels]);
    let mut samples = 1;
    while !rest.is_empty() {
        let [bits, count, packed @ ..] = rest else {
            out.truncate(start);
            return Err(PmdError::Format(format!("delta frame ends inside a block header ({} byte left)", rest.len())));
        };
        let (bits, count) = (*bits, usize::from(*count));
        if bits > MAX_BITS {
            out.truncate(start);
            return Err(PmdError::Format(format!("delta block of {bits} bits per value (0–{MAX_BITS})")));
        }
        let need = (usize::from(bits) * channels * count).div_ceil(8);
        let Some((block, after)) = packed.split_at_checked(need) else {
            out.truncate(start);
            return Err(PmdError::Format(format!(
                "delta block of {count} samples × {channels} channels × {bits} bits needs {need} bytes, {} left",
                packed.len()
            )));
        };
        let mut reader = BitReader { bytes: block, bit: 0 };
        for _ in 0..count {
            // A 0-bit block repeats the last sample (the SDK reads it so too).
            if bits > 0 {
                for value in current.iter_mut().take(channels) {
                    // Wrapping: a hostile frame may add past i32; a real one never does.
                    *value = value.wrapping_add(sign_extend(reader.take(bits), bits));
                }
            }
            out.extend_from_slice(&current[..channels]);
        }
        samples += count;
        rest = after;
    }
    Ok(samples)
}

/// Little-endian unsigned integer of up to 4 bytes.
fn le_uint(bytes: &[u8]) -> u32 {
    bytes.iter().rev().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// `value`'s low `bits` bits as a two's-complement number.
pub(super) fn sign_extend(value: u32, bits: u8) -> i32 {
    let shift = 32 - u32::from(bits);
    ((value << shift) as i32) >> shift
}

/// An LSB-first bit stream over bytes.
struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    /// The next `bits` (≤ 32) bits, first bit least significant. The caller checked the length.
    fn take(&mut self, bits: u8) -> u32 {
        let mut value = 0u64;
        let mut got = 0u32;
        while got < u32::from(bits) {
            let byte = self.bytes[self.bit / 8];
            let offset = (self.bit % 8) as u32;
            let n = (8 - offset).min(u32::from(bits) - got);
            let chunk = (u64::from(byte) >> offset) & ((1 << n) - 1);
            value |= chunk << got;
            got += n;
            self.bit += n as usize;
        }
        value as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn polars_worked_example_gives_its_stated_samples() {
        // The old Polar_Measurement_Data_Specification.pdf's delta example (real Verity Sense
        // ACC, 16 bit, 3 channels): reference (−48, 357, 4068), 8-bit deltas; the first two
        // deltas give (−52, 364, 4067) and (−40, 383, 4053). Only two of its 29 deltas are
        // quoted, so the block is cut to those two here.
        let payload = hex("D0 FF 65 01 E4 0F 08 02 FC 07 FF 0C 13 F2");
        let mut out = Vec::new();
        assert_eq!(decode(&payload, 3, 16, &mut out), Ok(3));
        assert_eq!(out, [-48, 357, 4068, -52, 364, 4067, -40, 383, 4053]);
    }

    #[test]
    fn widths_across_byte_boundaries() {
        assert_eq!(sign_extend(0x3FF, 10), -1);
        assert_eq!(sign_extend(0x200, 10), -512);
        assert_eq!(sign_extend(0x1FF, 10), 511);
        assert_eq!(sign_extend(0xFD664B, 22), -170421);
        assert_eq!(sign_extend(0xFFFF_FFFF, 32), -1);
        let mut r = BitReader { bytes: &[0b1010_1100, 0b0000_0011], bit: 0 };
        assert_eq!(r.take(3), 0b100);
        assert_eq!(r.take(10), 0b111_0101);
    }

    #[test]
    fn truncated_and_absurd_blocks_are_errors_that_append_nothing() {
        let mut out = vec![7];
        // 10 bits × 3 channels × 47 samples need 177 bytes; 3 are there.
        let e = decode(&hex("EE 02 1F FE 82 FF 0A 2F 01 02 03"), 3, 16, &mut out).unwrap_err();
        assert!(e.to_string().contains("needs 177 bytes, 3 left"), "{e}");
        assert_eq!(out, [7]);
        // A 0-bit block repeats the reference; 33 bits is no width.
        let mut zero = Vec::new();
        assert_eq!(decode(&hex("EE 02 1F FE 82 FF 00 02"), 3, 16, &mut zero), Ok(3));
        assert_eq!(zero, [750, -481, -126, 750, -481, -126, 750, -481, -126]);
        assert!(decode(&hex("EE 02 1F FE 82 FF 21 01 00 00 00 00 00"), 3, 16, &mut out).is_err());
        assert!(decode(&hex("EE 02 1F FE 82 FF 08"), 3, 16, &mut out).is_err());
        assert!(decode(&hex("EE 02"), 3, 16, &mut out).is_err());
        assert!(decode(&[], 0, 16, &mut out).is_err());
        assert_eq!(out, [7]);
    }
}
