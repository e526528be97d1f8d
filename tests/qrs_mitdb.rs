//! R-peak detection quality on a real, annotated ECG: 5 minutes of MIT-BIH record 100, scored
//! against the cardiologists' beat annotations the standard way (beats only, 150 ms, one-to-one).

mod common;

use biofeedd::features::beats::detect_ecg;
use biofeedd::ingest::replay::wfdb;

/// One-to-one matches of sorted sample indices within `tol` samples: (TP, FN, FP).
fn score(reference: &[u64], detected: &[usize], tol: u64) -> (usize, usize, usize) {
    let (mut i, mut j, mut tp) = (0, 0, 0);
    while i < reference.len() && j < detected.len() {
        let (r, d) = (reference[i], detected[j] as u64);
        if r.abs_diff(d) <= tol {
            if j + 1 < detected.len() && (detected[j + 1] as u64).abs_diff(r) < r.abs_diff(d) {
                j += 1;
                continue;
            }
            tp += 1;
            i += 1;
            j += 1;
        } else if d < r {
            j += 1;
        } else {
            i += 1;
        }
    }
    (tp, reference.len() - tp, detected.len() - tp)
}

#[test]
fn record_100_excerpt_meets_the_sensitivity_and_predictivity_floor() {
    let record = common::repo_path("tests/data/mitdb-100-5min/100");
    let rec = wfdb::load(&record).expect("WFDB excerpt loads");
    let ecg = &rec.channels[0];
    assert_eq!(ecg.spec.name, "MLII");
    assert_eq!(ecg.spec.rate_hz, 360.0);
    let samples = &ecg.segments[0].samples;
    assert_eq!(samples.len(), 108_000);

    let reference: Vec<u64> = wfdb::load_annotations(&record)
        .unwrap()
        .into_iter()
        .filter(|a| wfdb::is_beat(a.code) && a.sample < samples.len() as u64)
        .map(|a| a.sample)
        .collect();
    assert!(reference.len() > 350, "{} reference beats", reference.len());

    let peaks = detect_ecg(samples, 360.0);
    let (tp, fn_, fp) = score(&reference, &peaks, 54);
    let se = tp as f64 / (tp + fn_) as f64;
    let ppv = tp as f64 / (tp + fp) as f64;
    assert!(se >= 0.995, "Se {se:.4} (TP {tp}, FN {fn_})");
    assert!(ppv >= 0.995, "+P {ppv:.4} (TP {tp}, FP {fp})");
}

#[test]
fn scorer_counts_misses_and_extras() {
    assert_eq!(score(&[100, 200, 300], &[101, 250, 299, 400], 10), (2, 1, 2));
    assert_eq!(score(&[100], &[95, 99], 10), (1, 0, 1), "the closer detection is the match");
    assert_eq!(score(&[], &[1], 10), (0, 0, 1));
}
