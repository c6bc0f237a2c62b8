//! The HTTP API under `/api/v1`. Handlers are small: authenticate (the [`Caller`] extractor),
//! check the scope, call [`Kms`] with the caller's tenant, shape the answer. Every error leaves
//! through [`ApiError`], which picks the status and the stable problem type. Request and
//! response bodies are the wire types of `kms_proto`, shared with the KMS's clients.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms_proto::formats;
use kms_proto::{
    CreatePool, CreateUser, DataKeyResponse, DecryptRequest, DecryptResponse, EncryptRequest,
    EncryptResponse, Jwk, Jwks, PoolInfo, ProblemDoc, SignRequest, SignResponse, UnwrapRequest,
    UnwrapResponse, UserInfo, VerifyRequest, VerifyResponse, WrapRequest, WrapResponse,
};
use secrecy::SecretString;
use service_kit::Problem;

use crate::authz::{Principal, Scope};
use crate::jose::{JoseError, Kid};
use crate::keys::{Kms, KmsError};
use crate::model::PoolName;
use crate::realm::{Authenticator, Denied};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The unsealed KMS.
    pub kms: Kms,
    /// Password authentication.
    pub auth: Arc<Authenticator>,
    /// Identity's Bearer tokens, when configured.
    pub bearer: Option<Arc<crate::bearer::BearerRealm>>,
}

/// The API router (mount it with `service_kit::server::start`, which adds the common layers):
/// the API under `/api/v1`, its OpenAPI document at `/api/v1/openapi.json`, and Swagger UI at
/// `/docs` (assets built in, nothing fetched: [`crate::swagger`]).
pub fn router(state: AppState) -> Router {
    // Serialised once: the document is fixed for the life of the binary.
    let openapi = axum::body::Bytes::from(crate::openapi::document().to_string());
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }),
        )
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/pools", get(list_pools).post(create_pool))
        .route("/api/v1/pools/{pool}", get(get_pool))
        .route("/api/v1/pools/{pool}/rotate", post(rotate))
        .route("/api/v1/pools/{pool}/versions/{version}/enable", post(enable))
        .route("/api/v1/pools/{pool}/versions/{version}/disable", post(disable))
        .route("/api/v1/pools/{pool}/versions/{version}/jwk", get(version_jwk))
        .route("/api/v1/pools/{pool}/encrypt", post(encrypt))
        .route("/api/v1/pools/{pool}/datakey", post(datakey))
        .route("/api/v1/pools/{pool}/sign", post(sign))
        .route("/api/v1/pools/{pool}/wrap", post(wrap))
        .route("/api/v1/decrypt", post(decrypt))
        .route("/api/v1/verify", post(verify))
        .route("/api/v1/unwrap", post(unwrap))
        .route("/api/v1/jwks", get(jwks))
        .route("/api/v1/users", post(create_user))
        .with_state(state)
        .layer(axum::middleware::from_fn(server_timing))
        .merge(crate::swagger::router())
}

/// Histogram: how long authentication took, by `realm` (`basic`, `bearer`, `api_key`) and
/// `outcome` (`ok`, `refused`): a password's PBKDF2, a token's signature and introspection, an
/// API key's verification at Identity — or a cache hit.
pub const AUTH_DURATION: &str = "kms_auth_duration_seconds";

/// The authentication time of this request, filled by the [`Caller`] extractor.
#[derive(Debug, Clone, Default)]
struct AuthTiming(Arc<std::sync::Mutex<Option<std::time::Duration>>>);

/// `Server-Timing` on every API response (W3C Server Timing): `auth` (the time spent proving
/// who the caller is) and `total` (the whole request, handler included), in milliseconds.
async fn server_timing(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let timing = AuthTiming::default();
    request.extensions_mut().insert(timing.clone());
    let mut response = next.run(request).await;
    let total = started.elapsed();
    let auth = *timing.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut value = String::new();
    if let Some(auth) = auth {
        value.push_str(&format!("auth;dur={:.3}, ", auth.as_secs_f64() * 1000.0));
    }
    value.push_str(&format!("total;dur={:.3}", total.as_secs_f64() * 1000.0));
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::HeaderName::from_static("server-timing"), v);
    }
    response
}

