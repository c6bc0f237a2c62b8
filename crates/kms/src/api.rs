//! The HTTP API under `/api/v1`. Handlers are small: authenticate (the [`Caller`] extractor),
//! check the scope, call [`Kms`] with the caller's tenant, shape the answer. Every error leaves
//! through [`ApiError`], which picks the status and the stable problem type.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use service_kit::Problem;

use crate::authz::{Principal, Scope};
use crate::crypto::Algorithm;
use crate::jose::{JoseError, Kid};
use crate::keys::{Kms, KmsError, PoolInfo};
use crate::model::PoolName;
use crate::realm::{Authenticator, Denied};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The unsealed KMS.
    pub kms: Kms,
    /// Password authentication.
    pub auth: Arc<Authenticator>,
}

/// The API router (mount it with `service_kit::server::start`, which adds the common layers).
pub fn router(state: AppState) -> Router {
    Router::new()
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
        .with_state(state)
}

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unusable credentials: 401 with `WWW-Authenticate`.
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    /// Too many failed logins: 429 with `Retry-After`.
    #[error("too many failed logins; retry in {0} s")]
    Locked(u64),
    /// Authenticated, but without the scope: 403.
    #[error("this operation requires the scope {}", .0.as_str())]
    Forbidden(Scope),
    /// Bad request body.
    #[error("{0}")]
    BadRequest(String),
    /// From the key service.
    #[error(transparent)]
    Kms(#[from] KmsError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        let (problem, extra): (Problem, Option<(header::HeaderName, String)>) = match &self {
            ApiError::Unauthenticated(_) => (
                Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required")
                    .with_detail(detail),
                Some((header::WWW_AUTHENTICATE, r#"Basic realm="kms", charset="UTF-8""#.to_owned())),
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
            ApiError::BadRequest(_) => (Problem::bad_request(detail), None),
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
        KmsError::WrongAlgorithm { .. } => {
            Problem::new(StatusCode::BAD_REQUEST, "wrong-algorithm", "The pool's algorithm does not do this")
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
        KmsError::Unseal(_) | KmsError::Store(_) | KmsError::Corrupt(_) => {
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
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated("send HTTP Basic credentials"))?;
        let value =
            value.to_str().map_err(|_| ApiError::Unauthenticated("the Authorization header is not text"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthenticated("only the Basic scheme is accepted"));
        }
        let decoded = B64
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(ApiError::Unauthenticated("malformed Basic credentials"))?;
        let (user, password) =
            decoded.split_once(':').ok_or(ApiError::Unauthenticated("malformed Basic credentials"))?;
        let (user, password) = (user.to_owned(), SecretString::from(password.to_owned()));
        let auth = state.auth.clone();
        // PBKDF2 on a cache miss is ~0.1 s of CPU: keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || auth.basic(&user, &password))
            .await
            .map_err(|_| ApiError::Unauthenticated("authentication failed"))?;
        match result {
            Ok(principal) => Ok(Caller(principal)),
            Err(Denied::BadCredentials) => Err(ApiError::Unauthenticated("unknown user or wrong password")),
            Err(Denied::Locked { retry_after }) => Err(ApiError::Locked(retry_after)),
        }
    }
}

impl Caller {
    fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        self.0.require(scope).map_err(ApiError::Forbidden)?;
        Ok(&self.0)
    }
}

fn pool_name(name: &str) -> Result<PoolName, ApiError> {
    PoolName::new(name).map_err(ApiError::BadRequest)
}

fn b64(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(value).map_err(|_| ApiError::BadRequest(format!("`{field}` is not standard base64")))
}

async fn whoami(caller: Caller) -> Json<Principal> {
    Json(caller.0)
}

/// `POST /api/v1/pools`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    /// Pool name.
    pub name: String,
    /// `A256GCM`, `A256KW`, `ES256`, `EdDSA` or `PS256`.
    pub algorithm: Algorithm,
}

async fn create_pool(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<CreatePool>,
) -> Result<(StatusCode, Json<PoolInfo>), ApiError> {
    let p = caller.require(Scope::Admin)?;
    let info = s.kms.create_pool(p.tenant, &pool_name(&body.name)?, body.algorithm).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

async fn list_pools(State(s): State<AppState>, caller: Caller) -> Result<Json<Vec<PoolInfo>>, ApiError> {
    let p = caller.require(Scope::Read)?;
    Ok(Json(s.kms.list_pools(p.tenant).await?))
}

async fn get_pool(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require(Scope::Read)?;
    Ok(Json(s.kms.pool_info(p.tenant, &pool_name(&pool)?).await?))
}

async fn rotate(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require(Scope::Admin)?;
    Ok(Json(s.kms.rotate(p.tenant, &pool_name(&pool)?).await?))
}

async fn enable(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool, version)): Path<(String, u32)>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require(Scope::Admin)?;
    Ok(Json(s.kms.set_enabled(p.tenant, &pool_name(&pool)?, version, true).await?))
}

