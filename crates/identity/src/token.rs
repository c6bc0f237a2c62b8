//! `POST /token`: the `client_credentials`, `authorization_code` (PKCE S256 only) and
//! `refresh_token` (rotation with reuse detection) grants; token exchange is `crate::exchange`.
//!
//! Replay rules: a code is consumed by one conditional UPDATE that also records what its
//! exchange issues, so a second presentation finds those and revokes them (RFC 6749 §4.1.2). A
//! refresh token is rotated the same way; presenting a used one revokes its whole family and
//! the access tokens issued with it (OAuth 2.1 §4.3.1).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use service_kit::throttle::PeerAddr;

use crate::api::{AppState, OAuthError, Public, authenticate_client, form};
use crate::store::{AuthCode, NewFamily, NewRefresh, StoreError, StoredClient, StoredUser, TenantKey, now};
use crate::tokens::{
    ACCESS_TOKEN_TYP, AccessClaims, ID_TOKEN_TYP, IdClaims, at_hash, opaque, opaque_hash, pkce_s256_matches,
};

pub(crate) fn store_failed(e: StoreError) -> OAuthError {
    OAuthError::store(e, "token storage")
}

pub(crate) fn sign_failed(e: crate::signing::SigningError) -> OAuthError {
    tracing::error!(error = %e, "signing failed");
    OAuthError::server_error()
}

/// `POST /token`.
pub(crate) async fn token(
    State(s): State<AppState>,
    PeerAddr(from): PeerAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = form(&headers, &body)?;
    let grant =
        params.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    let body = match grant.as_str() {
        "client_credentials" => client_credentials(&s, from, &headers, &params).await?,
        "authorization_code" => authorization_code(&s, from, &headers, &params).await?,
        "refresh_token" => refresh(&s, from, &headers, &params).await?,
        crate::exchange::GRANT_TYPE => crate::exchange::exchange(&s, from, &headers, &params).await?,
        _ => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant type {grant:?} is not supported here"),
            ));
        }
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

pub(crate) fn require_grant(client: &StoredClient, grant: &str) -> Result<(), OAuthError> {
    if client.grant_types.iter().any(|g| g == grant) {
        return Ok(());
    }
    Err(OAuthError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        format!("this client may not use {grant}"),
    ))
}

fn invalid_scope(scope: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", format!("scope {scope:?} is not allowed here"))
}

/// The requested scopes if every one is in `allowed`; all of `allowed` when none is requested.
fn narrow(requested: Option<&String>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else { return Ok(allowed.to_vec()) };
    let requested: Vec<String> = requested.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect();
    if let Some(bad) = requested.iter().find(|r| !allowed.contains(r)) {
        return Err(invalid_scope(bad));
    }
    Ok(requested)
}

/// Who an access token speaks for.
struct Subject<'a> {
    sub: &'a str,
    tenant_id: &'a str,
    roles: &'a [String],
}

/// Signs an access token; returns the JWT and its claims.
fn access_token(
    s: &AppState,
    client: &StoredClient,
    audience: String,
    who: Subject<'_>,
    scope: &str,
    jti: String,
    now: i64,
) -> Result<(String, AccessClaims), OAuthError> {
    let claims = AccessClaims {
        iss: s.issuer.clone(),
        sub: who.sub.to_owned(),
        aud: audience,
        exp: now + s.ttl.access,
        iat: now,
        nbf: now,
        jti,
        client_id: client.client_id.clone(),
        scope: scope.to_owned(),
        tenant_id: who.tenant_id.to_owned(),
        roles: who.roles.to_vec(),
        act: None,
    };
    let jwt = s.keys.sign(ACCESS_TOKEN_TYP, &claims).map_err(sign_failed)?;
    Ok((jwt, claims))
}

async fn client_credentials(
    s: &AppState,
    from: IpAddr,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let client = authenticate_client(s, from, headers, params, Public::Refused).await?;
    require_grant(&client, "client_credentials")?;
    let scopes = narrow(params.get("scope"), &client.scopes)?;
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
    let scope = scopes.join(" ");
    let who = Subject { sub: &client.client_id, tenant_id: &client.tenant_id, roles: &client.roles };
    let (jwt, _) = access_token(s, &client, audience, who, &scope, uuid::Uuid::new_v4().to_string(), now())?;
    Ok(serde_json::json!({
        "access_token": jwt, "token_type": "Bearer", "expires_in": s.ttl.access, "scope": scope,
    }))
}

