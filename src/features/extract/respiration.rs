//! Respiration from a belt: the rate over the breaths that start in the window, and the belt's
//! quality. (The rate derived from the heartbeats is read with the heart, in `cardiac.rs`.)

use crate::features::channel::{ChannelState, Processor};
use crate::features::names::Feature;
use crate::features::quality::{basic_flags, Flags, Quality};
use crate::features::vector::FeatureVector;
use crate::signal::Modality;
use crate::window::ChannelWindow;

pub(super) fn read(st: &ChannelState, ch: &ChannelWindow, fv: &mut FeatureVector) {
    let from = st.window_from(ch.values.len());
    let flags = basic_flags(ch, &st.summary(ch));
    if let Processor::Resp { breaths, .. } = &st.processor {
        let (a, b) = breaths.as_slices();
        let first = a.iter().chain(b).find(|&&t| t >= from);
        let inside = a.iter().chain(b).filter(|&&t| t >= from).count();
        if let (Some(&first), Some(&last)) = (first, breaths.back()) {
            if inside >= 2 && last > first {
                let span_s = (last - first) as f64 / ch.spec.rate_hz;
                fv.set(Feature::RespRateBpm, (inside - 1) as f64 / span_s * 60.0);
            }
        }
    }
    let score = if flags.contains(Flags::FLATLINE) { 0.0 } else { ch.coverage() };
    fv.set(Feature::QualityResp, score as f64);
    fv.quality.push(Quality { modality: Modality::Resp, score, flags });
}