/// The OpenAPI 3.1 document, generated from the handlers below; [`crate::openapi::document`]
/// completes it (error responses, links) before it is served.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Demo KMS", description = "Versioned key pools per tenant, sealed at rest: JWE encryption, JWS signatures, AES key wrap, data keys. Every error is application/problem+json."),
    paths(whoami, list_pools, create_pool, get_pool, rotate, enable, disable, version_jwk, jwks, encrypt, datakey, decrypt, sign, verify, wrap, unwrap, create_user),
    components(schemas(ProblemDoc)),
    modifiers(&Security),
    security(("basic" = []), ("bearer" = [])),
    tags((name = "pools", description = "Pool and version management"), (name = "keys", description = "Key operations"), (name = "users", description = "Users of the database realm, in the caller's tenant"))
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".to_owned());
        bearer.description = Some(
            "Access tokens from Identity (accepted when the KMS has `auth.bearer` configured)".to_owned(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unusable credentials: 401 with `WWW-Authenticate`.
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    /// A Bearer token that is not valid: 401 with `WWW-Authenticate: Bearer error="invalid_token"`
    /// (the text is the reason in detailed mode, a fixed sentence in minimal mode).
    #[error("{0}")]
    InvalidToken(String),
    /// An API key that is not valid: 401 with `WWW-Authenticate: ApiKey` (the reason in
    /// detailed mode).
    #[error("{0}")]
    InvalidApiKey(String),
    /// Too many failed logins: 429 with `Retry-After`.
    #[error("too many failed logins; retry in {0} s")]
    Locked(u64),
    /// Authenticated, but without the scope: 403.
    #[error("this operation requires the scope {}", .0.as_str())]
    Forbidden(Scope),
    /// Authenticated and holding the scope, but the operation is not this caller's to do (the
    /// text says why): 403.
    #[error("{0}")]
    NotAllowed(String),
    /// Users cannot be created: no database realm is configured, so they could never sign in.
    #[error("users cannot be created here: the database realm is not configured (auth.realms)")]
    NoDatabaseRealm,
    /// Bad request body.
    #[error("{0}")]
    BadRequest(String),
    /// A realm could not be asked: 503.
    #[error("authentication is unavailable; retry shortly")]
    Unavailable,
    /// From the key service.
    #[error(transparent)]
    Kms(#[from] KmsError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        let (problem, extra): (Problem, Option<(header::HeaderName, String)>) = match &self {
            ApiError::Unauthenticated(_) => {
                let mut response =
                    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required")
                        .with_detail(detail)
                        .into_response();
                // Both schemes: Basic for accounts, Bearer for Identity's tokens.
                let h = response.headers_mut();
                h.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="kms", charset="UTF-8""#),
                );
                h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="kms""#));
                return response;
            }
            ApiError::InvalidToken(_) => (
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-token", "The access token is not valid")
                    .with_detail(detail),
                Some((header::WWW_AUTHENTICATE, r#"Bearer realm="kms", error="invalid_token""#.to_owned())),
            ),
            ApiError::InvalidApiKey(_) => (
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-api-key", "The API key is not valid")
                    .with_detail(detail),
                Some((header::WWW_AUTHENTICATE, r#"ApiKey realm="kms""#.to_owned())),
            ),
            ApiError::Locked(secs) => (
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-failed-logins",
                    "Too many failed logins",
                )
                .with_detail(detail),
                Some((header::RETRY_AFTER, secs.to_string())),
            ),
            ApiError::Forbidden(_) => {
                (Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed").with_detail(detail), None)
            }
            ApiError::NotAllowed(_) => {
                (Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed").with_detail(detail), None)
            }
            ApiError::NoDatabaseRealm => (
                Problem::new(
                    StatusCode::CONFLICT,
                    "no-database-realm",
                    "The database realm is not configured",
                )
                .with_detail(detail),
                None,
            ),
            ApiError::BadRequest(_) => (Problem::bad_request(detail), None),
            ApiError::Unavailable => {
                (Problem::unavailable(detail), Some((header::RETRY_AFTER, "1".to_owned())))
            }
            ApiError::Kms(e @ KmsError::Unavailable(_)) => {
                (kms_problem(e), Some((header::RETRY_AFTER, DATABASE_RETRY_AFTER.to_owned())))
            }
            ApiError::Kms(e) => (kms_problem(e), None),
        };
        let mut response = problem.into_response();
        if let Some((name, value)) = extra
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Seconds a client waits before retrying when the database is unavailable (`readyz` probes it
/// every second).
const DATABASE_RETRY_AFTER: &str = "2";

fn kms_problem(e: &KmsError) -> Problem {
    let detail = e.to_string();
    match e {
        KmsError::NotFound(_) => Problem::not_found().with_detail(detail),
        KmsError::Conflict(_) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "Already exists").with_detail(detail)
        }
        KmsError::Disabled(_) => {
            Problem::new(StatusCode::CONFLICT, "key-disabled", "The key version is disabled")
                .with_detail(detail)
        }
        // The request is well formed; the pool it names cannot do it (like a disabled key).
        KmsError::WrongAlgorithm { .. } => {
            Problem::new(StatusCode::CONFLICT, "wrong-algorithm", "The pool's algorithm does not do this")
                .with_detail(detail)
        }
        KmsError::Invalid(_) => Problem::bad_request(detail),
        KmsError::Jose(JoseError::Crypto(_)) => Problem::new(
            StatusCode::BAD_REQUEST,
            "crypto-check-failed",
            "The input does not decrypt or unwrap under the named key",
        )
        .with_detail(detail),
        KmsError::Jose(_) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-jose", "Malformed or unsupported JOSE object")
                .with_detail(detail)
        }
        KmsError::Unavailable(_) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(e), "database unavailable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "The database is unavailable",
            )
            .with_detail(detail)
        }
        KmsError::Unseal(_)
        | KmsError::Store(_)
        | KmsError::Corrupt(_)
        | KmsError::SealMissing
        | KmsError::Open(_)
        | KmsError::NoEngine => {
            tracing::error!(error = %e, source = ?std::error::Error::source(e), "key service failure");
            Problem::internal()
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let started = std::time::Instant::now();
        let (realm, outcome) = authenticate(parts, state).await;
        let took = started.elapsed();
        metrics::histogram!(AUTH_DURATION, "realm" => realm, "outcome" => if outcome.is_ok() { "ok" } else { "refused" })
            .record(took.as_secs_f64());
        if let Some(timing) = parts.extensions.get::<AuthTiming>() {
            *timing.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(took);
        }
        outcome
    }
}

/// The `Authorization` header, taken apart once: the scheme it names and what follows.
enum Presented<'a> {
    Basic(&'a str),
    Bearer(&'a str),
    ApiKey(&'a str),
}

impl Presented<'_> {
    /// The realm label of [`AUTH_DURATION`].
    fn realm(&self) -> &'static str {
        match self {
            Self::Basic(_) => "basic",
            Self::Bearer(_) => "bearer",
            Self::ApiKey(_) => "api_key",
        }
    }
}

fn presented(parts: &Parts) -> Result<Presented<'_>, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated("send credentials: Authorization: Basic, Bearer or ApiKey"))?;
    let value =
        value.to_str().map_err(|_| ApiError::Unauthenticated("the Authorization header is not text"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Presented::Bearer(rest))
    } else if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Presented::ApiKey(rest))
    } else if scheme.eq_ignore_ascii_case("basic") {
        Ok(Presented::Basic(rest))
    } else {
        Err(ApiError::Unauthenticated("use the Basic, Bearer or ApiKey scheme"))
    }
}

