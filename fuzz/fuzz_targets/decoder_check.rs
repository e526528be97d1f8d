//! Shared by the serial decoder targets: decode `bytes` whole and in chunks cut at pseudo-random
//! points derived from the bytes themselves (so a raw capture is a seed as it is), then check
//! that both agree and that the output is well formed.

use biofeedd::ingest::protocol::{Decoded, Decoder};

pub fn check(make: impl Fn() -> Box<dyn Decoder>, bytes: &[u8]) {
    let mut d = make();
    let n = d.specs().len();
    let mut whole = Decoded::new(n);
    d.push(bytes, &mut whole);
    d.finish(&mut whole);

    let mut d = make();
    let mut parts = Decoded::new(n);
    let mut state = 0x9E37_79B9u32 ^ bytes.len() as u32 ^ u32::from(bytes.first().copied().unwrap_or(0));
    let mut rest = bytes;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let take = (state as usize % 97).min(rest.len());
        d.push(&rest[..take], &mut parts);
        rest = &rest[take..];
    }
    d.finish(&mut parts);
    assert_eq!(whole, parts, "chunking changed the output");

    // Again after a reset: the same bytes decode the same way.
    d.reset();
    let mut again = Decoded::new(n);
    d.push(bytes, &mut again);
    d.finish(&mut again);
    assert_eq!(whole, again, "reset did not start over");

    assert_eq!(whole.channels.len(), n);
    for c in &whole.channels {
        assert!(c.values.iter().all(|v| v.is_finite()), "a non-finite sample");
        assert_eq!(c.runs.is_empty(), c.values.is_empty());
        assert!(c.runs.first().is_none_or(|r| r.0 == 0));
        assert!(c.runs.windows(2).all(|w| w[0].0 < w[1].0 && w[1].0 < c.values.len()), "runs out of order");
        let total: usize = c.iter_runs().map(|(_, v)| v.len()).sum();
        assert_eq!(total, c.values.len());
    }
    assert!(whole.decode_errors <= bytes.len() as u64 + 1, "more errors than bytes");
}
