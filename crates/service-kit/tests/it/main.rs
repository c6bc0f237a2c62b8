//! Integration tests of `service-kit`: a real HTTPS server on loopback with certificates from
//! `pki`, driven by reqwest. One test binary.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::net::SocketAddr;
use std::time::Duration;

use service_kit::server::{HttpConfig, Limits};

/// A demo PKI and a server config using the `kms` leaf on free loopback ports.
pub fn fixture() -> (tempfile::TempDir, pki::PkiDir, HttpConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let done = pki::ensure(&tmp.path().join("pki"), &pki::PkiSpec::demo(), &Default::default()).unwrap();
    let config = HttpConfig {
        limits: Limits {
            body_bytes: 1024,
            request_timeout: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(5),
            ..Limits::default()
        },
        ..HttpConfig::loopback(&done.dir, "kms")
    };
    (tmp, done.dir, config)
}

/// A reqwest client trusting the PKI's CA, resolving `kms.demo.local` to `addr`'s IP.
pub fn client(dir: &pki::PkiDir, identity: Option<&str>, addr: SocketAddr) -> reqwest::Client {
    let tls = pki::client_config_for(dir, identity).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve("kms.demo.local", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://kms.demo.local:{}{path}", addr.port())
}
