//! API keys: long-lived credentials for services and scripts, owned by a user or a confidential
//! client of a tenant, managed at `/api/v1/api-keys` and verified for resource servers at
//! `/api/v1/api-keys/verify` (docs/identity.md, "API keys").
//!
//! **The key** is `dak_` followed by 93 base62 characters: the tenant (22), the key's id (22), a
//! 256-bit secret (43) and a CRC-32 of everything before it (6). The prefix lets secret scanners
//! find a key; the checksum lets anyone tell a typo or a truncated key from a real one offline,
//! without asking the server. The tenant and id in the key find its row with no search.
//!
//! **Stored** is only an HMAC-SHA256 of the secret under a key sealed by the barrier (made at
//! first start, `sealed_values`): a 256-bit random secret cannot be guessed from its MAC, so no
//! slow hash is needed (docs/security.md), and verification costs microseconds. MACs are
//! compared in constant time.
//!
//! **Rotation** gives a new secret and keeps the previous one valid until the overlap the caller
//! asked for ends. **Deletion** is soft: a deleted key stops working at once, stays listable and
//! restorable for `api_keys.retention`, then is purged.
//!
//! **Permissions** are scopes (`kms:encrypt`) or scopes on one pool (`kms:encrypt@pool:payments`),
//! never more than the owner holds when the key is made — a client's own scopes, or the scopes of
//! the user's token that asks — and re-checked on every verification: a client that lost a scope
//! loses it from its keys, a user that no longer exists has no working key.

use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::json;
use service_kit::problem::Problem;
use service_kit::throttle::PeerAddr;
use zeroize::Zeroizing;

use crate::api::{AppState, Public, authenticate_client, verified_access};
use crate::store::{ApiKeyChange, ApiKeyRow, OwnerKind, Store, StoreError, TenantKey, now};
use service_kit::apikey::new_key;
pub use service_kit::apikey::{KEY_LEN, Malformed, PREFIX, ParsedKey, parse};

/// The scope a token needs to manage API keys (with `api_keys.audience`, by default Identity's
/// issuer, as its audience).
pub const MANAGE_SCOPE: &str = "identity:api-keys";
/// The sealed value holding the MAC key, and its barrier context.
const MAC_KEY: &str = "api-key-mac";
/// `last_used_at` is written at most this often per key.
const USE_GRANULARITY: i64 = 60;
/// The longest name.
const MAX_NAME: usize = 64;

/// The API keys' machinery: the MAC key and the settings.
pub struct ApiKeys {
    mac: hmac::Key,
    /// The settings.
    pub config: crate::config::ApiKeysConfig,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").field("config", &self.config).finish_non_exhaustive()
    }
}

/// API keys could not be set up or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sealed MAC key could not be made or opened (the wrong root key?).
    #[error("the API key MAC key cannot be unsealed: {0}")]
    Seal(String),
    /// The system's random source failed (or a key id was not 32 hex digits).
    #[error("cannot make a key: the system's random source failed")]
    Random,
}

impl ApiKeys {
    /// Loads the MAC key (sealed in the store), making it at first start. Replicas that start
    /// together agree: the first insert wins and everyone reads it back.
    pub async fn load_or_init(
        store: &dyn Store,
        root: &barrier::RootKey,
        config: crate::config::ApiKeysConfig,
    ) -> Result<Self, ApiKeyError> {
        let context = format!("identity/{MAC_KEY}");
        if store.sealed_value(MAC_KEY).await?.is_none() {
            let mut fresh = Zeroizing::new([0u8; 32]);
            let rng = aws_lc_rs::rand::SystemRandom::new();
            aws_lc_rs::rand::SecureRandom::fill(&rng, fresh.as_mut()).map_err(|_| ApiKeyError::Random)?;
            let wrapped =
                root.wrap(&context, fresh.as_ref()).map_err(|e| ApiKeyError::Seal(e.to_string()))?;
            store.insert_sealed_value(MAC_KEY, &wrapped).await?;
        }
        let wrapped = store
            .sealed_value(MAC_KEY)
            .await?
            .ok_or_else(|| ApiKeyError::Seal("it vanished after it was stored".to_owned()))?;
        let raw = root.unwrap(&context, &wrapped).map_err(|e| ApiKeyError::Seal(e.to_string()))?;
        Ok(Self { mac: hmac::Key::new(hmac::HMAC_SHA256, &raw), config })
    }