/// The realm the `Authorization` header names (`basic` when it names none), and what it made of
/// the credentials.
async fn authenticate(parts: &Parts, state: &AppState) -> (&'static str, Result<Caller, ApiError>) {
    let presented = presented(parts);
    let realm = presented.as_ref().map_or("basic", Presented::realm);
    if parts.headers.contains_key("x-demo-impersonate") && !matches!(presented, Ok(Presented::ApiKey(_))) {
        // Never ignored silently: the request would run as the caller itself.
        return (
            realm,
            Err(ApiError::BadRequest("X-Demo-Impersonate is honoured with an API key only".into())),
        );
    }
    let outcome = match presented {
        Err(e) => Err(e),
        Ok(Presented::Bearer(token)) => bearer(parts, state, token).await,
        Ok(Presented::ApiKey(key)) => api_key(parts, state, key).await,
        Ok(Presented::Basic(credentials)) => basic(parts, state, credentials).await,
    };
    (realm, outcome)
}

async fn basic(parts: &Parts, state: &AppState, credentials: &str) -> Result<Caller, ApiError> {
    let decoded = B64
        .decode(credentials)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ApiError::Unauthenticated("malformed Basic credentials"))?;
    let (user, password) =
        decoded.split_once(':').ok_or(ApiError::Unauthenticated("malformed Basic credentials"))?;
    let password = SecretString::from(password.to_owned());
    let from = service_kit::throttle::PeerAddr::from_extensions(&parts.extensions).0;
    match state.auth.basic(user, &password, from).await {
        Ok(principal) => Ok(Caller(principal)),
        Err(Denied::BadCredentials) => Err(ApiError::Unauthenticated("unknown user or wrong password")),
        Err(Denied::Locked { retry_after }) => Err(ApiError::Locked(retry_after)),
        Err(Denied::Unavailable) => Err(ApiError::Unavailable),
    }
}

