//! The bundled cascade (models/stress-s*.onnx and their variants) through tract, on real windows:
//! the committed E4 excerpt (150 s, an 80 s baseline) and the S05 evaluation excerpt (22 min,
//! the trained 300 s baseline).

#[path = "../benches/common/mod.rs"]
mod recordings;

use biofeedd::features::{FeatureExtractor, FeatureVector};
use biofeedd::fusion::{builtin, Fusion, FusionConfig, Slot, Source, Stage, Variant};
use biofeedd::window::Window;
use recordings::{hops, HOP_S};
use std::path::Path;

fn slot(name: &str) -> Slot {
    Slot::load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn stage(name: &str) -> Stage {
    Stage::load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn cascade() -> Fusion {
    Fusion::with_variants(builtin::STAGES.iter().map(|n| slot(n)).collect(), None).unwrap()
}

fn exit_of(s: &Stage) -> f32 {
    s.manifest.exit.as_ref().map_or(f32::INFINITY, |e| e.confidence)
}

fn top(p: &[f32]) -> f32 {
    p.iter().copied().fold(0.0, f32::max)
}

#[test]
fn the_files_on_disk_are_the_bundled_ones() {
    for (name, bytes) in builtin::FILES {
        let on_disk = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)).unwrap();
        assert!(on_disk == *bytes, "models/{name} changed since the build bundled it");
    }
}

