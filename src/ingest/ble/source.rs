//! The BLE source as a component, and its task: a supervisor per device that finds it, connects,
//! starts its streams and feeds every notification through the [`Assembler`] onto the rings.
//!
//! ```text
//! scan ──found──▶ connect ▶ discover ▶ subscribe ▶ start PMD streams ──▶ stream ──┐
//!   ▲ └─timeout─▶ backoff (doubling, ±25 % jitter) ◀── disconnect / no data / error ┘
//! ```
//! Each device has its own task and its own D-Bus connection, so one strap's trouble (a slow
//! connect, a dropped link) never holds up another or the pipeline. Whenever it lets go of a
//! link it can still reach, it stops the Polar streams it started (Polar's protocol has the
//! central stop what it started) before disconnecting. `session.rs` holds one connection's
//! life: setup, streaming, the control point.

use super::config::BleConfig;
use super::link::{self, Link};
use crate::ingest::backoff::Backoff;
use crate::ingest::protocol::ble::capture::{CaptureHeader, CaptureWriter};
use crate::ingest::protocol::ble::stream::{Assembler, Gatt, StreamSpec, TimeBase, Timed};
use crate::ingest::{Health, LinkState, RunningSource, SourceContext, SourceError, SourceReport};
use crate::ring::ChannelProducer;
use crate::signal::ChunkStamp;
use btleplug::api::{Central, Peripheral as _};
use btleplug::platform::Manager;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long disconnecting may take before the link is simply dropped.
const LET_GO: Duration = Duration::from_secs(2);

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

/// Open the capture file, never over an earlier one: a restarted daemon (or a second sensor
/// given the same path) writes beside it, the new file named with the start time.
fn open_capture(path: &Path, config: &BleConfig) -> Result<CaptureWriter<BufWriter<File>>, SourceError> {
    let unavailable = |p: &Path, e: std::io::Error| {
        SourceError::Unavailable(format!("{}: cannot write the capture: {e}", p.display()))
    };
    let file = match File::create_new(path) {
        Ok(file) => (file, path.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let stem = path.file_stem().map_or_else(|| "capture".into(), |s| s.to_string_lossy().into_owned());
            let ext = path.extension().map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
            let beside = path.with_file_name(format!("{stem}-{}{ext}", unix_now() as u64));
            let file = File::create_new(&beside).map_err(|e| unavailable(&beside, e))?;
            tracing::info!("{} exists; capturing to {}", path.display(), beside.display());
            (file, beside)
        }
        Err(e) => return Err(unavailable(path, e)),
    };
    let header = CaptureHeader {
        streams: config.stream_specs().into_iter().map(Into::into).collect(),
        device: config.device_label(),
    };
    CaptureWriter::new(BufWriter::new(file.0), &header).map_err(|e| unavailable(&file.1, e))
}

/// How one connection ended.
pub(super) enum Ended {
    Shutdown,
    /// BlueZ reported the link down: nothing can be said to the device any more.
    Disconnected,
    /// Worth trying again (no data, a timeout, a transient refusal): why.
    Lost(String),
    /// Trying again cannot help (the device lacks a service, refuses the configured settings):
    /// the source gives up and says why.
    Failed(String),
}

pub(super) struct Supervisor {
    pub(super) config: BleConfig,
    pub(super) sensor: String,
    pub(super) streams: Vec<StreamSpec>,
    pub(super) assembler: Assembler,
    producers: Vec<ChannelProducer>,
    pub(super) health: Health,
    pub(super) shutdown: watch::Receiver<bool>,
    capture: Option<CaptureWriter<BufWriter<File>>>,
    report: SourceReport,
    pub(super) timed: Timed,
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
            let why = match ended {
                Ended::Shutdown => break,
                Ended::Failed(why) => {
                    tracing::error!("sensor `{}`: {why}; giving up on this device", self.sensor);
                    self.report.failure = Some(why);
                    self.health.set_state(LinkState::Failed);
                    return self.finish(false);
                }
                Ended::Disconnected => "disconnected".to_string(),
                Ended::Lost(why) => why,
            };
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
        self.health.set_state(LinkState::Ended);
        self.finish(true)
    }

    /// The report, once the source is done.
    fn finish(mut self, completed: bool) -> SourceReport {
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
        self.report.completed = completed;
        self.report
    }

    /// Sleep `delay` unless shutdown comes first; `false` when it did.
    async fn wait(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.shutdown.wait_for(|stop| *stop) => false,
        }
    }

    /// One attempt: find, connect, stream until the link ends; then stop what we started (a
    /// Polar stream runs until told) and let the link go.
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
            link = Link::open(peripheral.clone(), &self.config) => Some(link),
            _ = self.shutdown.wait_for(|stop| *stop) => None,
        };
        let link = match opened {
            Some(Ok(link)) => link,
            other => {
                let _ = tokio::time::timeout(LET_GO, peripheral.disconnect()).await;
                return Ok(match other {
                    None => Ended::Shutdown,
                    Some(Err(link::OpenError::Missing(why))) => Ended::Failed(format!("{label}: {why}")),
                    Some(Err(link::OpenError::Link(why))) => Ended::Lost(format!("{label}: {why}")),
                    Some(Ok(_)) => unreachable!("matched above"),
                });
            }
        };
        *connections += 1;
        if *connections > 1 {
            self.health.reconnected();
        }
        tracing::info!("sensor `{}`: connected to {label}", self.sensor);
        self.assembler.reconnect();
        let ended = self.stream(&link, &mut events).await;
        if !matches!(ended, Ended::Disconnected) {
            self.stop_streams(&link).await;
            let _ = tokio::time::timeout(LET_GO, link.peripheral.disconnect()).await;
        }
        Ok(match ended {
            Ended::Lost(why) => Ended::Lost(format!("{label}: {why}")),
            Ended::Failed(why) => Ended::Failed(format!("{label}: {why}")),
            other => other,
        })
    }

    /// Decode one notification and push its samples onto the rings; `true` when it gave samples.
    pub(super) fn deliver(&mut self, source: Gatt, bytes: &[u8]) -> bool {
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
        !t.chunks.is_empty()
    }

    pub(super) fn flush_capture(&mut self) {
        if let Some(c) = &mut self.capture {
            let _ = c.flush();
        }
    }

    pub(super) fn capture_write(&mut self, arrival: f64, source: Gatt, bytes: &[u8]) {
        if let Some(c) = &mut self.capture {
            if let Err(e) = c.write(arrival, source, bytes) {
                tracing::warn!("sensor `{}`: capture stopped: {e}", self.sensor);
                self.capture = None;
            }
        }
    }
}

pub(super) fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
