//! `biofeedd scan`: which BLE devices are near, how strong their signal is, and what biofeedd
//! can stream from each — the addresses and names a `kind = "ble"` source takes.

use super::link;
use btleplug::api::{Central, Peripheral as _, ScanFilter};
use std::time::Duration;

/// One device seen advertising.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub address: String,
    pub name: Option<String>,
    pub rssi: Option<i16>,
    /// `hr`, `pmd (ecg/acc/ppg)`: what a source could stream from it.
    pub profiles: Vec<&'static str>,
}

/// Scan `seconds` on `adapter` (default the first) and list what was seen, strongest first.
pub async fn scan(adapter: Option<&str>, seconds: f64) -> Result<Vec<Seen>, String> {
    let manager = link::manager().await?;
    let adapter = link::adapter(&manager, adapter).await?;
    adapter.start_scan(ScanFilter::default()).await.map_err(|e| format!("cannot start a scan: {e}"))?;
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    // Listed before the scan stops: BlueZ forgets the RSSI when discovery ends.
    let mut seen = Vec::new();
    for p in adapter.peripherals().await.map_err(|e| format!("cannot list devices: {e}"))? {
        let Ok(Some(props)) = p.properties().await else { continue };
        seen.push(Seen {
            address: props.address.to_string(),
            name: props.local_name.or(props.advertisement_name),
            rssi: props.rssi,
            profiles: link::profiles(&props.services),
        });
    }
    let _ = adapter.stop_scan().await;
    seen.sort_by_key(|s| std::cmp::Reverse(s.rssi.unwrap_or(i16::MIN)));
    Ok(seen)
}

/// The listing as a table.
pub fn format(seen: &[Seen]) -> String {
    if seen.is_empty() {
        return "no BLE devices seen (are they awake and advertising? a strap wakes when worn)\n".into();
    }
    let mut out = format!("{:<17}  {:>5}  {:<24}  {}\n", "address", "rssi", "name", "streams");
    for s in seen {
        let rssi = s.rssi.map_or("-".to_string(), |r| r.to_string());
        let profiles = if s.profiles.is_empty() { "-".to_string() } else { s.profiles.join(", ") };
        out.push_str(&format!(
            "{:<17}  {:>5}  {:<24}  {}\n",
            s.address,
            rssi,
            s.name.as_deref().unwrap_or("-"),
            profiles
        ));
    }
    out
}
