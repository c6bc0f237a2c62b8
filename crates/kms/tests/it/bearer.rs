//! The Bearer realm against a fixture issuer over real HTTPS: a JWKS endpoint that can be down,
//! an introspection endpoint with a revocation list, and tokens signed with a key generated
//! here. Readiness, the claim checks, scope ∩ roles, introspection in `sensitive` mode, and
//! failing closed when Identity cannot be asked; and API keys verified at Identity (cached for a
//! bounded time, malformed ones refused without asking, held to their pools).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kms::config::{BearerConfig, ErrorDetail, IntrospectionConfig, IntrospectionMode, TxnTokenConfig};
use serde_json::{Value, json};

use crate::api::{Env, prepare, start_in};

const ISSUER: &str = "https://identity.demo.local:8082";
const AUDIENCE: &str = "https://kms.demo.local:8081";
const TENANT: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";
const INTROSPECTION_SECRET: &str = "kms-introspection-secret";

#[derive(Default)]
struct Issuer {
    jwks_up: AtomicBool,
    introspection_up: AtomicBool,
    jwks: Mutex<Value>,
    revoked: Mutex<HashSet<String>>,
    introspections: AtomicUsize,
    /// API key verification: the answer for each key text (unknown keys: inactive), whether
    /// the endpoint answers, and how often it was asked.
    api_keys: Mutex<std::collections::HashMap<String, Value>>,
    verify_down: AtomicBool,
    verifications: AtomicUsize,
}

async fn verify_key(State(issuer): State<Arc<Issuer>>, body: String) -> axum::response::Response {
    if issuer.verify_down.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    issuer.verifications.fetch_add(1, Ordering::SeqCst);
    let form = serde_urlencoded_pairs(&body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    // An impersonation is answered from the entry `<key>|<target>`.
    let key = match field("impersonate") {
        Some(target) => format!("{}|{}", field("key").unwrap_or_default(), target.replace("%3A", ":")),
        None => field("key").unwrap_or_default(),
    };
    let answer = issuer.api_keys.lock().unwrap().get(&key).cloned();
    axum::Json(answer.unwrap_or_else(|| json!({"active": false, "reason": "unknown"}))).into_response()
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> axum::response::Response {
    if !issuer.jwks_up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(issuer.jwks.lock().unwrap().clone()).into_response()
}

async fn introspect(
    State(issuer): State<Arc<Issuer>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::response::Response {
    if !issuer.introspection_up.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("kms-service:{INTROSPECTION_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    issuer.introspections.fetch_add(1, Ordering::SeqCst);
    let form: Vec<(String, String)> = serde_urlencoded_pairs(&body);
    let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone()).unwrap_or_default();
    let jti = claims_of(&token)["jti"].as_str().unwrap_or_default().to_owned();
    let active = !issuer.revoked.lock().unwrap().contains(&jti);
    axum::Json(json!({ "active": active })).into_response()
}

fn serde_urlencoded_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2E", ".").replace("%2D", "-").replace("%5F", "_")))
        .collect()
}

fn claims_of(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| B64URL.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

struct Signer {
    pair: EcdsaKeyPair,
    kid: String,
}

impl Signer {
    fn new() -> (Self, Value) {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let kid = "test-key-1".to_owned();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65]),
        });
        (Self { pair, kid }, json!({ "keys": [jwk] }))
    }

    fn sign(&self, header: Value, claims: &Value) -> String {
        let input = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", B64URL.encode(sig.as_ref()))
    }

    fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
        self.token_typed("at+jwt", edit)
    }

    /// A token with header `typ` (claims as [`Self::token`]'s, then `edit`).
    fn token_typed(&self, typ: &str, edit: impl FnOnce(&mut Value)) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "iss": ISSUER, "sub": "svc-client", "aud": AUDIENCE, "exp": now + 300, "iat": now, "nbf": now,
            "jti": uuid::Uuid::new_v4().to_string(), "client_id": "svc-client",
            "scope": "kms:encrypt kms:decrypt kms:read", "tenant_id": TENANT, "roles": ["service"],
        });
        edit(&mut claims);
        self.sign(json!({"alg": "ES256", "typ": typ, "kid": self.kid}), &claims)
    }
}

