//! The Bearer realm: Identity's RFC 9068 access tokens, validated locally through the
//! `jwks-cache` crate (signature with the algorithm pinned by configuration, `iss`, `aud`,
//! `exp`, `nbf` with a small leeway, `typ: at+jwt`) and, if configured, confirmed by
//! introspection.
//!
//! Mapping to a [`Principal`]: the tenant is the token's `tenant_id` (required); the effective
//! scopes are the token's `scope` **intersected** with what its `roles` allow, both closed under
//! the hierarchy — a client granted `kms:decrypt` whose role is `auditor` still cannot decrypt.
//!
//! Transaction tokens (`typ: txntoken+jwt`, from Identity's token exchange), where configured:
//! the same keys and checks, the trust domain as audience, a `txn` and a short lifetime
//! required; the principal carries the `txn`, which the API logs with the operation.
//!
//! Introspection: concurrent requests with the same token share one call (a per-token
//! single-flight), and answers are kept briefly (`cache_ttl`), or for `interval` in interval
//! mode; "inactive" is kept until the token would expire anyway. Fails closed: if Identity
//! cannot be asked, the request gets 503, never a pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jwks_cache::{Algorithm, ProviderConfig, TrustRoots, Validator, ValidatorConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::authz::{Principal, Role};
use crate::config::{BearerConfig, ErrorDetail, IntrospectionConfig, IntrospectionMode};
use crate::model::TenantId;

/// The Bearer realm could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerSetupError {
    /// The JWKS cache refused the configuration.
    #[error("the Bearer realm's JWKS settings are unusable")]
    Jwks(#[source] jwks_cache::ConfigError),
    /// The client secret file for Identity (introspection, API keys) is unusable.
    #[error("cannot read the client secret for Identity")]
    Secret(#[source] service_kit::secret::SecretFileError),
    /// The HTTPS client for Identity (introspection, API keys) could not be built.
    #[error("cannot build the client for Identity: {0}")]
    Client(String),
    /// The trust store's file (`auth.bearer.trust_file`) is unreadable or invalid.
    #[error("cannot load the trust store")]
    Trust(#[source] trust_store::TrustError),
}

/// Why a Bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerDenied {
    /// Not valid (the reason, for detailed error bodies).
    Invalid(String),
    /// Identity's keys or introspection could not be reached: 503.
    Unavailable,
    /// A valid token of a trusted issuer naming a tenant it is not the authority for: 403
    /// (the reason, for detailed error bodies).
    NotAuthority(String),
}

/// An asymmetric JOSE algorithm name, as pinned in configuration.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    jwks_cache::algorithm_by_name(name)
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    txn: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    exp: i64,
}

/// The realm.
pub struct BearerRealm {
    validator: Validator,
    /// Transaction tokens: the same keys, the trust domain's audience; their longest lifetime.
    txn: Option<(Validator, i64)>,
    introspection: Option<Introspector>,
    detail: ErrorDetail,
    /// Other issuers, each the authority for some tenants.
    trust: Option<Arc<trust_store::TrustHandle>>,
    /// Identity's issuer (its tokens never go to the trust store).
    issuer: String,
    /// Identity's API keys, when configured.
    api_keys: Option<crate::apikey::ApiKeyRealm>,
}

/// The `typ` of transaction tokens.
const TXN_TOKEN_TYP: &str = "txntoken+jwt";

impl std::fmt::Debug for BearerRealm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerRealm").field("issuer", &self.validator.issuer()).finish_non_exhaustive()
    }
}

