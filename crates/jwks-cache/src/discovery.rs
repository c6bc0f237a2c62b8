//! Finding an issuer's JWKS through its discovery document (OpenID Connect Discovery 1.0,
//! RFC 8414), with the same HTTPS rules as the key fetches: TLS with the configured roots and
//! pins, allowed domains only, a size limit.
//!
//! The document must name **exactly the issuer it was asked for** (RFC 8414 §3.3, OIDC
//! Discovery §4.3): a document naming another issuer is the mix-up attack, refused. Its
//! `jwks_uri` must be `https://` on an allowed domain.
//!
//! [`Discovery`] keeps the document the way [`crate::Provider`] keeps a key set: used while
//! fresh by the HTTP caching rules (bounded by `min_ttl`/`max_ttl`), revalidated with
//! `If-None-Match`/`If-Modified-Since` when it expires, served stale for `stale_window` while the
//! issuer fails (with `failure_cooldown` between attempts), and written to `snapshot_path` so a
//! restart during an outage still finds the keys' URL. [`discover`] is the one-off fetch.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use http::HeaderValue;
use http::header::{ETAG, LAST_MODIFIED};
use http_cache_semantics::{AfterResponse, CacheOptions, CachePolicy};

use crate::clock::{from_unix_millis, unix_millis};
use crate::conditional::{self, Answer, Validators};
use crate::config::ProviderConfig;
use crate::snapshot::{self, Snapshot};

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

/// Fetches the discovery document at `url` with `config`'s HTTPS rules (its `jwks_url` is not
/// used) and returns its `jwks_uri`, after checking that it names `config.issuer`. One fetch, no
/// cache: [`Discovery`] keeps the document.
pub async fn discover(config: &ProviderConfig, url: &str) -> Result<Discovered, DiscoveryError> {
    // No snapshot: the path in `config` is its key set's, not this document's.
    let config = ProviderConfig { snapshot_path: None, ..config.clone() };
    let discovery = Discovery::new(config, url)?;
    discovery.jwks_uri().await.map(|jwks_uri| Discovered { jwks_uri: jwks_uri.to_string() })
}

/// The document as kept.
#[derive(Debug)]
struct Kept {
    /// Shared with every caller: asked on every token, so handed out without a copy.
    jwks_uri: Arc<str>,
    body: String,
    policy: CachePolicy,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
    fetched_at: SystemTime,
    fresh_until: SystemTime,
    stale_until: SystemTime,
}

/// One issuer's discovery document, cached (see the module documentation).
#[derive(Debug)]
pub struct Discovery {
    config: ProviderConfig,
    url: String,
    /// `url` parsed, for the client and for the cache policy.
    parsed: reqwest::Url,
    uri: http::Uri,
    client: reqwest::Client,
    kept: RwLock<Option<Arc<Kept>>>,
    /// One fetch at a time; callers that waited find the new document.
    flight: tokio::sync::Mutex<()>,
    /// No fetch before this while a stale document can be served (after a failure).
    cooldown_until: Mutex<Option<SystemTime>>,
    /// With nothing kept: the last failure and until when it is the answer, so callers queued
    /// behind a failing fetch do not each fetch again ([`NO_DOCUMENT_RETRY`]).
    failed: Mutex<Option<(SystemTime, String)>>,
    /// The snapshot file's writer (in order).
    snapshots: snapshot::OrderedWriter,
    /// [`crate::metrics::DISCOVERY_LOOKUPS`] by outcome, registered once (a hit is counted on
    /// every token).
    lookups: Lookups,
}

#[derive(Debug)]
struct Lookups {
    hit: metrics::Counter,
    miss: metrics::Counter,
    revalidated: metrics::Counter,
    stale: metrics::Counter,
}

impl Lookups {
    fn register(issuer: &str) -> Self {
        let counter = |outcome: &'static str| metrics::counter!(crate::metrics::DISCOVERY_LOOKUPS, "provider" => issuer.to_owned(), "outcome" => outcome);
        Self {
            hit: counter("hit"),
            miss: counter("miss"),
            revalidated: counter("revalidated"),
            stale: counter("stale"),
        }
    }
}

