//! QoS 1 publishing through the durable outbox.
//!
//! Every message is appended to the [`Outbox`] first; the publisher then hands the oldest unsent
//! ones to rumqttc, never more than [`WINDOW`] unacknowledged at once and never with an await on
//! rumqttc's queue (`try_publish`), so a broker that stops answering can fill the disk bound but
//! never stall the daemon. A PUBACK (paired by packet id, see [`super::pairing`]) retires its
//! message from the outbox; a reconnect without the session rewinds the outbox so everything not
//! acknowledged is offered again; every CONNACK republishes the retained `online` status ahead of
//! the backlog (the broker published our `offline` will while we were gone).

use super::link::{LinkEvent, MqttLink};
use super::outbox::record::Class;
use super::outbox::{Outbox, OutboxError, OutboxStats};
use super::pairing::{Deliveries, Outcome};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Publishes handed to rumqttc and not yet acknowledged, at most.
pub use super::client::WINDOW;
/// How long shutdown waits for the broker to take the `offline` status.
const STATUS_PATIENCE: Duration = Duration::from_millis(500);

/// Unix time in ms, the outbox's clock (expiry survives restarts only on the wall clock).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The retained hub status: what to publish on every CONNACK and at a clean shutdown.
#[derive(Debug, Clone)]
pub struct StatusMessages {
    pub topic: String,
    pub online: String,
    pub offline: String,
}

/// What the publisher left behind when it closed.
#[derive(Debug, Clone)]
pub struct Closed {
    /// Messages still in the outbox (sent by the next run).
    pub left: usize,
    /// Whether the broker was reached at all during the run.
    pub ever_connected: bool,
    pub stats: OutboxStats,
    pub refused: u64,
}

/// The outbox, the link and the pairing between them.
pub struct Publisher<T> {
    link: MqttLink,
    outbox: Outbox,
    pairing: Deliveries<u64>,
    /// Caller's tags (delivery timing) by outbox id, returned on PUBACK.
    tags: HashMap<u64, T>,
    status: StatusMessages,
    /// `status.online` changed since it was last published.
    status_changed: bool,
    connected: bool,
    ever_connected: bool,
    refused: u64,
    /// A background `fdatasync` of the outbox is running.
    syncing: Arc<AtomicBool>,
    /// Publishes outstanding at most on this connection: [`WINDOW`], or less when the broker's
    /// receive maximum is lower.
    window: usize,
}

impl<T> Publisher<T> {
    pub fn new(link: MqttLink, outbox: Outbox, status: StatusMessages) -> Self {
        Publisher {
            link,
            outbox,
            pairing: Deliveries::default(),
            tags: HashMap::new(),
            status,
            status_changed: false,
            connected: false,
            ever_connected: false,
            refused: 0,
            window: WINDOW,
            syncing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Accept a message: on its way to disk when this returns, sent as soon as the link allows.
    /// `tag` comes back from [`Publisher::next_event`] when the broker acknowledges it.
    pub fn submit(
        &mut self,
        topic: &str,
        payload: &[u8],
        class: Class,
        retain: bool,
        ttl: Option<Duration>,
        tag: Option<T>,
    ) -> Result<(), OutboxError> {
        let id = self.outbox.append(class, retain, topic, payload, ttl, now_ms())?;
        if let Some(tag) = tag {
            self.tags.insert(id, tag);
        }
        self.pump();
        Ok(())
    }

    /// Wait for the next link event and apply it. Returns the tag of a message the broker has
    /// just acknowledged (`Some(Some(tag))`), `Some(None)` for any other event, and `None` when
    /// the link has ended. Cancel-safe: the only await is the event channel's receive.
    pub async fn next_event(&mut self) -> Option<Option<T>> {
        let event = self.link.events.recv().await?;
        Some(self.apply(event))
    }

    fn apply(&mut self, event: LinkEvent) -> Option<T> {
        let acked = match self.pairing.apply(&event) {
            Outcome::Acked(id) => {
                self.outbox.acknowledged(id);
                self.tags.remove(&id)
            }
            Outcome::Refused(id, why) => {
                // Retrying a refusal (an ACL, a quota) would be refused again: drop it, loudly.
                if self.refused == 0 {
                    tracing::error!("the MQTT broker refused a publish ({why}): check this client's ACL; refused messages are dropped and counted");
                }
                self.refused += 1;
                self.outbox.refused(id);
                self.tags.remove(&id);
                None
            }
            Outcome::Nothing => None,
        };
        match event {
            LinkEvent::Connected { session_present, receive_max } => {
                // Never more outstanding than the broker takes unacknowledged (Mosquitto: 20),
                // less one for the status publish: rumqttc resends everything outstanding at a
                // reconnect, and past the broker's limit its packet ids would collide.
                self.window = receive_max.map_or(WINDOW, |m| (m as usize).saturating_sub(1).clamp(1, WINDOW));
                self.connected = true;
                self.ever_connected = true;
                if !session_present {
                    self.outbox.rewind();
                }
                self.publish_status(true);
                self.status_changed = false;
            }
            LinkEvent::Error { .. } => self.connected = false,
            LinkEvent::Sent(_) | LinkEvent::Acked { .. } => {}
        }
        self.pump();
        acked
    }

    /// Replace the retained `online` status (the pressure level changed). It goes out ahead of
    /// the backlog as soon as the window has room (never past it: the broker's receive maximum
    /// is a hard limit), and every later CONNACK republishes this one.
    pub fn set_online_status(&mut self, online: String) {
        self.status.online = online;
        self.status_changed = true;
        self.pump();
    }

    /// Publish the retained status directly (not through the outbox: it is regenerated at every
    /// CONNACK and at shutdown, and must go ahead of any backlog).
    fn publish_status(&mut self, online: bool) {
        let payload = if online { &self.status.online } else { &self.status.offline };
        if self.link.client.try_publish(self.status.topic.clone(), true, payload.clone().into_bytes(), None) {
            self.pairing.requested(None);
        }
    }

    /// Hand the oldest unsent messages to rumqttc while the link is up and the window has room.
    fn pump(&mut self) {
        if self.status_changed && self.connected && self.pairing.outstanding() < self.window {
            self.status_changed = false;
            self.publish_status(true);
        }
        while self.connected && self.pairing.outstanding() < self.window {
            let now = now_ms();
            let message = match self.outbox.next_to_send(now) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("{e}");
                    break;
                }
            };
            let id = message.id;
            // Sent as MQTT 5 message expiry: a broker holding it for an offline subscriber drops
            // it when it goes stale, as the outbox would have.
            let expiry = message.expires_ms.map(|e| Duration::from_millis(e.saturating_sub(now)));
            let request = self.link.client.try_publish(message.topic, message.retain, message.payload, expiry);
            if request {
                self.pairing.requested(Some(id));
            } else {
                // The client's queue is closed or full: offer the message again later.
                self.outbox.unsend(id);
                break;
            }
        }
    }

