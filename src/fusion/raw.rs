//! Raw-window inputs: the tensor a stage that reads signals (rather than features) gets.
//!
//! A manifest's `[inputs.raw]` names channels by modality, one common rate and a length. Every
//! channel of the window is brought to that rate (mean of the samples falling in each output
//! slot when the source is faster, linear interpolation when it is slower), several channels of
//! one modality (an accelerometer's axes) become their Euclidean magnitude, and each row is
//! normalised as the manifest says. The result is `[1, channels, length]`, row-major.
//!
//! Training reads this exact tensor (`biofeedd features --raw-spec … --raw-output …` dumps it),
//! so the heavy stage sees the same preparation in training and in service. Pure code, no I/O;
//! buffers are reused, so a stage allocates nothing per window once warmed up.

use crate::signal::Modality;
use crate::window::Window;
use serde::Deserialize;

/// `[inputs.raw]` of a manifest (or a training script's raw spec file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// The rate every row is resampled to, Hz.
    pub rate_hz: f64,
    /// Samples per row: the window length times `rate_hz`.
    pub length: usize,
    /// One row per entry, in the model's channel order.
    pub channels: Vec<RawChannel>,
    /// Least fraction of a channel's expected samples that must be present (default 0.8).
    #[serde(default = "default_coverage")]
    pub min_coverage: f32,
}

fn default_coverage() -> f32 {
    0.8
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub modality: Modality,
    /// How the row is normalised within the window.
    #[serde(default)]
    pub transform: Transform,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// Values as measured (in the channel's unit).
    #[default]
    None,
    /// The window's mean removed: keeps the unit and the size of changes, drops the level.
    Center,
    /// Mean removed and divided by the standard deviation: for signals in arbitrary units (PPG).
    Zscore,
}

impl RawSpec {
    /// Why the spec cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if !(self.rate_hz.is_finite() && self.rate_hz > 0.0 && self.rate_hz <= 10_000.0) {
            return Some(format!("inputs.raw.rate_hz {} is outside (0, 10000]", self.rate_hz));
        }
        if self.length == 0 || self.length > 1_000_000 {
            return Some(format!("inputs.raw.length {} is outside 1..=1000000", self.length));
        }
        if self.channels.is_empty() {
            return Some("inputs.raw.channels is empty".into());
        }
        if !(self.min_coverage > 0.0 && self.min_coverage <= 1.0) {
            return Some(format!("inputs.raw.min_coverage {} is outside (0, 1]", self.min_coverage));
        }
        None
    }

    /// Floats in the prepared tensor.
    pub fn len(&self) -> usize {
        self.channels.len() * self.length
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The input's name for messages, e.g. `raw ppg`.
    pub fn name(modality: Modality) -> String {
        format!("raw {}", modality.as_str())
    }
}

/// Reusable buffers for [`prepare`].
#[derive(Debug, Default)]
pub struct RawScratch {
    magnitude: Vec<f32>,
}

/// Whether `window` holds enough of `modality` for `spec` (its first channel of that modality
/// covers `min_coverage`).
fn usable(spec: &RawSpec, modality: Modality, window: &Window) -> bool {
    window.channels.iter().find(|c| c.spec.modality == modality).is_some_and(|c| c.coverage() >= spec.min_coverage)
}

/// The channels of `spec` that `window` lacks or holds too little of, by name, without reading
/// a sample: what a stage reports when it will not run anyway.
pub fn lacking(spec: &RawSpec, window: &Window) -> Vec<String> {
    spec.channels.iter().filter(|ch| !usable(spec, ch.modality, window)).map(|ch| RawSpec::name(ch.modality)).collect()
}

