//! The output task: takes records off the pipeline's queue and gives each to the sinks and the
//! MQTT publisher; reports sensor state and metrics on MQTT; measures delivery; says goodbye on
//! MQTT when the queue closes.

use crate::biofeedback::BeatEvent;
use crate::bridge::offload::{Job, Offloader};
use crate::bridge::outbox::record::Class;
use crate::bridge::outbox::SYNC_INTERVAL;
use crate::bridge::publisher::now_ms;
use crate::bridge::reports::{MetricsReport, OutboxReport, SensorState, STATE_REFRESH};
use crate::bridge::{BeatMessage, Feedback, Publisher, Status, Topics};
use crate::governor::Shed;
use crate::ingest::Health;
use crate::metrics::{DeliverySummary, SharedMetrics, Stage};
use crate::sink::stdout::Stdout;
use crate::sink::tensor::TensorFile;
use crate::sink::Record;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

/// When a feedback message entered the pipeline and left it: delivery latencies start here.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    arrival: Instant,
    handed: Instant,
    /// A beat event (its own latency stage), not a window's feedback.
    beat: bool,
}

/// How long shutdown gives a connected broker to take the outbox's backlog.
const ACK_PATIENCE: Duration = Duration::from_secs(3);
/// How often sensor health is looked at for news (the state topic's rate limit).
const STATE_CHECK: Duration = Duration::from_secs(1);

/// A sensor whose state is reported.
pub struct ReportedSensor {
    pub id: String,
    pub subject: String,
    pub kind: &'static str,
    pub health: Health,
}

/// Everything MQTT: the publisher (with its outbox) and what to say on which topic.
pub struct Mqtt {
    pub publisher: Publisher<Delivery>,
    pub topics: Topics,
    pub hub: String,
    pub run: String,
    pub feedback_ttl: Option<Duration>,
    pub metrics_interval: Duration,
    pub sensors: Vec<ReportedSensor>,
    /// `[mqtt] optional`: a broker never reached is then not a failure of the run.
    pub optional: bool,
    /// The retained status as last published: republished when the pressure level changes.
    pub status: Status,
}

/// The sinks one run writes to.
pub struct Sinks {
    pub stdout: Stdout,
    pub tensors: Option<TensorFile>,
    pub mqtt: Option<Mqtt>,
    /// Sends offloaded windows to workers and settles them (`[offload]` configured).
    pub offload: Option<Offloader<Delivery>>,
    /// Where beat events go.
    pub beats: BeatOutput,
}

/// Where the per-beat stream goes (`[beats]`), and the names its messages carry.
pub struct BeatOutput {
    pub hub: String,
    pub run: String,
    pub mqtt: bool,
    pub stdout: bool,
}

