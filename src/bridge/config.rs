//! `[mqtt]`: the broker, how to reach it securely, and the outbox in front of it.

use super::tls::{self, TlsConfig};
use crate::bounds;
use crate::diagnostic::Invalid;
use crate::key_path;
use rumqttc::Transport;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[mqtt]`: the broker feedback is published to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (plain TCP) or `mqtts://host:port` (TLS; port 8883 by default).
    pub url: String,
    /// Client id; default `biofeedd-{hub}`. Stable across restarts: the broker keeps the session.
    pub client_id: Option<String>,
    /// When true, a broker that cannot be reached at start-up is skipped with a warning and
    /// feedback goes to stdout only (the demo's setting). When false, the daemon keeps retrying.
    #[serde(default)]
    pub optional: bool,
    /// Seconds to wait for the broker's CONNACK at start-up.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_s: f64,
    /// MQTT keep-alive in seconds; the broker publishes our LWT after 1.5× this without traffic.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Plain `mqtt://` to a host that is not this machine sends health data in the clear; it is
    /// refused unless this says so.
    #[serde(default)]
    pub allow_insecure: bool,
    pub username: Option<String>,
    /// A file holding the password (first line; mode 0600 is wise). Never logged.
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password. Never logged.
    pub password_env: Option<String>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Where unacknowledged messages wait; default `$STATE_DIRECTORY/outbox`, else
    /// `$XDG_STATE_HOME/biofeedd/outbox`, else `~/.local/state/biofeedd/outbox`. Each client id
    /// has its own folder inside.
    pub outbox_dir: Option<PathBuf>,
    /// The outbox's bound on disk.
    #[serde(default = "default_outbox_max_mb")]
    pub outbox_max_mb: f64,
    /// Seconds a feedback message stays worth delivering (also its MQTT 5 message expiry);
    /// older ones are dropped and counted, never sent late. 0: never expires.
    #[serde(default = "default_feedback_ttl")]
    pub feedback_ttl_s: f64,
    /// Seconds between `metrics` reports.
    #[serde(default = "default_metrics_interval")]
    pub metrics_interval_s: f64,
    /// `"5"` (default) or `"3.1.1"`.
    #[serde(default)]
    pub protocol: Protocol,
}

fn default_connect_timeout() -> f64 {
    3.0
}
fn default_keep_alive() -> u64 {
    15
}
fn default_outbox_max_mb() -> f64 {
    64.0
}
fn default_feedback_ttl() -> f64 {
    120.0
}
fn default_metrics_interval() -> f64 {
    10.0
}

/// The MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// MQTT 5 (default): message expiry, PUBACK reason codes, session expiry.
    #[default]
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1, for brokers without 5: no expiry on the wire (the outbox still enforces the
    /// TTL before sending), no refusal reasons (a refused publish looks acknowledged).
    #[serde(rename = "3.1.1")]
    V311,
}

/// What [`MqttConfig::settings`] checked and resolved.
#[derive(Clone)]
pub struct Settings {
    pub protocol: Protocol,
    pub client_id: String,
    pub broker: Broker,
    pub keep_alive: Duration,
    /// (username, password); never logged.
    pub credentials: Option<(String, String)>,
    pub transport: Transport,
    pub network: rumqttc::NetworkOptions,
}

/// Where the broker is, parsed from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Broker {
    pub fn parse(url: &str) -> Result<Broker, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let tls = match parsed.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(format!("`{url}`: scheme `{other}` is neither mqtt:// nor mqtts://")),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "`{}`: credentials do not belong in the URL (it is logged); use username and password_file or password_env",
                redact(&parsed)
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(format!("`{url}` has no host")),
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        let port = parsed.port().unwrap_or(if tls { 8883 } else { 1883 });
        Ok(Broker { host, port, tls })
    }

    /// This machine: plaintext here never crosses a network.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
    }
}

fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

impl MqttConfig {
    pub fn loopback(port: u16) -> Self {
        let text = format!("url = \"mqtt://127.0.0.1:{port}\"");
        toml::from_str(&text).expect("a loopback [mqtt] parses")
    }

    pub fn broker(&self) -> Result<Broker, String> {
        Broker::parse(&self.url)
    }

    /// The client id this config connects with.
    pub fn client_id(&self, hub: &str) -> String {
        self.client_id.clone().unwrap_or_else(|| format!("biofeedd-{hub}"))
    }