async fn call(env: &Env, token: &str, path: &str, body: Value) -> (u16, Value, String) {
    let resp = env.client.post(env.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge =
        resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, resp.json().await.unwrap_or(Value::Null), challenge)
}

/// The KMS with a Bearer realm over a fixture issuer (JWKS down and introspection up at first),
/// and the fixture's server.
async fn with_fixture_issuer(
    transaction_tokens: Option<TxnTokenConfig>,
) -> (Env, Arc<Issuer>, Signer, service_kit::server::RunningServer) {
    with_fixture_issuer_in(prepare(), transaction_tokens, None).await
}

/// [`with_fixture_issuer`] over `dir`, with a trust store file.
async fn with_fixture_issuer_in(
    dir: test_support::TestDir,
    transaction_tokens: Option<TxnTokenConfig>,
    trust_file: Option<std::path::PathBuf>,
) -> (Env, Arc<Issuer>, Signer, service_kit::server::RunningServer) {
    let issuer = Arc::new(Issuer::default());
    let (signer, jwks_doc) = Signer::new();
    *issuer.jwks.lock().unwrap() = jwks_doc;
    issuer.introspection_up.store(true, Ordering::SeqCst);
    let router = Router::new()
        .route("/jwks", get(jwks))
        .route("/introspect", post(introspect))
        .route("/api/v1/api-keys/verify", post(verify_key))
        .with_state(issuer.clone());
    let fixture =
        service_kit::server::start(&dir.loopback("identity"), router, service_kit::Readiness::new())
            .await
            .unwrap();
    let secret_file = dir.write("introspection_secret", INTROSPECTION_SECRET);
    let base = format!("https://identity.demo.local:{}", fixture.addr.port());
    let bearer = BearerConfig {
        issuer: ISSUER.into(),
        jwks_url: format!("{base}/jwks"),
        audience: AUDIENCE.into(),
        algorithms: vec!["ES256".into()],
        ca_file: dir.pki().ca_bundle(),
        resolve: [("identity.demo.local".to_owned(), fixture.addr)].into(),
        leeway: Duration::from_secs(30),
        introspection: Some(IntrospectionConfig {
            endpoint: format!("{base}/introspect"),
            client_id: "kms-service".into(),
            client_secret_file: secret_file,
            mode: IntrospectionMode::Sensitive,
            interval: Duration::from_secs(30),
            cache_ttl: Duration::ZERO,
        }),
        error_detail: ErrorDetail::Detailed,
        transaction_tokens,
        api_keys: Some(kms::config::ApiKeysConfig {
            endpoint: format!("{base}/api/v1/api-keys/verify"),
            client_id: "kms-service".into(),
            client_secret_file: dir.write("api_key_secret", INTROSPECTION_SECRET),
            cache_ttl: Duration::from_secs(1),
        }),
        trust_file,
    };
    (start_in(dir, Some(bearer)).await, issuer, signer, fixture)
}

