//! The HTTP surface: the router, shared state, discovery, JWKS, client authentication,
//! introspection, revocation and userinfo. The token endpoint lives in `token`, the browser
//! endpoints (authorize, end-session) in `authorize`.
//!
//! OAuth endpoints answer errors the OAuth way (RFC 6749 §5.2: `{"error", "error_description"}`
//! with `Cache-Control: no-store`), not as problem+json: OAuth clients parse exactly that.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use secrecy::SecretString;
use service_kit::credcache::CredentialCache;
use service_kit::password::{self, PasswordHashString};
use service_kit::problem::Passthrough;
use service_kit::throttle::{Admitted, PeerAddr};

use crate::signing::SigningKeys;
use crate::store::{RefreshToken, Store, StoreError, StoredClient, TenantKey, now};
use crate::tokens::{AccessClaims, opaque_hash, verify_own};
use crate::{authorize, token};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The issuer URL.
    pub issuer: String,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Signing keys.
    pub keys: Arc<SigningKeys>,
    /// Verified client secrets.
    pub clients: Arc<CredentialCache<StoredClient>>,
    /// Failure budgets (per client id and address), ceiling and PBKDF2 slots for client
    /// authentication.
    pub throttle: Arc<service_kit::throttle::LoginThrottle>,
    /// Failure budgets (per username and address), ceiling and PBKDF2 slots for user sign-in.
    pub logins: Arc<service_kit::throttle::LoginThrottle>,
    /// Lifetimes.
    pub ttl: Lifetimes,
    /// Scope descriptions and tenant names for the consent page.
    pub consent: Arc<crate::consent::ConsentText>,
    /// Who may exchange what (token exchange, transaction tokens).
    pub exchange: Arc<crate::exchange::ExchangePolicy>,
    /// Other issuers whose tokens may be exchanged (`token_exchange.trust_file`).
    pub trust: Option<Arc<trust_store::TrustHandle>>,
    /// Our access tokens whose signature was verified (keyed by an HMAC of the token), so that
    /// introspection, userinfo and token exchange verify each token once a minute at most.
    pub verified: Arc<CredentialCache<Arc<AccessClaims>>>,
    /// API keys: the MAC key and the settings.
    pub api_keys: Arc<crate::apikeys::ApiKeys>,
}

/// One of our access tokens, verified ([`verify_own`]) or found verified in the last minute;
/// `None` when it is not ours, not valid or expired (checked on every call, with no leeway).
/// Whether it was revoked is the caller's question: it is asked on every use.
pub(crate) fn verified_access(s: &AppState, token: &str) -> Option<Arc<AccessClaims>> {
    // Only the name matters to the cache's key: one namespace for access tokens.
    const NAME: &str = "access_token";
    let key = SecretString::from(token.to_owned());
    let claims = match s.verified.get(NAME, &key) {
        Some(claims) => claims,
        None => {
            let claims = Arc::new(verify_own(&s.keys, &s.issuer, token)?);
            s.verified.insert(NAME, &key, claims.clone());
            claims
        }
    };
    (now() <= claims.exp).then_some(claims)
}

/// Token and session lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access and ID tokens.
    pub access: i64,
    /// Authorization codes.
    pub code: i64,
    /// Refresh tokens.
    pub refresh: i64,
    /// A refresh token family, absolute.
    pub refresh_family: i64,
    /// Browser sessions.
    pub session: i64,
}

impl From<&crate::config::Tokens> for Lifetimes {
    fn from(t: &crate::config::Tokens) -> Self {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            access: secs(t.access_ttl),
            code: secs(t.code_ttl),
            refresh: secs(t.refresh_ttl),
            refresh_family: secs(t.refresh_family_ttl),
            session: secs(t.session_ttl),
        }
    }
}

/// The router (mounted with `service_kit::server::start`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize::authorize_get).post(authorize::authorize_post))
        .route("/token", post(token::token))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/userinfo", get(userinfo).post(userinfo))
        .route("/end_session", get(authorize::end_session_get).post(authorize::end_session_post))
        .route("/api/v1/api-keys", get(crate::apikeys::list).post(crate::apikeys::create))
        .route("/api/v1/api-keys/verify", post(crate::apikeys::verify_endpoint))
        .route("/api/v1/api-keys/{id}", axum::routing::delete(crate::apikeys::delete))
        .route("/api/v1/api-keys/{id}/rotate", post(crate::apikeys::rotate))
        .route("/api/v1/api-keys/{id}/restore", post(crate::apikeys::restore))
        .with_state(state)
}