/// Run until the pipeline closes `records`; then flush and close the MQTT side. Returns what
/// MQTT delivery left behind, when there was a broker.
pub async fn run(
    mut records: mpsc::Receiver<Record>,
    mut sinks: Sinks,
    metrics: SharedMetrics,
) -> anyhow::Result<Option<DeliverySummary>> {
    let mut sync = tokio::time::interval(SYNC_INTERVAL);
    let mut state_check = tokio::time::interval(STATE_CHECK);
    let interval = sinks.mqtt.as_ref().map_or(Duration::from_secs(3600), |m| m.metrics_interval);
    let mut report = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    for t in [&mut sync, &mut state_check, &mut report] {
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    }
    let mut last_states: Vec<Option<(SensorState, Instant)>> = Vec::new();
    let has_mqtt = sinks.mqtt.is_some();
    loop {
        tokio::select! {
            record = records.recv() => {
                let Some(record) = record else { break };
                deliver(record, &mut sinks, &metrics).await?;
            }
            (feedback, delivery) = next_settled(&mut sinks.offload) => {
                note_offload(&sinks.offload, &metrics);
                deliver_feedback(feedback, delivery, &mut sinks, &metrics).await;
            }
            Some(acked) = next_ack(&mut sinks.mqtt) => {
                if let Some(delivery) = acked {
                    delivered(&metrics, delivery, true);
                }
            }
            // Only while the outbox has upkeep to do: each wake-up of an idle daemon costs more
            // (kernel and scheduler) than the tick's own work (docs/footprint.md).
            _ = sync.tick(), if sinks.mqtt.as_ref().is_some_and(|m| m.publisher.needs_tick()) => {
                if let Some(m) = &mut sinks.mqtt {
                    if let Err(e) = m.publisher.tick() {
                        tracing::error!("{e}");
                    }
                }
            }
            _ = state_check.tick(), if has_mqtt => {
                if let Some(m) = &mut sinks.mqtt {
                    report_states(m, &mut last_states);
                    report_pressure(m, &metrics);
                }
            }
            _ = report.tick(), if has_mqtt => {
                if let Some(m) = &mut sinks.mqtt {
                    report_metrics(m, &metrics, interval);
                }
            }
        }
    }
    // Nothing waits for a worker once the streams have ended: what is pending goes out as is.
    if let Some(offload) = &mut sinks.offload {
        for (feedback, delivery) in offload.drain() {
            deliver_feedback(feedback, delivery, &mut sinks, &metrics).await;
        }
    }
    note_offload(&sinks.offload, &metrics);
    let Sinks { stdout, tensors, mqtt, offload, .. } = sinks;
    if let Some(offload) = offload {
        offload.close().await;
    }
    let dropped = stdout.finish().await;
    metrics.lock().expect("metrics lock").counters.stdout_lines_dropped = dropped;
    if let Some(tensors) = tensors {
        tensors.finish()?;
    }
    let Some(mut m) = mqtt else { return Ok(None) };
    // The sensors' last word (ended, failed) before the hub says it is going.
    report_states(&mut m, &mut last_states);
    let dir = m.publisher.outbox_dir().to_path_buf();
    let closed = m.publisher.close(ACK_PATIENCE, |d| delivered(&metrics, d, true)).await?;
    if closed.left > 0 {
        tracing::warn!("{} messages wait in the outbox at {}: the next run sends them", closed.left, dir.display());
    }
    Ok(Some(DeliverySummary {
        waiting: closed.left,
        outbox_dir: dir,
        broker_reached: closed.ever_connected,
        broker_required: !m.optional,
        recovered: closed.stats.recovered,
        expired: closed.stats.expired,
        dropped_live: closed.stats.dropped_live,
        dropped_durable: closed.stats.dropped_durable,
        refused: closed.refused,
    }))
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
            deliver_feedback(feedback, Delivery { arrival, handed, beat: false }, sinks, metrics).await;
        }
        Record::Beat { subject, beat } => deliver_beat(&subject, &beat, sinks, metrics).await,
        Record::Offload(job) => {
            let job = *job;
            let delivery = Delivery { arrival: job.arrival, handed: job.handed, beat: false };
            let Some(offload) = &mut sinks.offload else {
                // Offload was planned without an offloader (cannot happen as wired): the hub's answer.
                deliver_feedback(Box::new(job.feedback), delivery, sinks, metrics).await;
                return Ok(());
            };
            let submitted = offload.submit(Job {
                request: job.request,
                feedback: Box::new(job.feedback),
                classes: job.classes,
                deadline: job.deadline,
                arrival: job.arrival,
                share: job.share,
                token: delivery,
            });
            if let Err((feedback, delivery)) = submitted {
                note_offload(&sinks.offload, metrics);
                deliver_feedback(feedback, delivery, sinks, metrics).await;
            }
        }
    }
    Ok(())
}

/// One window's feedback to MQTT and stdout.
async fn deliver_feedback(feedback: Box<Feedback>, delivery: Delivery, sinks: &mut Sinks, metrics: &SharedMetrics) {
    // The outbox first: a line on stdout then always means the broker will get it too.
    if let Some(m) = &mut sinks.mqtt {
        let topic = m.topics.feedback(&feedback.subject);
        let accepted = m.publisher.submit(
            &topic,
            feedback.to_json().as_bytes(),
            Class::Live,
            false,
            m.feedback_ttl,
            Some(delivery),
        );
        match accepted {
            Ok(()) => metrics.lock().expect("metrics lock").counters.published += 1,
            Err(e) => {
                tracing::error!("feedback #{} for `{}` not accepted by the outbox: {e}", feedback.seq, feedback.subject)
            }
        }
    }
    sinks.stdout.feedback(&feedback).await;
    if sinks.mqtt.is_none() {
        // No broker: delivery is the hand-over to the stdout writer.
        delivered(metrics, delivery, false);
    }
}

/// One beat to MQTT and, if asked for, stdout.
async fn deliver_beat(subject: &str, beat: &BeatEvent, sinks: &mut Sinks, metrics: &SharedMetrics) {
    let handed = Instant::now();
    let delivery = Delivery { arrival: beat.arrival, handed, beat: true };
    let latency_ms = (handed - beat.arrival).as_secs_f64() * 1000.0;
    let out = &sinks.beats;
    let message = BeatMessage::new(&out.hub, &out.run, subject, beat, latency_ms);
    let mut queued = false;
    if let (Some(m), true) = (&mut sinks.mqtt, out.mqtt) {
        let topic = m.topics.beat(subject);
        match m.publisher.submit(
            &topic,
            message.to_json().as_bytes(),
            Class::Live,
            false,
            m.feedback_ttl,
            Some(delivery),
        ) {
            Ok(()) => queued = true,
            Err(e) => tracing::error!("beat #{} of `{subject}` not accepted by the outbox: {e}", beat.seq),
        }
    }
    if out.stdout {
        sinks.stdout.beat(&message).await;
        if !queued {
            // No broker took it: delivery is the hand-over to the stdout writer.
            delivered(metrics, delivery, false);
        }
    }
}

