//! Test helpers shared by the decoders' tests.

use super::{Decoded, Decoder};
use proptest::sample::Index;

/// Everything `decoder` makes of `bytes` in one push, then finish.
pub(crate) fn decode_whole(mut decoder: impl Decoder, bytes: &[u8]) -> Decoded {
    let mut out = Decoded::new(decoder.specs().len());
    decoder.push(bytes, &mut out);
    decoder.finish(&mut out);
    out
}

/// The same, with `bytes` cut at the points `splits` pick.
pub(crate) fn decode_in_chunks(mut decoder: impl Decoder, bytes: &[u8], splits: &[Index]) -> Decoded {
    let mut cuts: Vec<usize> = splits.iter().map(|s| s.index(bytes.len() + 1)).collect();
    cuts.sort();
    let mut out = Decoded::new(decoder.specs().len());
    let mut from = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        decoder.push(&bytes[from..cut], &mut out);
        from = cut;
    }
    decoder.finish(&mut out);
    out
}
