//! `biofeedd eval`: score every stage, variant and the cascade on labelled recordings.

use super::daemon::replay_config;
use super::InputArgs;
use anyhow::Context;
use biofeedd::daemon;
use biofeedd::features;
use biofeedd::ingest::replay::ReplayFormat;
use std::path::Path;

pub fn eval(input: &Path, labels: &Path, base: Option<&Path>, exclude: &[String], json: bool) -> anyhow::Result<()> {
    use biofeedd::eval::{self, Metrics, Report};
    let labels = eval::load_labels(labels)?;
    let subjects: Vec<&String> = labels.keys().filter(|s| input.join(s).is_dir()).collect();
    if subjects.is_empty() {
        anyhow::bail!(
            "{}: no folder named after a labelled subject ({})",
            input.display(),
            labels.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut report = Report::default();
    for subject in subjects {
        let args = InputArgs {
            format: ReplayFormat::E4,
            input: input.join(subject),
            rate: None,
            subject: Some(subject.clone()),
        };
        let config = replay_config(&args, base)?;
        let source = config.sensors[0].source.as_replay().context("eval reads recordings")?;
        let recording = biofeedd::ingest::replay::load(source, &source.path, 0.0)?;
        let specs: Vec<_> = recording.channels.iter().map(|c| c.spec.clone()).collect();
        let mut fusion = daemon::load_fusion(&config, &[specs])?;
        let mut extractor =
            features::FeatureExtractor::with_hop(config.window.hop_s).with_baseline(config.features.baseline_s);
        eval::score_subject(
            &mut report,
            &recording,
            subject,
            &labels[subject],
            exclude,
            config.window.clone(),
            &mut extractor,
            &mut fusion,
        )?;
    }
    let pooled: Vec<(String, Metrics)> =
        report.models.iter().map(|(name, s)| (name.clone(), Metrics::of(&s.pooled))).collect();
    if json {
        let models: serde_json::Map<String, serde_json::Value> = report
            .models
            .iter()
            .zip(&pooled)
            .map(|((name, scores), (_, m))| {
                let per: serde_json::Map<String, serde_json::Value> = scores
                    .by_subject
                    .iter()
                    .map(|(s, pairs)| (s.clone(), serde_json::to_value(Metrics::of(pairs)).expect("plain numbers")))
                    .collect();
                let mut v = serde_json::to_value(m).expect("plain numbers");
                v["subjects"] = per.into();
                (name.clone(), v)
            })
            .collect();
        let out =
            serde_json::json!({ "labelled_windows": report.labelled, "cascade_exits": report.exits, "models": models });
        return super::out::print(&format!("{out}\n"));
    }
    use std::fmt::Write;
    let mut text = String::new();
    writeln!(text, "{} labelled windows; cascade exits per stage: {:?}", report.labelled, report.exits)?;
    writeln!(text, "{:<20} {:>8} {:>9} {:>7} {:>7}", "model", "windows", "bal.acc", "F1", "AUROC")?;
    for (name, m) in &pooled {
        writeln!(text, "{name:<20} {:>8} {:>9.4} {:>7.4} {:>7.4}", m.windows, m.balanced_accuracy, m.f1, m.auroc)?;
    }
    // Per subject: balanced accuracy of each model (blank where a subject has one class only).
    writeln!(text, "\nbalanced accuracy per subject")?;
    write!(text, "{:<10}", "subject")?;
    for name in report.models.keys() {
        write!(text, " {name:>16}")?;
    }
    writeln!(text)?;
    for subject in labels.keys().filter(|s| report.models.values().any(|m| m.by_subject.contains_key(*s))) {
        write!(text, "{subject:<10}")?;
        for scores in report.models.values() {
            match scores.by_subject.get(subject).map(|p| Metrics::of(p).balanced_accuracy) {
                Some(ba) if ba.is_finite() => write!(text, " {ba:>16.3}")?,
                _ => write!(text, " {:>16}", "")?,
            }
        }
        writeln!(text)?;
    }
    super::out::print(&text)
}
