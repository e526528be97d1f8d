//! The output task: takes records off the pipeline's queue and gives each to the sinks and the
//! MQTT publisher; measures delivery; says goodbye on MQTT when the queue closes.

use crate::bridge::{Publisher, Status, Topics};
use crate::metrics::{SharedMetrics, Stage};
use crate::sink::stdout::Stdout;
use crate::sink::tensor::TensorFile;
use crate::sink::Record;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// When a feedback message entered the pipeline and left it: delivery latencies start here.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    arrival: Instant,
    handed: Instant,
}

/// How long shutdown waits for the broker's outstanding acknowledgements.
const ACK_PATIENCE: Duration = Duration::from_secs(3);

/// The sinks one run writes to.
pub struct Sinks {
    pub stdout: Stdout,
    pub tensors: Option<TensorFile>,
    pub mqtt: Option<(Publisher<Delivery>, Topics, Status)>,
}

/// Run until the pipeline closes `records`; then flush, publish `offline` and disconnect.
pub async fn run(mut records: mpsc::Receiver<Record>, mut sinks: Sinks, metrics: SharedMetrics) -> anyhow::Result<()> {
    if let Some((publisher, topics, status)) = &mut sinks.mqtt {
        // A failed publish means the client has shut down; the event loop has logged why.
        let _ = publisher.publish(topics.status(), status.to_json(), true, None).await;
    }
    loop {
        tokio::select! {
            record = records.recv() => {
                let Some(record) = record else { break };
                deliver(record, &mut sinks, &metrics).await?;
            }
            Some(acked) = next_ack(&mut sinks.mqtt) => {
                if let Some(delivery) = acked {
                    delivered(&metrics, delivery, true);
                }
            }
        }
    }
    let Sinks { stdout, tensors, mqtt } = sinks;
    let dropped = stdout.finish().await;
    metrics.lock().expect("metrics lock").counters.stdout_lines_dropped = dropped;
    if let Some(tensors) = tensors {
        tensors.finish()?;
    }
    let Some((mut publisher, topics, status)) = mqtt else { return Ok(()) };
    let offline = Status { state: "offline", ..status };
    let _ = publisher.publish(topics.status(), offline.to_json(), true, None).await;
    // Wait (bounded) for every PUBACK so the summary counts what the broker really took.
    let unacknowledged = publisher.close(ACK_PATIENCE, |d| delivered(&metrics, d, true)).await;
    if unacknowledged > 0 {
        tracing::warn!("{unacknowledged} publishes not acknowledged by the broker at shutdown");
    }
    Ok(())
}

async fn deliver(record: Record, sinks: &mut Sinks, metrics: &SharedMetrics) -> anyhow::Result<()> {
    match record {
        Record::Features(row) => {
            sinks.stdout.features(&row).await;
            if let (Some(tensors), Some(raw)) = (&mut sinks.tensors, &row.raw) {
                tensors.append(raw)?;
            }
        }
        Record::Feedback { feedback, arrival, handed } => {
            sinks.stdout.feedback(&feedback).await;
            let delivery = Delivery { arrival, handed };
            match &mut sinks.mqtt {
                Some((publisher, topics, _)) => {
                    let topic = topics.feedback(&feedback.subject);
                    match publisher.publish(topic, feedback.to_json(), false, Some(delivery)).await {
                        Ok(()) => metrics.lock().expect("metrics lock").counters.published += 1,
                        Err(e) => {
                            tracing::warn!("feedback #{} for `{}` not published: {e}", feedback.seq, feedback.subject)
                        }
                    }
                }
                // No broker: delivery is the hand-over to the stdout writer.
                None => delivered(metrics, delivery, false),
            }
        }
    }
    Ok(())
}

/// The next acknowledgement event of the publisher, or never when there is none.
async fn next_ack(mqtt: &mut Option<(Publisher<Delivery>, Topics, Status)>) -> Option<Option<Delivery>> {
    match mqtt {
        Some((publisher, _, _)) => publisher.next_event().await,
        None => std::future::pending().await,
    }
}

fn delivered(metrics: &SharedMetrics, d: Delivery, acked: bool) {
    let now = Instant::now();
    let mut m = metrics.lock().expect("metrics lock");
    m.record(Stage::Output, now - d.handed);
    m.record(Stage::EndToEnd, now - d.arrival);
    m.counters.acked += acked as u64;
}