/// Operations that release or create secrets: introspected in `sensitive` mode. Decided on the
/// matched route template, with an explicit list of what is *not* sensitive (reads, encrypt,
/// verify, wrap): anything else, including a route added later, counts as sensitive.
fn sensitive(parts: &Parts) -> bool {
    const LOCAL: [&str; 3] = ["/api/v1/pools/{pool}/encrypt", "/api/v1/verify", "/api/v1/pools/{pool}/wrap"];
    if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD {
        return false;
    }
    let route = parts.extensions.get::<axum::extract::MatchedPath>().map(axum::extract::MatchedPath::as_str);
    !route.is_some_and(|r| LOCAL.contains(&r))
}

async fn bearer(parts: &Parts, state: &AppState, token: &str) -> Result<Caller, ApiError> {
    if token.starts_with(service_kit::apikey::PREFIX) {
        return Err(ApiError::Unauthenticated("that is an API key: send it as Authorization: ApiKey dak_…"));
    }
    let Some(realm) = &state.bearer else {
        return Err(ApiError::Unauthenticated("Bearer tokens are not accepted here (no issuer configured)"));
    };
    match realm.authenticate(token, sensitive(parts)).await {
        Ok(principal) => {
            if let Some(txn) = &principal.txn {
                // The operation's audit line: which transaction, for whom, in which tenant.
                let route = parts.extensions.get::<axum::extract::MatchedPath>().map_or("", |p| p.as_str());
                tracing::info!(%txn, subject = %principal.subject, tenant = %principal.tenant, %route, method = %parts.method, "operation in a transaction");
            }
            Ok(Caller(principal))
        }
        Err(crate::bearer::BearerDenied::Unavailable) => Err(ApiError::Unavailable),
        Err(crate::bearer::BearerDenied::NotAuthority(reason)) => {
            Err(ApiError::NotAllowed(match realm.detail() {
                crate::config::ErrorDetail::Detailed => {
                    format!("the token's issuer may not act for this tenant: {reason}")
                }
                crate::config::ErrorDetail::Minimal => {
                    "the token's issuer may not act for this tenant".to_owned()
                }
            }))
        }
        Err(crate::bearer::BearerDenied::Invalid(reason)) => {
            Err(ApiError::InvalidToken(match realm.detail() {
                crate::config::ErrorDetail::Detailed => format!("the access token is not valid: {reason}"),
                crate::config::ErrorDetail::Minimal => "the access token is not valid".to_owned(),
            }))
        }
    }
}

async fn api_key(parts: &Parts, state: &AppState, key: &str) -> Result<Caller, ApiError> {
    let Some((realm, keys)) = state.bearer.as_ref().and_then(|b| Some((b, b.api_keys()?))) else {
        return Err(ApiError::Unauthenticated("API keys are not accepted here (auth.bearer.api_keys)"));
    };
    // Acting as another entity of the key's tenant: Identity decides whether the key may.
    let impersonate = match parts.headers.get("x-demo-impersonate") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(t) if !t.is_empty() && t.len() <= 200 => Some(t),
            _ => {
                return Err(ApiError::BadRequest(
                    "X-Demo-Impersonate must be user:<name> or client:<id>".into(),
                ));
            }
        },
    };
    match keys.authenticate(key, impersonate).await {
        Ok(principal) => {
            let route = parts.extensions.get::<axum::extract::MatchedPath>().map_or("", |p| p.as_str());
            match impersonate {
                Some(entity) => {
                    let actor = principal.actor.as_deref().unwrap_or("");
                    tracing::info!(subject = %principal.subject, %actor, acting_as = %entity, tenant = %principal.tenant, %route, method = %parts.method, "operation with an API key, impersonating")
                }
                None => {
                    tracing::info!(subject = %principal.subject, tenant = %principal.tenant, %route, method = %parts.method, "operation with an API key")
                }
            }
            Ok(Caller(principal))
        }
        Err(crate::bearer::BearerDenied::Invalid(reason)) => {
            Err(ApiError::InvalidApiKey(match realm.detail() {
                crate::config::ErrorDetail::Detailed => reason,
                crate::config::ErrorDetail::Minimal => "the API key is not valid".to_owned(),
            }))
        }
        Err(_) => Err(ApiError::Unavailable),
    }
}

