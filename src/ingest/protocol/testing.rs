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

/// What the fuzz targets check (fuzz/fuzz_targets/decoder_check.rs), for their crashes kept as
/// tests: `bytes` decode the same whole, one byte at a time, and again after a `reset` of a
/// decoder that has already decoded them; every sample is finite. Returns the whole decode.
pub(crate) fn check_like_the_fuzzers<D: Decoder>(make: impl Fn() -> D, bytes: &[u8]) -> Decoded {
    let whole = decode_whole(make(), bytes);
    let mut d = make();
    let mut bytewise = Decoded::new(d.specs().len());
    for b in bytes {
        d.push(std::slice::from_ref(b), &mut bytewise);
    }
    d.finish(&mut bytewise);
    assert_eq!(whole, bytewise, "chunking changed the output");
    d.reset();
    assert_eq!(whole, decode_whole(d, bytes), "reset did not start over");
    assert!(whole.channels.iter().all(|c| c.values.iter().all(|v| v.is_finite())), "{whole:?}");
    whole
}
