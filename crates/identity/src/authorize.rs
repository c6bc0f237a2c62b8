//! The browser endpoints: `/authorize` (sign-in and consent form, authorization codes) and
//! `/end_session` (RP-initiated logout).
//!
//! Order of checks in an authorization request (RFC 6749 §4.1.2.1, OAuth 2.1 §4.1.2.1): the
//! client and its **exactly** registered redirect URI come first, and until both hold, errors
//! are shown as a page, never redirected — an attacker cannot use us as an open redirector. After
//! that, errors go back to the client with `state` and `iss` (RFC 9207).
//!
//! Cookies: the session is `__Host-session` (Secure, HttpOnly, SameSite=Lax: it must survive
//! the top-level navigation from the client), the CSRF token `__Host-csrf` (Secure, HttpOnly,
//! SameSite=Lax) is double-submitted by the form and compared in constant time. Only hashes
//! of session ids and codes are stored.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use service_kit::password::{self, PasswordHashString};
use service_kit::throttle::{PeerAddr, Refused};

use crate::api::{AppState, is_form, params};
use crate::html;
use crate::store::{AuthCode, Session, StoredClient, StoredUser, TenantKey, now};
use crate::tokens::{opaque, opaque_hash, verify_id_token_hint};

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-session";
/// The CSRF double-submit cookie.
pub const CSRF_COOKIE: &str = "__Host-csrf";
/// Longest `state` or `nonce` accepted.
const MAX_PARAM: usize = 512;

/// A cookie's value from the `Cookie` headers. A few lines instead of a cookie crate: we read
/// two cookies of our own whose values are base64url.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(name: &str, value: &str, max_age: i64, same_site: &str) -> HeaderValue {
    let text = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}");
    // Our values are base64url and our names are constants: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A validated authorization request.
#[derive(Debug)]
struct AuthRequest {
    client: StoredClient,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    /// `prompt` contains `login`: a password now, whatever the session.
    prompt_login: bool,
    /// OIDC `max_age`: a session older than this many seconds needs a password.
    max_age: Option<i64>,
    max_age_text: Option<String>,
}