/// Discovery: exactly what is implemented, nothing more.
async fn discovery(State(s): State<AppState>) -> Json<serde_json::Value> {
    let i = &s.issuer;
    let mut grants = vec!["authorization_code", "client_credentials", "refresh_token"];
    if s.exchange.enabled() || !s.api_keys.config.token_audiences.is_empty() {
        grants.push(crate::exchange::GRANT_TYPE);
    }
    Json(serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "end_session_endpoint": format!("{i}/end_session"),
        "jwks_uri": format!("{i}/jwks"),
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "scopes_supported": ["openid", "profile", "email"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["login", "consent"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp",
                             "name", "preferred_username", "email", "tenant_id", "roles"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}

async fn jwks(State(s): State<AppState>) -> Response {
    let mut response = Json(s.keys.jwks()).into_response();
    // Short, so relying parties pick up a rotation's next key promptly.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    pub(crate) fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), basic_challenge: false }
    }
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    fn invalid_client(basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed".into(),
            basic_challenge: basic,
        }
    }
    pub(crate) fn server_error() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error; see the server log")
    }
    /// A storage failure, logged here: while the database is unavailable 503
    /// `temporarily_unavailable` (the OAuth error shape, as every answer of these endpoints;
    /// the client may retry, and `readyz` names the `database`), otherwise 500 `server_error`.
    pub(crate) fn store(e: StoreError, what: &'static str) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, what, "database unavailable");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the database is unavailable; retry shortly",
            )
        } else {
            tracing::error!(error = %e, what, "storage failed");
            Self::server_error()
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.error, "error_description": self.description }));
        let mut response = (self.status, axum::Extension(Passthrough), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.basic_challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="identity""#));
        }
        response
    }
}

/// Parses `application/x-www-form-urlencoded` text (a body or a query); a parameter given twice
/// is an error (RFC 6749 §3.1), and so is an empty value (treated as absent by nobody here).
pub(crate) fn params(bytes: &[u8]) -> Result<HashMap<String, String>, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|_| "malformed form parameters".to_owned())?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if v.is_empty() {
            continue;
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(format!("parameter {k:?} given more than once"));
        }
    }
    Ok(out)
}

/// Whether the request body is a form.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
}

/// A form body for the OAuth endpoints.
pub(crate) fn form(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, OAuthError> {
    if !is_form(headers) {
        return Err(OAuthError::invalid_request("send parameters as application/x-www-form-urlencoded"));
    }
    params(body).map_err(OAuthError::invalid_request)
}

/// Whether public clients (no secret, `client_id` only) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Public {
    /// Token endpoint (code and refresh grants) and revocation.
    Allowed,
    /// Introspection: confidential clients only.
    Refused,
}

/// Decodes one `client_secret_basic` component (form-urlencoded, RFC 6749 §2.3.1).
fn form_decode(part: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={part}")).ok()?;
    match pairs.as_slice() {
        [(_, v)] => Some(v.clone()),
        _ => None,
    }
}

