//! The feature set: one list of names, in vector order, and the typed [`Feature`] index generated
//! from it, so the extractor writes `fv.set(Feature::HrMeanBpm, v)` (an array index; a misspelt
//! feature does not compile) while manifests, CSV headers and tests keep using the names.
//!
//! The order of [`FEATURE_NAMES`] is part of the interface: trained models and CSV columns follow
//! it. Names carry their unit.

use crate::signal::Modality;

/// Declares [`Feature`] and [`FEATURE_NAMES`] from one list, so the two cannot drift apart.
macro_rules! feature_set {
    ($($variant:ident = $name:literal,)*) => {
        /// A feature by its place in the vector (`Feature::HrMeanBpm as usize` indexes
        /// [`FEATURE_NAMES`] and `FeatureVector::values`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Feature {
            $($variant,)*
        }

        /// Every feature the stage computes, in vector order. Names carry their unit.
        pub const FEATURE_NAMES: [&str; [$($name),*].len()] = [$($name),*];

        /// Every feature, in vector order.
        #[cfg(test)]
        const ALL: [Feature; FEATURE_NAMES.len()] = [$(Feature::$variant),*];
    };
}

feature_set! {
    HrMeanBpm = "hr_mean_bpm",
    HrStdBpm = "hr_std_bpm",
    HrvSdnnMs = "hrv_sdnn_ms",
    HrvRmssdMs = "hrv_rmssd_ms",
    HrvPnn50 = "hrv_pnn50",
    HrvLfMs2 = "hrv_lf_ms2",
    HrvHfMs2 = "hrv_hf_ms2",
    HrvLfHf = "hrv_lf_hf",
    BeatsN = "beats_n",
    BeatsRejected = "beats_rejected",
    PpgRiseMs = "ppg_rise_ms",
    PpgAmpCv = "ppg_amp_cv",
    EdaMeanUs = "eda_mean_us",
    EdaStdUs = "eda_std_us",
    EdaMinUs = "eda_min_us",
    EdaSlopeUsPerMin = "eda_slope_us_per_min",
    EdaTonicUs = "eda_tonic_us",
    ScrCount = "scr_count",
    ScrRatePerMin = "scr_rate_per_min",
    ScrAmpMeanUs = "scr_amp_mean_us",
    ScrRiseS = "scr_rise_s",
    RespRateBpm = "resp_rate_bpm",
    RespRateCardiacBpm = "resp_rate_cardiac_bpm",
    TempMeanC = "temp_mean_c",
    TempSlopeCPerMin = "temp_slope_c_per_min",
    AccMagMeanG = "acc_mag_mean_g",
    AccMagStdG = "acc_mag_std_g",
    AccEnmoG = "acc_enmo_g",
    QualityCardiac = "quality_cardiac",
    QualityEda = "quality_eda",
    QualityResp = "quality_resp",
    Motion = "motion",
    // Baseline-relative twins: z-scores against the subject's calibration phase (see
    // features/baseline.rs). Every name after `Z_START` is `z_` + a feature above.
    ZHrMeanBpm = "z_hr_mean_bpm",
    ZHrStdBpm = "z_hr_std_bpm",
    ZHrvSdnnMs = "z_hrv_sdnn_ms",
    ZHrvRmssdMs = "z_hrv_rmssd_ms",
    ZHrvPnn50 = "z_hrv_pnn50",
    ZHrvLfMs2 = "z_hrv_lf_ms2",
    ZHrvHfMs2 = "z_hrv_hf_ms2",
    ZHrvLfHf = "z_hrv_lf_hf",
    ZPpgRiseMs = "z_ppg_rise_ms",
    ZPpgAmpCv = "z_ppg_amp_cv",
    ZEdaMeanUs = "z_eda_mean_us",
    ZEdaStdUs = "z_eda_std_us",
    ZEdaMinUs = "z_eda_min_us",
    ZEdaSlopeUsPerMin = "z_eda_slope_us_per_min",
    ZEdaTonicUs = "z_eda_tonic_us",
    ZScrRatePerMin = "z_scr_rate_per_min",
    ZScrAmpMeanUs = "z_scr_amp_mean_us",
    ZScrRiseS = "z_scr_rise_s",
    ZRespRateBpm = "z_resp_rate_bpm",
    ZRespRateCardiacBpm = "z_resp_rate_cardiac_bpm",
    ZTempMeanC = "z_temp_mean_c",
    ZTempSlopeCPerMin = "z_temp_slope_c_per_min",
    ZAccMagMeanG = "z_acc_mag_mean_g",
    ZAccMagStdG = "z_acc_mag_std_g",
    ZAccEnmoG = "z_acc_enmo_g",
}

impl Feature {
    /// Its index in the vector.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Index of the first `z_` feature; all the rest are `z_` twins.
pub(super) const Z_START: usize = Feature::ZHrMeanBpm.index();
/// How many `z_` twins there are.
pub(super) const Z_COUNT: usize = FEATURE_NAMES.len() - Z_START;

/// Index of a feature by name (manifests and tests; the extractor uses [`Feature`]).
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_NAMES.iter().position(|n| *n == name)
}

/// Which modalities can feed a feature (any one of them suffices).
pub fn feature_sources(name: &str) -> &'static [Modality] {
    const CARDIAC: &[Modality] = &[Modality::Ecg, Modality::Ppg, Modality::Rr];
    // A baseline-relative twin needs what its raw feature needs.
    let name = name.strip_prefix("z_").unwrap_or(name);
    match name {
        "quality_cardiac" => return CARDIAC,
        // From the beats' amplitudes and intervals: a bare RR series has no amplitudes.
        "resp_rate_cardiac_bpm" => return &[Modality::Ecg, Modality::Ppg],
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn each_variant_is_its_name_in_camel_case() {
        for (i, f) in ALL.into_iter().enumerate() {
            assert_eq!(f.index(), i);
            let camel: String = FEATURE_NAMES[i].split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
            assert_eq!(format!("{f:?}"), camel);
        }
    }
}
