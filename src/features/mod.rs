//! Turns the stream of closed [`Window`]s into named feature vectors with per-modality quality.
//!
//! The feature set is fixed and named ([`FEATURE_NAMES`]); a model manifest lists the names it
//! needs, and the daemon checks at start-up that the configured channels can produce them. A
//! feature that cannot be computed in a window (channel absent, too few beats, signal flat) is
//! `NaN`, never a guess; the fusion stage decides what to do with it.
//!
//! Streaming: each channel has a processor (beat detector, EDA, respiration, running block
//! statistics) that sees only the window's *fresh* samples — those no earlier window held — and
//! keeps the events it found (beats, SCRs, breaths) for as long as a window can still contain
//! them. A window's features are then read from events and block summaries: a hop costs what its
//! new samples cost plus a pass over the window's events (tens of beats), never a pass over the
//! window's samples. Nothing is allocated per hop once the buffers have grown to a window's worth.
//!
//! Architecture invariant: pure and synchronous — no I/O, no tokio.

pub mod baseline;
pub mod beats;
pub mod dsp;
pub mod eda;
pub mod hrv;
pub mod resp;
pub mod rr;
pub mod spectrum;
pub mod stats;

use crate::signal::Modality;
use crate::window::{ChannelWindow, Window};
use beats::{Beat, EcgDetector, PpgDetector, MIN_BEAT_INTERVAL_S};
use eda::{EdaStream, Scr};
use resp::RespStream;
use serde::Serialize;
use rr::BeatSpectra;
use stats::{RunningStats, Summary};
use std::collections::VecDeque;

/// Every feature the stage computes, in vector order. Names carry their unit.
pub const FEATURE_NAMES: [&str; 57] = [
    "hr_mean_bpm",
    "hr_std_bpm",
    "hrv_sdnn_ms",
    "hrv_rmssd_ms",
    "hrv_pnn50",
    "hrv_lf_ms2",
    "hrv_hf_ms2",
    "hrv_lf_hf",
    "beats_n",
    "beats_rejected",
    "ppg_rise_ms",
    "ppg_amp_cv",
    "eda_mean_us",
    "eda_std_us",
    "eda_min_us",
    "eda_slope_us_per_min",
    "eda_tonic_us",
    "scr_count",
    "scr_rate_per_min",
    "scr_amp_mean_us",
    "scr_rise_s",
    "resp_rate_bpm",
    "resp_rate_cardiac_bpm",
    "temp_mean_c",
    "temp_slope_c_per_min",
    "acc_mag_mean_g",
    "acc_mag_std_g",
    "acc_enmo_g",
    "quality_cardiac",
    "quality_eda",
    "quality_resp",
    "motion",
    // Baseline-relative twins: z-scores against the subject's calibration phase (see
    // features/baseline.rs). Every name after `Z_START` is `z_` + a feature above.
    "z_hr_mean_bpm",
    "z_hr_std_bpm",
    "z_hrv_sdnn_ms",
    "z_hrv_rmssd_ms",
    "z_hrv_pnn50",
    "z_hrv_lf_ms2",
    "z_hrv_hf_ms2",
    "z_hrv_lf_hf",
    "z_ppg_rise_ms",
    "z_ppg_amp_cv",
    "z_eda_mean_us",
    "z_eda_std_us",
    "z_eda_min_us",
    "z_eda_slope_us_per_min",
    "z_eda_tonic_us",
    "z_scr_rate_per_min",
    "z_scr_amp_mean_us",
    "z_scr_rise_s",
    "z_resp_rate_bpm",
    "z_resp_rate_cardiac_bpm",
    "z_temp_mean_c",
    "z_temp_slope_c_per_min",
    "z_acc_mag_mean_g",
    "z_acc_mag_std_g",
    "z_acc_enmo_g",
];

/// Index of the first `z_` feature; all the rest are `z_` twins.
const Z_START: usize = 32;
const Z_COUNT: usize = FEATURE_NAMES.len() - Z_START;

/// Index of a feature by name.
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_NAMES.iter().position(|n| *n == name)
}