    fn mac(&self, key: &ParsedKey) -> Vec<u8> {
        hmac::sign(&self.mac, key.secret()).as_ref().to_vec()
    }

    /// Whether `key`'s secret is `row`'s (or, within the overlap, its previous one). Constant
    /// time in the secret.
    fn matches(&self, key: &ParsedKey, row: &ApiKeyRow, now: i64) -> bool {
        let current = hmac::verify(&self.mac, key.secret(), &row.secret_mac).is_ok();
        let previous = match (&row.previous_mac, row.previous_until) {
            (Some(mac), Some(until)) if now < until => hmac::verify(&self.mac, key.secret(), mac).is_ok(),
            _ => false,
        };
        current | previous
    }
}

/// A permission: a scope, on every pool or one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The scope (`kms:encrypt`).
    pub scope: String,
    /// The one pool it applies to, if any.
    pub pool: Option<String>,
}

impl Permission {
    /// `scope` or `scope@pool:NAME`.
    pub fn parse(text: &str) -> Option<Self> {
        let ok_scope =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_graphic() && c != b'@');
        match text.split_once("@pool:") {
            None => ok_scope(text).then(|| Self { scope: text.to_owned(), pool: None }),
            Some((scope, pool)) => {
                let ok_pool = !pool.is_empty()
                    && pool.len() <= 64
                    && pool
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
                (ok_scope(scope) && ok_pool)
                    .then(|| Self { scope: scope.to_owned(), pool: Some(pool.to_owned()) })
            }
        }
    }

    fn text(&self) -> String {
        match &self.pool {
            Some(pool) => format!("{}@pool:{pool}", self.scope),
            None => self.scope.clone(),
        }
    }
}

/// A refused request's response (boxed: responses are large).
type Refusal = Box<Response>;

/// An API error: problem+json.
fn problem(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Response {
    Problem::new(status, slug, title).with_detail(detail).into_response()
}

fn store_failed(e: StoreError) -> Response {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        Problem::unavailable("the database is unavailable; retry shortly").into_response()
    } else {
        tracing::error!(error = %e, "API key storage failed");
        Problem::internal().into_response()
    }
}

/// Who is managing keys: from an access token of ours with `identity:api-keys`.
struct Caller {
    tenant: TenantKey,
    owner: (OwnerKind, String),
    /// What the owner holds: a client's scopes, a user's token's scopes.
    holds: Vec<String>,
    admin: bool,
}

fn unauthorized(detail: &str) -> Refusal {
    let mut response = problem(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    Box::new(response)
}

fn refused_by_store(e: StoreError) -> Refusal {
    Box::new(store_failed(e))
}

async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("send an access token of this issuer: Authorization: Bearer …"))?;
    let claims = verified_access(s, token).ok_or_else(|| unauthorized("the access token is not valid"))?;
    let tenant =
        TenantKey::parse(&claims.tenant_id).map_err(|_| unauthorized("the access token is not valid"))?;
    if s.store.is_revoked(&tenant, &claims.jti).await.map_err(refused_by_store)? {
        return Err(unauthorized("the access token was revoked"));
    }
    let forbidden =
        |detail: String| Box::new(problem(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail));
    let audience = s.api_keys.config.audience.as_deref().unwrap_or(&s.issuer);
    if claims.aud != audience {
        return Err(forbidden(format!("the access token's audience must be {audience}")));
    }
    let scopes: Vec<String> = claims.scope.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect();
    if !scopes.iter().any(|x| x == MANAGE_SCOPE) {
        return Err(forbidden(format!("the access token lacks the scope {MANAGE_SCOPE}")));
    }
    // A delegated token acts for someone else: it may not make that someone's credentials.
    if claims.act.is_some() {
        return Err(forbidden("a delegated (exchanged) token cannot manage API keys".to_owned()));
    }
    let admin = claims.roles.iter().any(|r| r == "tenant-admin");
    if claims.sub == claims.client_id {
        let client = s
            .store
            .client(&claims.client_id)
            .await
            .map_err(refused_by_store)?
            .filter(|c| c.confidential && c.tenant_id == claims.tenant_id)
            .ok_or_else(|| forbidden("only confidential clients own API keys".to_owned()))?;
        return Ok(Caller {
            tenant,
            owner: (OwnerKind::Client, client.client_id),
            holds: client.scopes,
            admin,
        });
    }
    Ok(Caller { tenant, owner: (OwnerKind::User, claims.sub.clone()), holds: scopes, admin })
}

