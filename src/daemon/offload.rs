//! Starting the hub's side of offload: which stage goes, and the connection it goes over.

use super::output::Delivery;
use crate::bridge::offload::{link, OffloadConfig, Offloader};
use crate::bridge::Topics;
use crate::config::Config;
use crate::fusion::Fusion;
use anyhow::{bail, Context};

/// The offloader and the index of the stage it sends. Connects in the background: until the
/// broker is there, windows that would be offloaded get the hub's answer.
pub fn start(
    offload: &OffloadConfig,
    config: &Config,
    run: &str,
    fusion: &Fusion,
) -> anyhow::Result<(Offloader<Delivery>, usize)> {
    let n = fusion.slots().len();
    let stage = offload.stage.unwrap_or(n - 1);
    if stage >= n {
        bail!("[offload] stage = {stage}, but the cascade has {n} stage(s) (0 to {})", n - 1);
    }
    let mqtt = config.mqtt.as_ref().context("[offload] needs [mqtt]")?;
    let settings = mqtt.settings(&config.hub.id, &config.base_dir).map_err(|e| anyhow::anyhow!("[mqtt] {e}"))?;
    let topics = Topics::new(&config.hub.id);
    // Its own client id: the publisher's session is persistent and must not be taken over.
    let client_id = format!("{}-offload", settings.client_id);
    let link = link::open(&settings, client_id, topics.offload_response());
    let m = &fusion.slots()[stage].active().manifest;
    tracing::info!("offload: stage {stage} (`{}`) may go to workers when the governor says so", m.name);
    let offloader =
        Offloader::new(link, topics.offload_request(), topics.offload_response(), run, offload.max_in_flight);
    Ok((offloader, stage))
}
