//! The thin btleplug layer: pick the adapter, find the device, connect, find the
//! characteristics our streams need. Everything here is I/O; what the bytes mean is
//! `ingest::protocol::ble`'s business.

use super::config::BleConfig;
use crate::ingest::protocol::ble::pmd;
use crate::ingest::protocol::ble::stream::{Gatt, StreamKind};
use btleplug::api::{
    bleuuid::uuid_from_u16, Central, CharPropFlags, Characteristic, Manager as _, Peripheral as _, ScanFilter,
};
use btleplug::platform::{Adapter, Manager, Peripheral};
use std::time::Duration;
use uuid::Uuid;

pub const HEART_RATE_SERVICE: u16 = 0x180D;
pub const HEART_RATE_MEASUREMENT: u16 = 0x2A37;
pub const BATTERY_LEVEL: u16 = 0x2A19;

/// How long BlueZ may take to connect and to resolve services before we call it a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn pmd_uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("a constant UUID")
}

/// A btleplug manager: a connection to BlueZ on the D-Bus system bus.
pub async fn manager() -> Result<Manager, String> {
    Manager::new().await.map_err(|e| {
        format!(
            "cannot reach BlueZ over D-Bus ({e}): is the system bus up, bluetoothd running, and may this user use it?"
        )
    })
}

/// The adapter `wanted` names (`hci0`), or the first.
pub async fn adapter(manager: &Manager, wanted: Option<&str>) -> Result<Adapter, String> {
    let adapters = manager.adapters().await.map_err(|e| format!("cannot list Bluetooth adapters: {e}"))?;
    let mut names = Vec::new();
    for a in adapters {
        let info = a.adapter_info().await.unwrap_or_default();
        // BlueZ's info reads `hci0 (usb:v1D6Bp0246d0537)`.
        let name = info.split_whitespace().next().unwrap_or_default().to_string();
        if wanted.is_none_or(|w| w == name) {
            return Ok(a);
        }
        names.push(name);
    }
    Err(match wanted {
        Some(w) => format!(
            "no Bluetooth adapter `{w}` (found: {})",
            if names.is_empty() { "none".into() } else { names.join(", ") }
        ),
        None => "no Bluetooth adapter found (is bluetoothd running, and may this user talk to it?)".into(),
    })
}

/// Whether `address` and `name` are the device `config` asks for.
pub fn is_wanted(config: &BleConfig, address: &str, name: Option<&str>) -> bool {
    match (&config.address, &config.name) {
        (Some(a), _) => a.eq_ignore_ascii_case(address),
        (None, Some(prefix)) => name.is_some_and(|n| n.starts_with(prefix.as_str())),
        (None, None) => false,
    }
}

/// Scan until the wanted device shows up or `timeout` passes: (peripheral, name, RSSI).
pub async fn find(
    adapter: &Adapter,
    config: &BleConfig,
    timeout: Duration,
) -> Result<(Peripheral, String, Option<i16>), String> {
    // No service filter: a Polar strap advertises its Heart Rate service but not PMD, and the
    // device is matched by address or name anyway.
    adapter.start_scan(ScanFilter::default()).await.map_err(|e| format!("cannot start a scan: {e}"))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let found = loop {
        if let Some(found) = wanted_peripheral(adapter, config).await {
            break Ok(found);
        }
        if tokio::time::Instant::now() >= deadline {
            break Err(format!(
                "{} not found within {:.0} s of scanning",
                config.device_label(),
                timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Discovery costs radio time the connection needs.
    let _ = adapter.stop_scan().await;
    found
}

async fn wanted_peripheral(adapter: &Adapter, config: &BleConfig) -> Option<(Peripheral, String, Option<i16>)> {
    for p in adapter.peripherals().await.ok()? {
        let Ok(Some(props)) = p.properties().await else { continue };
        let address = props.address.to_string();
        let name = props.local_name.clone().or(props.advertisement_name.clone());
        if is_wanted(config, &address, name.as_deref()) {
            let label = format!("{} ({address})", name.unwrap_or_else(|| "unnamed".into()));
            return Some((p, label, props.rssi));
        }
    }
    None
}

/// Why a device could not be opened.
pub enum OpenError {
    /// The link failed (connect, discovery): worth trying again.
    Link(String),
    /// The device lacks a service a stream needs: trying again cannot help.
    Missing(String),
}

/// A connected device and the characteristics our streams use.
pub struct Link {
    pub peripheral: Peripheral,
    pub heart_rate: Option<Characteristic>,
    pub battery: Option<Characteristic>,
    pub pmd_control: Option<Characteristic>,
    pub pmd_data: Option<Characteristic>,
}

impl Link {
    /// Connect and resolve services; an error says what is missing.
    pub async fn open(peripheral: Peripheral, config: &BleConfig) -> Result<Link, OpenError> {
        let timed = |what: &str| OpenError::Link(format!("{what} took longer than {} s", CONNECT_TIMEOUT.as_secs()));
        tokio::time::timeout(CONNECT_TIMEOUT, peripheral.connect())
            .await
            .map_err(|_| timed("connecting"))?
            .map_err(|e| OpenError::Link(format!("cannot connect: {e}")))?;
        tokio::time::timeout(CONNECT_TIMEOUT, peripheral.discover_services())
            .await
            .map_err(|_| timed("service discovery"))?
            .map_err(|e| OpenError::Link(format!("service discovery failed: {e}")))?;
        let chars = peripheral.characteristics();
        let find = |uuid: Uuid| chars.iter().find(|c| c.uuid == uuid).cloned();
        let link = Link {
            heart_rate: find(uuid_from_u16(HEART_RATE_MEASUREMENT)),
            battery: find(uuid_from_u16(BATTERY_LEVEL)),
            pmd_control: find(pmd_uuid(pmd::CONTROL_POINT_UUID)),
            pmd_data: find(pmd_uuid(pmd::DATA_UUID)),
            peripheral,
        };
        for s in config.stream_specs() {
            let missing = match s.kind {
                StreamKind::Hr => link.heart_rate.is_none().then_some("the Heart Rate service"),
                _ => (link.pmd_control.is_none() || link.pmd_data.is_none()).then_some("Polar's PMD service"),
            };
            if let Some(what) = missing {
                return Err(OpenError::Missing(format!("the device has no {what}, which stream `{:?}` needs", s.kind)));
            }
        }
        Ok(link)
    }

    /// Which of our characteristics a notification came from.
    pub fn source_of(&self, uuid: Uuid) -> Option<Gatt> {
        let is = |c: &Option<Characteristic>| c.as_ref().is_some_and(|c| c.uuid == uuid);
        if is(&self.pmd_data) {
            Some(Gatt::PmdData)
        } else if is(&self.heart_rate) {
            Some(Gatt::HeartRate)
        } else if is(&self.pmd_control) {
            Some(Gatt::PmdControl)
        } else if is(&self.battery) {
            Some(Gatt::Battery)
        } else {
            None
        }
    }

    /// The battery characteristic, if it can notify (else it is read now and then).
    pub fn battery_notifies(&self) -> bool {
        self.battery.as_ref().is_some_and(|c| c.properties.contains(CharPropFlags::NOTIFY))
    }
}

/// The profiles biofeedd can stream from a device advertising `services`.
pub fn profiles(services: &[Uuid]) -> Vec<&'static str> {
    let mut p = Vec::new();
    if services.contains(&uuid_from_u16(HEART_RATE_SERVICE)) {
        p.push("hr");
    }
    if services.contains(&pmd_uuid(pmd::SERVICE_UUID)) {
        p.push("pmd (ecg/acc/ppg)");
    }
    p
}
