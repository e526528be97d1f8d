//! Skin temperature: level and trend from the channel's block statistics.

use crate::features::channel::ChannelState;
use crate::features::names::Feature;
use crate::features::quality::{basic_flags, Quality};
use crate::features::vector::FeatureVector;
use crate::signal::Modality;
use crate::window::ChannelWindow;

pub(super) fn read(st: &ChannelState, ch: &ChannelWindow, fv: &mut FeatureVector) {
    let sum = st.summary(ch);
    if let Some(mean) = sum.mean() {
        fv.set(Feature::TempMeanC, mean);
    }
    if let Some(s) = sum.slope_per_sample() {
        fv.set(Feature::TempSlopeCPerMin, s * ch.spec.rate_hz * 60.0);
    }
    let flags = basic_flags(ch, &sum);
    fv.quality.push(Quality { modality: Modality::Temp, score: ch.coverage(), flags });
}