/// Which modalities can feed a feature (any one of them suffices).
pub fn feature_sources(name: &str) -> &'static [Modality] {
    const CARDIAC: &[Modality] = &[Modality::Ecg, Modality::Ppg];
    // A baseline-relative twin needs what its raw feature needs.
    let name = name.strip_prefix("z_").unwrap_or(name);
    match name {
        "resp_rate_cardiac_bpm" | "quality_cardiac" => return CARDIAC,
        "quality_eda" => return &[Modality::Eda],
        "quality_resp" => return &[Modality::Resp],
        "motion" => return &[Modality::Acc, Modality::Ppg],
        _ => {}
    }
    match name.split('_').next().unwrap_or("") {
        "hr" | "hrv" | "beats" => CARDIAC,
        "ppg" => &[Modality::Ppg],
        "eda" | "scr" => &[Modality::Eda],
        "resp" => &[Modality::Resp],
        "temp" => &[Modality::Temp],
        "acc" => &[Modality::Acc],
        _ => &[],
    }
}

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

/// The features of one window.
#[derive(Debug, Clone)]
pub struct FeatureVector {
    /// Aligned with [`FEATURE_NAMES`]; `NaN` where not computable.
    pub values: [f32; FEATURE_NAMES.len()],
    /// Where the subject's baseline calibration stands (the `z_` features wait for it).
    pub baseline: baseline::Phase,
    pub quality: Vec<Quality>,
    /// The cardiac channel the beats came from (`ecg` or `ppg`), if any.
    pub cardiac_source: Option<Modality>,
}

impl FeatureVector {
    pub fn empty() -> Self {
        FeatureVector {
            values: [f32::NAN; FEATURE_NAMES.len()],
            baseline: baseline::Phase::Off,
            quality: Vec::new(),
            cardiac_source: None,
        }
    }

    pub fn get(&self, name: &str) -> Option<f32> {
        feature_index(name).map(|i| self.values[i])
    }

    fn set(&mut self, name: &str, v: f64) {
        let i = feature_index(name).expect("feature name in FEATURE_NAMES");
        self.values[i] = v as f32;
    }

    fn reset(&mut self) {
        self.values = [f32::NAN; FEATURE_NAMES.len()];
        self.quality.clear();
        self.cardiac_source = None;
        self.baseline = baseline::Phase::Off;
    }
}

/// What a channel's processor finds, kept while a window can still contain it.
#[derive(Debug)]
enum Processor {
    Ecg(EcgDetector, WindowBeats),
    Ppg(PpgDetector, WindowBeats),
    Eda {
        stream: EdaStream,
        tonic: RunningStats,
        scrs: VecDeque<Scr>,
        found: Vec<Scr>,
    },
    Resp {
        stream: RespStream,
        breaths: VecDeque<u64>,
        found: Vec<u64>,
    },
    /// Temperature, accelerometer axes and anything else: block statistics only.
    Plain,
}

/// The beats of the current window and their spectra, kept in step: each beat joins once and
/// leaves once, so HRV and derived respiration cost the hop's beats, not the window's.
#[derive(Debug)]
struct WindowBeats {
    fs: f64,
    beats: VecDeque<Beat>,
    spectra: BeatSpectra,
}

impl WindowBeats {
    fn new(fs: f64, capacity: usize) -> Self {
        WindowBeats { fs, beats: VecDeque::with_capacity(capacity), spectra: BeatSpectra::default() }
    }

    fn extend(&mut self, new: &[Beat]) {
        for b in new {
            self.spectra.push(self.beats.back(), b, self.fs);
            self.beats.push_back(*b);
        }
    }

    /// Drop the oldest beats while `old` says so.
    fn prune(&mut self, old: impl Fn(&Beat) -> bool) {
        while let Some(b) = self.beats.front().copied().filter(&old) {
            self.beats.pop_front();
            self.spectra.pop(&b, self.beats.front(), self.fs);
        }
    }
}

/// Streaming state of one window channel.
#[derive(Debug)]
struct ChannelState {
    modality: Modality,
    rate_hz: f64,
    stats: RunningStats,
    processor: Processor,
}

