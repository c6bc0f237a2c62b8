//! What a provider is told: where the keys are, whom to trust, and the limits and timings of
//! its cache.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;

/// Which certificate authorities the HTTPS client trusts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TrustRoots {
    /// The operating system's store (read once, when the provider is built).
    System,
    /// Exactly these roots (for example your own CA), nothing else.
    Custom(Arc<RootCertStore>),
}

impl TrustRoots {
    /// Trusts exactly the certificates in a PEM bundle.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, ConfigError> {
        let roots_err = |detail: String| ConfigError::Roots { origin: origin.to_owned(), detail };
        let mut store = RootCertStore::empty();
        for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert =
                cert.map_err(|e| roots_err(format!("certificate {} is not valid PEM: {e}", index + 1)))?;
            store
                .add(cert)
                .map_err(|e| roots_err(format!("certificate {} cannot be a trust anchor: {e}", index + 1)))?;
        }
        if store.is_empty() {
            return Err(roots_err("no certificates found; give a PEM bundle of CA certificates".to_owned()));
        }
        Ok(Self::Custom(Arc::new(store)))
    }

    /// Trusts exactly the certificates in a PEM bundle file.
    pub fn from_pem_file(path: &Path) -> Result<Self, ConfigError> {
        let pem = std::fs::read(path)
            .map_err(|source| ConfigError::RootsFile { path: path.to_path_buf(), source })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    pub(crate) fn store(&self) -> Result<Arc<RootCertStore>, ConfigError> {
        match self {
            Self::Custom(store) if store.is_empty() => Err(ConfigError::Roots {
                origin: "custom root store".to_owned(),
                detail: "it is empty; add your CA's certificate".to_owned(),
            }),
            Self::Custom(store) => Ok(store.clone()),
            Self::System => {
                let found = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    return Err(ConfigError::Roots {
                        origin: "system".to_owned(),
                        detail: format!(
                            "no usable certificates found ({} errors); install ca-certificates or pass your CA",
                            found.errors.len()
                        ),
                    });
                }
                Ok(Arc::new(store))
            }
        }
    }
}

/// The SHA-256 digest of a server's DER-encoded SubjectPublicKeyInfo (the HPKP
/// `pin-sha256` value). Pinning is on top of normal certificate validation, never instead of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin([u8; 32]);

impl std::fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpkiPin({})", self.to_base64())
    }
}

impl SpkiPin {
    /// A pin from its 32 digest bytes.
    pub fn from_sha256(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// A pin from standard base64 (44 characters, as `openssl dgst -sha256 -binary | base64`
    /// prints it).
    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::InvalidPin { pin: text.chars().take(64).collect() };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| invalid())?;
        Ok(Self(bytes.try_into().map_err(|_| invalid())?))
    }

    /// The pin of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The pin of a DER certificate's public key.
    pub fn of_certificate(cert_der: &[u8]) -> Result<Self, ConfigError> {
        let der = CertificateDer::from(cert_der);
        let cert = webpki::EndEntityCert::try_from(&der).map_err(|e| ConfigError::InvalidPin {
            pin: format!("<certificate that does not parse: {e}>"),
        })?;
        Ok(Self::of_spki(cert.subject_public_key_info().as_ref()))
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Standard base64 of the digest.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

/// How failed fetches are retried: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per fetch, the first included (1 = no retry).
    pub attempts: u32,
    /// The delay before the second attempt; doubled for each further one.
    pub initial_backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based): half the exponential step plus a
    /// random part of up to the other half ("equal jitter"), so many caches that failed
    /// together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_backoff);
        let half = step / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_nanos == 0 {
            0
        } else {
            rand::Rng::gen_range(&mut rand::thread_rng(), 0..=jitter_nanos)
        };
        half + Duration::from_nanos(jitter)
    }
}

