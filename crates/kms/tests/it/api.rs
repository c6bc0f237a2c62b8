//! The HTTP API over real HTTPS: authentication, scopes, tenancy, and hostile input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms::TenantId;
use kms::config::{AuthConfig, RealmConfig};
use kms::service::RunningKms;
use serde_json::{Value, json};
use service_kit::server::Limits;
use test_support::{Running, TestDir};

const TENANT_A: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";
const TENANT_B: &str = "5d2a9e71-3c8b-4f6d-8e2a-1b7c9d0e3f42";

pub struct Env {
    pub dir: TestDir,
    pub kms: RunningKms,
    pub client: reqwest::Client,
}

pub async fn start() -> Env {
    start_in(prepare(), None).await
}

/// A temporary directory with the demo PKI in it.
pub fn prepare() -> TestDir {
    TestDir::with_demo_pki()
}

/// The KMS over `dir` with the test realm, and Bearer tokens if `bearer` is given.
pub async fn start_in(dir: TestDir, bearer: Option<kms::config::BearerConfig>) -> Env {
    let hash = service_kit::password::hash_password(&"hashed-pass".to_owned().into()).unwrap();
    let realm = format!(
        "users:
  - {{username: manager, password: m-pass, demo: true, tenant: {TENANT_A}, roles: [key-manager]}}
  - {{username: alice, password: a-pass, demo: true, tenant: {TENANT_A}, roles: [user]}}
  - {{username: auditor, password: au-pass, demo: true, tenant: {TENANT_A}, roles: [auditor]}}
  - {{username: svc, password_hash: \"{}\", tenant: {TENANT_A}, roles: [service]}}
  - {{username: bob, password: b-pass, demo: true, tenant: {TENANT_B}, roles: [user, key-manager]}}
",
        hash.as_str()
    );
    let realm_path = dir.write("realms.yml", realm);
    let mut config = test_support::kms::config(
        &dir,
        AuthConfig { bearer, ..test_support::kms::auth(vec![RealmConfig::File { path: realm_path }]) },
    );
    config.server.limits = Limits { body_bytes: 64 * 1024, ..Limits::default() };
    let Running { service: kms, client } = test_support::kms::start(&dir, &config, Default::default()).await;
    for (name, id) in [("a", TENANT_A), ("b", TENANT_B)] {
        kms.kms.ensure_tenant(name, TenantId(id.parse().unwrap())).await.unwrap();
    }
    Env { dir, kms, client }
}

impl Env {
    /// A client whose connections come from `local` (a loopback address such as 127.0.0.2):
    /// another client address, as the throttle sees it.
    pub fn client_from(&self, local: std::net::IpAddr) -> reqwest::Client {
        self.dir.client(test_support::kms::HOST, self.kms.server.addr).local_address(local).build().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://kms.demo.local:{}/api/v1{path}", self.kms.server.addr.port())
    }

    pub async fn call(
        &self,
        user: Option<(&str, &str)>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn raw(&self, user: (&str, &str), path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .basic_auth(user.0, Some(user.1))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

const MANAGER: Option<(&str, &str)> = Some(("manager", "m-pass"));
const ALICE: Option<(&str, &str)> = Some(("alice", "a-pass"));
const AUDITOR: Option<(&str, &str)> = Some(("auditor", "au-pass"));
const SVC: Option<(&str, &str)> = Some(("svc", "hashed-pass"));
const BOB: Option<(&str, &str)> = Some(("bob", "b-pass"));

fn b64(s: &str) -> String {
    B64.encode(s)
}

#[tokio::test]
async fn authentication_is_required_and_explained() {
    let env = start().await;
    let resp = env.client.get(env.url("/pools")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], r#"Basic realm="kms", charset="UTF-8""#);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (status, body) = env.call(Some(("alice", "wrong")), "GET", "/pools", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "urn:demo:problem:unauthorized");
    let (status, _) = env.call(Some(("nobody", "x")), "GET", "/pools", None).await;
    assert_eq!(status, 401);
    let bearer = env.client.get(env.url("/pools")).bearer_auth("abc").send().await.unwrap();
    assert_eq!(bearer.status(), 401);
    let (status, who) = env.call(SVC, "GET", "/whoami", None).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["tenant"], TENANT_A);
    env.kms.shutdown().await.unwrap();
}

#[tokio::test]
async fn repeated_failures_get_429_with_retry_after() {
    let env = start().await;
    for _ in 0..5 {
        assert_eq!(env.call(Some(("alice", "nope")), "GET", "/pools", None).await.0, 401);
    }
    let resp = env.client.get(env.url("/pools")).basic_auth("alice", Some("a-pass")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    env.kms.shutdown().await.unwrap();
}

#[tokio::test]
async fn roles_and_scopes_decide_every_operation() {
    let env = start().await;
    let create = json!({"name": "payments", "algorithm": "A256GCM"});
    let (status, body) = env.call(ALICE, "POST", "/pools", Some(create.clone())).await;
    assert_eq!(status, 403);
    assert!(body["detail"].as_str().unwrap().contains("kms:admin"), "{body}");
    let (status, body) = env.call(MANAGER, "POST", "/pools", Some(create.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["current_version"], 1);
    assert_eq!(env.call(MANAGER, "POST", "/pools", Some(create)).await.0, 409);

    let enc = json!({"plaintext": b64("4111 1111 1111 1111")});
    let (status, body) = env.call(ALICE, "POST", "/pools/payments/encrypt", Some(enc.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kid"], "payments/1");
    let jwe = body["jwe"].clone();
    let (status, body) = env.call(ALICE, "POST", "/decrypt", Some(json!({"jwe": jwe}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plaintext"], b64("4111 1111 1111 1111"));

    // The auditor reads but cannot use keys; the service account (hashed password) does all.
    assert_eq!(env.call(AUDITOR, "GET", "/pools", None).await.0, 200);
    let (status, body) = env.call(AUDITOR, "POST", "/pools/payments/encrypt", Some(enc.clone())).await;
    assert_eq!(status, 403);
    assert!(body["detail"].as_str().unwrap().contains("kms:encrypt"));
    assert_eq!(env.call(SVC, "POST", "/pools/payments/encrypt", Some(enc)).await.0, 200);
    env.kms.shutdown().await.unwrap();
}

#[tokio::test]
async fn rotation_sign_wrap_and_datakeys_over_http() {
    let env = start().await;
    for (name, alg) in [("p", "A256GCM"), ("s", "ES256"), ("k", "A256KW")] {
        assert_eq!(
            env.call(MANAGER, "POST", "/pools", Some(json!({"name": name, "algorithm": alg}))).await.0,
            201
        );
    }
    let (_, old) =
        env.call(SVC, "POST", "/pools/p/encrypt", Some(json!({"plaintext": b64("v1 data")}))).await;
    let (status, info) = env.call(MANAGER, "POST", "/pools/p/rotate", None).await;
    assert_eq!((status, info["current_version"].clone()), (200, json!(2)));
    let (_, new) =
        env.call(SVC, "POST", "/pools/p/encrypt", Some(json!({"plaintext": b64("v2 data")}))).await;
    assert_eq!(new["kid"], "p/2");
    for (jwe, expect) in [(&old["jwe"], "v1 data"), (&new["jwe"], "v2 data")] {
        let (_, out) = env.call(SVC, "POST", "/decrypt", Some(json!({"jwe": jwe}))).await;
        assert_eq!(out["plaintext"], b64(expect));
    }
    // Disable v1: its ciphertexts are refused with 409.
    assert_eq!(env.call(MANAGER, "POST", "/pools/p/versions/1/disable", None).await.0, 200);
    let (status, body) = env.call(SVC, "POST", "/decrypt", Some(json!({"jwe": old["jwe"]}))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "urn:demo:problem:key-disabled");

    let (_, signed) = env.call(SVC, "POST", "/pools/s/sign", Some(json!({"payload": b64("hello")}))).await;
    let (_, verified) = env.call(SVC, "POST", "/verify", Some(json!({"jws": signed["jws"]}))).await;
    assert_eq!(verified["valid"], true);
    let (status, jwk) = env.call(AUDITOR, "GET", "/pools/s/versions/1/jwk", None).await;
    assert_eq!((status, jwk["kty"].clone()), (200, json!("EC")));
    let (_, jwks) = env.call(AUDITOR, "GET", "/jwks", None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);

    let material = B64.encode([42u8; 32]);
    let (_, wrapped) = env.call(SVC, "POST", "/pools/k/wrap", Some(json!({"key": material}))).await;
    let (_, unwrapped) = env
        .call(SVC, "POST", "/unwrap", Some(json!({"kid": wrapped["kid"], "wrapped": wrapped["wrapped"]})))
        .await;
    assert_eq!(unwrapped["key"], material);

    let (status, dk) = env.call(SVC, "POST", "/pools/p/datakey", None).await;
    assert_eq!(status, 200);
    let (_, back) = env.call(SVC, "POST", "/decrypt", Some(json!({"jwe": dk["ciphertext"]}))).await;
    assert_eq!(back["plaintext"], dk["plaintext"]);

    // A well-formed request to a pool whose algorithm does not do it: 409, like a disabled key
    // (the request is fine, the pool's state refuses it).
    for (method, path, body) in [
        ("GET", "/pools/k/versions/1/jwk", None),
        ("GET", "/pools/p/versions/2/jwk", None),
        ("POST", "/pools/p/sign", Some(json!({"payload": b64("x")}))),
        ("POST", "/pools/s/encrypt", Some(json!({"plaintext": b64("x")}))),
        ("POST", "/pools/p/wrap", Some(json!({"key": material}))),
        ("POST", "/unwrap", Some(json!({"kid": "p/2", "wrapped": wrapped["wrapped"]}))),
    ] {
        let (status, problem) = env.call(SVC, method, path, body).await;
        assert_eq!(
            (status, problem["type"].as_str()),
            (409, Some("urn:demo:problem:wrong-algorithm")),
            "{path}"
        );
    }
    env.kms.shutdown().await.unwrap();
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let env = start().await;
    env.call(MANAGER, "POST", "/pools", Some(json!({"name": "p", "algorithm": "A256GCM"}))).await;
    let (_, enc) = env.call(ALICE, "POST", "/pools/p/encrypt", Some(json!({"plaintext": b64("a's")}))).await;
    // Bob (tenant B) cannot decrypt a's JWE, cannot see the pool, and the answers are the
    // same 404 a missing pool gives.
    let (status, other) = env.call(BOB, "POST", "/decrypt", Some(json!({"jwe": enc["jwe"]}))).await;
    assert_eq!(status, 404);
    let (_, missing) = env.call(BOB, "GET", "/pools/does-not-exist", None).await;
    assert_eq!(other["type"], missing["type"]);
    assert_eq!(env.call(BOB, "GET", "/pools/p", None).await.0, 404);
    assert_eq!(env.call(BOB, "GET", "/pools", None).await.1, json!([]));
    env.kms.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_input_is_a_clear_4xx_never_5xx() {
    let env = start().await;
    env.call(MANAGER, "POST", "/pools", Some(json!({"name": "p", "algorithm": "A256GCM"}))).await;
    let (_, enc) =
        env.call(ALICE, "POST", "/pools/p/encrypt", Some(json!({"plaintext": b64("secret")}))).await;
    let jwe = enc["jwe"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = jwe.split('.').collect();
    let alice = ("alice", "a-pass");
    let manager = ("manager", "m-pass");

    // (path, content type, body, user, expected status)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, (&'a str, &'a str), u16);
    let cases: Vec<Case> = vec![
        ("/decrypt", "application/json", b"{not json".to_vec(), alice, 400),
        ("/decrypt", "text/plain", format!("{{\"jwe\":\"{jwe}\"}}").into_bytes(), alice, 415),
        ("/decrypt", "application/json", vec![b'x'; 200 * 1024], alice, 413),
        ("/decrypt", "application/json", br#"{"jwe": 42}"#.to_vec(), alice, 400),
        ("/decrypt", "application/json", br#"{"jwe": "a.b.c"}"#.to_vec(), alice, 400),
        ("/decrypt", "application/json", br#"{"jwe": "x", "extra": 1}"#.to_vec(), alice, 422),
        ("/pools", "application/json", br#"{"name":"q","algorithm":"ROT13"}"#.to_vec(), manager, 422),
        ("/pools", "application/json", br#"{"name":"../etc","algorithm":"A256GCM"}"#.to_vec(), manager, 400),
        ("/pools/p/encrypt", "application/json", br#"{"plaintext":"not base64!"}"#.to_vec(), alice, 400),
        ("/unwrap", "application/json", br#"{"kid":"p/x","wrapped":"AAAA"}"#.to_vec(), alice, 403),
    ];
    for (path, ct, body, user, expect) in cases {
        let (status, problem) = env.raw(user, path, ct, body).await;
        assert_eq!(status, expect, "{path} {ct}: {problem}");
        assert!(problem["type"].as_str().unwrap_or("").starts_with("urn:demo:problem:"), "{problem}");
    }

    // Truncated ciphertext, a replayed tag from another message, a swapped header.
    let (_, other) =
        env.call(ALICE, "POST", "/pools/p/encrypt", Some(json!({"plaintext": b64("other")}))).await;
    let other_tag = other["jwe"].as_str().unwrap().rsplit('.').next().unwrap().to_owned();
    let tampered = [
        format!("{}..{}.{}.{}", parts[0], parts[2], &parts[3][..2], parts[4]),
        format!("{}..{}.{}.{}", parts[0], parts[2], parts[3], other_tag),
        format!("{}..{}.{}.{}", B64.encode("{}"), parts[2], parts[3], parts[4]),
        format!("{}..{}.{}", parts[0], parts[2], parts[3]),
    ];
    for t in tampered {
        let (status, problem) = env.call(ALICE, "POST", "/decrypt", Some(json!({"jwe": t}))).await;
        assert!((400..500).contains(&status), "{t}: {status} {problem}");
        assert!(!problem.to_string().contains("secret"), "{problem}");
    }
    env.kms.shutdown().await.unwrap();
}

#[tokio::test]
async fn openapi_matches_the_routes_and_swagger_ui_is_served_offline() {
    let env = start().await;
    let base = format!("https://kms.demo.local:{}", env.kms.server.addr.port());
    let doc: Value =
        env.client.get(format!("{base}/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["ProblemDoc"].is_object());

    // Every documented operation is a real route: with a manager's credentials none answers
    // 404-for-the-route or 405 (a 404 problem about a missing pool is fine).
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 16, "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, ops) in paths {
        let concrete = path.replace("{pool}", "p").replace("{version}", "1");
        for method in ops.as_object().unwrap().keys() {
            let resp = env
                .client
                .request(method.to_uppercase().parse().unwrap(), format!("{base}{concrete}"))
                .basic_auth("manager", Some("m-pass"))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 405, "{method} {path}");
            if status == 404 {
                assert!(
                    body["detail"].as_str().unwrap_or("").starts_with("no such"),
                    "{method} {path}: {body}"
                );
            }
        }
    }

    let ui = env.client.get(format!("{base}/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"), "Swagger UI page");
    let css = env.client.get(format!("{base}/docs/swagger-ui.css")).send().await.unwrap();
    assert_eq!(css.status(), 200, "assets are built in");
    let config = env.client.get(format!("{base}/docs/swagger-initializer.js")).send().await.unwrap();
    assert!(config.text().await.unwrap().contains("/api/v1/openapi.json"));
    let bundle = env.client.get(format!("{base}/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert_eq!(bundle.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(bundle.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    assert!(bundle.bytes().await.unwrap().len() > 1_000_000, "the whole bundle, decompressed");
    // A browser (it accepts gzip) gets the embedded gzip as it is.
    let gz = env
        .client
        .get(format!("{base}/docs/swagger-ui-bundle.js"))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), 200);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    let body = gz.bytes().await.unwrap();
    assert!(body.starts_with(&[0x1f, 0x8b]) && body.len() < 600_000, "{} bytes", body.len());
    let bare = env.client.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(
        (bare.status().as_u16(), bare.headers()["location"].to_str().unwrap()),
        (308, "/docs/"),
        "/docs redirects"
    );

    // Only what the page loads is built in: no source map, no unused bundle.
    for absent in
        ["swagger-ui-bundle.js.map", "swagger-ui.css.map", "swagger-ui-es-bundle.js", "oauth2-redirect.html"]
    {
        let resp = env.client.get(format!("{base}/docs/{absent}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{absent}");
    }
    env.kms.shutdown().await.unwrap();
}
