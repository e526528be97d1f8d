//! rumqttc's two clients — MQTT 5 (`rumqttc::v5`) and 3.1.1 (`rumqttc`) — behind one face, so
//! the link and the publisher never ask which version they speak.

use super::config::{Protocol, Settings};
use rumqttc::v5::mqttbytes::v5::{LastWill as LastWill5, Packet as Packet5, PubAckReason, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{Event as Event4, LastWill as LastWill4, Outgoing, Packet as Packet4, QoS as QoS4};
use std::collections::VecDeque;
use std::time::Duration;

/// The request side: publish without ever waiting for queue room, and disconnect.
#[derive(Clone)]
pub enum Client {
    V5(rumqttc::v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

/// The event loop of either version.
pub enum EventLoop {
    V5(Box<rumqttc::v5::EventLoop>),
    V311(Box<rumqttc::EventLoop>),
}

/// An event of either version, reduced to what the link reports.
#[derive(Debug)]
pub enum Polled {
    /// `receive_max`: how many QoS 1 publishes the broker takes unacknowledged (MQTT 5 CONNACK;
    /// none for 3.1.1).
    ConnAck {
        session_present: bool,
        receive_max: Option<u16>,
    },
    PubAck {
        pkid: u16,
        refused: Option<String>,
    },
    /// A QoS 1 publish left under this packet id.
    Sent(u16),
    Disconnected,
    Other,
}

/// A failed poll: the error in words, and whether the client was dropped (no more requests).
pub struct PollError {
    pub message: String,
    pub requests_done: bool,
}

/// The most QoS 1 publishes the publisher leaves unacknowledged on its connection (fewer when
/// the broker's receive maximum says so). Far below rumqttc's request queue, so a request always
/// finds room; at loopback round trips it is no limit on throughput. Defined beside the client
/// it bounds (the publisher re-exports it), so that `client` needs nothing of `publisher`.
pub const WINDOW: usize = 64;

/// The most unacknowledged publishes rumqttc's MQTT 5 state tracks. The publisher never has more
/// than [`WINDOW`] out; rumqttc's default (65,535) allocates a slot for each up front, 14 MB of a
/// hub's memory for nothing.
const INFLIGHT_LIMIT: u16 = 4 * WINDOW as u16;

/// A client and its event loop for `settings`, with the retained last will.
pub fn new(settings: &Settings, will_topic: &str, will: String, capacity: usize) -> (Client, EventLoop) {
    let (host, port) = (settings.broker.host.clone(), settings.broker.port);
    match settings.protocol {
        Protocol::V5 => {
            let mut o = rumqttc::v5::MqttOptions::new(settings.client_id.clone(), host, port);
            o.set_keep_alive(settings.keep_alive);
            // A persistent session: after a reconnect the broker still knows our in-flight publishes.
            o.set_clean_start(false);
            o.set_session_expiry_interval(Some(u32::MAX));
            if let Some((user, password)) = &settings.credentials {
                o.set_credentials(user.clone(), password.clone());
            }
            o.set_transport(settings.transport.clone());
            o.set_network_options(settings.network.clone());
            o.set_last_will(LastWill5::new(will_topic, will, QoS5::AtLeastOnce, true, None));
            o.set_outgoing_inflight_upper_limit(INFLIGHT_LIMIT);
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(o, capacity);
            (Client::V5(client), EventLoop::V5(Box::new(eventloop)))
        }
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(settings.client_id.clone(), host, port);
            o.set_keep_alive(settings.keep_alive);
            o.set_clean_session(false);
            if let Some((user, password)) = &settings.credentials {
                o.set_credentials(user.clone(), password.clone());
            }
            o.set_transport(settings.transport.clone());
            o.set_last_will(LastWill4::new(will_topic, will, QoS4::AtLeastOnce, true));
            let (client, mut eventloop) = rumqttc::AsyncClient::new(o, capacity);
            eventloop.network_options = settings.network.clone();
            (Client::V311(client), EventLoop::V311(Box::new(eventloop)))
        }
    }
}

impl Client {
    /// Queue a QoS 1 publish; `expiry` is sent as MQTT 5 message expiry (3.1.1 has none).
    pub fn try_publish(&self, topic: String, retain: bool, payload: Vec<u8>, expiry: Option<Duration>) -> bool {
        match self {
            Client::V5(c) => {
                let properties = PublishProperties {
                    message_expiry_interval: expiry
                        .map(|e| e.as_millis().div_ceil(1000).clamp(1, u32::MAX as u128) as u32),
                    ..PublishProperties::default()
                };
                c.try_publish_with_properties(topic, QoS5::AtLeastOnce, retain, payload, properties).is_ok()
            }
            Client::V311(c) => c.try_publish(topic, QoS4::AtLeastOnce, retain, payload).is_ok(),
        }
    }

    pub fn try_disconnect(&self) {
        // An error means the event loop has already gone: nothing left to disconnect.
        match self {
            Client::V5(c) => drop(c.try_disconnect()),
            Client::V311(c) => drop(c.try_disconnect()),
        }
    }
}

impl EventLoop {
    pub async fn poll(&mut self) -> Result<Polled, PollError> {
        match self {
            EventLoop::V5(l) => match l.poll().await {
                Ok(rumqttc::v5::Event::Incoming(Packet5::ConnAck(a))) => Ok(Polled::ConnAck {
                    session_present: a.session_present,
                    receive_max: a.properties.as_ref().and_then(|p| p.receive_max),
                }),
                Ok(rumqttc::v5::Event::Incoming(Packet5::PubAck(a))) => {
                    let ok = matches!(a.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers);
                    Ok(Polled::PubAck { pkid: a.pkid, refused: (!ok).then(|| format!("{:?}", a.reason)) })
                }
                Ok(rumqttc::v5::Event::Outgoing(o)) => Ok(outgoing(o)),
                Ok(_) => Ok(Polled::Other),
                Err(e) => Err(PollError {
                    requests_done: matches!(e, rumqttc::v5::ConnectionError::RequestsDone),
                    message: match &e {
                        rumqttc::v5::ConnectionError::ConnectionRefused(code) => {
                            format!("the broker refused the connection: {code:?}")
                        }
                        #[cfg(feature = "tls")]
                        rumqttc::v5::ConnectionError::Tls(t) => format!("TLS: {t}"),
                        other => other.to_string(),
                    },
                }),
            },
            EventLoop::V311(l) => match l.poll().await {
                Ok(Event4::Incoming(Packet4::ConnAck(a))) => {
                    Ok(Polled::ConnAck { session_present: a.session_present, receive_max: None })
                }
                Ok(Event4::Incoming(Packet4::PubAck(a))) => Ok(Polled::PubAck { pkid: a.pkid, refused: None }),
                Ok(Event4::Outgoing(o)) => Ok(outgoing(o)),
                Ok(_) => Ok(Polled::Other),
                Err(e) => Err(PollError {
                    requests_done: matches!(e, rumqttc::ConnectionError::RequestsDone),
                    message: match &e {
                        rumqttc::ConnectionError::ConnectionRefused(code) => {
                            format!("the broker refused the connection: {code:?}")
                        }
                        #[cfg(feature = "tls")]
                        rumqttc::ConnectionError::Tls(t) => format!("TLS: {t}"),
                        other => other.to_string(),
                    },
                }),
            },
        }
    }

    /// Publishes requested but never sent (packet id 0), waiting in rumqttc's pending queue: a
    /// reconnect without a session drops them.
    pub fn unsent(&self) -> usize {
        match self {
            EventLoop::V5(l) => count(&l.pending, |r| matches!(r, rumqttc::v5::Request::Publish(p) if p.pkid == 0)),
            EventLoop::V311(l) => count(&l.pending, |r| matches!(r, rumqttc::Request::Publish(p) if p.pkid == 0)),
        }
    }

    /// Put the publishes rumqttc will resend after a reconnect back in the order they were first
    /// sent (`sent`: packet ids, oldest first). rumqttc collects them by packet-id slot, so after
    /// the ids wrapped (…, 19, 20, 1, 2) it would resend 1 and 2 before 19 and 20.
    pub fn resend_in_order(&mut self, sent: &VecDeque<u16>) {
        let rank = |pkid: u16| sent.iter().position(|&p| p == pkid).unwrap_or(usize::MAX);
        match self {
            EventLoop::V5(l) => l.pending.make_contiguous().sort_by_key(|r| match r {
                rumqttc::v5::Request::Publish(p) if p.pkid != 0 => (0, rank(p.pkid)),
                _ => (1, 0),
            }),
            EventLoop::V311(l) => l.pending.make_contiguous().sort_by_key(|r| match r {
                rumqttc::Request::Publish(p) if p.pkid != 0 => (0, rank(p.pkid)),
                _ => (1, 0),
            }),
        }
    }
}

fn outgoing(o: Outgoing) -> Polled {
    match o {
        Outgoing::Publish(pkid) if pkid != 0 => Polled::Sent(pkid),
        Outgoing::Disconnect => Polled::Disconnected,
        _ => Polled::Other,
    }
}

fn count<R>(pending: &VecDeque<R>, f: impl Fn(&R) -> bool) -> usize {
    pending.iter().filter(|r| f(r)).count()
}
