//! Token exchange (RFC 8693) at `/token`, issuing access tokens and **transaction tokens**
//! (draft-ietf-oauth-transaction-tokens), under a policy per actor (`token_exchange.actors` in
//! the configuration).
//!
//! The caller is the **actor**: an authenticated confidential client with `token-exchange`
//! among its grant types and an entry in the policy. It presents a **subject**: one of our
//! access tokens (unrevoked), ID tokens or transaction tokens; a token of another issuer that
//! the trust store lists and the actor's `subject_issuers` names (verified by `trust-store`:
//! keys, audience, type, and a tenant its issuer is authority for); or — only where its policy
//! says so — an unsigned context of claims it asserts itself. What it gets never says more than the
//! subject did:
//!
//! * the **scope** is the subject's, or fewer scopes (never another);
//! * the **lifetime** ends no later than the subject's own expiry and the actor's
//!   `max_lifetime`, so exchanging a token again and again never extends it;
//! * the **tenant** and roles are the subject's, and the subject must be of the actor's tenant;
//! * a transaction token presented again keeps its `txn` and `tctx`.
//!
//! **Delegation** (an `actor_token`: the caller's own access token) and **impersonation** (no
//! actor token; only for actors with `impersonation: true`) both record the actor in `act`,
//! nested after the subject's own `act`. A subject token carrying `may_act` (RFC 8693 §4.4;
//! tokens of other issuers may) admits only the actor it names.
//!
//! Refusals are RFC 8693 §2.2.2 errors (`invalid_request`, `invalid_scope`, `invalid_target`,
//! `unauthorized_client`) whose description names the rule that refused: never a 500.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::api::{AppState, OAuthError, Public, authenticate_client};
use crate::config::{ActorPolicy, ExchangeConfig};
use crate::store::decode::list as split;
use crate::store::{StoredClient, TenantKey, now};
use crate::token::{require_grant, sign_failed, store_failed};
use crate::tokens::{
    ACCESS_TOKEN_TYP, AccessClaims, Act, Rctx, TXN_TOKEN_TYP, TxnClaims, verify_id_token, verify_txn,
};

/// The grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type identifiers.
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// An OpenID Connect ID token.
pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// A transaction token (the draft's identifier).
pub const TXN_TOKEN: &str = "urn:ietf:params:oauth:token-type:txn_token";
/// A JWT (of another issuer, from the trust store).
pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// An unsigned context: a base64url JSON object of claims the actor asserts. The draft leaves
/// internally initiated transactions to the deployment; this is ours.
pub const UNSIGNED_CONTEXT: &str = "urn:demo:params:oauth:token-type:unsigned-context";

/// The subject token type of an API key (`dak_…`, `crate::apikeys`): exchanged with no client
/// authentication (the key is the credential) for an access token with the key's permissions.
pub const API_KEY: &str = "urn:demo:params:oauth:token-type:api-key";

/// The largest `request_details` (transaction context) or unsigned context accepted, decoded.
const MAX_CONTEXT_BYTES: usize = 2048;
/// The longest `act` chain accepted.
const MAX_ACT_DEPTH: usize = 8;

/// The policy, compiled from the configuration at start.
#[derive(Debug, Clone)]
pub struct ExchangePolicy {
    /// The audience of transaction tokens.
    pub trust_domain: String,
    /// Transaction token lifetime, seconds.
    pub txn_ttl: i64,
    actors: HashMap<String, ActorPolicy>,
}

impl ExchangePolicy {
    /// From `token_exchange:` (already validated) and the issuer (the default trust domain).
    pub fn new(config: &ExchangeConfig, issuer: &str) -> Self {
        Self {
            trust_domain: config.trust_domain.clone().unwrap_or_else(|| issuer.to_owned()),
            txn_ttl: config.txn_token_ttl.map_or(60, |d| i64::try_from(d.as_secs()).unwrap_or(60)),
            actors: config.actors.iter().map(|a| (a.client_id.clone(), a.clone())).collect(),
        }
    }

    /// Whether any client may exchange (discovery lists the grant only then).
    pub fn enabled(&self) -> bool {
        !self.actors.is_empty()
    }
}

