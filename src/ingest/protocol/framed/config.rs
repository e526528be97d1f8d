//! `protocol = { type = "framed", … }`: which channel ids are which channels, and which CRC the
//! firmware uses.

use super::Crc;
use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use crate::signal::{ChannelSpec, Modality};
use serde::Deserialize;

/// The framed protocol's table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FramedConfig {
    /// `"crc16"` or `"crc32"`: refuse frames with the other CRC. Default: accept either (each
    /// frame's flags say which it carries, and it is always checked).
    pub crc: Option<Crc>,
    /// The channels to keep, by the id the firmware sends; blocks of other ids are skipped.
    pub channels: Vec<FramedChannel>,
}

/// One channel: value = raw sample × `scale` + `offset`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FramedChannel {
    /// Channel id in the frames, 0 to 255.
    pub id: u8,
    /// Default `ch<id>`.
    pub name: Option<String>,
    pub modality: Modality,
    /// Unit after scaling.
    pub unit: String,
    /// The channel's own sampling rate, Hz.
    pub rate_hz: f64,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

impl FramedChannel {
    pub fn channel_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("ch{}", self.id))
    }
}

impl FramedConfig {
    /// Check every field; paths are relative to the `protocol` table.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.channels.is_empty() {
            return Err(Invalid::new(key_path!["channels"], "the framed protocol needs at least one channel").help(
                "add e.g. channels = [{ id = 0, name = \"ecg\", modality = \"ecg\", unit = \"mV\", rate_hz = 250 }]",
            ));
        }
        for (i, ch) in self.channels.iter().enumerate() {
            Invalid::bounded(key_path!["channels", i, "rate_hz"], bounds::SAMPLE_RATE_HZ, ch.rate_hz)
                .map_err(|e| e.help("the rate the firmware samples this channel at"))?;
            Invalid::scale(key_path!["channels", i, "scale"], ch.scale)?;
            Invalid::bounded(key_path!["channels", i, "offset"], bounds::OFFSET, ch.offset)?;
            if self.channels[..i].iter().any(|c| c.id == ch.id) {
                return Err(Invalid::new(
                    key_path!["channels", i, "id"],
                    format!("channel id {} is used twice", ch.id),
                )
                .help("each id the firmware sends maps to one channel"));
            }
            let name = ch.channel_name();
            if self.channels[..i].iter().any(|c| c.channel_name() == name) {
                return Err(Invalid::new(key_path!["channels", i], format!("channel name `{name}` is used twice"))
                    .help("give one of them a distinct `name`"));
            }
        }
        Ok(())
    }

    /// One channel per `channels` entry, in order.
    pub fn specs(&self) -> Vec<ChannelSpec> {
        self.channels
            .iter()
            .map(|c| ChannelSpec::new(c.channel_name(), c.modality, c.unit.clone(), c.rate_hz))
            .collect()
    }

    /// The config that reads frames whose block ids are the positions of `specs` (at most 256),
    /// samples unscaled, either CRC.
    pub fn for_encoder(specs: &[ChannelSpec]) -> FramedConfig {
        let channels = specs
            .iter()
            .take(256)
            .enumerate()
            .map(|(id, s)| FramedChannel {
                id: id as u8,
                name: Some(s.name.clone()),
                modality: s.modality,
                unit: s.unit.clone(),
                rate_hz: s.rate_hz,
                scale: 1.0,
                offset: 0.0,
            })
            .collect();
        FramedConfig { crc: None, channels }
    }

    /// A config with one channel per id in `ids`, for tests and benches.
    pub fn plain(ids: &[u8], rate_hz: f64) -> FramedConfig {
        let channels = ids
            .iter()
            .map(|&id| FramedChannel {
                id,
                name: None,
                modality: Modality::Other,
                unit: "a.u.".into(),
                rate_hz,
                scale: 1.0,
                offset: 0.0,
            })
            .collect();
        FramedConfig { crc: None, channels }
    }
}