/// What a user grant (code or refresh) issues.
struct UserGrant<'a> {
    client: &'a StoredClient,
    user: &'a StoredUser,
    scope: &'a str,
    auth_time: i64,
    nonce: Option<&'a str>,
    /// The family a new refresh token joins (when the client may refresh).
    family_id: Option<&'a str>,
    /// The refresh token's scope: always the original grant's, however a refresh narrowed the
    /// access token (RFC 6749 §6).
    refresh_scope: &'a str,
    /// The access token id and issue time, decided before the code or refresh token is
    /// consumed (the consumption records them, so a replay revokes exactly this token).
    jti: String,
    iat: i64,
}

/// Signs the access token (and ID token with `openid`) and stores a new refresh token.
async fn issue_user_tokens(s: &AppState, g: UserGrant<'_>) -> Result<serde_json::Value, OAuthError> {
    // User tokens go to the client's first resource; with none registered, to the issuer itself
    // (userinfo).
    let audience = g.client.audiences.first().cloned().unwrap_or_else(|| s.issuer.clone());
    let who = Subject { sub: &g.user.user_id, tenant_id: &g.user.tenant_id, roles: &g.user.roles };
    let (jwt, claims) = access_token(s, g.client, audience, who, g.scope, g.jti, g.iat)?;
    let now = claims.iat;
    let mut body = serde_json::json!({
        "access_token": jwt, "token_type": "Bearer", "expires_in": s.ttl.access, "scope": g.scope,
    });
    if g.scope.split(' ').any(|x| x == "openid") {
        let id = IdClaims {
            iss: s.issuer.clone(),
            sub: g.user.user_id.clone(),
            aud: g.client.client_id.clone(),
            azp: g.client.client_id.clone(),
            exp: now + s.ttl.access,
            iat: now,
            auth_time: g.auth_time,
            nonce: g.nonce.map(str::to_owned),
            at_hash: at_hash(&jwt),
        };
        body["id_token"] = s.keys.sign(ID_TOKEN_TYP, &id).map_err(sign_failed)?.into();
    }
    if let Some(family_id) = g.family_id {
        let (refresh, hash) = opaque().map_err(sign_failed)?;
        let tenant = g.client.tenant().map_err(store_failed)?;
        s.store
            .insert_refresh(
                &tenant,
                &NewRefresh {
                    token_hash: hash,
                    family_id: family_id.to_owned(),
                    scope: g.refresh_scope.to_owned(),
                    expires_at: now + s.ttl.refresh,
                    access_jti: claims.jti.clone(),
                    access_exp: claims.exp,
                },
            )
            .await
            .map_err(store_failed)?;
        body["refresh_token"] = refresh.into();
    }
    Ok(body)
}

const CODE_INVALID: &str = "the authorization code is invalid, expired or was already used";