async fn disable(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool, version)): Path<(String, u32)>,
) -> Result<Json<PoolInfo>, ApiError> {
    let p = caller.require(Scope::Admin)?;
    Ok(Json(s.kms.set_enabled(p.tenant, &pool_name(&pool)?, version, false).await?))
}

async fn version_jwk(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool, version)): Path<(String, u32)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require(Scope::Read)?;
    let kid = Kid::new(pool_name(&pool)?.as_str(), version);
    Ok(Json(s.kms.public_jwk(p.tenant, &kid).await?))
}

async fn jwks(State(s): State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require(Scope::Read)?;
    Ok(Json(s.kms.jwks(p.tenant).await?))
}

/// `POST /api/v1/pools/{pool}/encrypt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// Standard base64.
    pub plaintext: String,
    /// Optional additional authenticated data, standard base64; the result is then a
    /// flattened JSON JWE.
    #[serde(default)]
    pub aad: Option<String>,
}

/// The result of an encryption.
#[derive(Debug, Serialize)]
pub struct EncryptResponse {
    /// `pool/version`.
    pub kid: String,
    /// Compact JWE (a string), or flattened JSON JWE (an object) when AAD was given.
    pub jwe: serde_json::Value,
}

async fn encrypt(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
    Json(body): Json<EncryptRequest>,
) -> Result<Json<EncryptResponse>, ApiError> {
    let p = caller.require(Scope::Encrypt)?;
    let plaintext = b64("plaintext", &body.plaintext)?;
    let aad = body.aad.as_deref().map(|a| b64("aad", a)).transpose()?;
    let (kid, jwe) = s.kms.encrypt(p.tenant, &pool_name(&pool)?, &plaintext, aad.as_deref()).await?;
    Ok(Json(EncryptResponse { kid: kid.to_string(), jwe }))
}

/// `POST /api/v1/decrypt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// A compact JWE string or a flattened JSON JWE object.
    pub jwe: serde_json::Value,
}

async fn decrypt(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<DecryptRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    Ok(Json(serde_json::json!({ "kid": kid.to_string(), "plaintext": B64.encode(&*plaintext) })))
}

async fn datakey(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require(Scope::Encrypt)?;
    let (plaintext, kid, jwe) = s.kms.data_key(p.tenant, &pool_name(&pool)?).await?;
    Ok(Json(
        serde_json::json!({ "kid": kid.to_string(), "plaintext": B64.encode(&*plaintext), "ciphertext": jwe }),
    ))
}

/// `POST /api/v1/pools/{pool}/sign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Standard base64.
    pub payload: String,
}

async fn sign(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
    Json(body): Json<SignRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require(Scope::Sign)?;
    let payload = b64("payload", &body.payload)?;
    let (kid, jws) = s.kms.sign(p.tenant, &pool_name(&pool)?, &payload).await?;
    Ok(Json(serde_json::json!({ "kid": kid.to_string(), "jws": jws })))
}

/// `POST /api/v1/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// A compact JWS.
    pub jws: String,
}

async fn verify(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<VerifyRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require(Scope::Verify)?;
    let (kid, valid) = s.kms.verify(p.tenant, &body.jws).await?;
    Ok(Json(serde_json::json!({ "kid": kid.to_string(), "valid": valid })))
}

/// `POST /api/v1/pools/{pool}/wrap`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapRequest {
    /// The key material to wrap, standard base64 (16 to 4096 bytes, a multiple of 8).
    pub key: String,
}

async fn wrap(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool): Path<String>,
    Json(body): Json<WrapRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require(Scope::Wrap)?;
    let key = zeroize::Zeroizing::new(b64("key", &body.key)?);
    let (kid, wrapped) = s.kms.wrap(p.tenant, &pool_name(&pool)?, &key).await?;
    Ok(Json(serde_json::json!({ "kid": kid.to_string(), "wrapped": B64.encode(wrapped) })))
}

/// `POST /api/v1/unwrap`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnwrapRequest {
    /// `pool/version` of the wrapping key.
    pub kid: String,
    /// Standard base64.
    pub wrapped: String,
}

async fn unwrap(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<UnwrapRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require(Scope::Unwrap)?;
    let kid = Kid::parse(&body.kid).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let wrapped = b64("wrapped", &body.wrapped)?;
    let key = s.kms.unwrap(p.tenant, &kid, &wrapped).await?;
    Ok(Json(serde_json::json!({ "key": B64.encode(&*key) })))
}
