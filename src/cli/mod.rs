//! The `biofeedd` command line: clap types and one file per command group, each a thin shell over
//! the library. `daemon.rs` runs the pipeline (`run`, `replay`, `features`), `check.rs` reports on
//! a config, `eval.rs` scores models, `research.rs` exposes the detectors (`beats`, `events`, `hrv`).

mod check;
mod daemon;
mod eval;
mod features;
pub mod logging;
mod out;
mod reload;
mod research;
#[cfg(feature = "ble")]
mod scan;
#[cfg(feature = "serial")]
mod sim;
#[cfg(feature = "worker")]
mod worker;

use biofeedd::bounds;
use biofeedd::config::Config;
use biofeedd::governor::Level;
use biofeedd::ingest::replay::{ReplayFormat, Speed};
use biofeedd::sink::OutputFormat;
use clap::{Args, Parser, Subcommand};
use reload::ReloadFrom;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "biofeedd",
    version,
    about = "Edge biofeedback daemon: wearable streams in, features and predictions out"
)]
pub struct Cli {
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
    /// Serve offload requests: run the heavy stage for hubs under pressure (MQTT 5 shared
    /// subscription `$share/{group}/biofeedd/v1/+/offload/req`; see docs/scaling.md).
    #[cfg(feature = "worker")]
    Worker {
        /// The config naming the broker ([mqtt]), the models ([fusion]) and the group ([offload]).
        #[arg(long)]
        config: PathBuf,
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
        /// Print `R,CONFIRMED` per beat: the R peak's sample and how many samples the streaming
        /// detector had been fed, one at a time, when it reported the beat (its confirmation delay).
        #[arg(long)]
        confirmation: bool,
    },
    /// Print the events a detector finds in one channel of a recording, as CSV on stdout: R-peaks
    /// (ecg), pulses with their foot and amplitude (ppg), skin conductance responses (scr) or
    /// breaths (resp). The same detectors the feature stage runs, for validation scripts.
    Events {
        /// ecg, ppg, scr or resp.
        #[arg(long)]
        kind: research::EventKind,
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
        #[arg(long, value_parser = sample_rate)]
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
    /// List nearby Bluetooth LE devices with their signal strength and what biofeedd can stream
    /// from each (the address or name a `kind = "ble"` source takes).
    #[cfg(feature = "ble")]
    Scan {
        /// How long to listen for advertisements.
        #[arg(long, default_value_t = 5.0, value_parser = scan_seconds)]
        seconds: f64,
        /// The Bluetooth adapter, e.g. hci1; default the first.
        #[arg(long)]
        adapter: Option<String>,
    },
    /// Simulate a device from a recording, for trying live ingest without hardware.
    #[cfg(feature = "serial")]
    #[command(subcommand)]
    Sim(SimDevice),
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

#[cfg(feature = "serial")]
#[derive(Subcommand)]
enum SimDevice {
    /// Play a recording as a serial device on a pseudo-terminal; prints its path.
    Serial(sim::SerialSimArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Replay speed: 1 = real time, N = N times faster, max = as fast as possible.
    #[arg(long)]
    pub speed: Option<Speed>,
    /// text (one line per window), jsonl (the feedback payload per line) or quiet (MQTT only).
    #[arg(long, default_value = "text")]
    pub output: OutputFormat,
    /// Stop after this many seconds.
    #[arg(long, value_parser = run_duration)]
    pub duration: Option<f64>,
    /// Pin the governor's pressure level (normal, constrained or critical) whatever the
    /// machine's readings say: for demos and tests of the [policy].
    #[arg(long)]
    pub pressure: Option<Level>,
    /// Also write every heartbeat to stdout as it is confirmed (`[beats] stdout = true`).
    #[arg(long)]
    pub beats: bool,
}

#[derive(Args)]
pub struct InputArgs {
    /// Recording format: e4 (Empatica export folder), wfdb (PATH/RECORD), csv, or a BLE capture: pmd (Polar PMD streams, also h10_ecg `.bin` files) or hrs (Heart Rate service).
    #[arg(long)]
    pub format: ReplayFormat,
    /// The export folder (e4) or file (csv).
    #[arg(long)]
    pub input: PathBuf,
    /// csv only: sampling rate in Hz of every column.
    #[arg(long, value_parser = sample_rate)]
    pub rate: Option<f64>,
    /// Subject id; default: derived from the input's name.
    #[arg(long)]
    pub subject: Option<String>,
}

#[derive(Args)]
pub struct OptionalInputArgs {
    #[arg(long, requires = "input")]
    pub format: Option<ReplayFormat>,
    #[arg(long, requires = "format")]
    pub input: Option<PathBuf>,
    #[arg(long, value_parser = sample_rate)]
    pub rate: Option<f64>,
    #[arg(long)]
    pub subject: Option<String>,
}

/// `--rate`: checked as every sampling rate is (see `bounds`).
fn sample_rate(text: &str) -> Result<f64, String> {
    bounds::SAMPLE_RATE_HZ.parse(text)
}

/// `scan --seconds`.
#[cfg(feature = "ble")]
fn scan_seconds(text: &str) -> Result<f64, String> {
    bounds::SILENCE_S.parse(text)
}

/// `--duration`.
fn run_duration(text: &str) -> Result<f64, String> {
    bounds::RUN_DURATION_S.parse(text)
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config: path, run } => {
            let (mut config, text) = Config::load_with_text(&path, true)?;
            daemon::set_speed(&mut config, run.speed);
            config.beats.stdout |= run.beats;
            let reload = ReloadFrom { path, text, require_sensors: true, unit: "biofeedd" };
            daemon::execute(config, daemon::run_options(&run)?, Some(reload))
        }
        Command::Check { config } => check::check(&config),
        #[cfg(feature = "worker")]
        Command::Worker { config } => worker::worker(&config),
        Command::Replay { input, config, run } => {
            let options = daemon::run_options(&run)?;
            let mut config = daemon::replay_config(&input, config.as_deref())?;
            daemon::set_speed(&mut config, Some(run.speed.unwrap_or(Speed::Max)));
            config.beats.stdout |= run.beats;
            // The sensor comes from the command line; a reload would not know it.
            daemon::execute(config, options, None)
        }
        Command::Beats { wfdb, channel, confirmation } => research::beats(&wfdb, channel, confirmation),
        Command::Events { kind, input, channel } => research::events(kind, &input, channel.as_deref()),
        Command::Hrv { peaks, rate, no_correction } => research::hrv(&peaks, rate, no_correction),
        Command::Eval { input, labels, config, exclude_task, json } => {
            eval::eval(&input, &labels, config.as_deref(), &exclude_task, json)
        }
        #[cfg(feature = "serial")]
        Command::Sim(SimDevice::Serial(args)) => sim::serial(args),
        #[cfg(feature = "ble")]
        Command::Scan { seconds, adapter } => scan::scan(adapter.as_deref(), seconds),
        Command::Features { config, input, output, list, speed, raw_spec, raw_output } => {
            features::features(config.as_deref(), input, output, list, speed, raw_spec.zip(raw_output))
        }
    }
}