impl BearerRealm {
    /// Builds the realm (no network yet).
    pub fn new(config: &BearerConfig) -> Result<Self, BearerSetupError> {
        let mut provider = ProviderConfig::new(config.issuer.clone(), config.jwks_url.clone());
        provider.trust = TrustRoots::from_pem_file(&config.ca_file).map_err(BearerSetupError::Jwks)?;
        provider.tls13_only = true;
        provider.resolve = config.resolve.iter().map(|(h, a)| (h.clone(), *a)).collect();
        // Identity publishes the next key before signing with it; a short TTL still picks up
        // an emergency rotation promptly.
        provider.max_ttl = Duration::from_secs(300);
        let provider = jwks_cache::Provider::new(provider).map_err(BearerSetupError::Jwks)?;
        let algorithms: Vec<Algorithm> =
            config.algorithms.iter().filter_map(|a| parse_algorithm(a)).collect();
        let mut settings =
            ValidatorConfig::new([config.audience.clone()], &algorithms).with_required_typ("at+jwt");
        settings.leeway = config.leeway;
        let txn = match &config.transaction_tokens {
            None => None,
            Some(t) => {
                let mut txn_settings = ValidatorConfig::new([t.trust_domain.clone()], &algorithms)
                    .with_required_typ(TXN_TOKEN_TYP);
                txn_settings.leeway = config.leeway;
                let longest = i64::try_from(t.max_lifetime.as_secs()).unwrap_or(i64::MAX);
                Some((
                    Validator::new(provider.clone(), txn_settings).map_err(BearerSetupError::Jwks)?,
                    longest,
                ))
            }
        };
        let validator = Validator::new(provider, settings).map_err(BearerSetupError::Jwks)?;
        let introspection = config
            .introspection
            .as_ref()
            .map(|i| Introspector::new(i, &config.ca_file, &config.resolve))
            .transpose()?;
        let trust = config
            .trust_file
            .as_deref()
            .map(|path| trust_store::TrustHandle::open(path).map(Arc::new))
            .transpose()
            .map_err(BearerSetupError::Trust)?;
        let api_keys = config
            .api_keys
            .as_ref()
            .map(|k| crate::apikey::ApiKeyRealm::new(k, &config.ca_file, &config.resolve))
            .transpose()?;
        Ok(Self {
            validator,
            txn,
            introspection,
            detail: config.error_detail,
            trust,
            issuer: config.issuer.clone(),
            api_keys,
        })
    }

    /// The JWKS provider (readiness waits for its first fetch; a background task refreshes it).
    pub fn provider(&self) -> &jwks_cache::Provider {
        self.validator.provider()
    }

    /// The trust store, when configured (the service watches it).
    pub fn trust(&self) -> Option<&Arc<trust_store::TrustHandle>> {
        self.trust.as_ref()
    }

    /// The API-key realm, when configured.
    pub fn api_keys(&self) -> Option<&crate::apikey::ApiKeyRealm> {
        self.api_keys.as_ref()
    }

    /// How much 401 bodies say.
    pub fn detail(&self) -> ErrorDetail {
        self.detail
    }

    /// Authenticates a Bearer token. `sensitive` marks operations that release or create
    /// secrets (introspected in `sensitive` mode).
    pub async fn authenticate(&self, token: &str, sensitive: bool) -> Result<Principal, BearerDenied> {
        if let Some((validator, longest)) = &self.txn
            && header_typ(token).as_deref() == Some(TXN_TOKEN_TYP)
        {
            return transaction(validator, *longest, token).await;
        }
        if let Some(trust) = &self.trust
            && let Some(iss) = trust_store::unverified_issuer(token).filter(|iss| *iss != self.issuer)
        {
            let store = trust.current();
            if store.knows(&iss) {
                return federated(&store, token).await;
            }
            return Err(BearerDenied::Invalid("untrusted_issuer".into()));
        }
        let claims: Claims = self.validator.validate_as(token).await.map_err(denied)?;
        if let Some(introspector) = &self.introspection
            && introspector.applies(sensitive)
        {
            let key = claims.jti.clone().unwrap_or_else(|| token.to_owned());
            if !introspector.active(&key, token, claims.exp).await? {
                return Err(BearerDenied::Invalid("revoked".into()));
            }
        }
        principal(&claims)
    }
}

fn denied(e: jwks_cache::ValidationError) -> BearerDenied {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "Identity's keys are unavailable");
        BearerDenied::Unavailable
    } else {
        BearerDenied::Invalid(e.kind().as_str().to_owned())
    }
}

/// The `typ` of a JWT's header, read without verifying anything (it only picks the validator,
/// which checks it again).
fn header_typ(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("typ")?.as_str().map(str::to_owned)
}

/// A transaction token: the signature, issuer, trust domain and expiry as for access tokens,
/// then a `txn` and a lifetime no longer than `longest`. Not introspected: Identity does not
/// record transaction tokens, and they live seconds.
async fn transaction(validator: &Validator, longest: i64, token: &str) -> Result<Principal, BearerDenied> {
    let claims: Claims = validator.validate_as(token).await.map_err(denied)?;
    let txn = claims
        .txn
        .clone()
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(|| BearerDenied::Invalid("a transaction token without txn".into()))?;
    let iat = claims.iat.ok_or_else(|| BearerDenied::Invalid("a transaction token without iat".into()))?;
    if claims.exp - iat > longest {
        return Err(BearerDenied::Invalid(format!(
            "a transaction token living {} s, longer than the {longest} s allowed",
            claims.exp - iat
        )));
    }
    let mut principal = principal(&claims)?;
    principal.txn = Some(txn);
    Ok(principal)
}