#[tokio::test]
async fn bearer_tokens_after_the_jwks_is_fetched_with_sensitive_operations_introspected() {
    let (env, issuer, signer, fixture) = with_fixture_issuer(None).await;

    // Not ready while Identity's JWKS cannot be fetched, and readyz says why.
    let readyz = format!("https://kms.demo.local:{}/readyz", env.kms.server.admin_addr.port());
    let admin = env.dir.client("kms.demo.local", env.kms.server.admin_addr).build().unwrap();
    let resp = admin.get(&readyz).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("identity_jwks"));
    issuer.jwks_up.store(true, Ordering::SeqCst);
    let started = Instant::now();
    while admin.get(&readyz).send().await.unwrap().status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(15), "never ready after the JWKS came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A pool to work with (Basic, key manager), then a service token encrypts and decrypts.
    let (status, _) = env
        .call(
            Some(("manager", "m-pass")),
            "POST",
            "/pools",
            Some(json!({"name": "p", "algorithm": "A256GCM"})),
        )
        .await;
    assert_eq!(status, 201);
    let token = signer.token(|_| {});
    let plaintext = json!({"plaintext": "aGVsbG8="});
    let (status, enc, _) = call(&env, &token, "/pools/p/encrypt", plaintext.clone()).await;
    assert_eq!(status, 200, "{enc}");
    assert_eq!(issuer.introspections.load(Ordering::SeqCst), 0, "encrypt is validated locally");
    let (status, dec, _) = call(&env, &token, "/decrypt", json!({"jwe": enc["jwe"]})).await;
    assert_eq!(status, 200, "{dec}");
    assert_eq!(dec["plaintext"], "aGVsbG8=");
    assert_eq!(issuer.introspections.load(Ordering::SeqCst), 1, "decrypt is sensitive: introspected");
    let who = env.client.get(env.url("/whoami")).bearer_auth(&token).send().await.unwrap();
    let who: Value = who.json().await.unwrap();
    assert_eq!((who["method"].as_str(), who["tenant"].as_str()), (Some("bearer"), Some(TENANT)));

    // Refused tokens, each with its reason (detailed mode) and an invalid_token challenge.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cases: Vec<(&str, String)> = vec![
        ("wrong_audience", signer.token(|c| c["aud"] = "https://other.example".into())),
        ("wrong_issuer", signer.token(|c| c["iss"] = "https://evil.example".into())),
        ("expired", signer.token(|c| c["exp"] = (now - 3600).into())),
        ("tenant_id is missing or not a UUID", signer.token(|c| c["tenant_id"] = "acme".into())),
        (
            "wrong_type",
            signer.sign(json!({"alg": "ES256", "typ": "JWT", "kid": signer.kid}), &claims_of(&token)),
        ),
        (
            "alg_not_allowed",
            format!(
                "{}.{}.",
                B64URL.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
                token.split('.').nth(1).unwrap()
            ),
        ),
    ];
    for (why, bad) in cases {
        let (status, body, challenge) = call(&env, &bad, "/pools/p/encrypt", plaintext.clone()).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(challenge.contains("invalid_token"), "{why}: {challenge}");
        assert_eq!(body["type"], "urn:demo:problem:invalid-token", "{why}");
        assert!(body["detail"].as_str().unwrap().ends_with(why), "the reason is {why}: {body}");
    }

    // Sensitive operations are introspected, local ones are not (route templates, not suffixes).
    let count = || issuer.introspections.load(Ordering::SeqCst);
    let before = count();
    let (status, body, _) = call(&env, &token, "/pools/p/datakey", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(), before + 1, "a data key is sensitive");
    let wrapped = call(&env, &token, "/pools/p/encrypt", plaintext.clone()).await;
    assert_eq!((wrapped.0, count()), (200, before + 1), "encrypt is local");
    let (status, _, _) = call(&env, &token, "/pools/p/rotate", json!({})).await;
    assert_eq!((status, count()), (403, before + 2), "pool management is sensitive (and needs kms:admin)");

    // Scopes are the token's intersected with its roles.
    let read_only = signer.token(|c| c["scope"] = "kms:read".into());
    assert_eq!(call(&env, &read_only, "/pools/p/encrypt", plaintext.clone()).await.0, 403);
    let auditor = signer.token(|c| c["roles"] = json!(["auditor"]));
    assert_eq!(
        call(&env, &auditor, "/decrypt", json!({"jwe": enc["jwe"]})).await.0,
        403,
        "auditors never decrypt"
    );

    // Revoked: the sensitive operation is refused at once; a local one is not asked about.
    let revoked = signer.token(|_| {});
    issuer.revoked.lock().unwrap().insert(claims_of(&revoked)["jti"].as_str().unwrap().to_owned());
    let (status, body, _) = call(&env, &revoked, "/decrypt", json!({"jwe": enc["jwe"]})).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
    assert_eq!(call(&env, &revoked, "/pools/p/encrypt", plaintext.clone()).await.0, 200, "sensitive mode");

    // Identity cannot be asked: fail closed with 503, never a pass.
    issuer.introspection_up.store(false, Ordering::SeqCst);
    let (status, body, _) = call(&env, &signer.token(|_| {}), "/decrypt", json!({"jwe": enc["jwe"]})).await;
    assert_eq!(status, 503, "{body}");
    env.kms.shutdown().await.unwrap();
    fixture.shutdown().await.unwrap();
}