/// A short name of a token type identifier.
fn short(urn: &str) -> Option<&'static str> {
    match urn {
        ACCESS_TOKEN => Some("access_token"),
        ID_TOKEN => Some("id_token"),
        TXN_TOKEN => Some("txn_token"),
        JWT => Some("jwt"),
        UNSIGNED_CONTEXT => Some("unsigned_context"),
        _ => None,
    }
}

fn unauthorized(description: String) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
}

fn invalid_scope(description: String) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
}

fn invalid_target(description: String) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description)
}

/// What the subject token (or context) establishes.
struct Subject {
    sub: String,
    tenant_id: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    exp: i64,
    act: Option<Act>,
    /// Who the subject token says may act for it (`may_act.sub`, RFC 8693 §4.4): when set, the
    /// only actor admitted.
    may_act: Option<String>,
    /// A transaction token's id, kept by its replacement.
    txn: Option<String>,
    /// The transaction context the subject brings (a transaction token's, an unsigned
    /// context's); `request_details` may not change it.
    tctx: Option<Map<String, Value>>,
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
pub(crate) async fn exchange(
    s: &AppState,
    from: IpAddr,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    if params.get("subject_token_type").map(String::as_str) == Some(API_KEY) {
        return api_key_exchange(s, headers, params).await;
    }
    let caller = authenticate_client(s, from, headers, params, Public::Refused).await?;
    require_grant(&caller, GRANT_TYPE)?;
    let rule = |field: &str| format!("token_exchange.actors[{}].{field}", caller.client_id);
    let Some(policy) = s.exchange.actors.get(&caller.client_id) else {
        return Err(unauthorized(format!(
            "client {} has no token_exchange.actors entry: it may not exchange tokens",
            caller.client_id
        )));
    };

    // What is asked for.
    let requested = params.get("requested_token_type").map_or(ACCESS_TOKEN, String::as_str);
    let requested_short = match requested {
        ACCESS_TOKEN => "access_token",
        TXN_TOKEN => "txn_token",
        other => {
            return Err(OAuthError::invalid_request(format!(
                "requested_token_type {other:?} is not supported"
            )));
        }
    };
    if !policy.requested_token_types.iter().any(|t| t == requested_short) {
        return Err(unauthorized(format!(
            "{} does not allow {requested_short}",
            rule("requested_token_types")
        )));
    }

    // The subject.
    let subject_token =
        params.get("subject_token").ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    let subject_type = params
        .get("subject_token_type")
        .ok_or_else(|| OAuthError::invalid_request("subject_token_type is missing"))?;
    let subject_short = short(subject_type).ok_or_else(|| {
        OAuthError::invalid_request(format!("subject_token_type {subject_type:?} is not supported"))
    })?;
    if !policy.subject_token_types.iter().any(|t| t == subject_short) {
        return Err(unauthorized(format!("{} does not allow {subject_short}", rule("subject_token_types"))));
    }
    let subject = match subject_short {
        "unsigned_context" => {
            if requested_short != "txn_token" {
                return Err(unauthorized(format!(
                    "an unsigned context yields transaction tokens only ({} asks for {requested_short})",
                    rule("requested_token_types")
                )));
            }
            unsigned_context(subject_token, policy, &caller, &rule("unsigned_context_claims"))?
        }
        kind => match trust_store::unverified_issuer(subject_token).filter(|iss| *iss != s.issuer) {
            // Another issuer's token: through the trust store, if the actor may present its tokens.
            Some(iss) if matches!(kind, "access_token" | "jwt") => {
                if !policy.subject_issuers.contains(&iss) {
                    return Err(unauthorized(format!("{} does not list {iss}", rule("subject_issuers"))));
                }
                external_subject(s, subject_token).await?
            }
            _ if kind == "jwt" => {
                return Err(OAuthError::invalid_request(
                    "subject_token_type jwt is for tokens of other issuers; use access_token, id_token or txn_token for ours",
                ));
            }
            _ => {
                if !policy.subject_issuers.iter().any(|i| i == "self") {
                    return Err(unauthorized(format!("{} does not list self", rule("subject_issuers"))));
                }
                verified_subject(s, kind, subject_token).await?
            }
        },
    };
    if subject.tenant_id != caller.tenant_id {
        return Err(unauthorized(format!(
            "the subject is of another tenant than client {}: an actor exchanges its own tenant's tokens only",
            caller.client_id
        )));
    }

    // Delegation or impersonation; `act` either way.
    let actor = match params.get("actor_token") {
        Some(actor_token) => {
            if !policy.delegation {
                return Err(unauthorized(format!("{} is false", rule("delegation"))));
            }
            match params.get("actor_token_type").map(String::as_str) {
                Some(ACCESS_TOKEN) => {}
                Some(other) => {
                    return Err(OAuthError::invalid_request(format!(
                        "actor_token_type {other:?} is not supported"
                    )));
                }
                None => return Err(OAuthError::invalid_request("actor_token_type is missing")),
            }
            let claims = crate::api::verified_access(s, actor_token)
                .ok_or_else(|| OAuthError::invalid_request("actor_token is invalid or expired"))?;
            if claims.client_id != caller.client_id {
                return Err(OAuthError::invalid_request(
                    "actor_token was issued to another client than the one authenticated",
                ));
            }
            revoked_refused(s, &claims.tenant_id, &claims.jti, "actor_token").await?;
            claims.sub.clone()
        }
        None => {
            if params.contains_key("actor_token_type") {
                return Err(OAuthError::invalid_request("actor_token_type without an actor_token"));
            }
            if !policy.impersonation && subject_short != "unsigned_context" {
                return Err(unauthorized(format!(
                    "{} is false: without an actor_token this would be impersonation",
                    rule("impersonation")
                )));
            }
            caller.client_id.clone()
        }
    };
    if let Some(may_act) = &subject.may_act
        && *may_act != actor
    {
        return Err(unauthorized(format!(
            "the subject token's may_act admits {may_act:?} only, not {actor:?}"
        )));
    }
    let act = Act::chain(&actor, subject.act.as_ref());
    if act.depth() > MAX_ACT_DEPTH {
        return Err(OAuthError::invalid_request(format!(
            "the act chain is longer than {MAX_ACT_DEPTH} actors"
        )));
    }

    // Scope: the subject's or fewer.
    let scopes = match params.get("scope") {
        None => subject.scopes.clone(),
        Some(asked) => {
            let asked = split(asked);
            if let Some(wider) = asked.iter().find(|x| !subject.scopes.contains(x)) {
                return Err(invalid_scope(format!(
                    "scope {wider:?} is not in the subject token's scope: an exchange only narrows"
                )));
            }
            asked
        }
    };
    let scope = scopes.join(" ");

    // Lifetime: never past the subject's expiry or the actor's maximum.
    let now = now();
    let max = i64::try_from(policy.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    let ttl = if requested_short == "txn_token" { s.exchange.txn_ttl } else { s.ttl.access };
    let exp = (now + ttl).min(now + max).min(subject.exp);
    if exp <= now {
        return Err(OAuthError::invalid_request("the subject token has expired"));
    }

    let audience = params.get("audience").or_else(|| params.get("resource"));
    let body = if requested_short == "txn_token" {
        if let Some(a) = audience
            && *a != s.exchange.trust_domain
        {
            return Err(invalid_target(format!(
                "a transaction token's audience is the trust domain {:?}, not {a:?}",
                s.exchange.trust_domain
            )));
        }
        let tctx = match subject.tctx {
            Some(_) if params.contains_key("request_details") => {
                return Err(OAuthError::invalid_request(
                    "request_details cannot change the transaction context the subject brings",
                ));
            }
            Some(tctx) => tctx,
            None => request_details(params)?,
        };
        let txn = subject.txn.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let claims = TxnClaims {
            iss: s.issuer.clone(),
            aud: s.exchange.trust_domain.clone(),
            iat: now,
            exp,
            txn,
            sub: subject.sub,
            scope: scope.clone(),
            tenant_id: subject.tenant_id,
            roles: subject.roles,
            tctx,
            rctx: Rctx { req_wl: caller.client_id.clone(), req_ip: from.to_string() },
            act: Some(act),
        };
        let jwt = s.keys.sign(TXN_TOKEN_TYP, &claims).map_err(sign_failed)?;
        tracing::info!(txn = %claims.txn, actor = %caller.client_id, subject = %claims.sub, "transaction token issued");
        serde_json::json!({
            "access_token": jwt, "issued_token_type": TXN_TOKEN, "token_type": "N_A",
            "expires_in": exp - now, "scope": scope,
        })
    } else {
        let audience = match audience {
            Some(a) if policy.audiences.contains(a) => a.clone(),
            Some(a) => return Err(invalid_target(format!("{} does not list {a:?}", rule("audiences")))),
            None => policy.audiences.first().cloned().ok_or_else(|| {
                invalid_target(format!("{} is empty: ask for an audience it lists", rule("audiences")))
            })?,
        };
        let claims = AccessClaims {
            iss: s.issuer.clone(),
            sub: subject.sub,
            aud: audience,
            exp,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: caller.client_id.clone(),
            scope: scope.clone(),
            tenant_id: subject.tenant_id,
            roles: subject.roles,
            act: Some(act),
        };
        let jwt = s.keys.sign(ACCESS_TOKEN_TYP, &claims).map_err(sign_failed)?;
        serde_json::json!({
            "access_token": jwt, "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer",
            "expires_in": exp - now, "scope": scope,
        })
    };
    Ok(body)
}

/// An API key for an access token (the TAuth pattern): the key is the credential, so no client
/// authenticates and no `act` is recorded. The token carries the key's permissions (or fewer:
/// `scope`), one of `api_keys.token_audiences` (`audience`/`resource`), and lives at most the
/// access token lifetime, `requested_lifetime` seconds if shorter, and never past the key's own
/// expiry. Its `client_id` is `api-key:<key id>`, which says what minted it.
async fn api_key_exchange(
    s: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let config = &s.api_keys.config;
    if config.token_audiences.is_empty() {
        return Err(unauthorized(
            "API keys are not exchanged here (api_keys.token_audiences is empty)".into(),
        ));
    }
    if headers.contains_key(axum::http::header::AUTHORIZATION)
        || ["client_id", "client_secret", "actor_token", "actor_token_type"]
            .iter()
            .any(|p| params.contains_key(*p))
    {
        return Err(OAuthError::invalid_request(
            "an API key is its own credential: send no client authentication and no actor_token",
        ));
    }
    match params.get("requested_token_type").map(String::as_str) {
        None | Some(ACCESS_TOKEN) => {}
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "an API key is exchanged for an access token only, not {other:?}"
            )));
        }
    }
    let key =
        params.get("subject_token").ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    let (tenant, row, permissions, roles) =
        match crate::apikeys::verify(s, key).await.map_err(store_failed)? {
            crate::apikeys::Verdict::Active { tenant, row, permissions, roles } => {
                (tenant, row, permissions, roles)
            }
            // Only a malformed key (decided offline) is named: whether a key id exists is
            // nobody's business here, where no one authenticates.
            crate::apikeys::Verdict::Inactive("malformed") => {
                return Err(OAuthError::invalid_request("the API key is not valid: malformed"));
            }
            crate::apikeys::Verdict::Inactive(_) => {
                return Err(OAuthError::invalid_request("the API key is not valid"));
            }
        };
    // Impersonation is a key's, never a token's.
    let permissions: Vec<String> =
        permissions.into_iter().filter(|p| p != crate::apikeys::IMPERSONATE).collect();
    let scopes = match params.get("scope") {
        None => permissions,
        Some(asked) => {
            let asked = split(asked);
            if let Some(wider) = asked.iter().find(|x| !permissions.contains(x)) {
                return Err(invalid_scope(format!(
                    "scope {wider:?} is not among the API key's permissions: an exchange only narrows"
                )));
            }
            asked
        }
    };
    let audience = match params.get("audience").or_else(|| params.get("resource")) {
        Some(a) if config.token_audiences.contains(a) => a.clone(),
        Some(a) => return Err(invalid_target(format!("api_keys.token_audiences does not list {a:?}"))),
        None => config.token_audiences[0].clone(),
    };
    let now = now();
    let mut ttl = s.ttl.access;
    if let Some(asked) = params.get("requested_lifetime") {
        match asked.parse::<i64>() {
            Ok(secs) if (1..=s.ttl.access).contains(&secs) => ttl = secs,
            _ => {
                return Err(OAuthError::invalid_request(format!(
                    "requested_lifetime must be 1 to {} seconds",
                    s.ttl.access
                )));
            }
        }
    }
    let exp = row.expires_at.map_or(now + ttl, |key_exp| (now + ttl).min(key_exp));
    if exp <= now {
        return Err(OAuthError::invalid_request("the API key is not valid"));
    }
    let scope = scopes.join(" ");
    let claims = AccessClaims {
        iss: s.issuer.clone(),
        sub: row.owner_id.clone(),
        aud: audience,
        exp,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: format!("api-key:{}", row.key_id),
        scope: scope.clone(),
        tenant_id: tenant.canonical(),
        roles,
        act: None,
    };
    let jwt = s.keys.sign(ACCESS_TOKEN_TYP, &claims).map_err(sign_failed)?;
    tracing::info!(key_id = %row.key_id, owner = %row.owner_id, tenant = %claims.tenant_id, "API key exchanged for an access token");
    Ok(serde_json::json!({
        "access_token": jwt, "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer",
        "expires_in": exp - now, "scope": scope,
    }))
}

