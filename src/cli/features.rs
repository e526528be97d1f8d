//! `biofeedd features`: the per-window feature vectors of a replay, as models are trained on them.

use super::daemon::{execute, replay_config, set_speed};
use super::{InputArgs, OptionalInputArgs};
use biofeedd::config::Config;
use biofeedd::daemon::RunOptions;
use biofeedd::features::FEATURE_NAMES;
use biofeedd::ingest::replay::Speed;
use biofeedd::sink::OutputFormat;
use std::path::{Path, PathBuf};

pub fn features(
    config: Option<&Path>,
    input: OptionalInputArgs,
    output: OutputFormat,
    list: bool,
    speed: Option<Speed>,
    raw: Option<(PathBuf, PathBuf)>,
) -> anyhow::Result<()> {
    if list {
        return super::out::print(&FEATURE_NAMES.map(|n| format!("{n}\n")).concat());
    }
    let mut config = match (input.format, input.input) {
        (Some(format), Some(path)) => {
            replay_config(&InputArgs { format, input: path, rate: input.rate, subject: input.subject }, config)?
        }
        _ => Config::load(config.expect("clap requires --config or --input"))?,
    };
    let raw_dump = match raw {
        Some((spec, out)) => Some((Config::load_raw_spec(&spec)?, out)),
        None => None,
    };
    set_speed(&mut config, Some(speed.unwrap_or(Speed::Max)));
    let options = RunOptions { output, duration: None, features_only: true, raw_dump, pressure: None };
    execute(config, options, None)
}