async fn authorization_code(
    s: &AppState,
    from: IpAddr,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let client = authenticate_client(s, from, headers, params, Public::Allowed).await?;
    require_grant(&client, "authorization_code")?;
    let code = params.get("code").ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let hash = opaque_hash(code);
    // The code is looked up in the client's tenant: codes live with their client (and user).
    let tenant = client.tenant().map_err(store_failed)?;
    let row = s.store.code(&tenant, &hash).await.map_err(store_failed)?;
    let Some(row) = row.filter(|r| r.client_id == client.client_id) else {
        return Err(OAuthError::invalid_grant(CODE_INVALID));
    };
    if row.used_at.is_some() {
        revoke_code_tokens(s, &tenant, &row).await?;
        return Err(OAuthError::invalid_grant(CODE_INVALID));
    }
    if row.expires_at < now() {
        return Err(OAuthError::invalid_grant(CODE_INVALID));
    }
    match params.get("redirect_uri") {
        None => return Err(OAuthError::invalid_request("redirect_uri is missing")),
        Some(uri) if *uri != row.redirect_uri => {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request's"));
        }
        Some(_) => {}
    }
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is missing: PKCE (S256) is required"))?;
    if !pkce_s256_matches(verifier, &row.code_challenge) {
        return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
    }
    let user = s.store.user(&tenant, &row.user_id).await.map_err(store_failed)?;
    let user = user.ok_or_else(|| OAuthError::invalid_grant(CODE_INVALID))?;
    let refreshable = client.grant_types.iter().any(|g| g == "refresh_token");
    let family_id = refreshable.then(|| uuid::Uuid::new_v4().to_string());
    if let Some(family_id) = &family_id {
        let family = NewFamily {
            family_id,
            client_id: &client.client_id,
            user_id: &user.user_id,
            auth_time: row.auth_time,
            session_hash: row.session_hash.as_deref(),
        };
        s.store.insert_family(&tenant, &family).await.map_err(store_failed)?;
    }
    let jti = uuid::Uuid::new_v4().to_string();
    let iat = now();
    let access_exp = iat + s.ttl.access;
    let won = s
        .store
        .consume_code(&tenant, &hash, &jti, access_exp, family_id.as_deref())
        .await
        .map_err(store_failed)?;
    if !won {
        // A concurrent exchange consumed it first: this is a replay too.
        if let Some(row) = s.store.code(&tenant, &hash).await.map_err(store_failed)? {
            revoke_code_tokens(s, &tenant, &row).await?;
        }
        return Err(OAuthError::invalid_grant(CODE_INVALID));
    }
    issue_user_tokens(
        s,
        UserGrant {
            client: &client,
            user: &user,
            scope: &row.scope,
            auth_time: row.auth_time,
            nonce: row.nonce.as_deref(),
            family_id: family_id.as_deref(),
            refresh_scope: &row.scope,
            jti,
            iat,
        },
    )
    .await
}

/// A code presented twice: revoke what the first exchange issued.
async fn revoke_code_tokens(s: &AppState, tenant: &TenantKey, row: &AuthCode) -> Result<(), OAuthError> {
    tracing::warn!(client_id = %row.client_id, "authorization code replayed; revoking the tokens it issued");
    if let (Some(jti), Some(exp)) = (&row.access_jti, row.access_exp) {
        s.store.revoke(tenant, jti, exp).await.map_err(store_failed)?;
    }
    if let Some(family_id) = &row.family_id {
        s.store.revoke_family(tenant, family_id).await.map_err(store_failed)?;
    }
    Ok(())
}

const REFRESH_INVALID: &str = "the refresh token is invalid, expired or revoked";

async fn refresh(
    s: &AppState,
    from: IpAddr,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let client = authenticate_client(s, from, headers, params, Public::Allowed).await?;
    require_grant(&client, "refresh_token")?;
    let token =
        params.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let hash = opaque_hash(token);
    let tenant = client.tenant().map_err(store_failed)?;
    let row = s.store.refresh(&tenant, &hash).await.map_err(store_failed)?;
    let Some(row) = row.filter(|r| r.client_id == client.client_id) else {
        return Err(OAuthError::invalid_grant(REFRESH_INVALID));
    };
    let now = now();
    if row.family_revoked || row.expires_at < now || row.family_created_at + s.ttl.refresh_family < now {
        return Err(OAuthError::invalid_grant(REFRESH_INVALID));
    }
    let reused = || async {
        tracing::warn!(client_id = %row.client_id, family = %row.family_id, "refresh token reused; revoking its family");
        s.store.revoke_family(&tenant, &row.family_id).await.map_err(store_failed)?;
        Err(OAuthError::invalid_grant(
            "the refresh token was already used; every token of its family is now revoked",
        ))
    };
    if row.used_at.is_some() {
        return reused().await;
    }
    let allowed: Vec<String> = row.scope.split(' ').map(str::to_owned).collect();
    let scopes = narrow(params.get("scope"), &allowed)?;
    if !s.store.consume_refresh(&tenant, &hash).await.map_err(store_failed)? {
        return reused().await;
    }
    let user = s.store.user(&tenant, &row.user_id).await.map_err(store_failed)?;
    let user = user.ok_or_else(|| OAuthError::invalid_grant(REFRESH_INVALID))?;
    issue_user_tokens(
        s,
        UserGrant {
            client: &client,
            user: &user,
            scope: &scopes.join(" "),
            auth_time: row.auth_time,
            nonce: None,
            family_id: Some(&row.family_id),
            refresh_scope: &row.scope,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
        },
    )
    .await
}
