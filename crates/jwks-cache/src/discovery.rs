//! Finding an issuer's JWKS through its discovery document (OpenID Connect Discovery 1.0,
//! RFC 8414), with the same HTTPS rules as the key fetches: TLS with the configured roots and
//! pins, allowed domains only, a size limit.
//!
//! The document must name **exactly the issuer it was asked for** (RFC 8414 §3.3, OIDC
//! Discovery §4.3): a document naming another issuer is the mix-up attack, refused. Its
//! `jwks_uri` must be `https://` on an allowed domain.

use crate::config::ProviderConfig;

/// What a discovery document gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The document's `jwks_uri`.
    pub jwks_uri: String,
}

/// Discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The provider configuration (roots, pins) cannot make an HTTPS client.
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
    /// The discovery URL is not https on an allowed domain.
    #[error("discovery URL {url} refused: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request failed (connection, TLS, timeout).
    #[error("fetching {url} failed: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why (no response body).
        reason: String,
    },
    /// The server answered something other than 200.
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// Its status.
        status: u16,
    },
    /// The body is not a JSON object within the size limit.
    #[error("{url} is not a discovery document: {reason}")]
    Document {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The document names another issuer than the one asked for (mix-up).
    #[error(
        "the discovery document at {url} names issuer {found:?}, not {expected:?}: refused (issuer mix-up)"
    )]
    IssuerMismatch {
        /// The URL.
        url: String,
        /// The configured issuer.
        expected: String,
        /// What the document says.
        found: String,
    },
    /// `jwks_uri` is missing, not https or not on an allowed domain.
    #[error("the discovery document at {url} has no usable jwks_uri: {reason}")]
    JwksUri {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The conventional discovery URL of `issuer`: `<issuer>/.well-known/openid-configuration`.
pub fn well_known_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// The HTTPS client discovery uses for `config` (its roots, pins, allowed redirects): build it
/// once per issuer and pass it to [`discover_with`].
pub fn client(config: &ProviderConfig) -> Result<reqwest::Client, crate::error::ConfigError> {
    crate::tls::http_client(config)
}

/// Fetches the discovery document at `url` with `config`'s HTTPS rules (its `jwks_url` is not
/// used) and returns its `jwks_uri`, after checking that it names `config.issuer`. Builds a
/// client for this one call: [`discover_with`] reuses one.
pub async fn discover(config: &ProviderConfig, url: &str) -> Result<Discovered, DiscoveryError> {
    discover_with(&client(config)?, config, url).await
}

/// [`discover`] with a client from [`client`].
pub async fn discover_with(
    client: &reqwest::Client,
    config: &ProviderConfig,
    url: &str,
) -> Result<Discovered, DiscoveryError> {
    config.check_url(url).map_err(|e| DiscoveryError::Url { url: url.to_owned(), reason: e.to_string() })?;
    let outcome = fetch(client, config, url).await;
    crate::metrics::discovery(&config.issuer, outcome.is_ok());
    outcome
}

async fn fetch(
    client: &reqwest::Client,
    config: &ProviderConfig,
    url: &str,
) -> Result<Discovered, DiscoveryError> {
    let document = |reason: String| DiscoveryError::Document { url: url.to_owned(), reason };
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| DiscoveryError::Fetch { url: url.to_owned(), reason: without_url(&e) })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DiscoveryError::Status { url: url.to_owned(), status });
    }
    if response.content_length().is_some_and(|n| n > config.max_response_bytes as u64) {
        return Err(document(format!("larger than {} bytes", config.max_response_bytes)));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| DiscoveryError::Fetch { url: url.to_owned(), reason: without_url(&e) })?;
    if body.len() > config.max_response_bytes {
        return Err(document(format!("larger than {} bytes", config.max_response_bytes)));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| document("not JSON".to_owned()))?;
    let object = value.as_object().ok_or_else(|| document("not a JSON object".to_owned()))?;
    let found = object.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
    if found != config.issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.to_owned(),
            expected: config.issuer.clone(),
            found: found.chars().take(256).collect(),
        });
    }
    let jwks = |reason: String| DiscoveryError::JwksUri { url: url.to_owned(), reason };
    let jwks_uri =
        object.get("jwks_uri").and_then(|v| v.as_str()).ok_or_else(|| jwks("missing".to_owned()))?;
    config.check_url(jwks_uri).map_err(|e| jwks(e.to_string()))?;
    Ok(Discovered { jwks_uri: jwks_uri.to_owned() })
}

/// A reqwest error's kind and causes, without the URL it repeats (the caller names the URL).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = String::from(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
