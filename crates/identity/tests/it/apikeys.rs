//! API keys over HTTPS: made, listed, verified, rotated with an overlap, deleted (refused at
//! once) and restored by their owner; and every way of abusing one refused — a tampered,
//! truncated or prefix-only key, a key moved to another tenant, a guessed secret, permissions the
//! owner does not hold, another owner's key, a token that may not manage keys, a client that may
//! not verify them.

use std::sync::Arc;

use identity::config::{ApiKeysConfig, IdentityConfig, Tokens};
use serde_json::{Value, json};
use test_support::TestDir;

use crate::browser::{Browser, authorize_query, login_for_code, pkce};
use crate::{ALICE_PASSWORD, BOB_PASSWORD, Env, ISSUER, KMS_SECRET, seeded_config, start_config};

const GLOBEX: &str = "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b";

/// `svc` and `globex-svc` own keys (confidential, `identity:api-keys`, Identity's audience);
/// `kms-service` verifies them; `nosy` may not. Every secret is `KMS_SECRET`. The SPA gets user
/// tokens for Identity: alice is a tenant admin, bob is not.
const SEED: &str = "users:
  - { username: alice, password_file: alice, name: Alice, email: alice@acme.example, tenant: acme, roles: [tenant-admin] }
  - { username: bob, password_file: bob, name: Bob, email: bob@acme.example, tenant: acme, roles: [user] }