impl AuthRequest {
    /// The request again, as the form's hidden fields.
    fn hidden<'a>(&'a self, csrf: &'a str, scope: &'a str) -> Vec<(&'static str, &'a str)> {
        let mut fields = vec![
            ("scope", scope),
            ("response_type", "code"),
            ("client_id", self.client.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_challenge", self.code_challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("csrf", csrf),
        ];
        if let Some(state) = &self.state {
            fields.push(("state", state));
        }
        if let Some(nonce) = &self.nonce {
            fields.push(("nonce", nonce));
        }
        if self.prompt_login {
            fields.push(("prompt", "login"));
        }
        if let Some(max_age) = &self.max_age_text {
            fields.push(("max_age", max_age));
        }
        fields
    }

    /// Whether an existing session may answer this request (no new password).
    fn session_suffices(&self, session: &Session) -> bool {
        !self.prompt_login && self.max_age.is_none_or(|max| now() - session.auth_time <= max)
    }

    fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// Why an authorization request stops.
#[derive(Debug)]
enum Refusal {
    /// Shown to the person: the client or redirect URI cannot be trusted (or the form is not ours).
    Page(StatusCode, String),
    /// Sent back to the client's verified redirect URI.
    Redirect { redirect_uri: String, error: &'static str, description: String, state: Option<String> },
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `uri` with `pairs` appended to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

impl Refusal {
    fn respond(self, issuer: &str) -> Response {
        match self {
            Self::Page(status, message) => html::error_page(status, &message),
            Self::Redirect { redirect_uri, error, description, state } => {
                let mut pairs = vec![("error", error), ("error_description", description.as_str())];
                if let Some(state) = &state {
                    pairs.push(("state", state));
                }
                pairs.push(("iss", issuer));
                redirect(&with_query(&redirect_uri, &pairs))
            }
        }
    }
}

async fn validate(s: &AppState, p: &HashMap<String, String>) -> Result<AuthRequest, Refusal> {
    let page = |m: &str| Refusal::Page(StatusCode::BAD_REQUEST, m.to_owned());
    let client_id = p.get("client_id").ok_or_else(|| page("The request has no client_id."))?;
    let client = s.store.client(client_id).await.map_err(|e| {
        let (status, message) = storage_failed(&e, "client lookup");
        Refusal::Page(status, message.into())
    })?;
    let client = client.ok_or_else(|| page("The application is not registered here."))?;
    let redirect_uri = p.get("redirect_uri").ok_or_else(|| page("The request has no redirect_uri."))?;
    // Exact string comparison: no prefix, case, trailing-slash or port leniency.
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(page("The redirect_uri is not registered for this application."));
    }
    let state = p.get("state").cloned();
    let refuse = |error: &'static str, description: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: state.clone().filter(|s| s.len() <= MAX_PARAM),
    };
    if p.contains_key("request") {
        return Err(refuse("request_not_supported", "request objects are not supported"));
    }
    if p.contains_key("request_uri") {
        return Err(refuse("request_uri_not_supported", "request_uri is not supported"));
    }
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => return Err(refuse("invalid_request", "response_type is missing")),
        Some(_) => return Err(refuse("unsupported_response_type", "only response_type=code is supported")),
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(refuse("unauthorized_client", "this client may not use the authorization code grant"));
    }
    match p.get("code_challenge_method").map(String::as_str) {
        Some("S256") => {}
        Some(_) => {
            return Err(refuse("invalid_request", "code_challenge_method must be S256 (plain is refused)"));
        }
        None => return Err(refuse("invalid_request", "PKCE is required: send code_challenge_method=S256")),
    }
    let code_challenge = p
        .get("code_challenge")
        .filter(|c| c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .ok_or_else(|| {
            refuse("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
        })?
        .clone();
    if state.as_ref().is_some_and(|s| s.len() > MAX_PARAM)
        || p.get("nonce").is_some_and(|n| n.len() > MAX_PARAM)
    {
        return Err(refuse("invalid_request", "state and nonce are limited to 512 characters"));
    }
    let scopes: Vec<String> = match p.get("scope") {
        Some(scope) => scope.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect(),
        None => client.scopes.clone(),
    };
    if let Some(bad) = scopes.iter().find(|x| !client.scopes.contains(x)) {
        let _ = bad; // never echoed: it is attacker-controlled text going to the redirect URI
        return Err(refuse("invalid_scope", "a requested scope is not allowed for this client"));
    }
    // `prompt` is a space-separated set (OIDC Core §3.1.2.1).
    let prompts: Vec<&str> =
        p.get("prompt").map(|v| v.split(' ').filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    if prompts.iter().any(|x| !["none", "login", "consent"].contains(x)) {
        return Err(refuse("invalid_request", "prompt may hold none, login and consent only"));
    }
    if prompts.contains(&"none") {
        if prompts.len() > 1 {
            return Err(refuse("invalid_request", "prompt=none cannot be combined with other values"));
        }
        // Consent is asked every time and never remembered, so nothing can happen silently.
        return Err(refuse("consent_required", "this server always asks for consent"));
    }
    let max_age =
        match p.get("max_age") {
            None => None,
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                refuse("invalid_request", "max_age must be a non-negative number of seconds")
            })?),
        };
    Ok(AuthRequest {
        client,
        redirect_uri: redirect_uri.clone(),
        scopes,
        state,
        nonce: p.get("nonce").cloned(),
        code_challenge,
        prompt_login: prompts.contains(&"login"),
        max_age,
        max_age_text: max_age.map(|n| n.to_string()),
    })
}

/// The signed-in user of this browser, if any (looked up in the tenant the session names).
async fn current_session(s: &AppState, headers: &HeaderMap) -> Option<(Session, StoredUser)> {
    let value = cookie(headers, SESSION_COOKIE)?;
    let session = s.store.session(&opaque_hash(&value)).await.ok()??;
    let tenant = TenantKey::parse(&session.tenant_id).ok()?;
    let user = s.store.user(&tenant, &session.user_id).await.ok()??;
    Some((session, user))
}

