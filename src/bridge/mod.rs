//! The way out: feedback to stdout and to MQTT clinicians' topics.
//!
//! [`output`] is one task that receives finished [`Feedback`] from the pipeline thread and writes
//! it to stdout and, when a broker is configured and reachable, publishes it on the v1 topic tree
//! (QoS 1, `tcp_nodelay`, retained `status` with an `offline` LWT). It measures delivery: stdout
//! write, or PUBACK. The durable outbox, TLS, metrics topic and offload join here in their issues.

pub mod mqtt;
pub mod output;
pub mod payload;

pub use mqtt::MqttConfig;
pub use output::{OutputFormat, OutputOptions};
pub use payload::{Feedback, Status};

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
