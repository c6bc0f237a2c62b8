//! A trust store of token issuers — `trust.yml`, one format for Identity (whose token exchange
//! accepts their tokens as subjects) and the KMS (whose Bearer realm accepts them) — and the
//! verification of a token against it.
//!
//! ```yaml
//! issuers:
//!   - issuer: https://partner.example              # the exact `iss`
//!     enable_discovery: true                       # default: keys through the discovery document
//!     well_known_url: https://partner.example/.well-known/openid-configuration   # default
//!     # jwks_uri: https://partner.example/jwks     # instead, with enable_discovery: false
//!     audiences: [https://kms.demo.local:8081]     # what its tokens must carry as `aud`
//!     algorithms: [ES256]                          # pinned here, never read from a token
//!     token_type: at+jwt                           # the `typ` its tokens must carry (default)
//!     tenants: [0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10]   # the tenants it is authority for
//!     ca_file: /run/secrets/partner-ca.pem         # roots for its HTTPS (default: the system's)
//! cache_dir: /var/lib/demo/trust-cache             # documents and keys kept across restarts
//! ```
//!
//! **Verifying** a token: its unverified `iss` picks the issuer (an issuer not listed is
//! refused before anything is fetched); the signature, `iss`, `aud`, `exp`/`nbf`, algorithm
//! and `typ` are checked by `jwks-cache` with that issuer's cached keys; then its `tenant_id`
//! must be one the issuer is authority for ([`Refusal::NotAuthority`] otherwise: a token of
//! issuer X naming a tenant of issuer Y is no token for that tenant).
//!
//! **Discovery** (`jwks_cache::Discovery`) runs on an issuer's first token, not at load, so an
//! issuer that is down does not make a valid file invalid; the document must name exactly the
//! issuer it was fetched for (the mix-up attack is refused) and is fetched again until it
//! succeeds. The document and the keys are then cached by `jwks-cache` (HTTP caching with
//! revalidation, stale-while-error); with `cache_dir:` both are also kept on disk, so a restart
//! while an issuer is down still verifies within the stale window. A document that names a new
//! `jwks_uri` moves the issuer to the keys there.
//!
//! **Reloading** ([`TrustHandle`]): the file is validated first; a file that fails validation is
//! refused with the reason and the store in force stays; issuers whose entry did not change keep
//! their discovered keys and caches. [`TrustHandle::spawn_watch`] reloads on change (checked
//! every second, debounced to a file that stopped changing) and on SIGHUP.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use jwks_cache::{Algorithm, ProviderConfig, TrustRoots, Validator, ValidatorConfig};
use serde::Deserialize;
use service_kit::config::{Validate, Validator as ConfigValidator};
use service_kit::db::TenantKey;

/// `trust.yml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    /// The trusted issuers.
    pub issuers: Vec<IssuerEntry>,
    /// Where each issuer's discovery document and key set are kept between restarts (made
    /// 0700 if missing), so a restart while an issuer is down still verifies its tokens within
    /// the stale window. None by default: they are kept in memory only.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

/// One issuer (`issuers[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerEntry {
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// Find the keys through the discovery document (default true).
    #[serde(default = "yes")]
    pub enable_discovery: bool,
    /// The discovery document (default `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub well_known_url: Option<String>,
    /// The JWKS, when discovery is off.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Audiences accepted (`aud` must hold one).
    pub audiences: Vec<String>,
    /// Algorithms accepted (default ES256).
    #[serde(default = "es256")]
    pub algorithms: Vec<String>,
    /// The `typ` its tokens carry (default `at+jwt`).
    #[serde(default = "at_jwt")]
    pub token_type: String,
    /// The tenants it is authority for (canonical UUIDs).
    pub tenants: Vec<String>,
    /// The roots its HTTPS certificates chain to (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Fixed host → address mappings (tests, and the embedded runtime's loopback ports).
    #[serde(default)]
    pub resolve: BTreeMap<String, SocketAddr>,
}

fn yes() -> bool {
    true
}
fn es256() -> Vec<String> {
    vec!["ES256".to_owned()]
}
fn at_jwt() -> String {
    "at+jwt".to_owned()
}

fn https(url: &str) -> bool {
    url.strip_prefix("https://").is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
}

