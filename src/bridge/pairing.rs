//! Pairing publishes with their PUBACKs by packet id: pure, so its rules are tested without a
//! broker.
//!
//! rumqttc chooses the id when its event loop takes a request and reports it as
//! `Outgoing::Publish(id)`; its requests are taken strictly in the order they were made, so the
//! n-th *new* id reported belongs to the n-th publish requested — that is the one place order is
//! used, to learn the id. From then on every step goes by id: a PUBACK releases exactly the
//! message that went out under its id, a resend after a reconnect (same id, already in flight)
//! binds nothing new, and a reconnect without a session present (the broker and rumqttc have
//! forgotten the unacknowledged publishes) forgets them here too: the outbox offers them again.

use super::link::LinkEvent;
use std::collections::{HashMap, VecDeque};

/// What a link event meant for a tagged publish.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    Nothing,
    /// The broker took the message.
    Acked(T),
    /// The broker answered with a failure reason (e.g. not authorised for the topic).
    Refused(T, String),
}

/// Delivery state by packet id.
#[derive(Debug)]
pub struct Deliveries<T> {
    /// Requested publishes still waiting for rumqttc to give them an id, in request order.
    requested: VecDeque<Option<T>>,
    /// Publishes sent under an id and not yet acknowledged.
    in_flight: HashMap<u16, Option<T>>,
    /// Requested publishes rumqttc held unsent when the connection last failed (the oldest ones).
    unsent: usize,
    /// Publishes the client dropped unacknowledged when a session could not be resumed.
    forgotten: u64,
}

impl<T> Default for Deliveries<T> {
    fn default() -> Self {
        Deliveries { requested: VecDeque::new(), in_flight: HashMap::new(), unsent: 0, forgotten: 0 }
    }
}

impl<T> Deliveries<T> {
    /// A publish was just requested from the client, in this order.
    pub fn requested(&mut self, tag: Option<T>) {
        self.requested.push_back(tag);
    }

    /// Publishes requested or in flight and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        self.requested.len() + self.in_flight.len()
    }

    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// Apply one link event.
    pub fn apply(&mut self, event: &LinkEvent) -> Outcome<T> {
        match *event {
            LinkEvent::Sent(pkid) if !self.in_flight.contains_key(&pkid) => {
                if let Some(tag) = self.requested.pop_front() {
                    self.in_flight.insert(pkid, tag);
                }
                Outcome::Nothing
            }
            LinkEvent::Acked { pkid, ref refused } => match (self.in_flight.remove(&pkid).flatten(), refused) {
                (Some(tag), None) => Outcome::Acked(tag),
                (Some(tag), Some(why)) => Outcome::Refused(tag, why.clone()),
                (None, _) => Outcome::Nothing,
            },
            LinkEvent::Error { unsent, .. } => {
                self.unsent = unsent.min(self.requested.len());
                Outcome::Nothing
            }
            LinkEvent::Connected { session_present: false, .. } => {
                // Without a session the broker and rumqttc forget what was in flight, and rumqttc
                // drops what it had not sent yet: none of it will ever be acknowledged.
                self.forgotten += (self.in_flight.len() + self.unsent) as u64;
                self.in_flight.clear();
                self.requested.drain(..self.unsent);
                self.unsent = 0;
                Outcome::Nothing
            }
            LinkEvent::Sent(_) | LinkEvent::Connected { .. } => Outcome::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliveries(requested: &[u32]) -> Deliveries<u32> {
        Deliveries { requested: requested.iter().map(|&t| Some(t)).collect(), ..Deliveries::default() }
    }

    #[test]
    fn acks_release_the_message_sent_under_their_id_in_any_order() {
        let mut d = deliveries(&[10, 11, 12]);
        for pkid in [7, 8, 9] {
            assert_eq!(d.apply(&LinkEvent::Sent(pkid)), Outcome::Nothing);
        }
        assert_eq!(d.apply(&LinkEvent::Acked { pkid: 9, refused: None }), Outcome::Acked(12));
        assert_eq!(d.apply(&LinkEvent::Acked { pkid: 7, refused: None }), Outcome::Acked(10));
        assert_eq!(
            d.apply(&LinkEvent::Acked { pkid: 7, refused: None }),
            Outcome::Nothing,
            "a duplicate ack releases nothing"
        );
        assert_eq!(d.apply(&LinkEvent::Acked { pkid: 8, refused: None }), Outcome::Acked(11));
        assert!(d.in_flight.is_empty() && d.requested.is_empty());
    }

    #[test]
    fn a_resend_binds_nothing_new_and_a_lost_session_counts_what_it_dropped() {
        let mut d = deliveries(&[1, 2, 3]);
        d.apply(&LinkEvent::Sent(1));
        d.apply(&LinkEvent::Sent(2));
        d.apply(&LinkEvent::Error { message: "broken pipe".into(), unsent: 0 });
        d.apply(&LinkEvent::Connected { session_present: true, receive_max: None });
        d.apply(&LinkEvent::Sent(1));
        assert_eq!(d.requested.len(), 1, "the resend of id 1 did not take message 3");
        assert_eq!(d.apply(&LinkEvent::Acked { pkid: 1, refused: None }), Outcome::Acked(1));
        d.apply(&LinkEvent::Connected { session_present: false, receive_max: None });
        assert_eq!((d.forgotten, d.in_flight.len()), (1, 0), "message 2 will never be acknowledged");
        d.apply(&LinkEvent::Sent(1));
        assert_eq!(d.apply(&LinkEvent::Acked { pkid: 1, refused: None }), Outcome::Acked(3));
    }

    #[test]
    fn publishes_never_sent_before_a_sessionless_reconnect_are_lost_not_misattributed() {
        let mut d = deliveries(&[1, 2, 3, 4]);
        d.apply(&LinkEvent::Sent(7));
        // Messages 2 and 3 were queued in rumqttc, unsent, when the link broke; 4 came after.
        d.apply(&LinkEvent::Error { message: "reset".into(), unsent: 2 });
        d.apply(&LinkEvent::Connected { session_present: false, receive_max: None });
        assert_eq!(d.forgotten, 3, "1 in flight and 2 unsent");
        d.apply(&LinkEvent::Sent(1));
        assert_eq!(
            d.apply(&LinkEvent::Acked { pkid: 1, refused: None }),
            Outcome::Acked(4),
            "the next id belongs to message 4"
        );
    }
}