/// The signed-in user of this browser if they may use the session for `request`: a user of the
/// client's tenant (each tenant's users sign in to its own clients only), recently enough.
async fn session_for(
    s: &AppState,
    headers: &HeaderMap,
    request: &AuthRequest,
) -> Option<(Session, StoredUser)> {
    current_session(s, headers).await.filter(|(session, _)| {
        session.tenant_id == request.client.tenant_id && request.session_suffices(session)
    })
}

/// The CSRF token this browser already holds, or a new one (with the cookie that sets it).
fn csrf_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(value) = cookie(headers, CSRF_COOKIE).filter(|v| v.len() == 43) {
        return (value, None);
    }
    match opaque() {
        Ok((value, _)) => {
            // Lax, not Strict: a Strict cookie is not sent on the top-level navigation from the
            // client, so every new request would replace it and break a form open in another
            // tab. The protection is the double submit and the __Host- prefix.
            let cookie = set_cookie(CSRF_COOKIE, &value, 3600, "Lax");
            (value, Some(cookie))
        }
        // No randomness: a token nobody can submit (the form then fails safely).
        Err(_) => (String::new(), None),
    }
}

/// Double-submit check: the form's `csrf` equals the cookie's, compared in constant time.
fn csrf_ok(headers: &HeaderMap, p: &HashMap<String, String>) -> bool {
    match (cookie(headers, CSRF_COOKIE), p.get("csrf")) {
        (Some(c), Some(f)) if !c.is_empty() => {
            aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), f.as_bytes()).is_ok()
        }
        _ => false,
    }
}

/// The sign-in and consent form; `username` is filled in again after a failed sign-in.
fn login_form(
    s: &AppState,
    status: StatusCode,
    request: &AuthRequest,
    headers: &HeaderMap,
    signed_in_as: Option<&str>,
    username: Option<&str>,
    error: Option<html::FormError<'_>>,
) -> Response {
    let scope = request.scope();
    let client = &request.client;
    with_csrf(headers, |csrf| {
        let hidden = request.hidden(csrf, &scope);
        let view = html::LoginView {
            app_name: client.display_name.as_deref().unwrap_or(&client.client_id),
            client_id: &client.client_id,
            tenant: s.consent.tenant(&client.tenant_id),
            scopes: request.scopes.iter().map(|x| (x.as_str(), s.consent.describe(x))).collect(),
            hidden: &hidden,
            signed_in_as,
            username,
            error,
        };
        html::login_page(status, &view)
    })
}

/// A page with a form: `page` gets this browser's CSRF token, and the cookie that sets it is
/// appended when the browser had none.
fn with_csrf(headers: &HeaderMap, page: impl FnOnce(&str) -> Response) -> Response {
    let (csrf, set) = csrf_token(headers);
    let mut response = page(&csrf);
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

/// The query of a browser request; a malformed one is answered with an error page.
fn query_params(query: Option<String>) -> Result<HashMap<String, String>, Box<Response>> {
    params(query.unwrap_or_default().as_bytes())
        .map_err(|e| Box::new(html::error_page(StatusCode::BAD_REQUEST, &e)))
}

/// `GET /authorize`: validates the request and shows the sign-in and consent form.
pub(crate) async fn authorize_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let p = match query_params(query) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    let request = match validate(&s, &p).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&s.issuer),
    };
    let session = session_for(&s, &headers, &request).await;
    let signed_in_as = session.as_ref().map(|(_, u)| u.username.as_str());
    login_form(&s, StatusCode::OK, &request, &headers, signed_in_as, None, None)
}

/// A storage failure on a page, logged here: 503 while the database is unavailable, else 500.
fn storage_failed(e: &crate::store::StoreError, what: &'static str) -> (StatusCode, &'static str) {
    if e.is_unavailable() {
        tracing::warn!(error = %e, what, "database unavailable");
        (StatusCode::SERVICE_UNAVAILABLE, "The service cannot reach its database; try again in a moment.")
    } else {
        tracing::error!(error = %e, what, "storage failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal error; see the server log.")
    }
}

