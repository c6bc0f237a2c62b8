//! The browser flows: authorization code + PKCE through the sign-in form, ID tokens, userinfo,
//! refresh rotation, RP-initiated logout, and the attacks each must refuse.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use identity::config::Tokens;
use serde_json::Value;

use crate::browser::{Browser, authorize_query, login_for_code, pkce, submit_login};
use crate::{
    ALICE_PASSWORD, BOB_PASSWORD, Env, ISSUER, KMS_AUDIENCE, SPA_LOGOUT, SPA_REDIRECT, WEBAPP_REDIRECT,
    WEBAPP_SECRET, start, start_with,
};

fn claims(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

pub(crate) async fn exchange(env: &Env, code: &str, verifier: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code),
        ("redirect_uri", SPA_REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    env.post("/token", None, &form).await
}

pub(crate) async fn refresh(env: &Env, token: &str) -> (u16, Value) {
    env.post(
        "/token",
        None,
        &[("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", token)],
    )
    .await
}

pub(crate) async fn active(env: &Env, token: &str) -> bool {
    let (status, body) =
        env.post("/introspect", Some(("kms-service", crate::KMS_SECRET)), &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body["active"].as_bool().unwrap()
}

async fn userinfo(env: &Env, token: &str) -> (u16, Option<String>, Value) {
    let resp = env.client.get(env.url("/userinfo")).bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

#[tokio::test]
async fn code_flow_with_pkce_gives_tokens_userinfo_and_rotating_refresh() {
    let env = start().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let page = browser.get(&env, &authorize_query(&challenge, &[])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    assert!(page.body.contains("<span class=\"scope-name\">(openid)</span>"), "the consent lists the scopes");
    assert!(!page.body.contains("<script"), "no JavaScript");
    let csrf_cookie = page.set_cookies.iter().find(|c| c.starts_with("__Host-csrf=")).unwrap();
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(csrf_cookie.contains(attr), "{csrf_cookie}");
    }

    let answer = submit_login(&mut browser, &env, &page, Some(("alice", ALICE_PASSWORD)), "allow").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.location.as_deref().unwrap().starts_with(&format!("{SPA_REDIRECT}?code=")));
    assert_eq!(answer.location_param("state").as_deref(), Some("st-123"));
    assert_eq!(answer.location_param("iss").as_deref(), Some(ISSUER));
    let session = answer.set_cookies.iter().find(|c| c.starts_with("__Host-session=")).unwrap();
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Domain"), "__Host- cookies carry no Domain");
    let code = answer.location_param("code").unwrap();

    let (status, tokens) = exchange(&env, &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(tokens["scope"], "openid profile email");

    let at = claims(access);
    assert_eq!(header(access)["typ"], "at+jwt");
    assert_eq!(at["aud"], KMS_AUDIENCE);
    assert_eq!(at["client_id"], "spa");
    assert_eq!(at["roles"], serde_json::json!(["admin"]));
    let id = claims(id_token);
    assert_eq!(header(id_token)["typ"], "JWT");
    assert_eq!(header(id_token)["alg"], "ES256");
    assert_eq!(id["iss"], ISSUER);
    assert_eq!(id["aud"], "spa");
    assert_eq!(id["sub"], at["sub"]);
    assert_eq!(id["nonce"], "n-456");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - id["auth_time"].as_i64().unwrap()).abs() < 30);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(id["at_hash"], B64.encode(&digest.as_ref()[..16]));

    let (status, _, info) = userinfo(&env, access).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@acme.example");

    // Rotation: a new refresh token each time; the ID token keeps auth_time, drops the nonce.
    let (status, second) = refresh(&env, &refresh1).await;
    assert_eq!(status, 200, "{second}");
    let refresh2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    let id2 = claims(second["id_token"].as_str().unwrap());
    assert_eq!(id2["auth_time"], id["auth_time"]);
    assert!(id2.get("nonce").is_none());
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    assert!(active(&env, &access2).await);
    assert!(!active(&env, &refresh2).await, "another client learns nothing about spa's refresh tokens");

    // A wider scope on refresh is refused; a narrower one is allowed and narrows only the access
    // token: the next refresh may ask for the whole grant again (RFC 6749 §6).
    let refresh_with = |token: String, scope: &'static str| {
        let env = &env;
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", "spa"),
                ("refresh_token", token.as_str()),
                ("scope", scope),
            ];
            env.post("/token", None, &form).await
        }
    };
    let (status, body) = refresh_with(refresh2.clone(), "kms:encrypt").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
    let (status, narrowed) = refresh_with(refresh2.clone(), "openid").await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "openid");
    let refresh3 = narrowed["refresh_token"].as_str().unwrap().to_owned();
    let (status, widened) = refresh_with(refresh3, "openid profile email").await;
    assert_eq!(status, 200, "the refresh token kept the original grant: {widened}");
    let refresh4 = widened["refresh_token"].as_str().unwrap().to_owned();
    let access4 = widened["access_token"].as_str().unwrap().to_owned();
    assert!(active(&env, &access4).await);

    // Reuse of the first refresh token: refused, and the whole family with it.
    let (status, body) = refresh(&env, &refresh1).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = refresh(&env, &refresh4).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the family is revoked: {body}"
    );
    assert!(!active(&env, &access4).await, "access tokens of the family are revoked too");
    assert!(!active(&env, &access2).await);
    assert!(!active(&env, access).await);
    let (status, challenge, _) = userinfo(&env, &access4).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn redirect_uri_tricks_are_refused_on_a_page_never_redirected() {
    let env = start().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    for uri in [
        "https://app.demo.local/callback/evil",
        "https://app.demo.local/callbackx",
        "https://app.demo.local/callback/",
        "https://app.demo.local/callback?next=https://evil.example",
        "https://APP.demo.local/callback",
        "https://app.demo.local/Callback",
        "https://app.demo.local:443/callback",
        "http://app.demo.local/callback",
        "https://app.demo.local.evil.example/callback",
        "https://app.demo.local/callback#frag",
    ] {
        let page = browser.get(&env, &authorize_query(&challenge, &[("redirect_uri", uri)])).await;
        assert_eq!(page.status, 400, "{uri}");
        assert!(page.location.is_none(), "{uri} must not be redirected to");
        assert!(page.body.contains("not registered"), "{uri}: {}", page.body);
    }
    for (query, expect) in [
        (authorize_query(&challenge, &[("client_id", "nobody")]), "not registered"),
        (authorize_query(&challenge, &[("redirect_uri", "")]), "no redirect_uri"),
        (authorize_query(&challenge, &[("client_id", "")]), "no client_id"),
        (format!("{}&client_id=spa", authorize_query(&challenge, &[])), "more than once"),
    ] {
        let page = browser.get(&env, &query).await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.location.is_none());
        assert!(page.body.contains(expect), "{query}: {}", page.body);
    }
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn authorization_errors_go_back_with_state_and_iss() {
    let env = start().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    for (extra, error) in [
        (vec![("code_challenge_method", "plain"), ("code_challenge", verifier.as_str())], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge", "too-short")], "invalid_request"),
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("response_type", "")], "invalid_request"),
        (vec![("scope", "openid kms:admin")], "invalid_scope"),
        (vec![("prompt", "none")], "consent_required"),
        (vec![("request_uri", "https://evil.example/r")], "request_uri_not_supported"),
    ] {
        let page = browser.get(&env, &authorize_query(&challenge, &extra)).await;
        assert_eq!(page.status, 303, "{extra:?}: {}", page.body);
        assert!(page.location.as_deref().unwrap().starts_with(SPA_REDIRECT));
        assert_eq!(page.location_param("error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(page.location_param("state").as_deref(), Some("st-123"));
        assert_eq!(page.location_param("iss").as_deref(), Some(ISSUER));
        assert!(page.location_param("code").is_none());
    }
    // "Deny" on the form.
    let page = browser.get(&env, &authorize_query(&challenge, &[])).await;
    let answer = submit_login(&mut browser, &env, &page, None, "deny").await;
    assert_eq!(answer.location_param("error").as_deref(), Some("access_denied"));
    assert_eq!(answer.location_param("state").as_deref(), Some("st-123"));
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn pkce_and_code_attacks_are_refused() {
    let env = start().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code =
        login_for_code(&mut browser, &env, &authorize_query(&challenge, &[]), ("alice", ALICE_PASSWORD))
            .await;

    let (status, body) = exchange(&env, &code, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "missing verifier: {body}");
    let (other_verifier, _) = pkce();
    let (status, body) = exchange(&env, &code, Some(&other_verifier)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "wrong verifier: {body}");
    // The challenge itself as the verifier (a "plain" downgrade) does not match either.
    let (status, body) = exchange(&env, &code, Some(&challenge)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // Another redirect URI than the request's.
    let (status, body) = env
        .post(
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "spa"),
                ("code", &code),
                ("redirect_uri", "https://app.demo.local/callback/"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // Another client presenting the code.
    let (status, body) = env
        .post(
            "/token",
            Some(("webapp", WEBAPP_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", SPA_REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // The right exchange works once…
    let (status, first) = exchange(&env, &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{first}");
    let access = first["access_token"].as_str().unwrap();
    let refresh_token = first["refresh_token"].as_str().unwrap();
    assert!(active(&env, access).await);
    // …and its replay is refused and revokes what the first use issued.
    let (status, body) = exchange(&env, &code, Some(&verifier)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(!active(&env, access).await, "the first exchange's access token is revoked");
    let (status, body) = refresh(&env, refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // An unknown code.
    let (status, body) = exchange(&env, "not-a-code", Some(&verifier)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let env = start_with(Tokens { code_ttl: std::time::Duration::from_secs(5), ..Tokens::default() }).await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code =
        login_for_code(&mut browser, &env, &authorize_query(&challenge, &[]), ("bob", BOB_PASSWORD)).await;
    // Expiry is checked in whole seconds against `expires_at`: wait until it has passed.
    tokio::time::sleep(std::time::Duration::from_millis(6_100)).await;
    let (status, body) = exchange(&env, &code, Some(&verifier)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn confidential_clients_authenticate_for_the_code_grant() {
    let env = start().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let query = format!(
        "/authorize?{}",
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", "webapp"),
            ("redirect_uri", WEBAPP_REDIRECT),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .unwrap()
    );
    let code = login_for_code(&mut browser, &env, &query, ("bob", BOB_PASSWORD)).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", WEBAPP_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body) = env.post("/token", Some(("webapp", "wrong-secret")), &form).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    // Posing as a public client (client_id only) is not enough either.
    let mut public = form.to_vec();
    public.push(("client_id", "webapp"));
    let (status, body) = env.post("/token", None, &public).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let (status, body) = env.post("/token", Some(("webapp", WEBAPP_SECRET)), &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], ISSUER, "no resource: the issuer");
    // Its refresh token introspects active for webapp itself, inactive for anyone else.
    let refresh_token = body["refresh_token"].as_str().unwrap();
    let (status, own) =
        env.post("/introspect", Some(("webapp", WEBAPP_SECRET)), &[("token", refresh_token)]).await;
    assert_eq!(
        (status, own["active"].as_bool(), own["token_type"].as_str()),
        (200, Some(true), Some("refresh_token"))
    );
    assert!(!active(&env, refresh_token).await, "kms-service may not see webapp's refresh token");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn sign_in_failures_csrf_and_sessions() {
    let env = start().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    let query = authorize_query(&challenge, &[("state", "\"><script>alert(1)</script>")]);
    let page = browser.get(&env, &query).await;
    assert!(!page.body.contains("<script>alert"), "state is escaped in the form");
    assert!(page.body.contains("&quot;&gt;&lt;script&gt;"));

    // A form without the CSRF cookie, or with another token, is refused.
    let mut stranger = Browser::default();
    let mut form = page.hidden();
    form.extend([
        ("username".into(), "alice".into()),
        ("password".into(), ALICE_PASSWORD.into()),
        ("action".into(), "allow".into()),
    ]);
    let answer = stranger.post(&env, "/authorize", &form).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    stranger.jar.insert("__Host-csrf".into(), "x".repeat(43));
    let answer = stranger.post(&env, "/authorize", &form).await;
    assert_eq!(answer.status, 403);
    assert!(answer.location.is_none());

    // Wrong passwords re-render the form; the sixth attempt is locked even with the right one.
    for _ in 0..5 {
        let answer = submit_login(&mut browser, &env, &page, Some(("bob", "wrong")), "allow").await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.body.contains("Invalid username or password."));
        assert!(answer.location.is_none());
    }
    let answer = submit_login(&mut browser, &env, &page, Some(("bob", BOB_PASSWORD)), "allow").await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    let retry_after: u64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    // An unknown user gets the same answer as a wrong password.
    let answer = submit_login(&mut browser, &env, &page, Some(("mallory", "x")), "allow").await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("Invalid username or password."));

    // Alice signs in; the next authorization uses her session (no password fields)…
    let answer = submit_login(&mut browser, &env, &page, Some(("alice", ALICE_PASSWORD)), "allow").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let again = browser.get(&env, &authorize_query(&challenge, &[])).await;
    assert!(again.body.contains("Signed in as <strong>alice</strong>"), "{}", again.body);
    assert!(!again.body.contains("name=\"password\""));
    let answer = submit_login(&mut browser, &env, &again, None, "allow").await;
    assert_eq!(answer.status, 303);
    assert!(answer.location_param("code").is_some());
    // …unless the client asks for a fresh login.
    let fresh = browser.get(&env, &authorize_query(&challenge, &[("prompt", "login")])).await;
    assert!(fresh.body.contains("name=\"password\""));
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn end_session_signs_out_and_redirects_only_where_registered() {
    let env = start().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code =
        login_for_code(&mut browser, &env, &authorize_query(&challenge, &[]), ("alice", ALICE_PASSWORD))
            .await;
    let (_, tokens) = exchange(&env, &code, Some(&verifier)).await;
    let id_token = tokens["id_token"].as_str().unwrap();

    let evil = format!(
        "/end_session?{}",
        serde_urlencoded::to_string([
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://evil.example/")
        ])
        .unwrap()
    );
    let page = browser.get(&env, &evil).await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    assert!(browser.jar.contains_key("__Host-session"), "still signed in");

    // A forged hint, or one for another client than client_id: refused, nothing ends.
    for query in [
        serde_urlencoded::to_string([("id_token_hint", "e30.e30.sig")]).unwrap(),
        serde_urlencoded::to_string([("id_token_hint", id_token), ("client_id", "webapp")]).unwrap(),
    ] {
        let page = browser.get(&env, &format!("/end_session?{query}")).await;
        assert_eq!(page.status, 400, "{query}");
    }
    let page = browser.get(&env, &authorize_query(&challenge, &[])).await;
    assert!(page.body.contains("Signed in as"), "the server-side session is still there");

    // Without a hint: a confirmation form, nothing ends yet.
    let page = browser.get(&env, "/end_session").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out?"));
    assert!(browser.jar.contains_key("__Host-session"));

    let good = format!(
        "/end_session?{}",
        serde_urlencoded::to_string([
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", SPA_LOGOUT),
            ("state", "bye")
        ])
        .unwrap()
    );
    let page = browser.get(&env, &good).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some(format!("{SPA_LOGOUT}?state=bye").as_str()));
    assert!(!browser.jar.contains_key("__Host-session"), "the cookie is cleared");
    let page = browser.get(&env, &authorize_query(&challenge, &[])).await;
    assert!(page.body.contains("name=\"password\""), "signed out: the password form again");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_tokens_are_refused_by_userinfo() {
    let env = start().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code =
        login_for_code(&mut browser, &env, &authorize_query(&challenge, &[]), ("alice", ALICE_PASSWORD))
            .await;
    let (_, tokens) = exchange(&env, &code, Some(&verifier)).await;
    let access = tokens["access_token"].as_str().unwrap();
    let parts: Vec<&str> = access.split('.').collect();
    let none_header = B64.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    for forged in [
        format!("{none_header}.{}.", parts[1]),
        format!("{}.{}.{}", parts[0], parts[1], B64.encode(b"not a signature")),
        tokens["id_token"].as_str().unwrap().to_owned(),
    ] {
        let (status, challenge, _) = userinfo(&env, &forged).await;
        assert_eq!(status, 401, "{forged}");
        assert!(challenge.unwrap().contains("invalid_token"));
    }
    let (status, challenge, _) = env
        .client
        .get(env.url("/userinfo"))
        .send()
        .await
        .map(|r| {
            (
                r.status().as_u16(),
                r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()),
                (),
            )
        })
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="identity""#));
    // A client_credentials token has no user and no openid scope.
    let service = env.token(None).await;
    let (status, challenge, _) = userinfo(&env, &service).await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("insufficient_scope"));
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn prompt_login_and_max_age_cannot_be_answered_by_the_session() {
    let env = start().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    login_for_code(&mut browser, &env, &authorize_query(&challenge, &[]), ("alice", ALICE_PASSWORD)).await;
    // prompt=login: the form asks for the password, and posting it back without one (the
    // session alone) is refused, even with the prompt stripped from the form.
    let page = browser.get(&env, &authorize_query(&challenge, &[("prompt", "login consent")])).await;
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    let answer = submit_login(&mut browser, &env, &page, None, "allow").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.location.is_none(), "no code without a password");
    // max_age: a session older than max_age needs the password again.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let page = browser.get(&env, &authorize_query(&challenge, &[("max_age", "0")])).await;
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    let answer = submit_login(&mut browser, &env, &page, None, "allow").await;
    assert_eq!(answer.status, 400);
    // Without either, the session answers.
    let page = browser.get(&env, &authorize_query(&challenge, &[("max_age", "3600")])).await;
    assert!(page.body.contains("Signed in as <strong>alice</strong>"), "{}", page.body);
    let answer = submit_login(&mut browser, &env, &page, None, "allow").await;
    assert_eq!(answer.status, 303);
    for bad in ["-1", "soon"] {
        let page = browser.get(&env, &authorize_query(&challenge, &[("max_age", bad)])).await;
        assert_eq!(page.location_param("error").as_deref(), Some("invalid_request"), "max_age={bad}");
    }
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server_and_its_refresh_tokens() {
    let env = start().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code =
        login_for_code(&mut browser, &env, &authorize_query(&challenge, &[]), ("alice", ALICE_PASSWORD))
            .await;
    let (_, tokens) = exchange(&env, &code, Some(&verifier)).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let old_cookie = browser.jar.get("__Host-session").unwrap().clone();
    let page = browser.get(&env, &authorize_query(&challenge, &[])).await;
    assert!(page.body.contains("Signed in as"), "the server knows the session");

    // The confirmation form: a foreign CSRF token is refused, the right one signs out.
    let confirm = browser.get(&env, "/end_session").await;
    let mut forged = confirm.hidden();
    forged.retain(|(k, _)| k != "csrf");
    forged.push(("csrf".into(), "x".repeat(43)));
    forged.push(("action".into(), "logout".into()));
    assert_eq!(browser.post(&env, "/end_session", &forged).await.status, 403);
    let mut form = confirm.hidden();
    form.push(("action".into(), "logout".into()));
    let done = browser.post(&env, "/end_session", &form).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("signed out"));

    // The old cookie value no longer names a session on the server…
    let mut replay = Browser::default();
    replay.jar.insert("__Host-session".into(), old_cookie);
    let page = replay.get(&env, &authorize_query(&challenge, &[])).await;
    assert!(page.body.contains("name=\"password\""), "the server-side session is gone");
    // …and the refresh tokens it led to are revoked.
    let (status, body) = refresh(&env, refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    env.identity.shutdown().await.unwrap();
}

/// Two tenants: alice and `spa` are acme's, bob and `globex-spa` globex's.
const TWO_TENANTS_SEED: &str = "users:
  - { username: alice, password_file: alice, name: Alice, email: alice@acme.example, tenant: acme, roles: [user] }
  - { username: bob, password_file: bob, name: Bob, email: bob@globex.example, tenant: globex, roles: [user] }
clients:
  - client_id: spa
    type: public
    grant_types: [authorization_code]
    scopes: [openid, profile]
    redirect_uris: [https://app.demo.local/callback]
    tenant: acme
  - client_id: globex-spa
    type: public
    grant_types: [authorization_code]
    scopes: [openid, profile]
    redirect_uris: [https://app.demo.local/callback]
    tenant: globex
";
const GLOBEX_ID: &str = "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b";

/// Each tenant is a realm of its own: its users sign in to its clients only, a session of one
/// tenant is no session at another's client, and a code is redeemed in its own tenant only.
#[tokio::test]
async fn users_sign_in_to_their_own_tenants_clients_only() {
    let tenants = format!("acme: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10\nglobex: {GLOBEX_ID}\n");
    let env = crate::start_seeded(TWO_TENANTS_SEED, &tenants, Tokens::default()).await.unwrap();
    let (verifier, challenge) = pkce();
    let acme_query = authorize_query(&challenge, &[("scope", "openid")]);
    let globex_query = authorize_query(&challenge, &[("scope", "openid"), ("client_id", "globex-spa")]);

    // Bob is globex's: at acme's client his right password is as good as a wrong one.
    let mut browser = Browser::default();
    let page = browser.get(&env, &acme_query).await;
    let answer = submit_login(&mut browser, &env, &page, Some(("bob", BOB_PASSWORD)), "allow").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("Invalid username or password."));

    // Alice signs in at acme's client; her session does not sign her in at globex's.
    login_for_code(&mut browser, &env, &acme_query, ("alice", ALICE_PASSWORD)).await;
    let page = browser.get(&env, &globex_query).await;
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    assert!(!page.body.contains("Signed in as"), "{}", page.body);
    let answer = submit_login(&mut browser, &env, &page, None, "allow").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("sign in again"), "{}", answer.body);

    // Bob at globex's client: a code of globex, redeemed there, for a token of globex.
    let code = login_for_code(&mut Browser::default(), &env, &globex_query, ("bob", BOB_PASSWORD)).await;
    let stolen = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code.as_str()),
        ("redirect_uri", SPA_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body) = env.post("/token", None, &stolen).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "acme's client cannot redeem it: {body}"
    );
    let (status, body) = env
        .post(
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "globex-spa"),
                ("code", code.as_str()),
                ("redirect_uri", SPA_REDIRECT),
                ("code_verifier", verifier.as_str()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["tenant_id"], GLOBEX_ID);
    env.identity.shutdown().await.unwrap();
}
