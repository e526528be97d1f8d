//! `biofeedd eval`: the shipped models on labelled recordings, scored like the training script.
//!
//! Each recording is windowed by the daemon's own windower, its features come from the daemon's
//! own extractor, and every model runs through tract exactly as in service: each stage (every
//! variant) alone, and the cascade. A window is labelled when at least 90 % of it lies in one
//! labelled segment (segments whose task is excluded, e.g. `hyperventilation`, label nothing),
//! the rule `models/train/cascade.py` uses; a model is scored on the labelled windows it
//! answers (not during the subject's baseline calibration, not without its inputs).
//!
//! Scores: balanced accuracy and F1 at probability 0.5 of the positive class (the models' last
//! class, e.g. `stress`), and AUROC, pooled over every window and per subject.

use crate::features::FeatureExtractor;
use crate::fusion::{Fusion, Source};
use crate::ingest::replay::csv_table::{CsvTable, Separator};
use crate::ingest::replay::Recording;
use crate::ring::ChunkMark;
use crate::window::{SubjectWindower, Window, WindowConfig};
use anyhow::{anyhow, bail, Context};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// One labelled span of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    /// Index of the class in the models' output order (0 = first class).
    pub label: usize,
    pub task: String,
}

/// Labels per subject, from a CSV with the columns `subject,label,task,start_unix,end_unix`
/// (others are ignored; Stress-Predict's `labels_segments.csv` is one). Errors name the file,
/// the line and the column: `labels.csv: line 2: end_unix `x` is not a number (column 17)`.
pub fn load_labels(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<Segment>>> {
    let source = crate::ingest::replay::csv_table::open(path)
        .with_context(|| format!("cannot read labels {}", path.display()))?;
    read_labels(source, path)
}

/// [`load_labels`] over any reader; `path` names it in errors.
pub fn read_labels(source: impl std::io::Read, path: &Path) -> anyhow::Result<BTreeMap<String, Vec<Segment>>> {
    let mut table = CsvTable::new(source, path, Separator::Comma)
        .with_context(|| format!("cannot read labels {}", path.display()))?;
    let at =
        |line: usize, column: usize, what: &str| anyhow!("{}: line {line}: {what} (column {column})", path.display());
    let header: Vec<String> =
        if table.next_record()? { table.record().iter().map(String::from).collect() } else { Vec::new() };
    let header_line = table.line().max(1);
    let col = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            at(header_line, 1, &format!("no `{name}` column (needs subject,label,task,start_unix,end_unix)"))
        })
    };
    let (cs, cl, ct, ca, cb) = (col("subject")?, col("label")?, col("task")?, col("start_unix")?, col("end_unix")?);
    let mut out: BTreeMap<String, Vec<Segment>> = BTreeMap::new();
    while table.next_record()? {
        let field = |c: usize| table.record().get(c).unwrap_or("");
        let bad = |c: usize, what: &str| at(table.line(), table.column(c), what);
        let num = |c: usize, what: &str| {
            field(c).parse::<f64>().map_err(|_| bad(c, &format!("{what} `{}` is not a number", field(c))))
        };
        let segment = Segment {
            start: num(ca, "start_unix")?,
            end: num(cb, "end_unix")?,
            label: field(cl)
                .parse()
                .map_err(|_| bad(cl, &format!("label `{}` is not a class index (0, 1, ...)", field(cl))))?,
            task: field(ct).to_string(),
        };
        if segment.end.partial_cmp(&segment.start) != Some(std::cmp::Ordering::Greater) {
            return Err(bad(cb, "end_unix is not after start_unix"));
        }
        out.entry(field(cs).to_string()).or_default().push(segment);
    }
    Ok(out)
}

/// The label of `[start, end)`: the segment holding at least 90 % of it, unless its task is
/// excluded.
pub fn window_label(segments: &[Segment], start: f64, end: f64, exclude: &[String]) -> Option<usize> {
    let s = segments.iter().find(|s| end.min(s.end) - start.max(s.start) >= 0.9 * (end - start))?;
    (!exclude.contains(&s.task)).then_some(s.label)
}