impl Validate for TrustFile {
    fn validate(&self, v: &mut ConfigValidator) {
        let mut seen = HashSet::new();
        for (i, e) in self.issuers.iter().enumerate() {
            let key = |field: &str| format!("issuers[{i}].{field}");
            v.check(https(&e.issuer), key("issuer"), "must be an https URL");
            v.check(seen.insert(e.issuer.as_str()), key("issuer"), "is listed twice");
            match (e.enable_discovery, &e.jwks_uri, &e.well_known_url) {
                (true, Some(_), _) => {
                    v.error(key("jwks_uri"), "set enable_discovery: false to name the JWKS yourself")
                }
                (false, None, _) => v.error(key("jwks_uri"), "required when enable_discovery is false"),
                (false, _, Some(_)) => {
                    v.error(key("well_known_url"), "unused when enable_discovery is false")
                }
                _ => {}
            }
            for url in e.jwks_uri.iter().chain(&e.well_known_url) {
                v.check(
                    https(url),
                    key(if Some(url) == e.jwks_uri.as_ref() { "jwks_uri" } else { "well_known_url" }),
                    "must be an https URL",
                );
            }
            v.check(!e.audiences.is_empty(), key("audiences"), "list the audiences its tokens may carry");
            v.check(!e.algorithms.is_empty(), key("algorithms"), "list at least one");
            for a in &e.algorithms {
                v.check(
                    jwks_cache::algorithm_by_name(a).is_some(),
                    key("algorithms"),
                    format!("{a:?} is not an asymmetric JOSE algorithm this store knows"),
                );
            }
            v.check(!e.token_type.is_empty(), key("token_type"), "must not be empty");
            v.check(!e.tenants.is_empty(), key("tenants"), "list the tenants it is authority for");
            for t in &e.tenants {
                if let Err(err) = TenantKey::parse(t) {
                    v.error(key("tenants"), err.to_string());
                }
            }
            if let Some(ca) = &e.ca_file {
                v.check(ca.is_file(), key("ca_file"), format!("{} is not a readable file", ca.display()));
            }
        }
    }
}

/// The trust file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// Unreadable or invalid (file, key and line are in the error).
    #[error(transparent)]
    Config(#[from] service_kit::ConfigError),
    /// An issuer's HTTPS settings are unusable (its CA file, say).
    #[error("issuer {issuer}: {source}")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// Why.
        #[source]
        source: jwks_cache::ConfigError,
    },
    /// An issuer's discovery URL is unusable.
    #[error("issuer {issuer}: {source}")]
    Discovery {
        /// The issuer.
        issuer: String,
        /// Why.
        #[source]
        source: jwks_cache::DiscoveryError,
    },
    /// `cache_dir` cannot be made.
    #[error(
        "cannot make the trust store's cache_dir {path}: {source}; make it writable for the service, or remove cache_dir"
    )]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Makes `dir` (0700) if missing.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a JWT whose `iss` this store lists.
    UnknownIssuer,
    /// Not valid for its issuer (the `jwks-cache` reason: `expired`, `wrong_audience`, …).
    Invalid(String),
    /// Valid, but its tenant is not one its issuer is authority for.
    NotAuthority {
        /// The issuer.
        issuer: String,
        /// The tenant the token names.
        tenant: String,
    },
    /// Valid, but it names no tenant (or not a canonical one).
    NoTenant,
    /// The issuer's discovery document or keys cannot be had now (the reason).
    Unavailable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownIssuer => f.write_str("its issuer is not in the trust store"),
            Self::Invalid(why) => write!(f, "{why}"),
            Self::NotAuthority { issuer, tenant } => {
                write!(f, "issuer {issuer} is not the authority for tenant {tenant}")
            }
            Self::NoTenant => f.write_str("tenant_id is missing or not a canonical UUID"),
            Self::Unavailable(why) => write!(f, "the issuer's keys are unavailable: {why}"),
        }
    }
}

/// A token the store accepted.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its issuer.
    pub issuer: String,
    /// Its tenant (one its issuer is authority for).
    pub tenant: TenantKey,
    /// Its claims.
    pub claims: serde_json::Value,
}