/// Authenticates a confidential client by `client_secret_basic` or `client_secret_post` (one,
/// not both). PBKDF2 on a miss runs on the blocking pool; successes are cached.
pub(crate) async fn authenticate_client(
    s: &AppState,
    from: IpAddr,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    public: Public,
) -> Result<StoredClient, OAuthError> {
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let (id, secret, used_basic) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("use one client authentication method, not two"));
        }
        (Some(value), None) => {
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(true));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(OAuthError::invalid_client(true))?;
            let (id, secret) = decoded.split_once(':').ok_or(OAuthError::invalid_client(true))?;
            let id = form_decode(id).ok_or(OAuthError::invalid_client(true))?;
            let secret = form_decode(secret).ok_or(OAuthError::invalid_client(true))?;
            if params.get("client_id").is_some_and(|p| *p != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, secret, true)
        }
        (None, Some(secret)) => {
            let id =
                params.get("client_id").ok_or_else(|| OAuthError::invalid_request("client_id is missing"))?;
            (id.clone(), secret.clone(), false)
        }
        (None, None) => {
            // A public client names itself and proves nothing: only allowed where PKCE or the
            // token itself binds the request (code and refresh grants, revocation).
            let Some(id) = params.get("client_id") else { return Err(OAuthError::invalid_client(false)) };
            let client = s.store.client(id).await.map_err(|e| OAuthError::store(e, "client lookup"))?;
            return match client {
                Some(c) if !c.confidential && public == Public::Allowed => Ok(c),
                _ => Err(OAuthError::invalid_client(false)),
            };
        }
    };
    let secret = SecretString::from(secret);
    let attempt = match s.throttle.begin_or_wait(&id, from, || s.clients.get(&id, &secret)).await {
        Ok(Admitted::Ready(client)) => return Ok(client),
        Ok(Admitted::Attempt(attempt)) => attempt,
        Err(r) => return Err(throttled(r, used_basic)),
    };
    let result = verify_client(s, &id, &secret, used_basic).await;
    match &result {
        // Busy or an internal error says nothing about the secret: released, not counted.
        Err(e) if e.error != "invalid_client" => drop(attempt),
        _ => attempt.finish(result.is_ok()),
    }
    result
}

pub(crate) fn throttled(r: service_kit::throttle::Refused, basic: bool) -> OAuthError {
    match r {
        // Locked (this address guessed too often, or everyone did): answer like a bad secret, as
        // RFC 6749 §5.2 has no better error, and the lock says nothing about the client.
        service_kit::throttle::Refused::Locked { .. } => OAuthError::invalid_client(basic),
        service_kit::throttle::Refused::Busy => OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many client authentications at once; retry shortly",
        ),
    }
}

async fn verify_client(
    s: &AppState,
    id: &str,
    secret: &SecretString,
    used_basic: bool,
) -> Result<StoredClient, OAuthError> {
    // Owned: it moves into the blocking task, so a cancelled request cannot free it early.
    let slot = s.throttle.slot().await.map_err(|r| throttled(r, used_basic))?;
    if let Some(client) = s.clients.get(id, secret) {
        return Ok(client);
    }
    let client = s.store.client(id).await.map_err(|e| OAuthError::store(e, "client lookup"))?;
    let hash = client
        .as_ref()
        .and_then(|c| c.secret_hash.as_deref())
        .and_then(|h| PasswordHashString::parse(h).ok());
    let attempt = secret.clone();
    let ok = tokio::task::spawn_blocking(move || match (hash, slot) {
        (Some(hash), _slot) => hash.verify(&attempt),
        (None, _slot) => {
            // Unknown client: spend the same time, reveal nothing.
            password::dummy_verify(&attempt);
            false
        }
    })
    .await
    .unwrap_or(false);
    match client {
        Some(client) if ok && client.confidential => {
            s.clients.insert(id, secret, client.clone());
            Ok(client)
        }
        _ => Err(OAuthError::invalid_client(used_basic)),
    }
}

/// `POST /introspect` (RFC 7662): any authenticated confidential client may ask.
async fn introspect(
    State(s): State<AppState>,
    PeerAddr(from): PeerAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = form(&headers, &body)?;
    let caller = authenticate_client(&s, from, &headers, &params, Public::Refused).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let answer = |body: serde_json::Value| {
        let mut response = Json(body).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    };
    let inactive = || answer(serde_json::json!({ "active": false }));
    let Some(claims) = verified_access(&s, token) else {
        // Refresh tokens are their client's business only (RFC 7662 §4): another client learns
        // nothing, not even that the token exists.
        return Ok(match refresh_token(&s, &caller, token).await? {
            Some(r)
                if r.client_id == caller.client_id
                    && r.used_at.is_none()
                    && !r.family_revoked
                    && r.expires_at >= now() =>
            {
                answer(serde_json::json!({
                    "active": true, "iss": s.issuer, "client_id": r.client_id, "sub": r.user_id,
                    "scope": r.scope, "exp": r.expires_at, "token_type": "refresh_token",
                }))
            }
            _ => inactive(),
        });
    };
    // The token's tenant is where its revocation would be recorded; a tenant id that does not
    // parse was never issued here.
    let Ok(tenant) = TenantKey::parse(&claims.tenant_id) else { return Ok(inactive()) };
    if s.store
        .is_revoked(&tenant, &claims.jti)
        .await
        .map_err(|e| OAuthError::store(e, "revocation lookup"))?
    {
        return Ok(inactive());
    }
    // A token an API key was exchanged for lives no longer than the key: deleted or expired,
    // its tokens are inactive too.
    if let Some(key_id) = claims.client_id.strip_prefix("api-key:") {
        let row =
            s.store.api_key(&tenant, key_id).await.map_err(|e| OAuthError::store(e, "API key lookup"))?;
        let now = now();
        if !row.is_some_and(|r| r.deleted_at.is_none() && r.expires_at.is_none_or(|exp| exp >= now)) {
            return Ok(inactive());
        }
    }
    Ok(answer(serde_json::json!({
        "active": true,
        "iss": claims.iss, "sub": claims.sub, "aud": claims.aud, "exp": claims.exp, "iat": claims.iat,
        "nbf": claims.nbf, "jti": claims.jti, "client_id": claims.client_id, "scope": claims.scope,
        "token_type": "Bearer", "tenant_id": claims.tenant_id, "roles": claims.roles,
    })))
}