/// Copy the offloader's counters into the metrics.
fn note_offload(offload: &Option<Offloader<Delivery>>, metrics: &SharedMetrics) {
    if let Some(o) = offload {
        metrics.lock().expect("metrics lock").counters.offload = o.stats();
    }
}

/// The next offloaded window settled (answered, refused or timed out), or never without offload.
async fn next_settled(offload: &mut Option<Offloader<Delivery>>) -> (Box<Feedback>, Delivery) {
    match offload {
        Some(o) => o.next().await,
        None => std::future::pending().await,
    }
}

/// Republish the retained status when the governor's level has changed since it was written.
fn report_pressure(m: &mut Mqtt, metrics: &SharedMetrics) {
    // `None` until the governor has set its first level: nothing new to say.
    let level = metrics.lock().expect("metrics lock").pressure.as_ref().map(|p| p.level.as_str());
    if level.is_none() || level == m.status.pressure {
        return;
    }
    m.status.pressure = level;
    m.publisher.set_online_status(m.status.to_json());
}

/// Publish each sensor's state when it has news, or when the last one is getting old.
fn report_states(m: &mut Mqtt, last: &mut Vec<Option<(SensorState, Instant)>>) {
    last.resize(m.sensors.len(), None);
    let now = Instant::now();
    let at = now_ms() as f64 / 1000.0;
    for (sensor, last) in m.sensors.iter().zip(last.iter_mut()) {
        let state = SensorState::new(
            &m.hub,
            &m.run,
            &sensor.id,
            &sensor.subject,
            sensor.kind,
            &sensor.health.snapshot(),
            now,
            at,
        );
        let due = match last {
            None => true,
            Some((before, when)) => state.differs_from(before) || now - *when >= STATE_REFRESH,
        };
        if !due {
            continue;
        }
        let topic = m.topics.sensor_state(&sensor.id);
        match m.publisher.submit(&topic, state.to_json().as_bytes(), Class::Durable, true, None, None) {
            Ok(()) => *last = Some((state, now)),
            Err(e) => tracing::error!("sensor `{}` state not accepted by the outbox: {e}", sensor.id),
        }
    }
}

fn report_metrics(m: &mut Mqtt, metrics: &SharedMetrics, interval: Duration) {
    let (latency, counters, pressure) = {
        let mut guard = metrics.lock().expect("metrics lock");
        (guard.take_interval(), guard.counters.clone(), guard.pressure.clone())
    };
    let (depth, oldest) = m.publisher.backlog();
    let stats = m.publisher.stats();
    let outbox = OutboxReport {
        depth,
        oldest_age_s: oldest.map(|d| d.as_secs_f64()),
        disk_bytes: m.publisher.disk_bytes(),
        expired: stats.expired,
        dropped_live: stats.dropped_live,
        dropped_durable: stats.dropped_durable,
        refused: m.publisher.refused(),
    };
    let mut report = MetricsReport::new(&m.hub, &m.run, now_ms() as f64 / 1000.0, interval, latency, &counters, outbox);
    if pressure.as_ref().is_some_and(|p| p.shed.contains(&Shed::MetricsDetail)) {
        // Shed under pressure: the counters stay, the per-stage detail goes.
        report.latency.clear();
        report.exits_per_stage.clear();
    }
    report.pressure = pressure;
    let ttl = m.feedback_ttl.or(Some(interval * 3));
    if let Err(e) = m.publisher.submit(&m.topics.metrics(), report.to_json().as_bytes(), Class::Live, false, ttl, None)
    {
        tracing::error!("metrics report not accepted by the outbox: {e}");
    }
}

/// The next acknowledgement event of the publisher, or never when there is none.
async fn next_ack(mqtt: &mut Option<Mqtt>) -> Option<Option<Delivery>> {
    match mqtt {
        Some(m) => m.publisher.next_event().await,
        None => std::future::pending().await,
    }
}

fn delivered(metrics: &SharedMetrics, d: Delivery, acked: bool) {
    let now = Instant::now();
    let mut m = metrics.lock().expect("metrics lock");
    if d.beat {
        m.record(Stage::Beat, now - d.arrival);
        return;
    }
    m.record(Stage::Output, now - d.handed);
    m.record(Stage::EndToEnd, now - d.arrival);
    m.counters.acked += acked as u64;
}
