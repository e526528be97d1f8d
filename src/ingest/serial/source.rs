//! The serial source as a component, and its task: a supervisor that keeps one connection at a
//! time open, feeding bytes to the protocol's decoder and the decoded samples to the rings.
//!
//! ```text
//! open ──ok──▶ handshake ──▶ read ▶ decode ▶ push ──▶ (EOF / EIO / silence) ──┐
//!   ▲ └─err─▶ backoff (doubling, ±25 % jitter) ◀──────────────────────────────┘
//! ```
//! Shutdown stops it at any point (after telling a streaming device to stop).

use super::clock::DeviceClock;
use super::config::SerialConfig;
use super::port::{self, LowLatency};
use crate::ingest::backoff::Backoff;
use crate::ingest::protocol::{Decoded, Decoder, ProtocolConfig};
use crate::ingest::{Health, LinkState, RunningSource, SourceContext, SourceError, SourceReport};
use crate::ring::ChannelProducer;
use crate::signal::{ChannelSpec, ChunkStamp};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_serial::SerialStream;

/// Bytes taken per read: a few ms of the fastest device, so chunks stay small.
const READ_BUFFER: usize = 4096;

impl SerialConfig {
    /// Build the supervisor task. A `required` device must be present now; any other is
    /// waited for.
    pub fn build(&self, ctx: SourceContext) -> Result<RunningSource, SourceError> {
        let path = self.resolved_path(&ctx.base_dir);
        self.check_present(&path)?;
        let health = ctx.health.clone();
        let supervisor = Supervisor {
            config: self.clone(),
            path,
            sensor: ctx.sensor,
            specs: self.channels(),
            producers: ctx.producers,
            health: ctx.health,
            shutdown: ctx.shutdown,
            clock: DeviceClock::default(),
            report: SourceReport::default(),
        };
        Ok(RunningSource { health, task: Box::pin(supervisor.run()), waits_for_room: false })
    }

    /// A `required` device that is absent is an error (at `check` and at start); any other may
    /// come later.
    pub fn check_present(&self, path: &Path) -> Result<(), SourceError> {
        if self.required && !path.exists() {
            return Err(SourceError::Unavailable(format!(
                "{}: no such device, and the sensor is `required = true`",
                path.display()
            )));
        }
        Ok(())
    }
}

/// How one connection ended.
enum Ended {
    Shutdown,
    /// The device went away (EOF, an I/O error, silence): why.
    Lost(String),
}

struct Supervisor {
    config: SerialConfig,
    path: PathBuf,
    sensor: String,
    specs: Vec<ChannelSpec>,
    producers: Vec<ChannelProducer>,
    health: Health,
    shutdown: watch::Receiver<bool>,
    clock: DeviceClock,
    report: SourceReport,
}

impl Supervisor {
    async fn run(mut self) -> SourceReport {
        let mut decoder = self.config.protocol.decoder();
        let mut decoded = Decoded::new(self.specs.len());
        let mut backoff = Backoff::new(self.config.backoff_initial_s, self.config.backoff_max_s);
        let mut connections = 0u64;
        let mut last_failure = String::new();
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            let (mut port, low_latency) = match port::open(&self.config, &self.path) {
                Ok(opened) => opened,
                Err(e) => {
                    let why = format!("{}: cannot open: {e}", self.path.display());
                    if why != last_failure {
                        tracing::warn!("sensor `{}`: {why}; retrying", self.sensor);
                        last_failure = why;
                    }
                    if !self.wait(backoff.next_delay()).await {
                        break;
                    }
                    continue;
                }
            };
            connections += 1;
            if connections > 1 {
                self.health.reconnected();
            }
            if low_latency != LowLatency::NotAsked {
                tracing::info!(
                    "sensor `{}`: {} opened at {} baud, {low_latency}",
                    self.sensor,
                    self.path.display(),
                    self.config.baud
                );
            }
            decoder.reset();
            self.clock.reconnect();
            let samples_before = self.report.samples;
            let ended = self.stream(&mut port, decoder.as_mut(), &mut decoded).await;
            if self.report.samples > samples_before {
                // It streamed: whatever ends it now is news again.
                last_failure.clear();
            }
            decoder.finish(&mut decoded);
            self.deliver(&mut decoded, Instant::now());
            match ended {
                Ended::Shutdown => {
                    if let Some(stop) = handshake(&self.config.protocol).map(|h| h.stop) {
                        // Best effort: the board keeps streaming into a closed port otherwise.
                        let _ = tokio::time::timeout(Duration::from_millis(200), port.write_all(stop)).await;
                    }
                    break;
                }
                Ended::Lost(why) => {
                    // A device that opens but stays silent would say the same every few seconds.
                    let why = format!("{} lost: {why}", self.path.display());
                    if why != last_failure {
                        tracing::warn!("sensor `{}`: {why}; reconnecting", self.sensor);
                        last_failure = why;
                    }
                    self.health.set_state(LinkState::Reconnecting);
                    drop(port);
                    if self.report.samples > samples_before {
                        // It streamed: the next try is quick. A device that opens and fails at
                        // once keeps doubling the wait instead.
                        backoff.reset();
                    }
                    if !self.wait(backoff.next_delay()).await {
                        break;
                    }
                }
            }
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

    /// Read, decode and push until the connection ends or shutdown.
    async fn stream(&mut self, port: &mut SerialStream, decoder: &mut dyn Decoder, decoded: &mut Decoded) -> Ended {
        let silence = Duration::from_secs_f64(self.config.silence_timeout_s);
        if let Some(h) = handshake(&self.config.protocol) {
            if let Err(why) = self.handshake(port, &h, silence).await {
                return why;
            }
        }
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let read = tokio::select! {
                read = tokio::time::timeout(silence, port.read(&mut buf)) => read,
                _ = self.shutdown.wait_for(|stop| *stop) => return Ended::Shutdown,
            };
            let n = match read {
                Err(_) => return Ended::Lost(format!("no data for {:.1} s", silence.as_secs_f64())),
                Ok(Err(e)) => return Ended::Lost(e.to_string()),
                Ok(Ok(0)) => return Ended::Lost("end of file".into()),
                Ok(Ok(n)) => n,
            };
            let arrival = Instant::now();
            self.health.set_state(LinkState::Streaming);
            decoder.push(&buf[..n], decoded);
            self.deliver(decoded, arrival);
        }
    }

