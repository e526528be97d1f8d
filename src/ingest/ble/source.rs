//! The BLE source as a component, and its task: a supervisor per device that finds it, connects,
//! starts its streams and feeds every notification through the [`Assembler`] onto the rings.
//!
//! ```text
//! scan ──found──▶ connect ▶ discover ▶ subscribe ▶ start PMD streams ──▶ stream ──┐
//!   ▲ └─timeout─▶ backoff (doubling, ±25 % jitter) ◀── disconnect / no data / error ┘
//! ```
//! Each device has its own task and its own D-Bus connection, so one strap's trouble (a slow
//! connect, a dropped link) never holds up another or the pipeline. Shutdown stops a Polar
//! stream explicitly (it would otherwise run on in the sensor until its battery dies) and
//! disconnects.

use super::config::BleConfig;
use super::link::{self, Link};
use crate::ingest::backoff::Backoff;
use crate::ingest::protocol::ble::capture::{CaptureHeader, CaptureWriter};
use crate::ingest::protocol::ble::pmd::{self, control, Measurement};
use crate::ingest::protocol::ble::stream::{Assembler, Source, StreamSpec, TimeBase, Timed};
use crate::ingest::{Health, LinkState, RunningSource, SourceContext, SourceError, SourceReport};
use crate::ring::ChannelProducer;
use crate::signal::ChunkStamp;
use btleplug::api::{Central, CentralEvent, Peripheral as _, WriteType};
use btleplug::platform::Manager;
use futures_util::StreamExt;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long a sensor may take to answer a control-point request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the battery is read when it does not notify, and the capture flushed.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

impl BleConfig {
    /// Build the supervisor task. The device need not be there yet: it is looked for until it is.
    pub fn build(&self, ctx: SourceContext) -> Result<RunningSource, SourceError> {
        let capture = match self.resolved_capture(&ctx.base_dir) {
            Some(path) => Some(open_capture(&path, self)?),
            None => None,
        };
        let health = ctx.health.clone();
        let streams = self.stream_specs();
        let supervisor = Supervisor {
            config: self.clone(),
            sensor: ctx.sensor,
            assembler: Assembler::new(&streams, TimeBase::Arrival),
            streams,
            producers: ctx.producers,
            health: ctx.health,
            shutdown: ctx.shutdown,
            capture,
            report: SourceReport::default(),
            timed: Timed::default(),
            manager: None,
        };
        Ok(RunningSource { health, task: Box::pin(supervisor.run()), waits_for_room: false })
    }
}

fn open_capture(path: &PathBuf, config: &BleConfig) -> Result<CaptureWriter<BufWriter<File>>, SourceError> {
    let unavailable =
        |e: std::io::Error| SourceError::Unavailable(format!("{}: cannot write the capture: {e}", path.display()));
    let file = File::create(path).map_err(unavailable)?;
    let header = CaptureHeader {
        streams: config.stream_specs().into_iter().map(Into::into).collect(),
        device: config.device_label(),
    };
    CaptureWriter::new(BufWriter::new(file), &header).map_err(unavailable)
}

/// How one connection ended.
enum Ended {
    Shutdown,
    Lost(String),
}

struct Supervisor {
    config: BleConfig,
    sensor: String,
    streams: Vec<StreamSpec>,
    assembler: Assembler,
    producers: Vec<ChannelProducer>,
    health: Health,
    shutdown: watch::Receiver<bool>,
    capture: Option<CaptureWriter<BufWriter<File>>>,
    report: SourceReport,
    timed: Timed,
    /// One D-Bus connection for the supervisor's life: btleplug never closes a manager's
    /// connection (its task outlives the manager), so one per attempt would leak one per retry.
    manager: Option<Manager>,
}

