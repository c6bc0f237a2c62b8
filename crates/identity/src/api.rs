//! The HTTP endpoints: discovery, JWKS, token, introspection, revocation.
//!
//! OAuth endpoints answer errors the OAuth way (RFC 6749 §5.2: `{"error", "error_description"}`
//! with `Cache-Control: no-store`), not as problem+json: OAuth clients parse exactly that.

use std::collections::HashMap;
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

use crate::signing::SigningKeys;
use crate::store::{Store, StoredClient, now};
use crate::tokens::{ACCESS_TOKEN_TYP, AccessClaims, verify_own};

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
    /// Failure limit and PBKDF2 slots for client authentication.
    pub throttle: Arc<service_kit::throttle::LoginThrottle>,
    /// Access token lifetime, seconds.
    pub access_ttl: i64,
}

/// The router (mounted with `service_kit::server::start`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .with_state(state)
}

/// Discovery: exactly what is implemented, nothing more.
async fn discovery(State(s): State<AppState>) -> Json<serde_json::Value> {
    let i = &s.issuer;
    Json(serde_json::json!({
        "issuer": i,
        "jwks_uri": format!("{i}/jwks"),
        "token_endpoint": format!("{i}/token"),
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "id_token_signing_alg_values_supported": ["ES256"],
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
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), basic_challenge: false }
    }
    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    fn invalid_client(basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed".into(),
            basic_challenge: basic,
        }
    }
    fn server_error() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error; see the server log")
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

/// Parses an `application/x-www-form-urlencoded` body; a parameter given twice is an error
/// (RFC 6749 §3.1).
fn form(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, OAuthError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("send parameters as application/x-www-form-urlencoded"));
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| OAuthError::invalid_request("malformed form body"))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if out.insert(k.clone(), v).is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {k:?} given more than once")));
        }
    }
    Ok(out)
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
async fn authenticate_client(
    s: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
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
        (None, None) => return Err(OAuthError::invalid_client(false)),
    };
    let secret = SecretString::from(secret);
    if let Some(client) = s.clients.get(&id, &secret) {
        return Ok(client);
    }
    let attempt = s.throttle.begin(&id).map_err(|r| throttled(r, used_basic))?;
    let result = verify_client(s, &id, &secret, used_basic).await;
    s.throttle.finish(attempt, result.is_ok());
    result
}

fn throttled(r: service_kit::throttle::Refused, basic: bool) -> OAuthError {
    match r {
        // Locked out: answer like a bad secret (the lockout says nothing about the client).
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
    let _slot = s.throttle.slot().await.map_err(|r| throttled(r, used_basic))?;
    if let Some(client) = s.clients.get(id, secret) {
        return Ok(client);
    }
    let client = s.store.client(id).await.map_err(|e| {
        tracing::error!(error = %e, "client lookup failed");
        OAuthError::server_error()
    })?;
    let hash = client
        .as_ref()
        .and_then(|c| c.secret_hash.as_deref())
        .and_then(|h| PasswordHashString::parse(h).ok());
    let attempt = secret.clone();
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => hash.verify(&attempt),
        None => {
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

/// `POST /token`.
async fn token(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    let params = form(&headers, &body)?;
    let grant =
        params.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    if grant != "client_credentials" {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant type {grant:?} is not supported here"),
        ));
    }
    let client = authenticate_client(&s, &headers, &params).await?;
    if !client.grant_types.iter().any(|g| g == "client_credentials") {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "this client may not use client_credentials",
        ));
    }
    let scopes: Vec<String> = match params.get("scope") {
        Some(requested) => {
            let requested: Vec<String> =
                requested.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect();
            if let Some(bad) = requested.iter().find(|r| !client.scopes.contains(r)) {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("scope {bad:?} is not allowed for this client"),
                ));
            }
            requested
        }
        None => client.scopes.clone(),
    };
    let audience = match params.get("resource").or_else(|| params.get("audience")) {
        Some(r) if client.audiences.contains(r) => r.clone(),
        Some(r) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                format!("resource {r:?} is not allowed for this client"),
            ));
        }
        None => client.audiences.first().cloned().ok_or_else(|| {
            OAuthError::invalid_request("this client has no audience; ask for a resource it may use")
        })?,
    };
    let now = now();
    let claims = AccessClaims {
        iss: s.issuer.clone(),
        sub: client.client_id.clone(),
        aud: audience,
        exp: now + s.access_ttl,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client.client_id.clone(),
        scope: scopes.join(" "),
        tenant_id: client.tenant_id.clone(),
        roles: client.roles.clone(),
    };
    let jwt = s.keys.sign(ACCESS_TOKEN_TYP, &claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthError::server_error()
    })?;
    let mut response = Json(serde_json::json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": s.access_ttl,
        "scope": claims.scope,
    }))
    .into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `POST /introspect` (RFC 7662): any authenticated confidential client may ask.
async fn introspect(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = form(&headers, &body)?;
    authenticate_client(&s, &headers, &params).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let inactive = || Json(serde_json::json!({ "active": false })).into_response();
    let Some(claims) = verify_own(&s.keys, &s.issuer, token) else { return Ok(inactive()) };
    match s.store.is_revoked(&claims.jti).await {
        Ok(false) => {}
        Ok(true) => return Ok(inactive()),
        Err(e) => {
            tracing::error!(error = %e, "revocation lookup failed");
            return Err(OAuthError::server_error());
        }
    }
    Ok(Json(serde_json::json!({
        "active": true,
        "iss": claims.iss, "sub": claims.sub, "aud": claims.aud, "exp": claims.exp, "iat": claims.iat,
        "nbf": claims.nbf, "jti": claims.jti, "client_id": claims.client_id, "scope": claims.scope,
        "token_type": "Bearer", "tenant_id": claims.tenant_id, "roles": claims.roles,
    }))
    .into_response())
}

/// `POST /revoke` (RFC 7009): a client may revoke the tokens issued to it. Answers 200 for
/// tokens that are invalid or unknown too, as the RFC asks.
async fn revoke(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    let params = form(&headers, &body)?;
    let client = authenticate_client(&s, &headers, &params).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    if let Some(claims) = verify_own(&s.keys, &s.issuer, token)
        && claims.client_id == client.client_id
        && let Err(e) = s.store.revoke(&claims.jti, claims.exp).await
    {
        tracing::error!(error = %e, "revocation failed");
        return Err(OAuthError::server_error());
    }
    Ok(StatusCode::OK.into_response())
}