/// A token of another issuer in the trust store: verified there (keys, `aud`, `typ`, and the
/// tenant it names must be one its issuer is authority for), then mapped like Identity's.
async fn federated(store: &trust_store::TrustStore, token: &str) -> Result<Principal, BearerDenied> {
    use trust_store::Refusal;
    let verified = store.verify(token).await.map_err(|refusal| match refusal {
        Refusal::NotAuthority { .. } => BearerDenied::NotAuthority(refusal.to_string()),
        Refusal::Unavailable(why) => {
            tracing::warn!(reason = %why, "a trusted issuer's keys are unavailable");
            BearerDenied::Unavailable
        }
        other => BearerDenied::Invalid(other.to_string()),
    })?;
    let claims: Claims = serde_json::from_value(verified.claims)
        .map_err(|_| BearerDenied::Invalid("the token's claims do not have the expected shape".into()))?;
    tracing::info!(issuer = %verified.issuer, subject = %claims.sub, tenant = %verified.tenant.canonical(), "token of a trusted issuer");
    principal(&claims)
}

fn principal(claims: &Claims) -> Result<Principal, BearerDenied> {
    let tenant = claims
        .tenant_id
        .as_deref()
        .and_then(|t| t.parse::<uuid::Uuid>().ok())
        .map(TenantId)
        .ok_or_else(|| BearerDenied::Invalid("tenant_id is missing or not a UUID".into()))?;
    let roles: BTreeSet<Role> = claims
        .roles
        .iter()
        .filter_map(|r| serde_json::from_value(serde_json::Value::String(r.clone())).ok())
        .collect();
    // Scope ∩ roles; a word `scope@pool:NAME` (a token exchanged for an API key) holds in that
    // pool only.
    let (effective, pool_scopes) = crate::authz::permitted(claims.scope.split(' '), &roles);
    Ok(Principal {
        subject: claims.sub.clone(),
        tenant,
        roles,
        scopes: effective,
        method: crate::authz::AuthMethod::Bearer,
        txn: None,
        pool_scopes,
        actor: None,
    })
}

/// The HTTPS client for Identity's endpoints (introspection, API key verification): TLS with
/// `ca_file` only, `resolve`'s host mappings, 5 s, no redirects.
pub(crate) fn identity_client(
    ca_file: &std::path::Path,
    resolve: &std::collections::BTreeMap<String, std::net::SocketAddr>,
) -> Result<reqwest::Client, BearerSetupError> {
    let tls = pki::ClientTlsFiles::trusting(ca_file)
        .build()
        .map_err(|e| BearerSetupError::Client(e.to_string()))?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none());
    for (host, addr) in resolve {
        builder = builder.resolve(host, *addr);
    }
    builder.build().map_err(|e| BearerSetupError::Client(e.to_string()))
}

/// Asks Identity (RFC 7662) whether tokens are still active.
struct Introspector {
    client: reqwest::Client,
    endpoint: String,
    client_id: String,
    secret: SecretString,
    mode: IntrospectionMode,
    positive_ttl: Duration,
    /// key → (active, until).
    answers: Mutex<HashMap<String, (bool, Instant)>>,
    /// key → the call in flight, shared by concurrent requests.
    in_flight: Mutex<HashMap<String, Arc<OnceCell<bool>>>>,
}

const MAX_ANSWERS: usize = 10_000;

struct InFlightGuard<'a> {
    map: &'a Mutex<HashMap<String, Arc<OnceCell<bool>>>>,
    key: &'a str,
    cell: &'a Arc<OnceCell<bool>>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(self.key).is_some_and(|c| Arc::ptr_eq(c, self.cell)) {
            map.remove(self.key);
        }
    }
}

