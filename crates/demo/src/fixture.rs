//! A fixture issuer: a second token issuer, in this process, with a PKI and a signing key of its
//! own — a partner organisation's identity provider in miniature. It serves an OpenID Connect
//! discovery document and a JWKS over HTTPS on loopback, and signs the access tokens a test (or
//! `demo all`) asks for, so that federation across issuers (the trust store, `crates/
//! trust-store`) is exercised with no network and no second service.
//!
//! Its host name is `partner.demo.local` (its certificate's name, from its own CA: trust
//! `ca_bundle()`, never the demo's CA). Everything is kept under the directory it is started in:
//! `pki/` (made once) and `signing-key.pk8` (PKCS#8, 0600, made once), so tokens stay valid
//! across restarts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), demo::fixture::FixtureError> {
//! let partner = demo::fixture::FixtureIssuer::start(std::path::Path::new("/tmp/partner")).await?;
//! let token = partner.token(serde_json::json!({
//!     "sub": "partner-user", "aud": "https://kms.demo.local:8081",
//!     "tenant_id": "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b", "scope": "kms:encrypt", "roles": ["user"],
//! }))?;
//! let entry = partner.trust_entry(&["https://kms.demo.local:8081"], &["7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b"]);
//! # let _ = (token, entry); partner.shutdown().await; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// The fixture issuer's host name.
pub const HOST: &str = "partner.demo.local";
/// Its key id.
const KID: &str = "partner-1";

/// The fixture issuer could not be made or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// Its PKI could not be made or reused.
    #[error("cannot make the fixture issuer's PKI")]
    Pki(#[source] pki::PkiError),
    /// Its signing key could not be made, written or read.
    #[error("the fixture issuer's signing key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Its HTTPS server did not start.
    #[error("the fixture issuer did not start")]
    Server(#[source] service_kit::server::ServerError),
    /// A token could not be signed.
    #[error("the fixture issuer cannot sign: {0}")]
    Sign(String),
}

/// The fixture issuer's signing side: its issuer URL and key, without a server. The Docker
/// runtime signs with it on the host while the issuer's documents are served from a container
/// (`demo serve partner`) reading the same directory.
pub struct FixtureSigner {
    issuer: String,
    pair: EcdsaKeyPair,
    ca_bundle: PathBuf,
}

impl std::fmt::Debug for FixtureSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureSigner").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// What [`prepare`] made or found in a fixture issuer's directory.
struct Material {
    pki: pki::PkiDir,
    pair: EcdsaKeyPair,
}

/// Makes the PKI and the signing key in `dir` on first use; reuses them after.
fn prepare(dir: &Path) -> Result<Material, FixtureError> {
    let key_err = |path: &Path, reason: String| FixtureError::Key { path: path.to_owned(), reason };
    std::fs::create_dir_all(dir).map_err(|e| key_err(dir, e.to_string()))?;
    let spec = pki::PkiSpec::for_services(pki::DEFAULT_DOMAIN, &["partner"], &[]);
    let pki = pki::ensure(&dir.join("pki"), &spec, &Default::default()).map_err(FixtureError::Pki)?.dir;
    let key_file = dir.join("signing-key.pk8");
    let pair = load_or_make_key(&key_file).map_err(|reason| key_err(&key_file, reason))?;
    Ok(Material { pki, pair })
}

/// Makes the fixture issuer's PKI and signing key in `dir` if missing (checking them if not).
pub fn ensure(dir: &Path) -> Result<(), FixtureError> {
    prepare(dir).map(drop)
}

/// The issuer URL of a fixture issuer whose API listens on `port`.
pub fn issuer_url(port: u16) -> String {
    format!("https://{HOST}:{port}")
}

impl FixtureSigner {
    /// The signer of the fixture issuer kept in `dir` and known as `issuer` (making its PKI and
    /// key there on first use, as [`FixtureIssuer::start`] does).
    pub fn open(dir: &Path, issuer: &str) -> Result<Self, FixtureError> {
        let m = prepare(dir)?;
        Ok(Self { issuer: issuer.to_owned(), pair: m.pair, ca_bundle: m.pki.ca_bundle() })
    }

    /// Its issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The CA bundle its certificate chains to (its own CA, not the demo's).
    pub fn ca_bundle(&self) -> &Path {
        &self.ca_bundle
    }

    /// An ES256 access token (`typ: at+jwt`) with `claims`; `iss`, `iat`, `nbf` and `exp`
    /// (five minutes) are added where `claims` lacks them.
    pub fn token(&self, mut claims: Value) -> Result<String, FixtureError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| FixtureError::Sign(e.to_string()))?
            .as_secs();
        let object =
            claims.as_object_mut().ok_or_else(|| FixtureError::Sign("claims must be an object".into()))?;
        for (name, value) in
            [("iss", json!(self.issuer)), ("iat", json!(now)), ("nbf", json!(now)), ("exp", json!(now + 300))]
        {
            object.entry(name).or_insert(value);
        }
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": KID});
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, input.as_bytes()).map_err(|e| FixtureError::Sign(e.to_string()))?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }
}