/// One issuer's entry, its discovery document (cached by `jwks-cache`) and its validator, made
/// on the first token and again when the document names another `jwks_uri`.
#[derive(Debug)]
struct Trusted {
    entry: IssuerEntry,
    tenants: HashSet<TenantKey>,
    roots: TrustRoots,
    cache_dir: Option<PathBuf>,
    /// With `enable_discovery`: the document.
    discovery: Option<jwks_cache::Discovery>,
    /// The validator of the keys at the `jwks_uri` it was made for.
    validator: RwLock<Option<(Arc<str>, Arc<Validator>)>>,
    /// The explicit `jwks_uri` (without discovery), shared with every token.
    explicit_jwks: Option<Arc<str>>,
}

impl Trusted {
    fn new(entry: IssuerEntry, cache_dir: Option<&Path>) -> Result<Self, TrustError> {
        let roots = match &entry.ca_file {
            Some(path) => TrustRoots::from_pem_file(path)
                .map_err(|source| TrustError::Issuer { issuer: entry.issuer.clone(), source })?,
            None => TrustRoots::System,
        };
        let tenants = entry.tenants.iter().filter_map(|t| TenantKey::parse(t).ok()).collect();
        let explicit_jwks = entry.jwks_uri.as_deref().map(Arc::from);
        let mut trusted = Self {
            entry,
            tenants,
            roots,
            cache_dir: cache_dir.map(Path::to_owned),
            discovery: None,
            validator: RwLock::new(None),
            explicit_jwks,
        };
        if trusted.entry.enable_discovery {
            let url = trusted
                .entry
                .well_known_url
                .clone()
                .unwrap_or_else(|| jwks_cache::discovery::well_known_url(&trusted.entry.issuer));
            // The discovery URL's host is allowed like the JWKS's would be.
            let mut config = trusted.provider_config(&url);
            config.snapshot_path = trusted.cache_file("discovery");
            let discovery = jwks_cache::Discovery::new(config, &url)
                .map_err(|source| TrustError::Discovery { issuer: trusted.entry.issuer.clone(), source })?;
            trusted.discovery = Some(discovery);
        }
        Ok(trusted)
    }

    fn provider_config(&self, url: &str) -> ProviderConfig {
        let mut config = ProviderConfig::new(self.entry.issuer.clone(), url.to_owned());
        config.trust = self.roots.clone();
        config.tls13_only = true;
        config.resolve = self.entry.resolve.iter().map(|(h, a)| (h.clone(), *a)).collect();
        config.max_ttl = Duration::from_secs(300);
        config
    }

    /// `<cache_dir>/<the issuer's host, for people>-<SHA-256 of the issuer, 16 bytes hex>-<what>.json`:
    /// one file per issuer however alike two issuers' names are, and short whatever the issuer.
    fn cache_file(&self, what: &str) -> Option<PathBuf> {
        let issuer = &self.entry.issuer;
        let host: String = issuer
            .trim_start_matches("https://")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .take(48)
            .collect();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, issuer.as_bytes());
        let hash: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.cache_dir.as_ref().map(|dir| dir.join(format!("{host}-{hash}-{what}.json")))
    }

    /// The validator of the keys the issuer names now (by discovery, or its explicit JWKS).
    async fn validator(&self) -> Result<Arc<Validator>, Refusal> {
        let jwks_url = match (&self.discovery, &self.explicit_jwks) {
            (Some(discovery), _) => discovery.jwks_uri().await.map_err(|e| {
                tracing::warn!(issuer = %self.entry.issuer, error = %e, "discovery failed");
                Refusal::Unavailable(e.to_string())
            })?,
            (None, Some(url)) => url.clone(),
            // Validation requires one or the other.
            (None, None) => return Err(Refusal::Unavailable("no jwks_uri and no discovery".to_owned())),
        };
        let made_for = |slot: &Option<(Arc<str>, Arc<Validator>)>| {
            slot.as_ref().filter(|(url, _)| *url == jwks_url).map(|(_, v)| v.clone())
        };
        if let Some(v) = made_for(&self.validator.read().unwrap_or_else(|e| e.into_inner())) {
            return Ok(v);
        }
        let mut slot = self.validator.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = made_for(&slot) {
            return Ok(v);
        }
        if let Some((old, _)) = slot.as_ref() {
            tracing::info!(issuer = %self.entry.issuer, from = %old, to = %jwks_url, "the issuer's jwks_uri changed");
        }
        let mut config = self.provider_config(&jwks_url);
        config.snapshot_path = self.cache_file("jwks");
        let provider = jwks_cache::Provider::new(config).map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let algorithms: Vec<Algorithm> =
            self.entry.algorithms.iter().filter_map(|a| jwks_cache::algorithm_by_name(a)).collect();
        let settings = ValidatorConfig::new(self.entry.audiences.clone(), &algorithms)
            .with_required_typ(self.entry.token_type.clone());
        let validator =
            Arc::new(Validator::new(provider, settings).map_err(|e| Refusal::Unavailable(e.to_string()))?);
        *slot = Some((jwks_url, validator.clone()));
        Ok(validator)
    }
}

