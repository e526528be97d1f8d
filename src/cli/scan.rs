//! `biofeedd scan`: nearby BLE devices, for writing a `kind = "ble"` source.

use anyhow::Context;
use biofeedd::ingest::ble::scan;

pub fn scan(adapter: Option<&str>, seconds: f64) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start tokio")?;
    let seen = runtime.block_on(scan::scan(adapter, seconds)).map_err(anyhow::Error::msg)?;
    super::out::print(&scan::format(&seen))
}
