//! The offload connection: an MQTT 5 client of its own, apart from the feedback publisher's.
//!
//! Why a second connection: offload traffic is ephemeral and deadline-bound (a request is worth
//! nothing 25 ms later), while the publisher's connection carries the durable outbox with its
//! persistent session and strict acknowledgement order. On one connection a burst of requests
//! would wait behind the outbox's window, and the publisher would have to tell its PUBACKs from
//! theirs. This one starts clean every time, subscribes to one filter at every CONNACK, and hands
//! what arrives on it to its owner (the hub's [`super::Offloader`] or a `biofeedd worker`).

use crate::bridge::config::Settings;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Requests in rumqttc's queue before `try_publish` refuses (the owner then falls back).
const REQUESTS: usize = 1024;
/// Messages received but not yet taken by the owner; past this they are dropped and counted.
pub const INCOMING: usize = 1024;
/// An offload request is a window (≈ 8 KiB for the bundled CNN); allow far larger stages.
const MAX_PACKET: u32 = 8 * 1024 * 1024;
/// The most unacknowledged QoS 1 publishes (requests, or a worker's replies) rumqttc tracks;
/// past it they wait in its queue of [`REQUESTS`]. Its default, 65,535, allocates a slot for
/// each at connect: 14 MB per link.
const INFLIGHT_LIMIT: u16 = 1024;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// A publish that arrived on the subscribed filter.
#[derive(Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: Bytes,
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
}

/// The client, what arrives, and whether the broker is there.
pub struct OffloadLink {
    pub client: AsyncClient,
    pub incoming: mpsc::Receiver<Incoming>,
    /// `true` between a CONNACK (with the subscription requested) and the next error.
    pub connected: watch::Receiver<bool>,
    /// Messages that arrived while the owner's queue was full.
    pub overflowed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

/// Connect as `client_id` (a clean session: nothing of an earlier run is wanted) and keep
/// `filter` subscribed across reconnects. Returns at once; the link connects in the background.
pub fn open(settings: &Settings, client_id: String, filter: String) -> OffloadLink {
    let mut o = MqttOptions::new(client_id, settings.broker.host.clone(), settings.broker.port);
    o.set_keep_alive(settings.keep_alive);
    o.set_clean_start(true);
    if let Some((user, password)) = &settings.credentials {
        o.set_credentials(user.clone(), password.clone());
    }
    o.set_transport(settings.transport.clone());
    o.set_network_options(settings.network.clone());
    o.set_max_packet_size(Some(MAX_PACKET));
    o.set_outgoing_inflight_upper_limit(INFLIGHT_LIMIT);
    let (client, eventloop) = AsyncClient::new(o, REQUESTS);
    let (tx, incoming) = mpsc::channel(INCOMING);
    let (connected_tx, connected) = watch::channel(false);
    let (overflow_tx, overflowed) = watch::channel(0u64);
    let task = tokio::spawn(poll(eventloop, client.clone(), filter, tx, connected_tx, overflow_tx));
    OffloadLink { client, incoming, connected, overflowed, task }
}

async fn poll(
    mut eventloop: rumqttc::v5::EventLoop,
    client: AsyncClient,
    filter: String,
    tx: mpsc::Sender<Incoming>,
    connected: watch::Sender<bool>,
    overflowed: watch::Sender<u64>,
) {
    let mut retry = RETRY_FIRST;
    let mut last_error: Option<String> = None;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // A clean session forgets subscriptions: ask again at every connection.
                if client.try_subscribe(filter.clone(), QoS::AtLeastOnce).is_err() {
                    return;
                }
                if last_error.take().is_some() {
                    tracing::info!("offload link reconnected");
                }
                retry = RETRY_FIRST;
                connected.send_replace(true);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let props = p.properties.unwrap_or_default();
                let message = Incoming {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload,
                    response_topic: props.response_topic,
                    correlation: props.correlation_data,
                };
                match tx.try_send(message) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => overflowed.send_modify(|n| *n += 1),
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                connected.send_replace(false);
                if matches!(e, rumqttc::v5::ConnectionError::RequestsDone) || tx.is_closed() {
                    return;
                }
                let message = e.to_string();
                if last_error.as_deref() != Some(&message) {
                    tracing::warn!("offload link: {message}; retrying");
                }
                last_error = Some(message);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

impl OffloadLink {
    /// Queue a QoS 1 publish with MQTT 5 request/response properties; `false` when rumqttc's
    /// queue is full or the link has ended.
    pub fn try_publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        response_topic: Option<String>,
        correlation: Option<Bytes>,
        expiry: Option<Duration>,
    ) -> bool {
        publish(&self.client, topic, payload, response_topic, correlation, expiry)
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Stop taking new messages (unsubscribe), for a worker's drain.
    pub fn unsubscribe(&self, filter: &str) {
        let _ = self.client.try_unsubscribe(filter);
    }

    /// Disconnect after what is queued has been written, and wait (bounded) for the loop to end.
    pub async fn close(self, patience: Duration) {
        let _ = self.client.try_disconnect();
        let mut task = self.task;
        if tokio::time::timeout(patience, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// [`OffloadLink::try_publish`] for a client handle (a worker's compute thread holds one).
pub fn publish(
    client: &AsyncClient,
    topic: &str,
    payload: Vec<u8>,
    response_topic: Option<String>,
    correlation: Option<Bytes>,
    expiry: Option<Duration>,
) -> bool {
    let properties = PublishProperties {
        // MQTT counts expiry in whole seconds: round up, so a request never expires early.
        message_expiry_interval: expiry.map(|e| e.as_millis().div_ceil(1000).clamp(1, u32::MAX as u128) as u32),
        response_topic,
        correlation_data: correlation,
        ..PublishProperties::default()
    };
    client.try_publish_with_properties(topic, QoS::AtLeastOnce, false, payload, properties).is_ok()
}