fn view(row: &ApiKeyRow, now: i64) -> serde_json::Value {
    let state = match (row.deleted_at, row.expires_at) {
        (Some(_), _) => "deleted",
        (None, Some(exp)) if exp < now => "expired",
        _ => "active",
    };
    json!({
        "id": row.key_id,
        "name": row.name,
        "owner": { "kind": row.owner_kind, "id": row.owner_id },
        "permissions": row.permissions,
        "state": state,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "last_used_at": row.last_used_at,
        "deleted_at": row.deleted_at,
        "previous_valid_until": row.previous_until.filter(|until| *until > now),
    })
}

fn json_body<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &Bytes) -> Result<T, Refusal> {
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return Err(Box::new(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported content type",
            "send application/json",
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(Problem::bad_request(format!("not the expected JSON: {e}")).into_response()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    permissions: Vec<String>,
    /// Lifetime in seconds (none: no expiry).
    #[serde(default)]
    expires_in: Option<i64>,
}

/// `POST /api/v1/api-keys`: a new key of the caller; the key is in the answer, once.
pub(crate) async fn create(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match caller(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let request: CreateRequest = match json_body(&headers, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let bad = |detail: String| Problem::bad_request(detail).into_response();
    if request.name.is_empty()
        || request.name.chars().count() > MAX_NAME
        || request.name.chars().any(char::is_control)
    {
        return bad(format!("name must be 1 to {MAX_NAME} characters, none of them control characters"));
    }
    if request.permissions.is_empty() || request.permissions.len() > 32 {
        return bad("list 1 to 32 permissions".to_owned());
    }
    let mut permissions = Vec::new();
    for text in &request.permissions {
        let Some(p) = Permission::parse(text) else {
            return bad(format!("{text:?} is not a permission (a scope, or scope@pool:NAME)"));
        };
        if p.scope == MANAGE_SCOPE || !caller.holds.contains(&p.scope) {
            return problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                format!("a key cannot hold {:?}: its owner does not", p.scope),
            );
        }
        if !permissions.contains(&p.text()) {
            permissions.push(p.text());
        }
    }
    let now = now();
    let expires_at = match request.expires_in {
        None => None,
        Some(secs) if (60..=366 * 86_400).contains(&secs) => Some(now + secs),
        Some(_) => return bad("expires_in must be between 60 and 31622400 seconds".to_owned()),
    };
    let (key, text) = match new_key(&caller.tenant, None) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot make an API key");
            return Problem::internal().into_response();
        }
    };
    let row = ApiKeyRow {
        key_id: key.key_id.clone(),
        name: request.name,
        owner_kind: caller.owner.0,
        owner_id: caller.owner.1,
        secret_mac: s.api_keys.mac(&key),
        previous_mac: None,
        previous_until: None,
        permissions,
        created_at: now,
        expires_at,
        last_used_at: None,
        deleted_at: None,
    };
    if let Err(e) = s.store.insert_api_key(&caller.tenant, &row).await {
        return match e {
            StoreError::Conflict(what) => {
                problem(StatusCode::CONFLICT, "conflict", "Conflict", format!("{what} exists already"))
            }
            e => store_failed(e),
        };
    }
    tracing::info!(tenant = %caller.tenant.canonical(), key_id = %row.key_id, owner = %row.owner_id, "API key created");
    let mut answer = view(&row, now);
    answer["key"] = json!(text.expose_secret());
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

/// `GET /api/v1/api-keys`: the caller's keys (a tenant admin's: every key of the tenant),
/// deleted ones within the retention included. Never a secret.
pub(crate) async fn list(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let caller = match caller(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let owner = (!caller.admin).then_some((caller.owner.0, caller.owner.1.as_str()));
    match s.store.api_keys(&caller.tenant, owner).await {
        Ok(rows) => {
            let now = now();
            Json(json!({ "keys": rows.iter().map(|r| view(r, now)).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => store_failed(e),
    }
}

/// The caller's key `id` (any key of the tenant for an admin); 404 otherwise, whether or not
/// another owner has such a key.
async fn owned(s: &AppState, caller: &Caller, id: &str) -> Result<ApiKeyRow, Refusal> {
    if id.len() != 32 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(Box::new(Problem::not_found().into_response()));
    }
    let row = s.store.api_key(&caller.tenant, id).await.map_err(refused_by_store)?;
    row.filter(|r| {
        caller.admin || (r.owner_kind, r.owner_id.as_str()) == (caller.owner.0, caller.owner.1.as_str())
    })
    .ok_or_else(|| Box::new(Problem::not_found().into_response()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Seconds the old secret stays valid (default 0: not at all).
    #[serde(default)]
    overlap: i64,
}

/// `POST /api/v1/api-keys/{id}/rotate`: a new secret (in the answer, once); the old one stays
/// valid for `overlap` seconds.
pub(crate) async fn rotate(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match caller(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let request: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        match json_body(&headers, &body) {
            Ok(r) => r,
            Err(r) => return *r,
        }
    };
    let max = i64::try_from(s.api_keys.config.max_overlap.as_secs()).unwrap_or(i64::MAX);
    if !(0..=max).contains(&request.overlap) {
        return Problem::bad_request(format!("overlap must be between 0 and {max} seconds")).into_response();
    }
    let row = match owned(&s, &caller, &id).await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if row.deleted_at.is_some() {
        return problem(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            "a deleted key cannot be rotated; restore it first",
        );
    }
    // Only the owner: a rotation hands out the new secret, and an admin holding another
    // owner's key would gain what that owner holds.
    if (row.owner_kind, row.owner_id.as_str()) != (caller.owner.0, caller.owner.1.as_str()) {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            "only the key's owner may rotate it",
        );
    }
    // And only with a token that holds what the key holds, as when it was made: a narrow token
    // must not hand out a wide key's secret.
    if let Some(lacking) =
        row.permissions.iter().filter_map(|p| Permission::parse(p)).find(|p| !caller.holds.contains(&p.scope))
    {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            format!("the token does not hold {:?}, which the key holds", lacking.scope),
        );
    }
    // A new secret under the same id: the key's tenant and id stay, only the secret changes.
    let (fresh, text) = match new_key(&caller.tenant, Some(&row.key_id)) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot make an API key");
            return Problem::internal().into_response();
        }
    };
    let now = now();
    let change = ApiKeyChange::Rotate {
        expected_mac: row.secret_mac.clone(),
        secret_mac: s.api_keys.mac(&fresh),
        previous: (request.overlap > 0).then(|| (row.secret_mac.clone(), now + request.overlap)),
    };
    match s.store.update_api_key(&caller.tenant, &row.key_id, &change).await {
        Ok(true) => {}
        Ok(false) => {
            return problem(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the key was rotated or deleted meanwhile; list it and retry",
            );
        }
        Err(e) => return store_failed(e),
    }
    tracing::info!(tenant = %caller.tenant.canonical(), key_id = %row.key_id, overlap = request.overlap, "API key rotated");
    let row = match s.store.api_key(&caller.tenant, &row.key_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Problem::not_found().into_response(),
        Err(e) => return store_failed(e),
    };
    let mut answer = view(&row, now);
    answer["key"] = json!(text.expose_secret());
    let mut response = Json(answer).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

/// `DELETE /api/v1/api-keys/{id}`: soft delete; the key stops working at once.
pub(crate) async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(&s, &headers, &id, ApiKeyChange::Delete, "deleted", "the key is deleted already").await
}

/// `POST /api/v1/api-keys/{id}/restore`: undo a delete within the retention period.
pub(crate) async fn restore(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(&s, &headers, &id, ApiKeyChange::Restore, "restored", "the key is not deleted").await
}

/// Whether a key deleted at `deleted_at` is past the retention period (to be purged).
fn past_retention(config: &crate::config::ApiKeysConfig, deleted_at: Option<i64>, now: i64) -> bool {
    let retention = i64::try_from(config.retention.as_secs()).unwrap_or(i64::MAX);
    deleted_at.is_some_and(|at| at.saturating_add(retention) < now)
}

async fn change(
    s: &AppState,
    headers: &HeaderMap,
    id: &str,
    change: ApiKeyChange,
    done: &str,
    not_applicable: &str,
) -> Response {
    let caller = match caller(s, headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let row = match owned(s, &caller, id).await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if change == ApiKeyChange::Restore && past_retention(&s.api_keys.config, row.deleted_at, now()) {
        return problem(
            StatusCode::GONE,
            "gone",
            "Gone",
            "the key was deleted longer ago than the retention period",
        );
    }
    match s.store.update_api_key(&caller.tenant, &row.key_id, &change).await {
        Ok(true) => {}
        Ok(false) => return problem(StatusCode::CONFLICT, "conflict", "Conflict", not_applicable),
        Err(StoreError::Conflict(_)) => {
            return problem(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the owner has a live key of that name now",
            );
        }
        Err(e) => return store_failed(e),
    }
    tracing::info!(tenant = %caller.tenant.canonical(), key_id = %row.key_id, "API key {done}");
    match s.store.api_key(&caller.tenant, &row.key_id).await {
        Ok(Some(r)) => Json(view(&r, now())).into_response(),
        Ok(None) => Problem::not_found().into_response(),
        Err(e) => store_failed(e),
    }
}

/// What a verification found (the reasons are for the resource server's log and its detailed
/// errors; the key is not in any of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A working key.
    Active {
        /// Its tenant.
        tenant: TenantKey,
        /// Its row.
        row: Box<ApiKeyRow>,
        /// Its permissions now (a client owner's lost scopes removed).
        permissions: Vec<String>,
        /// The owner's roles.
        roles: Vec<String>,
    },
    /// Not a working key, and why.
    Inactive(&'static str),
}

/// Verifies a presented key: form and checksum, its row, its secret (current, or previous
/// within the overlap), not deleted or expired, its owner still there, its permissions still
/// held. Records the use (at most once a minute).
pub async fn verify(s: &AppState, text: &str) -> Result<Verdict, StoreError> {
    let key = match parse(text) {
        Ok(k) => k,
        Err(_) => return Ok(Verdict::Inactive("malformed")),
    };
    let Some(row) = s.store.api_key(&key.tenant, &key.key_id).await? else {
        return Ok(Verdict::Inactive("unknown"));
    };
    let now = now();
    if !s.api_keys.matches(&key, &row, now) {
        return Ok(Verdict::Inactive("wrong secret"));
    }
    if row.deleted_at.is_some() {
        return Ok(Verdict::Inactive("deleted"));
    }
    if row.expires_at.is_some_and(|exp| exp < now) {
        return Ok(Verdict::Inactive("expired"));
    }
    let (holds, roles) = match row.owner_kind {
        OwnerKind::Client => match s.store.client(&row.owner_id).await? {
            Some(c) if c.tenant_id == key.tenant.canonical() => (Some(c.scopes), c.roles),
            _ => return Ok(Verdict::Inactive("its owner no longer exists")),
        },
        OwnerKind::User => match s.store.user(&key.tenant, &row.owner_id).await? {
            Some(u) => (None, u.roles),
            None => return Ok(Verdict::Inactive("its owner no longer exists")),
        },
    };
    let permissions: Vec<String> = row
        .permissions
        .iter()
        .filter(|p| {
            let scope = Permission::parse(p).map(|p| p.scope).unwrap_or_default();
            holds.as_ref().is_none_or(|h| h.contains(&scope))
        })
        .cloned()
        .collect();
    if permissions.is_empty() {
        return Ok(Verdict::Inactive("its owner no longer holds any of its permissions"));
    }
    // A write at most once a minute per key: the row read above says whether it is due.
    if row.last_used_at.is_none_or(|at| at < now - USE_GRANULARITY) {
        let used = ApiKeyChange::Used { older_than: now - USE_GRANULARITY };
        if let Err(e) = s.store.update_api_key(&key.tenant, &row.key_id, &used).await {
            // The answer stands; the last-used time is a convenience.
            tracing::warn!(error = %e, "cannot record an API key's use");
        }
    }
    Ok(Verdict::Active { tenant: key.tenant, row: Box::new(row), permissions, roles })
}

/// `POST /api/v1/api-keys/verify` (form: `key`), for the resource servers named in
/// `api_keys.verifiers`, authenticated as clients: `{"active": true, "tenant_id", "sub",
/// "owner_kind", "key_id", "name", "permissions", "roles", "exp"}` or `{"active": false,
/// "reason"}`.
pub(crate) async fn verify_endpoint(
    State(s): State<AppState>,
    PeerAddr(from): PeerAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, crate::api::OAuthError> {
    let params = crate::api::form(&headers, &body)?;
    let caller = authenticate_client(&s, from, &headers, &params, Public::Refused).await?;
    if !s.api_keys.config.verifiers.contains(&caller.client_id) {
        return Ok(problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            format!("client {} may not verify API keys (api_keys.verifiers)", caller.client_id),
        ));
    }
    let text = params.get("key").ok_or_else(|| crate::api::OAuthError::invalid_request("key is missing"))?;
    let mut verdict =
        verify(&s, text).await.map_err(|e| crate::api::OAuthError::store(e, "API key lookup"))?;
    let mut act = None;
    if let (Some(target), Verdict::Active { tenant, row, permissions, roles }) =
        (params.get("impersonate"), &verdict)
    {
        match impersonated(&s, tenant, row, permissions, roles, target)
            .await
            .map_err(|e| crate::api::OAuthError::store(e, "impersonation lookup"))?
        {
            Ok(as_entity) => {
                tracing::info!(tenant = %tenant.canonical(), key_id = %row.key_id, owner = %row.owner_id, acting_as = %target, "API key used to impersonate");
                act = Some(json!({ "sub": row.owner_id }));
                verdict = as_entity;
            }
            Err(reason) => verdict = Verdict::Inactive(reason),
        }
    }
    let body = match verdict {
        Verdict::Active { tenant, row, permissions, roles } => json!({
            "active": true,
            "tenant_id": tenant.canonical(),
            "sub": row.owner_id,
            "owner_kind": row.owner_kind,
            "key_id": row.key_id,
            "name": row.name,
            "permissions": permissions,
            "roles": roles,
            "exp": row.expires_at,
            "act": act,
        }),
        Verdict::Inactive(reason) => json!({ "active": false, "reason": reason }),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The permission that lets a key act as another user or client of its tenant.
pub const IMPERSONATE: &str = "identity:impersonate";

/// A verified key acting as `target` (`user:<username>` or `client:<client_id>`, of the key's
/// tenant): the verdict as that entity — its id, kind and roles, the key's permissions but
/// [`IMPERSONATE`] — or why not. Only a key holding [`IMPERSONATE`] may.
async fn impersonated(
    s: &AppState,
    tenant: &TenantKey,
    row: &ApiKeyRow,
    permissions: &[String],
    owner_roles: &[String],
    target: &str,
) -> Result<Result<Verdict, &'static str>, StoreError> {
    if !permissions.iter().any(|p| p == IMPERSONATE) {
        return Ok(Err("impersonation refused: the key does not hold identity:impersonate"));
    }
    let (kind, id, roles) = match target.split_once(':') {
        Some(("user", name)) => match s.store.user_by_name(tenant, name).await? {
            Some(u) => (OwnerKind::User, u.user_id, u.roles),
            None => return Ok(Err("impersonation refused: no such user in the key's tenant")),
        },
        Some(("client", client_id)) => match s.store.client(client_id).await? {
            Some(c) if c.tenant_id == tenant.canonical() => (OwnerKind::Client, c.client_id, c.roles),
            _ => return Ok(Err("impersonation refused: no such client in the key's tenant")),
        },
        _ => return Ok(Err("impersonation refused: name user:<username> or client:<client_id>")),
    };
    let permissions = permissions.iter().filter(|p| *p != IMPERSONATE).cloned().collect();
    // Never more than the owner: the roles are those both hold, so acting as a more privileged
    // entity gains nothing, and as a less privileged one is limited to what it may do.
    let roles = roles.into_iter().filter(|r| owner_roles.contains(r)).collect();
    let as_entity = ApiKeyRow { owner_kind: kind, owner_id: id, ..row.clone() };
    Ok(Ok(Verdict::Active { tenant: *tenant, row: Box::new(as_entity), permissions, roles }))
}

/// Purges the keys deleted longer ago than the retention, in every tenant.
pub async fn purge(store: &Arc<dyn Store>, config: &crate::config::ApiKeysConfig) -> Result<u64, StoreError> {
    let before = now() - i64::try_from(config.retention.as_secs()).unwrap_or(i64::MAX);
    let mut purged = 0;
    for tenant in store.tenants().await? {
        // One tenant failing does not keep the others' deleted keys.
        match store.purge_api_keys(&tenant, before).await {
            Ok(n) => purged += n,
            Err(e) => {
                tracing::warn!(tenant = %tenant.canonical(), error = %e, "cannot purge this tenant's deleted API keys")
            }
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_scopes_or_scopes_on_one_pool() {
        assert_eq!(
            Permission::parse("kms:encrypt"),
            Some(Permission { scope: "kms:encrypt".into(), pool: None })
        );
        assert_eq!(
            Permission::parse("kms:encrypt@pool:payments"),
            Some(Permission { scope: "kms:encrypt".into(), pool: Some("payments".into()) })
        );
        for bad in
            ["", "kms:encrypt@pool:", "kms:encrypt@pool:a b", "@pool:x", "kms encrypt", "kms:encrypt@x"]
        {
            assert_eq!(Permission::parse(bad), None, "{bad:?}");
        }
    }
}