const TRUST_DOMAIN: &str = "https://demo.local";

/// Transaction tokens from the same issuer: accepted for the trust domain with a `txn` and a
/// short life, the operation logged with its `txn`; confused with access tokens in neither
/// direction; never introspected.
#[tokio::test]
async fn transaction_tokens_carry_their_txn_into_the_operation() {
    let (env, issuer, signer, fixture) = with_fixture_issuer(Some(TxnTokenConfig {
        trust_domain: TRUST_DOMAIN.into(),
        max_lifetime: Duration::from_secs(300),
    }))
    .await;
    issuer.jwks_up.store(true, Ordering::SeqCst);
    let (status, _) = env
        .call(
            Some(("manager", "m-pass")),
            "POST",
            "/pools",
            Some(json!({"name": "p", "algorithm": "A256GCM"})),
        )
        .await;
    assert_eq!(status, 201);
    let txn_token = |edit: &dyn Fn(&mut Value)| {
        signer.token_typed("txntoken+jwt", |c| {
            c["aud"] = TRUST_DOMAIN.into();
            c["txn"] = "0d7c9d6e-1f0a-4b8e-9c3d-5a6b7c8d9e0f".into();
            c["act"] = json!({"sub": "gateway"});
            c["exp"] = (c["iat"].as_i64().unwrap() + 60).into();
            edit(c);
        })
    };
    let plaintext = json!({"plaintext": "aGVsbG8="});
    let good = txn_token(&|_| {});
    let (status, enc, _) = call(&env, &good, "/pools/p/encrypt", plaintext.clone()).await;
    assert_eq!(status, 200, "{enc}");
    let (status, dec, _) = call(&env, &good, "/decrypt", json!({"jwe": enc["jwe"]})).await;
    assert_eq!((status, dec["plaintext"].as_str()), (200, Some("aGVsbG8=")), "{dec}");
    assert_eq!(issuer.introspections.load(Ordering::SeqCst), 0, "transaction tokens are not introspected");

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cases: Vec<(&str, String)> = vec![
        (
            "a transaction token without txn",
            txn_token(&|c| {
                c.as_object_mut().unwrap().remove("txn");
            }),
        ),
        ("a transaction token without txn", txn_token(&|c| c["txn"] = "".into())),
        (
            "living 3600 s, longer than the 300 s allowed",
            txn_token(&|c| c["exp"] = (c["iat"].as_i64().unwrap() + 3600).into()),
        ),
        ("wrong_audience", txn_token(&|c| c["aud"] = AUDIENCE.into())),
        (
            "expired",
            txn_token(&|c| {
                c["iat"] = (now - 120).into();
                c["exp"] = (now - 60).into();
            }),
        ),
        ("wrong_issuer", txn_token(&|c| c["iss"] = "https://evil.example".into())),
        // An access token for the trust domain is no transaction token (and no access token
        // for this KMS either).
        ("wrong_audience", signer.token_typed("at+jwt", |c| c["aud"] = TRUST_DOMAIN.into())),
    ];
    for (why, bad) in cases {
        let (status, body, _) = call(&env, &bad, "/pools/p/encrypt", plaintext.clone()).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(body["detail"].as_str().unwrap().ends_with(why), "the reason is {why}: {body}");
    }
    // Scope ∩ roles holds for transaction tokens too.
    let auditor = txn_token(&|c| c["roles"] = json!(["auditor"]));
    assert_eq!(call(&env, &auditor, "/decrypt", json!({"jwe": enc["jwe"]})).await.0, 403);
    env.kms.shutdown().await.unwrap();
    fixture.shutdown().await.unwrap();

    // Without `transaction_tokens` configured, a transaction token is no access token.
    let (env, issuer, signer, fixture) = with_fixture_issuer(None).await;
    issuer.jwks_up.store(true, Ordering::SeqCst);
    let token = signer.token_typed("txntoken+jwt", |c| {
        c["txn"] = "t".into();
    });
    let (status, body, _) = call(&env, &token, "/pools/p/encrypt", json!({"plaintext": "aGVsbG8="})).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].as_str().unwrap().ends_with("wrong_type"), "{body}");
    env.kms.shutdown().await.unwrap();
    fixture.shutdown().await.unwrap();
}