/// Fill `out` (`spec.len()` floats) from `window`. `Err` names the modalities the window lacks
/// or holds too little of (below `min_coverage`).
pub fn prepare(spec: &RawSpec, window: &Window, scratch: &mut RawScratch, out: &mut [f32]) -> Result<(), Vec<String>> {
    debug_assert_eq!(out.len(), spec.len());
    let mut missing = Vec::new();
    for (row, ch) in out.chunks_exact_mut(spec.length).zip(&spec.channels) {
        let of_modality = || window.channels.iter().filter(|c| c.spec.modality == ch.modality);
        if !usable(spec, ch.modality, window) {
            missing.push(RawSpec::name(ch.modality));
            continue;
        }
        let source: &[f32] = if of_modality().count() == 1 {
            &of_modality().next().expect("checked above").values
        } else {
            // Several axes: their magnitude, sample by sample, over the length all of them have.
            let n = of_modality().map(|c| c.values.len()).min().unwrap_or(0);
            scratch.magnitude.clear();
            scratch.magnitude.resize(n, 0.0);
            for c in of_modality() {
                for (m, v) in scratch.magnitude.iter_mut().zip(&c.values) {
                    *m += v * v;
                }
            }
            scratch.magnitude.iter_mut().for_each(|m| *m = m.sqrt());
            &scratch.magnitude
        };
        if !resample(source, row) {
            missing.push(RawSpec::name(ch.modality));
            continue;
        }
        normalise(row, ch.transform);
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Bring `src` (evenly spread over the window) to `out.len()` samples. Non-finite source samples
/// are skipped; an output slot that none reaches takes the previous slot's value. `false` when
/// `src` has no finite sample.
fn resample(src: &[f32], out: &mut [f32]) -> bool {
    let (n, len) = (src.len(), out.len());
    if n == 0 {
        return false;
    }
    if n >= len {
        // Mean of the source samples whose position falls in each output slot: sample i belongs
        // to slot floor(i * len / n), so slot j holds samples ceil(j * n / len) up to the next
        // slot's first.
        let first = |j: usize| (j * n).div_ceil(len);
        for (j, o) in out.iter_mut().enumerate() {
            let (mut sum, mut count) = (0.0f64, 0usize);
            for &v in &src[first(j)..first(j + 1)] {
                if v.is_finite() {
                    sum += v as f64;
                    count += 1;
                }
            }
            *o = if count > 0 { (sum / count as f64) as f32 } else { f32::NAN };
        }
    } else {
        // Slower source: interpolate between the samples around each output slot's centre.
        for (j, o) in out.iter_mut().enumerate() {
            let x = ((j as f64 + 0.5) * n as f64 / len as f64 - 0.5).clamp(0.0, (n - 1) as f64);
            let i = x.floor() as usize;
            let f = (x - i as f64) as f32;
            let (a, b) = (src[i], src[(i + 1).min(n - 1)]);
            *o = match (a.is_finite(), b.is_finite()) {
                (true, true) => a + (b - a) * f,
                (true, false) => a,
                (false, true) => b,
                (false, false) => f32::NAN,
            };
        }
    }
    // Gaps take the last value seen (the first finite one for a leading gap).
    let Some(first) = out.iter().copied().find(|v| v.is_finite()) else { return false };
    let mut last = first;
    for o in out.iter_mut() {
        if o.is_finite() {
            last = *o;
        } else {
            *o = last;
        }
    }
    true
}

fn normalise(row: &mut [f32], transform: Transform) {
    if transform == Transform::None {
        return;
    }
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let scale = match transform {
        Transform::Zscore => {
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            // A flat row (a sensor off the skin) stays flat rather than blowing up.
            if var.sqrt() > 1e-9 {
                1.0 / var.sqrt()
            } else {
                1.0
            }
        }
        _ => 1.0,
    };
    for v in row.iter_mut() {
        *v = ((*v as f64 - mean) * scale) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::ChannelSpec;
    use crate::window::ChannelWindow;

    fn channel(modality: Modality, name: &str, rate: f64, values: Vec<f32>) -> ChannelWindow {
        ChannelWindow { spec: ChannelSpec::new(name, modality, "u", rate), fresh: values.len(), values, missing: 0 }
    }

    fn window(channels: Vec<ChannelWindow>) -> Window {
        Window { subject: "s".into(), seq: 0, start: 0.0, end: 4.0, channels, last_arrival: std::time::Instant::now() }
    }

    fn spec(channels: &[(Modality, Transform)], rate: f64, length: usize) -> RawSpec {
        RawSpec {
            rate_hz: rate,
            length,
            channels: channels.iter().map(|&(modality, transform)| RawChannel { modality, transform }).collect(),
            min_coverage: 0.8,
        }
    }

    #[test]
    fn faster_channels_are_averaged_and_slower_ones_interpolated() {
        // 4 s: PPG at 8 Hz (32 samples) and EDA at 1 Hz (4 samples), both to 2 Hz (8 samples).
        let ppg: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let eda = vec![1.0, 2.0, 3.0, 4.0];
        let w = window(vec![channel(Modality::Ppg, "bvp", 8.0, ppg), channel(Modality::Eda, "eda", 1.0, eda)]);
        let s = spec(&[(Modality::Ppg, Transform::None), (Modality::Eda, Transform::None)], 2.0, 8);
        let mut out = vec![0.0; s.len()];
        prepare(&s, &w, &mut RawScratch::default(), &mut out).unwrap();
        // Slot j of PPG holds the mean of samples 4j..4j+3.
        assert_eq!(&out[..8], &[1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]);
        // EDA sample i sits at the centre of output slots 2i and 2i+1.
        assert_eq!(&out[8..], &[1.0, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4.0]);
    }

    #[test]
    fn accelerometer_axes_become_their_magnitude_and_rows_are_normalised() {
        let axis = |v: f32| vec![v; 8];
        let w = window(vec![
            channel(Modality::Acc, "x", 2.0, axis(3.0)),
            channel(Modality::Acc, "y", 2.0, axis(4.0)),
            channel(Modality::Acc, "z", 2.0, axis(0.0)),
            channel(Modality::Temp, "t", 2.0, vec![30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0]),
        ]);
        let s = spec(&[(Modality::Acc, Transform::None), (Modality::Temp, Transform::Zscore)], 2.0, 8);
        let mut out = vec![0.0; s.len()];
        prepare(&s, &w, &mut RawScratch::default(), &mut out).unwrap();
        assert!(out[..8].iter().all(|&v| v == 5.0));
        let temp = &out[8..];
        let mean: f32 = temp.iter().sum::<f32>() / 8.0;
        let var: f32 = temp.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 8.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{mean} {var}");
    }

    #[test]
    fn gaps_are_bridged_and_absent_or_sparse_channels_are_named() {
        let mut ppg: Vec<f32> = vec![1.0; 16];
        ppg[4..8].fill(f32::NAN);
        let mut sparse = channel(Modality::Eda, "eda", 2.0, vec![1.0; 4]);
        sparse.missing = 4; // half the window
        let w = window(vec![channel(Modality::Ppg, "bvp", 4.0, ppg), sparse]);
        let s = spec(&[(Modality::Ppg, Transform::Center), (Modality::Eda, Transform::None)], 2.0, 8);
        let mut out = vec![0.0; s.len()];
        let err = prepare(&s, &w, &mut RawScratch::default(), &mut out).unwrap_err();
        assert_eq!(err, vec!["raw eda".to_string()]);
        assert_eq!(lacking(&s, &w), err);
        assert!(out[..8].iter().all(|v| *v == 0.0), "{:?}", &out[..8]);
        let s = spec(&[(Modality::Temp, Transform::None)], 2.0, 8);
        let mut out = vec![0.0; s.len()];
        assert_eq!(prepare(&s, &w, &mut RawScratch::default(), &mut out).unwrap_err(), vec!["raw temp".to_string()]);
    }
}