impl Introspector {
    fn new(
        config: &IntrospectionConfig,
        ca_file: &std::path::Path,
        resolve: &std::collections::BTreeMap<String, std::net::SocketAddr>,
    ) -> Result<Self, BearerSetupError> {
        let secret = service_kit::secret::read_secret_file(&config.client_secret_file)
            .map_err(BearerSetupError::Secret)?;
        let client = identity_client(ca_file, resolve)?;
        let positive_ttl = match config.mode {
            IntrospectionMode::Interval => config.interval,
            _ => config.cache_ttl,
        };
        Ok(Self {
            client,
            endpoint: config.endpoint.clone(),
            client_id: config.client_id.clone(),
            secret,
            mode: config.mode,
            positive_ttl,
            answers: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    fn applies(&self, sensitive: bool) -> bool {
        self.mode != IntrospectionMode::Sensitive || sensitive
    }

    async fn active(&self, key: &str, token: &str, exp: i64) -> Result<bool, BearerDenied> {
        let now = Instant::now();
        if let Some((active, until)) =
            self.answers.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied()
            && until > now
        {
            return Ok(active);
        }
        let cell = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if in_flight.len() >= MAX_ANSWERS && !in_flight.contains_key(key) {
                // Ten thousand distinct tokens being introspected at once: shed load, fail closed.
                return Err(BearerDenied::Unavailable);
            }
            in_flight.entry(key.to_owned()).or_insert_with(|| Arc::new(OnceCell::new())).clone()
        };
        // Removes this request's entry however the request ends (answered, failed, or cancelled
        // mid-call), and only if it is still this cell: a newer call's entry stays.
        let _guard = InFlightGuard { map: &self.in_flight, key, cell: &cell };
        let active = cell.get_or_try_init(|| self.ask(token)).await.copied()?;
        let remaining = u64::try_from(exp - time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        let ttl = if active {
            self.positive_ttl.min(Duration::from_secs(remaining))
        } else {
            Duration::from_secs(remaining)
        };
        if !ttl.is_zero() {
            let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
            if answers.len() >= MAX_ANSWERS {
                // Amortised: drop what expired and, if still nine-tenths full, an arbitrary tenth,
                // so a flood of tokens can neither grow the map nor turn the cache off.
                answers.retain(|_, (_, until)| *until > now);
                if answers.len() >= MAX_ANSWERS * 9 / 10 {
                    let victims: Vec<String> = answers.keys().take(MAX_ANSWERS / 10).cloned().collect();
                    for victim in victims {
                        answers.remove(&victim);
                    }
                }
            }
            answers.insert(key.to_owned(), (active, Instant::now() + ttl));
        }
        Ok(active)
    }

    async fn ask(&self, token: &str) -> Result<bool, BearerDenied> {
        let resp = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.client_id, Some(self.secret.expose_secret()))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "introspection failed");
                BearerDenied::Unavailable
            })?;
        if !resp.status().is_success() {
            tracing::warn!(status = %resp.status(), "introspection refused");
            return Err(BearerDenied::Unavailable);
        }
        let body: serde_json::Value = resp.json().await.map_err(|_| BearerDenied::Unavailable)?;
        Ok(body["active"] == true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Scope;

    fn claims(scope: &str, roles: &[&str]) -> Claims {
        Claims {
            sub: "s".into(),
            txn: None,
            iat: None,
            scope: scope.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            tenant_id: Some("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10".into()),
            jti: None,
            exp: 0,
        }
    }

    #[test]
    fn scopes_are_the_token_s_intersected_with_the_roles() {
        let p = principal(&claims("openid kms:encrypt kms:decrypt", &["service"])).unwrap();
        assert!(p.scopes.has(Scope::Encrypt) && p.scopes.has(Scope::Decrypt));
        assert!(!p.scopes.has(Scope::Sign), "not granted by the token");
        let p = principal(&claims("kms:decrypt kms:read", &["auditor"])).unwrap();
        assert!(!p.scopes.has(Scope::Decrypt), "the role does not allow it");
        assert!(p.scopes.has(Scope::Read));
        let p = principal(&claims("kms:admin", &["no-such-role"])).unwrap();
        assert_eq!(p.scopes.iter().count(), 0, "no known role, no scope");
    }

    #[test]
    fn a_token_without_a_tenant_is_refused() {
        let mut c = claims("kms:read", &["user"]);
        c.tenant_id = None;
        assert!(matches!(principal(&c), Err(BearerDenied::Invalid(_))));
        c.tenant_id = Some("acme".into());
        assert!(matches!(principal(&c), Err(BearerDenied::Invalid(_))));
    }
}
