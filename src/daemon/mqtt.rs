//! Starting the MQTT side of a run: the outbox, the connection, and what the output task needs to
//! report on it.

use super::output::{Mqtt, ReportedSensor};
use crate::bridge::link::{self, Connect};
use crate::bridge::outbox::Outbox;
use crate::bridge::publisher::StatusMessages;
use crate::bridge::{MqttConfig, Publisher, Status, Topics};
use crate::config::Config;
use crate::ingest::Health;
use anyhow::Context;
use std::time::Duration;

/// Open the outbox and connect. `Ok(None)` when the broker is optional and unreachable.
pub async fn start(
    mqtt: &MqttConfig,
    config: &Config,
    run: &str,
    status: &Status,
    health: &[(String, Health)],
) -> anyhow::Result<Option<Mqtt>> {
    let hub = &config.hub.id;
    let topics = Topics::new(hub);
    let statuses = StatusMessages {
        topic: topics.status(),
        online: status.to_json(),
        offline: Status { state: "offline", ..status.clone() }.to_json(),
    };
    // The outbox first: its lock keeps a second daemon with this client id from connecting and
    // taking over the first one's session.
    let dir = mqtt.outbox_dir(hub, &config.base_dir).map_err(|e| anyhow::anyhow!("[mqtt] outbox_dir: {e}"))?;
    let outbox = Outbox::open(&dir, mqtt.outbox_max_bytes()).context("[mqtt] cannot open the outbox")?;
    let link = match link::connect(mqtt, hub, &config.base_dir, &statuses.topic, statuses.offline.clone())
        .await
        .map_err(|e| anyhow::anyhow!("[mqtt] {e}"))?
    {
        Connect::Link(link) => link,
        Connect::Skipped => return Ok(None),
    };
    let recovered = outbox.depth();
    if recovered > 0 {
        tracing::info!("outbox {}: {recovered} messages from an earlier run will be sent first", dir.display());
    }
    let sensors = config
        .sensors
        .iter()
        .zip(health)
        .map(|(s, (_, h))| ReportedSensor {
            id: s.id.clone(),
            subject: s.subject.clone(),
            kind: s.source.kind(),
            health: h.clone(),
        })
        .collect();
    Ok(Some(Mqtt {
        publisher: Publisher::new(link, outbox, statuses),
        topics,
        hub: hub.clone(),
        run: run.to_string(),
        feedback_ttl: mqtt.feedback_ttl(),
        metrics_interval: Duration::from_secs_f64(mqtt.metrics_interval_s),
        sensors,
        optional: mqtt.optional,
        status: status.clone(),
    }))
}