impl ChannelState {
    fn new(ch: &ChannelWindow, hop_samples: usize) -> Self {
        let fs = ch.spec.rate_hz;
        let keep = ch.values.len().max(1);
        // Event queues are sized once for the most events a window can hold (the detectors'
        // minimum spacing), so a faster heart later never reallocates them mid-run.
        let cap = |min_interval_s: f64| event_capacity(keep, fs, min_interval_s);
        let processor = match ch.spec.modality {
            Modality::Ecg => Processor::Ecg(EcgDetector::new(fs), WindowBeats::new(fs, cap(MIN_BEAT_INTERVAL_S))),
            Modality::Ppg => Processor::Ppg(PpgDetector::new(fs), WindowBeats::new(fs, cap(MIN_BEAT_INTERVAL_S))),
            Modality::Eda => Processor::Eda {
                stream: EdaStream::new(fs),
                tonic: RunningStats::new(hop_samples, keep),
                scrs: VecDeque::with_capacity(cap(*eda::SCR_RISE_S.start())),
                found: Vec::with_capacity(cap(*eda::SCR_RISE_S.start())),
            },
            Modality::Resp => Processor::Resp {
                stream: RespStream::new(fs),
                breaths: VecDeque::with_capacity(cap(MIN_BREATH_INTERVAL_S)),
                found: Vec::with_capacity(cap(MIN_BREATH_INTERVAL_S)),
            },
            _ => Processor::Plain,
        };
        ChannelState { modality: ch.spec.modality, rate_hz: fs, stats: RunningStats::new(hop_samples, keep), processor }
    }

    /// Feed the window's fresh samples, then forget events that no later window can contain.
    fn advance(&mut self, fresh: &[f32], window_len: usize, beats: &mut Vec<Beat>) {
        for &x in fresh {
            self.stats.push(x);
        }
        let from = self.stats.total().saturating_sub(window_len as u64);
        match &mut self.processor {
            Processor::Ecg(det, kept) => {
                beats.clear();
                det.process(fresh, beats);
                kept.extend(beats);
                kept.prune(|b| b.index < from);
            }
            Processor::Ppg(det, kept) => {
                beats.clear();
                det.process(fresh, beats);
                kept.extend(beats);
                kept.prune(|b| b.foot < from);
            }
            Processor::Eda { stream, tonic, scrs, found } => {
                found.clear();
                for &x in fresh {
                    let sample = stream.push(x, found);
                    tonic.push(sample.map_or(f32::NAN, |s| s.tonic as f32));
                }
                scrs.extend(found.iter().copied());
                prune(scrs, |s| s.onset < from);
            }
            Processor::Resp { stream, breaths, found } => {
                found.clear();
                stream.process(fresh, found);
                breaths.extend(found.iter().copied());
                prune(breaths, |&b| b < from);
            }
            Processor::Plain => {}
        }
    }

    /// First sample number of the current window of `len` samples.
    fn window_from(&self, len: usize) -> u64 {
        self.stats.total().saturating_sub(len as u64)
    }
}

/// Shortest breath the sizing of breath buffers assumes (60 /min; the belt band stops at 42).
const MIN_BREATH_INTERVAL_S: f64 = 1.0;

/// Most events `window_samples` at `fs` Hz can hold when events are `min_interval_s` apart.
fn event_capacity(window_samples: usize, fs: f64, min_interval_s: f64) -> usize {
    (window_samples as f64 / fs / min_interval_s).ceil() as usize + 2
}

fn prune<T>(q: &mut VecDeque<T>, old: impl Fn(&T) -> bool) {
    while q.front().is_some_and(&old) {
        q.pop_front();
    }
}

/// Reusable state of the feature stage for one subject: one streaming processor per channel.
#[derive(Debug, Default)]
pub struct FeatureExtractor {
    channels: Vec<Option<ChannelState>>,
    /// Window hop in seconds, for block sizes (block statistics merge one block per hop).
    hop_s: Option<f64>,
    out: Option<FeatureVector>,
    // Scratch reused every window.
    fresh_beats: Vec<Beat>,
    window_beats: Vec<Beat>,
    hrv: hrv::Intervals,
    acc_mag: Option<AccState>,
    amps: Vec<f64>,
    baseline: Option<baseline::Baseline>,
    /// Index of the raw feature of each `z_` twin.
    baseline_index: [usize; Z_COUNT],
}

/// Streaming magnitude statistics over the accelerometer axes (same sensor, same rate).
#[derive(Debug)]
struct AccState {
    rate_hz: f64,
    axes: usize,
    mag: RunningStats,
    enmo: RunningStats,
}

