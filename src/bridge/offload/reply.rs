//! The worker's answer to an offload request: JSON on the hub's response topic, with the
//! request's correlation data (schema: `schemas/offload_reply.v1.json`).

use crate::fusion::Variant;
use serde::{Deserialize, Serialize};

pub const REPLY_SCHEMA: &str = "biofeedd.offload_reply.v1";
/// Replies larger than this are not ours (a reply is a few hundred bytes).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// One reply: the stage's probabilities, or why the worker refused.
// No `deny_unknown_fields` here: with the flattened `Outcome` serde would refuse the outcome's
// own fields (serde-rs/serde#1358); `Outcome` denies unknown fields for both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffloadReply {
    pub schema: String,
    /// The worker's client id, for logs.
    pub worker: String,
    /// The model and SHA-256 (hex) the request asked for.
    pub model: String,
    pub sha256: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What came of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase", deny_unknown_fields)]
pub enum Outcome {
    /// The stage ran: calibrated probabilities in `classes` order.
    Ok {
        variant: Variant,
        stage: u32,
        classes: Vec<String>,
        probabilities: Vec<f32>,
        /// The worker's time from taking the request off the broker to the answer, ms.
        compute_ms: f64,
    },
    /// The worker would not or could not run it (unknown model SHA, inputs of the wrong shape).
    Refused { reason: String },
}

impl OffloadReply {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a reply always serialises")
    }

    /// Parse a reply; the error says what is wrong with it.
    pub fn parse(bytes: &[u8]) -> Result<OffloadReply, String> {
        if bytes.len() > MAX_REPLY_BYTES {
            return Err(format!("a {}-byte reply (at most {MAX_REPLY_BYTES})", bytes.len()));
        }
        let reply: OffloadReply = serde_json::from_slice(bytes).map_err(|e| format!("not an offload reply: {e}"))?;
        if reply.schema != REPLY_SCHEMA {
            return Err(format!("schema `{}`, expected `{REPLY_SCHEMA}`", reply.schema));
        }
        if let Outcome::Ok { classes, probabilities, .. } = &reply.outcome {
            if classes.is_empty()
                || classes.len() != probabilities.len()
                || probabilities.iter().any(|p| !(0.0..=1.0).contains(p))
            {
                return Err(format!(
                    "{} classes but {} probabilities, or one is not within 0 to 1",
                    classes.len(),
                    probabilities.len()
                ));
            }
        }
        Ok(reply)
    }
}

/// Lower-case hex of a SHA-256.
pub fn hex(sha: &[u8; 32]) -> String {
    sha.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of a hex SHA-256, if it is one.
pub fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (k, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * k..2 * k + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_and_bad_ones_are_named() {
        let ok = OffloadReply {
            schema: REPLY_SCHEMA.into(),
            worker: "w1".into(),
            model: "stress-s2".into(),
            sha256: hex(&[0xab; 32]),
            outcome: Outcome::Ok {
                variant: Variant::Fp32,
                stage: 2,
                classes: vec!["rest".into(), "stress".into()],
                probabilities: vec![0.25, 0.75],
                compute_ms: 0.2,
            },
        };
        let json = ok.to_json();
        assert!(std::str::from_utf8(&json).unwrap().contains(r#""outcome":"ok""#));
        assert_eq!(OffloadReply::parse(&json).unwrap(), ok);
        assert_eq!(unhex(&ok.sha256), Some([0xab; 32]));
        assert!(OffloadReply::parse(b"{}").unwrap_err().contains("not an offload reply"));
        let extra = String::from_utf8(json.clone()).unwrap().replace(r#""compute_ms""#, r#""extra":1,"compute_ms""#);
        assert!(OffloadReply::parse(extra.as_bytes()).unwrap_err().contains("unknown field `extra`"));
        let wrong = String::from_utf8(json).unwrap().replace("0.75]", "0.75,0.1]");
        assert!(OffloadReply::parse(wrong.as_bytes()).unwrap_err().contains("2 classes but 3"));
    }
}
