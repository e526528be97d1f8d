//! Pick the reader a replay config names: [`open`] streams the recording, [`load`] reads it
//! whole, [`probe_channels`] reads only what tells its channels.

use super::capture::{self, CaptureStream, Profile};
use super::config::{ReplayConfig, ReplayFormat, StartTime};
use super::csv::{self, CsvOptions};
use super::csv_table;
use super::recording::{ReadError, Recording};
use super::stream::RecordingStream;
use super::{e4, wfdb};
use crate::signal::ChannelSpec;
use std::path::Path;

/// Open the recording a replay source names as a stream: the text formats are read row by row
/// as the player asks; a WFDB record is read whole (binary frames; see `wfdb.rs`). `now_unix`
/// stands in for `start_time = "now"`.
pub fn open(config: &ReplayConfig, path: &Path, now_unix: f64) -> Result<RecordingStream, ReadError> {
    match config.format {
        ReplayFormat::Csv => {
            let rows = csv::open(csv_table::open(path)?, path, &csv_options(config, now_unix))?;
            RecordingStream::new(vec![Box::new(rows)], Vec::new())
        }
        ReplayFormat::E4 => e4::open(path, config.on_bad_row),
        ReplayFormat::Wfdb => Ok(RecordingStream::in_memory(wfdb::load(path)?)),
        ReplayFormat::Pmd => RecordingStream::new(vec![Box::new(CaptureStream::open(path, Profile::Pmd)?)], Vec::new()),
        ReplayFormat::Hrs => RecordingStream::new(vec![Box::new(CaptureStream::open(path, Profile::Hrs)?)], Vec::new()),
    }
}

/// Read the whole recording a replay source names (`eval` and `features` work on whole ones).
pub fn load(config: &ReplayConfig, path: &Path, now_unix: f64) -> Result<Recording, ReadError> {
    open(config, path, now_unix)?.into_recording()
}

/// The channel specs [`load`] would give (same names, order, modality, unit and rate), reading
/// only headers: a CSV's header row (and, without `rate_hz`, the rows that estimate the rate
/// from the time column), each E4 file's two header lines, a WFDB record's `.hea`.
pub fn probe_channels(config: &ReplayConfig, path: &Path) -> Result<Vec<ChannelSpec>, ReadError> {
    match config.format {
        ReplayFormat::Csv => csv::probe(csv_table::open(path)?, path, &csv_options(config, 0.0)),
        ReplayFormat::E4 => e4::probe(path),
        ReplayFormat::Wfdb => wfdb::probe(path),
        ReplayFormat::Pmd => capture::probe(path, Profile::Pmd),
        ReplayFormat::Hrs => capture::probe(path, Profile::Hrs),
    }
}

fn csv_options(config: &ReplayConfig, now_unix: f64) -> CsvOptions<'_> {
    CsvOptions {
        channels: &config.channels,
        rate_hz: config.rate_hz,
        time_column: config.time_column.as_deref(),
        start_time: match config.start_time {
            StartTime::Zero => 0.0,
            StartTime::Unix(t) => t,
            StartTime::Now => now_unix,
        },
        on_bad_row: config.on_bad_row,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::replay::config::CsvChannel;
    use crate::signal::Modality;
    use std::path::PathBuf;

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn assert_probe_matches_load(config: &ReplayConfig) {
        let loaded = load(config, &config.path, 0.0).unwrap();
        let specs: Vec<ChannelSpec> = loaded.channels.iter().map(|c| c.spec.clone()).collect();
        assert!(!specs.is_empty());
        assert_eq!(probe_channels(config, &config.path).unwrap(), specs, "{}", config.path.display());
    }

    fn column(column: &str, modality: Modality) -> CsvChannel {
        CsvChannel { column: column.into(), name: None, modality, unit: "u".into(), scale: 1.0 }
    }

    #[test]
    fn probe_gives_the_specs_load_gives_on_the_fixtures() {
        assert_probe_matches_load(&ReplayConfig::e4(repo("tests/data/e4-S05-excerpt")));
        let wfdb =
            ReplayConfig { format: ReplayFormat::Wfdb, ..ReplayConfig::e4(repo("tests/data/mitdb-100-5min/100")) };
        assert_probe_matches_load(&wfdb);
        let demo = repo("data/demo/bio_eventrelated_100hz.csv");
        let channels = csv::auto_channels(&csv::read_header(&demo).unwrap());
        assert!(channels.len() >= 3);
        let csv = ReplayConfig { format: ReplayFormat::Csv, rate_hz: Some(100.0), channels, ..ReplayConfig::e4(demo) };
        assert_probe_matches_load(&csv);
    }

    #[test]
    fn probe_estimates_the_rate_from_the_time_column_as_load_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timed.csv");
        // 2000 rows at 25 Hz with jitter and a gap; only the first 1001 rows decide the rate.
        let mut text = String::from("time;PPG;note\n");
        for i in 0..2000 {
            let t = i as f64 * 0.04 + if i % 7 == 0 { 0.003 } else { 0.0 } + if i > 1500 { 10.0 } else { 0.0 };
            text.push_str(&format!("{t:.4};{};x\n", (i as f64 * 0.1).sin()));
        }
        std::fs::write(&path, text).unwrap();
        let config = ReplayConfig {
            format: ReplayFormat::Csv,
            time_column: Some("time".into()),
            channels: vec![column("PPG", Modality::Ppg), column("note", Modality::Other)],
            ..ReplayConfig::e4(path.clone())
        };
        // `note` is no number: both refuse at the same place.
        let (l, p) = (load(&config, &path, 0.0).unwrap_err(), probe_channels(&config, &path).unwrap_err());
        assert_eq!(l.to_string(), p.to_string());
        let config = ReplayConfig { channels: vec![column("PPG", Modality::Ppg)], ..config };
        assert_probe_matches_load(&config);
        assert!((probe_channels(&config, &path).unwrap()[0].rate_hz - 25.0).abs() < 1e-6);
    }
}