/// Refuses a token whose `jti` is recorded as revoked in its tenant.
async fn revoked_refused(s: &AppState, tenant_id: &str, jti: &str, what: &str) -> Result<(), OAuthError> {
    let Ok(tenant) = TenantKey::parse(tenant_id) else {
        return Err(OAuthError::invalid_request(format!("{what} is invalid")));
    };
    if s.store.is_revoked(&tenant, jti).await.map_err(store_failed)? {
        return Err(OAuthError::invalid_request(format!("{what} has been revoked")));
    }
    Ok(())
}

/// Verifies a subject token of ours of `kind` and reads what it establishes.
async fn verified_subject(s: &AppState, kind: &str, token: &str) -> Result<Subject, OAuthError> {
    let invalid = || {
        OAuthError::invalid_request(format!(
            "subject_token is not a valid {kind} of this issuer (or has expired)"
        ))
    };
    match kind {
        "access_token" => {
            let c = crate::api::verified_access(s, token).ok_or_else(invalid)?;
            revoked_refused(s, &c.tenant_id, &c.jti, "subject_token").await?;
            Ok(Subject {
                sub: c.sub.clone(),
                tenant_id: c.tenant_id.clone(),
                roles: c.roles.clone(),
                scopes: split(&c.scope),
                exp: c.exp,
                act: c.act.clone(),
                may_act: None,
                txn: None,
                tctx: None,
            })
        }
        "id_token" => {
            let c = verify_id_token(&s.keys, &s.issuer, token).ok_or_else(invalid)?;
            // An ID token names its client; the user is of that client's tenant.
            let client = s.store.client(&c.aud).await.map_err(store_failed)?.ok_or_else(invalid)?;
            let tenant = client.tenant().map_err(store_failed)?;
            let user = s.store.user(&tenant, &c.sub).await.map_err(store_failed)?.ok_or_else(invalid)?;
            Ok(Subject {
                sub: c.sub,
                tenant_id: user.tenant_id,
                roles: user.roles,
                // An ID token authorizes nothing by itself: the result carries only what the
                // client was granted for its user, `openid` aside.
                scopes: client.scopes.into_iter().filter(|x| x != "openid").collect(),
                exp: c.exp,
                act: None,
                may_act: None,
                txn: None,
                tctx: None,
            })
        }
        _ => {
            let c = verify_txn(&s.keys, &s.issuer, &s.exchange.trust_domain, token).ok_or_else(invalid)?;
            Ok(Subject {
                sub: c.sub,
                tenant_id: c.tenant_id,
                roles: c.roles,
                scopes: split(&c.scope),
                exp: c.exp,
                act: c.act,
                may_act: None,
                txn: Some(c.txn),
                tctx: Some(c.tctx),
            })
        }
    }
}