/// Counter: tokens verified against the trust store, by `issuer` (`unknown` for one not
/// listed) and `outcome` (`ok`, `unknown_issuer`, `invalid`, `not_authority`, `no_tenant`,
/// `unavailable`). Discovery documents are counted by `jwks-cache` (`jwks_discovery_total`), key
/// lookups too (`jwks_cache_hits_total`, `jwks_cache_misses_total`).
pub const VERIFICATIONS: &str = "trust_store_verifications_total";

/// Counter: reloads of the trust file, by `outcome` (`ok`, `refused`: the file did not validate
/// and the store in force stayed).
pub const RELOADS: &str = "trust_store_reloads_total";

fn count(issuer: &str, outcome: &'static str) {
    metrics::counter!(VERIFICATIONS, "issuer" => issuer.to_owned(), "outcome" => outcome).increment(1);
}

/// The issuers of one version of the file.
#[derive(Debug, Default)]
pub struct TrustStore {
    issuers: BTreeMap<String, Arc<Trusted>>,
}

impl TrustStore {
    /// Reads and validates `path` (file, key and line in any error).
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        Self::build(read(path)?, None)
    }

    /// The store of `file`, reusing `previous`'s issuers whose entry is unchanged (with their
    /// discovered keys and caches).
    fn build(file: TrustFile, previous: Option<&TrustStore>) -> Result<Self, TrustError> {
        let cache_dir = file.cache_dir.as_deref();
        if let Some(dir) = cache_dir {
            make_private_dir(dir).map_err(|source| TrustError::CacheDir { path: dir.to_owned(), source })?;
        }
        let mut issuers = BTreeMap::new();
        for entry in file.issuers {
            let kept = previous
                .and_then(|p| p.issuers.get(&entry.issuer))
                .filter(|t| t.entry == entry && t.cache_dir.as_deref() == cache_dir);
            let trusted = match kept {
                Some(t) => t.clone(),
                None => Arc::new(Trusted::new(entry, cache_dir)?),
            };
            issuers.insert(trusted.entry.issuer.clone(), trusted);
        }
        Ok(Self { issuers })
    }

    /// The issuers listed.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }

    /// Whether `iss` is listed.
    pub fn knows(&self, iss: &str) -> bool {
        self.issuers.contains_key(iss)
    }

    /// Verifies `token` (see the crate documentation), counting the outcome ([`VERIFICATIONS`]).
    pub async fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let iss = unverified_issuer(token).filter(|iss| self.issuers.contains_key(iss));
        let outcome = self.verify_inner(iss.as_deref(), token).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(Refusal::UnknownIssuer) => "unknown_issuer",
            Err(Refusal::Invalid(_)) => "invalid",
            Err(Refusal::NotAuthority { .. }) => "not_authority",
            Err(Refusal::NoTenant) => "no_tenant",
            Err(Refusal::Unavailable(_)) => "unavailable",
        };
        count(iss.as_deref().unwrap_or("unknown"), label);
        outcome
    }

    async fn verify_inner(&self, iss: Option<&str>, token: &str) -> Result<Verified, Refusal> {
        let iss = iss.ok_or(Refusal::UnknownIssuer)?.to_owned();
        let trusted = self.issuers.get(&iss).ok_or(Refusal::UnknownIssuer)?;
        let validator = trusted.validator().await?;
        let claims = validator.validate(token).await.map_err(|e| {
            if e.is_unavailable() {
                Refusal::Unavailable(e.kind().as_str().to_owned())
            } else {
                Refusal::Invalid(e.kind().as_str().to_owned())
            }
        })?;
        let tenant_text = claims.get("tenant_id").and_then(|t| t.as_str()).ok_or(Refusal::NoTenant)?;
        let tenant = TenantKey::parse(tenant_text).map_err(|_| Refusal::NoTenant)?;
        if !trusted.tenants.contains(&tenant) {
            return Err(Refusal::NotAuthority { issuer: iss, tenant: tenant.canonical() });
        }
        Ok(Verified { issuer: iss, tenant, claims })
    }
}

