//! Token exchange (RFC 8693) and transaction tokens: what an actor gets for a subject token,
//! and every way of asking for more that must be refused, each naming the rule.

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use identity::config::{ActorPolicy, ExchangeConfig, IdentityConfig, Tokens};
use serde_json::Value;
use test_support::TestDir;

use crate::browser::{Browser, authorize_query, login_for_code, pkce};
use crate::{ALICE_PASSWORD, Env, ISSUER, KMS_AUDIENCE, KMS_SECRET, seeded_config, start_config};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const ID: &str = "urn:ietf:params:oauth:token-type:id_token";
const TXN: &str = "urn:ietf:params:oauth:token-type:txn_token";
const UNSIGNED: &str = "urn:demo:params:oauth:token-type:unsigned-context";
const TRUST_DOMAIN: &str = "https://demo.local";
const GLOBEX: &str = "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b";

/// The actors, all with the secret `KMS_SECRET` (the file `kms_service`): `gateway` delegates,
/// `impersonator` impersonates, `batch` starts transactions from an unsigned context,
/// `bystander` may use the grant but has no policy, `globex-svc` is of another tenant.
const SEED: &str = "users:
  - { username: alice, password_file: alice, name: Alice, email: alice@acme.example, tenant: acme, roles: [admin] }
clients:
  - client_id: spa
    type: public
    grant_types: [authorization_code]
    scopes: [openid, profile, kms:encrypt, kms:decrypt]
    audiences: [https://kms.demo.local:8081]
    redirect_uris: [https://app.demo.local/callback]
    tenant: acme
  - client_id: gateway
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange]
    scopes: [kms:encrypt]
    audiences: [https://kms.demo.local:8081]
    tenant: acme
    roles: [service]
  - client_id: kms-service
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials]
    scopes: [kms:encrypt, kms:decrypt]
    audiences: [https://kms.demo.local:8081]
    tenant: acme
  - client_id: impersonator
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange]
    scopes: [kms:read]
    audiences: [https://kms.demo.local:8081]
    tenant: acme
  - client_id: batch
    type: confidential
    secret_file: kms_service
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]
    scopes: [kms:encrypt, kms:read]
    tenant: acme
    roles: [service]
  - client_id: bystander
    type: confidential
    secret_file: kms_service
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]
    scopes: [kms:read]
    tenant: acme
  - client_id: globex-svc
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials]
    scopes: [kms:encrypt]
    audiences: [https://kms.demo.local:8081]
    tenant: globex
";

fn actor(client_id: &str) -> ActorPolicy {
    ActorPolicy {
        client_id: client_id.into(),
        subject_token_types: vec!["access_token".into(), "id_token".into(), "txn_token".into()],
        subject_issuers: vec!["self".into()],
        requested_token_types: vec!["txn_token".into(), "access_token".into()],
        audiences: vec![KMS_AUDIENCE.into()],
        max_lifetime: std::time::Duration::from_secs(300),
        delegation: true,
        impersonation: false,
        unsigned_context_claims: vec![],
    }
}

fn policy() -> ExchangeConfig {
    ExchangeConfig {
        trust_domain: Some(TRUST_DOMAIN.into()),
        txn_token_ttl: None,
        trust_file: None,
        actors: vec![
            actor("gateway"),
            ActorPolicy {
                delegation: false,
                impersonation: true,
                requested_token_types: vec!["txn_token".into()],
                ..actor("impersonator")
            },
            ActorPolicy {
                subject_token_types: vec!["unsigned_context".into()],
                requested_token_types: vec!["txn_token".into()],
                audiences: vec![],
                unsigned_context_claims: vec!["sub".into(), "tctx".into()],
                ..actor("batch")
            },
        ],
    }
}

async fn start_exchange(policy: ExchangeConfig) -> Env {
    let dir = Arc::new(TestDir::with_demo_pki());
    let tenants = format!("acme: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10\nglobex: {GLOBEX}\n");
    let config =
        IdentityConfig { token_exchange: policy, ..seeded_config(&dir, SEED, &tenants, Tokens::default()) };
    start_config(dir, &config).await.unwrap()
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

/// A client_credentials token of `client` (secret `KMS_SECRET`).
async fn client_token(env: &Env, client: &str) -> String {
    let (status, body) =
        env.post("/token", Some((client, KMS_SECRET)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Alice's access and ID tokens through the code flow at `spa`, scope `openid kms:encrypt`.
async fn alice(env: &Env) -> (String, String) {
    let (verifier, challenge) = pkce();
    let query = authorize_query(&challenge, &[("scope", "openid kms:encrypt")]);
    let code = login_for_code(&mut Browser::default(), env, &query, ("alice", ALICE_PASSWORD)).await;
    let (status, body) = crate::flows::exchange(env, &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), body["id_token"].as_str().unwrap().to_owned())
}

/// A token exchange by `actor` with `params` besides the grant type.
async fn exchange(env: &Env, actor: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", EXCHANGE)];
    form.extend_from_slice(params);
    env.post("/token", Some((actor, KMS_SECRET)), &form).await
}

/// [`exchange`] with an owned form.
async fn exchange_owned(env: &Env, actor: &str, form: Vec<(String, String)>) -> (u16, Value) {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    exchange(env, actor, &form).await
}

fn refused(answer: &(u16, Value), error: &str, words: &str) {
    let (status, body) = answer;
    assert_eq!((*status, body["error"].as_str()), (400, Some(error)), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(words), "{description:?} should say {words:?}");
}

#[tokio::test]
async fn a_user_token_becomes_a_transaction_token_for_the_trust_domain_with_the_actor_recorded() {
    let env = start_exchange(policy()).await;
    let (user_token, _) = alice(&env).await;
    let gateway = client_token(&env, "gateway").await;
    let details = B64.encode(br#"{"op":"encrypt","pool":"payments"}"#);
    let answer = exchange(
        &env,
        "gateway",
        &[
            ("subject_token", &user_token),
            ("subject_token_type", ACCESS),
            ("actor_token", &gateway),
            ("actor_token_type", ACCESS),
            ("requested_token_type", TXN),
            ("audience", TRUST_DOMAIN),
            ("scope", "kms:encrypt"),
            ("request_details", &details),
        ],
    )
    .await;
    let (status, body) = &answer;
    assert_eq!(*status, 200, "{body}");
    assert_eq!((body["issued_token_type"].as_str(), body["token_type"].as_str()), (Some(TXN), Some("N_A")));
    let txn_token = body["access_token"].as_str().unwrap();
    assert_eq!(header(txn_token)["typ"], "txntoken+jwt");
    let c = claims(txn_token);
    let user = claims(&user_token);
    assert_eq!((c["aud"].as_str(), c["iss"].as_str()), (Some(TRUST_DOMAIN), Some(ISSUER)));
    assert_eq!(c["sub"], user["sub"], "the transaction is the user's");
    assert_eq!(
        (c["scope"].as_str(), c["tenant_id"].clone()),
        (Some("kms:encrypt"), user["tenant_id"].clone())
    );
    assert_eq!(c["act"], serde_json::json!({"sub": "gateway"}), "the actor is recorded");
    assert_eq!(c["rctx"]["req_wl"], "gateway");
    assert_eq!(c["rctx"]["req_ip"], "127.0.0.1");
    assert_eq!(c["tctx"], serde_json::json!({"op": "encrypt", "pool": "payments"}));
    assert!(uuid::Uuid::parse_str(c["txn"].as_str().unwrap()).is_ok());
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert!((55..=60).contains(&lifetime), "60 s by default: {lifetime}");

    // Independent: Python `requests` performs an exchange of the same user token itself, PyJWT
    // verifies what it got against the JWKS (typ, txn, act, aud, exp).
    if test_support::oracle::python("jwt, cryptography, requests", "python3 with PyJWT[crypto] and requests")
    {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/exchange_oracle.py");
        let ca = env.dir.path().join("pki/ca-bundle.pem");
        let port = env.identity.server.addr.port().to_string();
        let mut command = Command::new("python3");
        command.arg(&script).env_remove("REQUESTS_CA_BUNDLE").env_remove("CURL_CA_BUNDLE").args([
            ISSUER,
            &port,
            ca.to_str().unwrap(),
            "gateway",
            KMS_SECRET,
            &user_token,
            TRUST_DOMAIN,
        ]);
        let seen = crate::run_python("the exchange oracle", command).await;
        assert_eq!(seen["sub"], user["sub"]);
        assert_ne!(seen["txn"], c["txn"], "a new transaction");
    }

    // Presented again for a downstream call: the same transaction, never more.
    let mut token = txn_token.to_owned();
    let mut last_exp = c["exp"].as_i64().unwrap();
    for hop in 0..4 {
        let (status, body) = exchange(
            &env,
            "gateway",
            &[
                ("subject_token", &token),
                ("subject_token_type", TXN),
                ("actor_token", &gateway),
                ("actor_token_type", ACCESS),
                ("requested_token_type", TXN),
            ],
        )
        .await;
        assert_eq!(status, 200, "hop {hop}: {body}");
        token = body["access_token"].as_str().unwrap().to_owned();
        let next = claims(&token);
        assert_eq!(
            (next["txn"].clone(), next["tctx"].clone()),
            (c["txn"].clone(), c["tctx"].clone()),
            "hop {hop}"
        );
        assert!(
            next["exp"].as_i64().unwrap() <= last_exp,
            "hop {hop}: a re-exchange never extends the lifetime"
        );
        last_exp = next["exp"].as_i64().unwrap();
        assert_eq!(next["act"]["act"]["sub"], "gateway", "hop {hop}: the chain is nested");
    }
    let wider = exchange(
        &env,
        "gateway",
        &[
            ("subject_token", &token),
            ("subject_token_type", TXN),
            ("actor_token", &gateway),
            ("actor_token_type", ACCESS),
            ("requested_token_type", TXN),
            ("scope", "kms:encrypt kms:decrypt"),
        ],
    )
    .await;
    refused(&wider, "invalid_scope", "kms:decrypt");
    let new_context = exchange(
        &env,
        "gateway",
        &[
            ("subject_token", &token),
            ("subject_token_type", TXN),
            ("actor_token", &gateway),
            ("actor_token_type", ACCESS),
            ("requested_token_type", TXN),
            ("request_details", &details),
        ],
    )
    .await;
    refused(&new_context, "invalid_request", "cannot change the transaction context");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_access_token_by_exchange_names_an_allowed_audience_and_the_actor() {
    let env = start_exchange(policy()).await;
    let (user_token, id_token) = alice(&env).await;
    let gateway = client_token(&env, "gateway").await;
    let base = [("actor_token", gateway.as_str()), ("actor_token_type", ACCESS)];
    let ask = |subject: &'static str, kind: &'static str| {
        let mut p = base.to_vec();
        p.extend([("subject_token", subject), ("subject_token_type", kind)]);
        p
    };
    let user_token: &'static str = Box::leak(user_token.into_boxed_str());
    let id_token: &'static str = Box::leak(id_token.into_boxed_str());
    let (status, body) = exchange(&env, "gateway", &ask(user_token, ACCESS)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["issued_token_type"].as_str(), body["token_type"].as_str()),
        (Some(ACCESS), Some("Bearer"))
    );
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(header(token)["typ"], "at+jwt");
    let c = claims(token);
    assert_eq!((c["aud"].as_str(), c["client_id"].as_str()), (Some(KMS_AUDIENCE), Some("gateway")));
    assert_eq!(
        (c["sub"].clone(), c["act"]["sub"].as_str()),
        (claims(user_token)["sub"].clone(), Some("gateway"))
    );
    assert_eq!(c["scope"], "openid kms:encrypt");
    assert!(crate::flows::active(&env, token).await, "introspection knows it");

    let mut elsewhere = ask(user_token, ACCESS);
    elsewhere.push(("audience", "https://evil.example"));
    refused(
        &exchange(&env, "gateway", &elsewhere).await,
        "invalid_target",
        "token_exchange.actors[gateway].audiences",
    );
    let mut txn_elsewhere = ask(user_token, ACCESS);
    txn_elsewhere.extend([("requested_token_type", TXN), ("audience", KMS_AUDIENCE)]);
    refused(&exchange(&env, "gateway", &txn_elsewhere).await, "invalid_target", "trust domain");

    // An ID token authorizes what the client was granted, without `openid`.
    let (status, body) = exchange(&env, "gateway", &ask(id_token, ID)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["scope"], "profile kms:encrypt kms:decrypt");
    // …and only as an ID token: the types are not interchangeable.
    refused(
        &exchange(&env, "gateway", &ask(id_token, ACCESS)).await,
        "invalid_request",
        "not a valid access_token",
    );
    refused(
        &exchange(&env, "gateway", &ask(user_token, ID)).await,
        "invalid_request",
        "not a valid id_token",
    );
    refused(
        &exchange(&env, "gateway", &ask(user_token, TXN)).await,
        "invalid_request",
        "not a valid txn_token",
    );
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_subject_and_actor_tokens_are_refused() {
    let env = start_exchange(policy()).await;
    let (user_token, _) = alice(&env).await;
    let gateway = client_token(&env, "gateway").await;
    let delegated = |subject: String, actor: String| {
        vec![
            ("subject_token".to_owned(), subject),
            ("subject_token_type".to_owned(), ACCESS.to_owned()),
            ("actor_token".to_owned(), actor),
            ("actor_token_type".to_owned(), ACCESS.to_owned()),
            ("requested_token_type".to_owned(), TXN.to_owned()),
        ]
    };
    let send = |form: Vec<(String, String)>| exchange_owned(&env, "gateway", form);

    // Tampered: one character of the payload changed (the signature no longer matches).
    let mut parts: Vec<String> = user_token.split('.').map(str::to_owned).collect();
    let mut payload = claims(&user_token);
    payload["scope"] = "openid kms:encrypt kms:decrypt".into();
    parts[1] = B64.encode(serde_json::to_vec(&payload).unwrap());
    let tampered = parts.join(".");
    refused(&send(delegated(tampered, gateway.clone())).await, "invalid_request", "not a valid access_token");

    // Another issuer's token (another Identity, other keys, same issuer name).
    let other = start_exchange(policy()).await;
    let foreign = client_token(&other, "gateway").await;
    refused(
        &send(delegated(foreign.clone(), gateway.clone())).await,
        "invalid_request",
        "not a valid access_token",
    );
    refused(&send(delegated(user_token.clone(), foreign)).await, "invalid_request", "actor_token is invalid");
    other.identity.shutdown().await.unwrap();

    // The actor token of another client than the one authenticated.
    let kms = client_token(&env, "kms-service").await;
    refused(&send(delegated(user_token.clone(), kms)).await, "invalid_request", "another client");

    // A subject of another tenant.
    let globex = client_token(&env, "globex-svc").await;
    refused(&send(delegated(globex, gateway.clone())).await, "unauthorized_client", "another tenant");

    // Revoked: the user's token, then the actor's.
    let (status, _) = env.post("/revoke", None, &[("token", &user_token), ("client_id", "spa")]).await;
    assert_eq!(status, 200);
    refused(
        &send(delegated(user_token.clone(), gateway.clone())).await,
        "invalid_request",
        "subject_token has been revoked",
    );
    let (fresh, _) = alice(&env).await;
    let (status, _) = env.post("/revoke", Some(("gateway", KMS_SECRET)), &[("token", &gateway)]).await;
    assert_eq!(status, 200);
    refused(&send(delegated(fresh, gateway)).await, "invalid_request", "actor_token has been revoked");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_subject_is_refused() {
    let env =
        start_exchange(ExchangeConfig { txn_token_ttl: Some(std::time::Duration::from_secs(5)), ..policy() })
            .await;
    let (user_token, _) = alice(&env).await;
    let gateway = client_token(&env, "gateway").await;
    let (status, body) = exchange(
        &env,
        "gateway",
        &[
            ("subject_token", &user_token),
            ("subject_token_type", ACCESS),
            ("actor_token", &gateway),
            ("actor_token_type", ACCESS),
            ("requested_token_type", TXN),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_in"].as_i64().unwrap() <= 5);
    let txn = body["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(6_200)).await;
    let again = exchange(
        &env,
        "gateway",
        &[
            ("subject_token", &txn),
            ("subject_token_type", TXN),
            ("actor_token", &gateway),
            ("actor_token_type", ACCESS),
            ("requested_token_type", TXN),
        ],
    )
    .await;
    refused(&again, "invalid_request", "has expired");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn actors_get_only_what_their_policy_lists() {
    let env = start_exchange(policy()).await;
    let (user_token, id_token) = alice(&env).await;
    let gateway = client_token(&env, "gateway").await;

    // No grant type, no policy entry.
    let asked = [
        ("subject_token", user_token.as_str()),
        ("subject_token_type", ACCESS),
        ("requested_token_type", TXN),
    ];
    refused(
        &exchange(&env, "kms-service", &asked).await,
        "unauthorized_client",
        "may not use urn:ietf:params:oauth:grant-type:token-exchange",
    );
    refused(
        &exchange(&env, "bystander", &asked).await,
        "unauthorized_client",
        "no token_exchange.actors entry",
    );
    // A public client cannot even authenticate for it.
    let (status, body) = env
        .post(
            "/token",
            None,
            &[
                ("grant_type", EXCHANGE),
                ("client_id", "spa"),
                ("subject_token", &user_token),
                ("subject_token_type", ACCESS),
            ],
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");

    // Without an actor token it is impersonation, which gateway may not do…
    refused(
        &exchange(&env, "gateway", &asked).await,
        "unauthorized_client",
        "token_exchange.actors[gateway].impersonation is false",
    );
    // …and impersonator may, with itself recorded in `act`; it may not delegate.
    let (status, body) = exchange(&env, "impersonator", &asked).await;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].clone(), c["act"]["sub"].as_str()),
        (claims(&user_token)["sub"].clone(), Some("impersonator"))
    );
    let own = client_token(&env, "impersonator").await;
    let delegating = [
        ("subject_token", user_token.as_str()),
        ("subject_token_type", ACCESS),
        ("actor_token", own.as_str()),
        ("actor_token_type", ACCESS),
        ("requested_token_type", TXN),
    ];
    refused(
        &exchange(&env, "impersonator", &delegating).await,
        "unauthorized_client",
        "token_exchange.actors[impersonator].delegation is false",
    );
    let access = [
        ("subject_token", user_token.as_str()),
        ("subject_token_type", ACCESS),
        ("requested_token_type", ACCESS),
    ];
    refused(
        &exchange(&env, "impersonator", &access).await,
        "unauthorized_client",
        "token_exchange.actors[impersonator].requested_token_types does not allow access_token",
    );
    let by_id =
        [("subject_token", id_token.as_str()), ("subject_token_type", ID), ("requested_token_type", TXN)];
    let (status, _) = exchange(&env, "impersonator", &by_id).await;
    assert_eq!(status, 200, "impersonator lists id_token");

    // Malformed requests.
    let d = [("actor_token", gateway.as_str()), ("actor_token_type", ACCESS)];
    refused(&exchange(&env, "gateway", &d).await, "invalid_request", "subject_token is missing");
    let odd = [d[0], d[1], ("subject_token", user_token.as_str()), ("subject_token_type", "urn:x:saml")];
    refused(
        &exchange(&env, "gateway", &odd).await,
        "invalid_request",
        "subject_token_type \"urn:x:saml\" is not supported",
    );
    let odd = [
        d[0],
        d[1],
        ("subject_token", user_token.as_str()),
        ("subject_token_type", ACCESS),
        ("requested_token_type", "urn:x:refresh"),
    ];
    refused(&exchange(&env, "gateway", &odd).await, "invalid_request", "requested_token_type");
    let odd = [
        ("actor_token", gateway.as_str()),
        ("subject_token", user_token.as_str()),
        ("subject_token_type", ACCESS),
    ];
    refused(&exchange(&env, "gateway", &odd).await, "invalid_request", "actor_token_type is missing");
    let unsigned = [
        d[0],
        d[1],
        ("subject_token", "e30"),
        ("subject_token_type", UNSIGNED),
        ("requested_token_type", TXN),
    ];
    refused(
        &exchange(&env, "gateway", &unsigned).await,
        "unauthorized_client",
        "subject_token_types does not allow unsigned_context",
    );
    for bad in ["!!", &B64.encode(b"[1,2]"), &B64.encode(vec![b'a'; 3000])] {
        let details = [
            d[0],
            d[1],
            ("subject_token", user_token.as_str()),
            ("subject_token_type", ACCESS),
            ("requested_token_type", TXN),
            ("request_details", bad),
        ];
        refused(&exchange(&env, "gateway", &details).await, "invalid_request", "request_details");
    }
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unsigned_context_starts_a_transaction_within_the_actors_own_rights() {
    let env = start_exchange(policy()).await;
    let context = |json: &str| B64.encode(json.as_bytes());
    let ask = |ctx: String, requested: &'static str| {
        vec![
            ("subject_token".to_owned(), ctx),
            ("subject_token_type".to_owned(), UNSIGNED.to_owned()),
            ("requested_token_type".to_owned(), requested.to_owned()),
        ]
    };
    let send = |form: Vec<(String, String)>| exchange_owned(&env, "batch", form);
    let (status, body) = send(ask(context(r#"{"sub":"job-42","tctx":{"run":"nightly"}}"#), TXN)).await;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!((c["sub"].as_str(), c["act"]["sub"].as_str()), (Some("job-42"), Some("batch")));
    assert_eq!(
        (c["scope"].as_str(), c["tenant_id"].as_str()),
        (Some("kms:encrypt kms:read"), Some("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10"))
    );
    assert_eq!(c["roles"], serde_json::json!(["service"]), "the actor's roles, not any it asserts");
    assert_eq!(c["tctx"], serde_json::json!({"run": "nightly"}));

    refused(
        &send(ask(context(r#"{"sub":"job-42","scope":"kms:read"}"#), TXN)).await,
        "unauthorized_client",
        "does not allow the claim \"scope\"",
    );
    refused(
        &send(ask(context(r#"{"sub":"job-42","tenant_id":"x"}"#), TXN)).await,
        "unauthorized_client",
        "does not allow the claim \"tenant_id\"",
    );
    refused(&send(ask(context(r#"{"tctx":{}}"#), TXN)).await, "invalid_request", "needs a string `sub`");
    refused(
        &send(ask(context(r#"{"sub":"job-42"}"#), ACCESS)).await,
        "unauthorized_client",
        "requested_token_types does not allow access_token",
    );
    refused(&send(ask("not base64!".into(), TXN)).await, "invalid_request", "is not base64url");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn discovery_lists_the_exchange_grant_only_when_an_actor_may_use_it() {
    let env = start_exchange(policy()).await;
    let doc: Value = env
        .client
        .get(env.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["grant_types_supported"].as_array().unwrap().iter().any(|g| g == EXCHANGE), "{doc}");
    env.identity.shutdown().await.unwrap();
    let plain = crate::start().await;
    let doc: Value = plain
        .client
        .get(plain.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!doc["grant_types_supported"].as_array().unwrap().iter().any(|g| g == EXCHANGE), "{doc}");
    plain.identity.shutdown().await.unwrap();
}

/// A partner issuer in the trust store: its token for acme is exchanged (the actor lists it),
/// for globex it is refused (not its authority), and an actor that does not list it cannot
/// present it.
#[tokio::test]
async fn a_token_of_a_trusted_issuer_is_exchanged_for_its_tenant() {
    use axum::routing::get;
    let dir = Arc::new(TestDir::with_demo_pki());
    let partner = test_support::jwt::Signer::new("partner-1");
    let (jwks_doc, issuer_cell) = (partner.jwks(), Arc::new(std::sync::Mutex::new(String::new())));
    let cell = issuer_cell.clone();
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let issuer = cell.lock().unwrap().clone();
                async move {
                    axum::Json(serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}))
                }
            }),
        )
        .route(
            "/jwks",
            get(move || {
                let doc = jwks_doc.clone();
                async move { axum::Json(doc) }
            }),
        );
    let server = service_kit::server::start(&dir.loopback("kms"), router, service_kit::Readiness::new())
        .await
        .unwrap();
    let partner_iss = format!("https://kms.demo.local:{}", server.addr.port());
    *issuer_cell.lock().unwrap() = partner_iss.clone();
    let trust = dir.write(
        "trust.yml",
        format!(
            "issuers:\n  - issuer: {partner_iss}\n    audiences: [{TRUST_DOMAIN}]\n    tenants: [0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10]\n    ca_file: {}\n    resolve: {{ kms.demo.local: \"{}\" }}\n",
            dir.pki().ca_bundle().display(),
            server.addr
        ),
    );
    let mut exchange_policy = policy();
    exchange_policy.trust_file = Some(trust);
    exchange_policy.actors[0].subject_token_types.push("jwt".into());
    exchange_policy.actors[0].subject_issuers.push(partner_iss.clone());
    let tenants = format!("acme: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10\nglobex: {GLOBEX}\n");
    let config = IdentityConfig {
        token_exchange: exchange_policy,
        ..seeded_config(&dir, SEED, &tenants, Tokens::default())
    };
    let env = start_config(dir, &config).await.unwrap();
    let now = test_support::jwt::now();
    let partner_token = |tenant: &str| {
        partner.token(
            "at+jwt",
            &serde_json::json!({"iss": partner_iss, "sub": "partner-user-7", "aud": TRUST_DOMAIN, "exp": now + 120,
                "iat": now, "scope": "kms:encrypt", "tenant_id": tenant, "roles": ["user"]}),
        )
    };
    let gateway = client_token(&env, "gateway").await;
    let ask = |subject: String, kind: &'static str| {
        vec![
            ("subject_token".to_owned(), subject),
            ("subject_token_type".to_owned(), kind.to_owned()),
            ("actor_token".to_owned(), gateway.clone()),
            ("actor_token_type".to_owned(), ACCESS.to_owned()),
            ("requested_token_type".to_owned(), TXN.to_owned()),
        ]
    };
    let (status, body) = exchange_owned(
        &env,
        "gateway",
        ask(partner_token("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10"), "urn:ietf:params:oauth:token-type:jwt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].as_str(), c["scope"].as_str(), c["act"]["sub"].as_str()),
        (Some("partner-user-7"), Some("kms:encrypt"), Some("gateway"))
    );
    assert!(c["exp"].as_i64().unwrap() <= now + 120, "never past the partner token's expiry");

    // A subject that names who may act for it (`may_act`) admits that actor only.
    let may_act = |who: &str| {
        partner.token(
            "at+jwt",
            &serde_json::json!({"iss": partner_iss, "sub": "partner-user-8", "aud": TRUST_DOMAIN, "exp": now + 120,
                "iat": now, "scope": "kms:encrypt", "tenant_id": "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10",
                "roles": ["user"], "may_act": {"sub": who}}),
        )
    };
    let (status, body) = exchange_owned(&env, "gateway", ask(may_act("gateway"), ACCESS)).await;
    assert_eq!(status, 200, "may_act names the gateway: {body}");
    let refused_actor = exchange_owned(&env, "gateway", ask(may_act("another-service"), ACCESS)).await;
    refused(
        &refused_actor,
        "unauthorized_client",
        "may_act admits \"another-service\" only, not \"gateway\"",
    );

    let globex = exchange_owned(&env, "gateway", ask(partner_token(GLOBEX), ACCESS)).await;
    refused(&globex, "invalid_request", "is not the authority for tenant");
    let impersonator = exchange_owned(
        &env,
        "impersonator",
        vec![
            ("subject_token".to_owned(), partner_token("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10")),
            ("subject_token_type".to_owned(), ACCESS.to_owned()),
            ("requested_token_type".to_owned(), TXN.to_owned()),
        ],
    )
    .await;
    refused(
        &impersonator,
        "unauthorized_client",
        "token_exchange.actors[impersonator].subject_issuers does not list",
    );
    // Our own token under the jwt type is refused; the stranger issuer is unknown to the store.
    let (user_token, _) = alice(&env).await;
    refused(
        &exchange_owned(&env, "gateway", ask(user_token, "urn:ietf:params:oauth:token-type:jwt")).await,
        "invalid_request",
        "jwt is for tokens of other issuers",
    );
    env.identity.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

/// An actor naming an issuer the trust store does not list stops Identity at start, naming both.
#[tokio::test]
async fn an_actor_naming_an_issuer_the_trust_store_lacks_stops_the_start() {
    let dir = Arc::new(TestDir::with_demo_pki());
    let trust = dir.write(
        "trust.yml",
        "issuers:\n  - issuer: https://partner.example\n    audiences: [https://demo.local]\n    tenants: [0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10]\n",
    );
    let mut exchange_policy = policy();
    exchange_policy.trust_file = Some(trust);
    exchange_policy.actors[0].subject_issuers.push("https://stranger.example".into());
    let tenants = format!("acme: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10\nglobex: {GLOBEX}\n");
    let config = IdentityConfig {
        token_exchange: exchange_policy,
        ..seeded_config(&dir, SEED, &tenants, Tokens::default())
    };
    let err = start_config(dir, &config).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("actor gateway names subject issuer https://stranger.example")
            && text.contains("trust.yml"),
        "{text}"
    );
}
