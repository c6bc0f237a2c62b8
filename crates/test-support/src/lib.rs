//! The fixtures the workspace's integration tests and benchmarks share, written once: a
//! temporary directory with the demo PKI ([`TestDir`]), fresh unseal shares written as files, a
//! tenants file, the services' loopback server configuration, an HTTPS client that trusts the
//! demo CA and resolves a service's name to where it listens, and (features `kms`, `identity`)
//! the KMS or Identity started in-process from such a directory ([`kms`], [`identity`]); and
//! an ES256 signer with its JWKS for fixture issuers ([`jwt`]);
//! for the throughput benchmarks, their bounded load and table of results ([`bench`]); a PostgreSQL server with a fresh database per test ([`postgres`]); and the
//! check that an outside oracle is here, skipping loudly or failing under CI ([`oracle`]).
//!
//! What it must not do: be anything but a dev-dependency (it panics on setup failure — a test
//! cannot go on without its fixture — and `publish = false`), decide what a test asserts, or
//! hide a setting a test depends on: what differs between tests (realms, seeds, limits, the
//! throttle) stays in the test, which edits the configuration it is handed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use service_kit::server::HttpConfig;

pub mod bench;
#[cfg(feature = "identity")]
pub mod identity;
pub mod jwt;
#[cfg(feature = "kms")]
pub mod kms;
pub mod oracle;
pub mod postgres;

/// A temporary directory, removed when dropped, with the demo PKI (`pki::PkiSpec::demo()`) in
/// `pki/`.
#[derive(Debug)]
pub struct TestDir {
    dir: tempfile::TempDir,
    pki: pki::PkiDir,
}

impl TestDir {
    /// A fresh directory with a freshly generated demo PKI.
    pub fn with_demo_pki() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let pki = pki::ensure(&dir.path().join("pki"), &pki::PkiSpec::demo(), &Default::default())
            .unwrap_or_else(|e| panic!("cannot generate the demo PKI: {e}"));
        Self { dir, pki: pki.dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The demo PKI in it.
    pub fn pki(&self) -> &pki::PkiDir {
        &self.pki
    }

    /// Writes `name` (relative to the directory) and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Three of five fresh unseal shares (`barrier::new_shares(3, 5)`), as the services read
    /// them: files `share_0`, `share_1`, `share_2`. Each call makes a new barrier.
    pub fn share_files(&self) -> Vec<PathBuf> {
        let shares = barrier::new_shares(3, 5).unwrap_or_else(|e| panic!("cannot split an unseal key: {e}"));
        shares
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, share)| self.write(&format!("share_{i}"), share.encode().expose_secret()))
            .collect()
    }

    /// `tenants.yml`: one `name: id` line per tenant, as the demo's state directory holds it.
    pub fn tenants_file(&self, tenants: &[(&str, &str)]) -> PathBuf {
        let text: String = tenants.iter().map(|(name, id)| format!("{name}: {id}\n")).collect();
        self.write("tenants.yml", text)
    }

    /// A server configuration for the leaf `service` of the demo PKI on 127.0.0.1, any ports.
    pub fn loopback(&self, service: &str) -> HttpConfig {
        HttpConfig::loopback(&self.pki, service)
    }

    /// An HTTPS client for `host` at `addr`; see [`https_client`].
    pub fn client(&self, host: &str, addr: SocketAddr) -> reqwest::ClientBuilder {
        https_client(&self.pki, host, addr)
    }
}

/// An HTTPS client (TLS 1.3, trusting the demo CA of `pki` only) that resolves `host` to
/// `addr` and follows no redirects (a test sees each one). Add what a test needs (a local
/// address, a timeout) before `build()`.
pub fn https_client(pki: &pki::PkiDir, host: &str, addr: SocketAddr) -> reqwest::ClientBuilder {
    let tls = pki::client_config_for(pki, None)
        .unwrap_or_else(|e| panic!("cannot trust the demo CA in {}: {e}", pki.root().display()));
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve(host, addr)
        .redirect(reqwest::redirect::Policy::none())
}

/// A service started in-process, with a client that trusts the demo CA and resolves the
/// service's name to its API listener.
#[derive(Debug)]
pub struct Running<S> {
    /// The running service (its server, addresses, shutdown).
    pub service: S,
    /// The HTTPS client for its API.
    pub client: reqwest::Client,
}

// Used by the service fixtures only (features `kms`, `identity`).
#[cfg(any(feature = "kms", feature = "identity"))]
fn build(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder.build().unwrap_or_else(|e| panic!("cannot build the HTTPS client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_tenants_are_written_where_the_services_read_them() {
        let dir = TestDir::with_demo_pki();
        assert!(dir.pki().ca_bundle().is_file());
        let files = dir.share_files();
        assert_eq!(files, (0..3).map(|i| dir.path().join(format!("share_{i}"))).collect::<Vec<_>>());
        let shares: Vec<barrier::Share> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default().trim().parse::<barrier::Share>())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(barrier::combine(&shares).is_ok(), "three shares open the barrier");
        let tenants = dir.tenants_file(&[("acme", "a-id"), ("globex", "g-id")]);
        assert_eq!(std::fs::read_to_string(tenants).unwrap_or_default(), "acme: a-id\nglobex: g-id\n");
    }
}