/// A token of another issuer, verified by the trust store (keys, audience, type, and a tenant it
/// is authority for); its scope and roles are what it says, its revocation its issuer's
/// business.
async fn external_subject(s: &AppState, token: &str) -> Result<Subject, OAuthError> {
    let Some(trust) = &s.trust else {
        return Err(OAuthError::invalid_request(
            "no trust store is configured: tokens of other issuers are not accepted",
        ));
    };
    let verified = trust
        .current()
        .verify(token)
        .await
        .map_err(|refusal| OAuthError::invalid_request(format!("subject_token refused: {refusal}")))?;
    let c = &verified.claims;
    let text = |name: &str| c.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(Subject {
        sub: text("sub").ok_or_else(|| OAuthError::invalid_request("subject_token has no sub"))?,
        tenant_id: verified.tenant.canonical(),
        roles: c
            .get("roles")
            .and_then(|r| r.as_array())
            .map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        scopes: split(&text("scope").unwrap_or_default()),
        exp: c.get("exp").and_then(serde_json::Value::as_i64).unwrap_or(0),
        act: c.get("act").and_then(|a| serde_json::from_value(a.clone()).ok()),
        may_act: c.get("may_act").and_then(|m| m.get("sub")).and_then(|s| s.as_str()).map(str::to_owned),
        txn: None,
        tctx: None,
    })
}