/// The `iss` of a JWT, read without verifying anything (it only picks the issuer, whose
/// validator checks it again).
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

fn read(path: &Path) -> Result<TrustFile, TrustError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| service_kit::ConfigError::Read { path: path.to_owned(), source })?;
    // No environment overrides: the file is the whole truth.
    Ok(service_kit::config::load_str(path, &text, "", Vec::new())?)
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadOutcome {
    /// Issuers kept as they were (with their caches).
    pub kept: Vec<String>,
    /// Issuers new or changed.
    pub loaded: Vec<String>,
    /// Issuers no longer listed.
    pub removed: Vec<String>,
}

/// The store in force for a file, replaced by [`Self::reload`] only with a file that validates.
#[derive(Debug)]
pub struct TrustHandle {
    path: PathBuf,
    current: RwLock<Arc<TrustStore>>,
    /// What the file was at the last reload attempt (length, modification time), so the watcher
    /// reloads only on change.
    seen: std::sync::Mutex<Option<(u64, std::time::SystemTime)>>,
}

impl TrustHandle {
    /// Loads `path`; an invalid file is an error here (a service does not start on it).
    pub fn open(path: &Path) -> Result<Self, TrustError> {
        let store = TrustStore::load(path)?;
        let handle =
            Self { path: path.to_owned(), current: RwLock::new(Arc::new(store)), seen: Default::default() };
        *handle.seen.lock().unwrap_or_else(|e| e.into_inner()) = stamp(path);
        Ok(handle)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store in force.
    pub fn current(&self) -> Arc<TrustStore> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the file again: in force if it validates (unchanged issuers keep their caches),
    /// refused with the reason otherwise — the store in force stays.
    pub fn reload(&self) -> Result<ReloadOutcome, TrustError> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = stamp(&self.path);
        let previous = self.current();
        let next = match read(&self.path).and_then(|file| TrustStore::build(file, Some(&previous))) {
            Ok(next) => next,
            Err(e) => {
                metrics::counter!(RELOADS, "outcome" => "refused").increment(1);
                tracing::warn!(path = %self.path.display(), error = %e, "trust store reload refused; the previous one stays in force");
                return Err(e);
            }
        };
        let mut outcome = ReloadOutcome::default();
        for (issuer, trusted) in &next.issuers {
            match previous.issuers.get(issuer) {
                Some(old) if Arc::ptr_eq(old, trusted) => outcome.kept.push(issuer.clone()),
                _ => outcome.loaded.push(issuer.clone()),
            }
        }
        outcome.removed =
            previous.issuers.keys().filter(|i| !next.issuers.contains_key(*i)).cloned().collect();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        metrics::counter!(RELOADS, "outcome" => "ok").increment(1);
        tracing::info!(path = %self.path.display(), kept = outcome.kept.len(), loaded = outcome.loaded.len(), removed = outcome.removed.len(), "trust store reloaded");
        Ok(outcome)
    }

    /// Whether the file changed since the last reload (length or modification time).
    fn changed(&self) -> bool {
        stamp(&self.path) != *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads when the file changes (checked every `every`; a change is reloaded once the file
    /// looks the same on two checks in a row, so a half-written file is not read) and on
    /// SIGHUP. Ends when the handle is dropped elsewhere.
    pub fn spawn_watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut pending: Option<Option<(u64, std::time::SystemTime)>> = None;
            loop {
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let by_signal = tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = hangup => true,
                };
                let Some(handle) = weak.upgrade() else { return };
                if by_signal {
                    pending = None;
                    let _ = handle.reload();
                    continue;
                }
                if !handle.changed() {
                    pending = None;
                    continue;
                }
                let now = stamp(&handle.path);
                if pending == Some(now) {
                    pending = None;
                    let _ = handle.reload();
                } else {
                    pending = Some(now);
                }
            }
        })
    }
}

fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