impl FeatureExtractor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hint of the hop in seconds (from `[window]`), so block statistics merge per hop.
    pub fn with_hop(hop_s: f64) -> Self {
        FeatureExtractor { hop_s: Some(hop_s), ..Self::default() }
    }

    /// Report `z_` features against the first `baseline_s` seconds of windows (`[features]`).
    pub fn with_baseline(mut self, baseline_s: f64) -> Self {
        self.baseline = Some(baseline::Baseline::new(baseline_s));
        self.baseline_index = std::array::from_fn(|k| {
            feature_index(&FEATURE_NAMES[Z_START + k][2..]).expect("a z_ twin names a feature")
        });
        self
    }

    /// Compute every feature the window's channels allow. Windows must come in order; each
    /// channel's `fresh` samples are fed to its processor exactly once.
    pub fn extract(&mut self, window: &Window) -> &FeatureVector {
        let mut fv = self.out.take().unwrap_or_else(FeatureVector::empty);
        fv.reset();
        if self.channels.len() != window.channels.len() {
            self.channels.resize_with(window.channels.len(), || None);
        }
        let hop_s = self.hop_s.unwrap_or(window.end - window.start).max(1e-3);
        let mut reserve_beats = 0;
        for (state, ch) in self.channels.iter_mut().zip(&window.channels) {
            // A new channel, or one whose rate or kind changed (a device reconfigured): start
            // over on this window's samples.
            let stale = state.as_ref().is_none_or(|s| s.rate_hz != ch.spec.rate_hz || s.modality != ch.spec.modality);
            let fresh = if stale {
                *state = Some(ChannelState::new(ch, ((hop_s * ch.spec.rate_hz).round() as usize).max(1)));
                if matches!(ch.spec.modality, Modality::Ecg | Modality::Ppg) {
                    let beats = event_capacity(ch.values.len(), ch.spec.rate_hz, MIN_BEAT_INTERVAL_S);
                    self.fresh_beats.reserve(beats.saturating_sub(self.fresh_beats.len()));
                    reserve_beats = reserve_beats.max(beats);
                }
                &ch.values[..]
            } else {
                &ch.values[ch.values.len() - ch.fresh.min(ch.values.len())..]
            };
            state.as_mut().expect("state just set").advance(fresh, ch.values.len(), &mut self.fresh_beats);
        }
        if reserve_beats > 0 {
            self.reserve_beats(reserve_beats);
        }
        self.accelerometer(window, hop_s, &mut fv);
        let motion = fv.get("motion").is_some_and(|m| m > 0.5);
        // ECG is preferred over PPG for the heart when both are worn: sharper beats, less motion
        // artefact. PPG still gives its pulse-shape features.
        let find = |m: Modality| window.channels.iter().position(|c| c.spec.modality == m && !c.values.is_empty());
        let (ecg, ppg) = (find(Modality::Ecg), find(Modality::Ppg));
        if let Some(k) = ppg {
            self.pulse_shape(k, window, &mut fv);
        }
        if let Some(k) = ecg.or(ppg) {
            self.cardiac(k, window, motion, &mut fv);
        }
        if let Some(k) = find(Modality::Eda) {
            self.eda(k, window, &mut fv);
        }
        if let Some(k) = find(Modality::Resp) {
            self.resp(k, window, &mut fv);
        }
        if let Some(k) = find(Modality::Temp) {
            let ch = &window.channels[k];
            let st = self.channels[k].as_ref().expect("state per channel");
            let sum = summarise(st, ch);
            if let Some(mean) = sum.mean() {
                fv.set("temp_mean_c", mean);
            }
            if let Some(s) = sum.slope_per_sample() {
                fv.set("temp_slope_c_per_min", s * ch.spec.rate_hz * 60.0);
            }
            let flags = basic_flags(ch, &sum);
            fv.quality.push(Quality { modality: Modality::Temp, score: ch.coverage(), flags });
        }
        if let Some(b) = &mut self.baseline {
            let raw = self.baseline_index.map(|i| fv.values[i]);
            let (_, z) = fv.values.split_at_mut(Z_START);
            fv.baseline = b.observe(window.start, window.end, &raw, z);
        }
        self.out = Some(fv);
        self.out.as_ref().expect("just stored")
    }

    /// Room in every per-window beat buffer for `n` beats.
    fn reserve_beats(&mut self, n: usize) {
        self.window_beats.reserve(n.saturating_sub(self.window_beats.len()));
        self.amps.reserve(n.saturating_sub(self.amps.len()));
        self.hrv.reserve(n);
    }

    /// The beats of window channel `k` that lie in the current window, into `window_beats`.
    fn collect_beats(&mut self, k: usize, window: &Window) {
        let st = self.channels[k].as_ref().expect("state per channel");
        let from = st.window_from(window.channels[k].values.len());
        self.window_beats.clear();
        if let Processor::Ecg(_, kept) | Processor::Ppg(_, kept) = &st.processor {
            for b in kept.beats.iter().filter(|b| b.index >= from) {
                self.window_beats.push(*b);
            }
        }
    }

    fn cardiac(&mut self, k: usize, window: &Window, motion: bool, fv: &mut FeatureVector) {
        self.collect_beats(k, window);
        let ch = &window.channels[k];
        let fs = ch.spec.rate_hz;
        let modality = ch.spec.modality;
        fv.cardiac_source = Some(modality);
        let Some(Processor::Ecg(_, kept) | Processor::Ppg(_, kept)) =
            self.channels[k].as_mut().map(|s| &mut s.processor)
        else {
            unreachable!("a cardiac channel has a beat processor");
        };
        self.hrv.load_beats(self.window_beats.iter().map(|b| b.index), fs);
        let hrv = hrv::from_intervals(
            self.window_beats.len(),
            hrv::HrvOptions::default(),
            &mut self.hrv,
            &mut kept.spectra.rr,
        );
        let derived = resp::derived_rate_of(&kept.spectra, &self.window_beats, fs);
        let intervals = self.window_beats.len().saturating_sub(1);
        fv.set("beats_n", self.window_beats.len() as f64);
        fv.set("beats_rejected", hrv.corrected as f64);
        let st = self.channels[k].as_ref().expect("state per channel");
        let mut flags = basic_flags(ch, &summarise(st, ch));
        let rr_ok = if intervals > 0 { (intervals - hrv.corrected) as f32 / intervals as f32 } else { 0.0 };
        if rr_ok < 0.8 {
            flags.insert(Flags::IMPLAUSIBLE_RR);
        }
        let mut score = ch.coverage() * rr_ok;
        if flags.contains(Flags::FLATLINE) {
            score = 0.0;
        }
        if modality == Modality::Ppg {
            // Movement corrupts the optical pulse far more than it does the ECG.
            if motion {
                flags.insert(Flags::MOTION);
                score *= 0.5;
            }
            if fv.get("ppg_amp_cv").is_some_and(|cv| cv > PULSE_AMPLITUDE_CV_MAX) {
                flags.insert(Flags::PULSE_ARTIFACT);
                score *= 0.5;
            }
        }
        let score = score.clamp(0.0, 1.0);
        fv.quality.push(Quality { modality, score, flags });
        fv.set("quality_cardiac", score as f64);
        // Too few clean beats leave HR/HRV as NaN (hrv::from_peaks decides), never a guess.
        fv.set("hr_mean_bpm", hrv.hr_mean_bpm);
        fv.set("hr_std_bpm", hrv.hr_std_bpm);
        fv.set("hrv_sdnn_ms", hrv.sdnn_ms);
        fv.set("hrv_rmssd_ms", hrv.rmssd_ms);
        fv.set("hrv_pnn50", hrv.pnn50);
        fv.set("hrv_lf_ms2", hrv.lf_ms2);
        fv.set("hrv_hf_ms2", hrv.hf_ms2);
        fv.set("hrv_lf_hf", hrv.lf_hf);
        if let Some(rate) = derived {
            fv.set("resp_rate_cardiac_bpm", rate);
        }
    }

    /// Pulse shape of a PPG channel: rise time (foot to systolic peak) and amplitude variability.
    fn pulse_shape(&mut self, k: usize, window: &Window, fv: &mut FeatureVector) {
        self.collect_beats(k, window);
        let fs = window.channels[k].spec.rate_hz;
        if self.window_beats.len() < 5 {
            return;
        }
        let rise = self.window_beats.iter().map(|b| (b.index - b.foot) as f64 / fs * 1000.0);
        fv.set("ppg_rise_ms", median(&mut self.amps, rise));
        self.amps.clear();
        self.amps.extend(self.window_beats.iter().map(|b| b.amplitude));
        if let Some((mean, std)) = dsp::mean_std(self.amps.iter().copied()) {
            if mean > 0.0 {
                fv.set("ppg_amp_cv", std / mean);
            }
        }
    }

    fn eda(&mut self, k: usize, window: &Window, fv: &mut FeatureVector) {
        let ch = &window.channels[k];
        let fs = ch.spec.rate_hz;
        let st = self.channels[k].as_ref().expect("state per channel");
        let sum = summarise(st, ch);
        let mut flags = basic_flags(ch, &sum);
        if let (Some(mean), Some(std)) = (sum.mean(), sum.std()) {
            fv.set("eda_mean_us", mean);
            fv.set("eda_std_us", std);
            fv.set("eda_min_us", sum.min as f64);
            if mean < 0.05 {
                // Below 0.05 µS the electrodes are not on skin.
                flags.insert(Flags::NO_CONTACT);
            }
        }
        if let Some(s) = sum.slope_per_sample() {
            fv.set("eda_slope_us_per_min", s * fs * 60.0);
        }
        let from = st.window_from(ch.values.len());
        if let Processor::Eda { tonic, scrs, .. } = &st.processor {
            // The tonic series is not in the window; its cut block is rebuilt from the raw values
            // by reading the tonic filter's past output, which the running stats still hold whole
            // except at the window's very start: use block summaries only (exact for whole blocks).
            if let Some(m) = tonic.window_blocks(ch.values.len()).mean() {
                fv.set("eda_tonic_us", m);
            }
            let (mut count, mut amp, mut rise) = (0usize, 0.0, 0.0);
            for s in scrs.iter().filter(|s| s.onset >= from) {
                count += 1;
                amp += s.amplitude;
                rise += s.rise_s;
            }
            let minutes = ch.values.len() as f64 / fs / 60.0;
            fv.set("scr_count", count as f64);
            if minutes > 0.0 {
                fv.set("scr_rate_per_min", count as f64 / minutes);
            }
            fv.set("scr_amp_mean_us", if count > 0 { amp / count as f64 } else { 0.0 });
            if count > 0 {
                fv.set("scr_rise_s", rise / count as f64);
            }
        }
        let score =
            if flags.contains(Flags::FLATLINE) || flags.contains(Flags::NO_CONTACT) { 0.0 } else { ch.coverage() };
        fv.set("quality_eda", score as f64);
        fv.quality.push(Quality { modality: Modality::Eda, score, flags });
    }

    fn resp(&mut self, k: usize, window: &Window, fv: &mut FeatureVector) {
        let ch = &window.channels[k];
        let st = self.channels[k].as_ref().expect("state per channel");
        let from = st.window_from(ch.values.len());
        let flags = basic_flags(ch, &summarise(st, ch));
        if let Processor::Resp { breaths, .. } = &st.processor {
            let (a, b) = breaths.as_slices();
            let first = a.iter().chain(b).find(|&&t| t >= from);
            let inside = a.iter().chain(b).filter(|&&t| t >= from).count();
            if let (Some(&first), Some(&last)) = (first, breaths.back()) {
                if inside >= 2 && last > first {
                    let span_s = (last - first) as f64 / ch.spec.rate_hz;
                    fv.set("resp_rate_bpm", (inside - 1) as f64 / span_s * 60.0);
                }
            }
        }
        let score = if flags.contains(Flags::FLATLINE) { 0.0 } else { ch.coverage() };
        fv.set("quality_resp", score as f64);
        fv.quality.push(Quality { modality: Modality::Resp, score, flags });
    }

    fn accelerometer(&mut self, window: &Window, hop_s: f64, fv: &mut FeatureVector) {
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
        let stale = self.acc_mag.as_ref().is_none_or(|a| a.rate_hz != fs || a.axes != n_axes);
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
            self.acc_mag = Some(AccState {
                rate_hz: fs,
                axes: n_axes,
                mag: RunningStats::new(hop, len),
                enmo: RunningStats::new(hop, len),
            });
            0
        } else {
            len - fresh
        };
        let acc = self.acc_mag.as_mut().expect("just set");
        for i in start..len {
            let m = magnitude(i);
            acc.mag.push(m);
            acc.enmo.push(enmo(m));
        }
        let mag = acc.mag.window_with(len, magnitude);
        if let (Some(mean), Some(std)) = (mag.mean(), mag.std()) {
            fv.set("acc_mag_mean_g", mean);
            fv.set("acc_mag_std_g", std);
            // Movement: the magnitude wanders more than a still or slowly turning wrist's does.
            fv.set("motion", if std > MOTION_STD_G { 1.0 } else { 0.0 });
        }
        if let Some(m) = acc.enmo.window_with(len, |i| enmo(magnitude(i))).mean() {
            // ENMO (van Hees et al. 2013): Euclidean norm minus one g, negatives clipped.
            fv.set("acc_enmo_g", m);
        }
        let mut flags = Flags::default();
        let mut coverage = 1.0f32;
        for &k in axes {
            let ch = &window.channels[k];
            let st = self.channels[k].as_ref().expect("state per channel");
            flags.insert(basic_flags(ch, &summarise(st, ch)));
            coverage = coverage.min(ch.coverage());
        }
        fv.quality.push(Quality { modality: Modality::Acc, score: coverage, flags });
    }
}

