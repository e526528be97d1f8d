//! Offload requests and replies: any bytes decode to a request within the layout's bounds, or an
//! error naming a byte inside the input, never a panic; whatever decodes re-encodes to exactly
//! the bytes it came from. The same bytes as a reply parse to one whose classes and
//! probabilities agree, which serialises and parses again, or a named error.
#![no_main]

use biofeedd::bridge::offload::reply::{OffloadReply, Outcome, MAX_REPLY_BYTES, REPLY_SCHEMA};
use biofeedd::bridge::offload::wire::OffloadRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match OffloadRequest::decode(bytes) {
        Ok(request) => {
            assert!(request.features.len() <= 4096 && request.channels.len() <= 32);
            let total: usize = request.channels.iter().map(|c| c.len as usize).sum();
            assert_eq!(request.samples.len(), total, "every row's samples, no more");
            assert!(total <= 1 << 20);
            assert!(request.window_start.is_finite() && request.window_end >= request.window_start);
            assert!(request.budget_ms.is_finite());
            assert!(request.channels.iter().all(|c| c.rate_hz.is_finite() && c.rate_hz > 0.0));
            assert!(request.features.iter().chain(&request.samples).all(|v| v.is_finite()));
            let again = request.encode().expect("a decoded request is within the bounds");
            assert_eq!(again, bytes, "{request:?} re-encodes differently");
            assert_eq!(OffloadRequest::decode(&again).as_ref(), Ok(&request));
        }
        Err(e) => {
            assert!(e.offset <= bytes.len(), "{e} lies outside {} bytes", bytes.len());
            assert!(!e.what.is_empty() && !e.to_string().is_empty());
        }
    }

    match OffloadReply::parse(bytes) {
        Ok(reply) => {
            assert!(bytes.len() <= MAX_REPLY_BYTES);
            assert_eq!(reply.schema, REPLY_SCHEMA);
            if let Outcome::Ok { classes, probabilities, compute_ms, .. } = &reply.outcome {
                assert_eq!(classes.len(), probabilities.len());
                assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)) && compute_ms.is_finite());
            }
            let json = reply.to_json();
            // Serialising may lengthen the text (`0` becomes `0.0`) past the size bound.
            if json.len() <= MAX_REPLY_BYTES {
                // serde_json's default float parsing may be off in the last bit, so floats are
                // not compared, and a value next to `f64::MAX` may come back out of range.
                let again = match OffloadReply::parse(&json) {
                    Ok(again) => again,
                    Err(e) if e.contains("out of range") => return,
                    Err(e) => panic!("{reply:?} does not parse again: {e}"),
                };
                assert_eq!((&again.worker, &again.model, &again.sha256), (&reply.worker, &reply.model, &reply.sha256));
                match (&again.outcome, &reply.outcome) {
                    (
                        Outcome::Ok { variant, stage, classes, probabilities, .. },
                        Outcome::Ok { variant: v, stage: s, classes: c, probabilities: p, .. },
                    ) => {
                        assert_eq!((variant, stage, classes), (v, s, c));
                        assert_eq!(probabilities.len(), p.len());
                    }
                    (Outcome::Refused { reason }, Outcome::Refused { reason: r }) => assert_eq!(reason, r),
                    (a, b) => panic!("{b:?} parses again as {a:?}"),
                }
            }
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
