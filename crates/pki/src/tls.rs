//! rustls configurations for servers and clients: TLS 1.3 only, our CA only (the system store
//! only when asked), optional or required client certificates.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::OffsetDateTime;

use crate::PkiError;
use crate::load::{self, CertFile, Usage};

/// The one crypto provider every config uses (aws-lc-rs, no OpenSSL).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The protocol versions we speak: TLS 1.3 and nothing else.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Whether a server asks clients for certificates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificates.
    #[default]
    None,
    /// Clients may present a certificate issued under this CA bundle.
    Optional(PathBuf),
    /// Clients must present a certificate issued under this CA bundle (mTLS).
    Required(PathBuf),
}

/// The files a TLS server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The leaf followed by its intermediates (`fullchain.pem`).
    pub cert_chain: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
    /// The CA bundle the chain must lead to; checked at load so a broken chain is caught at
    /// start rather than at a client's handshake. `None` skips the check.
    pub ca_bundle: Option<PathBuf>,
    /// Client-certificate policy.
    pub client_auth: ClientAuth,
}

impl ServerTlsFiles {
    /// Loads and checks the files and builds a TLS 1.3 server config advertising h2 and
    /// http/1.1.
    pub fn build(&self) -> Result<ServerConfig, PkiError> {
        let provider = provider();
        let now = OffsetDateTime::now_utc();
        let chain = load::read_certs(&self.cert_chain)?;
        load::check_validity(&chain, now)?;
        let key = load::read_key(&self.key)?;
        // Checks the pair before rustls does, for an error that names both files.
        load::certified_key(&chain, &self.key, key.clone_key(), &provider)?;
        if let Some(ca) = &self.ca_bundle {
            let ca = load::read_certs(ca)?;
            load::check_validity(&ca, now)?;
            load::verify_chain(&chain, &ca, Usage::Server, &provider, now)?;
        }

        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(tls_err)?;
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(ca) | ClientAuth::Required(ca) => {
                let roots = Arc::new(root_store(&load::read_certs(ca)?, now)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let verifier = if matches!(self.client_auth, ClientAuth::Optional(_)) {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| PkiError::Tls {
                    detail: format!("client CA bundle {}: {e}", ca.display()),
                })?)
            }
        };
        let mut config = builder.with_single_cert(chain.certs, key).map_err(tls_err)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// What a TLS client trusts and, for mTLS, who it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientTlsFiles {
    /// Our CA bundle. Required unless `system_roots` is set.
    pub ca_bundle: Option<PathBuf>,
    /// Trust the operating system's store too. Off by default: the services trust our CA only.
    pub system_roots: bool,
    /// Client certificate chain and key for mTLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTlsFiles {
    /// A client that trusts only the CA bundle at `path`.
    pub fn trusting(path: impl Into<PathBuf>) -> Self {
        Self { ca_bundle: Some(path.into()), ..Self::default() }
    }

    /// Loads and checks the files and builds a TLS 1.3 client config.
    pub fn build(&self) -> Result<ClientConfig, PkiError> {
        let provider = provider();
        let now = OffsetDateTime::now_utc();
        let mut roots = RootCertStore::empty();
        if let Some(ca) = &self.ca_bundle {
            roots = root_store(&load::read_certs(ca)?, now)?;
        }
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(PkiError::SystemRoots {
                    detail: format!("no certificates found ({} errors)", found.errors.len()),
                });
            }
            roots.add_parsable_certificates(found.certs);
        }
        if roots.is_empty() {
            return Err(PkiError::Tls {
                detail: "a TLS client needs a CA bundle (or system roots turned on) to trust anyone"
                    .to_owned(),
            });
        }
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(tls_err)?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = load::read_certs(cert)?;
                load::check_validity(&chain, now)?;
                let key_der = load::read_key(key)?;
                // Checks the pair before rustls does, for an error that names the files.
                load::certified_key(&chain, key, key_der.clone_key(), &provider)?;
                builder.with_client_auth_cert(chain.certs, key_der).map_err(tls_err)?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn root_store(ca: &CertFile, now: OffsetDateTime) -> Result<RootCertStore, PkiError> {
    load::check_validity(ca, now)?;
    let mut roots = RootCertStore::empty();
    for (index, cert) in ca.certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| PkiError::BadCertificate {
            path: ca.path.clone(),
            index: index + 1,
            detail: format!("cannot be used as a trust anchor: {e}"),
        })?;
    }
    Ok(roots)
}

fn tls_err(e: rustls::Error) -> PkiError {
    PkiError::Tls { detail: e.to_string() }
}

/// Convenience: a server config from a materialised PKI directory's leaf.
pub fn server_config_for(
    dir: &crate::PkiDir,
    leaf: &str,
    client_auth: ClientAuth,
) -> Result<ServerConfig, PkiError> {
    let paths = dir.leaf(leaf);
    ServerTlsFiles {
        cert_chain: paths.fullchain,
        key: paths.key,
        ca_bundle: Some(dir.ca_bundle()),
        client_auth,
    }
    .build()
}

/// Convenience: a client config trusting a materialised PKI directory's CA.
pub fn client_config_for(dir: &crate::PkiDir, identity: Option<&str>) -> Result<ClientConfig, PkiError> {
    ClientTlsFiles {
        ca_bundle: Some(dir.ca_bundle()),
        system_roots: false,
        identity: identity.map(|name| {
            let p = dir.leaf(name);
            (p.fullchain, p.key)
        }),
    }
    .build()
}
