//! The daemon's TOML configuration: parsed and validated once, then passed on as typed values.
//!
//! Each component owns its config struct (the replay source owns [`ReplayConfig`], the window
//! stage owns [`WindowConfig`], ...); this module only assembles them into [`Config`], reports
//! errors with file, line and column, and checks the cross-component rules (unique ids, a model
//! whose inputs the configured channels can feed).
//!
//! Architecture invariant: nothing outside this module parses TOML or reads config files.

mod locate;
mod log;
pub mod reload;

use crate::bridge::config::Protocol;
use crate::bridge::offload::OffloadConfig;
use crate::bridge::MqttConfig;
use crate::features::baseline::FeaturesConfig;
use crate::fusion::raw::RawSpec;
use crate::fusion::FusionConfig;
use crate::governor::{GovernorConfig, PolicyConfig, TiersConfig};
use crate::ingest::SourceConfig;
use crate::window::WindowConfig;
pub use log::{parse_filter, LogConfig};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::diagnostic::{Invalid, Location, PathPart};
use crate::key_path;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub hub: HubConfig,
    #[serde(default)]
    pub window: WindowConfig,
    #[serde(default)]
    pub features: FeaturesConfig,
    /// One entry per physical (or replayed) sensor.
    #[serde(rename = "sensor", default)]
    pub sensors: Vec<SensorConfig>,
    #[serde(default)]
    pub fusion: FusionConfig,
    /// Optional: without it the daemon writes feedback to stdout only.
    pub mqtt: Option<MqttConfig>,
    /// How the resource governor samples the machine and when it calls it pressed.
    #[serde(default)]
    pub governor: GovernorConfig,
    /// What each pressure level changes.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Subjects' latency tiers; absent: everyone standard, and the local cascade keeps
    /// `[fusion] deadline_ms`.
    pub tiers: Option<TiersConfig>,
    /// Heavy windows to `biofeedd worker` processes under pressure (needs `[mqtt]`, MQTT 5).
    pub offload: Option<OffloadConfig>,
    /// Where the per-beat stream goes (`…/{subject}/beat`, stdout).
    #[serde(default)]
    pub beats: crate::biofeedback::BeatsConfig,
    /// How much the daemon logs (reloaded on SIGHUP).
    #[serde(default)]
    pub log: LogConfig,
    /// Directory that relative paths in this file are resolved against (the file's own folder).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[hub]`: identity of this hub on the MQTT topic tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Hub id, the `{hub}` level of `biofeedd/v1/{hub}/...`. Letters, digits, `-` and `_`.
    pub id: String,
}

/// `[[sensor]]`: one source of samples, worn by one subject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Sensor id, unique in the file; used in logs and `sensor/{id}/state`.
    pub id: String,
    /// Subject wearing it; windows and feedback are per subject, so sensors sharing a subject are fused.
    pub subject: String,
    /// The transport and its settings.
    pub source: SourceConfig,
}

