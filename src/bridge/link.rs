//! The MQTT connection: a client (either protocol version, see [`super::client`]), its event
//! loop polled in its own task, and what happens on the link reported as [`LinkEvent`]s.

use super::client::{self, Client, EventLoop, Polled};
use super::config::MqttConfig;
use std::collections::VecDeque;
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
    Connected { session_present: bool, receive_max: Option<u16> },
    /// A publish left with this packet id (QoS 1), in the order they were requested.
    Sent(u16),
    /// The broker's PUBACK; `refused` carries the reason when it did not take the message.
    Acked { pkid: u16, refused: Option<String> },
    /// The connection failed; `unsent` publishes were requested but never given a packet id.
    Error { message: String, unsent: usize },
}

/// A client and the task polling its event loop.
pub struct MqttLink {
    pub client: Client,
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
    let settings = config.settings(hub, base_dir)?;
    let broker = settings.broker.clone();
    let (client, mut eventloop) = client::new(&settings, will_topic, will_payload, REQUESTS);
    let (tx, events) = mpsc::unbounded_channel();

    let deadline = Duration::from_secs_f64(config.connect_timeout_s);
    let first = tokio::time::timeout(deadline, async {
        loop {
            match eventloop.poll().await {
                Ok(Polled::ConnAck { session_present, receive_max }) => return Ok((session_present, receive_max)),
                Ok(_) => continue,
                Err(e) => return Err(e.message),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no CONNACK within {:.1} s", config.connect_timeout_s)));
    let (host, port) = (&broker.host, broker.port);
    let scheme = if broker.tls { "mqtts" } else { "mqtt" };
    match first {
        Ok((session_present, receive_max)) => {
            tracing::info!("MQTT connected to {scheme}://{host}:{port}; publishing with QoS 1 through the outbox");
            let _ = tx.send(LinkEvent::Connected { session_present, receive_max });
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

/// Poll the event loop until the client disconnects. rumqttc reconnects on the next poll after
/// an error; with a session present it resends unacknowledged QoS 1 publishes, without one it
/// drops them — the publisher then offers them again from the outbox.
async fn poll_loop(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<LinkEvent>) {
    let mut last_error: Option<String> = None;
    let mut retry = RETRY_FIRST;
    // Packet ids in flight, in the order they were first sent.
    let mut sent: VecDeque<u16> = VecDeque::new();
    loop {
        let event = match eventloop.poll().await {
            Ok(Polled::ConnAck { session_present, receive_max }) => {
                if last_error.take().is_some() {
                    tracing::info!("MQTT reconnected");
                }
                retry = RETRY_FIRST;
                if !session_present {
                    sent.clear();
                }
                LinkEvent::Connected { session_present, receive_max }
            }
            Ok(Polled::PubAck { pkid, refused }) => {
                sent.retain(|&p| p != pkid);
                LinkEvent::Acked { pkid, refused }
            }
            Ok(Polled::Sent(pkid)) => {
                if !sent.contains(&pkid) {
                    sent.push_back(pkid);
                }
                LinkEvent::Sent(pkid)
            }
            Ok(Polled::Disconnected) => return,
            Ok(Polled::Other) => continue,
            Err(e) => {
                if last_error.as_deref() != Some(&e.message) {
                    tracing::warn!("MQTT connection: {}; retrying", e.message);
                }
                // Publishes requested but never sent now wait in rumqttc's pending queue; a
                // reconnect without a session drops them, and the publisher must know how many.
                let unsent = eventloop.unsent();
                eventloop.resend_in_order(&sent);
                if tx.send(LinkEvent::Error { message: e.message.clone(), unsent }).is_err() || e.requests_done {
                    return;
                }
                last_error = Some(e.message);
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
        self.client.try_disconnect();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
    }
}
