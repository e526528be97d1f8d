//! One connection's life, for the supervisor in `source.rs`: subscribe to what the streams
//! need, negotiate and start the Polar streams on the control point, then deliver
//! notifications until the link ends. Every call to the device is bounded in time and gives way
//! to shutdown, so a device that stops answering can never hold the daemon.

use super::link::Link;
use super::source::{unix_now, Ended, Supervisor};
use crate::ingest::protocol::ble::pmd::{self, control, Measurement};
use crate::ingest::protocol::ble::stream::{ControlAnswer, Gatt, StreamKind, StreamSpec};
use btleplug::api::{CentralEvent, Characteristic, Peripheral as _, ValueNotification, WriteType};
use futures_util::{Stream, StreamExt};
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// How long one request to the device (subscribe, write, read) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a battery that does not notify is read, and the capture flushed.
const HOUSEKEEPING: Duration = Duration::from_secs(30);
/// Polar status "already in state": a stream a previous session left running.
const ALREADY_IN_STATE: u8 = 6;
/// Polar status "device in charger": it may stream again once taken off.
const DEVICE_IN_CHARGER: u8 = 13;

type Notifications = std::pin::Pin<Box<dyn Stream<Item = ValueNotification> + Send>>;

/// `call`, unless it takes longer than [`STEP_TIMEOUT`] or shutdown comes first.
async fn bounded<T, E: Display>(
    shutdown: &mut watch::Receiver<bool>,
    what: impl Display,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Ended> {
    tokio::select! {
        r = tokio::time::timeout(STEP_TIMEOUT, call) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Ended::Lost(format!("{what}: {e}"))),
            Err(_) => Err(Ended::Lost(format!("{what}: no answer within {} s", STEP_TIMEOUT.as_secs()))),
        },
        _ = shutdown.wait_for(|stop| *stop) => Err(Ended::Shutdown),
    }
}

impl Supervisor {
    /// Subscribe, start the PMD streams, then deliver notifications until the link ends.
    pub(super) async fn stream(
        &mut self,
        link: &Link,
        events: &mut (impl Stream<Item = CentralEvent> + Unpin),
    ) -> Ended {
        match self.setup(link).await {
            Ok(notifications) => self.deliver_until_lost(link, events, notifications).await,
            Err(ended) => ended,
        }
    }

    async fn setup(&mut self, link: &Link) -> Result<Notifications, Ended> {
        let mut shutdown = self.shutdown.clone();
        let p = &link.peripheral;
        let mut notifications = bounded(&mut shutdown, "cannot receive notifications", p.notifications()).await?;
        let wants_pmd = self.streams.iter().any(|s| s.kind.measurement().is_some());
        let wants_hr = self.streams.iter().any(|s| s.kind == StreamKind::Hr);
        let mut subscribe: Vec<&Characteristic> = Vec::new();
        if wants_hr {
            subscribe.extend(&link.heart_rate);
        }
        if wants_pmd {
            subscribe.extend(link.pmd_control.iter().chain(&link.pmd_data));
        }
        subscribe.extend(link.battery.as_ref().filter(|_| link.battery_notifies()));
        for c in subscribe {
            bounded(&mut shutdown, format!("cannot subscribe to {}", c.uuid), p.subscribe(c)).await?;
        }
        let pmd_streams: Vec<(Measurement, StreamSpec)> =
            self.streams.iter().filter_map(|s| Some((s.kind.measurement()?, *s))).collect();
        for (m, spec) in pmd_streams {
            self.start(link, m, &spec, &mut notifications).await?;
        }
        Ok(notifications)
    }

    /// Start measurement `m` with the configured settings, each replaced by the sensor's first
    /// offer where it does not offer the configured one.
    async fn start(
        &mut self,
        link: &Link,
        m: Measurement,
        spec: &StreamSpec,
        notifications: &mut Notifications,
    ) -> Result<(), Ended> {
        let offered = match m {
            // PPI takes no settings.
            Measurement::Ppi => None,
            _ => self.request(link, &control::get_settings_request(m), notifications).await?.offered,
        };
        let (request, note) = spec.start_request(offered.as_ref()).expect("a PMD stream has a start request");
        if let Some(note) = note {
            tracing::warn!("sensor `{}`: {note}", self.sensor);
        }
        for attempt in 0..2 {
            let answer = self.request(link, &request, notifications).await?;
            match answer.result {
                Ok(()) => {
                    tracing::info!("sensor `{}`: {m} streaming ({} Hz configured)", self.sensor, spec.rate_hz);
                    return Ok(());
                }
                Err(pmd::PmdError::Refused { status: ALREADY_IN_STATE, .. }) if attempt == 0 => {
                    // Left running by an earlier session, perhaps with other settings.
                    self.request(link, &control::stop_request(m), notifications).await?;
                }
                Err(e @ pmd::PmdError::Refused { status: DEVICE_IN_CHARGER, .. }) => {
                    return Err(Ended::Lost(e.to_string()))
                }
                Err(e) => {
                    return Err(Ended::Failed(format!(
                        "{e}; check the stream's settings ({spec:?}) against the device"
                    )))
                }
            }
        }
        Err(Ended::Lost(format!("{m} would not start")))
    }