impl Caller {
    fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        self.0.require(scope).map_err(ApiError::Forbidden)?;
        Ok(&self.0)
    }

    /// [`Self::require`] for an operation on `pool`: a scope held in that pool only counts.
    fn require_in(&self, scope: Scope, pool: &str) -> Result<&Principal, ApiError> {
        self.0.require_in(scope, pool).map_err(ApiError::Forbidden)?;
        Ok(&self.0)
    }
}

fn pool_name(name: &str) -> Result<PoolName, ApiError> {
    PoolName::new(name).map_err(ApiError::BadRequest)
}

fn b64(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(value).map_err(|_| ApiError::BadRequest(format!("`{field}` is not standard base64")))
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "pools", responses((status = 200, description = "The authenticated caller", body = kms_proto::Principal)))]
async fn whoami(caller: Caller) -> Json<kms_proto::Principal> {
    Json(caller.0.to_wire())
}

/// Create a pool with its first version.
#[utoipa::path(post, path = "/api/v1/pools", tag = "pools", request_body = CreatePool,
    responses((status = 201, description = "The new pool with its first version", body = PoolInfo)))]
async fn create_pool(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<CreatePool>,
) -> Result<(StatusCode, Json<PoolInfo>), ApiError> {
    let p = caller.require(Scope::Admin)?;
    let info = s.kms.create_pool(p.tenant, &pool_name(&body.name)?, body.algorithm).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// The caller's pools.
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools", responses((status = 200, description = "The caller's tenant's pools", body = Vec<PoolInfo>)))]
async fn list_pools(State(s): State<AppState>, caller: Caller) -> Result<Json<Vec<PoolInfo>>, ApiError> {
    let p = caller.require(Scope::Read)?;
    Ok(Json(s.kms.list_pools(p.tenant).await?))
}

/// One pool with its versions.
#[utoipa::path(get, path = "/api/v1/pools/{pool}", tag = "pools", params(("pool" = formats::PoolName, Path)),
    responses((status = 200, description = "The pool", body = PoolInfo)))]
async fn get_pool(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require_in(Scope::Read, &pool)?;
    Ok(Json(s.kms.pool_info(p.tenant, &pool_name(&pool)?).await?))
}

/// Add a version; it becomes current. Old versions still decrypt and verify.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/rotate", tag = "pools", params(("pool" = formats::PoolName, Path)),
    responses((status = 200, description = "The pool with its new current version", body = PoolInfo)))]
async fn rotate(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require(Scope::Admin)?;
    Ok(Json(s.kms.rotate(p.tenant, &pool_name(&pool)?).await?))
}

/// Enable a version.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/versions/{version}/enable", tag = "pools",
    params(("pool" = formats::PoolName, Path), ("version" = u32, Path, minimum = 1, maximum = 4294967295.0)), responses((status = 200, description = "The pool", body = PoolInfo)))]
async fn enable(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool, version)): Path<(String, u32)>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require(Scope::Admin)?;
    Ok(Json(s.kms.set_enabled(p.tenant, &pool_name(&pool)?, version, true).await?))
}

/// Disable a version: it refuses every operation until enabled again.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/versions/{version}/disable", tag = "pools",
    params(("pool" = formats::PoolName, Path), ("version" = u32, Path, minimum = 1, maximum = 4294967295.0)), responses((status = 200, description = "The pool", body = PoolInfo)))]
async fn disable(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool, version)): Path<(String, u32)>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require(Scope::Admin)?;
    Ok(Json(s.kms.set_enabled(p.tenant, &pool_name(&pool)?, version, false).await?))
}

