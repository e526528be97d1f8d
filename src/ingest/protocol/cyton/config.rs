//! `protocol = { type = "cyton", … }`: the gain each channel's ADS1299 runs at, which of the 8
//! channels to keep and what they are, and whether to read the accelerometer.

use super::{microvolts_per_count, ACCEL_RATE_HZ, RATE_HZ};
use crate::diagnostic::Invalid;
use crate::key_path;
use crate::signal::{ChannelSpec, Modality};
use serde::Deserialize;

/// The gains the ADS1299 offers (its `x…X` command's codes 0–6).
pub const GAINS: [u32; 7] = [1, 2, 4, 6, 8, 12, 24];

/// The Cyton protocol's table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CytonConfig {
    /// Programmable gain of every channel (`gain = 24`, the board's default) or of each of the 8
    /// (`gain = [24, 24, 12, …]`); the µV scale depends on it.
    #[serde(default)]
    pub gain: Gain,
    /// Channels to keep; empty (default) keeps all 8 as `eeg1`…`eeg8` in µV.
    #[serde(default)]
    pub channels: Vec<CytonChannel>,
    /// Emit `acc_x`, `acc_y`, `acc_z` in g at 25 Hz from the accelerometer packets (default true).
    #[serde(default = "yes")]
    pub accelerometer: bool,
}

/// One of the board's 8 channels: value = counts in µV × `scale`, in `unit`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CytonChannel {
    /// Board channel, 1 to 8.
    pub index: u8,
    /// Default `eeg<index>`.
    pub name: Option<String>,
    #[serde(default = "eeg")]
    pub modality: Modality,
    /// Default `uV`.
    #[serde(default = "microvolts")]
    pub unit: String,
    /// Applied after the µV conversion, e.g. 0.001 for mV.
    #[serde(default = "one")]
    pub scale: f64,
}

/// `gain = 24` or `gain = [24, 24, 24, 24, 24, 24, 24, 24]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Gain {
    All(u32),
    Each(Vec<u32>),
}

impl Default for Gain {
    fn default() -> Self {
        Gain::All(24)
    }
}

impl Gain {
    /// Gain of board channel `index` (1 to 8).
    pub fn of(&self, index: u8) -> f64 {
        match self {
            Gain::All(g) => *g as f64,
            Gain::Each(gs) => gs.get(usize::from(index.max(1)) - 1).copied().unwrap_or(24) as f64,
        }
    }
}

fn yes() -> bool {
    true
}
fn eeg() -> Modality {
    Modality::Eeg
}
fn microvolts() -> String {
    "uV".into()
}
fn one() -> f64 {
    1.0
}

impl CytonChannel {
    pub fn channel_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("eeg{}", self.index))
    }
}

impl CytonConfig {
    /// The channels in decoding order: the configured ones, or all 8 by default.
    pub fn eeg_channels(&self) -> Vec<CytonChannel> {
        if !self.channels.is_empty() {
            return self.channels.clone();
        }
        (1..=8)
            .map(|index| CytonChannel { index, name: None, modality: eeg(), unit: microvolts(), scale: 1.0 })
            .collect()
    }

    /// Check every field; paths are relative to the `protocol` table.
    pub fn validate(&self) -> Result<(), Invalid> {
        let allowed = "one of 1, 2, 4, 6, 8, 12, 24 (the ADS1299's gains)";
        match &self.gain {
            Gain::All(g) if !GAINS.contains(g) => {
                return Err(Invalid::new(key_path!["gain"], format!("must be {allowed}, not {g}"))
                    .help("24 is the board's default"))
            }
            Gain::Each(gs) if gs.len() != 8 => {
                return Err(Invalid::new(
                    key_path!["gain"],
                    format!("needs 8 gains, one per channel, not {}", gs.len()),
                )
                .help("or a single number for every channel"))
            }
            Gain::Each(gs) => {
                if let Some(i) = gs.iter().position(|g| !GAINS.contains(g)) {
                    return Err(Invalid::new(key_path!["gain", i], format!("must be {allowed}, not {}", gs[i])));
                }
            }
            Gain::All(_) => {}
        }
        for (i, ch) in self.channels.iter().enumerate() {
            if !(1..=8).contains(&ch.index) {
                return Err(Invalid::new(
                    key_path!["channels", i, "index"],
                    format!("must be 1 to 8, not {}", ch.index),
                )
                .help("the Cyton's channels are numbered 1 to 8, as on the board"));
            }
            Invalid::scale(key_path!["channels", i, "scale"], ch.scale)?;
            let name = ch.channel_name();
            let taken = ["acc_x", "acc_y", "acc_z"].contains(&name.as_str()) && self.accelerometer;
            if taken || self.channels[..i].iter().any(|c| c.channel_name() == name) {
                return Err(Invalid::new(key_path!["channels", i], format!("channel name `{name}` is used twice"))
                    .help("give one of them a distinct `name`"));
            }
        }
        Ok(())
    }

    /// The EEG channels in order, then `acc_x`, `acc_y`, `acc_z` if the accelerometer is read.
    pub fn specs(&self) -> Vec<ChannelSpec> {
        let mut specs: Vec<ChannelSpec> = self
            .eeg_channels()
            .iter()
            .map(|c| ChannelSpec::new(c.channel_name(), c.modality, c.unit.clone(), RATE_HZ))
            .collect();
        if self.accelerometer {
            for axis in ["acc_x", "acc_y", "acc_z"] {
                specs.push(ChannelSpec::new(axis, Modality::Acc, "g", ACCEL_RATE_HZ));
            }
        }
        specs
    }

    /// The config that reads a simulated board playing `specs` on channels 1, 2, … (at most 8):
    /// gain 24, a channel in `mV` scaled by 0.001 (sent as µV), any other read as the numbers sent, in
    /// its own unit; no accelerometer.
    pub fn for_simulator(specs: &[ChannelSpec]) -> CytonConfig {
        let channels = specs
            .iter()
            .take(8)
            .zip(1..)
            .map(|(s, index)| CytonChannel {
                index,
                name: Some(s.name.clone()),
                modality: s.modality,
                // The simulator sends a mV channel as µV, any other as its own numbers.
                unit: s.unit.clone(),
                scale: if s.unit == "mV" { 0.001 } else { 1.0 },
            })
            .collect();
        CytonConfig { gain: Gain::All(24), channels, accelerometer: false }
    }

    /// (byte offset of the channel's 3 bytes in a packet, µV per count × scale), in order.
    pub(super) fn factors(&self) -> Vec<(usize, f64)> {
        self.eeg_channels()
            .iter()
            .map(|c| {
                let index = c.index.clamp(1, 8);
                (2 + 3 * usize::from(index - 1), microvolts_per_count(self.gain.of(index)) * c.scale)
            })
            .collect()
    }
}