/// Every window of a recording, through the daemon's windower, in time order: the samples are
/// pushed in one-second chunks across channels as a live stream would bring them.
pub fn replay_windows(rec: &Recording, subject: &str, config: WindowConfig, mut each: impl FnMut(&Window)) {
    let specs = rec.channels.iter().map(|c| c.spec.clone()).collect();
    let mut windower = SubjectWindower::new(subject, specs, config);
    // (time, channel, segment, offset, len) of every chunk, sorted by time.
    let mut chunks = Vec::new();
    for (c, ch) in rec.channels.iter().enumerate() {
        let per = (ch.spec.rate_hz.ceil() as usize).max(1);
        for (k, seg) in ch.segments.iter().enumerate() {
            for off in (0..seg.samples.len()).step_by(per) {
                let t = seg.start_time + off as f64 / ch.spec.rate_hz;
                chunks.push((t, c, k, off, per.min(seg.samples.len() - off)));
            }
        }
    }
    chunks.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut left: Vec<usize> = vec![0; rec.channels.len()];
    for &(_, c, ..) in &chunks {
        left[c] += 1;
    }
    for (t, c, k, off, len) in chunks {
        let seg = &rec.channels[c].segments[k];
        let mark =
            ChunkMark { len: len as u32, source_time: t, arrival: Instant::now(), gap_before: k > 0 && off == 0 };
        windower.push(c, &mark, &seg.samples[off..off + len]);
        left[c] -= 1;
        if left[c] == 0 {
            windower.finish_channel(c);
        }
        for (ch, n) in left.iter().enumerate() {
            windower.set_pending(ch, *n > 0);
        }
        while let Some(w) = windower.next_window() {
            each(w);
        }
    }
    while let Some(w) = windower.next_window() {
        each(w);
    }
}

/// Labels and positive-class probabilities of one model's answered windows.
#[derive(Debug, Default, Clone)]
pub struct Scores {
    pub pooled: Vec<(bool, f32)>,
    pub by_subject: BTreeMap<String, Vec<(bool, f32)>>,
}

impl Scores {
    fn add(&mut self, subject: &str, positive: bool, p: f32) {
        self.pooled.push((positive, p));
        self.by_subject.entry(subject.to_string()).or_default().push((positive, p));
    }
}

/// Balanced accuracy, F1 (positive class) and AUROC of (is positive, probability) pairs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub windows: usize,
    pub balanced_accuracy: f64,
    pub f1: f64,
    pub auroc: f64,
}

impl Metrics {
    pub fn of(pairs: &[(bool, f32)]) -> Metrics {
        let (mut tp, mut fp, mut tn, mut fneg) = (0usize, 0usize, 0usize, 0usize);
        for &(pos, p) in pairs {
            match (pos, p >= 0.5) {
                (true, true) => tp += 1,
                (true, false) => fneg += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
            }
        }
        // A class absent from the windows (one subject) is left out of the balanced accuracy.
        let recalls: Vec<f64> =
            [(tp, fneg), (tn, fp)].iter().filter(|(a, b)| a + b > 0).map(|&(a, b)| a as f64 / (a + b) as f64).collect();
        let balanced_accuracy =
            if recalls.is_empty() { f64::NAN } else { recalls.iter().sum::<f64>() / recalls.len() as f64 };
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64;
        Metrics { windows: pairs.len(), balanced_accuracy, f1, auroc: auroc(pairs) }
    }
}

/// Area under the ROC curve (Mann–Whitney; tied probabilities share their rank).
fn auroc(pairs: &[(bool, f32)]) -> f64 {
    let mut sorted: Vec<(f32, bool)> = pairs.iter().map(|&(pos, p)| (p, pos)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0f64, 0);
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * sorted[i..j].iter().filter(|(_, pos)| *pos).count() as f64;
        i = j;
    }
    let n1 = pairs.iter().filter(|(pos, _)| *pos).count() as f64;
    let n0 = pairs.len() as f64 - n1;
    if n1 == 0.0 || n0 == 0.0 {
        return f64::NAN;
    }
    (rank_sum - n1 * (n1 + 1.0) / 2.0) / (n1 * n0)
}