/// The public JWK of a signing key version.
#[utoipa::path(get, path = "/api/v1/pools/{pool}/versions/{version}/jwk", tag = "keys",
    params(("pool" = formats::PoolName, Path), ("version" = u32, Path, minimum = 1, maximum = 4294967295.0)), responses((status = 200, description = "The version's public JWK", body = Object)))]
async fn version_jwk(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool, version)): Path<(String, u32)>,
) -> Result<Json<Jwk>, ApiError> {
    let p = caller.require_in(Scope::Read, &pool)?;
    let kid = Kid::new(pool_name(&pool)?.as_str(), version);
    Ok(Json(s.kms.public_jwk(p.tenant, &kid).await?))
}

/// The tenant's JWKS: every enabled version of every signing pool.
#[utoipa::path(get, path = "/api/v1/jwks", tag = "keys", responses((status = 200, description = "The tenant's JWKS", body = Object)))]
async fn jwks(State(s): State<AppState>, caller: Caller) -> Result<Json<Jwks>, ApiError> {
    let p = caller.require(Scope::Read)?;
    Ok(Json(s.kms.jwks(p.tenant).await?))
}

/// Encrypt with the pool's current version (JWE `dir` + `A256GCM`).
#[utoipa::path(post, path = "/api/v1/pools/{pool}/encrypt", tag = "keys", params(("pool" = formats::PoolName, Path)),
    request_body = EncryptRequest, responses((status = 200, description = "The JWE and the version that made it", body = EncryptResponse)))]
async fn encrypt(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
    Json(body): Json<EncryptRequest>,
) -> Result<Json<EncryptResponse>, ApiError> {
    let p = caller.require_in(Scope::Encrypt, &pool)?;
    let plaintext = b64("plaintext", &body.plaintext)?;
    let aad = body.aad.as_deref().map(|a| b64("aad", a)).transpose()?;
    let (kid, jwe) = s.kms.encrypt(p.tenant, &pool_name(&pool)?, &plaintext, aad.as_deref()).await?;
    Ok(Json(EncryptResponse { kid: kid.to_string(), jwe }))
}

/// Decrypt a JWE made by any enabled version of one of the caller's pools.
#[utoipa::path(post, path = "/api/v1/decrypt", tag = "keys", request_body = DecryptRequest,
    responses((status = 200, description = "The plaintext and the version that decrypted it", body = DecryptResponse)))]
async fn decrypt(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<DecryptRequest>,
) -> Result<Json<DecryptResponse>, ApiError> {
    let p = caller.require(Scope::Decrypt)?;
    let text = match &body.jwe {
        serde_json::Value::String(s) => s.clone(),
        obj @ serde_json::Value::Object(_) => obj.to_string(),
        _ => {
            return Err(ApiError::BadRequest(
                "`jwe` must be a compact JWE string or a JSON JWE object".into(),
            ));
        }
    };
    let (kid, plaintext) = s.kms.decrypt(p.tenant, &text).await?;
    Ok(Json(DecryptResponse { kid: kid.to_string(), plaintext: B64.encode(&*plaintext) }))
}

/// A fresh 256-bit data key, in plaintext and encrypted under the pool.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/datakey", tag = "keys", params(("pool" = formats::PoolName, Path)),
    responses((status = 200, description = "A data key in plaintext and encrypted", body = DataKeyResponse)))]
async fn datakey(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
) -> Result<Json<DataKeyResponse>, ApiError> {
    let p = caller.require_in(Scope::Encrypt, &pool)?;
    let (plaintext, kid, jwe) = s.kms.data_key(p.tenant, &pool_name(&pool)?).await?;
    Ok(Json(DataKeyResponse { kid: kid.to_string(), plaintext: B64.encode(&*plaintext), ciphertext: jwe }))
}

/// Sign with the pool's current version (compact JWS).
#[utoipa::path(post, path = "/api/v1/pools/{pool}/sign", tag = "keys", params(("pool" = formats::PoolName, Path)),
    request_body = SignRequest, responses((status = 200, description = "The JWS and the version that signed it", body = SignResponse)))]
