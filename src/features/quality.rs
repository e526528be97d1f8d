//! Signal quality: why a channel is less than clean ([`Flags`]) and the per-modality score a
//! window reports ([`Quality`]). The flags every channel can raise from its block summary are
//! decided here; the modality readers (`extract/`) add their own (contact, motion, beats).

use super::stats::Summary;
use crate::signal::Modality;
use crate::window::ChannelWindow;
use serde::Serialize;

/// Why a channel's quality is below 1; a small set, carried as bits so windows do not allocate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    /// Samples the nominal rate promised never arrived.
    pub const GAP: Flags = Flags(1);
    /// NaN or infinite samples.
    pub const NON_FINITE: Flags = Flags(2);
    /// No variation at all: sensor off or disconnected.
    pub const FLATLINE: Flags = Flags(4);
    /// Over 1 % of samples sit exactly on the window's extremes: the ADC saturates.
    pub const CLIPPING: Flags = Flags(8);
    /// Over 20 % of the beat intervals fail the plausibility checks.
    pub const IMPLAUSIBLE_RR: Flags = Flags(16);
    /// EDA under 0.05 µS: the electrodes are not on skin.
    pub const NO_CONTACT: Flags = Flags(32);
    /// The wearer moved (accelerometer) while a motion-sensitive signal was recorded.
    pub const MOTION: Flags = Flags(64);
    /// Pulse amplitudes vary beyond what the circulation does: artefacts in the PPG.
    pub const PULSE_ARTIFACT: Flags = Flags(128);

    const NAMES: [(Flags, &'static str); 8] = [
        (Flags::GAP, "gap"),
        (Flags::NON_FINITE, "non_finite"),
        (Flags::FLATLINE, "flatline"),
        (Flags::CLIPPING, "clipping"),
        (Flags::IMPLAUSIBLE_RR, "implausible_rr"),
        (Flags::NO_CONTACT, "no_contact"),
        (Flags::MOTION, "motion"),
        (Flags::PULSE_ARTIFACT, "pulse_artifact"),
    ];

    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }

    pub fn insert(&mut self, f: Flags) {
        self.0 |= f.0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags' names, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES.into_iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| n)
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// Signal quality of one modality in one window, 0 (unusable) to 1 (clean).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Quality {
    pub modality: Modality,
    pub score: f32,
    pub flags: Flags,
}

/// Flags any channel can raise: gaps, non-finite samples, flat line, clipping at the extremes.
pub(super) fn basic_flags(ch: &ChannelWindow, s: &Summary) -> Flags {
    let mut flags = Flags::default();
    if ch.missing > 0 {
        flags.insert(Flags::GAP);
    }
    if s.n_finite < s.n {
        flags.insert(Flags::NON_FINITE);
    }
    if s.n_finite == 0 || s.max - s.min <= f32::EPSILON * s.max.abs().max(1.0) {
        flags.insert(Flags::FLATLINE);
    } else {
        let at_edge = s.at_min + s.at_max;
        if at_edge * 100 > s.n_finite && at_edge > 4 {
            flags.insert(Flags::CLIPPING);
        }
    }
    flags
}
