//! The `biofeedd` command line. Each subcommand is a thin shell over the library.

use anyhow::Context;
use biofeedd::bridge::OutputFormat;
use biofeedd::config::{Config, HubConfig, SensorConfig, SourceConfig};
use biofeedd::daemon::{self, RunOptions};
use biofeedd::features::{self, FEATURE_NAMES};
use biofeedd::ingest::replay::{csv, wfdb, ReplayConfig, ReplayFormat, Speed, StartTime};
use biofeedd::signal::Modality;
use biofeedd::window::WindowConfig;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "biofeedd",
    version,
    about = "Edge biofeedback daemon: wearable streams in, features and predictions out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon as a config file describes it.
    Run {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Validate a config file and the models it names, then exit.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the default pipeline over one recording, no config file needed.
    Replay {
        #[command(flatten)]
        input: InputArgs,
        /// Take hub, window, model and MQTT settings from this config (its sensors are ignored).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Print detected R-peak sample indices of a WFDB record, one per line.
    Beats {
        /// PATH/RECORD without extension, as WFDB tools take it.
        #[arg(long)]
        wfdb: PathBuf,
        /// Signal number (0-based).
        #[arg(long, default_value_t = 0)]
        channel: usize,
    },
    /// Print the events a detector finds in one channel of a recording, as CSV on stdout: R-peaks
    /// (ecg), pulses with their foot and amplitude (ppg), skin conductance responses (scr) or
    /// breaths (resp). The same detectors the feature stage runs, for validation scripts.
    Events {
        /// ecg, ppg, scr or resp.
        #[arg(long)]
        kind: EventKind,
        #[command(flatten)]
        input: InputArgs,
        /// Channel name; default: the first channel of the kind's modality.
        #[arg(long)]
        channel: Option<String>,
    },
    /// HRV of given beats: reads R-peak sample indices (one per line, as `beats` prints them) from
    /// a file or `-` for stdin and prints one JSON object.
    Hrv {
        #[arg(long)]
        peaks: PathBuf,
        /// Sampling rate of the indices, Hz.
        #[arg(long)]
        rate: f64,
        /// Keep every interval (no ectopic/artefact correction), to compare with tools that keep them.
        #[arg(long)]
        no_correction: bool,
    },
    /// Score the models on labelled recordings: each stage and variant alone, and the cascade
    /// (balanced accuracy, F1, AUROC; pooled and per subject). Reproduces the `[metrics.eval]`
    /// the training script writes into each manifest.
    Eval {
        /// Folder of recordings, one E4 export folder per subject, named as in the labels.
        #[arg(long)]
        input: PathBuf,
        /// CSV of labelled segments: subject,label,task,start_unix,end_unix (label = class index).
        #[arg(long)]
        labels: PathBuf,
        /// Take window, features and models from this config (its sensors are ignored); default:
        /// 60 s windows every 5 s, a 300 s baseline and the bundled cascade.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Segments of this task label no window (repeatable), e.g. hyperventilation.
        #[arg(long)]
        exclude_task: Vec<String>,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Dump the per-window feature vectors of a replay (what the models are trained on).
    Features {
        /// Config whose sensors are replayed; or use --format/--input.
        #[arg(long, required_unless_present_any = ["input", "list"])]
        config: Option<PathBuf>,
        #[command(flatten)]
        input: OptionalInputArgs,
        /// csv (with header) or jsonl.
        #[arg(long, default_value = "csv")]
        output: OutputFormat,
        /// Print the feature names, one per line, and exit.
        #[arg(long)]
        list: bool,
        #[arg(long)]
        speed: Option<Speed>,
        /// Also prepare each window's raw tensor as this file's `[raw]` table says (the
        /// `[inputs.raw]` of a raw-window model manifest)...
        #[arg(long, requires = "raw_output")]
        raw_spec: Option<PathBuf>,
        /// ...and append it to this file, little-endian f32, one tensor per CSV row (NaN where a
        /// window lacked a channel).
        #[arg(long, requires = "raw_spec")]
        raw_output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EventKind {
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

#[derive(Args)]
struct RunArgs {
    /// Replay speed: 1 = real time, N = N times faster, max = as fast as possible.
    #[arg(long)]
    speed: Option<Speed>,
    /// text (one line per window), jsonl (the feedback payload per line) or quiet (MQTT only).
    #[arg(long, default_value = "text")]
    output: OutputFormat,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
}

#[derive(Args)]
struct InputArgs {
    /// Recording format: e4 (Empatica export folder), wfdb (PATH/RECORD) or csv.
    #[arg(long)]
    format: ReplayFormat,
    /// The export folder (e4) or file (csv).
    #[arg(long)]
    input: PathBuf,
    /// csv only: sampling rate in Hz of every column.
    #[arg(long)]
    rate: Option<f64>,
    /// Subject id; default: derived from the input's name.
    #[arg(long)]
    subject: Option<String>,
}

#[derive(Args)]
struct OptionalInputArgs {
    #[arg(long, requires = "input")]
    format: Option<ReplayFormat>,
    #[arg(long, requires = "format")]
    input: Option<PathBuf>,
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long)]
    subject: Option<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BIOFEEDD_LOG").unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config, run } => {
            let config = Config::load(&config)?;
            execute(config, run_options(&run)?)
        }
        Command::Check { config: path } => {
            let config = Config::load(&path)?;
            let recordings = daemon::load_recordings(&config)?;
            let fusion = daemon::load_fusion(&config, &recordings)?;
            let m = &fusion.stage().manifest;
            let names: Vec<String> = fusion
                .slots()
                .iter()
                .map(|slot| {
                    let others: Vec<String> =
                        slot.variants()[1..].iter().map(|v| v.manifest.variant.to_string()).collect();
                    let a = &slot.active().manifest;
                    match others.is_empty() {
                        true => format!("`{}` {}", a.name, a.variant),
                        false => format!("`{}` {} (also {})", a.name, a.variant, others.join(", ")),
                    }
                })
                .collect();
            println!(
                "{}: OK — hub `{}`, {} sensor(s), subjects {}, {} {} (last stage: {} features{}, classes {})",
                path.display(),
                config.hub.id,
                config.sensors.len(),
                config.subjects().join(", "),
                if names.len() == 1 { "model" } else { "cascade" },
                names.join(" → "),
                m.inputs.features.len(),
                m.inputs.raw.as_ref().map_or(String::new(), |r| format!(" + raw {}×{}", r.channels.len(), r.length)),
                m.outputs.classes.join("/"),
            );
            Ok(())
        }
        Command::Replay { input, config, run } => {
            let mut options = run_options(&run)?;
            options.speed = options.speed.or(Some(Speed::Max));
            let config = replay_config(&input, config.as_deref())?;
            execute(config, options)
        }
        Command::Beats { wfdb, channel } => beats(&wfdb, channel),
        Command::Events { kind, input, channel } => events(kind, &input, channel.as_deref()),
        Command::Hrv { peaks, rate, no_correction } => hrv(&peaks, rate, no_correction),
        Command::Eval { input, labels, config, exclude_task, json } => {
            eval(&input, &labels, config.as_deref(), &exclude_task, json)
        }
        Command::Features { config, input, output, list, speed, raw_spec, raw_output } => {
            if list {
                for name in FEATURE_NAMES {
                    println!("{name}");
                }
                return Ok(());
            }
            let config = match (input.format, input.input) {
                (Some(format), Some(path)) => replay_config(
                    &InputArgs { format, input: path, rate: input.rate, subject: input.subject },
                    config.as_deref(),
                )?,
                _ => Config::load(config.as_deref().expect("clap requires --config or --input"))?,
            };
            let raw_dump = match (raw_spec, raw_output) {
                (Some(spec), Some(out)) => Some((load_raw_spec(&spec)?, out)),
                _ => None,
            };
            let options =
                RunOptions { speed: speed.or(Some(Speed::Max)), output, duration: None, features_only: true, raw_dump };
            execute(config, options)
        }
    }
}

/// A raw-window spec file: a `[raw]` table shaped like a manifest's `[inputs.raw]`.
fn load_raw_spec(path: &Path) -> anyhow::Result<biofeedd::fusion::raw::RawSpec> {
    #[derive(serde::Deserialize)]
    struct File {
        raw: biofeedd::fusion::raw::RawSpec,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: File = toml::from_str(&text).with_context(|| format!("{}: not a raw spec", path.display()))?;
    if let Some(problem) = file.raw.problem() {
        anyhow::bail!("{}: {problem}", path.display());
    }
    Ok(file.raw)
}

fn eval(input: &Path, labels: &Path, base: Option<&Path>, exclude: &[String], json: bool) -> anyhow::Result<()> {
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
        let recordings = daemon::load_recordings(&config)?;
        let mut fusion = daemon::load_fusion(&config, &recordings)?;
        let mut extractor =
            features::FeatureExtractor::with_hop(config.window.hop_s).with_baseline(config.features.baseline_s);
        eval::score_subject(
            &mut report,
            &recordings[0],
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
        println!("{out}");
        return Ok(());
    }
    println!("{} labelled windows; cascade exits per stage: {:?}", report.labelled, report.exits);
    println!("{:<20} {:>8} {:>9} {:>7} {:>7}", "model", "windows", "bal.acc", "F1", "AUROC");
    for (name, m) in &pooled {
        println!("{name:<20} {:>8} {:>9.4} {:>7.4} {:>7.4}", m.windows, m.balanced_accuracy, m.f1, m.auroc);
    }
    // Per subject: balanced accuracy of each model (blank where a subject has one class only).
    println!("\nbalanced accuracy per subject");
    print!("{:<10}", "subject");
    for name in report.models.keys() {
        print!(" {name:>16}");
    }
    println!();
    for subject in labels.keys().filter(|s| report.models.values().any(|m| m.by_subject.contains_key(*s))) {
        print!("{subject:<10}");
        for scores in report.models.values() {
            match scores.by_subject.get(subject).map(|p| Metrics::of(p).balanced_accuracy) {
                Some(ba) if ba.is_finite() => print!(" {ba:>16.3}"),
                _ => print!(" {:>16}", ""),
            }
        }
        println!();
    }
    Ok(())
}

fn beats(record: &Path, channel: usize) -> anyhow::Result<()> {
    let rec = wfdb::load(record)?;
    let n = rec.channels.len();
    let ch = rec.channels.get(channel).with_context(|| {
        format!("{}: has {n} signals; --channel takes 0..{}", record.display(), n.saturating_sub(1))
    })?;
    print_lines(features::beats::detect_ecg(&ch.segments[0].samples, ch.spec.rate_hz));
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

fn events(kind: EventKind, input: &InputArgs, channel: Option<&str>) -> anyhow::Result<()> {
    use biofeedd::config::SourceConfig;
    let config = replay_config(input, None)?;
    let SourceConfig::Replay(source) = &config.sensors[0].source;
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

fn hrv(peaks: &Path, rate: f64, no_correction: bool) -> anyhow::Result<()> {
    use std::io::Read;
    anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number of Hz");
    let mut text = String::new();
    if peaks == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("reading peaks from stdin")?;
    } else {
        text = std::fs::read_to_string(peaks).with_context(|| format!("{}: cannot read", peaks.display()))?;
    }
    let mut indices = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: usize = line
            .trim()
            .parse()
            .with_context(|| format!("{}:{}: `{}` is not a sample index", peaks.display(), i + 1, line.trim()))?;
        anyhow::ensure!(
            indices.last().is_none_or(|&p| v > p),
            "{}:{}: peaks must be strictly increasing",
            peaks.display(),
            i + 1
        );
        indices.push(v);
    }
    let options = features::hrv::HrvOptions { correct: !no_correction };
    let result = features::hrv::from_peaks(&indices, rate, options, &mut Default::default());
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn run_options(run: &RunArgs) -> anyhow::Result<RunOptions> {
    anyhow::ensure!(
        run.output != OutputFormat::Csv,
        "--output csv is for feature rows (`biofeedd features`); feedback is text, jsonl or quiet"
    );
    Ok(RunOptions {
        speed: run.speed,
        output: run.output,
        duration: run.duration.filter(|d| d.is_finite() && *d > 0.0).map(Duration::from_secs_f64),
        features_only: false,
        raw_dump: None,
    })
}

fn execute(config: Config, options: RunOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let format = options.output;
    let summary = runtime.block_on(daemon::run(config, options))?;
    // Machine-readable stdout stays clean: the summary goes to stderr there.
    if format == OutputFormat::Text {
        print!("{summary}");
    } else {
        eprint!("{summary}");
    }
    Ok(())
}

/// The default pipeline over one recording: a one-sensor config, or `base`'s settings with it.
fn replay_config(input: &InputArgs, base: Option<&Path>) -> anyhow::Result<Config> {
    let subject = match &input.subject {
        Some(s) => s.clone(),
        None => subject_from_path(&input.input),
    };
    // The input path is relative to where the user typed it, not to a base config's folder.
    let path = std::env::current_dir().context("current directory")?.join(&input.input);
    let mut source = match input.format {
        ReplayFormat::E4 | ReplayFormat::Wfdb => ReplayConfig::e4(path),
        ReplayFormat::Csv => {
            let rate = input.rate.context("a csv replay needs --rate HZ (the sampling rate of every column)")?;
            let header = csv::read_header(&input.input)?;
            let channels = csv::auto_channels(&header);
            if channels.is_empty() {
                anyhow::bail!(
                    "{}: no column name says what it holds (expected names like ECG, PPG/BVP, EDA/GSR, RSP/RESP, ACC_X, TEMP); columns: {}\n  help: write a config with [[sensor]] channels for this file",
                    input.input.display(),
                    header.join(", ")
                );
            }
            ReplayConfig { rate_hz: Some(rate), channels, ..ReplayConfig::e4(path) }
        }
    };
    source.format = input.format;
    source.start_time = StartTime::Zero;
    let sensor = SensorConfig { id: format!("{}-replay", subject), subject, source: SourceConfig::Replay(source) };
    let mut config = match base {
        Some(path) => Config::load_settings(path)?,
        None => Config {
            hub: HubConfig { id: "replay".into() },
            window: WindowConfig::default(),
            features: Default::default(),
            sensors: Vec::new(),
            fusion: Default::default(),
            mqtt: None,
            base_dir: PathBuf::from("."),
        },
    };
    config.sensors = vec![sensor];
    Ok(config)
}

fn subject_from_path(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("subject");
    let cleaned: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if cleaned.is_empty() {
        "subject".into()
    } else {
        cleaned
    }
}
