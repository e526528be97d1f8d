//! QoS 1 publishing with delivery tracking: each publish carries a tag, and the tag comes back
//! when the broker's PUBACK for that publish arrives.
//!
//! Pairing is by packet id. rumqttc chooses the id when its event loop takes a request and reports
//! it as `Outgoing::Publish(id)`; its requests are taken strictly in the order they were made, so
//! the n-th *new* id reported belongs to the n-th publish requested — that is the one place order
//! is used, to learn the id. From then on every step goes by id: a PUBACK releases exactly the
//! message that went out under its id, a resend after a reconnect (same id, already in flight)
//! binds nothing new, and a reconnect without a session present (the broker and rumqttc have
//! forgotten the unacknowledged publishes, which will never be acknowledged) counts them as lost
//! instead of waiting for them forever. The durable outbox sits in front of this in its issue.

use super::mqtt::{LinkEvent, MqttLink};
use rumqttc::v5::mqttbytes::QoS;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// How long a publish may wait for room in rumqttc's request queue.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(1);

/// Publishes and their delivery state on one MQTT link.
pub struct Publisher<T> {
    link: MqttLink,
    deliveries: Deliveries<T>,
}

/// A publish could not be handed to the client (it has shut down, or its queue stayed full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MQTT publish not accepted: {0}")]
pub struct PublishError(String);

impl<T> Publisher<T> {
    pub fn new(link: MqttLink) -> Self {
        Publisher { link, deliveries: Deliveries::default() }
    }

    /// Publish with QoS 1; `tag` (if any) is returned by [`Publisher::next_event`] once the
    /// broker acknowledges this message.
    pub async fn publish(
        &mut self,
        topic: String,
        payload: String,
        retain: bool,
        tag: Option<T>,
    ) -> Result<(), PublishError> {
        // While the broker is unreachable rumqttc takes no requests; once its queue is full a
        // publish would wait forever, and shutdown with it.
        let request = self.link.client.publish(topic, QoS::AtLeastOnce, retain, payload);
        match tokio::time::timeout(PUBLISH_PATIENCE, request).await {
            Ok(result) => result.map_err(|e| PublishError(e.to_string()))?,
            Err(_) => {
                return Err(PublishError("its request queue stayed full: the broker is not taking messages".into()))
            }
        }
        self.deliveries.requested.push_back(tag);
        Ok(())
    }

    /// Wait for the next link event and apply it. Returns the tag of a message the broker has
    /// just acknowledged (`Some(Some(tag))`), `Some(None)` for any other event, and `None` when
    /// the link has ended. Cancel-safe: the only await is the event channel's receive.
    pub async fn next_event(&mut self) -> Option<Option<T>> {
        let event = self.link.events.recv().await?;
        Some(self.deliveries.apply(event))
    }

