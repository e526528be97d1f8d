//! The rustls client configuration for `mqtts://` (feature `tls`): the CA to trust (a file, or
//! the system's store), a client certificate for mutual TLS, and a verifier that checks the
//! broker's certificate against `server_name` instead of the URL's host.

use super::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The rustls client configuration for `tls`; file errors name the file and the key.
pub fn client_config(tls: &TlsConfig, base_dir: &Path) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(file) => {
            let path = base_dir.join(file);
            for cert in read_certs(&path, "ca_file")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca_file {}: a certificate rustls refuses: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("mqtts:// without tls.ca_file, and the system trust store has no certificates".into());
            }
        }
    }
    let roots = Arc::new(roots);
    let builder = ClientConfig::builder().with_root_certificates(roots.clone());
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let cert_path = base_dir.join(cert);
            let key_path = base_dir.join(key);
            let chain = read_certs(&cert_path, "cert_file")?;
            let key = PrivateKeyDer::from_pem_file(&key_path)
                .map_err(|e| format!("tls.key_file {}: no private key read: {e}", key_path.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.cert_file / tls.key_file: they do not make a client identity: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls.cert_file and tls.key_file go together (mutual TLS needs both)".into()),
    };
    if let Some(name) = &tls.server_name {
        let name = ServerName::try_from(name.clone())
            .map_err(|e| format!("tls.server_name `{name}` is not a DNS name or IP address: {e}"))?;
        let inner = WebPkiServerVerifier::builder(roots).build().map_err(|e| format!("tls: {e}"))?;
        config.dangerous().set_certificate_verifier(Arc::new(NamedVerifier { inner, name }));
    }
    Ok(config)
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("tls.{key} {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The standard WebPKI verification, against the configured name rather than the URL's host.
/// Nothing is skipped: chain, validity and signatures are checked as usual.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _url_host: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