    /// The outbox folder of this client.
    pub fn outbox_dir(&self, hub: &str, base_dir: &Path) -> Result<PathBuf, String> {
        let root = match &self.outbox_dir {
            Some(d) => base_dir.join(d),
            None => default_state_dir()?.join("outbox"),
        };
        Ok(root.join(self.client_id(hub)))
    }

    pub fn outbox_max_bytes(&self) -> u64 {
        (self.outbox_max_mb * 1024.0 * 1024.0) as u64
    }

    pub fn feedback_ttl(&self) -> Option<Duration> {
        (self.feedback_ttl_s > 0.0).then(|| Duration::from_secs_f64(self.feedback_ttl_s))
    }

    /// The password, from its file or variable. The error names where, never the value.
    pub fn password(&self, base_dir: &Path) -> Result<Option<String>, String> {
        match (&self.password_file, &self.password_env) {
            (Some(_), Some(_)) => Err("password_file and password_env are both set; keep one".into()),
            (Some(file), None) => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("password_file {}: cannot read it: {e}", path.display()))?;
                let line = text.lines().next().unwrap_or("").to_string();
                if line.is_empty() {
                    return Err(format!("password_file {}: its first line is empty", path.display()));
                }
                Ok(Some(line))
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(p) if !p.is_empty() => Ok(Some(p)),
                Ok(_) => Err(format!("password_env: the environment variable {var} is empty")),
                Err(_) => Err(format!("password_env: the environment variable {var} is not set")),
            },
            (None, None) => Ok(None),
        }
    }

    /// Everything needed to connect, checked: where, as whom, over what. The client builds
    /// rumqttc's options of its protocol version from this.
    pub fn settings(&self, hub: &str, base_dir: &Path) -> Result<Settings, String> {
        let broker = self.broker()?;
        if !broker.tls && !broker.is_loopback() && !self.allow_insecure {
            return Err(format!(
                "`{}` is plaintext MQTT to another host: health data would cross the network unencrypted; use mqtts:// or set allow_insecure = true",
                self.url
            ));
        }
        let credentials = match (self.password(base_dir)?, &self.username) {
            (Some(_), None) => return Err("a password is configured but no username".into()),
            (password, Some(user)) => Some((user.clone(), password.unwrap_or_default())),
            (None, None) => None,
        };
        let transport = if broker.tls {
            tls::transport(&self.tls, base_dir)?
        } else if self.tls.is_set() {
            return Err(format!("[mqtt.tls] is set but `{}` is not an mqtts:// URL", self.url));
        } else {
            Transport::Tcp
        };
        // Without this, Nagle holds each QoS 1 publish for ~40 ms (ARCHITECTURE-GUIDE §9).
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(self.connect_timeout_s.ceil() as u64);
        Ok(Settings {
            protocol: self.protocol,
            client_id: self.client_id(hub),
            broker,
            keep_alive: Duration::from_secs(self.keep_alive_s),
            credentials,
            transport,
            network,
        })
    }

    pub(crate) fn validate(&self, base_dir: &Path) -> Result<(), Invalid> {
        // Numbers first: building rumqttc's options panics on a keep-alive below 5 s.
        Invalid::bounded(key_path!["connect_timeout_s"], bounds::CONNECT_TIMEOUT_S, self.connect_timeout_s)?;
        Invalid::bounded(key_path!["keep_alive_s"], bounds::KEEP_ALIVE_S, self.keep_alive_s as f64)?;
        if let Some(id) = &self.client_id {
            check_client_id(id).map_err(|e| Invalid::new(key_path!["client_id"], e))?;
        }
        self.settings("check", base_dir).map_err(|e| {
            let key = if e.starts_with("password") { key_path!["password_file"] } else { key_path!["url"] };
            Invalid::new(key, e).help("e.g. url = \"mqtts://broker.local:8883\"; see docs/mqtt.md")
        })?;
        Invalid::bounded(key_path!["outbox_max_mb"], bounds::OUTBOX_MB, self.outbox_max_mb)?;
        Invalid::bounded(key_path!["feedback_ttl_s"], bounds::FEEDBACK_TTL_S, self.feedback_ttl_s)?;
        Invalid::bounded(key_path!["metrics_interval_s"], bounds::METRICS_INTERVAL_S, self.metrics_interval_s)?;
        self.outbox_dir("check", base_dir).map_err(|e| Invalid::new(key_path!["outbox_dir"], e))?;
        Ok(())
    }
}