    /// Reset the device, wait for its banner's end, start streaming.
    async fn handshake(&mut self, port: &mut SerialStream, h: &Handshake, patience: Duration) -> Result<(), Ended> {
        let lost = |e: std::io::Error| Ended::Lost(e.to_string());
        self.send(port, h.reset, patience).await?;
        let mut banner = Vec::new();
        let mut buf = [0u8; 256];
        let deadline = tokio::time::Instant::now() + patience;
        while (h.ready)(&banner).is_none() {
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, port.read(&mut buf)) => read,
                _ = self.shutdown.wait_for(|stop| *stop) => return Err(Ended::Shutdown),
            };
            match read {
                Err(_) => {
                    return Err(Ended::Lost(format!(
                        "no banner ending in `$$$` within {:.1} s of reset",
                        patience.as_secs_f64()
                    )))
                }
                Ok(Err(e)) => return Err(lost(e)),
                Ok(Ok(0)) => return Err(Ended::Lost("end of file during the handshake".into())),
                // A banner is a few hundred bytes; keep only the tail that can hold the marker.
                Ok(Ok(n)) => {
                    banner.extend_from_slice(&buf[..n]);
                    let keep = banner.len().saturating_sub(1024);
                    banner.drain(..keep);
                }
            }
        }
        self.send(port, h.start, patience).await
    }

    /// Write a command, giving up after `patience` (a device that reads nothing) or at shutdown.
    async fn send(&mut self, port: &mut SerialStream, bytes: &[u8], patience: Duration) -> Result<(), Ended> {
        tokio::select! {
            written = tokio::time::timeout(patience, port.write_all(bytes)) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Ended::Lost(e.to_string())),
                Err(_) => Err(Ended::Lost(format!("the device took no command within {:.1} s", patience.as_secs_f64()))),
            },
            _ = self.shutdown.wait_for(|stop| *stop) => Err(Ended::Shutdown),
        }
    }

    /// Push what was decoded onto the rings, timed by the device clock; count the rest.
    fn deliver(&mut self, decoded: &mut Decoded, arrival: Instant) {
        self.health.decode_errors(decoded.decode_errors);
        self.health.lost_samples(decoded.lost_samples);
        self.report.skipped_records += decoded.decode_errors;
        if decoded.sample_count() > 0 {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let newest = decoded
                .channels
                .iter()
                .zip(&self.specs)
                .filter_map(|(c, spec)| Some(c.end_index()? as f64 / spec.rate_hz))
                .fold(0.0, f64::max);
            let anchor = self.clock.anchor(now, newest);
            for ((channel, spec), producer) in decoded.channels.iter().zip(&self.specs).zip(&mut self.producers) {
                for (index, values) in channel.iter_runs() {
                    let source_time = self.clock.time_of(anchor, spec, index, values.len());
                    match producer.push(ChunkStamp { source_time, arrival }, values) {
                        Ok(()) => {
                            self.report.chunks += 1;
                            self.report.samples += values.len() as u64;
                        }
                        Err(overrun) => self.report.overrun_samples += overrun.dropped as u64,
                    }
                }
            }
            self.health.arrived(arrival);
        }
        decoded.clear();
    }
}

/// The text exchange around streaming some devices need (OpenBCI's `v` … `$$$`, `b`, `s`).
struct Handshake {
    reset: &'static [u8],
    /// Where the reply to `reset` ends in what was read so far, if it has.
    ready: fn(&[u8]) -> Option<usize>,
    start: &'static [u8],
    stop: &'static [u8],
}

fn handshake(protocol: &ProtocolConfig) -> Option<Handshake> {
    use crate::ingest::protocol::cyton;
    match protocol {
        ProtocolConfig::Cyton(_) => {
            Some(Handshake { reset: cyton::RESET, ready: cyton::end_of_banner, start: cyton::START, stop: cyton::STOP })
        }
        ProtocolConfig::Line(_) | ProtocolConfig::Framed(_) => None,
    }
}