/// Everything a [`Provider`](crate::Provider) needs. Start from [`ProviderConfig::new`] and
/// change the fields you care about; the defaults are meant for production.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The issuer (`iss`) whose keys these are; the registry's key and the `iss` validators
    /// require.
    pub issuer: String,
    /// The JWKS URL. Must be `https://`, on an allowed domain, without credentials.
    pub jwks_url: String,
    /// Hosts the JWKS may be fetched from (the URL's and any redirect's): exact names, IP
    /// addresses, or `*.example.com` for any subdomain of `example.com`.
    pub allowed_domains: Vec<String>,
    /// Whom the HTTPS client trusts.
    pub trust: TrustRoots,
    /// If not empty, the server's public key must match one of these (in addition to a valid
    /// chain to `trust`).
    pub spki_pins: Vec<SpkiPin>,
    /// Speak TLS 1.3 only (off by default: many public issuers still offer TLS 1.2 as well,
    /// and rustls' TLS 1.2 has only forward-secret AEAD suites). Turn it on for issuers you run.
    pub tls13_only: bool,
    /// Largest response body read, in bytes; reading stops past it.
    pub max_response_bytes: usize,
    /// Most keys a set may list (usable or not); a longer set is refused.
    pub max_keys: usize,
    /// Shortest time a fetched set is used without revalidation, whatever the issuer's
    /// Cache-Control says (also the TTL for `no-cache`/`no-store` answers).
    pub min_ttl: Duration,
    /// Longest time a fetched set is used without revalidation.
    pub max_ttl: Duration,
    /// How long after expiry the last good set is still served while the issuer fails.
    pub stale_window: Duration,
    /// How long before expiry a background refresh starts (at most half the TTL).
    pub refresh_ahead: Duration,
    /// At most one refetch per this interval is triggered by tokens with an unknown `kid`.
    pub unknown_kid_interval: Duration,
    /// After a failed refresh, automatic refreshes pause this long (lookups are answered from
    /// the stale set or with the last error meanwhile). Manual refreshes are not held back.
    pub failure_cooldown: Duration,
    /// Retries within one fetch.
    pub retry: RetryPolicy,
    /// Time limit for one HTTP attempt, body included.
    pub request_timeout: Duration,
    /// Time limit for establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest sleep of the background refresher between checks.
    pub background_check_interval: Duration,
    /// If set, the last good set is written here (atomically) after each refresh and read at
    /// start, so a restart during an issuer outage can still validate within the stale window.
    pub snapshot_path: Option<PathBuf>,
    /// Fixed name-to-address mappings for the HTTP client (split-horizon DNS, tests).
    pub resolve: Vec<(String, SocketAddr)>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl ProviderConfig {
    /// Defaults: system roots, no pins, 256 KiB, 100 keys, TTL between 1 minute and 1 hour,
    /// 1 hour stale window, refresh 30 s ahead, one unknown-`kid` refetch per 30 s, 10 s
    /// cooldown after failures, 3 attempts, 10 s request and 5 s connect timeouts. The
    /// allowed domains start as the URL's host when it parses.
    pub fn new(issuer: impl Into<String>, jwks_url: impl Into<String>) -> Self {
        let jwks_url = jwks_url.into();
        let allowed_domains = reqwest::Url::parse(&jwks_url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase()))
            .into_iter()
            .collect();
        Self {
            issuer: issuer.into(),
            jwks_url,
            allowed_domains,
            trust: TrustRoots::System,
            spki_pins: Vec::new(),
            tls13_only: false,
            max_response_bytes: 256 * 1024,
            max_keys: 100,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            stale_window: Duration::from_secs(3600),
            refresh_ahead: Duration::from_secs(30),
            unknown_kid_interval: Duration::from_secs(30),
            failure_cooldown: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            background_check_interval: Duration::from_secs(60),
            snapshot_path: None,
            resolve: Vec::new(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks the configuration and returns the parsed URL.
    pub(crate) fn validate(&self) -> Result<reqwest::Url, ConfigError> {
        let url = self.check_url(&self.jwks_url)?;
        let limit = |field, ok: bool, reason: &str| {
            if ok { Ok(()) } else { Err(ConfigError::Limit { field, reason: reason.to_owned() }) }
        };
        limit("issuer", !self.issuer.is_empty(), "must not be empty")?;
        limit(
            "max_response_bytes",
            (1..=64 * 1024 * 1024).contains(&self.max_response_bytes),
            "must be between 1 byte and 64 MiB",
        )?;
        limit("max_keys", (1..=10_000).contains(&self.max_keys), "must be between 1 and 10000")?;
        limit("min_ttl", !self.min_ttl.is_zero(), "must be at least 1 ms")?;
        limit("max_ttl", self.min_ttl <= self.max_ttl, "must not be shorter than min_ttl")?;
        limit("max_ttl", self.max_ttl <= Duration::from_secs(7 * 24 * 3600), "must be at most 7 days")?;
        limit(
            "stale_window",
            self.stale_window <= Duration::from_secs(30 * 24 * 3600),
            "must be at most 30 days",
        )?;
        limit("retry.attempts", (1..=10).contains(&self.retry.attempts), "must be between 1 and 10")?;
        limit(
            "retry.max_backoff",
            self.retry.initial_backoff <= self.retry.max_backoff,
            "must not be shorter than retry.initial_backoff",
        )?;
        limit("request_timeout", !self.request_timeout.is_zero(), "must be at least 1 ms")?;
        limit("connect_timeout", !self.connect_timeout.is_zero(), "must be at least 1 ms")?;
        limit(
            "background_check_interval",
            !self.background_check_interval.is_zero(),
            "must be at least 1 ms",
        )?;
        Ok(url)
    }
}

/// The URL's host, lower-case, IPv6 without brackets.
impl ProviderConfig {
    /// Checks a URL this provider would fetch (its JWKS, a discovery document, the JWKS it names):
    /// `https://`, no credentials, a host among the allowed domains (whose entries are checked
    /// too). Returns it parsed.
    pub(crate) fn check_url(&self, text: &str) -> Result<reqwest::Url, ConfigError> {
        let url = reqwest::Url::parse(text)
            .map_err(|e| ConfigError::InvalidUrl { url: text.to_owned(), reason: e.to_string() })?;
        if url.scheme() != "https" {
            return Err(ConfigError::InsecureUrl { url: text.to_owned() });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::CredentialsInUrl { issuer: self.issuer.clone() });
        }
        let host = host_of(&url)
            .ok_or_else(|| ConfigError::InvalidUrl { url: text.to_owned(), reason: "no host".to_owned() })?;
        if self.allowed_domains.is_empty() {
            return Err(ConfigError::NoAllowedDomains { issuer: self.issuer.clone(), host });
        }
        for entry in &self.allowed_domains {
            check_domain_entry(entry)?;
        }
        if !domain_allowed(&self.allowed_domains, &host) {
            return Err(ConfigError::DomainNotAllowed { host, allowed: self.allowed_domains.clone() });
        }
        Ok(url)
    }
}

pub(crate) fn host_of(url: &reqwest::Url) -> Option<String> {
    url.host_str().map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
}

fn check_domain_entry(entry: &str) -> Result<(), ConfigError> {
    let invalid = || ConfigError::InvalidAllowedDomain { entry: entry.to_owned() };
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    if name.parse::<IpAddr>().is_ok() && !entry.starts_with("*.") {
        return Ok(());
    }
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if labels_ok { Ok(()) } else { Err(invalid()) }
}

/// Whether `host` (lower-case) matches an allowed-domain entry.
pub(crate) fn domain_allowed(allowed: &[String], host: &str) -> bool {
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        match entry.strip_prefix("*.") {
            Some(parent) => host.len() > parent.len() + 1 && host.ends_with(&format!(".{parent}")),
            None => host == entry,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_on_allowed_domains_without_credentials() {
        let ok = ProviderConfig::new("https://issuer", "https://login.example.com/jwks");
        assert_eq!(ok.allowed_domains, ["login.example.com"]);
        assert!(ok.validate().is_ok());

        let http = ProviderConfig::new("https://issuer", "http://login.example.com/jwks");
        assert!(matches!(http.validate(), Err(ConfigError::InsecureUrl { .. })));

        let mut other = ProviderConfig::new("https://issuer", "https://evil.example.net/jwks");
        other.allowed_domains = vec!["login.example.com".to_owned()];
        let err = other.validate().unwrap_err();
        assert!(matches!(err, ConfigError::DomainNotAllowed { .. }), "{err}");
        assert!(err.to_string().contains("evil.example.net"), "{err}");

        let creds = ProviderConfig::new("https://issuer", "https://u:p@login.example.com/jwks");
        assert!(matches!(creds.validate(), Err(ConfigError::CredentialsInUrl { .. })));

        let mut none = ProviderConfig::new("https://issuer", "https://login.example.com/jwks");
        none.allowed_domains.clear();
        assert!(matches!(none.validate(), Err(ConfigError::NoAllowedDomains { .. })));

        let mut bad = ProviderConfig::new("https://issuer", "https://login.example.com/jwks");
        bad.allowed_domains.push("exa mple.com".to_owned());
        assert!(matches!(bad.validate(), Err(ConfigError::InvalidAllowedDomain { .. })));

        assert!(matches!(
            ProviderConfig::new("i", "not a url").validate(),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let allowed = vec!["*.example.com".to_owned(), "127.0.0.1".to_owned(), "Exact.Org".to_owned()];
        assert!(domain_allowed(&allowed, "login.example.com"));
        assert!(domain_allowed(&allowed, "a.b.example.com"));
        assert!(!domain_allowed(&allowed, "example.com"));
        assert!(!domain_allowed(&allowed, "evilexample.com"));
        assert!(!domain_allowed(&allowed, "example.com.evil.net"));
        assert!(domain_allowed(&allowed, "127.0.0.1"));
        assert!(domain_allowed(&allowed, "exact.org"));
        assert!(!domain_allowed(&allowed, "sub.exact.org"));
    }

    #[test]
    fn limits_are_checked() {
        let base = || ProviderConfig::new("https://issuer", "https://login.example.com/jwks");
        let mut c = base();
        c.min_ttl = Duration::from_secs(10);
        c.max_ttl = Duration::from_secs(5);
        assert!(matches!(c.validate(), Err(ConfigError::Limit { field: "max_ttl", .. })));
        let mut c = base();
        c.max_keys = 0;
        assert!(matches!(c.validate(), Err(ConfigError::Limit { field: "max_keys", .. })));
        let mut c = base();
        c.retry.attempts = 0;
        assert!(matches!(c.validate(), Err(ConfigError::Limit { field: "retry.attempts", .. })));
    }

    #[test]
    fn pins_parse_from_base64_only_when_32_bytes() {
        let pin = SpkiPin::of_spki(b"spki");
        assert_eq!(SpkiPin::from_base64(&pin.to_base64()).unwrap(), pin);
        assert!(SpkiPin::from_base64("AAAA").is_err());
        assert!(SpkiPin::from_base64("not base64!").is_err());
        assert!(format!("{pin:?}").starts_with("SpkiPin("));
    }

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        let policy = RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first), "{first:?}");
            let third = policy.backoff(3);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third), "{third:?}");
            let capped = policy.backoff(30);
            assert!(capped <= Duration::from_millis(400), "{capped:?}");
        }
    }

    #[test]
    fn roots_from_pem_refuse_garbage_and_empty_bundles() {
        assert!(matches!(TrustRoots::from_pem(b"", "test"), Err(ConfigError::Roots { .. })));
        assert!(TrustRoots::Custom(Arc::new(RootCertStore::empty())).store().is_err());
        assert!(matches!(
            TrustRoots::from_pem_file(Path::new("/nonexistent/ca.pem")),
            Err(ConfigError::RootsFile { .. })
        ));
    }
}