/// An unsigned context: a base64url JSON object of claims the actor asserts, limited to the
/// claims its policy lists; the tenant and roles are the actor's own, the scope at most the
/// actor's.
fn unsigned_context(
    token: &str,
    policy: &ActorPolicy,
    caller: &StoredClient,
    rule: &str,
) -> Result<Subject, OAuthError> {
    let object = decode_object(token, "subject_token (unsigned context)")?;
    if let Some(bad) = object.keys().find(|k| !policy.unsigned_context_claims.contains(k)) {
        return Err(unauthorized(format!("{rule} does not allow the claim {bad:?}")));
    }
    let sub = object
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| OAuthError::invalid_request("the unsigned context needs a string `sub`"))?;
    let scopes = match object.get("scope") {
        None => caller.scopes.clone(),
        Some(Value::String(scope)) => {
            let asked = split(scope);
            if let Some(wider) = asked.iter().find(|x| !caller.scopes.contains(x)) {
                return Err(invalid_scope(format!(
                    "scope {wider:?} is beyond client {}'s own",
                    caller.client_id
                )));
            }
            asked
        }
        Some(_) => {
            return Err(OAuthError::invalid_request("the unsigned context's `scope` must be a string"));
        }
    };
    let tctx = match object.get("tctx") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            return Err(OAuthError::invalid_request("the unsigned context's `tctx` must be an object"));
        }
    };
    Ok(Subject {
        sub: sub.to_owned(),
        tenant_id: caller.tenant_id.clone(),
        roles: caller.roles.clone(),
        scopes,
        exp: i64::MAX,
        act: None,
        may_act: None,
        txn: None,
        tctx,
    })
}

/// `request_details`: the transaction context, a base64url JSON object (absent: empty).
fn request_details(params: &HashMap<String, String>) -> Result<Map<String, Value>, OAuthError> {
    match params.get("request_details") {
        None => Ok(Map::new()),
        Some(text) => decode_object(text, "request_details"),
    }
}

fn decode_object(text: &str, what: &str) -> Result<Map<String, Value>, OAuthError> {
    let bad = |why: &str| OAuthError::invalid_request(format!("{what} {why}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| bad("is not base64url"))?;
    if bytes.len() > MAX_CONTEXT_BYTES {
        return Err(bad(&format!("is larger than {MAX_CONTEXT_BYTES} bytes")));
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad("is not a JSON object")),
    }
}