    /// Write `request` to the control point and wait for its answer, delivering any data that
    /// arrives meanwhile.
    async fn request(
        &mut self,
        link: &Link,
        request: &[u8],
        notifications: &mut Notifications,
    ) -> Result<ControlAnswer, Ended> {
        let cp = link.pmd_control.as_ref().expect("Link::open checked the PMD service");
        let mut shutdown = self.shutdown.clone();
        let what = control::hex(request);
        let write = link.peripheral.write(cp, request, WriteType::WithResponse);
        bounded(&mut shutdown, format!("cannot write `{what}` to the control point"), write).await?;
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let n = tokio::select! {
                n = tokio::time::timeout_at(deadline, notifications.next()) => n,
                _ = shutdown.wait_for(|stop| *stop) => return Err(Ended::Shutdown),
            };
            let n = match n {
                Err(_) => {
                    return Err(Ended::Lost(format!("no answer to `{what}` within {} s", STEP_TIMEOUT.as_secs())))
                }
                Ok(None) => return Err(Ended::Lost("the notification stream ended".into())),
                Ok(Some(n)) => n,
            };
            let Some(source) = link.source_of(n.uuid) else { continue };
            if source != Gatt::PmdControl {
                self.deliver(source, &n.value);
                continue;
            }
            self.timed.clear();
            let arrival = unix_now();
            self.capture_write(arrival, source, &n.value);
            self.assembler.push(source, &n.value, arrival, &mut self.timed);
            let (op, measurement) = (request[0], request.get(1).copied());
            if let Some(answer) =
                self.timed.responses.iter().find(|a| a.op as u8 == op && Some(a.measurement) == measurement)
            {
                return Ok(answer.clone());
            }
        }
    }

    /// Deliver notifications until the link is lost, shutdown comes, or no data comes for
    /// `data_timeout_s` (only samples count: a heart-rate strap's 1 Hz notifications must not
    /// keep a dead ECG stream looking alive).
    async fn deliver_until_lost(
        &mut self,
        link: &Link,
        events: &mut (impl Stream<Item = CentralEvent> + Unpin),
        mut notifications: Notifications,
    ) -> Ended {
        let id = link.peripheral.id();
        let silence = Duration::from_secs_f64(self.config.data_timeout());
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let mut last_data = tokio::time::Instant::now();
        // Its own receiver: `self` is borrowed by the branches while this one waits.
        let mut shutdown = self.shutdown.clone();
        // A battery that does not notify is read in the background: a slow read must not hold
        // up the samples (their arrival stamps would bunch).
        let mut battery_read: Option<tokio::task::JoinHandle<Option<Vec<u8>>>> = None;
        loop {
            tokio::select! {
                n = notifications.next() => match n {
                    Some(n) => {
                        if let Some(source) = link.source_of(n.uuid) {
                            if self.deliver(source, &n.value) && source != Gatt::Battery {
                                last_data = tokio::time::Instant::now();
                            }
                        }
                    }
                    None => return Ended::Lost("the notification stream ended".into()),
                },
                e = events.next() => match e {
                    Some(CentralEvent::DeviceDisconnected(d)) if d == id => return Ended::Disconnected,
                    Some(CentralEvent::RssiUpdate { id: d, rssi }) if d == id => self.health.set_rssi(rssi),
                    Some(_) => {}
                    None => return Ended::Lost("BlueZ's event stream ended".into()),
                },
                _ = tokio::time::sleep_until(last_data + silence) => {
                    return Ended::Lost(format!("no data for {:.1} s", silence.as_secs_f64()));
                }
                read = async { battery_read.as_mut().expect("guarded").await }, if battery_read.is_some() => {
                    battery_read = None;
                    if let Ok(Some(value)) = read {
                        self.deliver(Gatt::Battery, &value);
                    }
                }
                _ = housekeeping.tick() => {
                    if let (Some(c), None, false) = (&link.battery, &battery_read, link.battery_notifies()) {
                        let (p, c) = (link.peripheral.clone(), c.clone());
                        battery_read = Some(tokio::spawn(async move {
                            tokio::time::timeout(STEP_TIMEOUT, p.read(&c)).await.ok().and_then(Result::ok)
                        }));
                    }
                    self.flush_capture();
                }
                _ = shutdown.wait_for(|stop| *stop) => return Ended::Shutdown,
            }
        }
    }

    /// Stop every PMD stream (best effort, bounded): Polar's protocol has the central stop what
    /// it started, and a stream left running would greet the next session "already in state".
    pub(super) async fn stop_streams(&mut self, link: &Link) {
        let Some(cp) = &link.pmd_control else { return };
        for m in self.streams.iter().filter_map(|s| s.kind.measurement()) {
            let stop = control::stop_request(m);
            let write = link.peripheral.write(cp, &stop, WriteType::WithResponse);
            let _ = tokio::time::timeout(Duration::from_millis(500), write).await;
        }
    }
}