/// A configuration error with the place it was found and, where we know it, the fix.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub location: Option<Location>,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{}:{}:{}: {}", self.file.display(), loc.line, loc.column, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Config::load_with(file, true)
    }

    /// Like [`Config::load`] but without `[[sensor]]` tables required: for `replay --config`,
    /// where the sensor comes from the command line and the file supplies everything else.
    pub fn load_settings(file: &Path) -> Result<Config, ConfigError> {
        Config::load_with(file, false)
    }

    fn load_with(file: &Path, require_sensors: bool) -> Result<Config, ConfigError> {
        Config::load_with_text(file, require_sensors).map(|(config, _)| config)
    }

    /// [`Config::load`] (or, without `require_sensors`, [`Config::load_settings`]) that also
    /// returns the file's text: a reload compares it with the next ([`reload::Reload`]).
    pub fn load_with_text(file: &Path, require_sensors: bool) -> Result<(Config, String), ConfigError> {
        let text = read_small_text(file).map_err(|e| ConfigError {
            help: Some(match e.location {
                Some(_) => "save the file as UTF-8".into(),
                None if e.message.starts_with("cannot read") => {
                    "pass an existing file with --config, e.g. config/demo.toml".into()
                }
                None => "is this the right file?".into(),
            }),
            ..e
        })?;
        let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse_with(&text, file, &base_dir, require_sensors).map(|config| (config, text))
    }

    /// Parse and validate config text. `file` is only used in messages; relative paths resolve
    /// against `base_dir`.
    pub fn parse(text: &str, file: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        Config::parse_with(text, file, base_dir, true)
    }

    fn parse_with(text: &str, file: &Path, base_dir: &Path, require_sensors: bool) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            // Inside a `kind`-tagged table serde reports at the table; read it again as its kind's
            // own struct to point at the key itself.
            let (offset, message) = match e.span().and_then(|s| source_table_error(text, s.start)) {
                Some((offset, message)) => (Some(offset), message),
                None => (e.span().map(|s| unknown_key_offset(text, s.start, e.message())), e.message().to_string()),
            };
            ConfigError {
                file: file.to_path_buf(),
                location: offset.map(|o| Location::of_offset(text, o)),
                help: help_for_serde_message(&message),
                message: message.trim().to_string(),
            }
        })?;
        config.base_dir = base_dir.to_path_buf();
        if let Err(invalid) = config.validate(require_sensors) {
            return Err(ConfigError {
                file: file.to_path_buf(),
                location: locate::locate(text, &invalid.path),
                message: format!("{}: {}", invalid.rendered_path(), invalid.message),
                help: invalid.help,
            });
        }
        Ok(config)
    }

    /// Read a raw-window spec file (`biofeedd features --raw-spec`): a `[raw]` table shaped like
    /// a model manifest's `[inputs.raw]`.
    pub fn load_raw_spec(file: &Path) -> Result<RawSpec, ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SpecFile {
            raw: RawSpec,
        }
        let error = |location, message: String| ConfigError { file: file.to_path_buf(), location, message, help: None };
        let text = read_small_text(file)?;
        let spec: SpecFile = toml::from_str(&text).map_err(|e| {
            let location = e.span().map(|s| Location::of_offset(&text, s.start));
            error(location, format!("not a raw spec: {}", e.message().trim()))
        })?;
        match spec.raw.problem() {
            Some(problem) => Err(error(None, problem)),
            None => Ok(spec.raw),
        }
    }

    /// Resolve a path from the config against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Rules that cross components. Each component validates its own fields.
    fn validate(&self, require_sensors: bool) -> Result<(), Invalid> {
        if !is_topic_level(&self.hub.id) {
            return Err(Invalid::new(key_path!["hub", "id"], format!("`{}` is not a valid hub id", self.hub.id))
                .help("use letters, digits, `-` and `_` only; it becomes an MQTT topic level"));
        }
        self.window.validate().map_err(|e| e.under(key_path!["window"]))?;
        self.features.validate().map_err(|e| e.under(key_path!["features"]))?;
        let (baseline, window, hop) = (self.features.baseline_s, self.window.length_s, self.window.hop_s);
        // A z-score needs a spread: at least three windows must end inside the baseline.
        let least = window + 2.0 * hop;
        if baseline > 0.0 && baseline < least - 1e-9 {
            let what = if baseline < window {
                format!("is shorter than one {window} s window, so no window could calibrate it")
            } else {
                "holds fewer than the three windows a baseline needs (its spread)".to_string()
            };
            return Err(Invalid::new(key_path!["features", "baseline_s"], format!("{baseline} s of baseline {what}"))
                .help(format!(
                    "make it at least {least} s (one {window} s window and two {hop} s hops; several minutes are better), or 0 to turn the z_ features off"
                )));
        }
        if require_sensors && self.sensors.is_empty() {
            return Err(Invalid::new(key_path!["hub"], "no [[sensor]] is configured")
                .help("add a [[sensor]] table; see config/demo.toml for a replayed recording"));
        }
        for (i, sensor) in self.sensors.iter().enumerate() {
            if !is_topic_level(&sensor.id) {
                return Err(Invalid::new(
                    key_path!["sensor", i, "id"],
                    format!("`{}` is not a valid sensor id", sensor.id),
                )
                .help("use letters, digits, `-` and `_` only"));
            }
            if !is_topic_level(&sensor.subject) {
                return Err(Invalid::new(
                    key_path!["sensor", i, "subject"],
                    format!("`{}` is not a valid subject id", sensor.subject),
                )
                .help("use letters, digits, `-` and `_` only; it becomes an MQTT topic level"));
            }
            if let Some(j) = self.sensors[..i].iter().position(|s| s.id == sensor.id) {
                return Err(Invalid::new(
                    key_path!["sensor", i, "id"],
                    format!("sensor id `{}` is used twice", sensor.id),
                )
                .help(format!("sensor {j} already has this id; ids must be unique")));
            }
            sensor.source.validate().map_err(|e| e.under(key_path!["sensor", i, "source"]))?;
            if let Some(device) = sensor.source.device() {
                if let Some(j) = self.sensors[..i].iter().position(|s| s.source.device().as_ref() == Some(&device)) {
                    return Err(Invalid::new(
                        key_path!["sensor", i, "source"],
                        format!("reads the same {device} as sensor {j}"),
                    )
                    .help("one sensor per device: list every stream it gives in that one sensor"));
                }
            }
        }
        self.fusion.validate().map_err(|e| e.under(key_path!["fusion"]))?;
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate(&self.base_dir).map_err(|e| e.under(key_path!["mqtt"]))?;
        }
        self.governor.validate().map_err(|e| e.under(key_path!["governor"]))?;
        self.log.validate().map_err(|e| e.under(key_path!["log"]))?;
        self.policy.validate().map_err(|e| e.under(key_path!["policy"]))?;
        if let Some(tiers) = &self.tiers {
            tiers.validate(&self.subjects()).map_err(|e| e.under(key_path!["tiers"]))?;
        }
        if let Some(offload) = &self.offload {
            offload.validate().map_err(|e| e.under(key_path!["offload"]))?;
            match &self.mqtt {
                None => {
                    return Err(Invalid::new(
                        key_path!["offload"],
                        "offload needs a broker, and no [mqtt] is configured",
                    )
                    .help("add [mqtt] with url = \"mqtt://…\" and protocol = \"5\"; see docs/offload.md"))
                }
                Some(m) if m.protocol != Protocol::V5 => {
                    return Err(Invalid::new(
                        key_path!["mqtt", "protocol"],
                        "offload needs MQTT 5 (response topics and correlation data), and [mqtt] speaks 3.1.1",
                    )
                    .help("set protocol = \"5\" in [mqtt], or remove [offload]"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Subjects in the order they first appear.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = Vec::new();
        for s in &self.sensors {
            if !subjects.contains(&s.subject) {
                subjects.push(s.subject.clone());
            }
        }
        subjects
    }
}

/// Read a small TOML file (a config, a raw spec): at most 1 MiB, UTF-8, a bad byte located.
fn read_small_text(file: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    // Such a file is a few kilobytes; refuse anything that could not be one before reading it all.
    const MAX_BYTES: u64 = 1 << 20;
    let error = |location, message: String| ConfigError { file: file.to_path_buf(), location, message, help: None };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| error(None, format!("cannot read config file: {e}")))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(error(None, format!("more than {MAX_BYTES} bytes; a config file is a few kilobytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
        error(
            Some(Location::of_offset(&text, valid)),
            format!("not UTF-8 text: invalid byte 0x{:02x} at byte offset {valid}", e.as_bytes()[valid]),
        )
    })
}

/// True when `s` can stand as one MQTT topic level and a file name.
pub fn is_topic_level(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// When `offset` is the header of a `[sensor.source]` table, parse that table alone as the
/// struct of its `kind` (serde's tagged-enum path loses the keys' places) and return the offset
/// and message of its first error.
fn source_table_error(text: &str, offset: usize) -> Option<(usize, String)> {
    let line_start = text[..offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let header_end = line_start + text[line_start..].find('\n')?;
    if text[line_start..header_end].trim() != "[sensor.source]" {
        return None;
    }
    let body_start = header_end + 1;
    let body_len = text[body_start..]
        .split_inclusive('\n')
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::len)
        .sum::<usize>();
    let body = &text[body_start..body_start + body_len];
    // The tag is not a field of the kind's struct: blank it out, keeping every offset.
    let mut kind = None;
    let untagged: String = body
        .split_inclusive('\n')
        .map(|l| match l.trim_start().strip_prefix("kind") {
            Some(rest) if rest.trim_start().starts_with('=') => {
                kind = Some(rest.trim_start()[1..].trim().trim_matches('"').to_string());
                l.chars().map(|c| if c == '\n' { c } else { ' ' }).collect()
            }
            _ => l.to_string(),
        })
        .collect();
    let table = toml::de::Deserializer::parse(&untagged).ok()?;
    let error = SourceConfig::deserialize_kind(&kind?, table).err()?;
    let at = error.span().map_or(0, |s| s.start);
    let at = unknown_key_offset(&untagged, at, error.message());
    Some((body_start + at, error.message().to_string()))
}

/// serde reports an unknown key inside a tagged table (`[sensor.source]`) at the table, not the
/// key; point at the key itself, the first line after the table that assigns it.
fn unknown_key_offset(text: &str, table_offset: usize, message: &str) -> usize {
    let Some(key) = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) else {
        return table_offset;
    };
    let mut offset = table_offset;
    for line in text[table_offset.min(text.len())..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return offset + (line.len() - trimmed.len());
            }
        }
        offset += line.len();
    }
    table_offset
}

/// Turn serde's terse messages into a next step for the two mistakes people make most.
fn help_for_serde_message(msg: &str) -> Option<String> {
    if msg.contains("unknown field") {
        Some("remove the key or fix its spelling; the expected keys are listed above".into())
    } else if msg.contains("missing field") {
        Some("add the key to this table; see config/demo.toml for a complete example".into())
    } else if msg.contains("unknown variant") {
        Some("use one of the listed values".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"), Path::new("."))
    }

    const MINIMAL: &str = r#"
[hub]
id = "hub-1"

[[sensor]]
id = "chest"
subject = "s01"
[sensor.source]
kind = "replay"
format = "csv"
path = "rec.csv"
rate_hz = 100.0
channels = [{ column = "ECG", modality = "ecg", unit = "mV" }]
"#;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = parse(MINIMAL).expect("minimal config");
        assert_eq!(c.hub.id, "hub-1");
        assert_eq!(c.sensors.len(), 1);
        assert!(c.mqtt.is_none());
        assert_eq!(c.subjects(), vec!["s01".to_string()]);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = MINIMAL.replace("id = \"hub-1\"", "id = \"hub-1\"\nflavour = \"mint\"");
        let e = parse(&text).unwrap_err();
        let loc = e.location.expect("location");
        assert_eq!(loc.line, 4, "{e}");
        assert!(e.message.contains("unknown field `flavour`"), "{e}");
        assert!(e.to_string().starts_with("test.toml:4:1:"), "{e}");
        assert!(e.help.is_some());
    }

    #[test]
    fn semantic_error_points_at_the_key() {
        let text = MINIMAL.replace("rate_hz = 100.0", "rate_hz = -5.0");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("sensor[0].source.rate_hz"), "{e}");
        assert_eq!(e.location.expect("location").line, 12, "{e}");
    }

    #[test]
    fn a_bad_value_inside_the_source_table_points_at_its_key() {
        let e = parse(&MINIMAL.replace("rate_hz = 100.0", "rate_hz = \"fast\"")).unwrap_err();
        assert_eq!(e.location.expect("location"), Location { line: 12, column: 11 }, "{e}");
        assert!(e.message.contains("invalid type: string \"fast\""), "{e}");
        let e = parse(&MINIMAL.replace("rate_hz = 100.0", "rate_hz = 100.0\nspeeed = 2")).unwrap_err();
        assert_eq!(e.location.expect("location").line, 13, "{e}");
    }

    #[test]
    fn two_sensors_on_one_device_are_refused() {
        let one = "[[sensor]]\nid = \"a\"\nsubject = \"s\"\n[sensor.source]\nkind = \"ble\"\naddress = \"a0:9e:1a:00:00:01\"\nstreams = [\"ecg\"]\n";
        let two = one.replace("id = \"a\"", "id = \"b\"").replace("a0:9e", "A0:9E").replace("[\"ecg\"]", "[\"hr\"]");
        let e = parse(&format!("[hub]\nid = \"h\"\n{one}{two}")).unwrap_err();
        assert!(
            e.to_string().contains("sensor[1].source: reads the same BLE device A0:9E:1A:00:00:01 as sensor 0"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_sensor_ids_are_refused() {
        let second = &MINIMAL[MINIMAL.find("[[sensor]]").unwrap()..];
        let text = format!("{MINIMAL}\n{second}");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("used twice"), "{e}");
        assert_eq!(e.location.expect("location").line, 16, "{e}");
    }

    #[test]
    fn bad_hub_id_is_refused() {
        let e = parse(&MINIMAL.replace("hub-1", "hub/1")).unwrap_err();
        assert!(e.message.contains("hub.id"), "{e}");
        assert_eq!(e.location.unwrap().line, 3);
    }

    #[test]
    fn syntax_error_has_location() {
        let e = parse("[hub]\nid = \"x\"\nother\n").unwrap_err();
        assert_eq!(e.location.expect("location").line, 3, "{e}");
    }
}