/// Standard deviation of the acceleration magnitude above which the wearer is moving, g. Sitting,
/// typing and slow gestures stay under it; walking is about 0.2 g.
const MOTION_STD_G: f64 = 0.05;
/// Coefficient of variation of PPG pulse amplitudes above which pulses are artefactual: breathing
/// and vasomotion modulate a clean pulse by well under half its mean.
const PULSE_AMPLITUDE_CV_MAX: f32 = 0.5;

fn median(buf: &mut Vec<f64>, values: impl Iterator<Item = f64>) -> f64 {
    buf.clear();
    buf.extend(values);
    if buf.is_empty() {
        return f64::NAN;
    }
    buf.sort_by(f64::total_cmp);
    buf[buf.len() / 2]
}

fn summarise(st: &ChannelState, ch: &ChannelWindow) -> Summary {
    st.stats.window_with(ch.values.len(), |i| ch.values[i])
}

/// Flags any channel can raise: gaps, non-finite samples, flat line, clipping at the extremes.
fn basic_flags(ch: &ChannelWindow, s: &Summary) -> Flags {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::ChannelSpec;
    use std::time::Instant;

    fn window(channels: Vec<ChannelWindow>) -> Window {
        Window { subject: "s".into(), seq: 0, start: 0.0, end: 60.0, channels, last_arrival: Instant::now() }
    }

    fn cw(name: &str, m: Modality, fs: f64, values: Vec<f32>) -> ChannelWindow {
        ChannelWindow { spec: ChannelSpec::new(name, m, "u", fs), fresh: values.len(), values, missing: 0 }
    }

    #[test]
    fn sliding_hrv_and_derived_respiration_equal_the_batch_ones_on_every_window() {
        // 5 minutes of synthetic ECG at 250 Hz: narrow R waves whose spacing follows breathing
        // (0.25 Hz) and a slow swing, amplitude modulated by breathing, an early beat now and then.
        let fs = 250.0;
        let n = (300.0 * fs) as usize;
        let mut ecg = vec![0.0f32; n];
        let mut t = 0.6;
        let mut k = 0;
        while t < 299.0 {
            let amp = 1.0 + 0.15 * (2.0 * std::f64::consts::PI * 0.25 * t).sin();
            let c = (t * fs) as usize;
            for (j, v) in ecg.iter_mut().enumerate().take((c + 8).min(n)).skip(c.saturating_sub(8)) {
                let d = (j as f64 - c as f64) / 3.0;
                *v += (amp * (-d * d).exp()) as f32;
            }
            k += 1;
            let ectopic = k % 37 == 0;
            t += if ectopic { 0.45 } else { 0.85 + 0.05 * (2.0 * std::f64::consts::PI * 0.25 * t).sin() };
        }
        let (len, hop) = ((60.0 * fs) as usize, (5.0 * fs) as usize);
        let mut extractor = FeatureExtractor::with_hop(5.0);
        let mut checked = 0;
        for start in (0..=n - len).step_by(hop) {
            let mut ch = cw("ecg", Modality::Ecg, fs, ecg[start..start + len].to_vec());
            ch.fresh = if start == 0 { len } else { hop };
            let fv = extractor.extract(&window(vec![ch])).clone();
            // The batch functions over the very beats the window holds.
            let Some(Processor::Ecg(_, kept)) = extractor.channels[0].as_ref().map(|s| &s.processor) else {
                panic!("ecg state")
            };
            let from = start as u64;
            let beats: Vec<Beat> = kept.beats.iter().copied().filter(|b| b.index >= from).collect();
            assert_eq!(beats.len(), kept.beats.len(), "the queue holds exactly the window's beats");
            let peaks: Vec<usize> = beats.iter().map(|b| (b.index - from) as usize).collect();
            let batch = hrv::from_peaks(&peaks, fs, hrv::HrvOptions::default(), &mut Default::default());
            let close = |name: &str, want: f64| {
                let got = fv.get(name).unwrap() as f64;
                assert!(
                    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-4 * want.abs().max(1e-3),
                    "window at {start}: {name} {got} vs batch {want}"
                );
            };
            close("hrv_sdnn_ms", batch.sdnn_ms);
            close("hrv_lf_ms2", batch.lf_ms2);
            close("hrv_hf_ms2", batch.hf_ms2);
            close("beats_rejected", batch.corrected as f64);
            let derived = resp::derived_rate_bpm(&beats, fs, &mut Default::default());
            close("resp_rate_cardiac_bpm", derived.unwrap_or(f64::NAN));
            assert!(batch.corrected > 0 && derived.is_some_and(|r| (r - 15.0).abs() < 1.0), "{batch:?} {derived:?}");
            checked += 1;
        }
        assert_eq!(checked, 49);
    }

    #[test]
    fn every_z_twin_names_a_raw_feature_before_it() {
        for z in &FEATURE_NAMES[Z_START..] {
            let raw = z.strip_prefix("z_").expect("only z_ twins after Z_START");
            assert!(feature_index(raw).is_some_and(|i| i < Z_START), "{z}");
            assert_eq!(feature_sources(z), feature_sources(raw));
        }
        assert!(!FEATURE_NAMES[Z_START - 1].starts_with("z_"));
    }

    #[test]
    fn every_feature_has_a_source_and_a_unique_name() {
        for (i, name) in FEATURE_NAMES.iter().enumerate() {
            assert!(!feature_sources(name).is_empty(), "{name} has no source modality");
            assert_eq!(feature_index(name), Some(i));
        }
    }

    #[test]
    fn empty_window_gives_all_nan_and_no_panic() {
        let fv = FeatureExtractor::new().extract(&window(vec![])).clone();
        assert!(fv.values.iter().all(|v| v.is_nan()));
        assert!(fv.quality.is_empty());
    }

    #[test]
    fn flat_channels_are_flagged_not_guessed() {
        let w = window(vec![
            cw("ecg", Modality::Ecg, 100.0, vec![0.5; 6000]),
            cw("eda", Modality::Eda, 4.0, vec![2.0; 240]),
        ]);
        let fv = FeatureExtractor::new().extract(&w).clone();
        assert!(fv.get("hr_mean_bpm").unwrap().is_nan());
        assert_eq!(fv.get("quality_cardiac"), Some(0.0));
        assert!(fv.quality[0].flags.contains(Flags::FLATLINE));
        assert_eq!(fv.get("eda_mean_us"), Some(2.0));
        assert_eq!(fv.get("quality_eda"), Some(0.0));
    }

    #[test]
    fn accelerometer_at_rest_reads_one_g() {
        let w = window(vec![
            cw("acc_x", Modality::Acc, 32.0, vec![0.0; 320]),
            cw("acc_y", Modality::Acc, 32.0, vec![0.0; 320]),
            cw("acc_z", Modality::Acc, 32.0, vec![1.0; 320]),
        ]);
        let fv = FeatureExtractor::new().extract(&w).clone();
        assert!((fv.get("acc_mag_mean_g").unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(fv.get("acc_enmo_g"), Some(0.0));
    }

    #[test]
    fn scr_and_respiration_on_simple_shapes() {
        let fs = 4.0;
        // Two SCRs: 0.2 µS rises over 2 s, decaying back.
        let eda: Vec<f32> = (0..240)
            .map(|i| {
                let t = i as f64 / fs;
                let bump = |t0: f64| {
                    if t < t0 {
                        0.0
                    } else if t < t0 + 2.0 {
                        0.1 * (t - t0)
                    } else {
                        0.2 * (-(t - t0 - 2.0) / 4.0).exp()
                    }
                };
                (5.0 + bump(10.0) + bump(35.0)) as f32
            })
            .collect();
        let resp: Vec<f32> =
            (0..6000).map(|i| (2.0 * std::f64::consts::PI * 0.25 * i as f64 / 100.0).sin() as f32).collect();
        let w = window(vec![cw("eda", Modality::Eda, fs, eda), cw("rsp", Modality::Resp, 100.0, resp)]);
        let fv = FeatureExtractor::new().extract(&w).clone();
        assert_eq!(fv.get("scr_count"), Some(2.0));
        let rr = fv.get("resp_rate_bpm").unwrap();
        assert!((rr - 15.0).abs() < 0.5, "{rr}");
    }
}
