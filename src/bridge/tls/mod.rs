//! `[mqtt.tls]`: rustls settings for `mqtts://` — the CA to trust, a client certificate for
//! mutual TLS, and the name the broker's certificate must carry when it differs from the host
//! in the URL (a broker reached by IP address, say). The settings parse in every build, so a
//! config is checked the same everywhere; connecting over TLS needs the `tls` feature
//! (`client.rs`), and a build without it refuses `mqtts://` at config time, saying so.

#[cfg(feature = "tls")]
mod client;

#[cfg(feature = "tls")]
pub use client::client_config;
use rumqttc::Transport;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust; default: the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// The name to verify the broker's certificate against, instead of the URL's host.
    pub server_name: Option<String>,
}

impl TlsConfig {
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some() || self.server_name.is_some()
    }
}

/// rumqttc's transport for an `mqtts://` broker.
#[cfg(feature = "tls")]
pub fn transport(tls: &TlsConfig, base_dir: &Path) -> Result<Transport, String> {
    Ok(Transport::tls_with_config(client_config(tls, base_dir)?.into()))
}

/// Without the `tls` feature there is no TLS to offer.
#[cfg(not(feature = "tls"))]
pub fn transport(_tls: &TlsConfig, _base_dir: &Path) -> Result<Transport, String> {
    Err("mqtts:// needs TLS, and this biofeedd was built without it: rebuild with `--features tls` (on by default)"
        .into())
}