clients:
  - client_id: svc
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials]
    scopes: [identity:api-keys, identity:impersonate, kms:encrypt, kms:decrypt]
    audiences: [https://identity.demo.local:8082, https://kms.demo.local:8081]
    tenant: acme
    roles: [service]
  - client_id: globex-svc
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials]
    scopes: [identity:api-keys, kms:encrypt]
    audiences: [https://identity.demo.local:8082]
    tenant: globex
  - client_id: kms-service
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials]
    scopes: [kms:read]
    audiences: [https://kms.demo.local:8081]
    tenant: acme
  - client_id: nosy
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials]
    scopes: [kms:read]
    audiences: [https://kms.demo.local:8081]
    tenant: acme
  - client_id: spa
    type: public
    grant_types: [authorization_code]
    scopes: [openid, identity:api-keys, kms:encrypt]
    audiences: [https://identity.demo.local:8082]
    redirect_uris: [https://app.demo.local/callback]
    tenant: acme
";

async fn start() -> Env {
    let dir = Arc::new(TestDir::with_demo_pki());
    let tenants = format!("acme: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10\nglobex: {GLOBEX}\n");
    let config = IdentityConfig {
        api_keys: ApiKeysConfig {
            verifiers: vec!["kms-service".into()],
            token_audiences: vec![crate::KMS_AUDIENCE.into()],
            ..Default::default()
        },
        ..seeded_config(&dir, SEED, &tenants, Tokens::default())
    };
    start_config(dir, &config).await.unwrap()
}

/// A `client_credentials` token of `client` for `audience`.
async fn token(env: &Env, client: &str, audience: &str, scope: &str) -> String {
    let form = [("grant_type", "client_credentials"), ("resource", audience), ("scope", scope)];
    let (status, body) = env.post("/token", Some((client, KMS_SECRET)), &form).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A user's token for Identity through the code flow at `spa`.
async fn user_token(env: &Env, user: (&str, &str), scope: &str) -> String {
    let (verifier, challenge) = pkce();
    let query = authorize_query(&challenge, &[("scope", scope)]);
    let code = login_for_code(&mut Browser::default(), env, &query, user).await;
    let (status, body) = crate::flows::exchange(env, &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A call to the management API with `token`; status and JSON body.
async fn call(env: &Env, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let url = env.url(path);
    let request = match method {
        "GET" => env.client.get(url),
        "DELETE" => env.client.delete(url),
        _ => env.client.post(url),
    }
    .bearer_auth(token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /api/v1/api-keys` with `body`.
async fn make(env: &Env, token: &str, body: Value) -> (u16, Value) {
    call(env, "POST", "/api/v1/api-keys", token, Some(body)).await
}

async fn verify(env: &Env, key: &str) -> Value {
    let (status, body) =
        env.post("/api/v1/api-keys/verify", Some(("kms-service", KMS_SECRET)), &[("key", key)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn key_of(body: &Value) -> String {
    body["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_service_makes_uses_rotates_deletes_and_restores_its_key() {
    let env = start().await;
    let manage = token(&env, "svc", ISSUER, "identity:api-keys").await;
    let permissions = json!(["kms:encrypt", "kms:decrypt@pool:payments"]);
    let (status, made) =
        make(&env, &manage, json!({"name": "ci", "permissions": permissions, "expires_in": 3600})).await;
    assert_eq!(status, 201, "{made}");
    let key = key_of(&made);
    assert!(key.starts_with("dak_") && key.len() == identity::apikeys::KEY_LEN, "{key}");
    assert_eq!((made["state"].as_str(), made["owner"]["id"].as_str()), (Some("active"), Some("svc")));
    let id = made["id"].as_str().unwrap().to_owned();

    // Listed without the secret.
    let (status, listed) = call(&env, "GET", "/api/v1/api-keys", &manage, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["keys"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(&key[40..]), "the secret is shown once, at creation");

    let v = verify(&env, &key).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["tenant_id"], "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10");
    assert_eq!((v["sub"].as_str(), v["owner_kind"].as_str()), (Some("svc"), Some("client")));
    assert_eq!(v["permissions"], permissions);
    assert_eq!(v["roles"], json!(["service"]));
    let (_, listed) = call(&env, "GET", "/api/v1/api-keys", &manage, None).await;
    assert!(listed["keys"][0]["last_used_at"].is_i64(), "the use is recorded: {listed}");

    // Rotation with an overlap: both secrets work until it ends.
    let (status, rotated) =
        call(&env, "POST", &format!("/api/v1/api-keys/{id}/rotate"), &manage, Some(json!({"overlap": 300})))
            .await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = key_of(&rotated);
    assert_ne!(new_key, key);
    assert_eq!(rotated["id"], id.as_str(), "the same key, a new secret");
    assert!(rotated["previous_valid_until"].is_i64());
    assert_eq!(verify(&env, &key).await["active"], true, "the old secret within the overlap");
    assert_eq!(verify(&env, &new_key).await["active"], true);
    // Without an overlap the previous secret stops at once.
    let (_, again) = call(&env, "POST", &format!("/api/v1/api-keys/{id}/rotate"), &manage, None).await;
    let newest = key_of(&again);
    assert_eq!(verify(&env, &new_key).await, json!({"active": false, "reason": "wrong secret"}));
    assert_eq!(verify(&env, &key).await["active"], false, "two rotations back");

    // Deleted: refused at once, still listed, restorable.
    let (status, deleted) = call(&env, "DELETE", &format!("/api/v1/api-keys/{id}"), &manage, None).await;
    assert_eq!((status, deleted["state"].as_str()), (200, Some("deleted")), "{deleted}");
    assert_eq!(verify(&env, &newest).await, json!({"active": false, "reason": "deleted"}));
    let (status, _) = call(&env, "DELETE", &format!("/api/v1/api-keys/{id}"), &manage, None).await;
    assert_eq!(status, 409, "deleted already");
    let (status, restored) =
        call(&env, "POST", &format!("/api/v1/api-keys/{id}/restore"), &manage, None).await;
    assert_eq!((status, restored["state"].as_str()), (200, Some("active")), "{restored}");
    assert_eq!(verify(&env, &newest).await["active"], true);
}

#[tokio::test]
async fn keys_are_made_only_within_what_the_owner_holds() {
    let env = start().await;
    let manage = token(&env, "svc", ISSUER, "identity:api-keys").await;
    let named = |name: &str, permissions: Value| json!({"name": name, "permissions": permissions});
    for (why, body, want) in [
        ("a scope svc lacks", named("a", json!(["kms:read"])), 403),
        ("the management scope itself", named("b", json!(["identity:api-keys"])), 403),
        ("no permission", named("c", json!([])), 400),
        ("a malformed permission", named("d", json!(["kms:encrypt@pool:"])), 400),
        ("an empty name", named("", json!(["kms:encrypt"])), 400),
        ("an unknown field", json!({"name": "e", "permissions": ["kms:encrypt"], "admin": true}), 400),
        ("a lifetime too short", json!({"name": "f", "permissions": ["kms:encrypt"], "expires_in": 1}), 400),
    ] {
        let (status, body) = make(&env, &manage, body).await;
        assert_eq!(status, want, "{why}: {body}");
    }
    let (status, _) = make(&env, &manage, named("ci", json!(["kms:encrypt"]))).await;
    assert_eq!(status, 201);
    let (status, body) = make(&env, &manage, named("ci", json!(["kms:encrypt"]))).await;
    assert_eq!(status, 409, "one live key per name and owner: {body}");

    // Tokens that may not manage keys.
    let kms_audience = token(&env, "svc", crate::KMS_AUDIENCE, "identity:api-keys").await;
    let (status, body) = call(&env, "GET", "/api/v1/api-keys", &kms_audience, None).await;
    assert_eq!(status, 403, "another audience: {body}");
    let no_scope = token(&env, "svc", ISSUER, "kms:encrypt").await;
    assert_eq!(call(&env, "GET", "/api/v1/api-keys", &no_scope, None).await.0, 403);
    assert_eq!(call(&env, "GET", "/api/v1/api-keys", "not-a-token", None).await.0, 401);
    let response = env.client.get(env.url("/api/v1/api-keys")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn users_own_keys_and_only_a_tenant_admin_sees_every_key() {
    let env = start().await;
    let bob = user_token(&env, ("bob", BOB_PASSWORD), "openid identity:api-keys kms:encrypt").await;
    let (status, made) = make(&env, &bob, json!({"name": "laptop", "permissions": ["kms:encrypt"]})).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["owner"]["kind"], "user");
    let id = made["id"].as_str().unwrap().to_owned();
    let v = verify(&env, &key_of(&made)).await;
    assert_eq!(
        (v["active"].as_bool(), v["owner_kind"].as_str(), &v["roles"]),
        (Some(true), Some("user"), &json!(["user"]))
    );
    // A user holds what their token holds: bob's token has no kms:decrypt.
    let (status, _) = make(&env, &bob, json!({"name": "more", "permissions": ["kms:decrypt"]})).await;
    assert_eq!(status, 403);
    // Nor may a narrower token of bob's rotate his key and be handed its secret.
    let narrow = user_token(&env, ("bob", BOB_PASSWORD), "openid identity:api-keys").await;
    let (status, body) = call(&env, "POST", &format!("/api/v1/api-keys/{id}/rotate"), &narrow, None).await;
    assert_eq!(status, 403, "{body}");

    // The service sees only its own keys, and bob's key is no key of its.
    let svc = token(&env, "svc", ISSUER, "identity:api-keys").await;
    let (_, listed) = call(&env, "GET", "/api/v1/api-keys", &svc, None).await;
    assert_eq!(listed["keys"], json!([]));
    assert_eq!(call(&env, "DELETE", &format!("/api/v1/api-keys/{id}"), &svc, None).await.0, 404);
    assert_eq!(call(&env, "POST", &format!("/api/v1/api-keys/{id}/rotate"), &svc, None).await.0, 404);

    // Alice, tenant admin, sees and deletes it — but may not rotate it: a rotation hands out
    // the new secret, and she would hold bob's key.
    let alice = user_token(&env, ("alice", ALICE_PASSWORD), "openid identity:api-keys").await;
    let (_, listed) = call(&env, "GET", "/api/v1/api-keys", &alice, None).await;
    assert_eq!(listed["keys"][0]["id"], id.as_str());
    let (status, body) = call(&env, "POST", &format!("/api/v1/api-keys/{id}/rotate"), &alice, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(call(&env, "DELETE", &format!("/api/v1/api-keys/{id}"), &alice, None).await.0, 200);
    assert_eq!(verify(&env, &key_of(&made)).await["reason"], "deleted");
}

#[tokio::test]
async fn damaged_moved_and_guessed_keys_are_refused() {
    let env = start().await;
    let manage = token(&env, "svc", ISSUER, "identity:api-keys").await;
    let (_, made) = make(&env, &manage, json!({"name": "ci", "permissions": ["kms:encrypt"]})).await;
    let key = key_of(&made);
    let globex = token(&env, "globex-svc", ISSUER, "identity:api-keys").await;
    let (_, theirs) = make(&env, &globex, json!({"name": "ci", "permissions": ["kms:encrypt"]})).await;
    let theirs = key_of(&theirs);
    assert_eq!(verify(&env, &theirs).await["tenant_id"], GLOBEX, "a key answers for its own tenant");

    let mut tampered = key.clone().into_bytes();
    tampered[60] = if tampered[60] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    // The checksum is public: an attacker recomputes it. Acme's tenant on globex's key (its id
    // and secret), and acme's key id with a secret of their own.
    let moved = with_checksum(&format!("{}{}", &key[..26], &theirs[26..91]));
    let guessed = with_checksum(&format!("{}{}", &key[..48], &theirs[48..91]));
    for (why, text, reason) in [
        ("tampered", tampered.as_str(), "malformed"),
        ("truncated", &key[..90], "malformed"),
        ("prefix only", "dak_", "malformed"),
        ("another prefix", &key.replacen("dak_", "ghp_", 1), "malformed"),
        ("moved to another tenant", moved.as_str(), "unknown"),
        ("a guessed secret", guessed.as_str(), "wrong secret"),
    ] {
        assert_eq!(verify(&env, text).await, json!({"active": false, "reason": reason}), "{why}");
    }
    assert_eq!(verify(&env, &key).await["active"], true, "the real key still works");
    let (status, _) =
        env.post("/api/v1/api-keys/verify", Some(("kms-service", KMS_SECRET)), &[("key", "")]).await;
    assert_eq!(status, 400, "no key");

    // Only the configured verifiers may ask.
    let (status, body) =
        env.post("/api/v1/api-keys/verify", Some(("nosy", KMS_SECRET)), &[("key", &key)]).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) =
        env.post("/api/v1/api-keys/verify", Some(("kms-service", "wrong")), &[("key", &key)]).await;
    assert_eq!(status, 401);
}

/// `body` (a key without its last six characters) with the checksum a key carries: CRC-32 in
/// six base62 digits, computed here independently of the crate.
fn with_checksum(body: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut crc = crc32(body.as_bytes()) as u64;
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    format!("{body}{}", String::from_utf8(digits.to_vec()).unwrap())
}

/// CRC-32 (IEEE), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test]
async fn an_api_key_is_exchanged_for_an_access_token_never_wider() {
    let env = start().await;
    let manage = token(&env, "svc", ISSUER, "identity:api-keys").await;
    let (_, made) = make(
        &env,
        &manage,
        json!({"name": "ci", "permissions": ["kms:encrypt", "kms:decrypt@pool:payments"]}),
    )
    .await;
    let (key, id) = (key_of(&made), made["id"].as_str().unwrap().to_owned());
    let exchange = |extra: &[(&'static str, &'static str)]| {
        let mut form = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token_type", identity::exchange::API_KEY),
        ];
        form.extend_from_slice(extra);
        form
    };
    let with_key = |mut form: Vec<(&'static str, &'static str)>, key: &str| {
        let mut owned: Vec<(String, String)> =
            form.drain(..).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        owned.push(("subject_token".into(), key.to_owned()));
        owned
    };
    let post = |form: Vec<(String, String)>, basic: Option<(&'static str, &'static str)>| {
        let env = &env;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            env.post("/token", basic, &form).await
        }
    };

    let (status, body) = post(with_key(exchange(&[]), &key), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "kms:encrypt kms:decrypt@pool:payments");
    let claims = payload(body["access_token"].as_str().unwrap());
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("svc"), Some(crate::KMS_AUDIENCE)));
    assert_eq!(claims["client_id"], format!("api-key:{id}"));
    assert_eq!(claims["tenant_id"], "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10");
    assert!(claims.get("act").is_none(), "the owner acts for itself");
    // Introspection says it is live.
    let (_, active) = env
        .post(
            "/introspect",
            Some(("kms-service", KMS_SECRET)),
            &[("token", body["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(active["active"], true, "{active}");

    // Narrower: fewer scopes, a shorter life.
    let (status, body) =
        post(with_key(exchange(&[("scope", "kms:encrypt"), ("requested_lifetime", "30")]), &key), None).await;
    assert_eq!(
        (status, body["scope"].as_str(), body["expires_in"].as_i64()),
        (200, Some("kms:encrypt"), Some(30)),
        "{body}"
    );

    // Never wider, never elsewhere, never with other credentials.
    for (why, form, basic, error) in [
        ("a scope the key lacks", exchange(&[("scope", "kms:read")]), None, "invalid_scope"),
        (
            "the pool-wide form of a pool permission",
            exchange(&[("scope", "kms:decrypt")]),
            None,
            "invalid_scope",
        ),
        (
            "an audience not listed",
            exchange(&[("audience", "https://other.demo.local")]),
            None,
            "invalid_target",
        ),
        ("a longer life", exchange(&[("requested_lifetime", "999999")]), None, "invalid_request"),
        (
            "a transaction token",
            exchange(&[("requested_token_type", "urn:ietf:params:oauth:token-type:txn_token")]),
            None,
            "invalid_request",
        ),
        ("client authentication too", exchange(&[]), Some(("svc", KMS_SECRET)), "invalid_request"),
        (
            "an actor token",
            exchange(&[
                ("actor_token", "x"),
                ("actor_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ]),
            None,
            "invalid_request",
        ),
    ] {
        let (status, body) = post(with_key(form, &key), basic).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{why}: {body}");
    }
    let mut damaged = key.clone().into_bytes();
    damaged[50] = if damaged[50] == b'a' { b'b' } else { b'a' };
    let (status, body) = post(with_key(exchange(&[]), &String::from_utf8(damaged).unwrap()), None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("malformed"), "{body}");

    // Deleted: no more tokens, and the ones it gave are inactive at introspection; the refusal
    // does not say why (no one authenticates here: whether a key exists is not told).
    let (_, minted) = post(with_key(exchange(&[]), &key), None).await;
    let minted = minted["access_token"].as_str().unwrap().to_owned();
    call(&env, "DELETE", &format!("/api/v1/api-keys/{id}"), &manage, None).await;
    let (status, body) = post(with_key(exchange(&[]), &key), None).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("the API key is not valid")),
        "{body}"
    );
    let (_, active) =
        env.post("/introspect", Some(("kms-service", KMS_SECRET)), &[("token", minted.as_str())]).await;
    assert_eq!(active["active"], false, "a deleted key's tokens: {active}");
}

/// A JWT's claims, read without verifying (the tests check what was issued).
fn payload(jwt: &str) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_key_holding_the_permission_acts_as_another_entity_of_its_tenant_only() {
    let env = start().await;
    let manage = token(&env, "svc", ISSUER, "identity:api-keys").await;
    let (_, made) =
        make(&env, &manage, json!({"name": "ops", "permissions": ["identity:impersonate", "kms:encrypt"]}))
            .await;
    let key = key_of(&made);
    let (_, plain) = make(&env, &manage, json!({"name": "plain", "permissions": ["kms:encrypt"]})).await;
    let plain = key_of(&plain);
    let verify_as = |key: String, target: &'static str| {
        let env = &env;
        async move {
            let form = [("key", key.as_str()), ("impersonate", target)];
            let (status, body) =
                env.post("/api/v1/api-keys/verify", Some(("kms-service", KMS_SECRET)), &form).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let bob = verify_as(key.clone(), "user:bob").await;
    assert_eq!(bob["active"], true, "{bob}");
    // Bob's roles meet the owner's (svc: service): nothing in common, so no roles at all —
    // acting as someone never gives more than the owner holds.
    assert_eq!((bob["owner_kind"].as_str(), &bob["roles"]), (Some("user"), &json!([])));
    assert_ne!(bob["sub"], "svc", "the subject is bob");
    assert_eq!(bob["act"], json!({"sub": "svc"}), "the key's owner is recorded as the actor");
    assert_eq!(bob["permissions"], json!(["kms:encrypt"]), "impersonation is not passed on");
    let client = verify_as(key.clone(), "client:kms-service").await;
    assert_eq!(
        (client["sub"].as_str(), client["owner_kind"].as_str()),
        (Some("kms-service"), Some("client"))
    );
    assert_eq!(client["roles"], json!([]), "kms-service has no roles here: none in common");
    let itself = verify_as(key.clone(), "client:svc").await;
    assert_eq!(itself["roles"], json!(["service"]), "roles both hold");
    for (why, key, target, reason) in [
        ("a key without the permission", plain.clone(), "user:bob", "does not hold identity:impersonate"),
        (
            "a client of another tenant",
            key.clone(),
            "client:globex-svc",
            "no such client in the key's tenant",
        ),
        ("nobody", key.clone(), "user:nobody", "no such user"),
        ("no kind", key.clone(), "bob", "user:<username>"),
    ] {
        let body = verify_as(key, target).await;
        assert_eq!(body["active"], false, "{why}: {body}");
        assert!(body["reason"].as_str().unwrap().contains(reason), "{why}: {body}");
    }
    // Without the header's question, the key is its owner's, as before.
    assert_eq!(verify(&env, &key).await["sub"], "svc");
    // A user's token without identity:impersonate cannot put it on a key.
    let bob_token = user_token(&env, ("bob", BOB_PASSWORD), "openid identity:api-keys kms:encrypt").await;
    let (status, _) =
        make(&env, &bob_token, json!({"name": "escalate", "permissions": ["identity:impersonate"]})).await;
    assert_eq!(status, 403);
}