/// A client id names the broker's session and the outbox's folder: 1 to 128 letters, digits,
/// `-`, `_` and `.`, and not a path of its own (`.`, `..`).
fn check_client_id(id: &str) -> Result<(), String> {
    let ok_chars = id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if id.is_empty() || id.len() > 128 || !ok_chars || id == "." || id == ".." {
        return Err(format!("`{id}` is not a usable client id: use 1 to 128 letters, digits, `-`, `_` and `.`"));
    }
    Ok(())
}

/// `$STATE_DIRECTORY` (systemd's StateDirectory=), else `$XDG_STATE_HOME/biofeedd`, else
/// `~/.local/state/biofeedd`.
fn default_state_dir() -> Result<PathBuf, String> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("STATE_DIRECTORY") {
        // systemd lists several directories separated by ':' when several are configured.
        let first = d.to_string_lossy().split(':').next().unwrap_or_default().to_string();
        return Ok(PathBuf::from(first));
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return Ok(d.join("biofeedd"));
    }
    match var("HOME") {
        Some(h) => Ok(h.join(".local/state/biofeedd")),
        None => Err("no outbox_dir, and none of STATE_DIRECTORY, XDG_STATE_HOME or HOME is set".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> MqttConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn urls() {
        let b = |u: &str| Broker::parse(u);
        assert_eq!(b("mqtt://127.0.0.1:1884").unwrap(), Broker { host: "127.0.0.1".into(), port: 1884, tls: false });
        assert_eq!(b("mqtt://broker.local").unwrap().port, 1883);
        assert_eq!(b("mqtts://broker.local").unwrap(), Broker { host: "broker.local".into(), port: 8883, tls: true });
        assert_eq!(b("mqtt://[::1]:1883").unwrap().host, "::1");
        assert!(b("http://x").unwrap_err().contains("scheme"));
        assert!(b("mqtt://x:99999").is_err());
        assert!(b("mqtt://").is_err());
        let e = b("mqtt://user:secret@broker.local:1884").unwrap_err();
        assert!(e.contains("credentials") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn plaintext_leaves_this_machine_only_when_allowed() {
        let base = Path::new(".");
        assert!(config("url = \"mqtt://localhost\"").settings("h", base).is_ok());
        let e = config("url = \"mqtt://10.0.0.5\"").settings("h", base).err().unwrap();
        assert!(e.contains("allow_insecure"), "{e}");
        assert!(config("url = \"mqtt://10.0.0.5\"\nallow_insecure = true").settings("h", base).is_ok());
    }

    #[test]
    fn the_password_comes_from_its_file_or_variable_and_errors_never_show_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let c = config("url = \"mqtt://localhost\"\nusername = \"hub\"\npassword_file = \"pw\"");
        let login = c.settings("h", dir.path()).ok().unwrap().credentials.unwrap();
        assert_eq!((login.0.as_str(), login.1.as_str()), ("hub", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));

        let c = config("url = \"mqtt://localhost\"\nusername = \"hub\"\npassword_env = \"BIOFEEDD_TEST_NO_SUCH_VAR\"");
        assert!(c.settings("h", dir.path()).err().unwrap().contains("BIOFEEDD_TEST_NO_SUCH_VAR is not set"));
        let c = config("url = \"mqtt://localhost\"\nusername = \"hub\"\npassword_file = \"missing\"");
        assert!(c.settings("h", dir.path()).err().unwrap().contains("missing"));
    }

    #[test]
    fn the_outbox_is_per_client_under_the_state_directory() {
        let c = config("url = \"mqtt://localhost\"\noutbox_dir = \"state\"");
        assert_eq!(
            c.outbox_dir("hub1", Path::new("/etc/biofeedd")).unwrap(),
            Path::new("/etc/biofeedd/state/biofeedd-hub1")
        );
        assert_eq!(c.feedback_ttl(), Some(Duration::from_secs(120)));
        assert_eq!(config("url = \"mqtt://localhost\"\nfeedback_ttl_s = 0").feedback_ttl(), None);
    }

    #[test]
    fn client_ids_that_would_name_another_folder_or_nothing_are_refused() {
        for bad in ["", "..", "a/b", "hub 1", &"x".repeat(129)] {
            assert!(check_client_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_client_id("biofeedd-ward3.bed_2").is_ok());
        assert_eq!(config("url = \"mqtt://localhost\"\nprotocol = \"3.1.1\"").protocol, Protocol::V311);
    }
}
