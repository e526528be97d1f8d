//! Movement, from the accelerometer axes of one sensor: the magnitude's level and spread, ENMO,
//! and the `motion` feature the cardiac reader uses to judge a PPG.
//!
//! The magnitude is not a window channel, so it has its own running statistics, fed with the
//! magnitude of the fresh samples only.

use crate::features::channel::ChannelState;
use crate::features::names::Feature;
use crate::features::quality::{basic_flags, Flags, Quality};
use crate::features::stats::RunningStats;
use crate::features::vector::FeatureVector;
use crate::signal::Modality;
use crate::window::Window;

/// Standard deviation of the acceleration magnitude above which the wearer is moving, g. Sitting,
/// typing and slow gestures stay under it; walking is about 0.2 g.
const MOTION_STD_G: f64 = 0.05;

/// Streaming magnitude statistics over the accelerometer axes (same sensor, same rate).
#[derive(Debug)]
pub(super) struct AccState {
    rate_hz: f64,
    axes: usize,
    mag: RunningStats,
    enmo: RunningStats,
}

/// Read the window's accelerometer axes (the first three `acc` channels); `acc` is the magnitude
/// state, started over when the axes' rate or number changes; `states` are the channels' states.
pub(super) fn read(
    acc: &mut Option<AccState>,
    states: &[Option<ChannelState>],
    window: &Window,
    hop_s: f64,
    fv: &mut FeatureVector,
) {
    // Magnitude over the axes present (normally x, y, z of one sensor, same rate).
    let mut idx = [usize::MAX; 3];
    let mut n_axes = 0;
    for (k, c) in window.channels.iter().enumerate() {
        if c.spec.modality == Modality::Acc && !c.values.is_empty() && n_axes < 3 {
            idx[n_axes] = k;
            n_axes += 1;
        }
    }
    if n_axes == 0 {
        return;
    }
    let axes = &idx[..n_axes];
    let fs = window.channels[axes[0]].spec.rate_hz;
    let len = axes.iter().map(|&k| window.channels[k].values.len()).min().unwrap_or(0);
    let fresh = axes.iter().map(|&k| window.channels[k].fresh).min().unwrap_or(0).min(len);
    let stale = acc.as_ref().is_none_or(|a| a.rate_hz != fs || a.axes != n_axes);
    let hop = ((hop_s * fs).round() as usize).max(1);
    let magnitude = |i: usize| -> f32 {
        axes.iter()
            .map(|&k| {
                let v = &window.channels[k].values;
                v[v.len() - len + i].powi(2)
            })
            .sum::<f32>()
            .sqrt()
    };
    let enmo = |m: f32| if m.is_finite() { (m - 1.0).max(0.0) } else { m };
    let start = if stale {
        *acc = Some(AccState {
            rate_hz: fs,
            axes: n_axes,
            mag: RunningStats::new(hop, len),
            enmo: RunningStats::new(hop, len),
        });
        0
    } else {
        len - fresh
    };
    let acc = acc.as_mut().expect("just set");
    for i in start..len {
        let m = magnitude(i);
        acc.mag.push(m);
        acc.enmo.push(enmo(m));
    }
    let mag = acc.mag.window_with(len, magnitude);
    if let (Some(mean), Some(std)) = (mag.mean(), mag.std()) {
        fv.set(Feature::AccMagMeanG, mean);
        fv.set(Feature::AccMagStdG, std);
        // Movement: the magnitude wanders more than a still or slowly turning wrist's does.
        fv.set(Feature::Motion, if std > MOTION_STD_G { 1.0 } else { 0.0 });
    }
    if let Some(m) = acc.enmo.window_with(len, |i| enmo(magnitude(i))).mean() {
        // ENMO (van Hees et al. 2013): Euclidean norm minus one g, negatives clipped.
        fv.set(Feature::AccEnmoG, m);
    }
    let mut flags = Flags::default();
    let mut coverage = 1.0f32;
    for &k in axes {
        let ch = &window.channels[k];
        let st = states[k].as_ref().expect("state per channel");
        flags.insert(basic_flags(ch, &st.summary(ch)));
        coverage = coverage.min(ch.coverage());
    }
    fv.quality.push(Quality { modality: Modality::Acc, score: coverage, flags });
}