/// Why a password sign-in failed.
#[derive(Clone, Copy)]
enum LoginFailure {
    Invalid,
    Throttled(Refused),
    /// Storage failed: the status and the page's words (`storage_failed`).
    Storage(StatusCode, &'static str),
}

async fn verify_user(
    s: &AppState,
    from: IpAddr,
    tenant: &TenantKey,
    username: &str,
    password: SecretString,
) -> Result<StoredUser, LoginFailure> {
    // A name longer than any seeded one cannot exist: refuse it before it reaches the throttle.
    if username.len() > 64 {
        return Err(LoginFailure::Invalid);
    }
    let attempt = s.logins.begin(&username.to_ascii_lowercase(), from).map_err(LoginFailure::Throttled)?;
    let result = async {
        // Owned: it moves into the blocking task, so a cancelled request cannot free it early.
        let slot = s.logins.slot().await.map_err(LoginFailure::Throttled)?;
        let user = s.store.user_by_name(tenant, username).await.map_err(|e| {
            let (status, message) = storage_failed(&e, "user lookup");
            LoginFailure::Storage(status, message)
        })?;
        let hash = user.as_ref().and_then(|u| PasswordHashString::parse(&u.password_hash).ok());
        let ok = tokio::task::spawn_blocking(move || match (hash, slot) {
            (Some(hash), _slot) => hash.verify(&password),
            (None, _slot) => {
                // Unknown user: spend the same time, reveal nothing.
                password::dummy_verify(&password);
                false
            }
        })
        .await
        .unwrap_or(false);
        match user {
            Some(user) if ok => Ok(user),
            _ => Err(LoginFailure::Invalid),
        }
    }
    .await;
    match &result {
        Ok(_) => attempt.finish(true),
        Err(LoginFailure::Invalid) => attempt.finish(false),
        // Busy or storage: says nothing about the password; released, not counted.
        Err(_) => drop(attempt),
    }
    result
}

/// `POST /authorize`: the form's answer. Checks the CSRF token, signs the user in (or uses the
/// session), then redirects with a code — or with `access_denied` on "Deny".
pub(crate) async fn authorize_post(
    State(s): State<AppState>,
    PeerAddr(from): PeerAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        return html::error_page(StatusCode::UNSUPPORTED_MEDIA_TYPE, "The form was not sent as a form.");
    }
    let p = match params(&body) {
        Ok(p) => p,
        Err(e) => return html::error_page(StatusCode::BAD_REQUEST, &e),
    };
    let request = match validate(&s, &p).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&s.issuer),
    };
    if !csrf_ok(&headers, &p) {
        return html::error_page(
            StatusCode::FORBIDDEN,
            "The sign-in form expired or did not come from this site.",
        );
    }
    match p.get("action").map(String::as_str) {
        Some("allow") => {}
        Some("deny") => {
            return Refusal::Redirect {
                redirect_uri: request.redirect_uri.clone(),
                error: "access_denied",
                description: "the user denied the request".into(),
                state: request.state.clone(),
            }
            .respond(&s.issuer);
        }
        _ => return html::error_page(StatusCode::BAD_REQUEST, "The form has no valid action."),
    }
    // Users sign in to the clients of their own tenant: the name is looked up there only.
    let tenant = match request.client.tenant() {
        Ok(t) => t,
        Err(e) => {
            let (status, message) = storage_failed(&e, "client tenant");
            return html::error_page(status, message);
        }
    };
    let mut new_session = None;
    let session_hash;
    let (user, auth_time) = match p.get("username") {
        Some(username) => {
            let password = SecretString::from(p.get("password").cloned().unwrap_or_default());
            match verify_user(&s, from, &tenant, username, password).await {
                Ok(user) => {
                    let auth_time = now();
                    // A new sign-in replaces this browser's previous session (no fixation, no
                    // orphaned session rows).
                    end_session_row(&s, &headers).await;
                    match start_session(&s, &user, auth_time).await {
                        Ok((cookie, hash)) => {
                            new_session = Some(cookie);
                            session_hash = Some(hash);
                        }
                        Err(response) => return response,
                    }
                    (user, auth_time)
                }
                Err(failure) => {
                    let (status, message) = match &failure {
                        // 400, not 401: a form, not an HTTP authentication scheme.
                        LoginFailure::Invalid => (StatusCode::BAD_REQUEST, "Invalid username or password."),
                        LoginFailure::Throttled(Refused::Locked { .. }) => (
                            StatusCode::TOO_MANY_REQUESTS,
                            "Too many failed sign-ins; wait a little and try again.",
                        ),
                        LoginFailure::Throttled(Refused::Busy) => {
                            (StatusCode::SERVICE_UNAVAILABLE, "The server is busy; try again in a moment.")
                        }
                        LoginFailure::Storage(status, message) => (*status, *message),
                    };
                    let error =
                        html::FormError { message, fields_invalid: matches!(failure, LoginFailure::Invalid) };
                    let mut response =
                        login_form(&s, status, &request, &headers, None, Some(username), Some(error));
                    if let LoginFailure::Throttled(Refused::Locked { retry_after }) = failure
                        && let Ok(value) = HeaderValue::from_str(&retry_after.to_string())
                    {
                        response.headers_mut().insert(header::RETRY_AFTER, value);
                    }
                    return response;
                }
            }
        }
        None => match session_for(&s, &headers, &request).await {
            Some((session, user)) => {
                session_hash = cookie(&headers, SESSION_COOKIE).map(|v| opaque_hash(&v));
                (user, session.auth_time)
            }
            _ => {
                let error = html::FormError {
                    message: "Your session has ended; sign in again.",
                    fields_invalid: false,
                };
                return login_form(&s, StatusCode::BAD_REQUEST, &request, &headers, None, None, Some(error));
            }
        },
    };
    let (code, hash) = match opaque() {
        Ok(pair) => pair,
        Err(_) => {
            return html::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error; see the server log.",
            );
        }
    };
    let row = AuthCode {
        client_id: request.client.client_id.clone(),
        user_id: user.user_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        auth_time,
        expires_at: now() + s.ttl.code,
        used_at: None,
        access_jti: None,
        access_exp: None,
        family_id: None,
        session_hash,
    };
    if let Err(e) = s.store.insert_code(&tenant, &hash, &row).await {
        let (status, message) = storage_failed(&e, "storing a code");
        return html::error_page(status, message);
    }
    tracing::info!(client_id = %request.client.client_id, user = %user.username, "authorization code issued");
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &s.issuer));
    let mut response = redirect(&with_query(&request.redirect_uri, &pairs));
    if let Some(cookie) = new_session {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn end_session_row(s: &AppState, headers: &HeaderMap) {
    if let Some(value) = cookie(headers, SESSION_COOKIE)
        && let Err(e) = s.store.delete_session(&opaque_hash(&value)).await
    {
        tracing::warn!(error = %e, "removing a replaced session failed");
    }
}

async fn start_session(
    s: &AppState,
    user: &StoredUser,
    auth_time: i64,
) -> Result<(HeaderValue, String), Response> {
    let internal =
        || html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error; see the server log.");
    let (value, hash) = opaque().map_err(|_| internal())?;
    let session = Session {
        tenant_id: user.tenant_id.clone(),
        user_id: user.user_id.clone(),
        auth_time,
        expires_at: auth_time + s.ttl.session,
    };
    s.store.insert_session(&hash, &session).await.map_err(|e| {
        let (status, message) = storage_failed(&e, "storing a session");
        html::error_page(status, message)
    })?;
    Ok((set_cookie(SESSION_COOKIE, &value, s.ttl.session, "Lax"), hash))
}

/// Where RP-initiated logout may send the browser afterwards.
async fn logout_target(s: &AppState, p: &HashMap<String, String>) -> Result<Option<String>, Response> {
    let page = |m: &str| html::error_page(StatusCode::BAD_REQUEST, m);
    // A hint that is present must be ours, and name the same client as `client_id` if both are
    // given (RP-Initiated Logout §2).
    let hint = match p.get("id_token_hint") {
        None => None,
        Some(t) => Some(
            verify_id_token_hint(&s.keys, &s.issuer, t)
                .ok_or_else(|| page("The id_token_hint is not valid."))?,
        ),
    };
    if let (Some(h), Some(client_id)) = (&hint, p.get("client_id"))
        && h.aud != *client_id
    {
        return Err(page("The id_token_hint was issued to another client than client_id."));
    }
    let Some(uri) = p.get("post_logout_redirect_uri") else { return Ok(None) };
    let client_id = hint.map(|h| h.aud).or_else(|| p.get("client_id").cloned());
    let bad = || page("The post_logout_redirect_uri is not registered.");
    let Some(client_id) = client_id else { return Err(bad()) };
    let client = s.store.client(&client_id).await.ok().flatten();
    match client {
        Some(c) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => {
            let mut pairs = Vec::new();
            if let Some(state) = p.get("state") {
                pairs.push(("state", state.as_str()));
            }
            Ok(Some(if pairs.is_empty() { uri.clone() } else { with_query(uri, &pairs) }))
        }
        _ => Err(bad()),
    }
}

async fn sign_out(s: &AppState, headers: &HeaderMap, target: Option<String>) -> Response {
    if let Some(value) = cookie(headers, SESSION_COOKIE) {
        let hash = opaque_hash(&value);
        // Signing out ends the session and every refresh token family it started: in the
        // session's tenant, or, for a session that expired (its row is gone), in every tenant.
        let ended = async {
            let tenants = match s.store.session(&hash).await?.map(|s| TenantKey::parse(&s.tenant_id)) {
                Some(tenant) => vec![tenant?],
                None => s.store.tenants().await?,
            };
            for tenant in &tenants {
                s.store.revoke_session_families(tenant, &hash).await?;
            }
            s.store.delete_session(&hash).await
        };
        if let Err(e) = ended.await {
            tracing::error!(error = %e, "ending a session failed");
            return html::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error; see the server log.",
            );
        }
    }
    let mut response = match target {
        Some(target) => redirect(&target),
        None => html::logged_out_page(),
    };
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0, "Lax"));
    response
}

