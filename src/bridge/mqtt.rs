//! The MQTT connection: rumqttc v5 client, its event loop in its own task, and PUBACK tracking.

use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// `[mqtt]`: the broker feedback is published to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (plain TCP; TLS arrives with the durable bridge).
    pub url: String,
    /// Client id; default `biofeedd-{hub}`.
    pub client_id: Option<String>,
    /// When true, a broker that cannot be reached at start-up is skipped with a warning and
    /// feedback goes to stdout only (the demo's setting). When false, the daemon keeps retrying.
    #[serde(default)]
    pub optional: bool,
    /// Seconds to wait for the broker's CONNACK at start-up.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_s: f64,
    /// MQTT keep-alive in seconds; the broker publishes our LWT after 1.5× this without traffic.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
}

fn default_connect_timeout() -> f64 {
    3.0
}
fn default_keep_alive() -> u64 {
    15
}

impl MqttConfig {
    pub fn loopback(port: u16) -> Self {
        MqttConfig {
            url: format!("mqtt://127.0.0.1:{port}"),
            client_id: None,
            optional: false,
            connect_timeout_s: default_connect_timeout(),
            keep_alive_s: default_keep_alive(),
        }
    }

    /// rumqttc's options for this broker: the URL parsed by rumqttc itself (scheme, host, port,
    /// user and password), then our settings on top.
    pub fn options(&self, client_id: &str) -> Result<MqttOptions, String> {
        // rumqttc wants the client id in the URL; ours comes from the config, so a placeholder
        // satisfies the parser and the real one is set after.
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let mut options =
            MqttOptions::parse_url(format!("{}{sep}client_id=biofeedd", self.url)).map_err(|e| match e {
                rumqttc::v5::OptionError::Scheme if self.url.starts_with("mqtts://") => {
                    "mqtts:// (TLS) is not supported yet; use mqtt:// to a broker on this host".to_string()
                }
                rumqttc::v5::OptionError::Scheme => format!("`{}` is not an mqtt:// URL", self.url),
                other => format!("`{}`: {other}", self.url),
            })?;
        if options.broker_address().0.is_empty() {
            return Err(format!("`{}` has no host", self.url));
        }
        options.set_client_id(self.client_id.clone().unwrap_or_else(|| client_id.to_string()));
        options.set_keep_alive(Duration::from_secs(self.keep_alive_s));
        // Without this, Nagle holds each QoS 1 publish for ~40 ms (ARCHITECTURE-GUIDE §9).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(self.connect_timeout_s.ceil() as u64);
        options.set_network_options(net);
        Ok(options)
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        self.options("check")
            .map_err(|e| Invalid::new(key_path!["url"], e).help("e.g. url = \"mqtt://127.0.0.1:1883\""))?;
        Invalid::bounded(key_path!["connect_timeout_s"], bounds::CONNECT_TIMEOUT_S, self.connect_timeout_s)?;
        Invalid::bounded(key_path!["keep_alive_s"], bounds::KEEP_ALIVE_S, self.keep_alive_s as f64)?;
        Ok(())
    }
}

/// What the event-loop task tells the publisher.
#[derive(Debug)]
pub enum LinkEvent {
    /// A CONNACK; without a session present the broker (and rumqttc) forgot unacknowledged
    /// publishes, so they will not be resent.
    Connected {
        session_present: bool,
    },
    /// A publish left with this packet id (QoS 1), in the order they were requested.
    Sent(u16),
    Acked(u16),
    /// The connection failed; `unsent` publishes were requested but never given a packet id.
    Error {
        message: String,
        unsent: usize,
    },
}

/// A connected client and the task polling its event loop.
pub struct MqttLink {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    task: JoinHandle<()>,
}

/// Connect and wait for the CONNACK. Returns `Ok(None)` when the broker is unreachable and the
/// config says it is optional.
pub async fn connect(
    config: &MqttConfig,
    default_client_id: &str,
    will_topic: &str,
    will_payload: String,
) -> Result<Option<MqttLink>, String> {
    let mut options = config.options(default_client_id)?;
    let (host, port) = options.broker_address();
    options.set_last_will(LastWill::new(will_topic, will_payload, QoS::AtLeastOnce, true, None));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);

    let deadline = Duration::from_secs_f64(config.connect_timeout_s);
    let first = tokio::time::timeout(deadline, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no CONNACK within {:.1} s", config.connect_timeout_s)));

    if let Err(e) = first {
        if config.optional {
            tracing::warn!("MQTT broker {}:{port} not reachable ({e}); feedback goes to stdout only", host);
            return Ok(None);
        }
        tracing::warn!("MQTT broker {}:{port} not reachable ({e}); will keep retrying", host);
    } else {
        tracing::info!("MQTT connected to {}:{port}; publishing feedback with QoS 1", host);
    }
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(poll_loop(eventloop, tx));
    Ok(Some(MqttLink { client, events, task }))
}

/// Poll the event loop until the client disconnects. rumqttc reconnects on the next poll after
/// an error; with a session present it resends unacknowledged QoS 1 publishes, without one (a
/// clean start, our default) it drops them — the publisher counts those as lost.
async fn poll_loop(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<LinkEvent>) {
    let mut last_error: Option<String> = None;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if last_error.take().is_some() {
                    tracing::info!("MQTT reconnected");
                }
                let _ = tx.send(LinkEvent::Connected { session_present: ack.session_present });
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let _ = tx.send(LinkEvent::Acked(ack.pkid));
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                let _ = tx.send(LinkEvent::Sent(pkid));
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(&msg) {
                    tracing::warn!("MQTT connection: {msg}; retrying");
                }
                // Publishes requested but never sent now wait in `pending` with packet id 0; a
                // reconnect without a session drops them, and the publisher must know how many.
                let unsent = eventloop
                    .pending
                    .iter()
                    .filter(|r| matches!(r, rumqttc::v5::Request::Publish(p) if p.pkid == 0))
                    .count();
                let _ = tx.send(LinkEvent::Error { message: msg.clone(), unsent });
                last_error = Some(msg);
                if matches!(e, rumqttc::v5::ConnectionError::RequestsDone) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

impl MqttLink {
    /// Send DISCONNECT and wait (bounded) for the event loop to finish.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let mut c = MqttConfig::loopback(1884);
        let address = |c: &MqttConfig| c.options("id").map(|o| o.broker_address());
        assert_eq!(address(&c).unwrap(), ("127.0.0.1".to_string(), 1884));
        c.url = "mqtt://broker.local".into();
        assert_eq!(address(&c).unwrap().1, 1883);
        c.url = "mqtts://x:8883".into();
        assert!(address(&c).unwrap_err().contains("TLS"));
        c.url = "http://x".into();
        assert!(address(&c).is_err());
        c.url = "mqtt://x:99999".into();
        assert!(address(&c).is_err());
        c.url = "mqtt://".into();
        assert!(address(&c).is_err());
        c.url = "mqtt://user:secret@broker.local:1884".into();
        let o = c.options("hub").unwrap();
        let login = o.credentials().expect("credentials from the URL");
        assert_eq!(
            (o.client_id().as_str(), login.username.as_str(), login.password.as_str()),
            ("hub", "user", "secret")
        );
    }
}
