//! TLS to the broker: a test CA (rcgen), a TLS front that requires a client certificate signed by
//! it (rustls, as a TLS-terminating broker listener would) in front of a real rumqttd, and the
//! daemon reaching it over `mqtts://` with mutual TLS — and failing to, clearly, with the wrong
//! CA or without its certificate. `.ci/run` repeats the secure path against Mosquitto's own TLS
//! listener with a password file and an ACL.

#![cfg(feature = "tls")]

mod common;

use biofeedd::bridge::tls::TlsConfig;
use biofeedd::config::Config;
use biofeedd::daemon::{self, RunOptions};
use biofeedd::ingest::replay::Speed;
use biofeedd::ingest::SourceConfig;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// A CA and what it signed, written as PEM files into a folder.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

fn ca() -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap(), key)
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (authority, ca_key) = ca();
    let (other_ca, _) = ca();
    let ca = authority;
    let server_key = KeyPair::generate().unwrap();
    let server =
        CertificateParams::new(vec!["broker.test".into()]).unwrap().signed_by(&server_key, &ca, &ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["hub".into()]).unwrap().signed_by(&client_key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    write("ca.pem", ca.pem());
    write("other-ca.pem", other_ca.pem());
    write("client.pem", client.pem());
    write("client.key", client_key.serialize_pem());
    let server_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    Pki { ca: ca.der().clone(), server: (server.der().clone(), server_key), dir }
}

/// A TLS listener requiring a client certificate from `pki`'s CA, forwarding to the broker.
/// Returns its port and a count of refused handshakes.
async fn tls_front(pki: &Pki, broker: u16) -> (u16, Arc<AtomicUsize>) {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
    let config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(AtomicUsize::new(0));
    let count = refused.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        let mut upstream = tokio::net::TcpStream::connect(("127.0.0.1", broker)).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                    }
                    Err(_) => {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (port, refused)
}

fn demo(hub: &str, port: u16, tls: TlsConfig) -> Config {
    let text = std::fs::read_to_string(common::repo_path("config/demo.toml")).unwrap();
    let mut config = Config::parse(&text, Path::new("demo.toml"), &common::repo_path("config")).unwrap();
    config.hub.id = hub.into();
    let mut mqtt = common::loopback_mqtt(port);
    // The certificate names broker.test; the URL has the address. server_name bridges them.
    mqtt.url = format!("mqtts://127.0.0.1:{port}");
    mqtt.tls = tls;
    mqtt.connect_timeout_s = 2.0;
    config.mqtt = Some(mqtt);
    let SourceConfig::Replay(replay) = &mut config.sensors[0].source else { panic!("the demo replays") };
    replay.speed = Speed::Max;
    config
}

fn tls(pki: &Pki, ca: &str, client: bool) -> TlsConfig {
    TlsConfig {
        ca_file: Some(pki.dir.path().join(ca)),
        cert_file: client.then(|| pki.dir.path().join("client.pem")),
        key_file: client.then(|| pki.dir.path().join("client.key")),
        server_name: Some("broker.test".into()),
    }
}

fn quiet() -> RunOptions {
    common::quiet_run()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_delivers_every_message() {
    let broker = common::start_broker();
    let pki = pki();
    let (port, refused) = tls_front(&pki, broker).await;
    let hub = format!("tls-{}", std::process::id());
    let mut rx = common::subscribe(broker, &format!("biofeedd/v1/{hub}/+/feedback")).await;
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        daemon::run(demo(&hub, port, tls(&pki, "ca.pem", true)), quiet()),
    )
    .await
    .expect("the run ends")
    .expect("the run succeeds");
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    assert_eq!(summary.counters.acked, 19, "every feedback message acknowledged over TLS");
    for seq in 0..19 {
        let (_, payload) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        assert_eq!(payload["seq"], seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_with_the_wrong_ca_or_name_the_broker_is_never_reached() {
    let broker = common::start_broker();
    let pki = pki();
    let (port, refused) = tls_front(&pki, broker).await;
    let wrong_name = TlsConfig { server_name: Some("other.test".into()), ..tls(&pki, "ca.pem", true) };
    let cases = [
        ("no client certificate", tls(&pki, "ca.pem", false)),
        ("another CA", tls(&pki, "other-ca.pem", true)),
        ("a name the certificate does not carry", wrong_name),
    ];
    for (case, tls) in cases {
        let hub = format!("tls-bad-{}-{}", case.len(), std::process::id());
        let before = refused.load(Ordering::SeqCst);
        let summary = tokio::time::timeout(Duration::from_secs(60), daemon::run(demo(&hub, port, tls), quiet()))
            .await
            .expect("the run ends")
            .expect("the pipeline itself runs");
        let delivery = summary.delivery.expect("a broker was configured");
        assert!(!delivery.broker_reached, "{case}: reached the broker");
        assert!(delivery.waiting >= 19, "{case}: every feedback message kept in the outbox");
        assert!(refused.load(Ordering::SeqCst) > before, "{case}: the TLS front saw the failed handshake");
    }
}
