//! The way out to MQTT: the v1 topic tree, payloads, the durable outbox and the connection.
//!
//! Data flows one way: the output task hands each message to the [`Publisher`], which appends it
//! to the [`outbox`] (on disk before anything is sent) and feeds rumqttc from there ([`link`]:
//! the client and its event-loop task; [`pairing`]: PUBACKs matched to messages by packet id).
//! [`client`] puts rumqttc's MQTT 5 and 3.1.1 clients behind one face.
//! [`config`] and [`tls`] hold `[mqtt]`: URL, credentials, rustls, the outbox's bounds.
//! [`payload`] defines the JSON payloads (schemas in `schemas/`). [`offload`] sends a window's
//! heavy stage to workers over MQTT 5 request/response, on a connection of its own.
//!
//! Architecture invariant: the topic tree is built only by [`Topics`].

pub mod client;
pub mod config;
pub mod link;
pub mod offload;
pub mod outbox;
pub mod pairing;
pub mod payload;
pub mod publisher;
pub mod reports;
pub mod tls;

pub use config::MqttConfig;
pub use payload::{BeatMessage, Feedback, Status};
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
    /// Retained hub status; the last will says `offline`.
    pub fn status(&self) -> String {
        format!("{}/status", self.root)
    }
    pub fn feedback(&self, subject: &str) -> String {
        format!("{}/{subject}/feedback", self.root)
    }
    /// One message per heartbeat of the subject.
    pub fn beat(&self, subject: &str) -> String {
        format!("{}/{subject}/beat", self.root)
    }
    /// Retained state of one sensor (its source's health).
    pub fn sensor_state(&self, sensor: &str) -> String {
        format!("{}/sensor/{sensor}/state", self.root)
    }
    /// Periodic pipeline metrics of the hub.
    pub fn metrics(&self) -> String {
        format!("{}/metrics", self.root)
    }
    /// Where this hub's offload requests go.
    pub fn offload_request(&self) -> String {
        format!("{}/offload/req", self.root)
    }
    /// Where workers answer this hub (the requests' MQTT 5 response topic).
    pub fn offload_response(&self) -> String {
        format!("{}/offload/resp", self.root)
    }
    /// What workers of `group` subscribe to: the requests of `hubs` (`+`: every hub), shared
    /// among the group.
    pub fn offload_worker_filter(group: &str, hubs: &str) -> String {
        format!("$share/{group}/biofeedd/v1/{hubs}/offload/req")
    }
}
