//! Commands that run the pipeline: options from flags, the replay of one recording without a
//! config, and the runtime that runs it.

use super::reload::{self, ReloadFrom};
use super::{logging, InputArgs, RunArgs};
use anyhow::Context;
use biofeedd::config::{Config, HubConfig, SensorConfig};
use biofeedd::daemon::{self, RunOptions};
use biofeedd::ingest::replay::{csv, ReplayConfig, ReplayFormat, Speed, StartTime};
use biofeedd::ingest::SourceConfig;
use biofeedd::service::{self, Notifier};
use biofeedd::sink::OutputFormat;
use biofeedd::window::WindowConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

pub fn run_options(run: &RunArgs) -> anyhow::Result<RunOptions> {
    anyhow::ensure!(
        run.output != OutputFormat::Csv,
        "--output csv is for feature rows (`biofeedd features`); feedback is text, jsonl or quiet"
    );
    Ok(RunOptions {
        output: run.output,
        duration: run.duration.map(Duration::from_secs_f64),
        features_only: false,
        raw_dump: None,
        pressure: run.pressure,
    })
}

/// `--speed` is the replay sources' own setting, given on the command line.
// Built without `serial` and `ble`, a replay is the only kind of source there is.
#[allow(irrefutable_let_patterns)]
pub fn set_speed(config: &mut Config, speed: Option<Speed>) {
    let Some(speed) = speed else { return };
    for sensor in &mut config.sensors {
        if let SourceConfig::Replay(replay) = &mut sensor.source {
            replay.speed = speed;
        }
    }
}

/// Run the daemon to its end under a service manager when there is one: READY once it is up,
/// the watchdog fed from the pipeline thread's progress, SIGHUP reloading `reload_from`.
pub fn execute(config: Config, options: RunOptions, reload_from: Option<ReloadFrom>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let format = options.output;
    logging::set_level(&config.log.level);
    let summary = runtime.block_on(async {
        // Before anything slow (models load in `start`): a SIGHUP meanwhile must not kill us. Only
        // with a file to reload; otherwise SIGHUP keeps its meaning (a closed terminal ends a replay).
        let hangup = match &reload_from {
            Some(_) => Some(signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?),
            None => None,
        };
        let notifier = Arc::new(Notifier::from_env().context("NOTIFY_SOCKET")?);
        let daemon = daemon::start(config, options).await?;
        tokio::spawn(service::supervise(notifier.clone(), daemon.liveness(), "pipeline thread"));
        if let (Some(hangup), Some(from)) = (hangup, reload_from) {
            tokio::spawn(reload::serve(hangup, from, notifier, daemon.liveness(), daemon.retuner()));
        }
        daemon.wait().await
    })?;
    // Machine-readable stdout stays clean: the summary goes to stderr there; so it does when
    // stdout stopped taking lines (a stalled reader would block the summary too).
    if format == OutputFormat::Text && summary.counters.stdout_lines_dropped == 0 {
        super::out::print_summary(&summary.to_string())?;
    } else {
        eprint!("{summary}");
    }
    // What was read before a source failed was delivered; the run still did not do its job.
    if !summary.failed_sources.is_empty() {
        anyhow::bail!("{} source(s) failed; see `failed:` above", summary.failed_sources.len());
    }
    if let Some(d) = summary.delivery.as_ref().filter(|d| d.broker_required && !d.broker_reached) {
        anyhow::bail!(
            "the MQTT broker ([mqtt] url) was never reached; {} messages wait in the outbox at {}",
            d.waiting,
            d.outbox_dir.display()
        );
    }
    Ok(())
}

/// The default pipeline over one recording: a one-sensor config, or `base`'s settings with it.
pub fn replay_config(input: &InputArgs, base: Option<&Path>) -> anyhow::Result<Config> {
    let subject = match &input.subject {
        Some(s) => s.clone(),
        None => subject_from_path(&input.input),
    };
    anyhow::ensure!(
        biofeedd::config::is_topic_level(&subject),
        "--subject `{subject}`: use 1 to 64 letters, digits, `-` and `_` (it becomes an MQTT topic level and a CSV field)"
    );
    // The input path is relative to where the user typed it, not to a base config's folder.
    let path = std::env::current_dir().context("current directory")?.join(&input.input);
    let mut source = match input.format {
        ReplayFormat::E4 | ReplayFormat::Wfdb | ReplayFormat::Pmd | ReplayFormat::Hrs => ReplayConfig::e4(path),
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
            governor: Default::default(),
            policy: Default::default(),
            tiers: None,
            offload: None,
            beats: Default::default(),
            log: Default::default(),
            base_dir: PathBuf::from("."),
        },
    };
    config.sensors = vec![sensor];
    Ok(config)
}

fn subject_from_path(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("subject");
    let cleaned: String =
        stem.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if cleaned.is_empty() {
        "subject".into()
    } else {
        cleaned
    }
}