async fn sign(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
    Json(body): Json<SignRequest>,
) -> Result<Json<SignResponse>, ApiError> {
    let p = caller.require_in(Scope::Sign, &pool)?;
    let payload = b64("payload", &body.payload)?;
    let (kid, jws) = s.kms.sign(p.tenant, &pool_name(&pool)?, &payload).await?;
    Ok(Json(SignResponse { kid: kid.to_string(), jws }))
}

/// Verify a compact JWS against the version its `kid` names.
#[utoipa::path(post, path = "/api/v1/verify", tag = "keys", request_body = VerifyRequest, responses((status = 200, description = "Whether the signature verifies (a bad signature is `valid: false`, not an error)", body = VerifyResponse)))]
async fn verify(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let p = caller.require(Scope::Verify)?;
    let (kid, valid) = s.kms.verify(p.tenant, &body.jws).await?;
    Ok(Json(VerifyResponse { kid: kid.to_string(), valid }))
}

/// Wrap key material (RFC 3394 AES key wrap).
#[utoipa::path(post, path = "/api/v1/pools/{pool}/wrap", tag = "keys", params(("pool" = formats::PoolName, Path)),
    request_body = WrapRequest, responses((status = 200, description = "The wrapped key and the version that wrapped it", body = WrapResponse)))]
async fn wrap(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
    Json(body): Json<WrapRequest>,
) -> Result<Json<WrapResponse>, ApiError> {
    let p = caller.require_in(Scope::Wrap, &pool)?;
    let key = zeroize::Zeroizing::new(b64("key", &body.key)?);
    let (kid, wrapped) = s.kms.wrap(p.tenant, &pool_name(&pool)?, &key).await?;
    Ok(Json(WrapResponse { kid: kid.to_string(), wrapped: B64.encode(wrapped) }))
}

/// Unwrap key material with the version `kid` names.
#[utoipa::path(post, path = "/api/v1/unwrap", tag = "keys", request_body = UnwrapRequest, responses((status = 200, description = "The key material", body = UnwrapResponse)))]
async fn unwrap(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<UnwrapRequest>,
) -> Result<Json<UnwrapResponse>, ApiError> {
    let p = caller.require(Scope::Unwrap)?;
    let kid = Kid::parse(&body.kid).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let wrapped = b64("wrapped", &body.wrapped)?;
    let key = s.kms.unwrap(p.tenant, &kid, &wrapped).await?;
    Ok(Json(UnwrapResponse { key: B64.encode(&*key) }))
}

/// Create a user of the database realm in the caller's own tenant (tenant admins and admins;
/// a tenant admin cannot grant `admin`). The name must be new to every realm.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, description = "The new user (the password is stored only as a PBKDF2-SHA256 hash)", body = UserInfo)))]
async fn create_user(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    let p = caller.require(Scope::Admin)?;
    if !crate::authz::manages_users(&p.roles) {
        return Err(ApiError::NotAllowed("creating users needs the tenant-admin or admin role".to_owned()));
    }
    if !crate::model::valid_username(&body.username) {
        return Err(ApiError::BadRequest(format!(
            "invalid user name {:?}: use 1 to 64 of A-Z, a-z, 0-9, '.', '_', '@', '-'",
            body.username
        )));
    }
    if !(12..=1024).contains(&body.password.chars().count()) {
        return Err(ApiError::BadRequest("the password must have 12 to 1024 characters".to_owned()));
    }
    if body.roles.is_empty() {
        return Err(ApiError::BadRequest("give the user at least one role".to_owned()));
    }
    if let Some(role) = body.roles.iter().find(|r| !crate::authz::may_grant(&p.roles, **r)) {
        let name =
            serde_json::to_value(role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        return Err(ApiError::NotAllowed(format!("the role {name} is not yours to grant")));
    }
    if !s.auth.has_database_realm() {
        return Err(ApiError::NoDatabaseRealm);
    }
    if s.auth.knows(&body.username).await.map_err(|_| ApiError::Unavailable)? {
        return Err(KmsError::Conflict(format!("user {}", body.username)).into());
    }
    let password = SecretString::from(body.password);
    let user = s.kms.create_user(p.tenant, &body.username, password, &body.roles).await?;
    tracing::info!(user = %user.username, tenant = %user.tenant, by = %p.subject, "database realm user created");
    let info = UserInfo {
        username: user.username,
        tenant: user.tenant.to_string(),
        roles: body.roles.into_iter().collect(),
    };
    Ok((StatusCode::CREATED, Json(info)))
}
