//! What a SIGHUP may change in a running daemon, and what needs a restart.
//!
//! Only settings the running tasks can take over between two samples are reloaded: the log
//! filter (`[log]`) and the governor's thresholds (`[governor]` `constrained`, `critical`,
//! `release_margin_percent`, `rise_samples`, `dwell_s`). Everything else is wired into rings,
//! threads, connections or loaded models at start; a change there is named so that the operator
//! knows to restart. The two files are compared as TOML values, table by table, so a change
//! of layout or comments alone changes nothing.

use super::Config;
use crate::governor::GovernorConfig;

/// The governor keys a reload applies; the rest of `[governor]` needs a restart.
const GOVERNOR_RELOADABLE: [&str; 5] = ["constrained", "critical", "release_margin_percent", "rise_samples", "dwell_s"];

/// What to apply from a reloaded config, and what it changed that only a restart applies.
#[derive(Debug, Default, PartialEq)]
pub struct Reload {
    /// The new `[log] level`, when it changed.
    pub log_level: Option<String>,
    /// The new `[governor]`, when a reloadable key of it changed.
    pub governor: Option<GovernorConfig>,
    /// Tables and keys that changed but need a restart, as `[mqtt]` or `[governor] interval_s`.
    pub needs_restart: Vec<String>,
}

impl Reload {
    /// Compare the running config's text with the new file's. Both have been validated
    /// (`new` is the new text parsed), so both parse as TOML.
    pub fn between(old_text: &str, new_text: &str, new: &Config) -> Reload {
        let table = |text: &str| text.parse::<toml::Table>().unwrap_or_default();
        let (old, new_table) = (table(old_text), table(new_text));
        let mut reload = Reload::default();
        let mut keys: Vec<&String> = old.keys().chain(new_table.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (before, after) = (old.get(key), new_table.get(key));
            if before == after {
                continue;
            }
            match key.as_str() {
                "log" => reload.log_level = Some(new.log.level.clone()),
                "governor" => {
                    let sub = |v: Option<&toml::Value>| v.and_then(toml::Value::as_table).cloned().unwrap_or_default();
                    let (before, after) = (sub(before), sub(after));
                    let mut inner: Vec<&String> = before.keys().chain(after.keys()).collect();
                    inner.sort();
                    inner.dedup();
                    for k in inner.into_iter().filter(|k| before.get(*k) != after.get(*k)) {
                        if GOVERNOR_RELOADABLE.contains(&k.as_str()) {
                            reload.governor = Some(new.governor.clone());
                        } else {
                            reload.needs_restart.push(format!("[governor] {k}"));
                        }
                    }
                }
                "sensor" => reload.needs_restart.push("[[sensor]]".into()),
                other => reload.needs_restart.push(format!("[{other}]")),
            }
        }
        reload
    }

    pub fn is_empty(&self) -> bool {
        *self == Reload::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[hub]
id = "hub-1"
[[sensor]]
id = "wrist"
subject = "s1"
source = { kind = "replay", format = "e4", path = "x" }
"#;

    fn reload(old: &str, new: &str) -> Reload {
        let config = Config::parse(new, Path::new("new.toml"), Path::new(".")).expect("valid");
        Reload::between(old, new, &config)
    }

    #[test]
    fn layout_and_comments_change_nothing() {
        let moved = format!("# a comment\n{}\n", BASE.replace("id = \"hub-1\"", "id   =   \"hub-1\"  # same"));
        assert!(reload(BASE, &moved).is_empty());
    }

    #[test]
    fn log_level_and_thresholds_reload_the_rest_needs_a_restart() {
        let new = format!(
            "{BASE}\n[log]\nlevel = \"debug\"\n[governor]\ninterval_s = 2\ndwell_s = 30\n[governor.critical]\ntemp_c = 80\n[window]\nhop_s = 2\n"
        );
        let r = reload(BASE, &new);
        assert_eq!(r.log_level.as_deref(), Some("debug"));
        let governor = r.governor.expect("thresholds reload");
        assert_eq!(governor.dwell_s, 30.0);
        assert_eq!(r.needs_restart, vec!["[governor] interval_s".to_string(), "[window]".to_string()]);
    }

    #[test]
    fn a_changed_sensor_needs_a_restart() {
        let r = reload(BASE, &BASE.replace("subject = \"s1\"", "subject = \"s2\""));
        assert_eq!(r.needs_restart, vec!["[[sensor]]".to_string()]);
        assert!(r.log_level.is_none() && r.governor.is_none());
    }
}