/// A running fixture issuer. See the module documentation.
pub struct FixtureIssuer {
    signer: FixtureSigner,
    server: service_kit::server::RunningServer,
}

impl std::fmt::Debug for FixtureIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureIssuer").field("issuer", &self.signer.issuer).finish_non_exhaustive()
    }
}

impl FixtureIssuer {
    /// Starts on 127.0.0.1 (a free port) from `dir`, making its PKI and key there on first use.
    pub async fn start(dir: &Path) -> Result<Self, FixtureError> {
        Self::serve(dir, SocketAddr::from(([127, 0, 0, 1], 0)), SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves from `dir` with its API on `listen` and its admin port (`/readyz`, `/livez`) on
    /// `admin_listen`: `demo serve partner` in a container. Its issuer is
    /// `https://partner.demo.local:<the API port>`.
    pub async fn serve(
        dir: &Path,
        listen: SocketAddr,
        admin_listen: SocketAddr,
    ) -> Result<Self, FixtureError> {
        let m = prepare(dir)?;
        let jwk = public_jwk(&m.pair);
        let mut config = service_kit::server::HttpConfig::loopback(&m.pki, "partner");
        config.listen = listen;
        config.admin_listen = admin_listen;
        // The issuer names its port, known only once bound: the documents read it when asked.
        let issuer_cell: std::sync::Arc<std::sync::OnceLock<String>> = std::sync::Arc::default();
        let (discovery_issuer, jwks_doc) = (issuer_cell.clone(), json!({ "keys": [jwk] }));
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let issuer = discovery_issuer.get().cloned().unwrap_or_default();
                    async move {
                        axum::Json(json!({
                            "issuer": issuer,
                            "jwks_uri": format!("{issuer}/jwks"),
                            "id_token_signing_alg_values_supported": ["ES256"],
                        }))
                    }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let doc = jwks_doc.clone();
                    async move { axum::Json(doc) }
                }),
            );
        let server = service_kit::server::start(&config, router, service_kit::Readiness::new())
            .await
            .map_err(FixtureError::Server)?;
        let issuer = issuer_url(server.addr.port());
        let _ = issuer_cell.set(issuer.clone());
        let signer = FixtureSigner { issuer, pair: m.pair, ca_bundle: m.pki.ca_bundle() };
        Ok(Self { signer, server })
    }

    /// Its issuer URL (`https://partner.demo.local:PORT`).
    pub fn issuer(&self) -> &str {
        self.signer.issuer()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Its signing side.
    pub fn signer(&self) -> &FixtureSigner {
        &self.signer
    }

    /// The CA bundle its certificate chains to (its own CA, not the demo's).
    pub fn ca_bundle(&self) -> &Path {
        self.signer.ca_bundle()
    }

    /// An ES256 access token: [`FixtureSigner::token`].
    pub fn token(&self, claims: Value) -> Result<String, FixtureError> {
        self.signer.token(claims)
    }

    /// Its entry for a trust store file (`issuers:` item, YAML): the issuer, the `audiences` its
    /// tokens may carry, the `tenants` it is authority for, its CA and where it listens.
    pub fn trust_entry(&self, audiences: &[&str], tenants: &[&str]) -> String {
        trust_entry(self.issuer(), audiences, tenants, self.ca_bundle(), Some(self.server.addr))
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        if let Err(e) = self.server.shutdown().await {
            tracing::warn!(error = %e, "the fixture issuer did not stop cleanly");
        }
    }

    /// Serves until SIGINT or SIGTERM, then stops.
    pub async fn run_until_signal(self) {
        service_kit::server::shutdown_signal().await;
        self.shutdown().await;
    }
}

/// A trust store entry (`issuers:` item, YAML) for a fixture issuer known as `issuer`, its
/// certificate chaining to `ca_file`; `resolve` maps its host name to an address where no DNS
/// name does (loopback).
pub fn trust_entry(
    issuer: &str,
    audiences: &[&str],
    tenants: &[&str],
    ca_file: &Path,
    resolve: Option<SocketAddr>,
) -> String {
    let mut entry = format!(
        "  - issuer: {issuer}\n    audiences: [{}]\n    tenants: [{}]\n    ca_file: {}\n",
        audiences.join(", "),
        tenants.join(", "),
        ca_file.display(),
    );
    if let Some(addr) = resolve {
        entry.push_str(&format!("    resolve: {{ {HOST}: \"{addr}\" }}\n"));
    }
    entry
}

fn load_or_make_key(path: &Path) -> Result<EcdsaKeyPair, String> {
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    match std::fs::read(path) {
        Ok(der) => EcdsaKeyPair::from_pkcs8(alg, &der).map_err(|e| format!("not a P-256 PKCS#8 key: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let der = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| e.to_string())?;
            write_private(path, der.as_ref()).map_err(|e| e.to_string())?;
            EcdsaKeyPair::from_pkcs8(alg, der.as_ref()).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn public_jwk(pair: &EcdsaKeyPair) -> Value {
    let point = pair.public_key().as_ref();
    json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KID,
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
    })
}