/// `GET /end_session` (OpenID Connect RP-Initiated Logout 1.0). With a valid `id_token_hint`
/// the session ends at once; without one the person confirms with a CSRF-protected form.
pub(crate) async fn end_session_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let p = match query_params(query) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    let target = match logout_target(&s, &p).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    let hinted = p.get("id_token_hint").and_then(|t| verify_id_token_hint(&s.keys, &s.issuer, t));
    let session = current_session(&s, &headers).await;
    if let Some(hint) = hinted
        && session.as_ref().is_none_or(|(_, user)| user.user_id == hint.sub)
    {
        return sign_out(&s, &headers, target).await;
    }
    with_csrf(&headers, |csrf| {
        let mut hidden: Vec<(&str, &str)> = vec![("csrf", csrf)];
        for key in ["post_logout_redirect_uri", "state", "client_id", "id_token_hint"] {
            if let Some(v) = p.get(key) {
                hidden.push((key, v));
            }
        }
        html::logout_confirm_page(&hidden)
    })
}

/// `POST /end_session`: the confirmation form.
pub(crate) async fn end_session_post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match params(&body) {
        Ok(p) if is_form(&headers) => p,
        Ok(_) => {
            return html::error_page(StatusCode::UNSUPPORTED_MEDIA_TYPE, "The form was not sent as a form.");
        }
        Err(e) => return html::error_page(StatusCode::BAD_REQUEST, &e),
    };
    if !csrf_ok(&headers, &p) || p.get("action").map(String::as_str) != Some("logout") {
        return html::error_page(
            StatusCode::FORBIDDEN,
            "The sign-out form expired or did not come from this site.",
        );
    }
    match logout_target(&s, &p).await {
        Ok(target) => sign_out(&s, &headers, target).await,
        Err(response) => response,
    }
}