/// With no document kept, a failed discovery is not tried again for this long: waiting callers
/// share the failure instead of each making a request (short, as a first token waits on it).
const NO_DOCUMENT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl Discovery {
    /// The discovery document of `config.issuer` at `url`, fetched on first use (or loaded from
    /// `config.snapshot_path`, which a missing, damaged or foreign file does not stop: it is
    /// logged and ignored). `config`'s `jwks_url` is not used.
    pub fn new(config: ProviderConfig, url: &str) -> Result<Self, DiscoveryError> {
        let refused = |reason: String| DiscoveryError::Url { url: url.to_owned(), reason };
        let parsed = config.check_url(url).map_err(|e| refused(e.to_string()))?;
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| refused(e.to_string()))?;
        let client = crate::tls::http_client(&config)?;
        let lookups = Lookups::register(&config.issuer);
        let discovery = Self {
            config,
            url: url.to_owned(),
            parsed,
            uri,
            client,
            kept: RwLock::new(None),
            flight: tokio::sync::Mutex::new(()),
            cooldown_until: Mutex::new(None),
            failed: Mutex::new(None),
            snapshots: snapshot::OrderedWriter::default(),
            lookups,
        };
        if let Some(path) = &discovery.config.snapshot_path {
            let loaded = snapshot::load(path, &discovery.config.issuer, url)
                .map_err(|e| e.to_string())
                .and_then(|snap| snap.map(|s| discovery.kept_from_snapshot(s)).transpose());
            match loaded {
                Ok(Some(kept)) => {
                    tracing::info!(issuer = %discovery.config.issuer, path = %path.display(), "loaded discovery snapshot");
                    *discovery.kept.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(kept));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(issuer = %discovery.config.issuer, path = %path.display(), error = %e, "ignoring discovery snapshot")
                }
            }
        }
        Ok(discovery)
    }

    /// The document's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The issuer's `jwks_uri`: from the kept document while it is fresh, else fetched (or
    /// revalidated); the last good one while the issuer fails within the stale window.
    pub async fn jwks_uri(&self) -> Result<Arc<str>, DiscoveryError> {
        if let Some(uri) = self.fresh() {
            return Ok(uri);
        }
        let _flight = self.flight.lock().await;
        // Another caller may have fetched it while this one waited.
        if let Some(uri) = self.fresh() {
            return Ok(uri);
        }
        let previous = self.kept.read().unwrap_or_else(PoisonError::into_inner).clone();
        let now = self.config.clock.now();
        let stale = previous.as_ref().filter(|k| now < k.stale_until);
        let cooling =
            self.cooldown_until.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|t| now < t);
        if let (Some(kept), true) = (stale, cooling) {
            self.lookups.stale.increment(1);
            return Ok(kept.jwks_uri.clone());
        }
        if stale.is_none()
            && let Some((until, reason)) = self.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
            && now < until
        {
            return Err(DiscoveryError::Fetch {
                url: self.url.clone(),
                reason: format!("failed just now: {reason}"),
            });
        }
        let outcome = self.fetch(previous.as_deref()).await;
        crate::metrics::discovery(&self.config.issuer, outcome.is_ok());
        match outcome {
            Ok((kept, revalidated)) => {
                if revalidated { &self.lookups.revalidated } else { &self.lookups.miss }.increment(1);
                let kept = Arc::new(kept);
                *self.kept.write().unwrap_or_else(PoisonError::into_inner) = Some(kept.clone());
                *self.cooldown_until.lock().unwrap_or_else(PoisonError::into_inner) = None;
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
                self.write_snapshot(&kept);
                Ok(kept.jwks_uri.clone())
            }
            Err(error) => {
                *self.cooldown_until.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(now + self.config.failure_cooldown);
                // From when the failure was known (a timeout may have taken seconds), so callers
                // queued behind it share it.
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((self.config.clock.now() + NO_DOCUMENT_RETRY, error.to_string()));
                match stale {
                    Some(kept) => {
                        tracing::warn!(issuer = %self.config.issuer, %error, "discovery failed; serving the last good document");
                        self.lookups.stale.increment(1);
                        Ok(kept.jwks_uri.clone())
                    }
                    None => Err(error),
                }
            }
        }
    }

    fn fresh(&self) -> Option<Arc<str>> {
        let kept = self.kept.read().unwrap_or_else(PoisonError::into_inner);
        let kept = kept.as_ref().filter(|k| self.config.clock.now() < k.fresh_until)?;
        self.lookups.hit.increment(1);
        Some(kept.jwks_uri.clone())
    }

    fn kept(
        &self,
        jwks_uri: Arc<str>,
        body: String,
        policy: CachePolicy,
        etag: Option<HeaderValue>,
        last_modified: Option<HeaderValue>,
        fetched_at: SystemTime,
    ) -> Kept {
        let ttl = policy.time_to_live(fetched_at).clamp(self.config.min_ttl, self.config.max_ttl);
        let fresh_until = fetched_at + ttl;
        Kept {
            jwks_uri,
            body,
            policy,
            etag,
            last_modified,
            fetched_at,
            fresh_until,
            stale_until: fresh_until + self.config.stale_window,
        }
    }

    /// A snapshot's document, checked again, expired at once: the issuer is asked first, and the
    /// snapshot serves only through the stale window counted from its original expiry (so
    /// restarts cannot stretch it). One written "in the future" is refused.
    fn kept_from_snapshot(&self, snap: Snapshot) -> Result<Kept, String> {
        let jwks_uri: Arc<str> =
            parse(&self.config, &self.url, snap.jwks.as_bytes()).map_err(|e| e.to_string())?.into();
        let fetched_at = from_unix_millis(snap.fetched_at_ms);
        let now = self.config.clock.now();
        if fetched_at > now + std::time::Duration::from_secs(60) {
            return Err("the snapshot claims to have been fetched in the future".to_owned());
        }
        let header = |v: Option<String>| v.and_then(|s| HeaderValue::from_str(&s).ok());
        let original = from_unix_millis(snap.fresh_until_ms);
        let mut kept = self.kept(
            jwks_uri,
            snap.jwks,
            snap.policy,
            header(snap.etag),
            header(snap.last_modified),
            fetched_at,
        );
        kept.stale_until = kept.stale_until.min(original + self.config.stale_window);
        kept.fresh_until = kept.fresh_until.min(original).min(now);
        Ok(kept)
    }

    fn write_snapshot(&self, kept: &Kept) {
        let Some(path) = self.config.snapshot_path.clone() else { return };
        let snap = Snapshot {
            format: snapshot::FORMAT,
            issuer: self.config.issuer.clone(),
            jwks_url: self.url.clone(),
            fetched_at_ms: unix_millis(kept.fetched_at),
            fresh_until_ms: unix_millis(kept.fresh_until),
            etag: kept.etag.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned),
            last_modified: kept.last_modified.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned),
            policy: kept.policy.clone(),
            jwks: kept.body.clone(),
        };
        self.snapshots.write(path, snap, "discovery");
    }

    /// Fetches the document, conditionally when one is kept; `true` with a 304.
    async fn fetch(&self, current: Option<&Kept>) -> Result<(Kept, bool), DiscoveryError> {
        let url = self.url.as_str();
        let limit = self.config.max_response_bytes;
        let validators =
            current.map(|c| Validators { etag: c.etag.as_ref(), last_modified: c.last_modified.as_ref() });
        let answer =
            conditional::get(&self.client, &self.parsed, &self.uri, "application/json", validators, limit)
                .await
                .map_err(|e| DiscoveryError::Fetch { url: url.to_owned(), reason: without_url(&e) })?;
        let now = self.config.clock.now();
        let (request, response, body) = match answer {
            Answer::Ok { request, response, body } => (request, response, body),
            Answer::NotModified { request, response } => {
                let revalidated =
                    current.and_then(|c| match c.policy.after_response(&request, &response, now) {
                        AfterResponse::NotModified(policy, _) => Some((c, policy)),
                        AfterResponse::Modified(..) => None,
                    });
                let Some((c, policy)) = revalidated else {
                    return Err(DiscoveryError::Status { url: url.to_owned(), status: 304 });
                };
                let etag = response.headers.get(ETAG).cloned().or_else(|| c.etag.clone());
                let modified =
                    response.headers.get(LAST_MODIFIED).cloned().or_else(|| c.last_modified.clone());
                return Ok((
                    self.kept(c.jwks_uri.clone(), c.body.clone(), policy, etag, modified, now),
                    true,
                ));
            }
            Answer::Status(status) => return Err(DiscoveryError::Status { url: url.to_owned(), status }),
            Answer::TooLarge => {
                return Err(DiscoveryError::Document {
                    url: url.to_owned(),
                    reason: format!("larger than {limit} bytes"),
                });
            }
        };
        let jwks_uri = parse(&self.config, url, &body)?;
        let body = String::from_utf8(body)
            .map_err(|_| DiscoveryError::Document { url: url.to_owned(), reason: "not UTF-8".to_owned() })?;
        let policy = CachePolicy::new_options(
            &request,
            &response,
            now,
            CacheOptions { shared: false, ..CacheOptions::default() },
        );
        let etag = response.headers.get(ETAG).cloned();
        let modified = response.headers.get(LAST_MODIFIED).cloned();
        Ok((self.kept(jwks_uri.into(), body, policy, etag, modified, now), false))
    }
}

/// The `jwks_uri` of a discovery document `body` fetched from `url`, after the issuer and URL
/// checks.
fn parse(config: &ProviderConfig, url: &str, body: &[u8]) -> Result<String, DiscoveryError> {
    let document = |reason: String| DiscoveryError::Document { url: url.to_owned(), reason };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| document("not JSON".to_owned()))?;
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
    Ok(jwks_uri.to_owned())
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