/// A partner issuer trusted through the trust store, authority for tenant A only: its tokens
/// encrypt in tenant A, are refused with 403 naming the rule for tenant B, and the primary
/// issuer's rules (audience, type) hold for it too.
#[tokio::test]
async fn a_trusted_issuer_is_accepted_for_its_tenants_and_refused_for_others() {
    let dir = prepare();
    let partner = test_support::jwt::Signer::new("partner-1");
    let jwks_doc = partner.jwks();
    let served_issuer = Arc::new(Mutex::new(String::new()));
    let (doc_issuer, doc_jwks) = (served_issuer.clone(), jwks_doc.clone());
    let router = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let issuer = doc_issuer.lock().unwrap().clone();
                async move { axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")})) }
            }),
        )
        .route(
            "/jwks",
            get(move || {
                let doc = doc_jwks.clone();
                async move { axum::Json(doc) }
            }),
        );
    let server = service_kit::server::start(&dir.loopback("identity"), router, service_kit::Readiness::new())
        .await
        .unwrap();
    let partner_iss = format!("https://identity.demo.local:{}", server.addr.port());
    *served_issuer.lock().unwrap() = partner_iss.clone();
    let trust = dir.write(
        "trust.yml",
        format!(
            "issuers:\n  - issuer: {partner_iss}\n    audiences: [{AUDIENCE}]\n    tenants: [{TENANT}]\n    ca_file: {}\n    resolve: {{ identity.demo.local: \"{}\" }}\n",
            dir.pki().ca_bundle().display(),
            server.addr
        ),
    );
    let (env, issuer, _signer, fixture) = with_fixture_issuer_in(dir, None, Some(trust)).await;
    issuer.jwks_up.store(true, Ordering::SeqCst);
    let (status, _) = env
        .call(
            Some(("manager", "m-pass")),
            "POST",
            "/pools",
            Some(json!({"name": "p", "algorithm": "A256GCM"})),
        )
        .await;
    assert_eq!(status, 201);
    let token = |edit: &dyn Fn(&mut Value)| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "iss": partner_iss, "sub": "partner-svc", "aud": AUDIENCE, "exp": now + 300, "iat": now, "nbf": now,
            "scope": "kms:encrypt kms:read", "tenant_id": TENANT, "roles": ["service"],
        });
        edit(&mut claims);
        partner.token("at+jwt", &claims)
    };
    let plaintext = json!({"plaintext": "aGVsbG8="});
    let (status, body, _) = call(&env, &token(&|_| {}), "/pools/p/encrypt", plaintext.clone()).await;
    assert_eq!(status, 200, "a partner token for its tenant encrypts: {body}");

    let other = token(&|c| c["tenant_id"] = "5d2a9e71-3c8b-4f6d-8e2a-1b7c9d0e3f42".into());
    let (status, body, _) = call(&env, &other, "/pools/p/encrypt", plaintext.clone()).await;
    assert_eq!(status, 403, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("issuer {partner_iss} is not the authority for tenant 5d2a9e71")),
        "{detail}"
    );

    for (why, bad) in [
        ("wrong_audience", token(&|c| c["aud"] = "https://other.example".into())),
        (
            "expired",
            token(&|c| {
                c["exp"] = 1.into();
                c["iat"] = 0.into();
                c["nbf"] = 0.into();
            }),
        ),
        ("untrusted_issuer", token(&|c| c["iss"] = "https://stranger.example".into())),
    ] {
        let (status, body, _) = call(&env, &bad, "/pools/p/encrypt", plaintext.clone()).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(body["detail"].as_str().unwrap().ends_with(why), "{why}: {body}");
    }
    // Scope ∩ roles holds for federated tokens too.
    let auditor = token(&|c| c["roles"] = json!(["auditor"]));
    assert_eq!(call(&env, &auditor, "/pools/p/encrypt", plaintext).await.0, 403);
    env.kms.shutdown().await.unwrap();
    fixture.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

