//! The way out to MQTT: the v1 topic tree, payloads, the connection and delivery tracking.
//!
//! [`mqtt`] connects rumqttc v5 (`tcp_nodelay`, keep-alive, retained `offline` LWT) and polls its
//! event loop in its own task; [`publisher`] publishes with QoS 1 and pairs each PUBACK with the
//! message it acknowledges by packet id; [`payload`] defines the JSON payloads (schemas in
//! `schemas/`). The durable outbox will sit between the output task and the publisher; TLS, the
//! metrics and sensor-state topics and offload join here in their issues.
//!
//! Architecture invariant: the topic tree is built only by [`Topics`].

pub mod mqtt;
pub mod payload;
pub mod publisher;

pub use mqtt::MqttConfig;
pub use payload::{Feedback, Status};
pub use publisher::Publisher;

/// Topic names of the v1 tree for one hub.
#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
}

impl Topics {
    pub fn new(hub: &str) -> Self {
        Topics { root: format!("biofeedd/v1/{hub}") }
    }
    pub fn status(&self) -> String {
        format!("{}/status", self.root)
    }
    pub fn feedback(&self, subject: &str) -> String {
        format!("{}/{subject}/feedback", self.root)
    }
}
