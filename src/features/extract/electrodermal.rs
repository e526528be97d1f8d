//! Electrodermal activity: the level (mean, spread, minimum, slope, tonic component), the skin
//! conductance responses that start in the window, and whether the electrodes touch skin.

use crate::features::channel::{ChannelState, Processor};
use crate::features::names::Feature;
use crate::features::quality::{basic_flags, Flags, Quality};
use crate::features::vector::FeatureVector;
use crate::signal::Modality;
use crate::window::ChannelWindow;

/// Below this mean conductance (µS) the electrodes are not on skin.
const NO_CONTACT_US: f64 = 0.05;

pub(super) fn read(st: &ChannelState, ch: &ChannelWindow, fv: &mut FeatureVector) {
    let fs = ch.spec.rate_hz;
    let sum = st.summary(ch);
    let mut flags = basic_flags(ch, &sum);
    if let (Some(mean), Some(std)) = (sum.mean(), sum.std()) {
        fv.set(Feature::EdaMeanUs, mean);
        fv.set(Feature::EdaStdUs, std);
        fv.set(Feature::EdaMinUs, sum.min as f64);
        if mean < NO_CONTACT_US {
            flags.insert(Flags::NO_CONTACT);
        }
    }
    if let Some(s) = sum.slope_per_sample() {
        fv.set(Feature::EdaSlopeUsPerMin, s * fs * 60.0);
    }
    let from = st.window_from(ch.values.len());
    if let Processor::Eda { tonic, scrs, .. } = &st.processor {
        // The tonic series is not in the window; its cut block is rebuilt from the raw values
        // by reading the tonic filter's past output, which the running stats still hold whole
        // except at the window's very start: use block summaries only (exact for whole blocks).
        if let Some(m) = tonic.window_blocks(ch.values.len()).mean() {
            fv.set(Feature::EdaTonicUs, m);
        }
        let (mut count, mut amp, mut rise) = (0usize, 0.0, 0.0);
        for s in scrs.iter().filter(|s| s.onset >= from) {
            count += 1;
            amp += s.amplitude;
            rise += s.rise_s;
        }
        let minutes = ch.values.len() as f64 / fs / 60.0;
        fv.set(Feature::ScrCount, count as f64);
        if minutes > 0.0 {
            fv.set(Feature::ScrRatePerMin, count as f64 / minutes);
        }
        fv.set(Feature::ScrAmpMeanUs, if count > 0 { amp / count as f64 } else { 0.0 });
        if count > 0 {
            fv.set(Feature::ScrRiseS, rise / count as f64);
        }
    }
    let score = if flags.contains(Flags::FLATLINE) || flags.contains(Flags::NO_CONTACT) { 0.0 } else { ch.coverage() };
    fv.set(Feature::QualityEda, score as f64);
    fv.quality.push(Quality { modality: Modality::Eda, score, flags });
}