/// What `biofeedd eval` measured: per model (`cascade` and every stage variant by name).
#[derive(Debug, Default)]
pub struct Report {
    pub models: BTreeMap<String, Scores>,
    /// Where the cascade's answers came from: exits per stage.
    pub exits: Vec<u64>,
    /// Labelled windows seen (answered or not).
    pub labelled: usize,
}

/// Score `fusion` on one subject's recording: the cascade, then each of its stages and
/// variants by itself on the same window (the models keep no state between windows, so one
/// loaded set serves both).
#[allow(clippy::too_many_arguments)]
pub fn score_subject(
    report: &mut Report,
    rec: &Recording,
    subject: &str,
    segments: &[Segment],
    exclude: &[String],
    window: WindowConfig,
    extractor: &mut FeatureExtractor,
    fusion: &mut Fusion,
) -> anyhow::Result<()> {
    let positive = fusion.stage().manifest.outputs.classes.len() - 1;
    let classes = fusion.stage().manifest.outputs.classes.clone();
    if let Some(s) = segments.iter().find(|s| s.label >= classes.len()) {
        bail!("subject `{subject}`: label {} is not a class of the models ({})", s.label, classes.join(", "));
    }
    if report.exits.len() < fusion.slots().len() {
        report.exits.resize(fusion.slots().len(), 0);
    }
    replay_windows(rec, subject, window, |w| {
        let fv = extractor.extract(w);
        let Some(label) = window_label(segments, w.start, w.end, exclude) else { return };
        report.labelled += 1;
        let is_pos = label == positive;
        let p = fusion.predict(w, fv);
        if p.source == Source::Edge || p.source == Source::Fallback {
            report.exits[p.exit_stage as usize] += 1;
            report.models.entry("cascade".into()).or_default().add(subject, is_pos, p.probabilities[positive].1);
        }
        for slot in fusion.slots_mut() {
            for stage in slot.variants_mut() {
                if let Ok(probs) = stage.run(w, fv) {
                    let name = stage.manifest.name.clone();
                    report.models.entry(name).or_default().add(subject, is_pos, probs[positive]);
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> anyhow::Result<BTreeMap<String, Vec<Segment>>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, text).unwrap();
        load_labels(&path).map_err(|e| anyhow!("{}", e.to_string().replace(&path.display().to_string(), "labels.csv")))
    }

    #[test]
    fn labels_with_quotes_bom_and_blank_lines() {
        let got = labels("\u{feff}subject,label,task,start_unix,end_unix,note\nS1,1,\"stroop, hard\",10,20,\"a,b\"\n\nS1,0,rest,20,30\n").unwrap();
        let s1 = &got["S1"];
        assert_eq!(s1.len(), 2);
        assert_eq!(s1[0], Segment { start: 10.0, end: 20.0, label: 1, task: "stroop, hard".into() });
        assert_eq!((s1[1].label, s1[1].task.as_str()), (0, "rest"));
    }

    #[test]
    fn label_errors_name_line_and_column() {
        let e = labels("subject,label,task,start_unix,end_unix\nS1,1,t,10,20\n\nS1,1,t,10,later\n").unwrap_err();
        assert_eq!(e.to_string(), "labels.csv: line 4: end_unix `later` is not a number (column 11)");
        let e = labels("subject,label,task,start_unix,end_unix\nS1,x,t,10,20\n").unwrap_err();
        assert!(e.to_string().starts_with("labels.csv: line 2: label `x` is not a class index"), "{e}");
        let e = labels("subject,label,task,start_unix,end_unix\nS1,1,t,20,10\n").unwrap_err();
        assert_eq!(e.to_string(), "labels.csv: line 2: end_unix is not after start_unix (column 11)");
        let e = labels("subject,label,task,start_unix\n").unwrap_err();
        assert!(e.to_string().starts_with("labels.csv: line 1: no `end_unix` column"), "{e}");
    }
}