    /// Periodic work ([`super::outbox::SYNC_INTERVAL`]): force the outbox to disk, retire expired
    /// messages, and send what the window allows.
    pub fn tick(&mut self) -> Result<(), OutboxError> {
        self.outbox.expire(now_ms());
        // fdatasync on a blocking thread: on an SD card it can take tens of milliseconds, which
        // would otherwise hold every PUBACK waiting behind it. One at a time; a tick that finds
        // the last one still running leaves the data for the next.
        if !self.syncing.load(Ordering::Acquire) {
            if let Some(file) = self.outbox.sync_later()? {
                self.syncing.store(true, Ordering::Release);
                let syncing = self.syncing.clone();
                let dir = self.outbox.dir().to_path_buf();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = file.sync_data() {
                        tracing::error!("outbox {}: cannot sync: {e}", dir.display());
                    }
                    syncing.store(false, Ordering::Release);
                });
            }
        }
        if self.tags.len() > self.outbox.depth() {
            let outbox = &self.outbox;
            self.tags.retain(|id, _| outbox.is_pending(*id));
        }
        self.pump();
        Ok(())
    }

    /// Whether [`Publisher::tick`] has work: the outbox's upkeep, a status to republish, or tags
    /// to forget. An idle hub's output task then sleeps instead of waking ten times a second.
    pub fn needs_tick(&self) -> bool {
        self.outbox.needs_upkeep() || self.status_changed || self.tags.len() > self.outbox.depth()
    }

    /// Messages waiting in the outbox, and the age of the oldest.
    pub fn backlog(&self) -> (usize, Option<Duration>) {
        (self.outbox.depth(), self.outbox.oldest_age(now_ms()))
    }

    pub fn disk_bytes(&self) -> u64 {
        self.outbox.disk_bytes()
    }

    /// Messages the broker refused (answered with a failure reason).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    pub fn stats(&self) -> &OutboxStats {
        self.outbox.stats()
    }

    /// Publishes the client dropped with a session the broker did not resume (resent from the
    /// outbox).
    pub fn resent_after_session_loss(&self) -> u64 {
        self.pairing.forgotten()
    }

    /// Shut down: while the broker is connected, give it up to `patience` to take the backlog,
    /// then publish `offline`, disconnect and force the outbox to disk. While it is not, nothing
    /// is waited for: everything is already in the outbox for the next run.
    pub async fn close(mut self, patience: Duration, mut on_ack: impl FnMut(T)) -> Result<Closed, OutboxError> {
        // Events already waiting (a CONNACK that just came in, acknowledgements) tell the state
        // of the link now; without them a link that has just come back would look down.
        while let Ok(event) = self.link.events.try_recv() {
            if let Some(tag) = self.apply(event) {
                on_ack(tag);
            }
        }
        let deadline = tokio::time::Instant::now() + patience;
        // The backlog first, then `offline` last (a clean DISCONNECT suppresses the will, so the
        // retained status would otherwise stay `online`), each bounded.
        while self.connected && self.outbox.depth() > 0 && self.wait_event(deadline, &mut on_ack).await {}
        if self.connected {
            self.publish_status(false);
            let deadline = deadline.max(tokio::time::Instant::now() + STATUS_PATIENCE);
            while self.connected && self.pairing.outstanding() > 0 && self.wait_event(deadline, &mut on_ack).await {}
        }
        self.link.close().await;
        self.outbox.sync()?;
        Ok(Closed {
            left: self.outbox.depth(),
            ever_connected: self.ever_connected,
            stats: self.outbox.stats().clone(),
            refused: self.refused,
        })
    }

    /// Apply the next event before `deadline`; false when the deadline passed or the link ended.
    async fn wait_event(&mut self, deadline: tokio::time::Instant, on_ack: &mut impl FnMut(T)) -> bool {
        match tokio::time::timeout_at(deadline, self.next_event()).await {
            Ok(Some(Some(tag))) => {
                on_ack(tag);
                true
            }
            Ok(Some(None)) => true,
            Ok(None) | Err(_) => false,
        }
    }

    pub fn outbox_dir(&self) -> &std::path::Path {
        self.outbox.dir()
    }
}