/// `POST /revoke` (RFC 7009): a client may revoke the tokens issued to it. Answers 200 for
/// tokens that are invalid or unknown too, as the RFC asks.
async fn revoke(
    State(s): State<AppState>,
    PeerAddr(from): PeerAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = form(&headers, &body)?;
    let client = authenticate_client(&s, from, &headers, &params, Public::Allowed).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let failed = |e| OAuthError::store(e, "revocation");
    if let Some(claims) = verified_access(&s, token) {
        if claims.client_id == client.client_id
            && let Ok(tenant) = TenantKey::parse(&claims.tenant_id)
        {
            s.store.revoke(&tenant, &claims.jti, claims.exp).await.map_err(failed)?;
        }
    } else if let Some(r) = refresh_token(&s, &client, token).await?
        && r.client_id == client.client_id
    {
        // Revoking a refresh token ends its whole family (RFC 7009 §2.1 allows it; OAuth 2.1
        // asks for it).
        s.store.revoke_family(&client.tenant().map_err(failed)?, &r.family_id).await.map_err(failed)?;
    }
    Ok(StatusCode::OK.into_response())
}

/// A refresh token of `client`'s tenant (where the client's refresh tokens live).
async fn refresh_token(
    s: &AppState,
    client: &StoredClient,
    token: &str,
) -> Result<Option<RefreshToken>, OAuthError> {
    let failed = |e| OAuthError::store(e, "refresh token lookup");
    let tenant = client.tenant().map_err(failed)?;
    s.store.refresh(&tenant, &opaque_hash(token)).await.map_err(failed)
}

/// A Bearer-token error for userinfo (RFC 6750 §3).
fn bearer_error(status: StatusCode, challenge: &'static str) -> Response {
    let mut response = (status, axum::Extension(Passthrough)).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET|POST /userinfo` (OIDC Core §5.3): claims about the user an access token was issued for,
/// by the scopes it carries.
async fn userinfo(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token else {
        return bearer_error(StatusCode::UNAUTHORIZED, r#"Bearer realm="identity""#);
    };
    let invalid = || {
        bearer_error(
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="identity", error="invalid_token", error_description="the access token is invalid, expired or revoked""#,
        )
    };
    let Some(claims) = verified_access(&s, token) else { return invalid() };
    let Ok(tenant) = TenantKey::parse(&claims.tenant_id) else { return invalid() };
    match s.store.is_revoked(&tenant, &claims.jti).await {
        Ok(false) => {}
        Ok(true) => return invalid(),
        Err(e) => return OAuthError::store(e, "revocation lookup").into_response(),
    }
    let scopes: Vec<&str> = claims.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            r#"Bearer realm="identity", error="insufficient_scope", scope="openid""#,
        );
    }
    let user = match s.store.user(&tenant, &claims.sub).await {
        Ok(Some(user)) => user,
        Ok(None) => return invalid(),
        Err(e) => return OAuthError::store(e, "user lookup").into_response(),
    };
    let mut body =
        serde_json::json!({ "sub": user.user_id, "tenant_id": user.tenant_id, "roles": user.roles });
    if scopes.contains(&"profile") {
        body["name"] = user.name.into();
        body["preferred_username"] = user.username.into();
    }
    if scopes.contains(&"email") {
        body["email"] = user.email.into();
    }
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