/// A well-formed key of `tenant` and Identity's answer for it.
fn api_key(issuer: &Issuer, tenant: &str, permissions: &[&str], roles: &[&str]) -> String {
    use secrecy::ExposeSecret as _;
    let tenant_key = service_kit::db::TenantKey::parse(tenant).unwrap();
    let (parsed, text) = service_kit::apikey::new_key(&tenant_key, None).unwrap();
    let text = text.expose_secret().to_owned();
    issuer.api_keys.lock().unwrap().insert(
        text.clone(),
        json!({"active": true, "tenant_id": tenant, "sub": "svc-client", "owner_kind": "client",
               "key_id": parsed.key_id, "name": "ci", "permissions": permissions, "roles": roles}),
    );
    text
}

async fn call_with_key(env: &Env, key: &str, path: &str, body: Value) -> (u16, Value, String) {
    let resp = env
        .client
        .post(env.url(path))
        .header("authorization", format!("ApiKey {key}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let challenge =
        resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, resp.json().await.unwrap_or(Value::Null), challenge)
}

#[tokio::test]
async fn api_keys_are_verified_at_identity_cached_for_a_bounded_time_and_held_to_their_pools() {
    let (env, issuer, _signer, _fixture) = with_fixture_issuer(None).await;
    issuer.jwks_up.store(true, Ordering::SeqCst);
    for pool in ["payments", "orders"] {
        let body = json!({"name": pool, "algorithm": "A256GCM"});
        assert_eq!(env.call(Some(("manager", "m-pass")), "POST", "/pools", Some(body)).await.0, 201);
    }
    let plaintext = json!({"plaintext": "aGVsbG8="});
    let key = api_key(&issuer, TENANT, &["kms:encrypt", "kms:decrypt"], &["service"]);
    let (status, enc, _) = call_with_key(&env, &key, "/pools/payments/encrypt", plaintext.clone()).await;
    assert_eq!(status, 200, "{enc}");
    let (status, _, _) = call_with_key(&env, &key, "/decrypt", json!({"jwe": enc["jwe"]})).await;
    assert_eq!(status, 200);
    let who = env
        .client
        .get(env.url("/whoami"))
        .header("authorization", format!("ApiKey {key}"))
        .send()
        .await
        .unwrap();
    // What authentication cost, on the response (W3C Server Timing).
    let timing = who.headers()["server-timing"].to_str().unwrap().to_owned();
    assert!(timing.starts_with("auth;dur=") && timing.contains(", total;dur="), "{timing}");
    let who: Value = who.json().await.unwrap();
    assert_eq!((who["method"].as_str(), who["subject"].as_str()), (Some("api_key"), Some("svc-client")));
    assert_eq!(issuer.verifications.load(Ordering::SeqCst), 1, "one verification, then the cached answer");

    // Deleted at Identity: accepted here until the cached answer ends (cache_ttl, 1 s), then refused.
    issuer.api_keys.lock().unwrap().insert(key.clone(), json!({"active": false, "reason": "deleted"}));
    assert_eq!(
        call_with_key(&env, &key, "/pools/payments/encrypt", plaintext.clone()).await.0,
        200,
        "within cache_ttl"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body, challenge) =
        call_with_key(&env, &key, "/pools/payments/encrypt", plaintext.clone()).await;
    assert_eq!((status, challenge.as_str()), (401, r#"ApiKey realm="kms""#), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("deleted"), "{body}");

    // Malformed: refused here, Identity never asked.
    let asked = issuer.verifications.load(Ordering::SeqCst);
    let mut damaged = key.clone().into_bytes();
    damaged[50] = if damaged[50] == b'a' { b'b' } else { b'a' };
    for bad in [String::from_utf8(damaged).unwrap(), "dak_".into(), "not-a-key".into(), key[..90].to_owned()]
    {
        let (status, body, _) = call_with_key(&env, &bad, "/pools/payments/encrypt", plaintext.clone()).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("malformed"), "{body}");
    }
    assert_eq!(issuer.verifications.load(Ordering::SeqCst), asked, "malformed keys cost Identity nothing");
    // A key sent as a Bearer token: 401 saying which scheme it takes.
    let (status, body, _) = call(&env, &key, "/pools/payments/encrypt", plaintext.clone()).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("Authorization: ApiKey"), "{body}");

    // A key for one pool: that pool only, and nothing that names no pool.
    let pool_key =
        api_key(&issuer, TENANT, &["kms:encrypt@pool:payments", "kms:decrypt@pool:payments"], &["service"]);
    let (status, enc, _) = call_with_key(&env, &pool_key, "/pools/payments/encrypt", plaintext.clone()).await;
    assert_eq!(status, 200, "{enc}");
    assert_eq!(call_with_key(&env, &pool_key, "/pools/orders/encrypt", plaintext.clone()).await.0, 403);
    assert_eq!(call_with_key(&env, &pool_key, "/decrypt", json!({"jwe": enc["jwe"]})).await.0, 403);
    // Permissions meet roles: an auditor's key with kms:encrypt encrypts nothing.
    let auditor = api_key(&issuer, TENANT, &["kms:encrypt"], &["auditor"]);
    assert_eq!(call_with_key(&env, &auditor, "/pools/payments/encrypt", plaintext.clone()).await.0, 403);

    // Identity answering for another tenant than the key names: refused.
    let other = api_key(&issuer, TENANT, &["kms:encrypt"], &["service"]);
    issuer.api_keys.lock().unwrap().get_mut(&other).unwrap()["tenant_id"] =
        "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b".into();
    assert_eq!(call_with_key(&env, &other, "/pools/payments/encrypt", plaintext.clone()).await.0, 401);

    // Acting as bob (X-Demo-Impersonate, which Identity allowed this key): bob's roles, and a
    // separate cached answer — the same key without the header is still its owner.
    let ops = api_key(&issuer, TENANT, &["kms:encrypt", "kms:read"], &["service"]);
    issuer.api_keys.lock().unwrap().insert(
        format!("{ops}|user:bob"),
        json!({"active": true, "tenant_id": TENANT, "sub": "bob-id", "owner_kind": "user", "key_id": "k",
               "name": "ops", "permissions": ["kms:encrypt", "kms:read"], "roles": ["auditor"], "act": {"sub": "svc-client"}}),
    );
    let who_as = |header: Option<&'static str>| {
        let mut request = env.client.get(env.url("/whoami")).header("authorization", format!("ApiKey {ops}"));
        if let Some(h) = header {
            request = request.header("x-demo-impersonate", h);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let as_bob = who_as(Some("user:bob")).await;
    assert_eq!(
        (as_bob["subject"].as_str(), &as_bob["roles"]),
        (Some("bob-id"), &json!(["auditor"])),
        "{as_bob}"
    );
    assert_eq!(who_as(None).await["subject"], "svc-client");
    let (status, _, _) = {
        let resp = env
            .client
            .post(env.url("/pools/payments/encrypt"))
            .header("authorization", format!("ApiKey {ops}"))
            .header("x-demo-impersonate", "user:bob")
            .json(&plaintext)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), (), ())
    };
    assert_eq!(status, 403, "as bob, an auditor: the key's kms:encrypt meets bob's roles");
    let refused = env
        .client
        .get(env.url("/whoami"))
        .header("authorization", format!("ApiKey {ops}"))
        .header("x-demo-impersonate", "user:nobody")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "Identity refused that impersonation");
    let basic = env
        .client
        .get(env.url("/whoami"))
        .basic_auth("manager", Some("m-pass"))
        .header("x-demo-impersonate", "user:bob")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 400, "the header is never ignored with another scheme");

    // Identity unreachable: 503, and nothing cached.
    issuer.verify_down.store(true, Ordering::SeqCst);
    let fresh = api_key(&issuer, TENANT, &["kms:encrypt"], &["service"]);
    assert_eq!(call_with_key(&env, &fresh, "/pools/payments/encrypt", plaintext.clone()).await.0, 503);
    issuer.verify_down.store(false, Ordering::SeqCst);
    assert_eq!(call_with_key(&env, &fresh, "/pools/payments/encrypt", plaintext).await.0, 200);
}