impl Supervisor {
    async fn run(mut self) -> SourceReport {
        let mut backoff = Backoff::new(self.config.backoff_initial_s, self.config.backoff_max_s);
        let mut last_failure = String::new();
        let mut connections = 0u64;
        while !*self.shutdown.borrow() {
            let samples_before = self.report.samples;
            let ended = match self.connect_and_stream(&mut connections).await {
                Ok(ended) => ended,
                Err(why) => Ended::Lost(why),
            };
            if let Some(c) = &mut self.capture {
                let _ = c.flush();
            }
            match ended {
                Ended::Shutdown => break,
                Ended::Lost(why) => {
                    if self.report.samples > samples_before {
                        last_failure.clear();
                        backoff.reset();
                    }
                    // A device out of range would say the same every second.
                    let why = format!("{}: {why}", self.config.device_label());
                    if why != last_failure {
                        tracing::warn!("sensor `{}`: {why}; retrying", self.sensor);
                        last_failure = why;
                    }
                    self.health.set_state(LinkState::Reconnecting);
                    if !self.wait(backoff.next_delay()).await {
                        break;
                    }
                }
            }
        }
        if let Some(c) = &mut self.capture {
            if let Err(e) = c.flush() {
                self.report.notes.push(format!("the capture could not be written to the end: {e}"));
            }
        }
        if let Some(ppm) = self.assembler.drift_ppm() {
            // Followed, not corrected for after the fact: worth knowing when comparing devices.
            let way = if ppm >= 0.0 { "slow" } else { "fast" };
            self.report.notes.push(format!("the sensor's clock ran {:.0} ppm {way} against the host's", ppm.abs()));
        }
        self.health.set_state(LinkState::Ended);
        self.report.completed = true;
        self.report
    }

