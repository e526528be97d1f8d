//! Research commands over the same detectors the feature stage runs: `beats`, `events`, `hrv`.

use super::daemon::replay_config;
use super::InputArgs;
use anyhow::Context;
use biofeedd::features;
use biofeedd::ingest::replay::wfdb;
use biofeedd::signal::Modality;
use std::path::Path;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EventKind {
    Ecg,
    Ppg,
    Scr,
    Resp,
}

impl EventKind {
    fn modality(self) -> Modality {
        match self {
            EventKind::Ecg => Modality::Ecg,
            EventKind::Ppg => Modality::Ppg,
            EventKind::Scr => Modality::Eda,
            EventKind::Resp => Modality::Resp,
        }
    }
}

pub fn beats(record: &Path, channel: usize, confirmation: bool) -> anyhow::Result<()> {
    let rec = wfdb::load(record)?;
    let n = rec.channels.len();
    let ch = rec.channels.get(channel).with_context(|| {
        format!("{}: has {n} signals; --channel takes 0..{}", record.display(), n.saturating_sub(1))
    })?;
    let (samples, fs) = (&ch.segments[0].samples, ch.spec.rate_hz);
    if confirmation {
        let confirmed = features::beats::detect_ecg_confirmed(samples, fs);
        print_lines(confirmed.into_iter().map(|(r, at)| format!("{r},{at}")));
    } else {
        print_lines(features::beats::detect_ecg(samples, fs));
    }
    Ok(())
}

/// One item per line on stdout; a closed pipe (`| head`) stops the output quietly.
fn print_lines(lines: impl IntoIterator<Item = impl std::fmt::Display>) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

pub fn events(kind: EventKind, input: &InputArgs, channel: Option<&str>) -> anyhow::Result<()> {
    let config = replay_config(input, None)?;
    let source = config.sensors[0].source.as_replay().context("this command reads a recording")?;
    let rec = biofeedd::ingest::replay::load(source, &source.path, 0.0)?;
    let names = || rec.channels.iter().map(|c| c.spec.name.as_str()).collect::<Vec<_>>().join(", ");
    let ch = match channel {
        Some(name) => rec.channels.iter().find(|c| c.spec.name == name),
        None => rec.channels.iter().find(|c| c.spec.modality == kind.modality()),
    }
    .with_context(|| {
        format!("{}: no channel {} (channels: {})", input.input.display(), channel.unwrap_or("of that kind"), names())
    })?;
    let fs = ch.spec.rate_hz;
    // Sample numbers count from the channel's first sample; `time_s` is on the recording clock, so
    // gaps between segments show.
    let first = ch.segments.first().map_or(0.0, |s| s.start_time);
    let mut lines = Vec::new();
    for seg in &ch.segments {
        let offset = ((seg.start_time - first) * fs).round() as u64;
        let at = |i: u64| (offset + i, seg.start_time + i as f64 / fs);
        match kind {
            EventKind::Ecg => lines.extend(features::beats::detect_ecg(&seg.samples, fs).into_iter().map(|i| {
                let (n, t) = at(i as u64);
                format!("{n},{t:.4}")
            })),
            EventKind::Ppg => lines.extend(features::beats::detect_ppg(&seg.samples, fs).into_iter().map(|b| {
                let (n, t) = at(b.index);
                format!("{n},{t:.4},{},{}", at(b.foot).0, b.amplitude)
            })),
            EventKind::Scr => lines.extend(features::eda::detect_scrs(&seg.samples, fs).into_iter().map(|s| {
                let (n, t) = at(s.peak);
                format!("{n},{t:.4},{},{:.5},{:.3}", at(s.onset).0, s.amplitude, s.rise_s)
            })),
            EventKind::Resp => {
                let mut breaths = Vec::new();
                let mut stream = features::resp::RespStream::new(fs);
                stream.process(&seg.samples, &mut breaths);
                lines.extend(breaths.into_iter().map(|i| {
                    let (n, t) = at(i);
                    format!("{n},{t:.4}")
                }));
            }
        }
    }
    let header = match kind {
        EventKind::Ecg | EventKind::Resp => "sample,time_s",
        EventKind::Ppg => "sample,time_s,foot_sample,amplitude",
        EventKind::Scr => "sample,time_s,onset_sample,amplitude_us,rise_s",
    };
    print_lines(std::iter::once(header).chain(lines.iter().map(String::as_str)));
    Ok(())
}

pub fn hrv(peaks: &Path, rate: f64, no_correction: bool) -> anyhow::Result<()> {
    use std::io::Read;
    // A day of beats at 300 bpm is under 4 MB of indices; anything far larger is not a peak list.
    const MAX_BYTES: u64 = 64 << 20;
    let input: Box<dyn Read> = if peaks == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(peaks).with_context(|| format!("{}: cannot read", peaks.display()))?)
    };
    let mut bytes = Vec::new();
    input.take(MAX_BYTES + 1).read_to_end(&mut bytes).with_context(|| format!("{}: cannot read", peaks.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_BYTES,
        "{}: more than {MAX_BYTES} bytes; not a list of peaks",
        peaks.display()
    );
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", peaks.display(), e.utf8_error().valid_up_to())
    })?;
    let indices = biofeedd::ingest::replay::peaks::parse_peaks(&text, peaks)?;
    anyhow::ensure!(
        indices.len() >= 2,
        "{}: {} peak(s); HRV needs at least two beats (one interval)",
        peaks.display(),
        indices.len()
    );
    let options = features::hrv::HrvOptions { correct: !no_correction };
    let result = features::hrv::from_peaks(&indices, rate, options, &mut Default::default());
    super::out::print(&format!("{}\n", serde_json::to_string(&result)?))
}