    /// Publishes requested or in flight and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        self.deliveries.requested.len() + self.deliveries.in_flight.len()
    }

    /// Publishes dropped unacknowledged when a session could not be resumed.
    pub fn lost(&self) -> u64 {
        self.deliveries.lost
    }

    /// Wait up to `patience` for every outstanding acknowledgement, handing each acknowledged
    /// tag to `on_ack`, then disconnect. Returns how many were still unacknowledged.
    pub async fn close(mut self, patience: Duration, mut on_ack: impl FnMut(T)) -> usize {
        let deadline = tokio::time::Instant::now() + patience;
        while self.outstanding() > 0 {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Ok(Some(Some(tag))) => on_ack(tag),
                Ok(Some(None)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let unacknowledged = self.outstanding();
        self.link.close().await;
        unacknowledged
    }
}

/// Delivery state by packet id; pure, so its rules are tested without a broker.
#[derive(Debug)]
struct Deliveries<T> {
    /// Requested publishes still waiting for rumqttc to give them an id, in request order.
    requested: VecDeque<Option<T>>,
    /// Publishes sent under an id and not yet acknowledged.
    in_flight: HashMap<u16, Option<T>>,
    /// Requested publishes rumqttc held unsent when the connection last failed (the oldest ones).
    unsent: usize,
    lost: u64,
}

impl<T> Default for Deliveries<T> {
    fn default() -> Self {
        Deliveries { requested: VecDeque::new(), in_flight: HashMap::new(), unsent: 0, lost: 0 }
    }
}

impl<T> Deliveries<T> {
    /// Apply one link event; returns the tag of the message it acknowledged, if any.
    fn apply(&mut self, event: LinkEvent) -> Option<T> {
        match event {
            LinkEvent::Sent(pkid) if !self.in_flight.contains_key(&pkid) => {
                if let Some(tag) = self.requested.pop_front() {
                    self.in_flight.insert(pkid, tag);
                }
                None
            }
            LinkEvent::Acked(pkid) => self.in_flight.remove(&pkid).flatten(),
            LinkEvent::Error { unsent, .. } => {
                self.unsent = unsent.min(self.requested.len());
                None
            }
            LinkEvent::Connected { session_present: false } => {
                // Without a session the broker and rumqttc forget what was in flight, and rumqttc
                // drops what it had not sent yet: none of it will ever be acknowledged.
                let dropped = self.in_flight.len() + self.unsent;
                if dropped > 0 {
                    tracing::warn!(
                        "MQTT session not resumed: {dropped} unacknowledged publishes were dropped by the client"
                    );
                }
                self.lost += dropped as u64;
                self.in_flight.clear();
                self.requested.drain(..self.unsent);
                self.unsent = 0;
                None
            }
            LinkEvent::Sent(_) | LinkEvent::Connected { .. } => None,
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
            assert_eq!(d.apply(LinkEvent::Sent(pkid)), None);
        }
        assert_eq!(d.apply(LinkEvent::Acked(9)), Some(12));
        assert_eq!(d.apply(LinkEvent::Acked(7)), Some(10));
        assert_eq!(d.apply(LinkEvent::Acked(7)), None, "a duplicate ack releases nothing");
        assert_eq!(d.apply(LinkEvent::Acked(8)), Some(11));
        assert!(d.in_flight.is_empty() && d.requested.is_empty());
    }

    #[test]
    fn a_resend_binds_nothing_new_and_a_lost_session_counts_what_it_dropped() {
        let mut d = deliveries(&[1, 2, 3]);
        d.apply(LinkEvent::Sent(1));
        d.apply(LinkEvent::Sent(2));
        d.apply(LinkEvent::Error { message: "broken pipe".into(), unsent: 0 });
        d.apply(LinkEvent::Connected { session_present: true });
        d.apply(LinkEvent::Sent(1));
        assert_eq!(d.requested.len(), 1, "the resend of id 1 did not take message 3");
        assert_eq!(d.apply(LinkEvent::Acked(1)), Some(1));
        d.apply(LinkEvent::Connected { session_present: false });
        assert_eq!((d.lost, d.in_flight.len()), (1, 0), "message 2 will never be acknowledged");
        d.apply(LinkEvent::Sent(1));
        assert_eq!(d.apply(LinkEvent::Acked(1)), Some(3));
    }

    #[test]
    fn publishes_never_sent_before_a_sessionless_reconnect_are_lost_not_misattributed() {
        let mut d = deliveries(&[1, 2, 3, 4]);
        d.apply(LinkEvent::Sent(7));
        // Messages 2 and 3 were queued in rumqttc, unsent, when the link broke; 4 came after.
        d.apply(LinkEvent::Error { message: "reset".into(), unsent: 2 });
        d.apply(LinkEvent::Connected { session_present: false });
        assert_eq!(d.lost, 3, "1 in flight and 2 unsent");
        d.apply(LinkEvent::Sent(1));
        assert_eq!(d.apply(LinkEvent::Acked(1)), Some(4), "the next id belongs to message 4");
    }
}