#[test]
fn stages_answer_after_the_baseline_and_not_before() {
    let mut stages = [stage("stress-s0.toml"), stage("stress-s1.toml"), stage("stress-s2.toml")];
    assert!(stages[0].manifest.exit.is_some() && stages[1].manifest.exit.is_some());
    assert!(stages[2].manifest.exit.is_none() && stages[2].manifest.inputs.raw.is_some());
    let rec = recordings::e4_recording();
    // An 80 s calibration phase fits the 150 s excerpt: windows ending by 80 s calibrate.
    let mut extractor = FeatureExtractor::with_hop(HOP_S).with_baseline(80.0);
    let (mut answered, mut refused) = (0, 0);
    for w in hops(&rec) {
        let fv = extractor.extract(&w).clone();
        for s in &mut stages {
            match s.run(&w, &fv) {
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

/// Windows of the S05 evaluation excerpt past its 300 s baseline.
fn calibrated_windows() -> Vec<(Window, FeatureVector)> {
    recordings::calibrated_eval_windows()
}

/// Stage 0 with its exit confidence lowered to 0.6: on this excerpt the shipped 0.72 is never
/// reached, and the test must see all three exits.
fn eager_stage_0() -> Stage {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/stress-s0.toml")).unwrap();
    let text: Vec<&str> =
        text.lines().map(|l| if l.starts_with("confidence =") { "confidence = 0.6" } else { l }).collect();
    let manifest = biofeedd::fusion::Manifest::parse(&text.join("\n"), Path::new("stress-s0.toml")).unwrap();
    Stage::load(manifest, &builtin::read(Path::new("stress-s0.onnx")).unwrap()).unwrap()
}

#[test]
fn each_window_exits_at_the_first_confident_stage() {
    let mut slots: Vec<Slot> = builtin::STAGES.iter().map(|n| slot(n)).collect();
    slots[0] = Slot::new(vec![eager_stage_0()]);
    let mut fusion = Fusion::with_variants(slots, None).unwrap();
    let mut alone = [eager_stage_0(), stage("stress-s1.toml"), stage("stress-s2.toml")];
    let mut exits = [0; 3];
    for (w, fv) in calibrated_windows() {
        let p = fusion.predict(&w, &fv);
        assert_eq!(p.source, Source::Edge, "{:?}", p.reason);
        let expected = (0..3)
            .find(|&k| {
                let e = exit_of(&alone[k]);
                alone[k].run(&w, &fv).map(|q| top(&q) >= e).unwrap()
            })
            .unwrap_or(2);
        assert_eq!(p.exit_stage as usize, expected, "{p:?}");
        assert_eq!(p.stage_latency.len(), expected + 1);
        assert_eq!(p.model, format!("stress-s{expected}"));
        exits[expected] += 1;
    }
    assert!(exits.iter().all(|&n| n > 0), "every stage answers some windows: {exits:?}");
}

#[test]
fn a_deadline_too_short_for_the_later_stages_gives_the_best_answer_so_far() {
    // One nanosecond: stage 0 always runs (there is no answer yet); once a later stage's usual
    // latency is known, every later window skips it.
    let mut fusion = Fusion::with_variants(
        builtin::STAGES.iter().map(|n| slot(n)).collect(),
        Some(std::time::Duration::from_nanos(1)),
    )
    .unwrap();
    let exit = exit_of(fusion.stages().next().unwrap());
    let (mut fallbacks, mut ran_later) = (0, 0);
    for (w, fv) in calibrated_windows() {
        let p = fusion.predict(&w, &fv);
        match p.source {
            Source::Fallback => {
                fallbacks += 1;
                assert_eq!((p.exit_stage, p.stage_latency.len()), (0, 1));
                assert!(top(&p.probabilities.iter().map(|(_, v)| *v).collect::<Vec<_>>()) < exit);
            }
            _ if p.exit_stage > 0 => ran_later += 1,
            _ => {}
        }
    }
    assert!(ran_later <= 1, "a later stage runs at most once, to learn its latency");
    assert!(fallbacks > 0, "stage 0 is not confident on every window, so some fall back");
}

#[test]
fn stages_in_the_wrong_order_are_refused() {
    let err = Fusion::new(vec![stage("stress-s1.toml"), stage("stress-s0.toml")], None).err().unwrap().to_string();
    assert!(err.contains("listed as stage 0 of the cascade but says `stage = 1`"), "{err}");
}

#[test]
fn a_repeated_window_is_answered_from_the_cache_of_the_same_variants() {
    use biofeedd::features::feature_index;
    let mut fusion = cascade().with_cache(64, 0.05).unwrap();
    let (w, fv) = calibrated_windows().into_iter().next_back().unwrap();
    let first = fusion.predict(&w, &fv);
    assert_ne!(first.source, Source::None, "{:?}", first.reason);
    let again = fusion.predict(&w, &fv);
    assert_eq!(again.source, Source::Cache);
    assert_eq!((again.label.as_str(), &again.probabilities), (first.label.as_str(), &first.probabilities));
    assert!(again.stage_latency.is_empty(), "no model ran");
    // 1.8 z-units more heart rate is dozens of quantisation steps away: another window.
    let mut other = fv.clone();
    other.values[feature_index("z_hr_mean_bpm").unwrap()] += 2.0 * 0.9;
    assert_ne!(fusion.predict(&w, &other).source, Source::Cache);
    // Another variant's answer is not this one's.
    fusion.set_variant(Variant::Int8);
    assert_ne!(fusion.predict(&w, &fv).source, Source::Cache);
    assert_eq!(fusion.cache_stats(), Some((4, 1)));

    let mut no_scale =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/stress-s0.toml")).unwrap();
    no_scale = no_scale.lines().filter(|l| !l.starts_with("scale =")).collect::<Vec<_>>().join("\n");
    let manifest = biofeedd::fusion::Manifest::parse(&no_scale, Path::new("s0.toml")).unwrap();
    let bare = Stage::load(manifest, &builtin::read(Path::new("stress-s0.onnx")).unwrap()).unwrap();
    let err = Fusion::new(vec![bare], None).unwrap().with_cache(8, 0.05).err().unwrap();
    assert!(err.to_string().contains("needs inputs.scale"), "{err}");
}

/// Largest difference in stress probability and the share of windows with the same label.
fn agreement(parent: &mut Stage, variant: &mut Stage, windows: &[(Window, FeatureVector)]) -> (f32, f64) {
    let (mut worst, mut same) = (0.0f32, 0usize);
    for (w, fv) in windows {
        let (a, b) = (parent.run(w, fv).unwrap(), variant.run(w, fv).unwrap());
        worst = worst.max((a[1] - b[1]).abs());
        same += ((a[1] >= 0.5) == (b[1] >= 0.5)) as usize;
    }
    (worst, same as f64 / windows.len() as f64)
}

/// Every variant against its fp32 parent on every calibrated window of the S05 excerpt.
/// Tolerances: int8 (the same network, 8-bit weights and activations) within 0.05 of the
/// parent's stress probability on every window and the same label on >= 97 % of them; pruned
/// (a smaller network, fine-tuned) the same label on >= 85 % and within 0.35 everywhere.
#[test]
fn every_variant_stays_within_its_tolerance_of_its_fp32_parent() {
    let windows = calibrated_windows();
    assert!(windows.len() > 150, "{}", windows.len());
    let mut checked = Vec::new();
    for name in builtin::STAGES {
        let mut s = slot(name);
        let (parent, variants) = s.variants_mut().split_first_mut().unwrap();
        assert_eq!(parent.manifest.variant, Variant::Fp32);
        for v in variants {
            let (worst, same) = agreement(parent, v, &windows);
            let (max_diff, min_same) = match v.manifest.variant {
                Variant::Int8 => (0.05, 0.97),
                Variant::Pruned => (0.35, 0.85),
                Variant::Fp32 => unreachable!("a manifest cannot list its own variant"),
            };
            assert!(worst <= max_diff && same >= min_same, "{}: max diff {worst}, same label {same}", v.manifest.name);
            if v.manifest.variant == Variant::Int8 {
                assert!(v.manifest.size_bytes < parent.manifest.size_bytes, "{}", v.manifest.name);
            }
            checked.push(v.manifest.name.clone());
        }
    }
    assert_eq!(checked, ["stress-s1-int8", "stress-s1-pruned", "stress-s2-int8"]);
}

#[test]
fn the_governor_can_switch_variants_at_run_time() {
    let mut fusion = Fusion::from_config(&FusionConfig::default(), |p| p.to_path_buf()).unwrap();
    assert_eq!(fusion.variants(), [Variant::Fp32; 3]);
    assert_eq!(fusion.set_variant(Variant::Int8), 2, "stages 1 and 2 have an int8 variant");
    assert_eq!(fusion.variants(), [Variant::Fp32, Variant::Int8, Variant::Int8]);
    assert!(fusion.set_stage_variant(1, Variant::Pruned));
    assert!(!fusion.set_stage_variant(2, Variant::Pruned), "stage 2 has no pruned variant");
    assert_eq!(fusion.variants(), [Variant::Fp32, Variant::Pruned, Variant::Int8]);
    let mut seen = std::collections::BTreeSet::new();
    for (w, fv) in calibrated_windows() {
        let p = fusion.predict(&w, &fv);
        seen.insert((p.exit_stage, p.model.clone(), p.variant));
    }
    assert!(seen.contains(&(1, "stress-s1-pruned".into(), Variant::Pruned)), "{seen:?}");
    assert!(seen.contains(&(2, "stress-s2-int8".into(), Variant::Int8)), "{seen:?}");
    fusion.set_variant(Variant::Fp32);
    assert_eq!(fusion.variants(), [Variant::Fp32; 3]);
}

#[test]
fn without_the_raw_window_the_cascade_answers_from_the_feature_stages() {
    let mut fusion = cascade();
    for (mut w, fv) in calibrated_windows().into_iter().take(40) {
        // The features stay; the raw PPG is gone (a chest strap instead of the wrist's PPG).
        w.channels.retain(|c| c.spec.modality != biofeedd::signal::Modality::Ppg);
        let p = fusion.predict(&w, &fv);
        assert_eq!(p.source, Source::Edge);
        assert!(p.exit_stage <= 1, "{p:?}");
    }
}
