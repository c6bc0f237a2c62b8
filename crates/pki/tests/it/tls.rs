//! The rustls builders: a real handshake in-process, mTLS, and refusal of bad material.

use std::sync::Arc;

use pki::{ClientAuth, ClientTlsFiles, GeneratedPki, PkiError, PkiSpec, ServerTlsFiles};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::demo_pki;

/// Accepts TLS connections on 127.0.0.1 and answers each with "hello\n".
pub async fn serve(config: rustls::ServerConfig) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"hello\n").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

async fn hello(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
    name: &str,
) -> std::io::Result<String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector.connect(ServerName::try_from(name.to_owned()).unwrap(), tcp).await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn handshake_over_tls13_for_every_san() {
    let (_tmp, out) = demo_pki();
    let addr = serve(pki::server_config_for(&out.dir, "kms", ClientAuth::None).unwrap()).await;
    for name in ["kms.demo.local", "kms", "localhost", "127.0.0.1", "::1"] {
        let client = pki::client_config_for(&out.dir, None).unwrap();
        assert_eq!(hello(addr, client, name).await.unwrap(), "hello\n", "{name}");
    }
}

#[tokio::test]
async fn a_name_not_in_the_certificate_is_refused() {
    let (_tmp, out) = demo_pki();
    let addr = serve(pki::server_config_for(&out.dir, "kms", ClientAuth::None).unwrap()).await;
    let err = hello(addr, pki::client_config_for(&out.dir, None).unwrap(), "identity.demo.local")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let (_tmp_a, a) = demo_pki();
    let (_tmp_b, b) = demo_pki();
    let addr = serve(pki::server_config_for(&a.dir, "kms", ClientAuth::None).unwrap()).await;
    let err = hello(addr, pki::client_config_for(&b.dir, None).unwrap(), "kms.demo.local").await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn mtls_required_accepts_our_client_and_refuses_anonymous_ones() {
    let (_tmp, out) = demo_pki();
    let server = pki::server_config_for(&out.dir, "kms", ClientAuth::Required(out.dir.ca_bundle())).unwrap();
    let addr = serve(server).await;
    let with_cert = pki::client_config_for(&out.dir, Some("demo-cli")).unwrap();
    assert_eq!(hello(addr, with_cert, "kms.demo.local").await.unwrap(), "hello\n");
    // TLS 1.3 finishes the client's side of the handshake before the server checks the client
    // certificate, so the refusal shows up on the first read.
    let anonymous = pki::client_config_for(&out.dir, None).unwrap();
    assert!(hello(addr, anonymous, "kms.demo.local").await.is_err());
}

#[tokio::test]
async fn mtls_refuses_a_client_certificate_from_another_ca() {
    let (_tmp_a, a) = demo_pki();
    let (_tmp_b, b) = demo_pki();
    let addr =
        serve(pki::server_config_for(&a.dir, "kms", ClientAuth::Required(a.dir.ca_bundle())).unwrap()).await;
    let leaf = b.dir.leaf("demo-cli");
    let client = ClientTlsFiles {
        ca_bundle: Some(a.dir.ca_bundle()),
        system_roots: false,
        identity: Some((leaf.fullchain, leaf.key)),
    }
    .build()
    .unwrap();
    assert!(hello(addr, client, "kms.demo.local").await.is_err());
}

#[test]
fn server_config_checks_the_chain_against_the_bundle() {
    let (_tmp_a, a) = demo_pki();
    let (_tmp_b, b) = demo_pki();
    let leaf = a.dir.leaf("kms");
    let err = ServerTlsFiles {
        cert_chain: leaf.fullchain,
        key: leaf.key,
        ca_bundle: Some(b.dir.ca_bundle()),
        client_auth: ClientAuth::None,
    }
    .build()
    .unwrap_err();
    assert!(matches!(err, PkiError::ChainBroken { .. }), "{err}");
    assert!(err.to_string().contains("another CA"), "{err}");
}

#[test]
fn a_client_leaf_cannot_serve() {
    let (_tmp, out) = demo_pki();
    let err = pki::server_config_for(&out.dir, "demo-cli", ClientAuth::None).unwrap_err();
    assert!(matches!(err, PkiError::ChainBroken { .. }), "{err}");
    assert!(err.to_string().contains("extended key usage"), "{err}");
}

#[test]
fn expired_certificates_are_refused_with_their_date() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = PkiSpec::demo();
    spec.validity.leaf_days = 1;
    let two_years_ago = time::OffsetDateTime::now_utc() - time::Duration::days(730);
    let pki = GeneratedPki::generate_at(&spec, two_years_ago).unwrap();
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    std::fs::write(&cert, &pki.leaves[0].cert_pem).unwrap();
    std::fs::write(&key, secrecy::ExposeSecret::expose_secret(&pki.leaves[0].key_pem)).unwrap();
    let err = ServerTlsFiles { cert_chain: cert, key, ca_bundle: None, client_auth: ClientAuth::None }
        .build()
        .unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("kms.demo.local"), "{err}");
}

#[test]
fn a_client_with_nothing_to_trust_is_refused() {
    let err = ClientTlsFiles::default().build().unwrap_err();
    assert!(err.to_string().contains("CA bundle"), "{err}");
}

#[test]
fn a_corrupt_bundle_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("ca.pem");
    std::fs::write(&bundle, "garbage").unwrap();
    let err = ClientTlsFiles::trusting(&bundle).build().unwrap_err();
    assert!(matches!(err, PkiError::NotPem { .. }), "{err}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
}
