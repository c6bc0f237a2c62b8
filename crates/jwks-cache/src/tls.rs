//! The HTTPS client: rustls on aws-lc-rs, the normal webpki verifier wrapped by an SPKI pin
//! check, `https://`-only redirects to allowed domains, and error classification.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::config::{ProviderConfig, SpkiPin, domain_allowed, host_of};
use crate::error::{ConfigError, FetchError};

/// The server's key matched no pin. Carried inside the rustls error so the fetcher can tell it
/// from other certificate failures.
#[derive(Debug)]
pub(crate) struct PinMismatch;

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server's public key matches no configured SPKI pin")
    }
}

impl StdError for PinMismatch {}

/// A redirect was refused by our policy.
#[derive(Debug)]
pub(crate) struct RedirectRefused(pub(crate) String);

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for RedirectRefused {}

/// Validates the chain with webpki first, then requires the leaf's SPKI to match a pin.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<SpkiPin>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let pin = SpkiPin::of_spki(cert.subject_public_key_info().as_ref());
        if self.pins.contains(&pin) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(PinMismatch)))))
        }
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

/// Builds the rustls client config: TLS 1.2 and 1.3 (rustls' safe defaults) or 1.3 only, the
/// configured roots, and the pin check when pins are given.
pub(crate) fn client_config(config: &ProviderConfig) -> Result<ClientConfig, ConfigError> {
    let client_err = |detail: String| ConfigError::Client { issuer: config.issuer.clone(), detail };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = config.trust.store()?;
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| client_err(format!("certificate verifier: {e}")))?;
    let versions: &[&rustls::SupportedProtocolVersion] =
        if config.tls13_only { &[&rustls::version::TLS13] } else { rustls::DEFAULT_VERSIONS };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| client_err(format!("protocol versions: {e}")))?;
    let mut tls = if config.spki_pins.is_empty() {
        builder.with_webpki_verifier(webpki).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinningVerifier {
                inner: webpki,
                pins: config.spki_pins.clone(),
            }))
            .with_no_client_auth()
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// Builds the reqwest client for one provider.
pub(crate) fn http_client(config: &ProviderConfig) -> Result<reqwest::Client, ConfigError> {
    let tls = client_config(config)?;
    let allowed = config.allowed_domains.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 3 {
            return attempt.error(RedirectRefused("more than 3 redirects".to_owned()));
        }
        let url = attempt.url();
        if url.scheme() != "https" {
            return attempt.error(RedirectRefused("the target is not https://".to_owned()));
        }
        match host_of(url) {
            Some(host) if domain_allowed(&allowed, &host) => attempt.follow(),
            Some(host) => {
                attempt.error(RedirectRefused(format!("the target host {host} is not an allowed domain")))
            }
            None => attempt.error(RedirectRefused("the target has no host".to_owned())),
        }
    });
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .redirect(redirects)
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("jwks-cache/", env!("CARGO_PKG_VERSION")));
    for (name, addr) in &config.resolve {
        builder = builder.resolve(name, *addr);
    }
    builder.build().map_err(|e| ConfigError::Client { issuer: config.issuer.clone(), detail: e.to_string() })
}

/// Turns a reqwest error into a [`FetchError`], finding pin mismatches, certificate errors and
/// refused redirects in its source chain.
pub(crate) fn classify(url: &str, timeout: std::time::Duration, e: &reqwest::Error) -> FetchError {
    let url = url.to_owned();
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<RedirectRefused>() {
            return FetchError::RedirectRefused { url, reason: r.0.clone() };
        }
        if let Some(tls) = find_rustls_error(err) {
            if let rustls::Error::InvalidCertificate(CertificateError::Other(other)) = tls
                && other.0.downcast_ref::<PinMismatch>().is_some()
            {
                return FetchError::PinMismatch { url };
            }
            return FetchError::Tls { url, detail: tls.to_string() };
        }
        source = err.source();
    }
    if e.is_timeout() {
        FetchError::Timeout { url, after: timeout }
    } else if e.is_body() || e.is_decode() {
        FetchError::Body { url, detail: error_chain(e) }
    } else {
        FetchError::Connect { url, detail: error_chain(e) }
    }
}

/// The rustls error in `err`, looking through nested `io::Error`s (whose `source()` skips
/// the error they wrap).
fn find_rustls_error<'a>(mut err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    for _ in 0..8 {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        err = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
    None
}

fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
