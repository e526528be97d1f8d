//! The MQTT connection: a rumqttc v5 client, its event loop polled in its own task, and what
//! happens on the link reported as [`LinkEvent`]s.

use super::config::MqttConfig;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use rumqttc::Outgoing;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// rumqttc's request queue. The publisher keeps far fewer than this outstanding
/// (its `WINDOW`), so a request never waits for room.
const REQUESTS: usize = 1024;
/// Reconnect delays: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the event-loop task tells the publisher.
#[derive(Debug)]
pub enum LinkEvent {
    /// A CONNACK; without a session present the broker (and rumqttc) forgot unacknowledged
    /// publishes, so they will not be resent by the client.
    Connected { session_present: bool },
    /// A publish left with this packet id (QoS 1), in the order they were requested.
    Sent(u16),
    /// The broker's PUBACK; `refused` carries the reason when it did not take the message.
    Acked { pkid: u16, refused: Option<String> },
    /// The connection failed; `unsent` publishes were requested but never given a packet id.
    Error { message: String, unsent: usize },
}

/// A client and the task polling its event loop.
pub struct MqttLink {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    task: JoinHandle<()>,
}

/// What [`connect`] found at start-up.
pub enum Connect {
    /// Connected, or not yet but retrying in the background (`[mqtt] optional = false`).
    Link(MqttLink),
    /// Unreachable and `optional`: run without MQTT.
    Skipped,
}

/// Connect and wait (bounded by `connect_timeout_s`) for the first CONNACK.
pub async fn connect(
    config: &MqttConfig,
    hub: &str,
    base_dir: &Path,
    will_topic: &str,
    will_payload: String,
) -> Result<Connect, String> {
    let broker = config.broker()?;
    let mut options = config.options(hub, base_dir)?;
    options.set_last_will(LastWill::new(will_topic, will_payload, QoS::AtLeastOnce, true, None));
    let (client, mut eventloop) = AsyncClient::new(options, REQUESTS);
    let (tx, events) = mpsc::unbounded_channel();

    let deadline = Duration::from_secs_f64(config.connect_timeout_s);
    let first = tokio::time::timeout(deadline, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack.session_present),
                Ok(_) => continue,
                Err(e) => return Err(describe(&e)),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no CONNACK within {:.1} s", config.connect_timeout_s)));
    let (host, port) = (&broker.host, broker.port);
    let scheme = if broker.tls { "mqtts" } else { "mqtt" };
    match first {
        Ok(session_present) => {
            tracing::info!("MQTT connected to {scheme}://{host}:{port}; publishing with QoS 1 through the outbox");
            let _ = tx.send(LinkEvent::Connected { session_present });
        }
        Err(e) if config.optional => {
            tracing::warn!("MQTT broker {scheme}://{host}:{port} not reachable ({e}); feedback goes to stdout only");
            return Ok(Connect::Skipped);
        }
        Err(e) => {
            tracing::warn!("MQTT broker {scheme}://{host}:{port} not reachable ({e}); messages wait in the outbox while the daemon keeps retrying");
            let _ = tx.send(LinkEvent::Error { message: e, unsent: 0 });
        }
    }
    let task = tokio::spawn(poll_loop(eventloop, tx));
    Ok(Connect::Link(MqttLink { client, events, task }))
}

/// A connection error in words, with the broker's refusal spelled out.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => format!("the broker refused the connection: {code:?}"),
        ConnectionError::Tls(t) => format!("TLS: {t}"),
        other => other.to_string(),
    }
}

/// Poll the event loop until the client disconnects. rumqttc reconnects on the next poll after
/// an error; with a session present it resends unacknowledged QoS 1 publishes, without one it
/// drops them — the publisher then offers them again from the outbox.
async fn poll_loop(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<LinkEvent>) {
    let mut last_error: Option<String> = None;
    let mut retry = RETRY_FIRST;
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if last_error.take().is_some() {
                    tracing::info!("MQTT reconnected");
                }
                retry = RETRY_FIRST;
                LinkEvent::Connected { session_present: ack.session_present }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let ok = matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers);
                LinkEvent::Acked { pkid: ack.pkid, refused: (!ok).then(|| format!("{:?}", ack.reason)) }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => LinkEvent::Sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(e) => {
                let message = describe(&e);
                if last_error.as_deref() != Some(&message) {
                    tracing::warn!("MQTT connection: {message}; retrying");
                }
                // Publishes requested but never sent now wait in `pending` with packet id 0; a
                // reconnect without a session drops them, and the publisher must know how many.
                let unsent = eventloop
                    .pending
                    .iter()
                    .filter(|r| matches!(r, rumqttc::v5::Request::Publish(p) if p.pkid == 0))
                    .count();
                let done = matches!(e, ConnectionError::RequestsDone);
                if tx.send(LinkEvent::Error { message: message.clone(), unsent }).is_err() || done {
                    return;
                }
                last_error = Some(message);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        if tx.send(event).is_err() {
            return;
        }
    }
}

impl MqttLink {
    /// Ask for a DISCONNECT (never waiting for queue room) and wait, bounded, for the event loop
    /// to finish. While the broker is unreachable the loop is sleeping between retries: it is
    /// simply stopped.
    pub async fn close(self) {
        let _ = self.client.try_disconnect();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
    }
}
