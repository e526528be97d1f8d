//! The cascade's stage models (models/stress-s*.onnx) through tract, on real windows.
//!
//! Work in progress for the fusion issue: the stages load, validate their manifests, and give
//! calibrated probabilities on the committed E4 excerpt once the subject's baseline is in.

#[path = "../benches/common/mod.rs"]
mod recordings;

use biofeedd::features::FeatureExtractor;
use biofeedd::fusion::Stage;
use recordings::{hops, HOP_S};
use std::path::Path;

fn stage(name: &str) -> Stage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    Stage::load_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn stages_answer_after_the_baseline_and_not_before() {
    let mut stages = [stage("stress-s0.toml"), stage("stress-s1.toml")];
    assert!(stages[0].manifest.exit.is_some() && stages[1].manifest.exit.is_none());
    let rec = recordings::e4_recording();
    // An 80 s calibration phase fits the 150 s excerpt: windows ending by 80 s calibrate.
    let mut extractor = FeatureExtractor::with_hop(HOP_S).with_baseline(80.0);
    let (mut answered, mut refused) = (0, 0);
    for w in hops(&rec) {
        let fv = extractor.extract(&w).clone();
        for s in &mut stages {
            match s.run(&fv) {
                Ok(p) => {
                    answered += 1;
                    assert_eq!(p.len(), 2);
                    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4 && p.iter().all(|v| (0.0..=1.0).contains(v)));
                }
                Err(missing) => {
                    refused += 1;
                    assert!(missing.iter().all(|m| m.starts_with("z_")), "only baseline features wait: {missing:?}");
                }
            }
        }
    }
    assert!(answered > 0 && refused > 0, "answered {answered}, refused {refused}");
}

/// Windows of the excerpt with an 80 s baseline, past the calibration phase.
fn calibrated_windows() -> Vec<biofeedd::features::FeatureVector> {
    let rec = recordings::e4_recording();
    let mut extractor = FeatureExtractor::with_hop(HOP_S).with_baseline(80.0);
    hops(&rec)
        .iter()
        .map(|w| extractor.extract(w).clone())
        .filter(|fv| fv.values.iter().any(|v| v.is_finite()))
        .collect()
}

#[test]
fn the_cascade_exits_early_when_stage_0_is_confident_and_otherwise_runs_stage_1() {
    use biofeedd::fusion::{Fusion, Source};
    let mut fusion = Fusion::new(vec![stage("stress-s0.toml"), stage("stress-s1.toml")], None).unwrap();
    let exit = fusion.stages()[0].manifest.exit.as_ref().unwrap().confidence;
    let mut s0 = stage("stress-s0.toml");
    let (mut early, mut late) = (0, 0);
    for fv in calibrated_windows() {
        let p = fusion.predict(&fv);
        if p.source == Source::None {
            assert!(p.reason.unwrap().contains("baseline"));
            continue;
        }
        let confident = s0.run(&fv).map(|q| q.iter().copied().fold(0.0, f32::max) >= exit).unwrap_or(false);
        assert_eq!(p.exit_stage, if confident { 0 } else { 1 }, "{p:?}");
        assert_eq!(p.stage_latency.len(), if confident { 1 } else { 2 });
        if confident {
            early += 1;
        } else {
            late += 1;
        }
    }
    assert!(early > 0 && late > 0, "early {early}, late {late}: both paths are exercised");
}

#[test]
fn a_deadline_too_short_for_stage_1_gives_stage_0_as_fallback() {
    use biofeedd::fusion::{Fusion, Source};
    // One nanosecond: stage 0 always runs (there is no answer yet); once stage 1's usual latency
    // is known, every later window skips it.
    let mut fusion =
        Fusion::new(vec![stage("stress-s0.toml"), stage("stress-s1.toml")], Some(std::time::Duration::from_nanos(1)))
            .unwrap();
    let exit = fusion.stages()[0].manifest.exit.as_ref().unwrap().confidence;
    let mut fallbacks = 0;
    let mut ran_stage_1 = 0;
    for fv in calibrated_windows() {
        let p = fusion.predict(&fv);
        if p.source == Source::None {
            continue;
        }
        let top = p.probabilities.iter().map(|(_, v)| *v).fold(0.0, f32::max);
        match p.source {
            Source::Fallback => {
                fallbacks += 1;
                assert_eq!((p.exit_stage, p.stage_latency.len()), (0, 1));
                assert!(top < exit, "a confident stage 0 exits; it is not a fallback");
            }
            _ if p.exit_stage == 1 => ran_stage_1 += 1,
            _ => {}
        }
    }
    assert!(ran_stage_1 <= 1, "stage 1 runs at most once, to learn its latency");
    assert!(fallbacks > 0, "stage 0 is not confident on every window of the excerpt, so some fall back");
}

#[test]
fn stages_in_the_wrong_order_are_refused() {
    use biofeedd::fusion::Fusion;
    let err = Fusion::new(vec![stage("stress-s1.toml"), stage("stress-s0.toml")], None).err().unwrap().to_string();
    assert!(err.contains("listed as stage 0 of the cascade but says `stage = 1`"), "{err}");
}

#[test]
fn a_repeated_window_is_answered_from_the_cache() {
    use biofeedd::features::feature_index;
    use biofeedd::fusion::{Fusion, Source};
    let mut fusion = Fusion::new(vec![stage("stress-s0.toml"), stage("stress-s1.toml")], None)
        .unwrap()
        .with_cache(64, 0.05)
        .unwrap();
    let fv = calibrated_windows().into_iter().rev().find(|fv| fv.values.iter().any(|v| v.is_finite())).unwrap();
    let first = fusion.predict(&fv);
    assert_ne!(first.source, Source::None, "{:?}", first.reason);
    let again = fusion.predict(&fv);
    assert_eq!(again.source, Source::Cache);
    assert_eq!((again.label.as_str(), &again.probabilities), (first.label.as_str(), &first.probabilities));
    assert!(again.stage_latency.is_empty(), "no model ran");
    // 1.8 z-units more heart rate is dozens of quantisation steps away: another window.
    let mut other = fv.clone();
    other.values[feature_index("z_hr_mean_bpm").unwrap()] += 2.0 * 0.9;
    assert_ne!(fusion.predict(&other).source, Source::Cache);
    assert_eq!(fusion.cache_stats(), Some((3, 1)));

    let err = Fusion::new(vec![Stage::builtin().unwrap()], None).unwrap().with_cache(8, 0.05).err().unwrap();
    assert!(err.to_string().contains("needs inputs.scale"), "{err}");
}