    /// Sleep `delay` unless shutdown comes first; `false` when it did.
    async fn wait(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.shutdown.wait_for(|stop| *stop) => false,
        }
    }

    /// One attempt: find, connect, stream until the link ends.
    async fn connect_and_stream(&mut self, connections: &mut u64) -> Result<Ended, String> {
        if self.manager.is_none() {
            self.manager = Some(link::manager().await?);
        }
        let manager = self.manager.as_ref().expect("just set");
        let adapter = link::adapter(manager, self.config.adapter.as_deref()).await?;
        let mut events = adapter.events().await.map_err(|e| format!("cannot watch the adapter: {e}"))?;
        let scan = Duration::from_secs_f64(self.config.scan_timeout_s);
        self.health.set_state(LinkState::Scanning);
        let found = tokio::select! {
            found = link::find(&adapter, &self.config, scan) => found?,
            _ = self.shutdown.wait_for(|stop| *stop) => return Ok(Ended::Shutdown),
        };
        let (peripheral, label, rssi) = found;
        if let Some(rssi) = rssi {
            self.health.set_rssi(rssi);
        }
        self.health.set_state(LinkState::Connecting);
        let opened = tokio::select! {
            link = Link::open(peripheral.clone(), &self.config) => link,
            _ = self.shutdown.wait_for(|stop| *stop) => return Ok(Ended::Shutdown),
        };
        let link = match opened {
            Ok(link) => link,
            Err(why) => {
                let _ = peripheral.disconnect().await;
                return Err(format!("{label}: {why}"));
            }
        };
        *connections += 1;
        if *connections > 1 {
            self.health.reconnected();
        }
        tracing::info!("sensor `{}`: connected to {label}", self.sensor);
        self.assembler.reconnect();
        let ended = self.stream(&link, &mut events).await;
        if matches!(ended, Ended::Shutdown) {
            self.stop_streams(&link).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), link.peripheral.disconnect()).await;
        Ok(match ended {
            Ended::Lost(why) => Ended::Lost(format!("{label}: {why}")),
            shutdown => shutdown,
        })
    }

    /// Subscribe, start the PMD streams, then deliver notifications until the link ends.
    async fn stream(
        &mut self,
        link: &Link,
        events: &mut (impl futures_util::Stream<Item = CentralEvent> + Unpin),
    ) -> Ended {
        let p = &link.peripheral;
        let mut notifications = match p.notifications().await {
            Ok(n) => n,
            Err(e) => return Ended::Lost(format!("cannot receive notifications: {e}")),
        };
        let subscribe = [&link.heart_rate, &link.pmd_control, &link.pmd_data]
            .into_iter()
            .flatten()
            .chain(link.battery.as_ref().filter(|_| link.battery_notifies()));
        for c in subscribe {
            if let Err(e) = p.subscribe(c).await {
                return Ended::Lost(format!("cannot subscribe to {}: {e}", c.uuid));
            }
        }
        self.read_battery(link).await;
        for m in self.streams.iter().filter_map(|s| Some((s.kind.measurement()?, *s))).collect::<Vec<_>>() {
            if let Err(why) = self.start(link, m.0, &m.1, &mut notifications).await {
                return why;
            }
        }
        let silence = Duration::from_secs_f64(self.config.data_timeout_s);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.tick().await;
        let mut last_data = tokio::time::Instant::now();
        // Its own receiver: the select's branches need `self` while this one waits.
        let mut shutdown = self.shutdown.clone();
        loop {
            let mut housekeeping_due = false;
            tokio::select! {
                n = notifications.next() => match n {
                    Some(n) => {
                        if let Some(source) = link.source_of(n.uuid) {
                            if source != Source::Battery && source != Source::PmdControl {
                                last_data = tokio::time::Instant::now();
                            }
                            self.deliver(source, &n.value);
                        }
                    }
                    None => return Ended::Lost("the notification stream ended".into()),
                },
                e = events.next() => match e {
                    Some(CentralEvent::DeviceDisconnected(id)) if id == p.id() => return Ended::Lost("disconnected".into()),
                    Some(CentralEvent::RssiUpdate { id, rssi }) if id == p.id() => self.health.set_rssi(rssi),
                    Some(_) => {}
                    None => return Ended::Lost("BlueZ's event stream ended".into()),
                },
                _ = tokio::time::sleep_until(last_data + silence) => {
                    return Ended::Lost(format!("no data for {:.1} s", silence.as_secs_f64()));
                }
                _ = housekeeping.tick() => housekeeping_due = true,
                _ = shutdown.wait_for(|stop| *stop) => return Ended::Shutdown,
            }
            // Outside the select: its futures (one holds the shutdown flag's lock) are gone.
            if housekeeping_due {
                if !link.battery_notifies() {
                    self.read_battery(link).await;
                }
                if let Some(c) = &mut self.capture {
                    let _ = c.flush();
                }
            }
        }
    }

    /// Start measurement `m`, waiting for the sensor's answer. A stream a previous session left
    /// running ("already in state") is stopped and started again with our settings.
    async fn start(
        &mut self,
        link: &Link,
        m: Measurement,
        spec: &StreamSpec,
        notifications: &mut (impl futures_util::Stream<Item = btleplug::api::ValueNotification> + Unpin),
    ) -> Result<(), Ended> {
        let cp = link.pmd_control.as_ref().expect("Link::open checked the PMD service");
        let request = spec.start_request().expect("a PMD stream has a start request");
        for attempt in 0..2 {
            if let Err(e) = link.peripheral.write(cp, &request, WriteType::WithResponse).await {
                return Err(Ended::Lost(format!("cannot start {m}: {e}")));
            }
            match self.await_response(link, m, notifications).await? {
                Ok(()) => {
                    tracing::info!("sensor `{}`: {m} streaming at {} Hz", self.sensor, spec.rate_hz);
                    return Ok(());
                }
                Err(pmd::PmdError::Refused { status: 6, .. }) if attempt == 0 => {
                    let _ = link.peripheral.write(cp, &control::stop_request(m), WriteType::WithResponse).await;
                    let _ = self.await_response(link, m, notifications).await?;
                }
                Err(e) => return Err(Ended::Lost(e.to_string())),
            }
        }
        Err(Ended::Lost(format!("{m} would not start")))
    }

    /// The control point's answer about `m`, delivering any data that arrives meanwhile.
    async fn await_response(
        &mut self,
        link: &Link,
        m: Measurement,
        notifications: &mut (impl futures_util::Stream<Item = btleplug::api::ValueNotification> + Unpin),
    ) -> Result<Result<(), pmd::PmdError>, Ended> {
        let deadline = tokio::time::Instant::now() + CONTROL_TIMEOUT;
        loop {
            let n = tokio::select! {
                n = tokio::time::timeout_at(deadline, notifications.next()) => n,
                _ = self.shutdown.wait_for(|stop| *stop) => return Err(Ended::Shutdown),
            };
            let n = match n {
                Err(_) => {
                    return Err(Ended::Lost(format!(
                        "no answer to starting {m} within {} s",
                        CONTROL_TIMEOUT.as_secs()
                    )))
                }
                Ok(None) => return Err(Ended::Lost("the notification stream ended".into())),
                Ok(Some(n)) => n,
            };
            let Some(source) = link.source_of(n.uuid) else { continue };
            if source != Source::PmdControl {
                self.deliver(source, &n.value);
                continue;
            }
            self.timed.clear();
            let arrival = unix_now();
            self.capture_write(arrival, source, &n.value);
            self.assembler.push(source, &n.value, arrival, &mut self.timed);
            if let Some((_, result)) = self.timed.responses.iter().find(|(t, _)| *t == m as u8) {
                return Ok(result.clone());
            }
        }
    }

    /// Stop every PMD stream we started (best effort, bounded).
    async fn stop_streams(&mut self, link: &Link) {
        let Some(cp) = &link.pmd_control else { return };
        for m in self.streams.iter().filter_map(|s| s.kind.measurement()) {
            let stop = control::stop_request(m);
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                link.peripheral.write(cp, &stop, WriteType::WithResponse),
            )
            .await;
        }
    }

    async fn read_battery(&mut self, link: &Link) {
        let Some(c) = &link.battery else { return };
        if let Ok(Ok(value)) = tokio::time::timeout(Duration::from_secs(2), link.peripheral.read(c)).await {
            self.deliver(Source::Battery, &value);
        }
    }

    fn capture_write(&mut self, arrival: f64, source: Source, bytes: &[u8]) {
        if let Some(c) = &mut self.capture {
            if let Err(e) = c.write(arrival, source, bytes) {
                tracing::warn!("sensor `{}`: capture stopped: {e}", self.sensor);
                self.capture = None;
            }
        }
    }

    /// Decode one notification and push its samples onto the rings.
    fn deliver(&mut self, source: Source, bytes: &[u8]) {
        let arrival = Instant::now();
        let arrival_unix = unix_now();
        self.capture_write(arrival_unix, source, bytes);
        self.timed.clear();
        self.assembler.push(source, bytes, arrival_unix, &mut self.timed);
        let t = &self.timed;
        if t.decode_errors > 0 {
            self.health.decode_errors(t.decode_errors);
            self.report.skipped_records += t.decode_errors;
            for e in &t.errors {
                tracing::debug!("sensor `{}`: {e}", self.sensor);
            }
        }
        self.health.lost_samples(t.lost_samples);
        if let Some(level) = t.battery {
            self.health.set_battery(level);
        }
        for note in &t.notes {
            tracing::warn!("sensor `{}`: {note}", self.sensor);
        }
        for chunk in &t.chunks {
            let values = t.values_of(chunk);
            match self.producers[chunk.channel].push(ChunkStamp { source_time: chunk.time, arrival }, values) {
                Ok(()) => {
                    self.report.chunks += 1;
                    self.report.samples += values.len() as u64;
                }
                Err(overrun) => self.report.overrun_samples += overrun.dropped as u64,
            }
        }
        if !t.chunks.is_empty() {
            self.health.arrived(arrival);
            self.health.set_state(LinkState::Streaming);
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
