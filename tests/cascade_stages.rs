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
