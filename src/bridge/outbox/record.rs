//! The outbox's on-disk record format: pure encoding and decoding, no I/O.
//!
//! A segment file is a run of records, each `u32 body length | u32 CRC-32C of the body | body`,
//! little-endian. A body is either a message or the note that one is done:
//!
//! ```text
//! message: 1 | u64 id | u8 class | u8 retain | u64 created unix ms | u64 expires unix ms (0: never)
//!            | u16 topic length | topic | payload (the rest)
//! done:    2 | u64 id | u8 why (1 acknowledged, 2 expired, 3 dropped for room)
//! ```
//!
//! The checksum is what makes a torn tail (the process killed mid-write, power lost before the
//! page reached the disk) detectable: a record whose length runs past the end of the file or
//! whose checksum does not match ends the readable part of the segment.

use crc::{Crc, CRC_32_ISCSI};

const CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);
const HEADER: usize = 8;
const MESSAGE: u8 = 1;
const DONE: u8 = 2;
/// Fixed part of a message body before the topic.
const MESSAGE_FIXED: usize = 1 + 8 + 1 + 1 + 8 + 8 + 2;
/// The largest body a reader accepts: an MQTT payload limit plus room for the topic. A length
/// above this is corruption, not a message.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long a message stays worth delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Live feedback and metrics: worth sending until it expires, dropped first for room.
    Live,
    /// Sensor state and anything else marked durable: never expires, dropped only when the disk
    /// bound leaves no other choice.
    Durable,
}

/// Why a message left the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Acknowledged = 1,
    Expired = 2,
    Dropped = 3,
}

/// One message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub class: Class,
    pub retain: bool,
    pub created_ms: u64,
    /// Unix ms after which the message is not sent; `None`: never expires.
    pub expires_ms: Option<u64>,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Message(Message),
    Done { id: u64, why: Done },
}

/// Why the records of a segment stop being readable at some offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Torn {
    #[error("a record header cut short ({0} of 8 bytes)")]
    ShortHeader(usize),
    #[error("a record of {0} bytes, above the {MAX_BODY}-byte limit")]
    TooLong(usize),
    #[error("a record of {len} bytes with only {have} left in the file")]
    ShortBody { len: usize, have: usize },
    #[error("a record whose checksum does not match")]
    Checksum,
    #[error("a record that does not decode: {0}")]
    Malformed(&'static str),
}

impl Message {
    /// The whole record, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(MESSAGE_FIXED + self.topic.len() + self.payload.len());
        body.push(MESSAGE);
        body.extend_from_slice(&self.id.to_le_bytes());
        body.push(match self.class {
            Class::Live => 1,
            Class::Durable => 2,
        });
        body.push(self.retain as u8);
        body.extend_from_slice(&self.created_ms.to_le_bytes());
        body.extend_from_slice(&self.expires_ms.unwrap_or(0).to_le_bytes());
        // Topics are bounded far below 64 KiB by `bounds`; MQTT itself caps them there.
        body.extend_from_slice(&(self.topic.len() as u16).to_le_bytes());
        body.extend_from_slice(self.topic.as_bytes());
        body.extend_from_slice(&self.payload);
        frame(body)
    }
}

/// The record saying message `id` is done.
pub fn encode_done(id: u64, why: Done) -> Vec<u8> {
    let mut body = Vec::with_capacity(10);
    body.push(DONE);
    body.extend_from_slice(&id.to_le_bytes());
    body.push(why as u8);
    frame(body)
}

fn frame(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&CRC.checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decode the record at the start of `bytes`: the record and its encoded length, `Ok(None)` at
/// the clean end of the bytes, or why the rest is unreadable.
pub fn decode(bytes: &[u8]) -> Result<Option<(Record, usize)>, Torn> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() < HEADER {
        return Err(Torn::ShortHeader(bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_BODY {
        return Err(Torn::TooLong(len));
    }
    let have = bytes.len() - HEADER;
    if len > have {
        return Err(Torn::ShortBody { len, have });
    }
    let body = &bytes[HEADER..HEADER + len];
    if CRC.checksum(body) != u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) {
        return Err(Torn::Checksum);
    }
    Ok(Some((decode_body(body)?, HEADER + len)))
}

fn decode_body(body: &[u8]) -> Result<Record, Torn> {
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    match body.first() {
        Some(&DONE) if body.len() == 10 => {
            let why = match body[9] {
                1 => Done::Acknowledged,
                2 => Done::Expired,
                3 => Done::Dropped,
                _ => return Err(Torn::Malformed("unknown reason in a done record")),
            };
            Ok(Record::Done { id: u64_at(1), why })
        }
        Some(&DONE) => Err(Torn::Malformed("a done record of the wrong length")),
        Some(&MESSAGE) if body.len() >= MESSAGE_FIXED => {
            let class = match body[9] {
                1 => Class::Live,
                2 => Class::Durable,
                _ => return Err(Torn::Malformed("unknown message class")),
            };
            let retain = match body[10] {
                0 => false,
                1 => true,
                _ => return Err(Torn::Malformed("retain flag neither 0 nor 1")),
            };
            let topic_len = u16::from_le_bytes([body[27], body[28]]) as usize;
            let topic = body
                .get(MESSAGE_FIXED..MESSAGE_FIXED + topic_len)
                .ok_or(Torn::Malformed("topic runs past the record"))?;
            let topic = std::str::from_utf8(topic).map_err(|_| Torn::Malformed("topic is not UTF-8"))?;
            let expires = u64_at(19);
            Ok(Record::Message(Message {
                id: u64_at(1),
                class,
                retain,
                created_ms: u64_at(11),
                expires_ms: (expires != 0).then_some(expires),
                topic: topic.to_string(),
                payload: body[MESSAGE_FIXED + topic_len..].to_vec(),
            }))
        }
        Some(&MESSAGE) => Err(Torn::Malformed("a message record too short for its fields")),
        _ => Err(Torn::Malformed("unknown record kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64) -> Message {
        Message {
            id,
            class: Class::Live,
            retain: false,
            created_ms: 1_700_000_000_000,
            expires_ms: Some(1_700_000_030_000),
            topic: "biofeedd/v1/hub/s01/feedback".into(),
            payload: br#"{"seq":3}"#.to_vec(),
        }
    }

    #[test]
    fn records_round_trip_back_to_back() {
        let durable = Message { class: Class::Durable, retain: true, expires_ms: None, ..message(8) };
        let mut bytes = message(7).encode();
        bytes.extend(encode_done(7, Done::Acknowledged));
        bytes.extend(durable.encode());
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((record, len)) = decode(&bytes[at..]).unwrap() {
            got.push(record);
            at += len;
        }
        assert_eq!(
            got,
            [Record::Message(message(7)), Record::Done { id: 7, why: Done::Acknowledged }, Record::Message(durable)]
        );
    }

    #[test]
    fn every_cut_of_a_record_and_every_flipped_bit_is_detected() {
        let bytes = message(1).encode();
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "a record cut at {cut} bytes");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            match decode(&b) {
                Err(_) => {}
                // A flipped length bit may make the record shorter and still not match the CRC;
                // decoding anything successfully from a damaged record would be the bug.
                Ok(r) => panic!("bit {bit} flipped decoded as {r:?}"),
            }
        }
    }
}
